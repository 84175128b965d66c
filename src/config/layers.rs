//! The three layers, merged by figment: built-in defaults < the TOML file <
//! the environment. The environment layer is driven by the settings'
//! description, so every variable has exactly its documented name, and
//! every error names the variable (or file key) at fault without quoting a
//! secret.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{error::Kind, Figment, Metadata, Profile, Provider};

use super::{settings, Config, ConfigError};
use crate::setting::{self, Setting};

const DEFAULTS: &str = "built-in defaults";
const ENVIRONMENT: &str = "environment";

/// A layer already read into a table keyed like the TOML file.
struct Layer {
    name: &'static str,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn defaults() -> Figment {
    Figment::from(Layer {
        name: DEFAULTS,
        dict: setting::defaults(settings()),
    })
}

/// The built-in defaults alone.
pub(super) fn default_config() -> Config {
    defaults()
        .extract()
        .unwrap_or_else(|e| panic!("the described defaults do not build a Config: {e}"))
}

/// Defaults < `text`, a TOML file; errors name the key at fault.
pub(super) fn from_toml(text: &str) -> Result<Config, String> {
    with_file(defaults(), text)?
        .extract()
        .map_err(|e| at_key(&e, message(&e)))
}

/// Defaults < the file at `path`, if any < the environment `env`.
pub(super) fn load(
    path: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut figment = defaults();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        figment = with_file(figment, &text).map_err(|message| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message,
        })?;
    }
    let environment = Layer {
        name: ENVIRONMENT,
        dict: environment(env)?,
    };
    figment.merge(environment).extract().map_err(|e| {
        let from_env = e.metadata.as_ref().is_some_and(|m| m.name == ENVIRONMENT);
        match (from_env, setting_at(&e), path) {
            (true, Some(setting), _) => ConfigError::Env {
                var: setting.var.to_string(),
                message: message(&e),
            },
            (false, _, Some(path)) => ConfigError::ParseFile {
                path: path.to_path_buf(),
                message: at_key(&e, message(&e)),
            },
            _ => ConfigError::Invalid(at_key(&e, message(&e))),
        }
    })
}

fn with_file(figment: Figment, text: &str) -> Result<Figment, String> {
    // Checked here first: toml's own message, without the source line a
    // secret may sit on.
    toml::from_str::<toml::Table>(text).map_err(|e| e.message().to_string())?;
    Ok(figment.merge(Toml::string(text)))
}

/// Every described variable that is set, read into a table.
fn environment(env: &impl Fn(&str) -> Option<String>) -> Result<Dict, ConfigError> {
    let mut dict = Dict::new();
    for setting in settings() {
        if let Some(raw) = raw(env, setting.var)? {
            let value = setting.read(&raw).map_err(|message| ConfigError::Env {
                var: setting.var.to_string(),
                message,
            })?;
            setting::insert(&mut dict, setting.key, value);
        }
    }
    Ok(dict)
}

/// The text of `var`, or of the file `{var}_FILE` names.
fn raw(env: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{var}_FILE");
    match (env(var), env(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError::Env {
            var: var.to_string(),
            message: format!("set either {var} or {file_var}, not both"),
        }),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            // Files written by editors and `echo` end in a newline that is
            // not part of the secret.
            .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| ConfigError::Env {
                var: file_var,
                message: format!("cannot read {path}: {e}"),
            }),
        (None, None) => Ok(None),
    }
}

/// The setting an error is about: its key, or an item of its list.
fn setting_at(e: &figment::Error) -> Option<&'static Setting> {
    let path = e.path.join(".");
    settings().find(|s| {
        path.strip_prefix(s.key)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// What went wrong. serde's own messages quote the value they reject, so a
/// secret setting gets only the messages keyhook writes (which never do).
fn message(e: &figment::Error) -> String {
    let secret = setting_at(e).is_some_and(|s| s.secret);
    match &e.kind {
        Kind::Message(message) => message.clone(),
        _ if secret => "invalid value (not shown: the setting is secret)".to_string(),
        // figment's own wording doubles the backticks of the choices.
        Kind::UnknownVariant(found, choices) => {
            let choices: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
            format!("expected {}, got `{found}`", choices.join(" or "))
        }
        kind => kind.to_string(),
    }
}

fn at_key(e: &figment::Error, message: String) -> String {
    if e.path.is_empty() {
        message
    } else {
        format!("{message} (key `{}`)", e.path.join("."))
    }
}
