//! Front door 2: the Sensedia Developer Portal's credentials webhook. The
//! portal calls these routes, behind Basic auth, when a developer's AWS app
//! is approved, edited or cancelled.

pub mod auth;
pub mod model;
pub mod settings;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;

use crate::credentials::{CredentialKind, CredentialProvider, Origin};
use crate::error::ApiError;
use crate::extract;
use crate::telemetry::audit;
use auth::BasicAuth;
use model::{CreateCredentialsRequest, CreateCredentialsResponse, CredentialRequest};

pub struct SensediaDoor {
    provider: Arc<dyn CredentialProvider>,
    /// What `createCredentials` issues (`KEYHOOK_SENSEDIA_CREDENTIAL_TYPE`).
    kind: CredentialKind,
    body_limit: usize,
}

impl SensediaDoor {
    pub fn new(
        provider: Arc<dyn CredentialProvider>,
        kind: CredentialKind,
        body_limit: usize,
    ) -> Self {
        SensediaDoor {
            provider,
            kind,
            body_limit,
        }
    }

    /// Issues the app's credential, or hands back the one already issued to
    /// it: the portal may retry.
    pub async fn create(
        &self,
        request: CreateCredentialsRequest,
    ) -> Result<CreateCredentialsResponse, ApiError> {
        let spec = request.app.spec(self.kind)?;
        let (credential, created) = self.provider.create(&spec).await?;
        audit::created(Origin::Sensedia, &credential, created);
        Ok(CreateCredentialsResponse::from(&credential))
    }

    /// Re-syncs the credential with the app as it is now.
    pub async fn update(&self, request: CredentialRequest) -> Result<(), ApiError> {
        let target = request.target(self.kind)?;
        let spec = request.app.spec(request.kind(self.kind)?)?;
        let credential = self.provider.update(&target, &spec).await?;
        audit::updated(Origin::Sensedia, &credential);
        Ok(())
    }

    /// Makes the credential unusable; an unknown one is already gone.
    pub async fn revoke(&self, request: CredentialRequest) -> Result<(), ApiError> {
        let target = request.target(self.kind)?;
        let outcome = self.provider.revoke(&target).await?;
        audit::revoked(Origin::Sensedia, &target, &outcome);
        Ok(())
    }

    pub async fn health(&self) -> Result<(), ApiError> {
        self.provider.health().await.map_err(ApiError::Unhealthy)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<T, ApiError> {
        let body = extract::body(body, self.body_limit)?;
        extract::require_json(headers)?;
        extract::json(&body)
    }
}

type Door = State<Arc<SensediaDoor>>;

async fn create_credentials(
    State(door): Door,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CreateCredentialsResponse>, ApiError> {
    door.create(door.decode(&headers, body)?).await.map(Json)
}

async fn update_credentials(
    State(door): Door,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    door.update(door.decode(&headers, body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_credentials(
    State(door): Door,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    door.revoke(door.decode(&headers, body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn health(State(door): Door) -> Result<StatusCode, ApiError> {
    door.health().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router(door: Arc<SensediaDoor>, auth: Option<BasicAuth>) -> Router {
    Router::new()
        .route("/v1/createCredentials", post(create_credentials))
        .route("/v1/updateCredentials", post(update_credentials))
        .route("/v1/revokeCredentials", post(revoke_credentials))
        .route("/v1/health", get(health))
        .route_layer(middleware::from_fn_with_state(auth, auth::require))
        .with_state(door)
}
