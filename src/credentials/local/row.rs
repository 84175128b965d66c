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
    /// Absent unless set, so a row without them is written as the
    /// previous version wrote it (and reads back in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<&'a str>,
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
            expires_at_ms: credential.expires_at_ms,
            replaces: credential.replaces.as_deref(),
        }
    }
}

pub(super) fn encode(credential: &Credential) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&StoredCredential::from(credential))
}

pub(super) fn decode(row: &[u8]) -> serde_json::Result<Credential> {
    serde_json::from_slice(row)
}

/// `row`, written by the previous version, in today's form; `None` when
/// today's form is the same. Only a named app's identity changed (its
/// developer is escaped), which the row's owner helps read.
pub(super) fn upgrade(row: &[u8]) -> serde_json::Result<Option<Vec<u8>>> {
    let mut credential = decode(row)?;
    let app = credential.app.upgraded(&credential.owner);
    if app == credential.app {
        return Ok(None);
    }
    credential.app = app;
    encode(&credential).map(Some)
}

/// Rows exactly as the previous version wrote them: (id, row).
#[cfg(test)]
pub(super) fn previous_rows() -> Vec<(&'static str, &'static str)> {
    include_str!("../../../tests/fixtures/previous-store-rows.tsv")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split_once('\t').expect("id, tab, row"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;

    #[test]
    fn previous_rows_decode_and_encode_back_byte_for_byte() {
        for (id, row) in previous_rows() {
            let credential = decode(row.as_bytes()).unwrap();
            assert_eq!(credential.id, id);
            assert_eq!(
                String::from_utf8(encode(&credential).unwrap()).unwrap(),
                row
            );
        }
        let key = decode(previous_rows()[0].1.as_bytes()).unwrap();
        assert_eq!(
            key.secret,
            Secret::ApiKey {
                value: Redacted::new("kv-1".into())
            }
        );
        let client = decode(previous_rows()[1].1.as_bytes()).unwrap();
        assert_eq!(client.custom["apiKey"].expose(), "kv-2");
    }

    #[test]
    fn only_rows_of_named_apps_with_an_escaped_developer_change_form() {
        let upgraded: Vec<(&str, Option<String>)> = previous_rows()
            .into_iter()
            .map(|(id, row)| {
                let app = upgrade(row.as_bytes())
                    .unwrap()
                    .map(|row| decode(&row).unwrap().app.as_str().to_string());
                (id, app)
            })
            .collect();
        assert_eq!(
            upgraded,
            [
                ("key1", None),
                ("client1", None),
                ("key3", Some("appx:a%2Fb@corp.com/Billing".into())),
                ("key4", Some("appx:a%25b@corp.com/x/y".into())),
                ("key5", Some("appx:old@b.c%2Fx/y".into())),
                ("key6", None),
            ]
        );
    }
}
