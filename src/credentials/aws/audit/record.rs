//! How the credential lifecycle is recorded in AWS, read back (design of
//! issue 11, "AWS record of the lifecycle"): an API key's own end date in
//! its `customerId`, a rotation's successor key's create-time tags, an app
//! client's name fields after a space. The audit reads them with these
//! helpers; the rotation and expiry code writes the same shapes.

use std::collections::HashMap;

pub(crate) use crate::credentials::aws::lineage::{NameFields, TAG_REPLACES, TAG_UNTIL};

/// An API key's own end date, from its `customerId` (none when someone
/// else's, Marketplace's, or absent).
pub(crate) fn key_end(customer_id: Option<&str>) -> Option<u64> {
    crate::credentials::aws::lineage::end_of_customer_id(customer_id?)
}

/// The key a successor key replaces, and until when, from its tags.
pub(crate) fn key_replaces(tags: &HashMap<String, String>) -> Option<(&str, Option<u64>)> {
    let predecessor = tags.get(TAG_REPLACES).filter(|id| !id.is_empty())?;
    let until = tags.get(TAG_UNTIL).and_then(|ms| ms.parse().ok());
    Some((predecessor.as_str(), until))
}

/// A client name split into what `cognito::parse_client_name` reads and
/// the lifecycle fields (`lineage::NameFields`); a name without a space has
/// none (as before).
pub(crate) fn split_client_name(name: &str) -> (&str, NameFields) {
    let (head, rest) = name.split_once(' ').unwrap_or((name, ""));
    (head, NameFields::parse(rest))
}

/// A credential's effective end: the earlier of its own and the grace end
/// the successor replacing it records.
pub(crate) fn effective_end(own: Option<u64>, successors: Option<u64>) -> Option<u64> {
    match (own, successors) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_end_is_keyhooks_customer_id_only() {
        assert_eq!(
            key_end(Some("keyhook:expires=1700000000000")),
            Some(1_700_000_000_000)
        );
        for other in [
            None,
            Some(""),
            Some("marketplace-customer-1"),
            Some("keyhook:expires=soon"),
            Some("keyhook:other=5"),
        ] {
            assert_eq!(key_end(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_successor_key_names_its_predecessor_and_its_end() {
        let tags = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let both = tags(&[(TAG_REPLACES, "abc"), (TAG_UNTIL, "42")]);
        assert_eq!(key_replaces(&both), Some(("abc", Some(42))));
        assert_eq!(
            key_replaces(&tags(&[(TAG_REPLACES, "abc")])),
            Some(("abc", None))
        );
        assert_eq!(key_replaces(&tags(&[(TAG_UNTIL, "42")])), None);
        assert_eq!(key_replaces(&tags(&[(TAG_REPLACES, "")])), None);
    }

    #[test]
    fn client_names_carry_their_fields_after_a_space() {
        let plain = "kh.00ff.Billing.dev@corp.com";
        assert_eq!(split_client_name(plain), (plain, NameFields::default()));
        let (head, fields) = split_client_name("kh.00ff.B.dev@corp.com e=100 r=abc u=90");
        assert_eq!(head, "kh.00ff.B.dev@corp.com");
        assert_eq!(
            fields,
            NameFields {
                expires: Some(100),
                replaces: Some("abc".into()),
                until: Some(90)
            }
        );
        let (_, fields) = split_client_name("kh.00ff.B.dev@corp.com r=abc x=1 e=bad");
        assert_eq!(fields.replaces.as_deref(), Some("abc"));
        assert_eq!((fields.expires, fields.until), (None, None));
    }

    #[test]
    fn the_effective_end_is_the_earlier() {
        assert_eq!(effective_end(Some(5), Some(3)), Some(3));
        assert_eq!(effective_end(None, Some(3)), Some(3));
        assert_eq!(effective_end(Some(5), None), Some(5));
        assert_eq!(effective_end(None, None), None);
    }
}
