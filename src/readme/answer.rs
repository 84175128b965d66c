//! The JSON ReadMe merges into the docs for a signed-in reader:
//! `{"email", "name", "keys": [{"name", "apiKey"} | {"name", "user", "pass"}], ...}`.
//! ReadMe shows `keys` as a dropdown, so every label must be distinct.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::credentials::{Credential, Secret};

/// The fields of ours that `extra` cannot replace.
const OURS: [&str; 3] = ["email", "name", "keys"];

/// The answer to a login, serialized straight to JSON (a login builds no
/// intermediate `Value`, and its keys no list of their own).
pub struct Answer<'a> {
    email: &'a str,
    keys: Keys<'a>,
    extra: &'a Map<String, Value>,
}

/// `keys`: one entry per credential, each label made distinct.
struct Keys<'a>(&'a [Arc<Credential>]);

/// One entry of `keys`.
struct Key<'a> {
    name: Cow<'a, str>,
    credential: &'a Credential,
}

/// Builds the answer. `extra` (from `readme.response`) adds top-level fields
/// such as server variables or `parameters`; it cannot replace ours.
pub fn build<'a>(
    email: &'a str,
    credentials: &'a [Arc<Credential>],
    extra: &'a Map<String, Value>,
) -> Answer<'a> {
    Answer {
        email,
        keys: Keys(credentials),
        extra,
    }
}

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = self
            .extra
            .iter()
            .filter(|(k, _)| !OURS.contains(&k.as_str()));
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in extra {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry("email", self.email)?;
        // ReadMe shows `name` as the reader's display name; the email is
        // all a login tells us about the reader.
        map.serialize_entry("name", self.email)?;
        map.serialize_entry("keys", &self.keys)?;
        map.end()
    }
}

/// Each label made distinct with the credential's id where two are alike
/// (ReadMe shows `keys` as a dropdown).
impl Serialize for Keys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let credentials = self.0;
        let counts: Option<HashMap<Cow<'_, str>, usize>> = (credentials.len() > COMPARED_PAIRWISE)
            .then(|| {
                let mut counts = HashMap::new();
                for credential in credentials {
                    *counts.entry(label(credential)).or_default() += 1;
                }
                counts
            });
        let mut entries = serializer.serialize_seq(Some(credentials.len()))?;
        for credential in credentials {
            let name = label(credential);
            let repeated = match &counts {
                Some(counts) => counts[name.as_ref()] > 1,
                None => credentials
                    .iter()
                    .filter(|other| label(other) == name)
                    .nth(1)
                    .is_some(),
            };
            let name = match repeated {
                true => Cow::Owned(format!("{name} ({})", credential.id)),
                false => name,
            };
            entries.serialize_element(&Key { name, credential })?;
        }
        entries.end()
    }
}

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        match &self.credential.secret {
            Secret::ApiKey { value } => map.serialize_entry("apiKey", value.expose())?,
            Secret::ClientCredentials { client_secret, .. } => {
                map.serialize_entry("user", &self.credential.id)?;
                map.serialize_entry("pass", client_secret.expose())?;
                // The API key issued beside the client, for usage plans.
                if let Some(key) = self.credential.custom.get("apiKey") {
                    map.serialize_entry("apiKey", key.expose())?;
                }
            }
        }
        map.end()
    }
}

/// A credential's label as a reader sees it: with its end date, when it
/// has one (a rotation's predecessor in grace, a key with a lifetime).
fn label(credential: &Credential) -> Cow<'_, str> {
    match credential.expires_at_ms {
        Some(end) => Cow::Owned(format!(
            "{} (until {} UTC)",
            credential.label,
            crate::clock::rfc3339(end)
                .trim_end_matches('Z')
                .replacen('T', " ", 1)
        )),
        None => Cow::Borrowed(&credential.label),
    }
}

/// Up to this many credentials, labels are compared pair by pair, each made
/// again for each pair (only one with an end date allocates): a reader
/// usually holds one or two, and hashing them would cost more.
const COMPARED_PAIRWISE: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{AppId, Email, Origin};
    use crate::secret::Redacted;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn credential(id: &str, label: &str, secret: Secret) -> Credential {
        Credential {
            id: id.into(),
            owner: Email::parse("dev@corp.com").unwrap(),
            app: AppId::sensedia_slug(id),
            label: label.into(),
            origin: Origin::Sensedia,
            secret,
            usage_plans: vec![],
            api_ids: vec![],
            custom: BTreeMap::new(),
            created_at_ms: 0,
            expires_at_ms: None,
            replaces: None,
        }
    }

    #[test]
    fn api_keys_and_client_credentials_with_distinct_labels() {
        let creds: Vec<_> = [
            credential(
                "k1",
                "Billing",
                Secret::ApiKey {
                    value: Redacted::new("v1".into()),
                },
            ),
            credential(
                "k2",
                "Billing",
                Secret::ApiKey {
                    value: Redacted::new("v2".into()),
                },
            ),
            credential(
                "client1",
                "Reports",
                Secret::ClientCredentials {
                    client_secret: Redacted::new("s1".into()),
                    scopes: vec![],
                },
            ),
        ]
        .map(Arc::new)
        .into();
        let mut extra = Map::new();
        extra.insert("isReadOnly".into(), json!(true));
        extra.insert("parameters".into(), json!({"region": "eu-west-1"}));
        let answer = serde_json::to_value(build("Dev@corp.com", &creds, &extra)).unwrap();
        assert_eq!(
            answer,
            json!({
                "email": "Dev@corp.com",
                "name": "Dev@corp.com",
                "isReadOnly": true,
                "parameters": {"region": "eu-west-1"},
                "keys": [
                    {"name": "Billing (k1)", "apiKey": "v1"},
                    {"name": "Billing (k2)", "apiKey": "v2"},
                    {"name": "Reports", "user": "client1", "pass": "s1"},
                ]
            })
        );
    }

    #[test]
    fn extra_fields_cannot_replace_ours_in_the_bytes_sent() {
        let creds = [Arc::new(credential(
            "k1",
            "Billing",
            Secret::ApiKey {
                value: Redacted::new("v1".into()),
            },
        ))];
        let mut extra = Map::new();
        for (name, value) in [("email", 1), ("name", 2), ("keys", 3), ("isReadOnly", 4)] {
            extra.insert(name.into(), json!(value));
        }
        let text = serde_json::to_string(&build("dev@corp.com", &creds, &extra)).unwrap();
        for field in ["\"email\"", "\"name\":\"dev", "\"keys\"", "\"isReadOnly\""] {
            assert_eq!(text.matches(field).count(), 1, "{field} in {text}");
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["email"], "dev@corp.com");
        assert_eq!(answer["keys"][0]["apiKey"], "v1");
        assert_eq!(answer["isReadOnly"], 4);
    }

    #[test]
    fn a_credential_with_an_end_date_says_when_it_stops_working() {
        let key = |id: &str, value: &str| {
            credential(
                id,
                "Billing",
                Secret::ApiKey {
                    value: Redacted::new(value.into()),
                },
            )
        };
        let mut old = key("k1", "v1");
        old.expires_at_ms = Some(1_765_274_400_000);
        let credentials = [key("k2", "v2"), old].map(Arc::new);
        let extra = Map::new();
        let answer = serde_json::to_value(build("dev@corp.com", &credentials, &extra)).unwrap();
        assert_eq!(
            answer["keys"],
            json!([
                {"name": "Billing", "apiKey": "v2"},
                {"name": "Billing (until 2025-12-09 10:00:00 UTC)", "apiKey": "v1"},
            ])
        );
    }

    /// Labels are compared pair by pair for a few credentials and counted
    /// for many: both ways name the same entries.
    #[test]
    fn repeated_labels_get_the_id_however_many_credentials() {
        for n in [2, COMPARED_PAIRWISE, COMPARED_PAIRWISE + 5] {
            let credentials: Vec<_> = (0..n)
                .map(|i| {
                    let label = match i % 3 {
                        0 => "Shared".to_string(),
                        _ => format!("App {i}"),
                    };
                    let value = Redacted::new(format!("v{i}"));
                    Arc::new(credential(
                        &format!("k{i}"),
                        &label,
                        Secret::ApiKey { value },
                    ))
                })
                .collect();
            let extra = Map::new();
            let answer = serde_json::to_value(build("dev@corp.com", &credentials, &extra)).unwrap();
            let shared = (0..n).filter(|i| i % 3 == 0).count();
            for (i, key) in answer["keys"].as_array().unwrap().iter().enumerate() {
                let expected = match (i % 3, shared > 1) {
                    (0, true) => format!("Shared (k{i})"),
                    (0, false) => "Shared".to_string(),
                    _ => format!("App {i}"),
                };
                assert_eq!(key["name"], expected.as_str(), "{n} credentials");
            }
        }
    }
}
