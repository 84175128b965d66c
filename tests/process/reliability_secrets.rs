//! No secret in the logs, at the most verbose level. Representative flows,
//! error paths included, run against the real binary with `RUST_LOG=trace`
//! and JSON logs (so dependencies' logs, hyper's and the AWS SDK's, are on
//! too); then no secret may appear anywhere in what it wrote, on stderr or
//! stdout: no API key
//! value or client secret it issued, no configured ReadMe secret, no
//! Basic-auth password (nor its Base64 form), and no wrong password tried.

use std::time::Duration;

use crate::harness::emulator::Emulator;
use crate::harness::Process;
use keyhook::readme::signature;
use reqwest::StatusCode;
use serde_json::{json, Value};

const README_ALPHA: &str = "RDME-SECRET-ALPHA-9f1c2e7b5a";
const README_BETA: &str = "RDME-SECRET-BETA-4d8a6c3e0f";
const README_WRONG: &str = "RDME-WRONG-SECRET-7c1e9a2b44";
const PORTAL: (&str, &str) = ("portal", "PORTAL-PW-OMEGA-73b9e2f1d6");
const ROTATED: (&str, &str) = ("rotated", "PORTAL-PW-SIGMA-1a5d7c9e38");
const WRONG_PW: &str = "WRONG-PW-ZETA-5e2f8a1b90";

fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("RUST_LOG", "trace".into()),
        ("KEYHOOK_LOG_FORMAT", "json".into()),
        (
            "KEYHOOK_README_SECRET",
            format!("{README_ALPHA}\n{README_BETA}"),
        ),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{}:{}\n{}:{}", PORTAL.0, PORTAL.1, ROTATED.0, ROTATED.1),
        ),
        ("KEYHOOK_README_PROVISION", "true".into()),
    ]
}

fn aws_env(emu: &Emulator) -> Vec<(&'static str, String)> {
    let mut env = base_env();
    env.extend(crate::harness::process::aws_env(&emu.endpoint));
    env.extend([
        ("KEYHOOK_USAGE_PLAN_ID", emu.seed.plans[0].clone()),
        ("KEYHOOK_COGNITO_USER_POOL_ID", emu.seed.pool_id.clone()),
        ("KEYHOOK_COGNITO_DOMAIN", "https://auth.keyhook.test".into()),
        ("KEYHOOK_COGNITO_SCOPES", emu.seed.scopes[0].clone()),
    ]);
    env
}

fn basic(user: &str, password: &str) -> String {
    crate::harness::basic(&format!("{user}:{password}"))
}

/// Drives one keyhook process and collects every secret it hands out.
struct Run {
    http: reqwest::Client,
    base: String,
    issued: Vec<String>,
}

impl Run {
    fn new(child: &Process) -> Run {
        Run {
            http: reqwest::Client::new(),
            base: child.base.clone(),
            issued: Vec::new(),
        }
    }

    /// Remembers every secret-looking value of an answer.
    fn collect(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if let (true, Some(s)) = (
                        ["apiKey", "clientSecret", "pass"].contains(&k.as_str()),
                        v.as_str(),
                    ) {
                        self.issued.push(s.to_string());
                    }
                    self.collect(v);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    async fn portal(&mut self, route: &str, auth: &str, body: &Value) -> (StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}/v1/{route}", self.base))
            .header("authorization", auth)
            .json(body);
        self.send_collecting(request).await
    }

    /// Sends `request` and keeps every secret its answer carries.
    async fn send_collecting(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        self.collect(&value);
        (status, value)
    }

    async fn login_with(&mut self, header: &str, body: &str) -> (StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}/readme/webhook", self.base))
            .header("readme-signature", header)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send_collecting(request).await
    }

    async fn login(&mut self, secret: &str, email: &str) -> (StatusCode, Value) {
        let body = json!({ "email": email }).to_string();
        let header = signature::sign(secret, keyhook::clock::now_ms(), body.as_bytes());
        self.login_with(&header, &body).await
    }

    /// The error paths: wrong passwords, broken Basic auth, bad signatures.
    async fn hostile(&mut self, email: &str) {
        let app = json!({"appName": "Nope", "developer": email});
        for auth in [
            basic(PORTAL.0, WRONG_PW),
            basic(ROTATED.0, WRONG_PW),
            basic(ROTATED.0, PORTAL.1),
            format!("Basic {}:{WRONG_PW}", PORTAL.0),
            format!("Bearer {WRONG_PW}"),
            basic(WRONG_PW, ""),
        ] {
            let (status, _) = self.portal("createCredentials", &auth, &app).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
        }
        let body = json!({ "email": email }).to_string();
        let now = keyhook::clock::now_ms();
        for header in [
            signature::sign(README_WRONG, now, body.as_bytes()),
            signature::sign(README_ALPHA, now - 3_600_000, body.as_bytes()),
            signature::sign(README_BETA, now, b"{\"email\":\"other@corp.com\"}"),
            format!("t={now},v0={README_WRONG}"),
            README_ALPHA.to_string(),
        ] {
            let (status, _) = self.login_with(&header, &body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
        }
        // Bad bodies behind good credentials: errors that quote input.
        let (status, _) = self
            .portal(
                "createCredentials",
                &basic(PORTAL.0, PORTAL.1),
                &json!({"appName": WRONG_PW, "developer": "not-an-email"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    /// The whole Sensedia life cycle plus logins, for one app.
    async fn life_cycle(&mut self, developer: &str, slug: &str, plans: &[&str]) -> Value {
        let apis = json!([{"id": "restapi1", "usagePlans": plans.iter().map(|p| json!({"id": p})).collect::<Vec<_>>()}]);
        let app =
            json!({"appName": "Secret app", "appSlug": slug, "developer": developer, "apis": apis});
        let (status, created) = self
            .portal("createCredentials", &basic(PORTAL.0, PORTAL.1), &app)
            .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        // A retry from the rotated user gets the same credential.
        let (status, again) = self
            .portal("createCredentials", &basic(ROTATED.0, ROTATED.1), &app)
            .await;
        assert_eq!((status, &again), (StatusCode::OK, &created));
        for secret in [README_ALPHA, README_BETA] {
            let (status, answer) = self.login(secret, developer).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        let mut update = app.clone();
        update["appName"] = json!("Secret app renamed");
        let (status, answer) = self
            .portal("updateCredentials", &basic(PORTAL.0, PORTAL.1), &update)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
        created
    }

    async fn revoke(&mut self, slug: &str, kind: &str) {
        let (status, answer) = self
            .portal(
                "revokeCredentials",
                &basic(PORTAL.0, PORTAL.1),
                &json!({"appSlug": slug, "credentialType": kind}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    }

    async fn health(&mut self) {
        for path in ["/healthz", "/readyz"] {
            let status = self
                .http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        let status = self
            .http
            .get(format!("{}/v1/health", self.base))
            .header("authorization", basic(PORTAL.0, PORTAL.1))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
}

/// Stops the process, then asserts that its logs are verbose (dependencies
/// at trace level included) and that neither they (stderr) nor anything it
/// printed on stdout hold any of `issued` nor the configured and attempted
/// secrets.
fn assert_no_secret(mut child: Process, issued: &[String], dependency_targets: &[&str]) {
    child.terminate();
    assert!(child.wait_exit(Duration::from_secs(10)).success());
    let logs = child.logs();
    let stdout = child.stdout();
    // On the local store no dependency logs at all (the server stack,
    // axum-server and hyper, has no events): keyhook's own lines are checked.
    if !dependency_targets.is_empty() {
        assert!(
            logs.contains(r#""level":"TRACE""#),
            "not at trace level: {logs:.2000}"
        );
    }
    let targets: std::collections::BTreeSet<String> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["target"].as_str().map(str::to_string))
        .collect();
    for target in dependency_targets {
        assert!(
            targets.iter().any(|t| t.starts_with(target)),
            "no log line of {target}, the test would prove nothing; targets: {targets:?}"
        );
    }
    // The SDK runtime, which traces response bodies, is held at info.
    let runtime_verbose = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| {
            v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("aws_smithy_runtime"))
                && matches!(v["level"].as_str(), Some("TRACE" | "DEBUG"))
        });
    assert!(!runtime_verbose, "aws_smithy_runtime logged below info");
    assert!(!issued.is_empty());
    let mut secrets: Vec<String> = issued.to_vec();
    secrets.sort();
    secrets.dedup();
    for configured in [
        README_ALPHA,
        README_BETA,
        README_WRONG,
        PORTAL.1,
        ROTATED.1,
        WRONG_PW,
    ] {
        secrets.push(configured.to_string());
    }
    for (user, password) in [
        (PORTAL.0, PORTAL.1),
        (ROTATED.0, ROTATED.1),
        (PORTAL.0, WRONG_PW),
        (ROTATED.0, WRONG_PW),
        (ROTATED.0, PORTAL.1),
    ] {
        secrets.push(basic(user, password)["Basic ".len()..].to_string());
    }
    let mut leaks = Vec::new();
    for secret in &secrets {
        assert!(secret.len() >= 16, "{secret} is not unmistakable");
        for (stream, text) in [("stderr", &logs), ("stdout", &stdout)] {
            for line in text.lines().filter(|l| l.contains(secret.as_str())) {
                let target = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v["target"].as_str().map(str::to_string))
                    .unwrap_or_default();
                leaks.push(format!(
                    "{secret} in a {stream} line of {target}: {line:.600}"
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secret occurrences in {} bytes of stderr and {} of stdout:\n{}",
        leaks.len(),
        logs.len(),
        stdout.len(),
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_on_the_local_store() {
    let mut child = Process::spawn(&base_env());
    child.wait_for("/readyz").await;
    let mut run = Run::new(&child);
    run.health().await;
    run.life_cycle("local@secrets.io", "local-secret", &["plan1"])
        .await;
    let (status, answer) = run.login(README_BETA, "first@secrets.io").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    run.hostile("local@secrets.io").await;
    run.revoke("local-secret", "API_KEY").await;
    assert_no_secret(child, &run.issued, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_with_aws_api_keys() {
    let emu = Emulator::new(1).await;
    let mut child = Process::spawn(&aws_env(&emu));
    child.wait_for("/readyz").await;
    let mut run = Run::new(&child);
    run.health().await;
    run.life_cycle("keys@secrets.io", "aws-key-secret", &[&emu.seed.plans[0]])
        .await;
    let (status, answer) = run.login(README_ALPHA, "first@secrets.io").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    run.hostile("keys@secrets.io").await;
    run.revoke("aws-key-secret", "API_KEY").await;
    assert_no_secret(child, &run.issued, &["aws_sdk_apigateway", "hyper_util"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_with_cognito_app_clients() {
    let emu = Emulator::new(1).await;
    let mut env = aws_env(&emu);
    env.push((
        "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE",
        "client_credentials".into(),
    ));
    env.push(("KEYHOOK_CLIENT_API_KEY", "true".into()));
    let mut child = Process::spawn(&env);
    child.wait_for("/readyz").await;
    let mut run = Run::new(&child);
    run.health().await;
    let kept = run
        .life_cycle(
            "clients@secrets.io",
            "aws-client-kept",
            &[&emu.seed.plans[0]],
        )
        .await;
    assert!(kept["clientSecret"].is_string(), "{kept}");
    run.life_cycle(
        "clients@secrets.io",
        "aws-client-gone",
        &[&emu.seed.plans[0]],
    )
    .await;
    run.hostile("clients@secrets.io").await;
    run.revoke("aws-client-gone", "CLIENT_CREDENTIALS").await;

    // A second replica loads its index from AWS: DescribeUserPoolClient
    // answers carry the client secret.
    let mut second = Process::spawn(&env);
    second.wait_for("/readyz").await;
    let mut replica = Run::new(&second);
    let (status, answer) = replica.login(README_ALPHA, "clients@secrets.io").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["keys"][0]["pass"], kept["clientSecret"]);
    let mut issued = run.issued;
    issued.extend(replica.issued);
    assert_no_secret(
        child,
        &issued,
        &["aws_sdk_cognitoidentityprovider", "hyper_util"],
    );
    assert_no_secret(second, &issued, &["aws_sdk_cognitoidentityprovider"]);
}
