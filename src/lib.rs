//! keyhook: a credential webhook server between two developer portals
//! (ReadMe Personalized Docs, the Sensedia Developer Portal) and an API
//! team's credentials on AWS (API Gateway keys, Cognito app clients) or in
//! an embedded store.
//!
//! # Layout
//!
//! A request walks down this list and never back up: a door verifies it,
//! asks the credential model, and answers.
//!
//! - [`readme`]: front door 1, ReadMe's signed login webhook (`signature`
//!   verifies, `answer` builds the JSON ReadMe merges, `settings`).
//! - [`sensedia`]: front door 2, the Sensedia portal's `/v1` routes (`auth`
//!   Basic auth, `model` the wire types parsed once into an app, `settings`).
//! - [`credentials`]: the credential model and the `CredentialProvider`
//!   trait both doors speak; one folder per backend: `local` (embedded redb
//!   store, the default) and `aws` (API Gateway keys, Cognito app clients).
//! - [`extract`], [`error`]: the HTTP edge both doors share: extractors whose
//!   rejection is an [`error::ApiError`], and the one place errors become
//!   responses.
//! - [`admin`]: the operators' listener (`/admin/v1`: list, rotate,
//!   expire and revoke credentials, the audit) behind bearer tokens, and
//!   `keyhook audit` (`admin::cli`).
//! - [`health`], [`metrics`], [`telemetry`]: probes, Prometheus metrics,
//!   logs and the audit trail.
//! - [`config`], [`setting`]: every setting described once, layered from
//!   defaults, the TOML file and the environment into each section's type.
//! - [`writes`]: runs each credential write as a task of its own, so a
//!   caller hanging up cannot cut it half done; shutdown waits for them.
//! - [`app`]: builds the whole application from a [`config::Config`] and its
//!   [`app::Dependencies`], for `main` and the tests alike.
//! - [`clock`], [`secret`], [`text`]: the injected clock; `Redacted`, which
//!   keeps secrets out of logs; the text helpers the request paths share.

pub mod admin;
pub mod app;
pub mod budget;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod readme;
pub mod secret;
pub mod sensedia;
pub mod setting;
pub mod telemetry;
pub mod text;
pub mod writes;
