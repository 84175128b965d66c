//! keyhook as a separate process: the real binary, configured only through
//! environment variables (the caller's own `KEYHOOK_*`, `AWS_*` and
//! `RUST_LOG` never leak in), in a working directory of its own so no
//! `config/keyhook.toml` is picked up. It listens on `127.0.0.1:0`; the
//! bound address is read from its "keyhook listening" log line, so no port
//! is ever guessed. Its stderr (JSON logs) and its stdout are read line by
//! line on threads of their own.
//! The process is killed when the handle is dropped, so a failing test
//! leaves nothing running.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::ApiClient;

/// Bounds for a debug build on a loaded machine; conditions are awaited,
/// these only stop a broken test from hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// The variables that put keyhook on its AWS backend against `endpoint`
/// (moto, or a proxy in front of it) with moto's test credentials, on
/// keyhook's default settings (the benches measure those).
pub fn aws_connection(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYHOOK_BACKEND", "aws".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}

/// As [`aws_connection`], with no rate limit to speak of (tests).
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    let mut env = aws_connection(endpoint);
    env.push(("KEYHOOK_AWS_RATE_LIMIT", "1000".into()));
    env
}

/// The variables that open both front doors with the harness's ReadMe
/// secret and Sensedia pair (what [`crate::harness::base_config`] sets).
pub fn portals_env() -> [(&'static str, String); 2] {
    use super::{README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};
    [
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
    ]
}

/// How to start one process.
pub struct Launch<'a> {
    /// The binary: the one cargo built for this test unless set.
    pub bin: PathBuf,
    /// The working directory; a fresh temporary one (removed on drop, its
    /// `data/` the default data directory) unless set.
    pub cwd: Option<&'a Path>,
    /// Variables beyond the defaults (`KEYHOOK_LISTEN=127.0.0.1:0`, JSON
    /// logs, a data directory, `PATH`, no EC2 metadata), which they override.
    pub env: &'a [(&'a str, String)],
    /// Keeps every log line for [`Process::logs`]; else they are read and
    /// dropped once the address is known.
    pub keep_logs: bool,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_keyhook")),
            cwd: None,
            env: &[],
            keep_logs: true,
        }
    }
}

/// What the reading threads have read.
#[derive(Default)]
struct Log {
    /// stderr.
    lines: Vec<String>,
    stdout: Vec<String>,
    addr: Option<SocketAddr>,
    /// stderr reached its end.
    closed: bool,
    stdout_closed: bool,
}

/// A running `keyhook serve`; derefs to an [`ApiClient`] that signs with
/// the first `KEYHOOK_README_SECRET` and authenticates with the first
/// `KEYHOOK_SENSEDIA_USERS` pair it was given.
pub struct Process {
    pub api: ApiClient,
    child: std::process::Child,
    log: Arc<(Mutex<Log>, Condvar)>,
    /// Lines of the log [`Process::wait_for_log`] has already looked at.
    seen: Mutex<usize>,
    /// While set, stderr is not read: the pipe fills and keyhook's log
    /// sink stalls ([`Process::stall_log_sink`]).
    stderr_paused: Arc<AtomicBool>,
    cwd: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Process {
    type Target = ApiClient;
    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Process {
    /// Starts `keyhook serve` with `env` in a fresh directory.
    pub fn spawn(env: &[(&str, String)]) -> Process {
        Self::launch(Launch {
            env,
            ..Launch::default()
        })
    }

    /// Starts `keyhook serve` with `env` in `cwd` (which the caller keeps,
    /// e.g. to restart on the same data).
    pub fn spawn_in(cwd: &Path, env: &[(&str, String)]) -> Process {
        Self::launch(Launch {
            cwd: Some(cwd),
            env,
            ..Launch::default()
        })
    }

    /// Starts the process `launch` describes and waits until it listens.
    pub fn launch(launch: Launch<'_>) -> Process {
        let dir = match launch.cwd {
            Some(_) => None,
            None => Some(tempfile::tempdir().unwrap()),
        };
        let cwd = launch
            .cwd
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.as_ref().unwrap().path().to_path_buf());
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("KEYHOOK_LISTEN".into(), "127.0.0.1:0".into());
        let data = cwd.join("data");
        vars.insert("KEYHOOK_DATA_DIR".into(), data.display().to_string());
        vars.insert("KEYHOOK_LOG_FORMAT".into(), "json".into());
        vars.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        if let Ok(path) = std::env::var("PATH") {
            vars.insert("PATH".into(), path);
        }
        for (k, v) in launch.env {
            vars.insert(k.to_string(), v.clone());
        }
        // The address is read from an info line: keep it when the test
        // quiets everything else. `trace`, not `info`: a test that logs
        // everything (the secrets scan) must not lose this module's debug
        // and trace events.
        if let Some(filter) = vars.get_mut("RUST_LOG") {
            filter.push_str(",keyhook::app=trace");
        }
        let mut child = Command::new(&launch.bin)
            .arg("serve")
            .current_dir(&cwd)
            .env_clear()
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keyhook");
        let log: Arc<(Mutex<Log>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let (keep, shared) = (launch.keep_logs, Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if keep {
                    shared.0.lock().unwrap().stdout.push(line);
                }
            }
            let (state, changed) = &*shared;
            state.lock().unwrap().stdout_closed = true;
            changed.notify_all();
        });
        let stderr = child.stderr.take().unwrap();
        let (keep, shared) = (launch.keep_logs, Arc::clone(&log));
        let stderr_paused = Arc::new(AtomicBool::new(false));
        let paused = Arc::clone(&stderr_paused);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            loop {
                while paused.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let Some(line) = lines.next() else { break };
                let Ok(line) = line else { break };
                let (state, changed) = &*shared;
                let mut state = state.lock().unwrap();
                if state.addr.is_none() {
                    state.addr = listening_addr(&line);
                } else if !keep {
                    continue;
                }
                state.lines.push(line);
                changed.notify_all();
            }
            let (state, changed) = &*shared;
            state.lock().unwrap().closed = true;
            changed.notify_all();
        });

        let secret =
            (vars.get("KEYHOOK_README_SECRET")).and_then(|s| s.lines().next().map(str::to_string));
        let pair =
            (vars.get("KEYHOOK_SENSEDIA_USERS")).and_then(|s| s.lines().next().map(str::to_string));
        let mut process = Process {
            api: ApiClient::new(([0, 0, 0, 0], 0).into(), None, None),
            child,
            log,
            seen: Mutex::new(0),
            stderr_paused,
            cwd,
            _dir: dir,
        };
        let addr = process.wait_until(|log| log.addr, "keyhook listening");
        process.api = ApiClient::new(addr, secret.as_deref(), pair.as_deref());
        process
    }

    /// Stops reading keyhook's stderr (`true`), so that its pipe fills and
    /// the process's log sink cannot keep up, or reads it again (`false`).
    pub fn stall_log_sink(&self, stalled: bool) {
        self.stderr_paused.store(stalled, Ordering::Release);
    }

    /// Waits (blocking, bounded) until `ready` finds what it looks for in
    /// the log read so far.
    fn wait_until<T>(&self, mut ready: impl FnMut(&Log) -> Option<T>, what: &str) -> T {
        let deadline = Instant::now() + PATIENCE;
        let (state, changed) = &*self.log;
        let mut log = state.lock().unwrap();
        loop {
            if let Some(found) = ready(&log) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let ended = log.closed && log.stdout_closed;
            assert!(
                !ended && !left.is_zero(),
                "no `{what}` in keyhook's log: {}",
                tail(&log.lines)
            );
            log = changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Waits for the next log event whose message is `message`.
    pub fn wait_for_log(&self, message: &str) -> Value {
        let mut seen = self.seen.lock().unwrap();
        let next_match = |log: &Log| {
            while *seen < log.lines.len() {
                let line = &log.lines[*seen];
                *seen += 1;
                if let Ok(event) = serde_json::from_str::<Value>(line) {
                    if event["message"] == message {
                        return Some(event);
                    }
                }
            }
            None
        };
        self.wait_until(next_match, message)
    }

    /// The base URL of `/metrics` (started with
    /// `KEYHOOK_METRICS_LISTEN=127.0.0.1:0`), from its log line, which
    /// comes before "keyhook listening" so it is always kept.
    pub fn metrics_url(&self) -> String {
        let addr = self.wait_until(
            |log| {
                log.lines.iter().find_map(|line| {
                    let event: Value = serde_json::from_str(line).ok()?;
                    if event["message"] != "metrics listening" {
                        return None;
                    }
                    // The `Debug` form of an `Option<SocketAddr>`.
                    let addr = event["addr"].as_str()?;
                    let addr = addr.trim_start_matches("Some(").trim_end_matches(')');
                    addr.parse::<SocketAddr>().ok()
                })
            },
            "metrics listening",
        );
        format!("http://{addr}")
    }

    /// The admin listener's address (started with
    /// `KEYHOOK_ADMIN_LISTEN=127.0.0.1:0`), from its log line, which comes
    /// before "keyhook listening" so it is always kept.
    pub fn admin_addr(&self) -> SocketAddr {
        self.wait_until(
            |log| {
                log.lines.iter().find_map(|line| {
                    let event: Value = serde_json::from_str(line).ok()?;
                    if event["message"] != "admin listening" {
                        return None;
                    }
                    let addr = event["addr"].as_str()?;
                    let addr = addr.trim_start_matches("Some(").trim_end_matches(')');
                    addr.parse::<SocketAddr>().ok()
                })
            },
            "admin listening",
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The working directory (its `data/` is the default data directory).
    pub fn dir(&self) -> &Path {
        &self.cwd
    }

    /// Waits until `path` (e.g. `/healthz` or `/readyz`) answers 200.
    pub async fn wait_for(&mut self, path: &str) {
        self.wait_for_within(path, Duration::from_secs(30)).await
    }

    /// As [`Process::wait_for`], for at most `limit`.
    pub async fn wait_for_within(&mut self, path: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("keyhook exited early ({status}): {}", self.tail());
            }
            if let Ok(r) = self.api.http.get(self.url(path)).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "keyhook did not answer {path} 200 within {limit:?}: {}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.wait_until(
                    |log| (log.closed && log.stdout_closed).then_some(()),
                    "the end of stdout and stderr",
                );
                return status;
            }
            assert!(Instant::now() < deadline, "keyhook did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit, within the harness's patience.
    pub fn wait(mut self) -> ExitStatus {
        self.wait_exit(PATIENCE)
    }

    /// Every line the process has written to stderr so far (all of them
    /// only when the launch kept its logs).
    pub fn logs(&self) -> String {
        let mut text = self.log.0.lock().unwrap().lines.join("\n");
        text.push('\n');
        text
    }

    /// Every line the process has written to stdout so far (none kept
    /// unless the launch kept its logs).
    pub fn stdout(&self) -> String {
        let mut text = self.log.0.lock().unwrap().stdout.join("\n");
        text.push('\n');
        text
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        tail(&self.log.0.lock().unwrap().lines)
    }
}

fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}

/// The address of a "keyhook listening" JSON log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["message"] != "keyhook listening" {
        return None;
    }
    event["addr"].as_str()?.parse().ok()
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
