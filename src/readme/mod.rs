//! Front door 1: ReadMe Personalized Docs. ReadMe POSTs a signed
//! `{"email": ...}` at every docs login and merges our JSON answer into the
//! docs, so the reader's own credentials fill the "Try It" console.

pub mod answer;
pub mod policy;
pub mod settings;
pub mod signature;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use crate::budget::Budget;
use crate::clock::Clock;
use crate::credentials::{
    lifecycle, AppId, Credential, CredentialKind, CredentialProvider, CredentialSpec, Email, Origin,
};
use crate::error::ApiError;
use crate::extract;
use crate::writes::Writes;
use policy::ProvisionPolicy;
use settings::ReadmeSettings;
use signature::{SignatureError, Verifier};

/// Label of the key keyhook provisions for a first-time reader.
pub const PROVISIONED_LABEL: &str = "Personal API key";

/// Borrowed from the body where it can be: the answer's copy is the one
/// allocation a login's address needs.
#[derive(Deserialize)]
struct LoginRequest<'a> {
    #[serde(borrow)]
    email: std::borrow::Cow<'a, str>,
}

/// Everything a login needs; built once from configuration.
pub struct ReadmeDoor {
    verifier: Option<Verifier>,
    provision: bool,
    /// A provisioned key's lifetime, if it has one.
    provision_ttl_ms: Option<u64>,
    /// Who may be given a key, on which plan.
    policy: ProvisionPolicy,
    extra_fields: serde_json::Map<String, Value>,
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    /// How many keys may still be provisioned.
    budget: Arc<Budget>,
    /// Where a first login's provisioning runs: to its end, even when
    /// ReadMe hangs up.
    writes: Writes,
}

impl ReadmeDoor {
    pub fn new(
        config: &ReadmeSettings,
        provider: Arc<dyn CredentialProvider>,
        clock: Clock,
        writes: Writes,
        budget: Arc<Budget>,
    ) -> Self {
        ReadmeDoor {
            budget,
            verifier: (!config.secret.is_empty())
                .then(|| Verifier::new(config.secret.clone(), config.tolerance_secs)),
            provision: config.provision,
            provision_ttl_ms: config.provision_ttl_secs.map(|s| s.saturating_mul(1000)),
            // Checked when the configuration was loaded.
            policy: config.policy().unwrap_or_default(),
            extra_fields: config.response.clone(),
            provider,
            clock,
            writes,
        }
    }

    /// Answers a verified login with the reader's credentials, as JSON.
    pub async fn login(&self, login: SignedLogin) -> Result<Vec<u8>, ApiError> {
        let SignedLogin {
            email,
            as_sent,
            verified_at_ms,
        } = login;
        // The clock read once per login: when its signature was checked.
        let now = u64::try_from(verified_at_ms).unwrap_or_default();
        // A reader the policy would give a key: the backend may leave a
        // miss's look-up to the create (fewer AWS calls at a first login).
        let provisioning = self.provision && self.policy.admits(&email);
        let found = match provisioning {
            true => self.provider.find_to_provision(&email).await?,
            false => self.provider.find_by_owner(&email).await?,
        };
        let mut credentials = lifecycle::shown_at(found, now);
        if credentials.is_empty() {
            if !self.provision {
                return Err(no_credentials());
            }
            if !provisioning {
                refused(&email, "domain");
                return Err(no_credentials());
            }
            credentials = self.provision_key(email.clone(), now).await?;
        }
        let shown = as_sent.as_deref().unwrap_or(email.as_str());
        let answer = answer::build(shown, &credentials, &self.extra_fields);
        // Room for the usual answer (one or two keys), which would outgrow
        // serde_json's first 128 bytes.
        let mut json = Vec::with_capacity(256);
        serde_json::to_writer(&mut json, &answer).map_err(|_| ApiError::Internal)?;
        Ok(json)
    }

    /// A first login the policy admits: the reader's new key (and what
    /// else the create found of theirs, made elsewhere since the index
    /// last looked), within the budget; refused, what a look-up finds.
    async fn provision_key(
        &self,
        reader: Email,
        now: u64,
    ) -> Result<Vec<Arc<Credential>>, ApiError> {
        let plan = self.policy.plan_for(&reader).map(str::to_string);
        let spec = CredentialSpec {
            kind: CredentialKind::ApiKey,
            app: AppId::readme_reader(&reader),
            owner: reader.clone(),
            label: PROVISIONED_LABEL.to_string(),
            origin: Origin::Readme,
            api_ids: Vec::new(),
            usage_plans: plan.into_iter().collect(),
            expires_at_ms: self.provision_ttl_ms.map(|ttl| now.saturating_add(ttl)),
        };
        let _reserved = match self.budget.admit(&*self.provider, &spec) {
            Ok(reserved) => reserved,
            Err(refusal) => {
                // Nothing is made: the look-up left to the create, so a
                // key made elsewhere since the index last looked is still
                // answered.
                let found = lifecycle::shown_at(self.provider.find_by_owner(&reader).await?, now);
                return match found.is_empty() {
                    true => Err(refusal.into()),
                    false => Ok(found),
                };
            }
        };
        // The backend may refuse at a limit it keeps across replicas (the
        // AWS key ceiling): recorded and answered as the budget's refusal.
        let created = self.writes.create(Arc::clone(&self.provider), spec.clone());
        let credential = self.budget.recorded(&spec, created.await)?;
        // A failure there is no reason to fail a login that has its key.
        let held = self.provider.find_to_provision(&reader).await;
        let mut credentials = lifecycle::shown_at(held.unwrap_or_default(), now);
        if !credentials.iter().any(|c| c.id == credential.id) {
            credentials.push(Arc::new(credential));
        }
        Ok(credentials)
    }
}

/// The answer for a reader who has no credential and gets none: what
/// ReadMe's own samples answer.
fn no_credentials() -> ApiError {
    ApiError::NotFound("no credentials are issued to this reader".into())
}

/// A first login the provisioning policy refused a key: counted by reason,
/// and an audit event naming the reader.
fn refused(reader: &Email, reason: &'static str) {
    crate::metrics::provision_refused(reason);
    tracing::info!(
        target: crate::credentials::AUDIT_TARGET,
        action = "provision_refused",
        requested_by = "readme",
        owner = %reader,
        reason,
        "credential provision_refused"
    );
}

/// A login ReadMe signed: the reader's address, verified and parsed. Only
/// the extractor makes one, so holding one means the signature was checked.
#[derive(Debug)]
pub struct SignedLogin {
    /// The address the credentials belong to.
    email: Email,
    /// The address as ReadMe sent it (trimmed), which the answer repeats,
    /// where it differs from `email` (in the case of its letters).
    as_sent: Option<String>,
    /// When the signature was checked, on the door's clock.
    verified_at_ms: i64,
}

/// Checked in this order: body size (413), a configured secret (503), the
/// signature over the raw bytes (401, before any parsing), content type
/// (415), JSON (400/422), the address (422).
impl FromRequest<Arc<ReadmeDoor>> for SignedLogin {
    type Rejection = ApiError;

    async fn from_request(request: Request, door: &Arc<ReadmeDoor>) -> Result<Self, ApiError> {
        let (headers, body) = extract::headers_and_body(request).await?;
        let verifier = door.verifier.as_ref().ok_or(ApiError::NotConfigured(
            "the ReadMe webhook secret is not configured (KEYHOOK_README_SECRET)",
        ))?;
        let verified_at_ms = (door.clock)();
        signature_header(&headers)
            .and_then(|header| verifier.verify(header, &body, verified_at_ms))
            .inspect_err(|e| crate::metrics::signature_failure(e.reason()))?;

        extract::require_json(&headers)?;
        let request: LoginRequest = extract::json(&body)?;
        let email = Email::parse(&request.email)
            .map_err(|e| ApiError::Unprocessable(format!("invalid email: {e}")))?;
        let as_sent = crate::text::trim(&request.email);
        Ok(SignedLogin {
            as_sent: (as_sent != email.as_str()).then(|| as_sent.to_string()),
            email,
            verified_at_ms,
        })
    }
}

/// A bad signature is a 401 with the official SDKs' wording, and no Basic
/// challenge: ReadMe has no credentials to offer.
impl From<SignatureError> for ApiError {
    fn from(err: SignatureError) -> Self {
        ApiError::Unauthorized {
            message: err.message(),
            challenge: None,
        }
    }
}

/// Looked up as a `HeaderName`: a name given as text is parsed again at
/// every look-up.
const SIGNATURE: HeaderName = HeaderName::from_static(signature::HEADER);

/// The `ReadMe-Signature` header (any case). Several headers of that name:
/// none of them is taken as the signature rather than guess which one
/// ReadMe meant.
fn signature_header(headers: &HeaderMap) -> Result<Option<&str>, SignatureError> {
    let mut values = headers.get_all(&SIGNATURE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| SignatureError::Invalid),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(SignatureError::Invalid),
    }
}

async fn webhook(
    State(door): State<Arc<ReadmeDoor>>,
    login: SignedLogin,
) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::from(door.login(login).await?));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

pub fn router(door: Arc<ReadmeDoor>) -> Router {
    Router::new()
        .route("/readme/webhook", post(webhook))
        .with_state(door)
}
