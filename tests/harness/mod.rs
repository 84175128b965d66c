//! The one test harness, shared by every test binary (`tests/local`,
//! `tests/aws`, `tests/process`) and by the load driver `benches/server.rs`:
//!
//! - [`TestApp`]: keyhook built from a `Config` as `main` builds it, served
//!   in-process on `127.0.0.1:0`;
//! - [`Process`]: the real `keyhook serve` binary, configured by environment
//!   variables, its bound address read from its "keyhook listening" log line;
//! - [`ApiClient`]: what both portals send (signed ReadMe logins, Sensedia
//!   calls with Basic auth), against either of the two;
//! - `moto`, `proxy`, `emulator`: a real moto server, a counting and
//!   fault-injecting proxy in front of it (`dynamodb`: its DynamoDB
//!   specifics), and direct reads of what it holds;
//! - `cases`: a table's cases run side by side, every failure reported;
//! - `metrics`: a process's `/metrics`, read as samples;
//! - `prometheus`: a real Prometheus server scraping a process.
//!
//! It is a module included by each binary rather than a crate of its own: a
//! path dev-dependency would have to exist wherever Cargo resolves the
//! manifest, the Docker image's dependency layer included. Each binary uses a
//! part of it, so the binaries allow dead code on `mod harness` alone.

pub mod app;
pub mod cases;
pub mod client;
pub mod dynamodb;
pub mod emulator;
pub mod metrics;
pub mod moto;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod tls;

use std::path::Path;

use keyhook::config::Config;

pub use app::TestApp;
pub use client::{basic, parse_response, raw_http, ApiClient};
pub use process::Process;

pub const README_SECRET: &str = "test-readme-secret";
pub const SENSEDIA_USER: &str = "portal";
pub const SENSEDIA_PASSWORD: &str = "portal-password";

/// A configuration with both front doors open (one ReadMe secret, one
/// Sensedia Basic-auth pair) on `127.0.0.1:0`, and the default data
/// directory.
pub fn base_config() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.readme.secret = vec![README_SECRET.to_string().into()];
    config.sensedia.users = vec![format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}")
        .parse()
        .unwrap()];
    config
}

/// [`base_config`] with the local store in `data_dir`.
pub fn test_config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        ..base_config()
    }
}
