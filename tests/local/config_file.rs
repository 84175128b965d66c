//! `config/keyhook.toml`, the file the server loads by default: it must
//! load, change nothing, and document every setting with its true default,
//! so the documentation cannot drift from the code.

use keyhook::config::Config;

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

#[test]
fn every_environment_variable_of_the_code_is_documented() {
    let code = include_str!("../../src/config.rs");
    let mut missing = Vec::new();
    for (at, _) in code.match_indices("\"KEYHOOK_") {
        let name: String = code[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !FILE.contains(&name) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not in config/keyhook.toml: {missing:?}"
    );
}
