//! A load driver, not a criterion benchmark: end-to-end figures of the
//! release binary, run by `scripts/bench` one part per invocation (so each
//! AWS part gets a moto of its own). Parts are named by the README's
//! Performance letters, which `scripts/bench` prints as section headers:
//!
//! - `sensedia` (b): createCredentials / updateCredentials /
//!   revokeCredentials throughput and latency on the local backend;
//! - `aws` (c): against moto, latency and AWS calls of a login for a reader
//!   in the owner index, a reader whose key another replica made since the
//!   last refresh, and a first-time reader (provisioning on, usage plan set);
//! - `storm` (d): 600 logins over 100 readers, 20 concurrent, while a proxy
//!   in front of moto enforces an account-wide quota of 10 calls/s, burst 40;
//! - `process` (e): process start to first successful `/healthz`, resident
//!   memory after start and after 10,000 logins, binary size;
//! - `soak` (g): 5 minutes (`BENCH_SOAK_SECS`) of sustained logins with
//!   nothing scraping `/metrics`: resident memory at the start and after 1,
//!   2.5 and 5 minutes (flat: the metrics' upkeep runs without a scrape).
//!
//! (a) is `oha` against one server and (f) the criterion benches, both run
//! by `scripts/bench` itself. keyhook runs as the test harness's `Process`,
//! moto and the counting proxy are the harness's too. It prints figures with
//! their goals and never asserts on timing. Run by `cargo test --benches`
//! (no `--bench` flag), it does nothing at all.

#[allow(dead_code, unused_imports)] // the load driver uses a part of the shared harness
#[path = "../tests/harness/mod.rs"]
mod harness;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::process::Launch;
use harness::proxy::Proxy;
use harness::{ApiClient, Process};
use serde_json::{json, Value};

/// The binary under test: `KEYHOOK_BIN` (scripts/bench passes the plain
/// `cargo build --release` one), else the one cargo built for this bench.
fn keyhook_bin() -> PathBuf {
    std::env::var_os("KEYHOOK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_keyhook")))
}
const SECRET: &str = "bench-readme-secret";
const PORTAL_USER: &str = "portal";
const PORTAL_PASSWORD: &str = "portal-pw";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs bench targets without `--bench`: there
    // is nothing to test here, so leave at once, silently.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for part in parts {
        match part {
            "sensedia" => runtime.block_on(sensedia()),
            "process" => runtime.block_on(process()),
            "aws" => runtime.block_on(aws_logins()),
            "storm" => runtime.block_on(storm()),
            "soak" => runtime.block_on(soak()),
            other => {
                eprintln!("unknown part {other:?}: sensedia, process, aws, storm or soak");
                std::process::exit(2);
            }
        }
    }
}

// ---------------------------------------------------------------- printing

/// One figure, its goal and whether it is met (`None`: no goal is set).
fn figure(name: &str, value: impl std::fmt::Display, goal: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    println!("  {name:<52} {value:>20}   {goal:<18} {verdict}");
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Nearest-rank percentile of `samples` (sorted here).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn median_usize(values: &[usize]) -> usize {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

// ---------------------------------------------------------------- keyhook

/// `keyhook serve` as an operator runs it, both front doors configured;
/// `env` adds or overrides variables. `keep_logs`: false where reading the
/// log would cost more than the figure (the start-up runs).
fn start(env: &[(&str, String)], keep_logs: bool) -> Process {
    let mut all: Vec<(&str, String)> = vec![
        ("KEYHOOK_README_SECRET", SECRET.into()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{PORTAL_USER}:{PORTAL_PASSWORD}"),
        ),
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".into()),
    ];
    all.extend_from_slice(env);
    let mut server = Process::launch(Launch {
        bin: keyhook_bin(),
        env: &all,
        keep_logs,
        ..Launch::default()
    });
    server.api.http = client();
    server
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------- clients

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// A freshly signed ReadMe login: status, answer, latency.
async fn login(api: &ApiClient, email: &str) -> (u16, Value, Duration) {
    let request = api.login_request(email);
    let started = Instant::now();
    answer(request.send().await, started).await
}

async fn portal(api: &ApiClient, route: &str, body: &Value) -> (u16, Value, Duration) {
    let request = api.sensedia_request(route, body);
    let started = Instant::now();
    answer(request.send().await, started).await
}

async fn answer(
    result: reqwest::Result<reqwest::Response>,
    started: Instant,
) -> (u16, Value, Duration) {
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            let elapsed = started.elapsed();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                elapsed,
            )
        }
        Err(_) => (0, Value::Null, started.elapsed()),
    }
}

/// The API key values a login answer carries.
fn keys_of(answer: &Value) -> Vec<String> {
    answer["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["apiKey"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `job(0..n)` with at most `concurrency` in flight; returns the
/// results (in completion order) and the wall time.
async fn concurrently<T, F, Fut>(n: usize, concurrency: usize, job: F) -> (Vec<T>, Duration)
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (job, next, results) = (Arc::clone(&job), Arc::clone(&next), Arc::clone(&results));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let result = job(i).await;
                    results.lock().expect("results lock").push(result);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker finishes");
    }
    let elapsed = started.elapsed();
    let results = std::mem::take(&mut *results.lock().expect("results lock"));
    (results, elapsed)
}

/// The sum of `keyhook_aws_calls_total` on `server`'s `/metrics`.
async fn aws_calls_metric(server: &Process) -> u64 {
    let url = format!("{}/metrics", server.metrics_url());
    let text = match server.api.http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with("keyhook_aws_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

// ---------------------------------------------------------------- (b) Sensedia

async fn sensedia() {
    const N: usize = 1000;
    const CONCURRENCY: usize = 16;
    println!("(b) Sensedia on the local backend: {N} apps, {CONCURRENCY} concurrent, fresh store, every write fsynced");
    let mut server = start(&[], true);
    server
        .wait_for_within("/healthz", Duration::from_secs(10))
        .await;
    let api = server.api.clone();
    let app = |i: usize| {
        json!({
            "appName": format!("Bench app {i}"),
            "appSlug": format!("bench{i:06}"),
            "developer": format!("dev{}@corp.com", i % 100),
            "apis": [{"id": "5aba4csvd4", "usagePlans": [{"id": "1el57v"}]}],
        })
    };
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(vec![String::new(); N]));

    let phases: [(&str, &str, u16); 3] = [
        ("createCredentials", "create (new appSlug each)", 200),
        ("updateCredentials", "update (by apiKeyId)", 204),
        ("revokeCredentials", "revoke (by apiKeyId)", 204),
    ];
    for (route, label, expected) in phases {
        let (api, ids) = (api.clone(), Arc::clone(&ids));
        let (results, wall) = concurrently(N, CONCURRENCY, move |i| {
            let (api, ids) = (api.clone(), Arc::clone(&ids));
            async move {
                let mut body = app(i);
                match route {
                    "createCredentials" => {}
                    "updateCredentials" => {
                        body["appName"] = json!(format!("Bench app {i} v2"));
                        body["apiKeyId"] = json!(ids.lock().unwrap()[i].clone());
                    }
                    _ => {
                        body = json!({
                            "appSlug": format!("bench{i:06}"),
                            "credentialType": "API_KEY",
                            "apiKeyId": ids.lock().unwrap()[i].clone(),
                        });
                    }
                }
                let (status, answer, latency) = portal(&api, route, &body).await;
                if let Some(id) = answer["apiKeyId"].as_str() {
                    ids.lock().unwrap()[i] = id.to_string();
                }
                (status, latency)
            }
        })
        .await;
        let ok = results.iter().filter(|(s, _)| *s == expected).count();
        let mut latencies: Vec<Duration> = results.iter().map(|(_, l)| *l).collect();
        let rate = N as f64 / wall.as_secs_f64();
        println!("  {label}:");
        figure(
            &format!("    {route} throughput"),
            format!("{rate:.0} req/s"),
            "no goal set",
            None,
        );
        figure(
            "    p50 / p99",
            format!(
                "{} / {}",
                ms(percentile(&mut latencies, 50.0)),
                ms(percentile(&mut latencies, 99.0))
            ),
            "",
            None,
        );
        figure(
            &format!("    answered {expected}"),
            format!("{ok}/{N}"),
            &format!("{N}/{N}"),
            Some(ok == N),
        );
    }
}

// ---------------------------------------------------------------- (e) process

/// One `GET /healthz` over a fresh connection: true on a 200.
fn healthz_once(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

async fn process() {
    const RUNS: usize = 40;
    const LOGINS: usize = 10_000;
    println!("(e) Process: start, memory, size (local backend)");

    // Start-up: the store already exists, as on any restart.
    let store = tempfile::tempdir().expect("a temporary directory");
    let data = store.path().to_path_buf();
    let mut starts = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let env = [("KEYHOOK_DATA_DIR", data.display().to_string())];
        let started = Instant::now();
        let mut server = start(&env, false);
        let deadline = started + Duration::from_secs(10);
        while !healthz_once(server.addr) {
            if Instant::now() > deadline || server.exited() {
                eprintln!("bench: keyhook did not answer /healthz");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = started.elapsed();
        // The first run creates the store: not a restart.
        if run > 0 {
            starts.push(elapsed);
        }
    }
    let median = percentile(&mut starts, 50.0);
    figure(
        &format!("start to first /healthz 200 (median of {RUNS})"),
        ms(median),
        "goal <= 20 ms",
        Some(median <= Duration::from_millis(20)),
    );
    figure(
        "  min / p90 / max",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            starts[0].as_secs_f64() * 1e3,
            percentile(&mut starts, 90.0).as_secs_f64() * 1e3,
            starts[starts.len() - 1].as_secs_f64() * 1e3
        ),
        "",
        None,
    );

    // Memory: after start, then after 10,000 logins.
    let mut server = start(&[], true);
    server
        .wait_for_within("/healthz", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start = proc_status_kib(server.pid(), "VmRSS");
    let api = server.api.clone();
    let create = json!({"appName": "Billing app", "appSlug": "590d83b5c05f", "developer": "dev@corp.com",
                        "apis": [{"id": "5aba4csvd4", "usagePlans": [{"id": "1el57v"}]}]});
    let (status, _, _) = portal(&api, "createCredentials", &create).await;
    assert_eq!(status, 200, "createCredentials for the memory run");
    let (results, wall) = {
        let api = api.clone();
        concurrently(LOGINS, 20, move |_| {
            let api = api.clone();
            async move { login(&api, "dev@corp.com").await.0 }
        })
        .await
    };
    let ok = results.iter().filter(|s| **s == 200).count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = proc_status_kib(server.pid(), "VmRSS");
    let peak = proc_status_kib(server.pid(), "VmHWM");
    figure(
        "resident memory (VmRSS) after start",
        mib(rss_start),
        "goal <= 15 MB",
        Some(rss_start <= 15 * 1024),
    );
    figure(
        &format!("resident memory after {LOGINS} logins ({ok} answered 200)"),
        mib(rss_after),
        "goal <= 25 MB",
        Some(rss_after <= 25 * 1024),
    );
    figure("  peak (VmHWM)", mib(peak), "", None);
    figure(
        &format!("  ({LOGINS} logins, 20 concurrent, took)"),
        format!("{:.2} s", wall.as_secs_f64()),
        "",
        None,
    );
    let bin = keyhook_bin();
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    figure(
        "release binary size (stripped)",
        format!("{:.1} MB", size as f64 / (1024.0 * 1024.0)),
        "no goal set",
        None,
    );
    println!("  binary: {}", bin.display());
}

// ---------------------------------------------------------------- (g) soak

/// Sustained logins for `BENCH_SOAK_SECS` (300) on 8 connections, nothing
/// scraping `/metrics`; `VmRSS` at the start and at 1/5, 1/2 and the end.
async fn soak() {
    const CONCURRENCY: usize = 8;
    let secs: u64 = std::env::var("BENCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!(
        "(g) {secs} s of sustained logins on the local backend, {CONCURRENCY} concurrent, nothing scraping /metrics"
    );
    let mut server = start(&[], true);
    server
        .wait_for_within("/healthz", Duration::from_secs(10))
        .await;
    let api = server.api.clone();
    let create =
        json!({"appName": "Soak app", "appSlug": "soak00000001", "developer": "soak@corp.com"});
    let (status, _, _) = portal(&api, "createCredentials", &create).await;
    assert_eq!(status, 200, "createCredentials for the soak run");
    let pid = server.pid();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (api, done, failed) = (api.clone(), Arc::clone(&done), Arc::clone(&failed));
            tokio::spawn(async move {
                while Instant::now() < until {
                    let (status, _, _) = login(&api, "soak@corp.com").await;
                    let counter = if status == 200 { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let marks = [0.0, 0.2, 0.5, 1.0];
    for mark in marks {
        let at = started + Duration::from_secs_f64(secs as f64 * mark);
        tokio::time::sleep_until(at.into()).await;
        figure(
            &format!(
                "VmRSS after {:.1} min ({} logins answered 200)",
                secs as f64 * mark / 60.0,
                done.load(Ordering::Relaxed)
            ),
            mib(proc_status_kib(pid, "VmRSS")),
            "",
            None,
        );
    }
    for worker in workers {
        worker.await.expect("a soak worker finishes");
    }
    figure(
        "  logins not answered 200",
        failed.load(Ordering::Relaxed).to_string(),
        "goal 0",
        Some(failed.load(Ordering::Relaxed) == 0),
    );
    figure(
        "  peak (VmHWM)",
        mib(proc_status_kib(pid, "VmHWM")),
        "",
        None,
    );
}

// ---------------------------------------------------------------- (c) AWS

/// Creates an enabled API key named `email` directly in moto (as a key
/// made by hand, or by another replica): its value.
async fn seed_key(apigw: &aws_sdk_apigateway::Client, email: &str) -> String {
    let out = apigw
        .create_api_key()
        .name(email)
        .description("Seeded key")
        .enabled(true)
        .send()
        .await
        .expect("CreateApiKey on moto");
    out.value().expect("a key value").to_string()
}

/// keyhook on its AWS backend against `endpoint`, on default settings
/// but `extra`.
fn aws_env(endpoint: &str, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = harness::process::aws_connection(endpoint);
    env.extend_from_slice(extra);
    env
}

/// Latency and AWS calls (counted at the proxy) of one kind of login.
struct Sample {
    latencies: Vec<Duration>,
    calls: Vec<usize>,
    ops: std::collections::BTreeMap<String, usize>,
    wrong: usize,
}

impl Sample {
    fn new() -> Self {
        Sample {
            latencies: Vec::new(),
            calls: Vec::new(),
            ops: Default::default(),
            wrong: 0,
        }
    }

    /// Runs one login, checks its answer holds `expect` (or any one key when
    /// `None`) and records its latency and the AWS calls it made.
    async fn login(&mut self, proxy: &Proxy, api: &ApiClient, email: &str, expect: Option<&str>) {
        let before = proxy.calls().len();
        let (status, answer, latency) = login(api, email).await;
        // Let any call the login started in the background land.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let calls = proxy.calls();
        let made = &calls[before.min(calls.len())..];
        for (op, _) in made {
            *self.ops.entry(op.clone()).or_default() += 1;
        }
        let keys = keys_of(&answer);
        let right = status == 200
            && match expect {
                Some(value) => keys.iter().any(|k| k == value),
                None => keys.len() == 1,
            };
        if !right {
            self.wrong += 1;
        }
        self.latencies.push(latency);
        self.calls.push(made.len());
    }

    fn print(&mut self, name: &str, goal_calls: Option<usize>) {
        let n = self.latencies.len();
        let calls = median_usize(&self.calls);
        let (min, max) = (
            self.calls.iter().min().copied().unwrap_or(0),
            self.calls.iter().max().copied().unwrap_or(0),
        );
        println!("  {name} ({n} logins):");
        figure(
            "    latency median / p90",
            format!(
                "{} / {}",
                ms(percentile(&mut self.latencies, 50.0)),
                ms(percentile(&mut self.latencies, 90.0))
            ),
            "no goal set",
            None,
        );
        let spread = if min == max {
            String::new()
        } else {
            format!(" ({min}..{max})")
        };
        match goal_calls {
            Some(goal) => figure(
                "    AWS calls per login (median)",
                format!("{calls}{spread}"),
                &format!("goal <= {goal}"),
                Some(calls <= goal),
            ),
            None => figure(
                "    AWS calls per login (median)",
                format!("{calls}{spread}"),
                "",
                None,
            ),
        }
        if !self.ops.is_empty() {
            let ops: Vec<String> = self.ops.iter().map(|(op, c)| format!("{op} {c}")).collect();
            println!(
                "      calls by operation, all {n} logins: {}",
                ops.join(", ")
            );
        }
        figure(
            "    answered with the right key",
            format!("{}/{n}", n - self.wrong),
            &format!("{n}/{n}"),
            Some(self.wrong == 0),
        );
    }
}

async fn aws_logins() {
    const KNOWN: usize = 20;
    const LATE: usize = 15;
    const FIRST: usize = 15;
    println!("(c) AWS backend against moto (default settings; provisioning on, usage plan set)");
    let moto = harness::moto::Moto::shared();
    let sdk = harness::moto::sdk_config(&moto.endpoint);
    let seed = harness::moto::seed(&sdk, 1).await;
    let apigw = aws_sdk_apigateway::Client::new(&sdk);
    let mut known = Vec::new();
    for i in 0..KNOWN {
        let email = format!("known{i:02}@bench.test");
        let value = seed_key(&apigw, &email).await;
        known.push((email, value));
    }
    let proxy = Proxy::start(&moto.endpoint).await;
    let env = aws_env(
        &proxy.endpoint,
        &[
            ("KEYHOOK_README_PROVISION", "true".into()),
            ("KEYHOOK_USAGE_PLAN_ID", seed.plans[0].clone()),
        ],
    );
    let mut server = start(&env, true);
    server
        .wait_for_within("/readyz", Duration::from_secs(60))
        .await;
    let api = server.api.clone();
    let metric_before = aws_calls_metric(&server).await;
    let proxied_before = proxy.calls().len();

    // 1. Readers whose keys existed when keyhook loaded its owner index.
    let mut first = Sample::new();
    let mut repeat = Sample::new();
    for (email, value) in &known {
        first.login(&proxy, &api, email, Some(value.as_str())).await;
        repeat
            .login(&proxy, &api, email, Some(value.as_str()))
            .await;
    }
    first.print("existing reader, key in the owner index", Some(1));
    repeat.print("  the same reader again at once (repeat login)", Some(0));

    // 2. Readers whose key another replica (or the console) made after this
    // replica's last index refresh: one lookup in AWS.
    let mut late = Sample::new();
    let mut late_repeat = Sample::new();
    for i in 0..LATE {
        let email = format!("late{i:02}@bench.test");
        let value = seed_key(&apigw, &email).await;
        // Spaced so keyhook's own token bucket (5/s) is not what is measured.
        tokio::time::sleep(Duration::from_millis(250)).await;
        late.login(&proxy, &api, &email, Some(value.as_str())).await;
        late_repeat
            .login(&proxy, &api, &email, Some(value.as_str()))
            .await;
    }
    // Provisioning on: a reader the index does not know is given a key
    // first (the create's re-read finds theirs), not looked up.
    late.print(
        "existing reader, key made elsewhere since the last refresh (provisioning on: given their own key too, by a first login's 3 calls)",
        Some(3),
    );
    late_repeat.print("  the same reader again at once (repeat login)", Some(0));

    // 3. First-time readers: keyhook provisions a key on the usage plan.
    let mut fresh = Sample::new();
    let mut fresh_repeat = Sample::new();
    for i in 0..FIRST {
        let email = format!("new{i:02}@bench.test");
        // Spaced so every login finds keyhook's token bucket (5 calls/s,
        // burst 10) with the calls it needs: the latency is AWS's, not the
        // bucket's.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        fresh.login(&proxy, &api, &email, None).await;
        fresh_repeat.login(&proxy, &api, &email, None).await;
    }
    // 3, the fewest with a usage plan: the two writes a key on a plan
    // needs, and the re-read that decides whose key it is when replicas
    // race (README, "A first login costs 3 AWS calls").
    fresh.print(
        "first-time reader (key provisioned; minimum 3 with a usage plan)",
        Some(3),
    );
    fresh_repeat.print("  the same reader again at once (repeat login)", Some(0));

    let metric_after = aws_calls_metric(&server).await;
    let proxied = proxy.calls().len() - proxied_before;
    println!(
        "  AWS calls over these {} logins: {} at the proxy, {} in keyhook_aws_calls_total (includes background index refreshes)",
        2 * (KNOWN + LATE + FIRST),
        proxied,
        metric_after.saturating_sub(metric_before)
    );
}

// ---------------------------------------------------------------- (d) storm

async fn storm() {
    const READERS: usize = 100;
    const LOGINS: usize = 600;
    const CONCURRENCY: usize = 20;
    println!(
        "(d) Login storm under AWS quotas: account-wide 10 calls/s, burst 40 (429 TooManyRequestsException over it);"
    );
    println!("    {READERS} readers with keys, {LOGINS} logins, {CONCURRENCY} concurrent, keyhook on default settings, started after /readyz 200");
    let moto = harness::moto::Moto::shared();
    let sdk = harness::moto::sdk_config(&moto.endpoint);
    let apigw = aws_sdk_apigateway::Client::new(&sdk);
    let mut readers = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let email = format!("reader{i:03}@storm.test");
        let value = seed_key(&apigw, &email).await;
        readers.push((email, value));
    }
    let proxy = Proxy::start(&moto.endpoint).await;
    proxy.quota(10.0, 40.0);
    // Timed from the spawn: `start` returns once keyhook listens.
    let started = Instant::now();
    let mut server = start(&aws_env(&proxy.endpoint, &[]), true);
    server
        .wait_for_within("/readyz", Duration::from_secs(120))
        .await;
    let ready_after = started.elapsed();
    let startup_calls = proxy.calls();
    proxy.reset_calls();

    let readers = Arc::new(readers);
    let order = Arc::new(shuffled(LOGINS, READERS));
    let run = |readers: Arc<Vec<(String, String)>>, order: Arc<Vec<usize>>| {
        let api = server.api.clone();
        concurrently(LOGINS, CONCURRENCY, move |i| {
            let (api, readers, order) = (api.clone(), Arc::clone(&readers), Arc::clone(&order));
            async move {
                let (email, value) = &readers[order[i]];
                let (status, answer, latency) = login(&api, email).await;
                let right = status == 200 && keys_of(&answer).iter().any(|k| k == value);
                (right, status, latency)
            }
        })
    };
    let (results, wall) = run(Arc::clone(&readers), Arc::clone(&order)).await;
    print_storm(&results, wall, &proxy.calls(), true);
    println!(
        "    (keyhook became ready {:.2} s after start, with {} AWS calls passed and {} throttled)",
        ready_after.as_secs_f64(),
        startup_calls.iter().filter(|(_, s)| *s != 429).count(),
        startup_calls.iter().filter(|(_, s)| *s == 429).count()
    );

    // The same storm over readers whose keys were made after keyhook loaded
    // its index (by another replica, or in the console), before its next
    // refresh: keyhook must look each up in AWS, under the quota.
    let mut cold = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let email = format!("cold{i:03}@storm.test");
        let value = seed_key(&apigw, &email).await;
        cold.push((email, value));
    }
    proxy.reset_calls();
    let (results, wall) = run(Arc::new(cold), order).await;
    println!("  informational: the same storm over 100 readers whose keys were made after the index was loaded (no goal set):");
    print_storm(&results, wall, &proxy.calls(), false);
}

/// The storm's figures; `goals`: with the goals of the issue beside them.
fn print_storm(
    results: &[(bool, u16, Duration)],
    wall: Duration,
    calls: &[(String, u16)],
    goals: bool,
) {
    let judge = |met: bool| goals.then_some(met);
    let goal = |text: &str| {
        if goals {
            text.to_string()
        } else {
            String::new()
        }
    };
    let n = results.len();
    let right = results.iter().filter(|(r, _, _)| *r).count();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (_, status, _) in results {
        *statuses.entry(*status).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = results.iter().map(|(_, _, l)| *l).collect();
    let rate = n as f64 / wall.as_secs_f64();
    let p99 = percentile(&mut latencies, 99.0);
    figure(
        "answered with the right key",
        format!("{right}/{n}"),
        &goal(&format!("goal {n}/{n}")),
        judge(right == n),
    );
    let statuses: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}: {c}")).collect();
    println!("    statuses: {}", statuses.join(", "));
    figure(
        &format!("logins/s ({n} in {:.2} s)", wall.as_secs_f64()),
        format!("{rate:.0}"),
        &goal("goal >= 300"),
        judge(rate >= 300.0),
    );
    figure(
        "p50 / p99 latency",
        format!("{} / {}", ms(percentile(&mut latencies, 50.0)), ms(p99)),
        &goal("goal p99 <= 50 ms"),
        judge(p99 <= Duration::from_millis(50)),
    );
    let passed = calls.iter().filter(|(_, s)| *s != 429).count();
    let throttled = calls.len() - passed;
    figure(
        "AWS calls during the storm: passed / throttled",
        format!("{passed} / {throttled}"),
        "",
        None,
    );
}

/// `n` reader indexes, each of `readers` equally often, in a fixed
/// pseudo-random order.
fn shuffled(n: usize, readers: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).map(|i| i % readers).collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}
