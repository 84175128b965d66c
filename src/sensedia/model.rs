//! The Sensedia wire types (`CreateCredentialsRequest` and friends) and their
//! translation into the credential model. Unknown fields are ignored: the
//! portal's spec has grown before. What the portal sent is checked once, into
//! an [`App`] or a [`CredentialRef`]; a refusal is an [`InvalidRequest`].
//!
//! (Past 400 lines only with its unit and property tests, kept beside the
//! decoding they pin down.)

use std::collections::{BTreeMap, HashSet};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::credentials::{
    AppId, Claim, Credential, CredentialKind, CredentialRef, CredentialSpec, Email, InvalidEmail,
    Origin, Secret,
};

const MAX_APP_NAME: usize = 256;
const MAX_ID_LEN: usize = 128;
// The published schema's `maxItems`, and only those: a bound the schema
// cannot state (say, on distinct plans across the app's APIs) would refuse
// requests it calls valid. AWS's own quotas (usage plans per key and per
// region) are answered by AWS.
const MAX_APIS: usize = 100;
const MAX_PLANS: usize = 100;

#[derive(Debug, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRef {
    pub id: String,
    #[serde(default)]
    pub usage_plans: Vec<IdRef>,
}

/// The app as the portal describes it in every request. A revoke reads
/// its `apis` as [`IgnoredAny`]: the published schema accepts and ignores
/// them there, whatever their shape.
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "Apis: Deserialize<'de> + Default")
)]
pub struct AppFields<Apis = Vec<ApiRef>> {
    pub app_name: Option<String>,
    pub app_slug: Option<String>,
    pub developer: Option<String>,
    #[serde(default)]
    pub apis: Apis,
}

/// The credential as the portal stored it (update and revoke carry it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialFields {
    pub credential_type: Option<String>,
    pub api_key_id: Option<String>,
    pub client_id: Option<String>,
    /// Accepted and ignored: keyhook keeps what it issued.
    #[serde(default)]
    pub custom_credentials: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct CreateCredentialsRequest {
    #[serde(flatten)]
    pub app: AppFields,
}

/// Update and revoke share one shape: the app, plus the credential.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "Apis: Deserialize<'de> + Default"))]
pub struct CredentialRequest<Apis = Vec<ApiRef>> {
    #[serde(flatten)]
    pub app: AppFields<Apis>,
    #[serde(flatten)]
    pub credential: CredentialFields,
}

/// A revoke: a [`CredentialRequest`] whose `apis` are not read.
pub type RevokeRequest = CredentialRequest<IgnoredAny>;

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateCredentialsResponse {
    pub credential_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_credentials: BTreeMap<String, String>,
}

impl From<&Credential> for CreateCredentialsResponse {
    fn from(credential: &Credential) -> Self {
        let custom_credentials = credential
            .custom
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().clone()))
            .collect();
        match &credential.secret {
            Secret::ApiKey { value } => CreateCredentialsResponse {
                credential_type: wire_kind(CredentialKind::ApiKey),
                api_key_id: Some(credential.id.clone()),
                api_key: Some(value.expose().clone()),
                client_id: None,
                client_secret: None,
                custom_credentials,
            },
            Secret::ClientCredentials { client_secret, .. } => CreateCredentialsResponse {
                credential_type: wire_kind(CredentialKind::ClientCredentials),
                api_key_id: None,
                api_key: None,
                client_id: Some(credential.id.clone()),
                client_secret: Some(client_secret.expose().clone()),
                custom_credentials,
            },
        }
    }
}

pub fn wire_kind(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ApiKey => "API_KEY",
        CredentialKind::ClientCredentials => "CLIENT_CREDENTIALS",
    }
}

/// Why a request's fields were refused (the door answers 422 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("developer: {0}")]
    Developer(#[source] InvalidEmail),
    #[error("appName must be at most {MAX_APP_NAME} characters, without control characters")]
    AppName,
    #[error("{0} must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'")]
    Id(&'static str),
    #[error("at most {MAX_APIS} apis per app")]
    TooManyApis,
    #[error("at most {MAX_PLANS} usage plans per api")]
    TooManyPlans,
    #[error("credentialType must be API_KEY or CLIENT_CREDENTIALS")]
    CredentialType,
    #[error("name the credential: apiKeyId or clientId, appSlug, or developer and appName")]
    NoTarget,
}

fn parse_wire_kind(raw: &str) -> Result<CredentialKind, InvalidRequest> {
    match raw {
        "API_KEY" => Ok(CredentialKind::ApiKey),
        "CLIENT_CREDENTIALS" => Ok(CredentialKind::ClientCredentials),
        _ => Err(InvalidRequest::CredentialType),
    }
}

/// AWS ids (REST APIs, usage plans, keys, app clients) are short and plain;
/// anything else is refused before it reaches a backend.
fn check_id(field: &'static str, id: &str) -> Result<String, InvalidRequest> {
    let id = id.trim();
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidRequest::Id(field));
    }
    Ok(id.to_string())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// An app as the portal described it, checked: everything its credential
/// needs but the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub owner: Email,
    /// The app's name, the credential's label.
    pub label: String,
    pub identity: AppId,
    pub api_ids: Vec<String>,
    pub plans: Vec<String>,
}

impl App {
    /// The credential of this kind the app should have.
    pub fn spec(self, kind: CredentialKind) -> CredentialSpec {
        CredentialSpec {
            kind,
            owner: self.owner,
            app: self.identity,
            label: self.label,
            origin: Origin::Sensedia,
            api_ids: self.api_ids,
            usage_plans: self.plans,
            expires_at_ms: None,
        }
    }
}

/// Checks the fields in the order the portal's mistakes are reported:
/// developer, appName, appSlug, apis.
impl TryFrom<&AppFields> for App {
    type Error = InvalidRequest;

    fn try_from(fields: &AppFields) -> Result<Self, InvalidRequest> {
        let owner = fields.developer()?;
        let label = fields.app_name()?.to_string();
        let identity = match fields.slug()? {
            Some(slug) => slug,
            None => AppId::sensedia_named(&owner, &label),
        };
        let (api_ids, plans) = fields.api_ids_and_plans()?;
        Ok(App {
            owner,
            label,
            identity,
            api_ids,
            plans,
        })
    }
}

impl<Apis> AppFields<Apis> {
    fn developer(&self) -> Result<Email, InvalidRequest> {
        let raw = non_empty(&self.developer).ok_or(InvalidRequest::Missing("developer"))?;
        Email::parse(raw).map_err(InvalidRequest::Developer)
    }

    fn app_name(&self) -> Result<&str, InvalidRequest> {
        let name = non_empty(&self.app_name).ok_or(InvalidRequest::Missing("appName"))?;
        if name.chars().count() > MAX_APP_NAME || name.chars().any(char::is_control) {
            return Err(InvalidRequest::AppName);
        }
        Ok(name)
    }

    fn slug(&self) -> Result<Option<AppId>, InvalidRequest> {
        non_empty(&self.app_slug)
            .map(|slug| Ok(AppId::sensedia_slug(&check_id("appSlug", slug)?)))
            .transpose()
    }

    /// The developer and app name, when both are given: an address and a
    /// name, checked even beside a slug (as the published schema has it).
    fn named(&self) -> Result<Option<(Email, &str)>, InvalidRequest> {
        match (non_empty(&self.developer), non_empty(&self.app_name)) {
            (Some(_), Some(_)) => Ok(Some((self.developer()?, self.app_name()?))),
            _ => Ok(None),
        }
    }

    /// The app's identity, when the fields name one: its slug, or its
    /// developer and name.
    fn identity(&self) -> Result<Option<AppId>, InvalidRequest> {
        let slug = self.slug()?;
        let named = self.named()?;
        Ok(slug.or_else(|| named.map(|(developer, name)| AppId::sensedia_named(&developer, name))))
    }

    /// The app a request naming a credential by id speaks for: its slug,
    /// else its developer and name, else none (see [`Claim`]).
    fn claim(&self) -> Result<Claim, InvalidRequest> {
        let slug = self.slug()?;
        Ok(match (slug, self.named()?) {
            (Some(slug), _) => Claim::App(slug),
            (None, Some((developer, name))) => {
                Claim::Named(AppId::sensedia_named(&developer, name), developer)
            }
            (None, None) => Claim::None,
        })
    }
}

impl AppFields {
    fn api_ids_and_plans(&self) -> Result<(Vec<String>, Vec<String>), InvalidRequest> {
        if self.apis.len() > MAX_APIS {
            return Err(InvalidRequest::TooManyApis);
        }
        // Each distinct id once, in the order the portal listed them; the
        // sets keep a 100-by-100 request linear.
        let (mut api_ids, mut plans) = (Vec::new(), Vec::new());
        let (mut seen_apis, mut seen_plans) = (HashSet::new(), HashSet::new());
        for api in &self.apis {
            if api.usage_plans.len() > MAX_PLANS {
                return Err(InvalidRequest::TooManyPlans);
            }
            let id = check_id("apis[].id", &api.id)?;
            if seen_apis.insert(id.clone()) {
                api_ids.push(id);
            }
            for plan in &api.usage_plans {
                let plan = check_id("apis[].usagePlans[].id", &plan.id)?;
                if seen_plans.insert(plan.clone()) {
                    plans.push(plan);
                }
            }
        }
        Ok((api_ids, plans))
    }
}

impl<Apis> CredentialRequest<Apis> {
    /// Which kind the request speaks of: its `credentialType`, else the kind
    /// its id implies, else the configured default.
    pub fn kind(&self, default: CredentialKind) -> Result<CredentialKind, InvalidRequest> {
        let fields = &self.credential;
        if let Some(raw) = non_empty(&fields.credential_type) {
            return parse_wire_kind(raw);
        }
        Ok(
            match (non_empty(&fields.api_key_id), non_empty(&fields.client_id)) {
                (Some(_), None) => CredentialKind::ApiKey,
                (None, Some(_)) => CredentialKind::ClientCredentials,
                _ => default,
            },
        )
    }

    /// Names the credential: by the id the portal stored, else by the app.
    pub fn target(&self, default: CredentialKind) -> Result<CredentialRef, InvalidRequest> {
        let kind = self.kind(default)?;
        let id = match kind {
            CredentialKind::ApiKey => non_empty(&self.credential.api_key_id)
                .map(|id| check_id("apiKeyId", id))
                .transpose()?,
            CredentialKind::ClientCredentials => non_empty(&self.credential.client_id)
                .map(|id| check_id("clientId", id))
                .transpose()?,
        };
        if let Some(id) = id {
            return Ok(CredentialRef::Id(id, kind, self.app.claim()?));
        }
        match self.app.identity()? {
            Some(app) => Ok(CredentialRef::App(app, kind)),
            None => Err(InvalidRequest::NoTarget),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use serde_json::json;

    fn request(value: Value) -> CredentialRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn official_example_becomes_a_spec() {
        let req: CreateCredentialsRequest = serde_json::from_value(json!({
            "appName": "my new aws app",
            "appSlug": "590d83b5c05f",
            "developer": "Email@MyCompany.com",
            "apis": [
                {"id": "5aba4csvd4", "usagePlans": [{"id": "1el57v"}]},
                {"id": "6bcb5dtwe5", "usagePlans": [{"id": "1el57v"}, {"id": "2fm68w"}]}
            ],
            "somethingNew": {"ignored": true}
        }))
        .unwrap();
        let spec = App::try_from(&req.app)
            .unwrap()
            .spec(CredentialKind::ApiKey);
        assert_eq!(spec.owner.as_str(), "email@mycompany.com");
        assert_eq!(spec.app.as_str(), "slug:590d83b5c05f");
        assert_eq!(spec.label, "my new aws app");
        assert_eq!(spec.api_ids, ["5aba4csvd4", "6bcb5dtwe5"]);
        assert_eq!(spec.usage_plans, ["1el57v", "2fm68w"]);
    }

    #[test]
    fn identity_without_slug_is_developer_and_name() {
        let a = request(json!({"appName": "App", "developer": "D@x.io"}));
        let b = request(json!({"appName": " App ", "developer": "d@x.io", "appSlug": ""}));
        assert_eq!(a.app.identity().unwrap(), b.app.identity().unwrap());
        assert_eq!(
            a.app.identity().unwrap().unwrap().as_str(),
            "app:d@x.io/App"
        );
    }

    #[test]
    fn invalid_fields_are_refused() {
        for body in [
            json!({"appName": "", "developer": "d@x.io"}),
            json!({"appName": "a", "developer": "not-an-email"}),
            json!({"appName": "a"}),
            json!({"developer": "d@x.io"}),
            json!({"appName": "a\u{0}b", "developer": "d@x.io"}),
            json!({"appName": "x".repeat(300), "developer": "d@x.io"}),
            json!({"appName": "a", "developer": "d@x.io", "apis": [{"id": "../etc"}]}),
            json!({"appName": "a", "developer": "d@x.io", "apis": [{"id": "a", "usagePlans": [{"id": ""}]}]}),
            json!({"appName": "a", "developer": "d@x.io", "appSlug": "has space"}),
            // 101 entries of one plan: one distinct plan, but over the
            // schema's limit on the list itself.
            json!({"appName": "a", "developer": "d@x.io", "apis": [{"id": "a", "usagePlans": vec![json!({"id": "p1"}); 101]}]}),
        ] {
            let req = request(body.clone());
            assert!(
                matches!(
                    App::try_from(&req.app).map_err(ApiError::from),
                    Err(ApiError::Unprocessable(_))
                ),
                "{body}"
            );
        }
    }

    /// The schema bounds each list, not the distinct plans across lists:
    /// what it calls valid is accepted (schemathesis found the opposite,
    /// 101 distinct plans over two APIs refused with a 422).
    #[test]
    fn every_list_at_the_schema_limit_is_accepted() {
        let plans = |api: usize| -> Vec<Value> {
            (0..MAX_PLANS)
                .map(|i| json!({"id": format!("p{api}x{i}")}))
                .collect()
        };
        let apis: Vec<Value> = (0..MAX_APIS)
            .map(|a| json!({"id": format!("api{}", a % 7), "usagePlans": plans(a % 3)}))
            .collect();
        let req = request(json!({"appName": "a", "developer": "d@x.io", "apis": apis}));
        let app = App::try_from(&req.app).unwrap();
        assert_eq!(
            app.api_ids,
            (0..7).map(|a| format!("api{a}")).collect::<Vec<_>>()
        );
        let expected: Vec<String> = (0..3)
            .flat_map(|a| (0..MAX_PLANS).map(move |i| format!("p{a}x{i}")))
            .collect();
        assert_eq!(app.plans, expected, "each distinct plan once, in order");
    }

    /// A revoke ignores `apis` whatever its shape, as the published
    /// schema says; update still reads them.
    #[test]
    fn revoke_ignores_apis_of_any_shape() {
        for apis in [
            json!(null),
            json!(true),
            json!(0),
            json!("x"),
            json!({}),
            json!([0]),
            json!([{}]),
        ] {
            let body = json!({"appSlug": "s1", "apis": apis});
            let revoke: RevokeRequest = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(
                revoke.target(CredentialKind::ApiKey).unwrap(),
                CredentialRef::App(AppId::sensedia_slug("s1"), CredentialKind::ApiKey),
                "{body}"
            );
            assert!(serde_json::from_value::<CredentialRequest>(body).is_err());
        }
    }

    /// A developer given with an app name is an address, even beside the
    /// slug that names the app (the schema's `allOf`); alone, or with a
    /// blank name, it is not read.
    #[test]
    fn developer_and_name_are_checked_beside_a_slug() {
        for body in [
            json!({"appSlug": "s1", "developer": "not-an-email", "appName": "a"}),
            json!({"appSlug": "s1", "developer": "d@x.io", "appName": "a\u{0}b"}),
            json!({"appSlug": "s1", "apiKeyId": "k1", "developer": "not-an-email", "appName": "a"}),
        ] {
            let revoke: RevokeRequest = serde_json::from_value(body.clone()).unwrap();
            assert!(
                matches!(
                    revoke
                        .target(CredentialKind::ApiKey)
                        .map_err(ApiError::from),
                    Err(ApiError::Unprocessable(_))
                ),
                "{body}"
            );
        }
        for body in [
            json!({"appSlug": "s1", "developer": "not-an-email"}),
            json!({"appSlug": "s1", "developer": "not-an-email", "appName": " "}),
        ] {
            let revoke: RevokeRequest = serde_json::from_value(body.clone()).unwrap();
            assert!(revoke.target(CredentialKind::ApiKey).is_ok(), "{body}");
        }
    }

    #[test]
    fn targets() {
        let by_key = request(json!({"apiKeyId": "abc123defg", "appSlug": "s1"}));
        assert_eq!(
            by_key.target(CredentialKind::ClientCredentials).unwrap(),
            CredentialRef::Id(
                "abc123defg".into(),
                CredentialKind::ApiKey,
                Claim::App(AppId::sensedia_slug("s1"))
            )
        );
        let by_client = request(json!({"credentialType": "CLIENT_CREDENTIALS", "clientId": "c1"}));
        assert_eq!(
            by_client.target(CredentialKind::ApiKey).unwrap(),
            CredentialRef::Id("c1".into(), CredentialKind::ClientCredentials, Claim::None)
        );
        let by_name = request(json!({"clientId": "c1", "developer": "D@x.io", "appName": "A"}));
        let developer = Email::parse("d@x.io").unwrap();
        assert_eq!(
            by_name.target(CredentialKind::ApiKey).unwrap(),
            CredentialRef::Id(
                "c1".into(),
                CredentialKind::ClientCredentials,
                Claim::Named(AppId::sensedia_named(&developer, "A"), developer)
            )
        );
        let by_slug = request(json!({"appSlug": "s1"}));
        assert_eq!(
            by_slug.target(CredentialKind::ClientCredentials).unwrap(),
            CredentialRef::App(
                AppId::sensedia_slug("s1"),
                CredentialKind::ClientCredentials
            )
        );
        let nothing = request(json!({"appName": "only a name"}));
        assert!(nothing.target(CredentialKind::ApiKey).is_err());
        let bad_type = request(json!({"credentialType": "JWT", "appSlug": "s"}));
        assert!(bad_type.target(CredentialKind::ApiKey).is_err());
    }

    #[test]
    fn responses_have_the_wire_shape() {
        use crate::secret::Redacted;
        let mut custom = std::collections::BTreeMap::new();
        custom.insert("scopes".to_string(), Redacted::new("a b".to_string()));
        let credential = Credential {
            id: "client1".into(),
            owner: Email::parse("d@x.io").unwrap(),
            app: AppId::sensedia_slug("s"),
            label: "l".into(),
            origin: Origin::Sensedia,
            secret: Secret::ClientCredentials {
                client_secret: Redacted::new("sec".into()),
                scopes: vec![],
            },
            usage_plans: vec![],
            api_ids: vec![],
            custom,
            created_at_ms: 0,
            expires_at_ms: None,
            replaces: None,
        };
        assert_eq!(
            serde_json::to_value(CreateCredentialsResponse::from(&credential)).unwrap(),
            json!({
                "credentialType": "CLIENT_CREDENTIALS",
                "clientId": "client1",
                "clientSecret": "sec",
                "customCredentials": {"scopes": "a b"}
            })
        );
    }

    /// Whatever the portal (or anyone) sends, decoding and checking it never
    /// panics.
    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// JSON values shaped like the portal's requests, with wrong types mixed in.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)),
                "[ -~\\PC]{0,40}".prop_map(Value::from),
                "[a-z0-9._-]{1,12}@[a-z0-9.-]{1,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                let keys = prop_oneof![
                    Just("appName".to_string()),
                    Just("appSlug".to_string()),
                    Just("developer".to_string()),
                    Just("apis".to_string()),
                    Just("id".to_string()),
                    Just("usagePlans".to_string()),
                    Just("credentialType".to_string()),
                    Just("apiKeyId".to_string()),
                    Just("clientId".to_string()),
                    Just("customCredentials".to_string()),
                    "[a-zA-Z]{1,8}",
                ];
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::btree_map(keys, inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn request_decoders_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..512),
                text in any::<String>(),
                value in json_value(),
            ) {
                let json_text = value.to_string();
                for input in [bytes.as_slice(), text.as_bytes(), json_text.as_bytes()] {
                    if let Ok(request) = crate::extract::json::<CreateCredentialsRequest>(input) {
                        for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
                            let _ = App::try_from(&request.app).map(|app| app.spec(kind));
                        }
                    }
                    if let Ok(request) = crate::extract::json::<CredentialRequest>(input) {
                        for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
                            let _ = request.kind(kind);
                            let _ = request.target(kind);
                            let _ = App::try_from(&request.app).map(|app| app.spec(kind));
                        }
                    }
                    if let Ok(request) = crate::extract::json::<RevokeRequest>(input) {
                        for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
                            let _ = request.target(kind);
                        }
                    }
                }
            }
        }
    }
}
