//! Front door 2: the Sensedia Developer Portal's credentials webhook. The
//! portal calls these routes, behind Basic auth, when a developer's AWS app
//! is approved, edited or cancelled.

pub mod auth;
pub mod model;
pub mod settings;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};

use crate::budget::Budget;
use crate::credentials::{
    CredentialError, CredentialKind, CredentialProvider, CredentialRef, Origin, Revoked,
};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::telemetry::audit;
use crate::writes::Writes;
use auth::BasicAuth;
use model::{
    App, CreateCredentialsRequest, CreateCredentialsResponse, CredentialRequest, InvalidRequest,
    RevokeRequest,
};

pub struct SensediaDoor {
    provider: Arc<dyn CredentialProvider>,
    /// What `createCredentials` issues (`KEYHOOK_SENSEDIA_CREDENTIAL_TYPE`).
    kind: CredentialKind,
    /// Where writes run: to their end, even when the portal hangs up.
    writes: Writes,
    /// Whether a new app may be given a credential.
    budget: Arc<Budget>,
}

impl SensediaDoor {
    pub fn new(
        provider: Arc<dyn CredentialProvider>,
        kind: CredentialKind,
        writes: Writes,
        budget: Arc<Budget>,
    ) -> Self {
        SensediaDoor {
            provider,
            kind,
            writes,
            budget,
        }
    }

    /// Issues the app's credential, or brings the one already issued to it
    /// in step with the request (a new developer takes it over) and hands it
    /// back: the portal may retry.
    pub async fn create(
        &self,
        request: CreateCredentialsRequest,
    ) -> Result<CreateCredentialsResponse, ApiError> {
        let spec = App::try_from(&request.app)?.spec(self.kind);
        let _reserved = self.budget.admit(&*self.provider, &spec)?;
        let created = self.writes.create(Arc::clone(&self.provider), spec.clone());
        let credential = self.budget.recorded(&spec, created.await)?;
        Ok(CreateCredentialsResponse::from(&credential))
    }

    /// Re-syncs the credential with the app as it is now.
    pub async fn update(&self, request: CredentialRequest) -> Result<(), ApiError> {
        let target = request.target(self.kind)?;
        let spec = App::try_from(&request.app)?.spec(target.kind());
        let provider = Arc::clone(&self.provider);
        self.writes
            .run(async move {
                let credential = provider.update(&target, &spec).await?;
                audit::updated(Origin::Sensedia, &credential);
                Ok::<_, CredentialError>(())
            })
            .await?;
        Ok(())
    }

    /// Makes the credential unusable. A credential named by id that this
    /// request may not act on answers 404 exactly as an unknown id, so its
    /// existence is not told. An app with no credential (of this kind) left
    /// has nothing to revoke: 204, so a portal's retry by app succeeds.
    pub async fn revoke(&self, request: RevokeRequest) -> Result<(), ApiError> {
        let target = request.target(self.kind)?;
        let provider = Arc::clone(&self.provider);
        let revoking = target.clone();
        let outcome = self
            .writes
            .run(async move {
                let target = revoking;
                let outcome = match provider.revoke(&target).await {
                    Err(CredentialError::NotFound(_))
                        if matches!(target, CredentialRef::App(..)) =>
                    {
                        Revoked::NotFound
                    }
                    outcome => outcome?,
                };
                audit::revoked(Origin::Sensedia, &target, &outcome);
                Ok::<_, CredentialError>(outcome)
            })
            .await?;
        match (outcome, &target) {
            (Revoked::NotFound, CredentialRef::Id(..)) => {
                Err(CredentialError::NotFound(target).into())
            }
            _ => Ok(()),
        }
    }

    /// As `/readyz`: unready answers the reason in a word, never the detail.
    pub async fn health(&self) -> Result<(), ApiError> {
        self.provider.health().await.map_err(ApiError::Unhealthy)
    }
}

/// The portal sent well-formed JSON whose fields cannot be used.
impl From<InvalidRequest> for ApiError {
    fn from(err: InvalidRequest) -> Self {
        ApiError::Unprocessable(err.to_string())
    }
}

type Door = State<Arc<SensediaDoor>>;

async fn create_credentials(
    State(door): Door,
    JsonBody(request): JsonBody<CreateCredentialsRequest>,
) -> Result<Json<CreateCredentialsResponse>, ApiError> {
    door.create(request).await.map(Json)
}

async fn update_credentials(
    State(door): Door,
    JsonBody(request): JsonBody<CredentialRequest>,
) -> Result<StatusCode, ApiError> {
    door.update(request).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_credentials(
    State(door): Door,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    door.revoke(request).await?;
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
