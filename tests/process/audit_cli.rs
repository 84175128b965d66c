//! `keyhook audit` and the admin settings, with the real binary: exit
//! status 0 (no findings), 1 (findings), 2 (the audit could not run); on a
//! local store a running server holds, through its admin listener; on one
//! no server holds, from the file; `--fix` prints the plan and changes
//! nothing without `--yes`. The admin settings refused at start, and the
//! audit events of admin calls, read from the server's log.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use super::cli::{keyhook, refused_at_start, text};
use crate::harness::Process;

const TOKEN: &str = "cli-admin-token-0123456789";

/// `keyhook audit <args>` on `data`, told of the admin listener `admin`.
fn audit(dir: &Path, data: &Path, admin: Option<SocketAddr>, args: &[&str]) -> Output {
    let mut command = keyhook(dir);
    command
        .arg("audit")
        .args(args)
        .env("KEYHOOK_DATA_DIR", data)
        .env("KEYHOOK_LOG_FORMAT", "json");
    if let Some(admin) = admin {
        command
            .env("KEYHOOK_ADMIN_LISTEN", admin.to_string())
            .env("KEYHOOK_ADMIN_TOKENS", TOKEN);
    }
    command.output().expect("keyhook runs")
}

fn status(output: &Output) -> Option<i32> {
    output.status.code()
}

fn shown(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Creates an app and gives its credential an end date in the past, through
/// `server`'s admin listener; the credential's id.
async fn expired_credential(server: &Process, admin: SocketAddr, slug: &str) -> String {
    let created = server.create_app("old@corp.com", slug).await;
    let id = created["apiKeyId"].as_str().unwrap().to_string();
    let response = server
        .http
        .put(format!("http://{admin}/admin/v1/credentials/{id}/expiry"))
        .bearer_auth(TOKEN)
        .json(&json!({"expiresAt": "2001-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    id
}

#[tokio::test]
async fn audit_exits_1_with_findings_0_without_through_the_server_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No store yet: nothing to audit, and nothing created.
    let nothing = audit(dir.path(), &data, None, &[]);
    assert_eq!(status(&nothing), Some(0), "{}", shown(&nothing));
    assert!(!data.join("keyhook.redb").exists());

    let server = Process::spawn_in(
        dir.path(),
        &[
            ("KEYHOOK_DATA_DIR", data.display().to_string()),
            (
                "KEYHOOK_SENSEDIA_USERS",
                "portal:cli-portal-password".into(),
            ),
            ("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("KEYHOOK_ADMIN_TOKENS", TOKEN.into()),
            // No sweep while the test runs: the expired credential stays.
            ("KEYHOOK_INDEX_REFRESH_SECS", "3600".into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let admin = server.admin_addr();
    let id = expired_credential(&server, admin, "through").await;

    // The server holds the store: the audit goes through its listener.
    let found = audit(dir.path(), &data, Some(admin), &[]);
    assert_eq!(status(&found), Some(1), "{}", shown(&found));
    let stdout = text(&found.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("expired") && stdout.contains(&id),
        "{stdout}"
    );
    assert!(stdout.contains("old@corp.com"), "{stdout}");
    assert!(
        server.logs().contains("/admin/v1/audit"),
        "not asked of the server"
    );

    let json_out = audit(dir.path(), &data, Some(admin), &["--json"]);
    assert_eq!(status(&json_out), Some(1), "{}", shown(&json_out));
    let findings: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert_eq!(findings[0]["kind"], "expired");
    assert_eq!(findings[0]["credentialId"], id.as_str());

    // The plan alone changes nothing.
    let plan = audit(dir.path(), &data, Some(admin), &["--fix"]);
    assert_eq!(status(&plan), Some(1), "{}", shown(&plan));
    assert!(text(&plan.stdout).starts_with("repair"), "{}", shown(&plan));
    assert!(
        text(&plan.stderr).contains("run again with --yes"),
        "{}",
        shown(&plan)
    );
    assert_eq!(status(&audit(dir.path(), &data, Some(admin), &[])), Some(1));

    let fixed = audit(dir.path(), &data, Some(admin), &["--fix", "--yes"]);
    assert_eq!(status(&fixed), Some(0), "{}", shown(&fixed));
    assert!(text(&fixed.stdout).contains(&id), "{}", shown(&fixed));
    let clean = audit(dir.path(), &data, Some(admin), &[]);
    assert_eq!(status(&clean), Some(0), "{}", shown(&clean));
    assert_eq!(text(&clean.stdout), "");

    // Without the server, from the file.
    let id = expired_credential(&server, admin, "direct").await;
    server.terminate();
    assert_eq!(server.wait().code(), Some(0));
    let found = audit(dir.path(), &data, None, &["--json"]);
    assert_eq!(status(&found), Some(1), "{}", shown(&found));
    let findings: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(findings[0]["credentialId"], id.as_str(), "{findings}");
    let fixed = audit(dir.path(), &data, None, &["--fix", "--yes", "--json"]);
    assert_eq!(status(&fixed), Some(0), "{}", shown(&fixed));
    let answer: Value = serde_json::from_slice(&fixed.stdout).unwrap();
    assert_eq!(
        answer["repairs"][0]["credentialId"],
        id.as_str(),
        "{answer}"
    );
    // The repair is an audit event, on stderr.
    assert!(
        text(&fixed.stderr).contains("keyhook::audit") && text(&fixed.stderr).contains(&id),
        "{}",
        shown(&fixed)
    );
    let clean = audit(dir.path(), &data, None, &[]);
    assert_eq!(status(&clean), Some(0), "{}", shown(&clean));
}

#[test]
fn audit_exits_2_when_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keyhook.redb"), b"not a redb file at all").unwrap();
    let damaged = audit(dir.path(), &data, None, &[]);
    assert_eq!(status(&damaged), Some(2), "{}", shown(&damaged));
    assert!(
        text(&damaged.stderr).contains("cannot open the local store"),
        "{}",
        shown(&damaged)
    );
    // An admin listener that does not answer.
    let nobody: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let unreachable = audit(dir.path(), &data, Some(nobody), &["--json"]);
    assert_eq!(status(&unreachable), Some(2), "{}", shown(&unreachable));
    assert_eq!(text(&unreachable.stdout), "");
    assert!(!text(&unreachable.stderr).contains(TOKEN));
    // `--yes` alone is refused by the parser.
    let yes = audit(dir.path(), &data, None, &["--yes"]);
    assert_eq!(status(&yes), Some(2), "{}", shown(&yes));
}

#[test]
fn a_short_admin_token_or_an_admin_listener_without_tokens_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    refused_at_start(
        dir.path(),
        "KEYHOOK_ADMIN_TOKENS",
        "an-ok-admin-token-0123\nshort-token",
        &["token 2 of 2 is shorter than 16 characters"],
        Some("short-token"),
    );
    refused_at_start(
        dir.path(),
        "KEYHOOK_ADMIN_LISTEN",
        "127.0.0.1:0",
        &["KEYHOOK_ADMIN_TOKENS", "is empty"],
        None,
    );
}

#[test]
fn check_says_tokens_without_a_listener_serve_nothing_and_names_them_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    // From a file, as an orchestrator mounts a secret: one per line.
    let tokens = dir.path().join("admin-tokens");
    std::fs::write(&tokens, format!("{TOKEN}\nsecond-admin-token-0000000\n")).unwrap();
    let output = keyhook(dir.path())
        .arg("check")
        .env("KEYHOOK_ADMIN_TOKENS_FILE", &tokens)
        .env("KEYHOOK_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", shown(&output));
    assert!(stdout.contains("KEYHOOK_ADMIN_LISTEN is unset"), "{stdout}");
    assert!(stdout.contains("2 token(s)"), "{stdout}");
    assert!(
        stdout.contains(&keyhook::admin::auth::fingerprint(TOKEN)),
        "{stdout}"
    );
    for token in [TOKEN, "second-admin-token"] {
        assert!(!stdout.contains(token) && !text(&output.stderr).contains(token));
    }
}

#[tokio::test]
async fn admin_audit_events_name_the_token_by_its_fingerprint_never_its_value() {
    const NEXT: &str = "cli-next-admin-token-987654";
    let server = Process::spawn(&[
        (
            "KEYHOOK_SENSEDIA_USERS",
            "portal:cli-portal-password".into(),
        ),
        ("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:0".into()),
        ("KEYHOOK_ADMIN_TOKENS", format!("{TOKEN}\n{NEXT}")),
        ("RUST_LOG", "info".into()),
    ]);
    let admin = server.admin_addr();
    let created = server.create_app("fp@corp.com", "fp").await;
    let id = created["apiKeyId"].as_str().unwrap();
    let url = |path: &str| format!("http://{admin}/admin/v1/credentials/{path}");
    let rotated: Value = server
        .http
        .post(url(&format!("{id}/rotate")))
        .bearer_auth(TOKEN)
        .json(&json!({"graceSecs": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_id = rotated["successor"]["id"].as_str().unwrap().to_string();
    let new_key = rotated["successor"]["apiKey"].as_str().unwrap().to_string();
    let set = server
        .http
        .put(url(&format!("{new_id}/expiry")))
        .bearer_auth(NEXT)
        .json(&json!({"expiresAt": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let deleted = server
        .http
        .delete(url(id))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    server.terminate();
    let logs = server.logs();
    assert_eq!(server.wait().code(), Some(0));

    let events: Vec<(String, String, String)> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["target"] == "keyhook::audit")
        .filter(|e| {
            e["requested_by"]
                .as_str()
                .is_some_and(|a| a.starts_with("admin"))
        })
        .map(|e| {
            let field = |f: &str| e[f].as_str().unwrap().to_string();
            (
                field("action"),
                field("requested_by"),
                field("credential_id"),
            )
        })
        .collect();
    let first = format!("admin:{}", keyhook::admin::auth::fingerprint(TOKEN));
    let next = format!("admin:{}", keyhook::admin::auth::fingerprint(NEXT));
    assert_eq!(
        events,
        [
            ("created".into(), first.clone(), new_id.clone()),
            ("rotated".into(), first.clone(), id.to_string()),
            ("expiry_set".into(), next, new_id.clone()),
            ("revoked".into(), first, id.to_string()),
        ],
        "{logs}"
    );
    for secret in [
        TOKEN,
        NEXT,
        new_key.as_str(),
        created["apiKey"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "{secret} logged");
    }
}
