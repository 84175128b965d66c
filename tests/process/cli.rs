//! The real `keyhook` binary: `sign`, `check`, and `serve` as a child
//! process (signals, graceful shutdown, persistence across restarts).
//!
//! Every child runs with a cleared environment in a temporary working
//! directory, so neither the caller's `KEYHOOK_*` variables nor the
//! repository's `config/keyhook.toml` leak in.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{basic, parse_response, Process};
use serde_json::{json, Value};

const SECRET: &str = "cli-readme-secret";
const PORTAL: &str = "portal:cli-portal-password";
/// Generous bounds for a debug build on a loaded machine; conditions are
/// awaited, these only stop a broken test from hanging.
const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn keyhook(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyhook"));
    command.env_clear().current_dir(cwd);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("keyhook runs")
}

/// `keyhook serve` with `var=value` stops at start with exit code 2, an
/// error naming `var` and saying each of `says`, and nothing of `hidden`
/// (the secret). Still serving after PATIENCE: the value was accepted, a
/// failure (the child is killed).
pub(crate) fn refused_at_start(
    dir: &Path,
    var: &str,
    value: &str,
    says: &[&str],
    hidden: Option<&str>,
) {
    let mut child = keyhook(dir)
        .arg("serve")
        .env(var, value)
        .env("KEYHOOK_LISTEN", "127.0.0.1:0")
        .env("KEYHOOK_DATA_DIR", dir.join(format!("data-{var}")))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keyhook runs");
    let deadline = std::time::Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{var}: keyhook accepted the value and kept serving");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{var}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(var), "{stderr}");
    for needle in says {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    if let Some(hidden) = hidden {
        assert!(!stderr.contains(hidden), "secret leaked: {stderr}");
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn sign_prints_the_contract_vector_header_then_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(keyhook(dir.path()).args([
        "sign",
        "--secret",
        "docs4dayz",
        "--email",
        "marc@readme.io",
        "--timestamp",
        "1700000000000",
    ]));
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout),
        "t=1700000000000,v0=9b3dfcfdeeb2fa99c400c6f23f865c3ab24b9daaa3e05e2299febf60c0a78b96\n\
         {\"email\":\"marc@readme.io\"}\n"
    );
}

#[test]
fn sign_writes_non_ascii_and_slashes_raw_as_readme_does() {
    let dir = tempfile::tempdir().unwrap();
    for (email, v0) in [
        (
            "jöhn@example.com",
            "55619053a8b37910c6ef6d41234a589a2db9606dc263e397f7e3bd690d8dea1f",
        ),
        (
            "a/b@example.com",
            "231daf4fe49dc9990d00ae1eba9883e34d23e384709aa5415f861a46e0d12be8",
        ),
    ] {
        let output = run(keyhook(dir.path()).args([
            "sign",
            "--secret",
            "docs4dayz",
            "--email",
            email,
            "--timestamp",
            "1700000000000",
        ]));
        assert!(output.status.success());
        assert_eq!(
            text(&output.stdout),
            format!("t=1700000000000,v0={v0}\n{{\"email\":\"{email}\"}}\n")
        );
    }
}

#[test]
fn sign_without_a_timestamp_signs_now() {
    let dir = tempfile::tempdir().unwrap();
    let before = keyhook::clock::now_ms();
    let output = run(keyhook(dir.path()).args(["sign", "--secret", "s", "--email", "a@b.io"]));
    let after = keyhook::clock::now_ms();
    let stdout = text(&output.stdout);
    let header = stdout.lines().next().unwrap();
    let t: i64 = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&t),
        "{t} not in {before}..={after}"
    );
    assert_eq!(
        header,
        keyhook::readme::signature::sign("s", t, br#"{"email":"a@b.io"}"#)
    );
}

#[test]
fn check_accepts_a_good_configuration_and_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = run(keyhook(dir.path())
        .arg("check")
        .env(
            "KEYHOOK_README_SECRET",
            "old-readme-secret\nnew-readme-secret",
        )
        .env("KEYHOOK_SENSEDIA_USERS", "portal:sensedia-password")
        .env("KEYHOOK_DATA_DIR", &data)
        .env("KEYHOOK_LISTEN", "127.0.0.1:9999"));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("127.0.0.1:9999"), "{stdout}");
    assert!(stdout.contains("local"), "{stdout}");
    assert!(stdout.contains("2 secret(s)"), "{stdout}");
    assert!(stdout.contains("1 Basic-auth pair(s)"), "{stdout}");
    assert!(stdout.contains(&data.display().to_string()), "{stdout}");
    assert!(stdout.trim_end().ends_with("configuration OK"), "{stdout}");
    for secret in [
        "old-readme-secret",
        "new-readme-secret",
        "sensedia-password",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
    }
}

#[test]
fn check_reads_secrets_from_file_variables() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("readme-secret");
    std::fs::write(&secret_file, "from-a-file\n").unwrap();
    let users_file = dir.path().join("users");
    std::fs::write(&users_file, "portal:pw1\nother:pw2\n").unwrap();
    let output = run(keyhook(dir.path())
        .arg("check")
        .env("KEYHOOK_README_SECRET_FILE", &secret_file)
        .env("KEYHOOK_SENSEDIA_USERS_FILE", &users_file)
        .env("KEYHOOK_DATA_DIR", dir.path().join("data")));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("1 secret(s)"), "{stdout}");
    assert!(
        stdout.contains("2 Basic-auth pair(s) of 2 user(s)"),
        "{stdout}"
    );
    assert!(!stdout.contains("from-a-file") && !stdout.contains("pw1"));
}

#[test]
fn check_reads_the_file_named_by_keyhook_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("elsewhere.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7777\"\n[readme]\nprovision = true\n",
    )
    .unwrap();
    let output = run(keyhook(dir.path())
        .arg("check")
        .env("KEYHOOK_CONFIG", &file)
        .env("KEYHOOK_DATA_DIR", dir.path().join("data")));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("127.0.0.1:7777"), "{stdout}");
}

#[test]
fn check_rejects_an_unknown_backend_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(keyhook(dir.path())
        .arg("check")
        .env("KEYHOOK_BACKEND", "gcp")
        .env("KEYHOOK_DATA_DIR", dir.path().join("data")));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("KEYHOOK_BACKEND"), "{stderr}");
    assert!(stderr.contains("gcp"), "{stderr}");
}

#[test]
fn check_rejects_a_malformed_value_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("KEYHOOK_LISTEN", "not-an-address"),
        ("KEYHOOK_README_TOLERANCE_SECS", "soon"),
        ("KEYHOOK_README_PROVISION", "maybe"),
        ("KEYHOOK_SENSEDIA_USERS", "no-colon-here"),
        ("KEYHOOK_SENSEDIA_CREDENTIAL_TYPE", "jwt"),
    ] {
        let output = run(keyhook(dir.path()).arg("check").env(var, value));
        assert!(!output.status.success(), "{var}={value}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

/// A password of three fragments, each of which a comma-splitting reader
/// made into a user name or a password of its own.
const COMMA_PASSWORD: &str = "FRAG-one,FRAG-two:FRAG-three";

#[test]
fn check_prints_nothing_derived_from_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(keyhook(dir.path())
        .arg("check")
        .env(
            "KEYHOOK_SENSEDIA_USERS",
            format!("portal:{COMMA_PASSWORD}\nportal:FRAG-next,FRAG-pw"),
        )
        .env("KEYHOOK_DATA_DIR", dir.path().join("data")));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("2 Basic-auth pair(s) of 1 user(s)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("FRAG") && !stderr.contains("FRAG"),
        "{stdout}{stderr}"
    );
}

#[test]
fn a_comma_separated_value_of_earlier_versions_stops_the_start_showing_the_new_form() {
    let dir = tempfile::tempdir().unwrap();
    refused_at_start(
        dir.path(),
        "KEYHOOK_SENSEDIA_USERS",
        "portal:hunter-one,other:hunter-two",
        &[
            "one item per line",
            "    portal:first-password\n    portal:next-password",
        ],
        Some("hunter"),
    );
    refused_at_start(
        dir.path(),
        "KEYHOOK_README_SECRET",
        "hunter-old-secret,hunter-new-secret",
        &["one item per line", "    first-secret\n    next-secret"],
        Some("hunter"),
    );
}

#[test]
fn a_short_readme_secret_or_an_endless_tolerance_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    refused_at_start(
        dir.path(),
        "KEYHOOK_README_SECRET",
        "7-chars",
        &["shorter than 8 characters"],
        Some("7-chars"),
    );
    refused_at_start(
        dir.path(),
        "KEYHOOK_README_TOLERANCE_SECS",
        "99999999999",
        &["between 1 and 86400 seconds"],
        None,
    );
}

#[tokio::test]
async fn a_password_with_commas_and_colons_and_its_rotated_twin_both_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let served = Process::spawn_in(
        dir.path(),
        &[
            (
                "KEYHOOK_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            (
                "KEYHOOK_SENSEDIA_USERS",
                format!("portal:{COMMA_PASSWORD}\nportal:next,pass:word"),
            ),
            ("RUST_LOG", "info".into()),
        ],
    );
    let health = |pair: String| {
        let request = served.http.get(served.url("/v1/health"));
        async move {
            let response = request.header("authorization", basic(&pair)).send();
            response.await.unwrap().status()
        }
    };
    for pair in [
        format!("portal:{COMMA_PASSWORD}"),
        "portal:next,pass:word".into(),
    ] {
        assert_eq!(health(pair.clone()).await, 204, "{pair}");
    }
    // What a comma-splitting reader made of them: fragments, refused.
    for pair in ["portal:FRAG-one", "FRAG-two:FRAG-three", "portal:next"] {
        assert_eq!(health(pair.into()).await, 401, "{pair}");
    }
    served.terminate();
    assert_eq!(served.wait().code(), Some(0));
}

#[test]
fn check_rejects_a_missing_explicit_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(keyhook(dir.path())
        .args(["--config", "missing.toml", "check"])
        .env("KEYHOOK_DATA_DIR", dir.path().join("data")));
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("missing.toml"));
}

/// `keyhook serve` in `cwd` on `data_dir`, with both front doors open and
/// info logs (the harness reads its address from them).
fn serve(cwd: &Path, data_dir: &Path) -> Process {
    Process::spawn_in(
        cwd,
        &[
            ("KEYHOOK_DATA_DIR", data_dir.display().to_string()),
            ("KEYHOOK_README_SECRET", SECRET.into()),
            ("KEYHOOK_SENSEDIA_USERS", PORTAL.into()),
            ("RUST_LOG", "info".into()),
        ],
    )
}

#[tokio::test]
async fn serve_answers_healthz_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &dir.path().join("data"));
    let response = served.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    served.terminate();
    let exit = served.wait();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &dir.path().join("data"));
    let body = json!({"appName": "In flight", "appSlug": "inflight", "developer": "dev@corp.com"})
        .to_string();
    let mut stream = TcpStream::connect(served.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    // Headers only, asking to continue: the server answers `100 Continue`
    // once the handler starts reading the body, so the request is
    // provably in flight when the signal arrives.
    write!(
        stream,
        "POST /v1/createCredentials HTTP/1.1\r\nHost: keyhook\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        basic(PORTAL),
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    reader.read_line(&mut line).unwrap(); // the blank line after it

    served.terminate();
    served.wait_for_log("shutdown requested: finishing in-flight requests");
    // The server is shutting down; the request it already began still
    // gets its answer.
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut raw).unwrap();
    let (status, answer) = parse_response(&raw);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["credentialType"], "API_KEY");

    let exit = served.wait();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

#[tokio::test]
async fn a_credential_survives_a_server_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = serve(dir.path(), &data);
    let created = first.create_app("durable@corp.com", "durable").await;
    first.terminate();
    assert_eq!(first.wait().code(), Some(0));

    let second = serve(dir.path(), &data);
    let answer = second.login_ok("durable@corp.com").await;
    assert_eq!(
        answer["keys"],
        json!([{"name": "App durable", "apiKey": created["apiKey"]}])
    );
    second.terminate();
    assert_eq!(second.wait().code(), Some(0));
}

#[tokio::test]
async fn a_revocation_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = serve(dir.path(), &data);
    let created = first.create_app("gone@corp.com", "gone").await;
    let response = first
        .sensedia(
            "revokeCredentials",
            &json!({"apiKeyId": created["apiKeyId"]}),
        )
        .await;
    assert_eq!(response.status(), 204);
    first.terminate();
    assert_eq!(first.wait().code(), Some(0));

    let second = serve(dir.path(), &data);
    let response = second.login("gone@corp.com").await;
    let status = response.status();
    assert_eq!(status, 404, "{}", response.text().await.unwrap());
    second.terminate();
    assert_eq!(second.wait().code(), Some(0));
}
