//! Front door 1: ReadMe Personalized Docs. ReadMe POSTs a signed
//! `{"email": ...}` at every docs login and merges our JSON answer into the
//! docs, so the reader's own credentials fill the "Try It" console.

pub mod answer;
pub mod settings;
pub mod signature;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::credentials::{
    AppId, CredentialKind, CredentialProvider, CredentialSpec, Email, Origin,
};
use crate::error::ApiError;
use crate::extract;
use crate::telemetry::audit;
use settings::ReadmeSettings;
use signature::Verifier;

/// Label of the key keyhook provisions for a first-time reader.
pub const PROVISIONED_LABEL: &str = "Personal API key";

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
}

/// Everything a login needs; built once from configuration.
pub struct ReadmeDoor {
    verifier: Option<Verifier>,
    provision: bool,
    usage_plan_id: Option<String>,
    extra_fields: serde_json::Map<String, Value>,
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    body_limit: usize,
}

impl ReadmeDoor {
    pub fn new(
        config: &ReadmeSettings,
        provider: Arc<dyn CredentialProvider>,
        clock: Clock,
        body_limit: usize,
    ) -> Self {
        ReadmeDoor {
            verifier: (!config.secret.is_empty())
                .then(|| Verifier::new(config.secret.clone(), config.tolerance_secs)),
            provision: config.provision,
            usage_plan_id: config.usage_plan_id.clone(),
            extra_fields: config.response.clone(),
            provider,
            clock,
            body_limit,
        }
    }

    /// Verifies a login and answers with the reader's credentials.
    pub async fn login(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
        let verifier = self.verifier.as_ref().ok_or(ApiError::NotConfigured(
            "the ReadMe webhook secret is not configured (KEYHOOK_README_SECRET)",
        ))?;
        signature_header(headers)
            .and_then(|header| verifier.verify(header, body, (self.clock)()))
            .inspect_err(|e| crate::metrics::signature_failure(e.reason()))?;

        extract::require_json(headers)?;
        let request: LoginRequest = extract::json(body)?;
        let email = Email::parse(&request.email)
            .map_err(|e| ApiError::Unprocessable(format!("invalid email: {e}")))?;

        let mut credentials = self.provider.find_by_owner(&email).await?;
        if credentials.is_empty() {
            if !self.provision {
                return Err(ApiError::NotFound(
                    "no credentials are issued to this reader".into(),
                ));
            }
            let spec = CredentialSpec {
                kind: CredentialKind::ApiKey,
                app: AppId::readme_reader(&email),
                owner: email.clone(),
                label: PROVISIONED_LABEL.to_string(),
                origin: Origin::Readme,
                api_ids: Vec::new(),
                usage_plans: self.usage_plan_id.iter().cloned().collect(),
            };
            let (credential, created) = self.provider.create(&spec).await?;
            audit::created(Origin::Readme, &credential, created);
            credentials.push(credential);
        }
        Ok(answer::build(
            request.email.trim(),
            &credentials,
            &self.extra_fields,
        ))
    }
}

/// The `ReadMe-Signature` header (any case). Several headers of that name:
/// none of them is taken as the signature rather than guess which one
/// ReadMe meant.
fn signature_header(headers: &HeaderMap) -> Result<Option<&str>, signature::SignatureError> {
    let mut values = headers.get_all(signature::HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| signature::SignatureError::Invalid),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(signature::SignatureError::Invalid),
    }
}

async fn webhook(
    State(door): State<Arc<ReadmeDoor>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = extract::body(body, door.body_limit)?;
    door.login(&headers, &body).await.map(Json)
}

pub fn router(door: Arc<ReadmeDoor>) -> Router {
    Router::new()
        .route("/readme/webhook", post(webhook))
        .with_state(door)
}
