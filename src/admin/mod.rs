//! The admin listener: an API for operators under `/admin/v1`, on a
//! listener of its own (`KEYHOOK_ADMIN_LISTEN`), never on the portals' one.
//! Bearer tokens (`auth`), the wire shapes (`view`), its settings, and
//! `keyhook audit` (`cli`), which calls it when a server holds the local
//! store. Handlers are thin: the backend does the work
//! (`CredentialProvider::{list, rotate, set_expiry, revoke_by_id, audit,
//! repair}`), errors map in `crate::error`, and every change is an audit
//! event naming the token by its fingerprint.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{middleware, Extension, Json, Router};
use serde_json::json;

use crate::clock::Clock;
use crate::credentials::{AppId, CredentialProvider, Email, Revoked};
use crate::error::ApiError;
use crate::extract;
use crate::telemetry::audit;
use crate::writes::Writes;

pub mod auth;
pub mod cli;
pub mod settings;
mod view;

use auth::{Actor, BearerAuth};
use settings::{AdminSettings, MAX_ROTATION_GRACE_SECS};
use view::{CredentialView, ExpiryBody, Filters, RotateBody, RotationView, SuccessorView};

/// Every admin route, method and path as the router matches it; the
/// OpenAPI description (`openapi/admin.yaml`) must list exactly these.
pub const ROUTES: [(&str, &str); 6] = [
    ("GET", "/admin/v1/credentials"),
    ("POST", "/admin/v1/credentials/{id}/rotate"),
    ("PUT", "/admin/v1/credentials/{id}/expiry"),
    ("DELETE", "/admin/v1/credentials/{id}"),
    ("GET", "/admin/v1/audit"),
    ("POST", "/admin/v1/audit/fix"),
];

/// What the handlers share.
#[derive(Clone)]
struct Admin {
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    writes: Writes,
    /// A rotation's grace when it names none, seconds.
    grace_secs: u64,
}

impl Admin {
    fn now_ms(&self) -> u64 {
        u64::try_from((self.clock)()).unwrap_or_default()
    }
}

/// The admin routes, behind the bearer tokens of `settings`; unlayered
/// (`app::layered` adds what every listener has).
pub fn router(
    settings: &AdminSettings,
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    writes: Writes,
) -> Router {
    let admin = Admin {
        provider,
        clock,
        writes,
        grace_secs: settings.rotation_grace_secs,
    };
    let [list_route, rotate_route, expiry_route, delete_route, audit_route, fix_route] =
        ROUTES.map(|(_, path)| path);
    Router::new()
        .route(list_route, get(list))
        .route(rotate_route, post(rotate))
        .route(expiry_route, put(set_expiry))
        .route(delete_route, axum::routing::delete(revoke))
        .route(audit_route, get(run_audit))
        .route(fix_route, post(fix))
        .with_state(admin)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Every request, unknown routes included: nothing answers without a
        // token.
        .layer(middleware::from_fn_with_state(
            BearerAuth::new(&settings.tokens),
            auth::require,
        ))
}

/// A credential id as the backends make them; anything else names no
/// credential, and is not sent to a backend.
fn credential_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let not_found = || ApiError::NotFound("no such credential".into());
    let Path(id) = path.map_err(|_| not_found())?;
    let plain = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some(id).ok_or_else(not_found)
}

/// `GET /credentials?owner=&app=`: every credential held, either filter
/// optional; `app` is a Sensedia slug, matched as a request naming it is.
async fn list(
    State(admin): State<Admin>,
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(filters) =
        query.map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))?;
    let owner = match filters.owner.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            Email::parse(raw)
                .map_err(|e| ApiError::Unprocessable(format!("invalid owner: {e}")))?,
        ),
    };
    let app = match filters.app.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(slug) if is_slug(slug) => Some(AppId::sensedia_slug(slug)),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "invalid app: a slug is 1 to 128 letters, digits, `-` or `_`".into(),
            ))
        }
    };
    let all = admin.provider.list().await?;
    let shown = view::listing(&all, |l| {
        owner.as_ref().is_none_or(|o| l.credential.owner == *o)
            && app
                .as_ref()
                .is_none_or(|a| admin.provider.is_app(a, &l.credential))
    });
    Ok(Json(json!({ "credentials": shown })))
}

fn is_slug(slug: &str) -> bool {
    (1..=128).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A JSON body that may be absent (empty): then `T::default()`.
async fn optional_body<T: serde::de::DeserializeOwned + Default>(
    request: Request,
) -> Result<T, ApiError> {
    let (headers, body) = extract::headers_and_body(request).await?;
    if body.is_empty() {
        return Ok(T::default());
    }
    extract::require_json(&headers)?;
    extract::json(&body)
}

/// `POST /credentials/{id}/rotate {"graceSecs": N}`: a successor, with its
/// secret this once; the predecessor works until now + the grace.
async fn rotate(
    State(admin): State<Admin>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let id = credential_id(path)?;
    let body: RotateBody = optional_body(request).await?;
    let grace = body.grace_secs.unwrap_or(admin.grace_secs);
    if grace > MAX_ROTATION_GRACE_SECS {
        return Err(ApiError::Unprocessable(format!(
            "invalid request: graceSecs must be between 0 and {MAX_ROTATION_GRACE_SECS}"
        )));
    }
    let until = admin.now_ms().saturating_add(grace * 1000);
    let provider = Arc::clone(&admin.provider);
    let rotation = admin
        .writes
        .run(async move {
            let rotation = provider.rotate(&id, until).await?;
            audit::by(&actor.0, "created", &rotation.successor);
            audit::by(&actor.0, "rotated", &rotation.predecessor);
            Ok::<_, ApiError>(rotation)
        })
        .await?;
    let successor_id = rotation.successor.id.clone();
    Ok((
        StatusCode::CREATED,
        Json(RotationView {
            successor: SuccessorView::new(&rotation.successor),
            predecessor: CredentialView::of(&rotation.predecessor, Some(successor_id)),
        }),
    ))
}

/// `PUT /credentials/{id}/expiry {"expiresAt": date | null}`.
async fn set_expiry(
    State(admin): State<Admin>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
    extract::JsonBody(body): extract::JsonBody<ExpiryBody>,
) -> Result<Json<CredentialView>, ApiError> {
    let id = credential_id(path)?;
    let end = body.end()?;
    let provider = Arc::clone(&admin.provider);
    let credential = admin
        .writes
        .run(async move {
            let credential = provider.set_expiry(&id, end).await?;
            let action = if end.is_some() {
                "expiry_set"
            } else {
                "expiry_cleared"
            };
            audit::by(&actor.0, action, &credential);
            Ok::<_, ApiError>(credential)
        })
        .await?;
    Ok(Json(CredentialView::of(&credential, None)))
}

/// `DELETE /credentials/{id}`: revoked now, as `KEYHOOK_REVOKE` says.
async fn revoke(
    State(admin): State<Admin>,
    Extension(actor): Extension<Actor>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CredentialView>, ApiError> {
    let id = credential_id(path)?;
    let provider = Arc::clone(&admin.provider);
    let revoked = admin
        .writes
        .run(async move {
            let revoked = provider.revoke_by_id(&id).await?;
            if let Revoked::Revoked(credential) = &revoked {
                audit::by(&actor.0, "revoked", credential);
            }
            Ok::<_, ApiError>(revoked)
        })
        .await?;
    match revoked {
        Revoked::Revoked(credential) => Ok(Json(CredentialView::of(&credential, None))),
        Revoked::NotFound => Err(ApiError::NotFound("no such credential".into())),
    }
}

/// `GET /audit`: what is wrong in what the backend holds.
async fn run_audit(State(admin): State<Admin>) -> Result<Json<serde_json::Value>, ApiError> {
    let findings = admin.provider.audit(admin.now_ms()).await?;
    Ok(Json(json!({ "findings": findings })))
}

/// `POST /audit/fix`: audits now and repairs what is safe to repair (the
/// backend writes an audit event per repair); `keyhook audit --fix --yes`
/// on a store a server holds.
async fn fix(
    State(admin): State<Admin>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (provider, now) = (Arc::clone(&admin.provider), admin.now_ms());
    let (findings, repairs) = admin
        .writes
        .run(async move {
            let findings = provider.audit(now).await?;
            let repairs = provider.repair(&findings).await?;
            tracing::info!(
                target: audit::TARGET,
                action = "audit_fixed",
                requested_by = %actor.0,
                findings = findings.len(),
                repairs = repairs.len(),
                "audit fixed"
            );
            Ok::<_, ApiError>((findings, repairs))
        })
        .await?;
    Ok(Json(json!({ "findings": findings, "repairs": repairs })))
}

#[cfg(test)]
mod tests;
