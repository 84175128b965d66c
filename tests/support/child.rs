//! keyhook as a separate process: the real binary, configured only through
//! environment variables, on a free loopback port, with its stderr (the
//! logs) captured to a file. The process is killed when the handle is
//! dropped, so a failing test leaves nothing running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Child {
    pub base: String,
    pub port: u16,
    process: std::process::Child,
    log: PathBuf,
    /// Working directory and default data directory; removed on drop.
    dir: tempfile::TempDir,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Child {
    /// Starts `keyhook serve` with exactly `env` (plus `PATH`, a listen
    /// address, a data directory and JSON logs unless `env` sets them), in
    /// an empty working directory so no `config/keyhook.toml` is picked up.
    pub fn spawn(env: &[(&str, String)]) -> Child {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("KEYHOOK_LISTEN".into(), format!("127.0.0.1:{port}"));
        vars.insert(
            "KEYHOOK_DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        vars.insert("KEYHOOK_LOG_FORMAT".into(), "json".into());
        vars.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        if let Ok(path) = std::env::var("PATH") {
            vars.insert("PATH".into(), path);
        }
        for (k, v) in env {
            vars.insert(k.to_string(), v.clone());
        }
        let port = vars["KEYHOOK_LISTEN"]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(port);
        let log = dir.path().join("stderr.log");
        let process = Command::new(env!("CARGO_BIN_EXE_keyhook"))
            .arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start keyhook");
        Child {
            base: format!("http://127.0.0.1:{port}"),
            port,
            process,
            log,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits until `path` (e.g. `/healthz` or `/readyz`) answers 200.
    pub async fn wait_for(&mut self, path: &str) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!("keyhook exited early ({status}): {}", self.logs());
            }
            if let Ok(r) = http.get(format!("{}{path}", self.base)).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "keyhook did not answer {path} 200: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "keyhook did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process has written to stderr so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}
