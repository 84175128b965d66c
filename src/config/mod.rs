//! Configuration, layered: built-in defaults < a TOML file < environment
//! variables. Any variable `X` may instead be given as `X_FILE`, a path whose
//! contents are the value (the container convention for secrets).
//!
//! Each setting is described once (`crate::setting::Setting`: key, variable,
//! default, reader, secret or not, doc), beside the section it belongs to;
//! this module composes the sections, checks what spans them and prints the
//! summary. `layers` does the loading.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::admin::settings::AdminSettings;
use crate::credentials::aws::settings::AwsSettings;
use crate::credentials::CredentialKind;
use crate::readme::settings::ReadmeSettings;
use crate::sensedia::settings::SensediaSettings;
use crate::setting::{Invalid, Read, Setting};
use crate::telemetry::LogFormat;

mod layers;

pub const DEFAULT_CONFIG_PATH: &str = "config/keyhook.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{var}: {message}")]
    Env { var: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Local,
    Aws,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub backend: BackendKind,
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `None`: pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// The listener for `/metrics`; `None`: not served (never on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: serve HTTPS in-process, for
    /// deployments without a terminating load balancer.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body, from its headers.
    pub request_timeout_secs: u64,
    /// Seconds from SIGTERM until requests still reading are cut.
    pub shutdown_timeout_secs: u64,
    /// The API keys new credentials stop at (`budget.rs`).
    pub max_keys: usize,
    #[serde(default)]
    pub readme: ReadmeSettings,
    #[serde(default)]
    pub sensedia: SensediaSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub aws: AwsSettings,
}

impl Config {
    /// The settings of the top level; the sections describe their own.
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "listen",
            var: "KEYHOOK_LISTEN",
            read: Read::Text,
            default: Some("127.0.0.1:8080"),
            secret: false,
            doc: "address to bind",
        },
        Setting {
            key: "backend",
            var: "KEYHOOK_BACKEND",
            read: Read::Text,
            default: Some("local"),
            secret: false,
            doc: "`local` or `aws`",
        },
        Setting {
            key: "data_dir",
            var: "KEYHOOK_DATA_DIR",
            read: Read::Path,
            default: Some("./data"),
            secret: false,
            doc: "where the local store keeps `keyhook.redb`",
        },
        Setting {
            key: "body_limit",
            var: "KEYHOOK_BODY_LIMIT",
            read: Read::Unsigned,
            default: Some("65536"),
            secret: false,
            doc: "largest request body, bytes (1024 to 16 MiB)",
        },
        Setting {
            key: "log_format",
            var: "KEYHOOK_LOG_FORMAT",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "`json` or `pretty`. Unset: `pretty` on a terminal, else `json`",
        },
        Setting {
            key: "metrics_listen",
            var: "KEYHOOK_METRICS_LISTEN",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "serve `/metrics` on this address, a listener of its own (keep it private). Unset: `/metrics` is not served at all; it is never on `KEYHOOK_LISTEN`",
        },
        Setting {
            key: "tls_cert",
            var: "KEYHOOK_TLS_CERT",
            read: Read::Path,
            default: None,
            secret: false,
            doc: "PEM certificate chain: serve HTTPS in-process (rustls), for deployments without a terminating load balancer. Unset: plain HTTP",
        },
        Setting {
            key: "tls_key",
            var: "KEYHOOK_TLS_KEY",
            read: Read::Path,
            default: None,
            secret: false,
            doc: "PEM private key of `KEYHOOK_TLS_CERT` (both or neither)",
        },
        Setting {
            key: "header_timeout_secs",
            var: "KEYHOOK_HEADER_TIMEOUT_SECS",
            read: Read::Unsigned,
            default: Some("10"),
            secret: false,
            doc: "seconds a client has to send a request's headers (and finish the TLS handshake); also how long an idle keep-alive connection stays open. Then the connection is closed",
        },
        Setting {
            key: "request_timeout_secs",
            var: "KEYHOOK_REQUEST_TIMEOUT_SECS",
            read: Read::Unsigned,
            default: Some("30"),
            secret: false,
            doc: "seconds a client has to send a request's body once its headers are in; then the connection is closed unanswered. A slow backend is bounded by `KEYHOOK_AWS_TIMEOUT_SECS` instead",
        },
        Setting {
            key: "shutdown_timeout_secs",
            var: "KEYHOOK_SHUTDOWN_TIMEOUT_SECS",
            read: Read::Unsigned,
            default: Some("20"),
            secret: false,
            doc: "seconds after SIGTERM for requests in flight to finish; then requests still being read are cut, a write under way gets up to `KEYHOOK_AWS_TIMEOUT_SECS` more, and the process exits",
        },
        Setting {
            key: "max_keys",
            var: "KEYHOOK_MAX_KEYS",
            read: Read::Unsigned,
            default: Some("9000"),
            secret: false,
            doc: "ceiling on the API keys the owner index counts, and with a claim table on the region's keys counted there across replicas (1 to 10000; API Gateway's hard limit is 10,000 per region, for every API of the account): past it, new credentials (first-login provisioning, Sensedia creates for a new app) are refused with 503, while existing readers, retries, updates and rotations keep working",
        },
    ];
}

/// Every setting, top level first, then each section's.
pub fn settings() -> impl Iterator<Item = &'static Setting> {
    Config::SETTINGS
        .iter()
        .chain(ReadmeSettings::SETTINGS)
        .chain(SensediaSettings::SETTINGS)
        .chain(AdminSettings::SETTINGS)
        .chain(AwsSettings::SETTINGS)
}

impl Default for Config {
    fn default() -> Self {
        layers::default_config()
    }
}

/// Where the configuration file comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Named on the command line or in `KEYHOOK_CONFIG`: must exist.
    Explicit(PathBuf),
    /// The default path: used when present.
    Default,
}

impl Config {
    /// Loads the configuration from the file and the process environment.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        Self::load_with(source, |name| std::env::var(name).ok())
    }

    /// Loads the configuration with `env` standing for the environment, so
    /// tests need not touch the process's own.
    pub fn load_with(
        source: &ConfigSource,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = match source {
            ConfigSource::Explicit(path) => Some(path.as_path()),
            ConfigSource::Default => {
                Some(Path::new(DEFAULT_CONFIG_PATH)).filter(|path| path.exists())
            }
        };
        let config = layers::load(path, &env)?;
        config
            .validate()
            .map_err(|Invalid(message)| ConfigError::Invalid(message))?;
        Ok(config)
    }

    /// The built-in defaults under the TOML file `text` (no environment, no
    /// validation).
    pub fn from_toml(text: &str) -> Result<Config, String> {
        layers::from_toml(text)
    }

    /// Each section's own checks, then those that span sections.
    fn validate(&self) -> Result<(), Invalid> {
        if !(1024..=16 * 1024 * 1024).contains(&self.body_limit) {
            return Err(Invalid(format!(
                "body_limit (KEYHOOK_BODY_LIMIT) must be between 1024 and 16777216 bytes, got {}",
                self.body_limit
            )));
        }
        for (value, var) in [
            (self.header_timeout_secs, "KEYHOOK_HEADER_TIMEOUT_SECS"),
            (self.request_timeout_secs, "KEYHOOK_REQUEST_TIMEOUT_SECS"),
            (self.shutdown_timeout_secs, "KEYHOOK_SHUTDOWN_TIMEOUT_SECS"),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(Invalid(format!(
                    "{var} must be between 1 and 3600 seconds, got {value}"
                )));
            }
        }
        if !(1..=10_000).contains(&self.max_keys) {
            return Err(Invalid(format!(
                "KEYHOOK_MAX_KEYS must be between 1 and 10000, got {}",
                self.max_keys
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Invalid(
                "set both KEYHOOK_TLS_CERT and KEYHOOK_TLS_KEY, or neither".into(),
            ));
        }
        self.readme.validate()?;
        self.sensedia.validate()?;
        self.admin.validate()?;
        self.aws.validate()?;
        if let Some(admin) = self.admin.listen {
            // Port 0 asks for any free port: no clash is possible.
            let clash = [Some(self.listen), self.metrics_listen]
                .into_iter()
                .flatten()
                .any(|other| other == admin && admin.port() != 0);
            if clash {
                return Err(Invalid(format!(
                    "admin.listen (KEYHOOK_ADMIN_LISTEN) {admin} is the address of another listener: the admin API has a listener of its own"
                )));
            }
        }
        if self.backend == BackendKind::Aws
            && self.sensedia.credential_type == CredentialKind::ClientCredentials
            && self.aws.cognito_user_pool_id.is_none()
        {
            return Err(Invalid("KEYHOOK_SENSEDIA_CREDENTIAL_TYPE=client_credentials on the aws backend needs KEYHOOK_COGNITO_USER_POOL_ID".into()));
        }
        Ok(())
    }

    /// What `keyhook check` prints: every setting, no secret value.
    pub fn summary(&self) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        out.insert("listen", self.listen.to_string());
        out.insert("backend", self.backend.to_string());
        out.insert("data_dir", self.data_dir.display().to_string());
        out.insert("body_limit", format!("{} bytes", self.body_limit));
        out.insert(
            "tls",
            match &self.tls_cert {
                Some(cert) => format!("HTTPS with certificate {}", cert.display()),
                None => "off (plain HTTP; terminate TLS in front)".to_string(),
            },
        );
        out.insert(
            "timeouts",
            format!(
                "headers {} s, body {} s, shutdown {} s",
                self.header_timeout_secs, self.request_timeout_secs, self.shutdown_timeout_secs
            ),
        );
        out.insert(
            "metrics",
            match self.metrics_listen {
                Some(addr) => format!("GET /metrics on {addr}"),
                None => "off (set KEYHOOK_METRICS_LISTEN to serve GET /metrics)".to_string(),
            },
        );
        out.insert("admin", self.admin.summary());
        out.insert(
            "budget",
            format!(
                "new credentials stop at {} API keys{}",
                self.max_keys,
                match self.readme.provision_per_hour {
                    Some(n) => format!("; at most {n} provisioned an hour"),
                    None => String::new(),
                }
            ),
        );
        out.insert("readme", self.readme.summary());
        out.insert("sensedia", self.sensedia.summary());
        if self.backend == BackendKind::Aws {
            out.insert("aws", self.aws.summary());
        }
        out
    }
}

#[cfg(test)]
mod tests;
