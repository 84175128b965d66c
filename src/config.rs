//! Configuration, layered: built-in defaults < a TOML file < environment
//! variables. Any variable `X` may instead be given as `X_FILE`, a path whose
//! contents are the value (the container convention for secrets).
//!
//! The environment layer is written out by hand, one parser per variable, so
//! that every variable has exactly the documented name and every error names
//! the variable (or file key) at fault, and never echoes a secret's value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::credentials::aws::settings::AwsSettings;
use crate::credentials::CredentialKind;
use crate::readme::settings::ReadmeSettings;
use crate::secret::Redacted;
use crate::sensedia::settings::{BasicUser, SensediaSettings};
use crate::telemetry::LogFormat;

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

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "local" => Ok(BackendKind::Local),
            "aws" => Ok(BackendKind::Aws),
            other => Err(format!("expected `local` or `aws`, got `{other}`")),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
        })
    }
}

fn parse_credential_kind(s: &str) -> Result<CredentialKind, String> {
    match s.trim() {
        "api_key" => Ok(CredentialKind::ApiKey),
        "client_credentials" => Ok(CredentialKind::ClientCredentials),
        other => Err(format!(
            "expected `api_key` or `client_credentials`, got `{other}`"
        )),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub backend: BackendKind,
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `None`: pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// A separate listener for `/metrics`; `None` serves it on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: serve HTTPS in-process, for
    /// deployments without a terminating load balancer.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub readme: ReadmeSettings,
    pub sensedia: SensediaSettings,
    pub aws: AwsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend: BackendKind::Local,
            data_dir: PathBuf::from("./data"),
            body_limit: 64 * 1024,
            log_format: None,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            readme: ReadmeSettings::default(),
            sensedia: SensediaSettings::default(),
            aws: AwsSettings::default(),
        }
    }
}

/// Reserved keys of the ReadMe answer that `readme.response` may not set.
const RESERVED_RESPONSE_FIELDS: [&str; 3] = ["email", "name", "keys"];

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
        let mut config = match source {
            ConfigSource::Explicit(path) => Self::from_file(path)?,
            ConfigSource::Default => {
                let path = Path::new(DEFAULT_CONFIG_PATH);
                if path.exists() {
                    Self::from_file(path)?
                } else {
                    Config::default()
                }
            }
        };
        config.apply_env(&env)?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = EnvLayer { env };
        env.set("KEYHOOK_LISTEN", &mut self.listen, parse_from_str)?;
        env.set("KEYHOOK_BACKEND", &mut self.backend, parse_from_str)?;
        env.set("KEYHOOK_DATA_DIR", &mut self.data_dir, |s| {
            Ok(PathBuf::from(s))
        })?;
        env.set("KEYHOOK_BODY_LIMIT", &mut self.body_limit, parse_from_str)?;
        env.set_option("KEYHOOK_LOG_FORMAT", &mut self.log_format, parse_from_str)?;
        env.set_option(
            "KEYHOOK_METRICS_LISTEN",
            &mut self.metrics_listen,
            parse_from_str,
        )?;
        env.set_option("KEYHOOK_TLS_CERT", &mut self.tls_cert, |s| {
            Ok(PathBuf::from(s))
        })?;
        env.set_option("KEYHOOK_TLS_KEY", &mut self.tls_key, |s| {
            Ok(PathBuf::from(s))
        })?;
        env.set("KEYHOOK_README_SECRET", &mut self.readme.secret, |s| {
            Ok(split_list(s)
                .map(|v| Redacted::new(v.to_string()))
                .collect())
        })?;
        env.set(
            "KEYHOOK_README_PROVISION",
            &mut self.readme.provision,
            parse_bool,
        )?;
        env.set(
            "KEYHOOK_README_TOLERANCE_SECS",
            &mut self.readme.tolerance_secs,
            parse_from_str,
        )?;
        env.set_option(
            "KEYHOOK_USAGE_PLAN_ID",
            &mut self.readme.usage_plan_id,
            |s| Ok(s.trim().to_string()),
        )?;
        env.set("KEYHOOK_SENSEDIA_USERS", &mut self.sensedia.users, |s| {
            split_list(s).map(BasicUser::from_str).collect()
        })?;
        env.set(
            "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE",
            &mut self.sensedia.credential_type,
            parse_credential_kind,
        )?;
        let aws = &mut self.aws;
        let text = |s: &str| Ok(s.trim().to_string());
        env.set_option(
            "KEYHOOK_COGNITO_USER_POOL_ID",
            &mut aws.cognito_user_pool_id,
            text,
        )?;
        env.set_option("KEYHOOK_COGNITO_DOMAIN", &mut aws.cognito_domain, |s| {
            Ok(s.trim().trim_end_matches('/').to_string())
        })?;
        env.set("KEYHOOK_COGNITO_SCOPES", &mut aws.cognito_scopes, |s| {
            Ok(split_list(s).map(str::to_string).collect())
        })?;
        env.set("KEYHOOK_REVOKE", &mut aws.revoke, parse_from_str)?;
        env.set(
            "KEYHOOK_CLIENT_API_KEY",
            &mut aws.client_api_key,
            parse_bool,
        )?;
        env.set(
            "KEYHOOK_INDEX_REFRESH_SECS",
            &mut aws.index_refresh_secs,
            parse_from_str,
        )?;
        env.set(
            "KEYHOOK_AWS_RATE_LIMIT",
            &mut aws.rate_limit,
            parse_from_str,
        )?;
        env.set(
            "KEYHOOK_AWS_TIMEOUT_SECS",
            &mut aws.timeout_secs,
            parse_from_str,
        )?;
        env.set(
            "KEYHOOK_AWS_MAX_ATTEMPTS",
            &mut aws.max_attempts,
            parse_from_str,
        )?;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.readme.tolerance_secs == 0 {
            return invalid(
                "readme.tolerance_secs (KEYHOOK_README_TOLERANCE_SECS) must be at least 1".into(),
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.body_limit) {
            return invalid(format!(
                "body_limit (KEYHOOK_BODY_LIMIT) must be between 1024 and 16777216 bytes, got {}",
                self.body_limit
            ));
        }
        if self.readme.secret.iter().any(|s| s.expose().is_empty()) {
            return invalid(
                "readme.secret (KEYHOOK_README_SECRET) contains an empty secret".into(),
            );
        }
        if let Some(plan) = &self.readme.usage_plan_id {
            if plan.is_empty() {
                return invalid("readme.usage_plan_id (KEYHOOK_USAGE_PLAN_ID) is empty".into());
            }
        }
        for field in RESERVED_RESPONSE_FIELDS {
            if self.readme.response.contains_key(field) {
                return invalid(format!(
                    "readme.response must not set `{field}`: keyhook fills it from the reader's credentials"
                ));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("set both KEYHOOK_TLS_CERT and KEYHOOK_TLS_KEY, or neither".into());
        }
        let aws = &self.aws;
        if aws.index_refresh_secs == 0 {
            return invalid(
                "aws.index_refresh_secs (KEYHOOK_INDEX_REFRESH_SECS) must be at least 1".into(),
            );
        }
        if !(aws.rate_limit > 0.0 && aws.rate_limit.is_finite()) {
            return invalid(
                "aws.rate_limit (KEYHOOK_AWS_RATE_LIMIT) must be a positive number".into(),
            );
        }
        if aws.timeout_secs == 0 || aws.max_attempts == 0 {
            return invalid("aws.timeout_secs and aws.max_attempts must be at least 1".into());
        }
        if self.backend == BackendKind::Aws
            && self.sensedia.credential_type == CredentialKind::ClientCredentials
            && aws.cognito_user_pool_id.is_none()
        {
            return invalid(
                "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE=client_credentials on the aws backend needs KEYHOOK_COGNITO_USER_POOL_ID".into(),
            );
        }
        if let Some(domain) = &aws.cognito_domain {
            if !domain.starts_with("https://") && !domain.starts_with("http://") {
                return invalid(format!(
                    "aws.cognito_domain (KEYHOOK_COGNITO_DOMAIN) must be a URL such as https://auth.example.com, got `{domain}`"
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for user in &self.sensedia.users {
            if !seen.insert(&user.user) {
                return invalid(format!(
                    "sensedia.users (KEYHOOK_SENSEDIA_USERS) names `{}` twice",
                    user.user
                ));
            }
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
            "metrics",
            match self.metrics_listen {
                Some(addr) => format!("GET /metrics on {addr}"),
                None => "GET /metrics on the main listener".to_string(),
            },
        );
        out.insert(
            "readme",
            if self.readme.secret.is_empty() {
                "POST /readme/webhook answers 503: no KEYHOOK_README_SECRET".to_string()
            } else {
                format!(
                    "POST /readme/webhook with {} secret(s), tolerance {} s, provisioning {}{}",
                    self.readme.secret.len(),
                    self.readme.tolerance_secs,
                    if self.readme.provision { "on" } else { "off" },
                    match &self.readme.usage_plan_id {
                        Some(plan) => format!(" (usage plan {plan})"),
                        None => String::new(),
                    }
                )
            },
        );
        out.insert(
            "sensedia",
            if self.sensedia.users.is_empty() {
                "/v1 routes answer 503: no KEYHOOK_SENSEDIA_USERS".to_string()
            } else {
                let users: Vec<&str> = self
                    .sensedia
                    .users
                    .iter()
                    .map(|u| u.user.as_str())
                    .collect();
                format!(
                    "/v1 routes for user(s) {}, issuing {}",
                    users.join(", "),
                    self.sensedia.credential_type
                )
            },
        );
        if self.backend == BackendKind::Aws {
            let aws = &self.aws;
            out.insert(
                "aws",
                format!(
                    "api keys (revoke: {:?}), client credentials {}, index refresh {} s, {} calls/s, timeout {} s x {} attempts",
                    aws.revoke,
                    match &aws.cognito_user_pool_id {
                        Some(pool) => format!("in user pool {pool}"),
                        None => "off (no KEYHOOK_COGNITO_USER_POOL_ID)".into(),
                    },
                    aws.index_refresh_secs,
                    aws.rate_limit,
                    aws.timeout_secs,
                    aws.max_attempts
                ),
            );
        }
        out
    }
}

/// Reads one variable (or its `_FILE` twin) and parses it.
struct EnvLayer<F> {
    env: F,
}

impl<F: Fn(&str) -> Option<String>> EnvLayer<F> {
    fn raw(&self, var: &str) -> Result<Option<String>, ConfigError> {
        let file_var = format!("{var}_FILE");
        match ((self.env)(var), (self.env)(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::Env {
                var: var.to_string(),
                message: format!("set either {var} or {file_var}, not both"),
            }),
            (Some(value), None) => Ok(Some(value)),
            (None, Some(path)) => std::fs::read_to_string(&path)
                // Files written by editors and `echo` end in a newline that
                // is not part of the secret.
                .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| ConfigError::Env {
                    var: file_var,
                    message: format!("cannot read {path}: {e}"),
                }),
            (None, None) => Ok(None),
        }
    }

    fn set<T>(
        &self,
        var: &str,
        slot: &mut T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        if let Some(raw) = self.raw(var)? {
            *slot = parse(&raw).map_err(|message| ConfigError::Env {
                var: var.to_string(),
                message,
            })?;
        }
        Ok(())
    }

    /// Like `set`, but an empty value clears the setting.
    fn set_option<T>(
        &self,
        var: &str,
        slot: &mut Option<T>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        self.set(var, slot, |s| {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                parse(s).map(Some)
            }
        })
    }
}

fn parse_from_str<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    s.trim().parse::<T>().map_err(|e| e.to_string())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// A list given either as a TOML array or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => split_list(&s).map(str::to_string).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

pub(crate) fn secret_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Redacted<String>>, D::Error> {
    Ok(OneOrMany::deserialize(d)?
        .items()
        .into_iter()
        .map(Redacted::new)
        .collect())
}

pub(crate) fn basic_user_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BasicUser>, D::Error> {
    OneOrMany::deserialize(d)?
        .items()
        .iter()
        .map(|pair| BasicUser::from_str(pair).map_err(serde::de::Error::custom))
        .collect()
}

pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(OneOrMany::deserialize(d)?.items())
}

pub(crate) fn credential_kind<'de, D: Deserializer<'de>>(d: D) -> Result<CredentialKind, D::Error> {
    parse_credential_kind(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Loads `file` (none: an empty file, so the built-in defaults) under
    /// the environment `vars`.
    fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyhook.toml");
        std::fs::write(&path, file.unwrap_or("")).unwrap();
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(&ConfigSource::Explicit(path), |k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.backend, BackendKind::Local);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.readme.secret.is_empty());
        assert!(!c.readme.provision);
        assert_eq!(c.readme.tolerance_secs, 1800);
        assert!(c.sensedia.users.is_empty());
        assert_eq!(c.sensedia.credential_type, CredentialKind::ApiKey);
        assert_eq!(c.readme.usage_plan_id, None);
        assert_eq!(c.log_format, None);
        assert_eq!(c.body_limit, 65536);
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let file = r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/keyhook"
            [readme]
            secret = ["from-file"]
            tolerance_secs = 60
            [readme.response]
            isReadOnly = true
            parameters = { region = "eu-west-1" }
            [sensedia]
            users = ["portal:pw1"]
            credential_type = "client_credentials"
        "#;
        let c = load(Some(file), &[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.readme.tolerance_secs, 60);
        assert_eq!(c.readme.secret[0].expose(), "from-file");
        assert_eq!(c.readme.response["parameters"]["region"], "eu-west-1");
        assert_eq!(
            c.sensedia.credential_type,
            CredentialKind::ClientCredentials
        );

        let c = load(
            Some(file),
            &[
                ("KEYHOOK_LISTEN", "127.0.0.1:7000"),
                ("KEYHOOK_README_SECRET", "new, old"),
                ("KEYHOOK_README_PROVISION", "true"),
                ("KEYHOOK_SENSEDIA_USERS", "a:1,b:with:colons"),
                ("KEYHOOK_SENSEDIA_CREDENTIAL_TYPE", "api_key"),
                ("KEYHOOK_USAGE_PLAN_ID", "plan42"),
                ("KEYHOOK_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        let secrets: Vec<&str> = c
            .readme
            .secret
            .iter()
            .map(|s| s.expose().as_str())
            .collect();
        assert_eq!(secrets, ["new", "old"]);
        assert!(c.readme.provision);
        assert_eq!(c.sensedia.users[1].user, "b");
        assert_eq!(c.sensedia.users[1].password.expose(), "with:colons");
        assert_eq!(c.sensedia.credential_type, CredentialKind::ApiKey);
        assert_eq!(c.readme.usage_plan_id.as_deref(), Some("plan42"));
        assert_eq!(c.log_format, Some(LogFormat::Json));
        assert_eq!(
            c.readme.tolerance_secs, 60,
            "file value kept when env is silent"
        );
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "file-secret\n").unwrap();
        let c = load(
            None,
            &[("KEYHOOK_README_SECRET_FILE", path.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(c.readme.secret[0].expose(), "file-secret");

        let err = load(
            None,
            &[
                ("KEYHOOK_README_SECRET_FILE", path.to_str().unwrap()),
                ("KEYHOOK_README_SECRET", "x"),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn errors_name_the_culprit_and_hide_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("KEYHOOK_BACKEND", "gcp")], "KEYHOOK_BACKEND"),
            (&[("KEYHOOK_LISTEN", "nowhere")], "KEYHOOK_LISTEN"),
            (
                &[("KEYHOOK_README_PROVISION", "maybe")],
                "KEYHOOK_README_PROVISION",
            ),
            (
                &[("KEYHOOK_README_TOLERANCE_SECS", "-5")],
                "KEYHOOK_README_TOLERANCE_SECS",
            ),
            (
                &[("KEYHOOK_README_TOLERANCE_SECS", "0")],
                "KEYHOOK_README_TOLERANCE_SECS",
            ),
            (
                &[("KEYHOOK_SENSEDIA_USERS", "nocolon")],
                "KEYHOOK_SENSEDIA_USERS",
            ),
            (
                &[("KEYHOOK_SENSEDIA_USERS", "user:")],
                "KEYHOOK_SENSEDIA_USERS",
            ),
            (
                &[("KEYHOOK_SENSEDIA_USERS", "u:hunter2,u:hunter3")],
                "twice",
            ),
            (
                &[("KEYHOOK_SENSEDIA_CREDENTIAL_TYPE", "jwt")],
                "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE",
            ),
            (&[("KEYHOOK_BODY_LIMIT", "10")], "KEYHOOK_BODY_LIMIT"),
            (&[("KEYHOOK_TLS_CERT", "/etc/cert.pem")], "KEYHOOK_TLS_KEY"),
            (
                &[("KEYHOOK_METRICS_LISTEN", "here")],
                "KEYHOOK_METRICS_LISTEN",
            ),
            (&[("KEYHOOK_REVOKE", "shred")], "KEYHOOK_REVOKE"),
            (&[("KEYHOOK_AWS_RATE_LIMIT", "0")], "KEYHOOK_AWS_RATE_LIMIT"),
        ];
        for (vars, needle) in cases {
            let err = load(None, vars).unwrap_err().to_string();
            assert!(err.contains(needle), "{vars:?}: {err}");
            assert!(!err.contains("hunter"), "secret leaked: {err}");
        }
    }

    #[test]
    fn file_errors_are_reported() {
        let err = load(Some("listen = 5"), &[]).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
        let err = load(Some("unknown_key = 1"), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown_key"), "{err}");
        let err = load(Some("[readme.response]\nkeys = []"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("keys"), "{err}");
        let missing = Config::load_with(
            &ConfigSource::Explicit(PathBuf::from("/nonexistent/k.toml")),
            |_| None,
        )
        .unwrap_err();
        assert!(matches!(missing, ConfigError::ReadFile { .. }));
    }

    #[test]
    fn summary_never_shows_secrets() {
        let c = load(
            None,
            &[
                ("KEYHOOK_README_SECRET", "readme-topsecret"),
                ("KEYHOOK_SENSEDIA_USERS", "portal:basic-topsecret"),
            ],
        )
        .unwrap();
        let text = format!("{:?} {:?}", c.summary(), c);
        assert!(text.contains("portal"));
        assert!(!text.contains("topsecret"), "{text}");
    }
}
