//! A credential as the store's rows hold it: JSON, secrets included. The
//! one place a credential's secrets are serialised; names, order and shapes
//! are the store's format, which `Credential`'s `Deserialize` reads back. A
//! store written by an earlier version must keep loading, so they never
//! change.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::credentials::{AppId, Credential, Email, Origin, Secret};

#[derive(Serialize)]
struct StoredCredential<'a> {
    id: &'a str,
    owner: &'a Email,
    app: &'a AppId,
    label: &'a str,
    origin: Origin,
    secret: StoredSecret<'a>,
    usage_plans: &'a [String],
    api_ids: &'a [String],
    custom: BTreeMap<&'a str, &'a str>,
    created_at_ms: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoredSecret<'a> {
    ApiKey {
        value: &'a str,
    },
    ClientCredentials {
        client_secret: &'a str,
        scopes: &'a [String],
    },
}

impl<'a> From<&'a Credential> for StoredCredential<'a> {
    fn from(credential: &'a Credential) -> Self {
        StoredCredential {
            id: &credential.id,
            owner: &credential.owner,
            app: &credential.app,
            label: &credential.label,
            origin: credential.origin,
            secret: match &credential.secret {
                Secret::ApiKey { value } => StoredSecret::ApiKey {
                    value: value.expose(),
                },
                Secret::ClientCredentials {
                    client_secret,
                    scopes,
                } => StoredSecret::ClientCredentials {
                    client_secret: client_secret.expose(),
                    scopes,
                },
            },
            usage_plans: &credential.usage_plans,
            api_ids: &credential.api_ids,
            custom: credential
                .custom
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose().as_str()))
                .collect(),
            created_at_ms: credential.created_at_ms,
        }
    }
}

pub(super) fn encode(credential: &Credential) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&StoredCredential::from(credential))
}

pub(super) fn decode(row: &[u8]) -> serde_json::Result<Credential> {
    serde_json::from_slice(row)
}

/// Rows exactly as the previous version wrote them (id, row).
#[cfg(test)]
pub(super) const TODAYS_ROWS: [(&str, &str); 2] = [
    (
        "key1",
        r#"{"id":"key1","owner":"dev@corp.com","app":"slug:app1","label":"app app1","origin":"sensedia","secret":{"type":"api_key","value":"kv-1"},"usage_plans":["plan01"],"api_ids":["a1b2c3d4e5"],"custom":{},"created_at_ms":1700000000000}"#,
    ),
    (
        "client1",
        r#"{"id":"client1","owner":"dev@corp.com","app":"readme:dev@corp.com","label":"Reader","origin":"readme","secret":{"type":"client_credentials","client_secret":"cs-1","scopes":["read","write"]},"usage_plans":[],"api_ids":[],"custom":{"apiKey":"kv-2","apiKeyId":"key2"},"created_at_ms":1700000000001}"#,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;

    #[test]
    fn todays_rows_decode_and_encode_back_byte_for_byte() {
        for (id, row) in TODAYS_ROWS {
            let credential = decode(row.as_bytes()).unwrap();
            assert_eq!(credential.id, id);
            assert_eq!(
                String::from_utf8(encode(&credential).unwrap()).unwrap(),
                row
            );
        }
        let key = decode(TODAYS_ROWS[0].1.as_bytes()).unwrap();
        assert_eq!(
            key.secret,
            Secret::ApiKey {
                value: Redacted::new("kv-1".into())
            }
        );
        let client = decode(TODAYS_ROWS[1].1.as_bytes()).unwrap();
        assert_eq!(client.custom["apiKey"].expose(), "kv-2");
    }
}
