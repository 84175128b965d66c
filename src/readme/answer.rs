//! The JSON ReadMe merges into the docs for a signed-in reader:
//! `{"email", "name", "keys": [{"name", "apiKey"} | {"name", "user", "pass"}], ...}`.
//! ReadMe shows `keys` as a dropdown, so every label must be distinct.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::credentials::{Credential, Secret};

/// Builds the answer. `extra` (from `readme.response`) adds top-level fields
/// such as server variables or `parameters`; it cannot replace ours.
pub fn build(email: &str, credentials: &[Credential], extra: &Map<String, Value>) -> Value {
    let mut answer = extra.clone();
    answer.insert("email".into(), json!(email));
    // ReadMe shows `name` as the reader's display name; the email is all a
    // login tells us about the reader.
    answer.insert("name".into(), json!(email));
    answer.insert("keys".into(), Value::Array(keys(credentials)));
    Value::Object(answer)
}

/// A credential's label as a reader sees it: with its end date, when it
/// has one (a rotation's predecessor in grace, a key with a lifetime).
fn label(credential: &Credential) -> String {
    match credential.expires_at_ms {
        Some(end) => format!(
            "{} (until {} UTC)",
            credential.label,
            crate::clock::rfc3339(end)
                .trim_end_matches('Z')
                .replacen('T', " ", 1)
        ),
        None => credential.label.clone(),
    }
}

fn keys(credentials: &[Credential]) -> Vec<Value> {
    let labels: Vec<String> = credentials.iter().map(label).collect();
    let mut label_count: HashMap<&str, usize> = HashMap::new();
    for label in &labels {
        *label_count.entry(label.as_str()).or_default() += 1;
    }
    credentials
        .iter()
        .zip(&labels)
        .map(|(credential, label)| {
            let label = if label_count[label.as_str()] > 1 {
                format!("{label} ({})", credential.id)
            } else {
                label.clone()
            };
            match &credential.secret {
                Secret::ApiKey { value } => json!({ "name": label, "apiKey": value.expose() }),
                Secret::ClientCredentials { client_secret, .. } => {
                    let mut entry = json!({
                        "name": label,
                        "user": credential.id,
                        "pass": client_secret.expose(),
                    });
                    // The API key issued beside the client, for usage plans.
                    if let Some(key) = credential.custom.get("apiKey") {
                        entry["apiKey"] = json!(key.expose());
                    }
                    entry
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{AppId, Email, Origin};
    use crate::secret::Redacted;
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
        let creds = vec![
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
        ];
        let mut extra = Map::new();
        extra.insert("isReadOnly".into(), json!(true));
        extra.insert("parameters".into(), json!({"region": "eu-west-1"}));
        let answer = build("Dev@corp.com", &creds, &extra);
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
        let answer = build("dev@corp.com", &[key("k2", "v2"), old], &Map::new());
        assert_eq!(
            answer["keys"],
            json!([
                {"name": "Billing", "apiKey": "v2"},
                {"name": "Billing (until 2025-12-09 10:00:00 UTC)", "apiKey": "v1"},
            ])
        );
    }
}
