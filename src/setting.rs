//! One setting, described once: its key in the TOML file, its environment
//! variable, its built-in default, how the variable's text is read, whether
//! its value is secret, and one line of documentation.
//!
//! Each section type lists its own settings beside the door or backend it
//! configures (`ReadmeSettings::SETTINGS`...); `config` layers them (built-in
//! defaults < TOML file < environment). This module sits below both, with
//! the serde helpers the sections deserialize with, so that no section
//! depends on `config`.

use std::fmt;
use std::str::FromStr;

use figment::value::{Dict, Empty, Tag, Value};
use serde::{Deserialize, Deserializer};

use crate::secret::Redacted;

/// One setting. `key` is its dotted path in the TOML file; the variable
/// `var` (or `{var}_FILE`, a file holding the value) overrides it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub var: &'static str,
    pub read: Read,
    /// The built-in default, written as the variable would be. `None`: unset
    /// (an `Option` setting, or an empty list).
    pub default: Option<&'static str>,
    /// The value is never shown: errors about it do not quote what was given.
    pub secret: bool,
    /// One line for the documentation (the README tables).
    pub doc: &'static str,
}

/// A value its section refuses; the message names the key and the variable,
/// never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// How a variable's text becomes a value. The setting's own type, through
/// serde, then checks it exactly as it checks the TOML file's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Trimmed text. Empty clears a setting that has no default.
    Text,
    /// A path, taken as is. Empty clears a setting that has no default.
    Path,
    /// Comma-separated items (a TOML array, or one such string, in the file).
    /// Only for values that are not secret: a secret may hold a comma.
    List,
    /// One item per line (a TOML array in the file): a multi-valued secret,
    /// whose items may hold commas and colons.
    Lines,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A whole number, at least 0.
    Unsigned,
    /// A number.
    Float,
}

impl Setting {
    /// The value the variable's text `raw` stands for; the error names
    /// what was expected, never the text of a secret.
    pub fn read(&self, raw: &str) -> Result<Value, String> {
        let unset = self.default.is_none() && raw.trim().is_empty();
        Ok(match self.read {
            Read::Text | Read::Path | Read::Unsigned if unset => {
                Value::Empty(Tag::Default, Empty::None)
            }
            Read::Text => Value::from(raw.trim()),
            Read::Path | Read::List | Read::Lines => Value::from(raw),
            Read::Bool => Value::from(parse_bool(raw)?),
            Read::Unsigned => Value::from(raw.trim().parse::<u64>().map_err(|e| e.to_string())?),
            Read::Float => Value::from(raw.trim().parse::<f64>().map_err(|e| e.to_string())?),
        })
    }

    /// The key under its section, `tolerance_secs` for `readme.tolerance_secs`.
    pub fn leaf(&self) -> &'static str {
        self.key.rsplit('.').next().unwrap_or(self.key)
    }

    /// The section's table, `readme` for `readme.tolerance_secs`; `""` at the top.
    pub fn section(&self) -> &'static str {
        self.key.rsplit_once('.').map_or("", |(section, _)| section)
    }
}

/// Puts `value` at the dotted `key` of `dict`, creating the tables on the way.
pub fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_string(), value);
        }
        Some((table, rest)) => {
            let entry = dict
                .entry(table.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// The built-in defaults of `settings`, as a table keyed like the TOML file.
pub fn defaults<'a>(settings: impl IntoIterator<Item = &'a Setting>) -> Dict {
    let mut dict = Dict::new();
    for setting in settings {
        if let Some(text) = setting.default {
            let value = setting
                .read(text)
                .unwrap_or_else(|e| panic!("the default of {} does not read: {e}", setting.key));
            insert(&mut dict, setting.key, value);
        }
    }
    dict
}

/// A section built from its described defaults alone: its `Default`.
pub fn section_default<T: serde::de::DeserializeOwned>(section: &str, settings: &[Setting]) -> T {
    let mut dict = defaults(settings);
    let table = dict
        .remove(section)
        .unwrap_or_else(|| Value::from(Dict::new()));
    table
        .deserialize()
        .unwrap_or_else(|e| panic!("the described defaults of [{section}] do not build it: {e}"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    }
}

/// The items of a comma-separated list, trimmed, empty ones dropped.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// A list given either as a TOML array or as one string.
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

/// The items of a multi-valued secret's text: one per line, blanks around
/// each dropped, blank lines skipped.
///
/// Earlier versions split such values on commas. A single line with a
/// comma that they accepted (every item of that split passes `old_item`:
/// `a:1,b:2`, but also `secret,` they read as `secret`) is refused, not
/// reread, so that an old value cannot silently change meaning; `example`
/// shows the form to use instead. The message quotes nothing of the value.
pub fn lines(
    text: &str,
    old_item: impl Fn(&str) -> bool,
    example: &str,
) -> Result<Vec<String>, String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if let [line] = lines.as_slice() {
        if line.contains(',') && split_list(line).all(old_item) {
            return Err(format!(
                "one line with a comma is how earlier versions listed several items, \
                 refused so that its meaning cannot change silently: give one item per line \
                 (a newline between items, in the variable or in its _FILE; a TOML \
                 array in the file), e.g.\n{example}"
            ));
        }
    }
    Ok(lines)
}

/// Reads a multi-valued secret: a TOML array as is, or text as [`lines`].
pub fn one_per_line<'de, D: Deserializer<'de>>(
    d: D,
    old_item: impl Fn(&str) -> bool,
    example: &str,
) -> Result<Vec<String>, D::Error> {
    match OneOrMany::deserialize(d)? {
        OneOrMany::Many(items) => Ok(items),
        OneOrMany::One(text) => lines(&text, old_item, example).map_err(serde::de::Error::custom),
    }
}

/// serde `deserialize_with` for a list of secrets, one per line; any
/// single line with a comma was a list in earlier versions.
pub fn secret_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Redacted<String>>, D::Error> {
    Ok(
        one_per_line(d, |_| true, "    first-secret\n    next-secret")?
            .into_iter()
            .map(Redacted::new)
            .collect(),
    )
}

/// serde `deserialize_with` for a list of items each read with `FromStr`.
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    OneOrMany::deserialize(d)?
        .items()
        .iter()
        .map(|item| item.parse().map_err(serde::de::Error::custom))
        .collect()
}
