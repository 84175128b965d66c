//! Prometheus metrics: requests by route and status with latency histograms,
//! AWS calls by operation and outcome, credentials issued/re-synced/revoked,
//! and signature failures by reason. Served at `GET /metrics`, on the main
//! listener or, with `KEYHOOK_METRICS_LISTEN`, on a listener of its own so
//! the portals never see it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY: &str = "keyhook_http_request_duration_seconds";
/// Fine at the low end: a login from the index takes well under 1 ms.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_string()), LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .install_recorder()
            .expect("the metrics recorder is installed once")
    })
}

async fn render() -> String {
    handle().render()
}

pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}

/// Middleware counting every request by route, method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("keyhook_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(LATENCY, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

pub fn signature_failure(reason: &'static str) {
    metrics::counter!("keyhook_signature_failures_total", "reason" => reason).increment(1);
}

pub fn credential_change(action: &'static str, kind: &'static str, origin: &'static str) {
    metrics::counter!("keyhook_credentials_total", "action" => action, "kind" => kind, "origin" => origin)
        .increment(1);
}
