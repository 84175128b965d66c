//! How the AWS backend records a credential's end date and a rotation's
//! link, where every replica reads them and a restart forgets nothing, in
//! fields both AWS and moto support (moto cannot tag an existing key):
//!
//! - an API key's own end date is its `customerId`, `keyhook:expires=<ms>`
//!   (set at `CreateApiKey`, changed with `UpdateApiKey`). A `customerId`
//!   not starting `keyhook:` is someone else's (AWS Marketplace): left
//!   alone, and no end date;
//! - a successor key carries create-time tags `keyhook:replaces=<id>` and
//!   `keyhook:until=<ms>`: no write to the predecessor is needed;
//! - an app client (no tags) carries the same facts in its name, after a
//!   space the name's escaping never produces: ` e=<ms> r=<id> u=<ms>`;
//! - a credential's effective end is the earlier of its own and the `until`
//!   of the credential that replaces it ([`link_ends`]).

use crate::credentials::Credential;

pub const TAG_REPLACES: &str = "keyhook:replaces";
pub const TAG_UNTIL: &str = "keyhook:until";
const CUSTOMER_ID_END: &str = "keyhook:expires=";

/// The `customerId` recording `end` (empty: none).
pub fn customer_id(end: Option<u64>) -> String {
    end.map(|ms| format!("{CUSTOMER_ID_END}{ms}"))
        .unwrap_or_default()
}

/// The end a key's `customerId` records, if keyhook wrote it.
pub fn end_of_customer_id(customer_id: &str) -> Option<u64> {
    customer_id.strip_prefix(CUSTOMER_ID_END)?.parse().ok()
}

/// Whether a key's `customerId` is someone else's (Marketplace): never
/// overwritten.
pub fn foreign_customer_id(customer_id: &str) -> bool {
    !customer_id.is_empty() && !customer_id.starts_with("keyhook:")
}

/// The lifecycle fields of an app client's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFields {
    /// Its own end date.
    pub expires: Option<u64>,
    /// The client it replaces, and that one's end.
    pub replaces: Option<String>,
    pub until: Option<u64>,
}

impl NameFields {
    /// The suffix to append to a name: empty, or ` e=.. r=.. u=..`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(end) = self.expires {
            out.push_str(&format!(" e={end}"));
        }
        if let Some(pred) = &self.replaces {
            out.push_str(&format!(" r={pred}"));
            if let Some(until) = self.until {
                out.push_str(&format!(" u={until}"));
            }
        }
        out
    }

    /// The fields after a name's first space; unknown ones are skipped (a
    /// later version's), malformed ones ignored.
    pub fn parse(rest: &str) -> NameFields {
        let mut fields = NameFields::default();
        for field in rest.split(' ') {
            match field.split_once('=') {
                Some(("e", v)) => fields.expires = v.parse().ok(),
                Some(("r", v)) if !v.is_empty() => fields.replaces = Some(v.to_string()),
                Some(("u", v)) => fields.until = v.parse().ok(),
                _ => {}
            }
        }
        fields
    }
}

/// Sets each predecessor's end to the earlier of its own and the `until`
/// its successor recorded: `links` are (predecessor id, until).
pub fn link_ends(credentials: &mut [Credential], links: &[(String, u64)]) {
    for (pred, until) in links {
        if let Some(c) = credentials.iter_mut().find(|c| &c.id == pred) {
            c.expires_at_ms = Some(c.expires_at_ms.map_or(*until, |own| own.min(*until)));
        }
    }
}

/// `group` (one app's credentials, in the order to keep them by) as units:
/// a credential alone, or a predecessor with the successor that replaces it
/// (one app credential, not duplicates), in the order of their first member.
pub fn units(group: Vec<Credential>) -> Vec<Vec<Credential>> {
    let ids: Vec<String> = group.iter().map(|c| c.id.clone()).collect();
    let pred_held = |c: &Credential| c.replaces.as_ref().is_some_and(|p| ids.contains(p));
    let (successors, rest): (Vec<Credential>, Vec<Credential>) =
        group.into_iter().partition(|c| pred_held(c));
    let mut successors: Vec<Option<Credential>> = successors.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for credential in rest {
        let mut unit = vec![credential];
        for slot in successors.iter_mut() {
            if slot.as_ref().and_then(|s| s.replaces.as_ref()) == Some(&unit[0].id) {
                unit.extend(slot.take());
            }
        }
        out.push(unit);
    }
    // A successor of a successor (its own predecessor a successor too):
    // alone, as nothing keyhook makes leads there.
    out.extend(successors.into_iter().flatten().map(|s| vec![s]));
    out
}

/// A unit's head: the member no other replaces (what the app answers).
pub fn head(unit: &[Credential]) -> Option<&Credential> {
    unit.iter().find(|c| {
        !unit
            .iter()
            .any(|o| o.replaces.as_deref() == Some(c.id.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::sync::tests::key;
    use super::*;

    #[test]
    fn a_customer_id_records_keyhooks_end_only() {
        assert_eq!(customer_id(Some(42)), "keyhook:expires=42");
        assert_eq!(customer_id(None), "");
        assert_eq!(end_of_customer_id("keyhook:expires=42"), Some(42));
        for other in ["", "mkt-customer-1", "keyhook:expires=", "keyhook:other=1"] {
            assert_eq!(end_of_customer_id(other), None, "{other}");
        }
        assert!(foreign_customer_id("mkt-customer-1"));
        assert!(!foreign_customer_id("") && !foreign_customer_id("keyhook:expires=1"));
    }

    #[test]
    fn name_fields_round_trip_and_skip_what_they_do_not_know() {
        let all = NameFields {
            expires: Some(5),
            replaces: Some("abc123".into()),
            until: Some(9),
        };
        assert_eq!(all.encode(), " e=5 r=abc123 u=9");
        assert_eq!(NameFields::parse(all.encode().trim_start()), all);
        assert_eq!(NameFields::default().encode(), "");
        let parsed = NameFields::parse("x=1 e=zz r= u=7 e=3");
        assert_eq!(parsed.expires, Some(3));
        assert_eq!(parsed.replaces, None);
        assert_eq!(parsed.until, Some(7));
    }

    #[test]
    fn a_predecessors_end_is_the_earlier_of_its_own_and_its_successors_until() {
        let mut own_later = key("p1", "jo@corp.com", "aws:01", 1);
        own_later.expires_at_ms = Some(500);
        let mut own_earlier = key("p2", "jo@corp.com", "aws:02", 1);
        own_earlier.expires_at_ms = Some(50);
        let none = key("p3", "jo@corp.com", "aws:03", 1);
        let mut creds = vec![own_later, own_earlier, none];
        let links: Vec<(String, u64)> = ["p1", "p2", "p3", "gone"]
            .iter()
            .map(|p| (p.to_string(), 100))
            .collect();
        link_ends(&mut creds, &links);
        let ends: Vec<Option<u64>> = creds.iter().map(|c| c.expires_at_ms).collect();
        assert_eq!(ends, [Some(100), Some(50), Some(100)]);
    }

    #[test]
    fn a_successor_and_its_predecessor_are_one_unit() {
        let pred = key("p", "jo@corp.com", "aws:01", 1);
        let dup = key("d", "jo@corp.com", "aws:01", 2);
        let mut succ = key("s", "jo@corp.com", "aws:01", 3);
        succ.replaces = Some("p".into());
        let mut orphan_succ = key("o", "jo@corp.com", "aws:01", 4);
        orphan_succ.replaces = Some("swept".into());
        let units = units(vec![pred, dup, succ, orphan_succ]);
        let ids: Vec<Vec<&str>> = units
            .iter()
            .map(|u| u.iter().map(|c| c.id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["p", "s"], vec!["d"], vec!["o"]]);
        assert_eq!(head(&units[0]).map(|c| c.id.as_str()), Some("s"));
        assert_eq!(head(&units[1]).map(|c| c.id.as_str()), Some("d"));
    }
}
