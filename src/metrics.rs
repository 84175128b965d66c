//! Prometheus metrics: requests by route, method and status with latency
//! histograms, AWS calls by operation and outcome, credentials
//! created/updated/revoked, signature failures by reason, the owner index's
//! size and age, readiness, and the key budget. Served at
//! `GET /metrics` only on `KEYHOOK_METRICS_LISTEN`, a listener of its own:
//! never on the main one, which the portals (and so the internet) reach.
//!
//! Bounded: every label comes from a closed set (a method or route keyhook
//! does not serve is `other`), and histogram samples are folded in every few
//! seconds whether or not anything scrapes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::credentials::CredentialKind;
use crate::readme::signature::SignatureError;

const LATENCY: &str = "keyhook_http_request_duration_seconds";
/// Fine at the low end: a login from the index takes well under 1 ms.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded histogram samples are folded into their buckets;
/// until then each sample is held in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The label for a method or route outside the closed set.
const OTHER: &str = "other";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it), starts
/// its upkeep, and registers the series with fixed label sets at 0 so that
/// dashboards and alerts see them before the first event.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_string()), LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .install_recorder()
            .expect("the metrics recorder is installed once");
        let upkeep = handle.clone();
        // A thread, not a task: the recorder outlives any one runtime (the
        // tests start many).
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            })
            .expect("spawn the metrics upkeep thread");
        register_fixed_series();
        handle
    })
}

/// Every series whose labels are known in advance, at 0.
fn register_fixed_series() {
    for failure in [
        SignatureError::Missing,
        SignatureError::Expired,
        SignatureError::Invalid,
    ] {
        metrics::counter!("keyhook_signature_failures_total", "reason" => failure.reason())
            .increment(0);
    }
    for action in crate::telemetry::audit::COUNTED {
        for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
            for origin in crate::telemetry::audit::ACTORS {
                credential_change_by(action, kind.as_str(), origin, 0);
            }
        }
    }
    for kind in CLEANUP_KINDS {
        for deleted in [true, false] {
            cleanup_by(kind, deleted, 0);
        }
    }
    for reason in PROVISION_REFUSALS {
        provision_refused_by(reason, 0);
    }
    owner_index_size(0);
    metrics::counter!("keyhook_log_lines_dropped_total").absolute(0);
    api_keys(0);
    api_keys_max(MAX_KEYS_DEFAULT);
}

/// The `reason` label of `keyhook_provision_refused_total`: the reader's
/// email domain is not allowed, the hourly provisioning budget is spent,
/// or the region's API keys reached `KEYHOOK_MAX_KEYS`.
pub const PROVISION_REFUSALS: [&str; 3] = ["domain", "hourly_budget", "key_ceiling"];

/// `KEYHOOK_MAX_KEYS`' default: headroom under API Gateway's 10,000 API keys
/// per region. Published as `keyhook_api_keys_max` from the start;
/// `Application::build` sets the configured value with [`api_keys_max`].
pub const MAX_KEYS_DEFAULT: usize = 9000;

/// The `kind` label of `keyhook_aws_cleanups_total`.
pub const CLEANUP_KINDS: [&str; 2] = ["api_key", "app_client"];

/// The `method` label: the methods keyhook serves, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

async fn render() -> String {
    if let Some(dropped) = LOG_LINES_DROPPED.get() {
        metrics::counter!("keyhook_log_lines_dropped_total").absolute(dropped());
    }
    handle().render()
}

type Reading = Box<dyn Fn() -> u64 + Send + Sync>;

/// Where the log writer counts the request lines it dropped; read at each
/// scrape.
static LOG_LINES_DROPPED: OnceLock<Reading> = OnceLock::new();

/// Per-request log lines dropped because the log sink could not keep up
/// (`telemetry::init`), as `keyhook_log_lines_dropped_total`.
pub fn log_lines_dropped_from(read: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = LOG_LINES_DROPPED.set(Box::new(read));
}

pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}

/// Middleware counting every request by route, method and status. A route
/// is the router's pattern (a fixed set); a path no route matches is
/// `other`, as is a method keyhook does not serve. Statuses are the few
/// keyhook answers with.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| OTHER.to_string());
    let method = method_label(request.method());
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
    credential_change_by(action, kind, origin, 1);
}

fn credential_change_by(action: &'static str, kind: &'static str, origin: &'static str, n: u64) {
    metrics::counter!("keyhook_credentials_total", "action" => action, "kind" => kind, "origin" => origin)
        .increment(n);
}

/// A credential keyhook made and no app keeps (a racing replica's loser, the
/// extra of a create whose answer was lost, what a failed create left) was
/// deleted, or its deletion failed and a later refresh will try again.
pub fn cleanup(kind: &'static str, deleted: bool) {
    cleanup_by(kind, deleted, 1);
}

fn cleanup_by(kind: &'static str, deleted: bool, n: u64) {
    let outcome = if deleted { "deleted" } else { "failed" };
    metrics::counter!("keyhook_aws_cleanups_total", "kind" => kind, "outcome" => outcome)
        .increment(n);
}

/// The AWS owner index was confirmed by a refresh whose listing began at
/// `started_ms` (Unix ms): `time() - keyhook_owner_index_confirmed_timestamp_seconds`
/// is its age, to compare with `keyhook_owner_index_stale_after_seconds`.
pub fn owner_index_confirmed(started_ms: i64) {
    metrics::gauge!("keyhook_owner_index_confirmed_timestamp_seconds")
        .set(started_ms as f64 / 1000.0);
}

/// The age past which the owner index no longer answers logins.
pub fn owner_index_stale_after(limit: Duration) {
    metrics::gauge!("keyhook_owner_index_stale_after_seconds").set(limit.as_secs_f64());
}

/// Credentials the owner index holds (every kind), after an AWS refresh or
/// a local store commit.
pub fn owner_index_size(credentials: usize) {
    metrics::gauge!("keyhook_owner_index_credentials").set(credentials as f64);
}

/// API keys in the region as the owner index counts them (on AWS every key
/// the last refresh listed, keyhook's or not: API Gateway's limit counts
/// them all), to compare with `keyhook_api_keys_max`.
pub fn api_keys(keys: usize) {
    metrics::gauge!("keyhook_api_keys").set(keys as f64);
}

/// The ceiling on API keys past which no new credential is made
/// (`KEYHOOK_MAX_KEYS`).
pub fn api_keys_max(keys: usize) {
    metrics::gauge!("keyhook_api_keys_max").set(keys as f64);
}

/// A credential was not provisioned: `reason` is one of
/// [`PROVISION_REFUSALS`].
pub fn provision_refused(reason: &'static str) {
    provision_refused_by(reason, 1);
}

fn provision_refused_by(reason: &'static str, n: u64) {
    metrics::counter!("keyhook_provision_refused_total", "reason" => reason).increment(n);
}

/// An AWS call was throttled (after the SDK's retries).
pub fn aws_throttled(operation: &'static str) {
    metrics::counter!("keyhook_aws_throttled_total", "operation" => operation).increment(1);
}

/// What `/readyz` last answered: 1 ready, 0 not. Absent until the first
/// probe: a scrape asks nothing of the backend (on AWS that would be a
/// call), so orchestrators' probes keep it current.
pub fn ready(ready: bool) {
    metrics::gauge!("keyhook_ready").set(if ready { 1.0 } else { 0.0 });
}
