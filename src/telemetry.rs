//! Logging: one subscriber for the whole process (JSON for machines, pretty
//! for terminals), and the audit trail of credential changes.

use std::io::IsTerminal;

use tracing_appender::non_blocking::NonBlockingBuilder;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use serde::Deserialize;

/// Crates whose verbose levels log request and response bodies: the AWS
/// SDK's runtime traces API Gateway answers, API key values included. They
/// are held at `info` whatever `RUST_LOG` asks, so no level of logging can
/// print a secret.
const CAPPED: [&str; 2] = ["aws_smithy_runtime", "aws_smithy_runtime_api"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The log filter: `RUST_LOG` (default `info`), with `CAPPED` applied last.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for target in CAPPED {
        filter = filter.add_directive(format!("{target}=info").parse().expect("valid directive"));
    }
    filter
}

/// The target of the one line logged per request (`app/layers.rs`).
pub const REQUEST_TARGET: &str = "keyhook::request";

/// Lines each log writer holds for its thread before the sink must catch
/// up, so memory stays bounded whatever the sink.
const BUFFERED_LINES: usize = 8192;

/// stderr through a buffer: a writer thread writes every line it has
/// waiting, then flushes, so lines that pile up go out in one system call.
fn batched() -> std::io::BufWriter<std::io::Stderr> {
    std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr())
}

/// What keeps the log writers' threads alive: dropping it flushes what
/// they hold, so `main` keeps it until the process ends.
#[must_use = "dropping the guard stops the log writers"]
pub struct LogGuard {
    _guards: Option<[tracing_appender::non_blocking::WorkerGuard; 2]>,
}

/// Installs the global subscriber. Safe to call twice: the second call
/// does nothing.
///
/// Lines are written by two threads of their own, never on a request's
/// thread: a request's line costs the request its formatting only. The
/// per-request lines (`REQUEST_TARGET`) carry their request's fields
/// themselves (so formatting one reads no span), and are dropped, and
/// counted in `keyhook_log_lines_dropped_total`, when the sink cannot keep
/// up; every other line (audit events, warnings, errors, with the fields
/// of the request they belong to) waits for room instead, so none is lost.
pub fn init(format: Option<LogFormat>) -> LogGuard {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let (requests, request_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("keyhook-log-requests")
        .finish(batched());
    let (others, other_guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("keyhook-log")
        .finish(batched());
    let dropped = requests.error_counter();
    let is_request = |meta: &tracing::Metadata<'_>| meta.target() == REQUEST_TARGET;
    let (request_lines, other_lines) = match format {
        LogFormat::Json => (
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(requests)
                .boxed(),
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(others)
                .boxed(),
        ),
        LogFormat::Pretty => (
            fmt::layer().with_writer(requests).boxed(),
            fmt::layer().with_writer(others).boxed(),
        ),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(request_lines.with_filter(filter_fn(is_request)))
        .with(other_lines.with_filter(filter_fn(move |meta| !is_request(meta))))
        .try_init();
    match installed {
        Ok(()) => {
            crate::metrics::log_lines_dropped_from(move || dropped.dropped_lines() as u64);
            LogGuard {
                // Dropped in order: the lines that must not be lost first.
                _guards: Some([other_guard, request_guard]),
            }
        }
        // Another subscriber is in place: these writers are not used.
        Err(_) => LogGuard { _guards: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_body_logging_stays_off_at_any_level() {
        for spec in [
            None,
            Some("trace"),
            Some("aws_smithy_runtime=trace"),
            Some("debug,aws_smithy_runtime_api=trace"),
        ] {
            let text = filter(spec).to_string();
            assert!(text.contains("aws_smithy_runtime=info"), "{spec:?}: {text}");
            assert!(
                !text.contains("aws_smithy_runtime=trace"),
                "{spec:?}: {text}"
            );
            assert!(
                !text.contains("aws_smithy_runtime_api=trace"),
                "{spec:?}: {text}"
            );
        }
    }
}

/// The audit trail: one structured event per credential created, re-synced
/// or revoked, under the stable target `keyhook::audit` so it can be routed
/// to its own sink. Never the secret: ids, owners, apps and plans only.
pub mod audit {
    use crate::credentials::{Created, Credential, CredentialRef, Origin, Revoked};

    pub const TARGET: &str = crate::credentials::AUDIT_TARGET;

    /// The actions `keyhook_credentials_total` counts (a replayed create
    /// changed nothing); `metrics` registers each at 0 from this list.
    pub(crate) const COUNTED: [&str; 3] = ["created", "updated", "revoked"];

    /// Who changes credentials, as the metric's `origin` label says it.
    pub(crate) const ACTORS: [&str; 5] = ["readme", "sensedia", "admin", "sweeper", "audit"];

    fn actor_kind(actor: &str) -> &'static str {
        let kind = actor.split(':').next().unwrap_or(actor);
        ACTORS.into_iter().find(|k| *k == kind).unwrap_or("admin")
    }

    pub fn created(origin: Origin, credential: &Credential, created: Created) {
        match created {
            Created::New => event("created", origin, credential),
            // A portal retry or a concurrent first login: nothing new.
            Created::Existing => event("create_replayed", origin, credential),
            Created::Updated => event("updated", origin, credential),
        }
    }

    pub fn updated(origin: Origin, credential: &Credential) {
        event("updated", origin, credential);
    }

    fn event(action: &'static str, origin: Origin, credential: &Credential) {
        by(origin.as_str(), action, credential);
    }

    /// A change `actor` made: a portal (`readme`, `sensedia`), an operator
    /// (`admin:<token fingerprint>`), `sweeper` or `audit-fix`. The metric's
    /// `origin` label is the actor's kind, never a fingerprint.
    pub fn by(actor: &str, action: &'static str, credential: &Credential) {
        if COUNTED.contains(&action) {
            crate::metrics::credential_change(
                action,
                credential.kind().as_str(),
                actor_kind(actor),
            );
        }
        tracing::info!(
            target: TARGET,
            action,
            requested_by = actor,
            owner = %credential.owner,
            app = %credential.app,
            kind = %credential.kind(),
            credential_id = %credential.id,
            usage_plans = ?credential.usage_plans,
            "credential {action}"
        );
    }

    pub fn revoked(origin: Origin, target: &CredentialRef, outcome: &Revoked) {
        match outcome {
            Revoked::Revoked(credential) => event("revoked", origin, credential),
            // Already gone: recorded, so a portal's repeated revokes show.
            Revoked::NotFound => tracing::info!(
                target: TARGET,
                action = "revoke_unknown",
                requested_by = origin.as_str(),
                credential = %target,
                "credential revoke_unknown"
            ),
        }
    }
}
