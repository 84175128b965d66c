//! The layering, its errors and the settings' description.
//!
//! (Past 400 lines: a test file, one test per rule of the configuration.)

use super::*;
use crate::setting::Read;
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
            ("KEYHOOK_README_SECRET", "new-secret\n old-secret \n"),
            ("KEYHOOK_README_PROVISION", "true"),
            ("KEYHOOK_SENSEDIA_USERS", "a:1\nb:with:colons"),
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
    assert_eq!(secrets, ["new-secret", "old-secret"]);
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
            "KEYHOOK_SENSEDIA_USERS",
        ),
        (
            &[("KEYHOOK_SENSEDIA_USERS", "u:hunter2\nhunter3")],
            "pair 2 is not `user:password`",
        ),
        (
            &[("KEYHOOK_README_SECRET", "hunter2")],
            "KEYHOOK_README_SECRET",
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
            (
                "KEYHOOK_SENSEDIA_USERS",
                "portal:basic-topsecret\nportal:next-topsecret",
            ),
        ],
    )
    .unwrap();
    let text = format!("{:?} {:?}", c.summary(), c);
    assert!(text.contains("2 Basic-auth pair(s) of 1 user(s)"), "{text}");
    assert!(!text.contains("topsecret"), "{text}");
    // `check` shows not even the user name: half of what a caller presents.
    let summary = format!("{:?}", c.summary());
    assert!(!summary.contains("portal"), "{summary}");
}

#[test]
fn basic_auth_pairs_are_one_per_line_and_keep_commas_and_colons() {
    let pairs = |c: &Config| -> Vec<(String, String)> {
        (c.sensedia.users.iter())
            .map(|u| (u.user.clone(), u.password.expose().clone()))
            .collect()
    };
    let expected = vec![
        ("portal".to_string(), "pa,ss:w:rd".to_string()),
        ("portal".to_string(), "next,pw".to_string()),
    ];
    let c = load(
        None,
        &[(
            "KEYHOOK_SENSEDIA_USERS",
            "portal:pa,ss:w:rd\nportal:next,pw\n",
        )],
    )
    .unwrap();
    assert_eq!(pairs(&c), expected);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, "portal:pa,ss:w:rd\r\n\r\nportal:next,pw\r\n").unwrap();
    let c = load(
        None,
        &[("KEYHOOK_SENSEDIA_USERS_FILE", path.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(pairs(&c), expected);

    let file = "[sensedia]\nusers = [\"portal:pa,ss:w:rd\", \"portal:next,pw\"]";
    assert_eq!(pairs(&load(Some(file), &[]).unwrap()), expected);

    // One line whose commas could not have separated pairs: one pair.
    let c = load(None, &[("KEYHOOK_SENSEDIA_USERS", "portal:pa,ss")]).unwrap();
    assert_eq!(pairs(&c), [("portal".to_string(), "pa,ss".to_string())]);
}

#[test]
fn a_comma_separated_value_of_earlier_versions_is_refused_showing_the_new_form() {
    for (vars, file, culprit, example) in [
        (
            vec![("KEYHOOK_SENSEDIA_USERS", "a:hunter1,b:hunter2")],
            None,
            "KEYHOOK_SENSEDIA_USERS",
            "portal:first-password\n    portal:next-password",
        ),
        (
            vec![("KEYHOOK_README_SECRET", "hunter-old-1, hunter-new-2")],
            None,
            "KEYHOOK_README_SECRET",
            "first-secret\n    next-secret",
        ),
        (
            // Read as `hunter-secret` before: no silent change either.
            vec![("KEYHOOK_README_SECRET", "hunter-secret,")],
            None,
            "KEYHOOK_README_SECRET",
            "first-secret\n    next-secret",
        ),
        (
            vec![("KEYHOOK_SENSEDIA_USERS", "portal:hunter1,")],
            None,
            "KEYHOOK_SENSEDIA_USERS",
            "portal:first-password",
        ),
        (
            vec![],
            Some("[sensedia]\nusers = \"a:hunter1,b:hunter2\""),
            "sensedia.users",
            "portal:first-password",
        ),
    ] {
        let err = load(file, &vars).unwrap_err().to_string();
        assert!(err.contains(culprit), "{err}");
        assert!(err.contains("one item per line"), "{err}");
        assert!(err.contains(example), "{err}");
        assert!(!err.contains("hunter"), "secret leaked: {err}");
    }
}

#[test]
fn a_short_readme_secret_or_a_tolerance_beyond_a_day_is_refused() {
    for vars in [
        vec![("KEYHOOK_README_SECRET", "7-chars")],
        vec![("KEYHOOK_README_SECRET", "long-enough-secret\nshort")],
    ] {
        let err = load(None, &vars).unwrap_err().to_string();
        assert!(err.contains("KEYHOOK_README_SECRET"), "{err}");
        assert!(err.contains("shorter than 8 characters"), "{err}");
        assert!(
            !err.contains("7-chars") && !err.contains("short\""),
            "{err}"
        );
    }
    assert!(load(None, &[("KEYHOOK_README_SECRET", "8-chars!")]).is_ok());
    for tolerance in ["0", "86401", "99999999999"] {
        let err = load(None, &[("KEYHOOK_README_TOLERANCE_SECS", tolerance)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEYHOOK_README_TOLERANCE_SECS"), "{err}");
        assert!(err.contains("between 1 and 86400"), "{err}");
    }
    for tolerance in ["1", "86400"] {
        assert!(load(None, &[("KEYHOOK_README_TOLERANCE_SECS", tolerance)]).is_ok());
    }
}

/// The fields serde knows of in `[section]`, from its unknown-field error.
fn fields_of(section: &str) -> Vec<String> {
    let text = if section.is_empty() {
        "no_such_key = 1".to_string()
    } else {
        format!("[{section}]\nno_such_key = 1")
    };
    let err = Config::from_toml(&text).unwrap_err();
    let list = err
        .split(" (key ")
        .next()
        .and_then(|message| message.split_once("expected `"))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_field_is_described_once_and_every_key_is_a_field() {
    // Tables set only in the file: no variable, documented in keyhook.toml.
    let toml_only = [
        "readme",
        "sensedia",
        "admin",
        "aws",
        "readme.response",
        "readme.plans_by_domain",
        "aws.api_scopes",
    ];
    let mut fields = Vec::new();
    for section in ["", "readme", "sensedia", "admin", "aws"] {
        let names = fields_of(section);
        assert!(names.len() >= 2, "[{section}]: {names:?}");
        for name in names {
            let key = if section.is_empty() {
                name
            } else {
                format!("{section}.{name}")
            };
            if !toml_only.contains(&key.as_str()) {
                fields.push(key);
            }
        }
    }
    let mut described: Vec<String> = settings().map(|s| s.key.to_string()).collect();
    fields.sort();
    described.sort();
    assert_eq!(described, fields);
    let mut vars: Vec<&str> = settings().map(|s| s.var).collect();
    vars.sort();
    vars.dedup();
    assert_eq!(vars.len(), described.len(), "a variable named twice");
}

#[test]
fn every_variable_given_its_default_changes_nothing() {
    let default = format!("{:?}", Config::default());
    for setting in settings() {
        // No default: an empty variable leaves the setting unset (or empty).
        let value = setting.default.unwrap_or("");
        let config = load(None, &[(setting.var, value)])
            .unwrap_or_else(|e| panic!("{} = {value:?}: {e}", setting.var));
        assert_eq!(format!("{config:?}"), default, "{}", setting.var);
    }
}

#[test]
fn every_variable_reaches_its_setting() {
    // A value other than the default, valid for most settings; those it is
    // not valid for must say so naming the variable, not leave it unread.
    let default = format!("{:?}", Config::default());
    for setting in settings() {
        let value = match setting.read {
            Read::Bool => "true",
            Read::Unsigned => "2048",
            Read::Float => "2.5",
            _ if setting.key == "aws.cognito_domain" => "https://auth.example.com",
            _ => "aws",
        };
        match load(None, &[(setting.var, value)]) {
            Ok(config) => assert_ne!(format!("{config:?}"), default, "{}", setting.var),
            Err(err) => assert!(err.to_string().contains(setting.var), "{err}"),
        }
    }
}

#[test]
fn an_empty_variable_clears_a_file_value() {
    let file = "metrics_listen = \"0.0.0.0:9090\"\n[readme]\nusage_plan_id = \"plan\"";
    let c = load(Some(file), &[]).unwrap();
    assert!(c.metrics_listen.is_some() && c.readme.usage_plan_id.is_some());
    let c = load(
        Some(file),
        &[
            ("KEYHOOK_METRICS_LISTEN", ""),
            ("KEYHOOK_USAGE_PLAN_ID", " "),
        ],
    )
    .unwrap();
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.readme.usage_plan_id, None);
}

#[test]
fn the_cognito_domain_loses_its_trailing_slash_from_either_layer() {
    let c = load(Some("[aws]\ncognito_domain = \"https://a.example/\""), &[]).unwrap();
    assert_eq!(c.aws.cognito_domain.as_deref(), Some("https://a.example"));
    let c = load(None, &[("KEYHOOK_COGNITO_DOMAIN", " https://b.example/ ")]).unwrap();
    assert_eq!(c.aws.cognito_domain.as_deref(), Some("https://b.example"));
}

#[test]
fn an_unknown_choice_names_the_choices_once_quoted() {
    let err = load(None, &[("KEYHOOK_BACKEND", "gcp")])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "KEYHOOK_BACKEND: expected `local` or `aws`, got `gcp`");
    let err = load(Some("backend = \"gcp\""), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected `local` or `aws`, got `gcp` (key `backend`)"),
        "{err}"
    );
}

#[test]
fn the_admin_listener_needs_tokens_of_16_characters_and_says_so_without_them() {
    const TOKEN: &str = "an-admin-token-of-32-characters!";
    let err = load(None, &[("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:9091")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("KEYHOOK_ADMIN_TOKENS") && err.contains("is empty"),
        "{err}"
    );
    let short = "fifteen-chars!!";
    let err = load(
        None,
        &[
            ("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:9091"),
            ("KEYHOOK_ADMIN_TOKENS", &format!("{TOKEN}\n{short}")),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("token 2 of 2 is shorter than 16 characters"),
        "{err}"
    );
    assert!(!err.contains(short) && !err.contains(TOKEN), "{err}");
    let c = load(
        None,
        &[
            ("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:9091"),
            (
                "KEYHOOK_ADMIN_TOKENS",
                &format!("{TOKEN}\nanother,token:with-commas\n"),
            ),
        ],
    )
    .unwrap();
    assert_eq!(c.admin.tokens.len(), 2);
    assert_eq!(c.admin.tokens[1].expose(), "another,token:with-commas");
    assert_eq!(c.admin.rotation_grace_secs, 604_800);
    let summary = c.summary()["admin"].clone();
    assert!(
        summary.contains("127.0.0.1:9091") && summary.contains("2 token(s)"),
        "{summary}"
    );
    assert!(!summary.contains(TOKEN), "{summary}");
    assert!(
        summary.contains(&crate::admin::auth::fingerprint(TOKEN)),
        "{summary}"
    );
    // Tokens without a listener: accepted, and `check` says they serve nothing.
    let c = load(None, &[("KEYHOOK_ADMIN_TOKENS", TOKEN)]).unwrap();
    assert!(c.summary()["admin"].contains("KEYHOOK_ADMIN_LISTEN is unset"));
    assert!(load(None, &[]).unwrap().summary()["admin"].starts_with("off"));
}

#[test]
fn the_rotation_grace_is_at_most_90_days_and_the_admin_listener_is_its_own() {
    assert_eq!(
        load(None, &[("KEYHOOK_ROTATION_GRACE_SECS", "0")])
            .unwrap()
            .admin
            .rotation_grace_secs,
        0
    );
    assert!(load(None, &[("KEYHOOK_ROTATION_GRACE_SECS", "7776000")]).is_ok());
    let err = load(None, &[("KEYHOOK_ROTATION_GRACE_SECS", "7776001")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("KEYHOOK_ROTATION_GRACE_SECS"), "{err}");
    let err = load(
        None,
        &[
            ("KEYHOOK_LISTEN", "127.0.0.1:9091"),
            ("KEYHOOK_ADMIN_LISTEN", "127.0.0.1:9091"),
            ("KEYHOOK_ADMIN_TOKENS", "an-admin-token-of-32-characters!"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("KEYHOOK_ADMIN_LISTEN"), "{err}");
}
