//! OAuth client credentials as Amazon Cognito user-pool app clients.
//!
//! App clients carry no tags or description, so a client records what it is
//! in its name (`[\w\s+=,.@-]{1,128}`):
//!
//! ```text
//! kh.<app hash>.<label>.<owner>      e.g. kh.1f3a9c0e2b7d4a55.Billing=20app.dev@corp.com
//! ```
//!
//! `<app hash>` is the app identity (as in [`super::app_key`]); `<label>` and
//! `<owner>` are written with every byte outside `[A-Za-z0-9_+,@-]` (and
//! `.` in the label) as `=XX`, so the first two dots split the name
//! unambiguously. The label is shortened to fit 128 characters; an owner
//! whose escaped address does not fit cannot have a client. The lifecycle
//! fields (an end date, the client a rotation's successor replaces) follow
//! after a space, which the escaping never produces (`lineage::NameFields`):
//! names without one parse as before.
//!
//! The owner index learns clients with `ListUserPoolClients` (60 a page,
//! names only) and one `DescribeUserPoolClient` for each client it has not
//! seen before, which is the only call that returns the secret a ReadMe login
//! must show. A steady-state refresh therefore costs ceil(N/60) list calls.

use std::collections::BTreeMap;

use aws_sdk_cognitoidentityprovider::types::{OAuthFlowType, UserPoolClientType};
use aws_sdk_cognitoidentityprovider::Client;

use super::call::{epoch_ms, Aws};
use super::lineage::NameFields;
use super::settings::AwsSettings;
use super::{app_key, AppKey};
use crate::credentials::{
    AppId, Credential, CredentialError, CredentialSpec, Email, Origin, Result, Secret,
};
use crate::secret::Redacted;

const PREFIX: &str = "kh";
const MAX_NAME: usize = 128;
/// `ListUserPoolClients` returns at most 60 clients a page.
const PAGE: i32 = 60;

fn escape(text: &str, keep_dot: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'_' | b'+' | b',' | b'@' | b'-')
            || (keep_dot && byte == b'.');
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The client name for `spec`.
pub fn client_name(app: &AppKey, label: &str, owner: &Email) -> Result<String> {
    client_name_with(app, label, owner, &NameFields::default())
}

/// The client name for `spec` with its lifecycle `fields`.
pub fn client_name_with(
    app: &AppKey,
    label: &str,
    owner: &Email,
    fields: &NameFields,
) -> Result<String> {
    let owner = escape(owner.as_str(), true);
    let head = format!("{PREFIX}.{}.", app.hash());
    let tail = fields.encode();
    let room = MAX_NAME
        .checked_sub(head.len() + 1 + owner.len() + tail.len())
        .ok_or_else(|| {
            CredentialError::Invalid(
                "the developer's email is too long to name a Cognito app client".into(),
            )
        })?;
    // Shorten the label on a character boundary, never inside an escape.
    let mut escaped_label = String::new();
    for ch in label.chars() {
        let piece = escape(ch.encode_utf8(&mut [0; 4]), false);
        if escaped_label.len() + piece.len() > room {
            break;
        }
        escaped_label.push_str(&piece);
    }
    Ok(format!("{head}{escaped_label}.{owner}{tail}"))
}

/// The lifecycle fields of a client name (none for names without them).
pub(crate) fn name_fields(name: &str) -> NameFields {
    name.split_once(' ')
        .map(|(_, rest)| NameFields::parse(rest))
        .unwrap_or_default()
}

/// What a client name says: the app, the label and the owner; `None` for
/// clients keyhook did not make.
pub(crate) fn parse_client_name(name: &str) -> Option<(AppId, String, Email)> {
    let name = name.split_once(' ').map_or(name, |(head, _)| head);
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('.')?;
    let (hash, rest) = rest.split_once('.')?;
    let (label, owner) = rest.split_once('.')?;
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let owner = Email::from_stored(&unescape(owner)?).ok()?;
    Some((AppKey::from_hash(hash).app_id(), unescape(label)?, owner))
}

pub(crate) struct AppClients {
    client: Client,
    pool: String,
    token_endpoint: Option<String>,
    default_scopes: Vec<String>,
    api_scopes: BTreeMap<String, Vec<String>>,
}

impl AppClients {
    pub(crate) fn new(client: Client, pool: String, config: &AwsSettings) -> Self {
        AppClients {
            client,
            pool,
            token_endpoint: config
                .cognito_domain
                .as_ref()
                .map(|d| format!("{d}/oauth2/token")),
            default_scopes: config.cognito_scopes.clone(),
            api_scopes: config.api_scopes.clone(),
        }
    }

    pub(crate) fn pool(&self) -> &str {
        &self.pool
    }

    /// The SDK client, for the audit's own read-only calls (`audit.rs`).
    pub(crate) fn sdk(&self) -> &Client {
        &self.client
    }

    /// The scopes an app gets: the defaults, plus those of each of its APIs.
    pub(crate) fn scopes_for(&self, spec: &CredentialSpec) -> Vec<String> {
        let mut scopes = self.default_scopes.clone();
        for api in &spec.api_ids {
            for scope in self.api_scopes.get(api).into_iter().flatten() {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        scopes
    }

    fn credential(&self, client: &UserPoolClientType) -> Option<Credential> {
        let (app, label, owner) = parse_client_name(client.client_name()?)?;
        let fields = name_fields(client.client_name()?);
        let scopes: Vec<String> = client.allowed_o_auth_scopes().to_vec();
        let mut custom = BTreeMap::new();
        if let Some(endpoint) = &self.token_endpoint {
            custom.insert("tokenEndpoint".to_string(), Redacted::new(endpoint.clone()));
        }
        if !scopes.is_empty() {
            custom.insert("scopes".to_string(), Redacted::new(scopes.join(" ")));
        }
        Some(Credential {
            id: client.client_id()?.to_string(),
            owner,
            app,
            label,
            origin: Origin::Sensedia,
            secret: Secret::ClientCredentials {
                client_secret: Redacted::new(client.client_secret()?.to_string()),
                scopes,
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom,
            created_at_ms: epoch_ms(client.creation_date()),
            expires_at_ms: fields.expires,
            replaces: fields.replaces,
        })
    }

    /// Ids and names of every app client in the pool.
    pub(crate) async fn list(&self, aws: &Aws) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .client
                .list_user_pool_clients()
                .user_pool_id(&self.pool)
                .max_results(PAGE)
                .set_next_token(token.clone());
            let page = aws.call("ListUserPoolClients", request.send()).await?;
            out.extend(
                page.user_pool_clients().iter().filter_map(|c| {
                    Some((c.client_id()?.to_string(), c.client_name()?.to_string()))
                }),
            );
            match page.next_token() {
                Some(next) if !next.is_empty() && Some(next) != token.as_deref() => {
                    token = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// One client, with its secret; `None` if it is gone or not keyhook's.
    pub(crate) async fn describe(&self, aws: &Aws, client_id: &str) -> Result<Option<Credential>> {
        aws.limiter.acquire().await;
        self.describe_prepaid(aws, client_id).await
    }

    /// As `describe`, with the lifecycle fields of its name.
    pub(crate) async fn describe_fields(
        &self,
        aws: &Aws,
        client_id: &str,
    ) -> Result<Option<(Credential, NameFields)>> {
        aws.limiter.acquire().await;
        Ok(self.described(aws, client_id).await?.and_then(|client| {
            let fields = name_fields(client.client_name()?);
            Some((self.credential(&client)?, fields))
        }))
    }

    /// As `describe`, for a caller that already took the call's token.
    pub(crate) async fn describe_prepaid(
        &self,
        aws: &Aws,
        client_id: &str,
    ) -> Result<Option<Credential>> {
        Ok(self
            .described(aws, client_id)
            .await?
            .and_then(|client| self.credential(&client)))
    }

    /// `DescribeUserPoolClient` (its token already taken): the client, if
    /// it exists.
    async fn described(&self, aws: &Aws, client_id: &str) -> Result<Option<UserPoolClientType>> {
        let request = self
            .client
            .describe_user_pool_client()
            .user_pool_id(&self.pool)
            .client_id(client_id);
        Ok(aws
            .run_opt("DescribeUserPoolClient", request.send())
            .await?
            .and_then(|out| out.user_pool_client().cloned()))
    }

    pub(crate) async fn create(&self, aws: &Aws, spec: &CredentialSpec) -> Result<Credential> {
        let fields = NameFields {
            expires: spec.expires_at_ms,
            ..NameFields::default()
        };
        let name = client_name_with(&app_key(&spec.app), &spec.label, &spec.owner, &fields)?;
        Box::pin(self.create_named(aws, name, self.scopes_for(spec))).await
    }

    /// A new client named `name` with `scopes` (a rotation's successor has
    /// its predecessor's).
    pub(crate) async fn create_named(
        &self,
        aws: &Aws,
        name: String,
        scopes: Vec<String>,
    ) -> Result<Credential> {
        let request = self
            .client
            .create_user_pool_client()
            .user_pool_id(&self.pool)
            .client_name(name)
            .generate_secret(true)
            .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
            .allowed_o_auth_flows_user_pool_client(true)
            .set_allowed_o_auth_scopes(Some(scopes));
        let out = aws.call("CreateUserPoolClient", request.send()).await?;
        out.user_pool_client()
            .and_then(|c| self.credential(c))
            .ok_or(CredentialError::Backend {
                operation: "CreateUserPoolClient",
                detail: "the answer carried no usable client".into(),
            })
    }

    /// Re-syncs name and scopes. `UpdateUserPoolClient` resets every field
    /// it is not given, so it is given everything `create` set.
    /// `fields`: the lifecycle fields the name keeps.
    pub(crate) async fn update(
        &self,
        aws: &Aws,
        client_id: &str,
        (app, fields): (&AppKey, &NameFields),
        spec: &CredentialSpec,
    ) -> Result<bool> {
        let name = client_name_with(app, &spec.label, &spec.owner, fields)?;
        Box::pin(self.rename(aws, client_id, name, self.scopes_for(spec))).await
    }

    /// Renames a client, keeping `scopes` (`UpdateUserPoolClient` resets
    /// what it is not given).
    pub(crate) async fn rename(
        &self,
        aws: &Aws,
        client_id: &str,
        name: String,
        scopes: Vec<String>,
    ) -> Result<bool> {
        let request = self
            .client
            .update_user_pool_client()
            .user_pool_id(&self.pool)
            .client_id(client_id)
            .client_name(name)
            .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
            .allowed_o_auth_flows_user_pool_client(true)
            .set_allowed_o_auth_scopes(Some(scopes));
        Ok(aws
            .call_opt("UpdateUserPoolClient", request.send())
            .await?
            .is_some())
    }

    /// `false` if the client was already gone.
    pub(crate) async fn delete(&self, aws: &Aws, client_id: &str) -> Result<bool> {
        let request = self
            .client
            .delete_user_pool_client()
            .user_pool_id(&self.pool)
            .client_id(client_id);
        Ok(aws
            .call_opt("DeleteUserPoolClient", request.send())
            .await?
            .is_some())
    }

    /// Whether the pool exists (and we may read it).
    pub(crate) async fn pool_exists(&self, aws: &Aws) -> Result<bool> {
        let request = self.client.describe_user_pool().user_pool_id(&self.pool);
        Ok(aws
            .call_opt("DescribeUserPool", request.send())
            .await?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn allowed(name: &str) -> bool {
        name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_ +=,.@-".contains(&b))
    }

    #[test]
    fn names_round_trip() {
        let app = app_key(&AppId::sensedia_slug("590d83b5c05f"));
        for (label, owner) in [
            ("my new aws app", "dev@corp.com"),
            ("Billing v2.1 (beta)!", "first.last+tag@sub.corp.com"),
            ("Zürich ✓", "jöhn@example.com"),
            ("", "a@b.c"),
            ("a=b.c", "x=y@z.io"),
        ] {
            let name = client_name(&app, label, &email(owner)).unwrap();
            assert!(allowed(&name), "{name}");
            let (parsed_app, parsed_label, parsed_owner) = parse_client_name(&name).unwrap();
            assert_eq!(parsed_app, app.app_id());
            assert_eq!(parsed_label, label);
            assert_eq!(parsed_owner, email(owner));
        }
    }

    #[test]
    fn long_labels_are_shortened_and_long_owners_refused() {
        let app = app_key(&AppId::sensedia_slug("s"));
        let name = client_name(&app, &"é".repeat(200), &email("dev@corp.com")).unwrap();
        assert!(allowed(&name), "{name}");
        let (_, label, owner) = parse_client_name(&name).unwrap();
        assert!(label.starts_with("éé") && label.chars().all(|c| c == 'é'));
        assert_eq!(owner, email("dev@corp.com"));
        let long = format!("{}@corp.com", "a".repeat(120));
        assert!(client_name(&app, "x", &email(&long)).is_err());
    }

    #[test]
    fn lifecycle_fields_follow_a_space_and_old_names_parse_as_before() {
        let app = app_key(&AppId::sensedia_slug("s"));
        let fields = NameFields {
            expires: Some(1_765_274_400_000),
            replaces: Some("3n4b5urk1ft4fl3mg5e62d9ado".into()),
            until: Some(1_765_274_500_000),
        };
        let long = "é".repeat(200);
        for label in ["Billing v2", long.as_str()] {
            let name = client_name_with(&app, label, &email("dev@corp.com"), &fields).unwrap();
            assert!(allowed(&name), "{name}");
            let (parsed_app, parsed_label, owner) = parse_client_name(&name).unwrap();
            assert_eq!(parsed_app, app.app_id());
            assert!(label.starts_with(&parsed_label) && !parsed_label.is_empty());
            assert_eq!(owner, email("dev@corp.com"));
            assert_eq!(name_fields(&name), fields);
        }
        let old = client_name(&app, "a b", &email("dev@corp.com")).unwrap();
        assert!(!old.contains(' '));
        assert_eq!(name_fields(&old), NameFields::default());
        assert_eq!(parse_client_name(&old).unwrap().1, "a b");
    }

    #[test]
    fn foreign_clients_are_not_ours() {
        for name in [
            "web-app",
            "kh.",
            "kh.zz.x.a@b.c",
            "kh.12ab.label",
            "kh.12ab.l.=ZZ@b.c",
        ] {
            assert!(parse_client_name(name).is_none(), "{name}");
        }
    }
}
