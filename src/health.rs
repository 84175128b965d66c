//! Liveness and readiness for orchestrators: `/healthz` says the process
//! answers, `/readyz` that the credential backend can serve, or why not in
//! one word (`{"status":"unready","reason":"aws_access_denied"}`: the probe
//! is unauthenticated, so the backend's own words go to the log only).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::credentials::CredentialProvider;
use crate::error::ApiError;

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(
    State(provider): State<Arc<dyn CredentialProvider>>,
) -> Result<Json<Value>, ApiError> {
    let health = provider.health().await;
    crate::metrics::ready(health.is_ok());
    health.map_err(ApiError::Unhealthy)?;
    Ok(Json(
        json!({ "status": "ready", "backend": provider.name() }),
    ))
}

pub fn router(provider: Arc<dyn CredentialProvider>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(provider)
}
