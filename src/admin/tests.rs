//! The admin API's description matches its router.

use super::ROUTES;

const OPENAPI: &str = include_str!("../../openapi/admin.yaml");
const PORTALS: &str = include_str!("../../openapi/keyhook.yaml");

/// Every `(METHOD, path)` under `paths:` of an OpenAPI file.
fn described(text: &str) -> Vec<(String, String)> {
    let paths = text
        .split("\npaths:\n")
        .nth(1)
        .and_then(|rest| rest.split("\ncomponents:\n").next())
        .expect("a paths section");
    let mut out = Vec::new();
    let mut path = None;
    for line in paths.lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let (Some(path), Some(method)) = (
            &path,
            line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')),
        ) {
            if ["get", "post", "put", "delete", "patch"].contains(&method) {
                out.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_admin_description_lists_exactly_the_routes_served() {
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut documented = described(OPENAPI);
    served.sort();
    documented.sort();
    assert_eq!(documented, served);
}

#[test]
fn the_portals_description_has_no_admin_route() {
    let portal = described(PORTALS);
    assert!(portal.len() >= 6, "{portal:?}");
    assert!(
        portal.iter().all(|(_, p)| !p.starts_with("/admin")),
        "{portal:?}"
    );
}
