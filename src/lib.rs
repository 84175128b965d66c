//! keyhook: a credential webhook server between two developer portals
//! (ReadMe Personalized Docs, the Sensedia Developer Portal) and an API
//! team's credentials on AWS (API Gateway keys, Cognito app clients) or in
//! an embedded store.

pub mod app;
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
