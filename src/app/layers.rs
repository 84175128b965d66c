//! What every listener serving requests has around its routes (the
//! portals' and the admin one alike): the body limit, request metrics,
//! request ids, one log line per request, error logging, panics as JSON
//! 500s.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response};
use axum::response::IntoResponse;
use axum::{middleware, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::error::{self, ApiError};
use crate::{extract, metrics};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A caller's request id longer than this is replaced by one of ours.
const MAX_REQUEST_ID: usize = 128;

/// What every listener serving requests has around its routes: the body
/// limit, request metrics, request ids, one log line per request, error
/// logging, panics as JSON 500s.
pub(super) fn layered(router: Router, body_limit: usize) -> Router {
    extract::limit_bodies(router, body_limit)
        .layer(middleware::from_fn(metrics::track))
        .layer(
            ServiceBuilder::new()
                .map_request(drop_oversized_request_id)
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(log_response)
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Inside the request's span, and outside the panic catcher
                // so a panic's 500 is logged too.
                .map_response(error::log_failure)
                .layer(CatchPanicLayer::custom(|_panic| {
                    // The payload is not logged: it could quote anything.
                    ApiError::Internal.into_response()
                })),
        )
}

fn drop_oversized_request_id(mut request: Request) -> Request {
    let oversized = request
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|v| v.len() > MAX_REQUEST_ID || v.to_str().is_err());
    if oversized {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_id = %request_id,
    )
}

fn log_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        target: crate::telemetry::REQUEST_TARGET,
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
}
