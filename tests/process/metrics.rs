//! `/metrics` reports what really happened, counted once: requests by route
//! and status, signature failures by reason, credentials created, updated
//! and revoked, and AWS calls by operation and outcome (after the SDK's
//! retries); only on a listener of its own, never on the main one; with
//! labels from closed sets; every fixed series present at 0 from the start.
//!
//! The recorder is process-wide, so every count is read from the `/metrics`
//! of a keyhook child process of the test's own, before and after, and
//! checked by its exact change: no other test can add to it, and a double
//! count fails.

use std::collections::BTreeMap;

use crate::harness::emulator::{app, Emulator};
use crate::harness::process::aws_env;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::{Process, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};
use reqwest::StatusCode;
use serde_json::json;

/// Series name and labels, e.g. `keyhook_aws_calls_total` and
/// `{operation: "CreateApiKey", outcome: "ok"}`.
type Series = (String, BTreeMap<String, String>);

/// One reading of `/metrics`: every sample line.
struct Scrape(Vec<(Series, f64)>);

impl Scrape {
    /// `/metrics` of `server`, started with [`portal_env`].
    async fn of(server: &Process) -> Scrape {
        let url = format!("{}/metrics", server.metrics_url());
        let response = server.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Scrape::parse(&response.text().await.unwrap())
    }

    /// Every series, by name and labels.
    fn series(&self) -> std::collections::BTreeSet<&Series> {
        self.0.iter().map(|(series, _)| series).collect()
    }

    /// Prometheus text format, as `metrics-exporter-prometheus` writes it
    /// (label values here hold no quote nor comma).
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=\"value\"");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                let value = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
                ((name.to_string(), labels), value)
            })
            .collect();
        Scrape(samples)
    }

    /// The sum of every series of `metric` carrying all of `labels` (0 when
    /// there is none yet).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|((name, have), _)| {
                name == metric
                    && labels
                        .iter()
                        .all(|(k, v)| have.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// `keyhook_aws_calls_total` by (operation, outcome).
    fn aws_calls(&self) -> BTreeMap<(String, String), f64> {
        (self.0.iter())
            .filter(|((name, _), _)| name == "keyhook_aws_calls_total")
            .map(|((_, labels), value)| {
                let key = (labels["operation"].clone(), labels["outcome"].clone());
                (key, *value)
            })
            .collect()
    }
}

/// How much `metric{labels}` grew from `before` to `after`.
fn delta(before: &Scrape, after: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(metric, labels) - before.value(metric, labels)
}

/// The `keyhook_aws_calls_total` series that changed, with their change.
fn aws_delta(before: &Scrape, after: &Scrape) -> BTreeMap<(String, String), f64> {
    let before = before.aws_calls();
    (after.aws_calls().into_iter())
        .map(|(key, value)| {
            let change = value - before.get(&key).copied().unwrap_or_default();
            (key, change)
        })
        .filter(|(_, change)| *change != 0.0)
        .collect()
}

fn portal_env() -> Vec<(&'static str, String)> {
    vec![
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
        ("RUST_LOG", "warn".into()),
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signature_failures_and_credential_changes_are_counted_once() {
    let mut env = portal_env();
    env.push(("KEYHOOK_README_PROVISION", "true".into()));
    let mut server = Process::spawn(&env);
    server.wait_for("/readyz").await;
    let before = Scrape::of(&server).await;

    let metered = json!({"appName": "Metered", "appSlug": "metered1", "developer": "m@corp.com"});
    let created = server.create(&metered).await;
    // A portal retry of the same create is a replay, not a new credential.
    assert_eq!(server.create(&metered).await, created);
    assert_eq!(server.login_keys("m@corp.com").await.unwrap().len(), 1);
    let unsigned = server.readme_raw(None, br#"{"email":"m@corp.com"}"#).await;
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let mut renamed = metered.clone();
    renamed["appName"] = json!("Metered v2");
    let updated = server.sensedia("updateCredentials", &renamed).await;
    assert_eq!(updated.status(), StatusCode::NO_CONTENT);
    let revoke = json!({"appSlug": "metered1", "credentialType": "API_KEY"});
    for _ in 0..2 {
        // The second revoke finds nothing: answered 204, revokes nothing.
        let revoked = server.sensedia("revokeCredentials", &revoke).await;
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    }
    // A first-time reader, provisioned by the login.
    assert_eq!(server.login_keys("new@corp.com").await.unwrap().len(), 1);

    let after = Scrape::of(&server).await;
    let change = |metric: &str, labels: &[(&str, &str)]| delta(&before, &after, metric, labels);
    let requests = "keyhook_http_requests_total";
    for (route, status, count) in [
        ("/readme/webhook", "200", 2.0),
        ("/readme/webhook", "401", 1.0),
        ("/v1/createCredentials", "200", 2.0),
        ("/v1/updateCredentials", "204", 1.0),
        ("/v1/revokeCredentials", "204", 2.0),
    ] {
        let labels = [("route", route), ("status", status)];
        assert_eq!(change(requests, &labels), count, "{route} {status}");
    }
    assert_eq!(
        change(
            "keyhook_http_request_duration_seconds_bucket",
            &[("route", "/readme/webhook"), ("le", "+Inf")]
        ),
        3.0
    );
    let failures = "keyhook_signature_failures_total";
    assert_eq!(change(failures, &[("reason", "missing")]), 1.0);
    assert_eq!(change(failures, &[]), 1.0, "no failure of another reason");
    let credentials = "keyhook_credentials_total";
    for (action, origin) in [
        ("created", "sensedia"),
        ("updated", "sensedia"),
        ("revoked", "sensedia"),
        ("created", "readme"),
    ] {
        let labels = [("action", action), ("kind", "api_key"), ("origin", origin)];
        assert_eq!(change(credentials, &labels), 1.0, "{action} by {origin}");
    }
    assert_eq!(change(credentials, &[]), 4.0, "nothing else counted");
    // The local store makes no AWS call.
    assert_eq!(aws_delta(&before, &after), BTreeMap::new());
}

/// The `keyhook_aws_calls_total` series `step` changes, with their change.
async fn aws_calls_during(
    server: &Process,
    step: impl std::future::Future<Output = ()>,
) -> BTreeMap<(String, String), f64> {
    let before = Scrape::of(server).await;
    step.await;
    aws_delta(&before, &Scrape::of(server).await)
}

/// `(operation, outcome, change)` rows as [`aws_delta`] gives them.
fn calls(rows: &[(&str, &str, f64)]) -> BTreeMap<(String, String), f64> {
    (rows.iter())
        .map(|(op, outcome, n)| ((op.to_string(), outcome.to_string()), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_are_counted_once_per_call_by_operation_and_outcome() {
    let emu = Emulator::new(1).await;
    let proxy = Proxy::start(&emu.endpoint).await;
    let plan = &emu.seed.plans[0];
    let mut env = portal_env();
    env.extend(aws_env(&proxy.endpoint));
    env.extend([
        ("KEYHOOK_AWS_MAX_ATTEMPTS", "2".into()),
        // No background refresh may add calls to a step.
        ("KEYHOOK_INDEX_REFRESH_SECS", "3600".into()),
    ]);
    let mut server = Process::spawn(&env);
    server.wait_for("/readyz").await;
    let api = &emu.seed.api_id;
    let create = |slug: &str| app("aws@corp.com", slug, api, &[plan]);
    // A create of app `slug`, answered `status`.
    let create_answered = |slug: &'static str, status: StatusCode| {
        let (server, body) = (&server, create(slug));
        async move {
            let response = server.sensedia("createCredentials", &body).await;
            assert_eq!(response.status(), status, "{slug}");
        }
    };

    // Every call answered: `ok`. A create looks for the app's key, makes
    // it, attaches it, and re-reads (a racing replica's key would show).
    let step = async {
        server.create(&create("calls-ok")).await;
    };
    assert_eq!(
        aws_calls_during(&server, step).await,
        calls(&[
            ("CreateApiKey", "ok", 1.0),
            ("CreateUsagePlanKey", "ok", 1.0),
            ("GetApiKeys", "ok", 2.0),
        ])
    );

    // The key is already on the plan (409 `ConflictException`): the state
    // wanted, so the create succeeds, and the call counts as `conflict`.
    proxy.fail(
        "CreateUsagePlanKey",
        Fault::Status(409, "ConflictException"),
        1,
    );
    let step = create_answered("calls-conflict", StatusCode::OK);
    assert_eq!(
        aws_calls_during(&server, step).await,
        calls(&[
            ("CreateApiKey", "ok", 1.0),
            ("CreateUsagePlanKey", "conflict", 1.0),
            ("GetApiKeys", "ok", 2.0),
        ])
    );

    // A 5xx, then a 429, on every attempt: one `unavailable` call each,
    // however many attempts the SDK made.
    for fault in [
        Fault::Status(500, "InternalFailure"),
        Fault::Status(429, "TooManyRequestsException"),
    ] {
        proxy.fail("CreateApiKey", fault.clone(), 2);
        let sent = proxy.count("CreateApiKey");
        let step = create_answered("calls-unavailable", StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            aws_calls_during(&server, step).await,
            calls(&[
                ("CreateApiKey", "unavailable", 1.0),
                ("GetApiKeys", "ok", 1.0),
            ]),
            "{fault:?}"
        );
        assert_eq!(proxy.count("CreateApiKey") - sent, 2, "the SDK retried");
    }

    // A 400: `error`, and not retried.
    proxy.fail("CreateApiKey", Fault::Status(400, "BadRequestException"), 1);
    let sent = proxy.count("CreateApiKey");
    let step = create_answered("calls-error", StatusCode::BAD_GATEWAY);
    assert_eq!(
        aws_calls_during(&server, step).await,
        calls(&[("CreateApiKey", "error", 1.0), ("GetApiKeys", "ok", 1.0)])
    );
    assert_eq!(proxy.count("CreateApiKey") - sent, 1);

    // Revoking a key id neither keyhook nor AWS knows: `GetApiKey` answers
    // 404, `not_found`, and so does the revoke, as the README documents.
    let step = async {
        let unknown = json!({"apiKeyId": "nosuchkey1", "credentialType": "API_KEY"});
        let revoked = server.sensedia("revokeCredentials", &unknown).await;
        assert_eq!(revoked.status(), StatusCode::NOT_FOUND);
    };
    assert_eq!(
        aws_calls_during(&server, step).await,
        calls(&[("GetApiKey", "not_found", 1.0)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_on_their_own_listener() {
    let mut server = Process::spawn(&portal_env());
    let metrics = server.metrics_url();
    server.wait_for("/healthz").await;
    let hidden = server.get_as_portal("/metrics").await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let shown = server.http.get(format!("{metrics}/metrics")).send().await;
    let shown = shown.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(shown
        .text()
        .await
        .unwrap()
        .contains("keyhook_http_requests_total"));
    server.terminate();
    assert!(server.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_listen_metrics_are_not_served_and_the_start_says_so() {
    let mut env = portal_env();
    env.retain(|(k, _)| *k != "KEYHOOK_METRICS_LISTEN");
    env.push(("RUST_LOG", "warn,keyhook::app=info".into()));
    let mut server = Process::spawn(&env);
    server.wait_for_log("metrics off: KEYHOOK_METRICS_LISTEN is unset, so /metrics is not served");
    server.wait_for("/healthz").await;
    for path in ["/metrics", "/metrics/"] {
        let response = server.get_as_portal(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_series_exist_at_zero_from_the_start() {
    let server = Process::spawn(&portal_env());
    let scrape = Scrape::of(&server).await;
    let zero = |metric: &str, labels: &[(&str, &str)]| {
        let found = scrape.0.iter().find(|((name, have), _)| {
            name == metric
                && labels
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(v))
        });
        assert_eq!(found.map(|(_, v)| *v), Some(0.0), "{metric} {labels:?}");
    };
    for reason in ["missing", "expired", "invalid"] {
        zero("keyhook_signature_failures_total", &[("reason", reason)]);
    }
    for action in ["created", "updated", "revoked"] {
        for kind in ["api_key", "client_credentials"] {
            for origin in ["readme", "sensedia"] {
                let labels = [("action", action), ("kind", kind), ("origin", origin)];
                zero("keyhook_credentials_total", &labels);
            }
        }
    }
    for kind in ["api_key", "app_client"] {
        for outcome in ["deleted", "failed"] {
            zero(
                "keyhook_aws_cleanups_total",
                &[("kind", kind), ("outcome", outcome)],
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_unknown_paths_add_no_series() {
    let mut server = Process::spawn(&portal_env());
    server.wait_for("/healthz").await;
    // One of each kind first, so every `other` series exists already.
    let send = |method: String, path: String| {
        let http = server.http.clone();
        let url = server.url(&path);
        async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            http.request(method, url).send().await.unwrap().status()
        }
    };
    assert_eq!(
        send("FROB0".into(), "/nope0".into()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send("FROB0".into(), "/healthz".into()).await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let before = Scrape::of(&server).await;
    for i in 1..=250 {
        let status = send(format!("FROB{i}"), format!("/nope{i}/{i}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let status = send(format!("FROB{i}"), "/healthz".into()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = Scrape::of(&server).await;
    let new: Vec<_> = after
        .series()
        .difference(&before.series())
        .copied()
        .collect();
    assert!(new.is_empty(), "new series: {new:?}");
    let requests = "keyhook_http_requests_total";
    let other = [("route", "other"), ("method", "other"), ("status", "404")];
    assert_eq!(delta(&before, &after, requests, &other), 250.0);
    let healthz = [
        ("route", "/healthz"),
        ("method", "other"),
        ("status", "405"),
    ];
    assert_eq!(delta(&before, &after, requests, &healthz), 250.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_login_the_domain_policy_refuses_is_counted_once_by_reason() {
    let mut env = portal_env();
    env.push(("KEYHOOK_README_PROVISION", "true".into()));
    env.push(("KEYHOOK_README_PROVISION_DOMAINS", "corp.com".into()));
    let mut server = Process::spawn(&env);
    server.wait_for("/readyz").await;
    let before = Scrape::of(&server).await;
    let refused = [("reason", "domain")];
    assert_eq!(
        before.value("keyhook_provision_refused_total", &refused),
        0.0
    );
    assert!(server.login_keys("out@gmail.com").await.is_err());
    assert_eq!(server.login_keys("in@corp.com").await.unwrap().len(), 1);
    let after = Scrape::of(&server).await;
    assert_eq!(
        after.value("keyhook_provision_refused_total", &refused),
        1.0
    );
    for other in ["hourly_budget", "key_ceiling"] {
        let labels = [("reason", other)];
        assert_eq!(after.value("keyhook_provision_refused_total", &labels), 0.0);
    }
}
