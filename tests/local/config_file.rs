//! `config/keyhook.toml`, the file the server loads by default, and the
//! README's tables of variables: the file must load, change nothing, and
//! document every setting with its variable and true default; the tables
//! are generated from the settings' one description
//! (`keyhook::config::settings()`), so the documentation cannot drift from
//! the code. `BLESS=1 cargo test --test local config_file` rewrites the tables.

use keyhook::config::{settings, Config};
use keyhook::setting::{Read, Setting};

const FILE: &str = include_str!("../../config/keyhook.toml");

/// The file with every `# key = value` line (a documented default)
/// uncommented; `## ...` examples stay comments.
fn defaults_uncommented() -> String {
    FILE.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn debug(config: &Config) -> String {
    format!("{config:?}")
}

#[test]
fn the_shipped_config_file_loads_and_changes_no_default() {
    let config = Config::from_toml(FILE).expect("config/keyhook.toml is valid");
    assert_eq!(debug(&config), debug(&Config::default()));
}

#[test]
fn every_documented_default_is_a_real_key_with_its_real_value() {
    let text = defaults_uncommented();
    let uncommented = text
        .lines()
        .filter(|l| l.contains(" = ") && !l.starts_with('#'));
    assert!(uncommented.count() >= 14, "{text}");
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(debug(&config), debug(&Config::default()));
}

#[test]
fn the_shipped_config_file_sets_no_secret() {
    let config = Config::from_toml(FILE).unwrap();
    assert!(config.readme.secret.is_empty());
    assert!(config.sensedia.users.is_empty());
}

#[test]
fn the_commented_examples_are_valid_settings() {
    // Every `## key = value` line, uncommented, in the table it sits in.
    let text: String = FILE
        .lines()
        .map(|line| line.strip_prefix("## ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.readme.response["isReadOnly"], true);
    assert_eq!(config.readme.usage_plan_id.as_deref(), Some("a1b2c3"));
    assert_eq!(
        config.aws.api_scopes["5aba4csvd4"],
        ["orders/read", "orders/write"]
    );
}

/// The paragraph (lines between blank lines) of `text` where `line` sits.
fn paragraph_of<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let start = lines[..at]
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let end = lines[at..]
        .iter()
        .position(|l| l.trim().is_empty())
        .map_or(lines.len(), |i| at + i);
    lines[start..end].to_vec()
}

/// The lines of `[section]` (the top level for `""`).
fn table_lines(section: &str) -> Vec<&'static str> {
    let mut current = "";
    FILE.lines()
        .filter(|line| {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name;
                return false;
            }
            current == section
        })
        .collect()
}

#[test]
fn every_setting_is_in_the_config_file_with_its_variable_and_default() {
    let mut wrong = Vec::new();
    for setting in settings() {
        let lines = table_lines(setting.section());
        let leaf = setting.leaf();
        let default_line = format!("# {leaf} = ");
        let example_line = format!("## {leaf} = ");
        let named = format!("`{leaf}`");
        let at = lines.iter().position(|l| {
            l.starts_with(&default_line) || l.starts_with(&example_line) || l.contains(&named)
        });
        let Some(at) = at else {
            wrong.push(format!("{}: not in its table", setting.key));
            continue;
        };
        let paragraph = paragraph_of(&lines, at);
        if !paragraph.iter().any(|l| l.contains(setting.var)) {
            wrong.push(format!("{}: {} not beside it", setting.key, setting.var));
        }
        // Secrets belong in files mounted by the orchestrator: show how.
        let file_var = format!("{}_FILE", setting.var);
        if setting.secret && !paragraph.iter().any(|l| l.contains(&file_var)) {
            wrong.push(format!("{}: {file_var} not beside it", setting.key));
        }
        // The value itself is checked by the tests above: uncommented, the
        // defaults must build `Config::default()`.
        let shows_default = lines[at].starts_with(&default_line);
        // A list without a default is empty: `[]` shows that, but a secret
        // has no line with a value in this file.
        let empty_list = setting.read == Read::List && lines[at].ends_with(" = []");
        let right = match setting.default {
            Some(_) => shows_default,
            None => !shows_default || (empty_list && !setting.secret),
        };
        if !right {
            wrong.push(format!(
                "{}: default {:?}, but the file's line is `{}`",
                setting.key, setting.default, lines[at]
            ));
        }
    }
    assert!(wrong.is_empty(), "config/keyhook.toml: {wrong:#?}");
}

/// Every `KEYHOOK_*` name in `text`, `_FILE` twins folded into their variable.
fn variables_named(text: &str) -> Vec<String> {
    text.match_indices("KEYHOOK_")
        .map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            name.strip_suffix("_FILE").unwrap_or(&name).to_string()
        })
        .collect()
}

#[test]
fn the_documentation_names_no_unknown_variable() {
    for (doc, text) in [("config/keyhook.toml", FILE), ("README.md", README)] {
        for name in variables_named(text) {
            assert!(
                name == "KEYHOOK_CONFIG" || settings().any(|s| s.var == name),
                "{doc} names {name}, which no setting reads"
            );
        }
    }
}

const README: &str = include_str!("../../README.md");
const TABLE_HEADER: &str = "| variable | meaning | default |\n|---|---|---|\n";

/// A README table of variables, from the description.
fn table<'a>(rows: impl Iterator<Item = &'a Setting>) -> String {
    let mut out = TABLE_HEADER.to_string();
    for s in rows {
        let default = match s.default {
            Some(value) => format!("`{value}`"),
            None => "none".to_string(),
        };
        let secret = if s.secret {
            "secret, never shown: "
        } else {
            ""
        };
        out += &format!("| `{}` | {secret}{} | {default} |\n", s.var, s.doc);
    }
    out
}

/// The README's tables: the AWS backend's settings in their own section.
fn readme_tables() -> [String; 2] {
    [
        table(settings().filter(|s| s.section() != "aws")),
        table(settings().filter(|s| s.section() == "aws")),
    ]
}

#[test]
fn the_readme_tables_are_generated_from_the_description() {
    let mut text = README.to_string();
    let mut from = 0;
    for expected in readme_tables() {
        let start = from
            + text[from..]
                .find(TABLE_HEADER)
                .expect("a table of variables");
        let len = text[start..]
            .find("\n\n")
            .map_or(text.len() - start, |end| end + 1);
        let found = &text[start..start + len];
        if found != expected {
            if std::env::var_os("BLESS").is_none() {
                panic!(
                    "README.md's table is not the one the settings describe; \
                     run `BLESS=1 cargo test --test local config_file`.\nfound:\n{found}\nexpected:\n{expected}"
                );
            }
            text.replace_range(start..start + len, &expected);
        }
        from = start + expected.len();
    }
    if text != README {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"), text).unwrap();
    }
}
