//! A real Prometheus server (Debian's `prometheus` package, which
//! `scripts/test` installs) on a free loopback port, in a temporary
//! directory of its own (its configuration and its TSDB), scraping one
//! target every second and evaluating the given rule files every second.
//! Queried through its HTTP API. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bounds a start or a wait on a loaded machine; conditions are awaited.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// `name` on `PATH`, or a failure saying how to get it: a machine without
/// Prometheus fails these tests rather than skipping them.
pub fn installed(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test runs a real Prometheus. \
                 `scripts/test` installs it (apt-get install prometheus)"
            )
        })
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, `/metrics`) as job
    /// `keyhook`, with `rule_files`; returns once it answers ready. The port
    /// is free when chosen; should another process take it first, another
    /// is tried.
    pub async fn start(target: &str, rule_files: &[&Path]) -> Prometheus {
        for _ in 0..3 {
            if let Some(prometheus) = Self::try_start(target, rule_files).await {
                return prometheus;
            }
        }
        panic!("prometheus found no free port in three tries");
    }

    /// `None` when the port was taken.
    async fn try_start(target: &str, rule_files: &[&Path]) -> Option<Prometheus> {
        let binary = installed("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {:?}", p.display().to_string()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\n\
             scrape_configs:\n  - job_name: keyhook\n    static_configs:\n      - targets: [{target:?}]\n",
            rules.join("\n")
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        // A port nobody holds now; Prometheus cannot report one it chose.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            dir,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                let log = prometheus.log();
                if log.contains("address already in use") {
                    return None;
                }
                panic!("prometheus exited ({status}): {log}");
            }
            let ready = prometheus.http.get(prometheus.api("/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Some(prometheus);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Prometheus' own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The whole answer of an instant query (`status`, `data` or `error`).
    pub async fn query(&self, expr: &str) -> Value {
        let response = self
            .http
            .get(self.api("/api/v1/query"))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// The alerts pending or firing now (`/api/v1/alerts`).
    pub async fn alerts(&self) -> Vec<Value> {
        let answer: Value = (self.http.get(self.api("/api/v1/alerts")).send().await)
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits, within `limit`, until `expr` has a sample; its answer.
    pub async fn wait_for_sample(&self, expr: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self.query(expr).await;
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "no sample of `{expr}` within {limit:?}: {answer}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
