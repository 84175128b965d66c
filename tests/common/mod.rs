//! Test harness, zero2prod style: keyhook built from a [`Config`] exactly as
//! `main` builds it, spawned in-process on a free loopback port, and a client
//! that speaks both portals' protocols to it over real sockets.
//!
//! Any configuration can be spawned, so tests of other backends (the AWS one
//! with an emulator's `SdkConfig`) use the same harness:
//!
//! ```ignore
//! let app = TestApp::spawn(config).await;                       // real clock
//! let app = TestApp::spawn_with_clock(config, clock::fixed(t)).await;
//! let app = TestApp::spawn_with(config, clock::system(), Some(sdk)).await;
//! let app = TestApp::local().await;        // defaults below, in a tempdir
//! let app = TestApp::local_with(|c| c.readme.provision = true).await;
//! ```
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use base64::Engine;
use keyhook::app::{Application, Dependencies};
use keyhook::clock::{self, Clock};
use keyhook::config::Config;
use keyhook::sensedia::settings::BasicUser;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const README_SECRET: &str = "test-readme-secret";
pub const SENSEDIA_USER: &str = "portal";
pub const SENSEDIA_PASSWORD: &str = "portal-password";

/// The default test configuration: the local store in `data_dir`, a free
/// loopback port, one ReadMe secret and one Sensedia Basic-auth pair.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.readme.secret = vec![README_SECRET.to_string().into()];
    config.sensedia.users = vec![format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}")
        .parse::<BasicUser>()
        .unwrap()];
    config
}

/// `Authorization: Basic ...` for `user:password` (any text, so tests can
/// send malformed pairs too).
pub fn basic(pair: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Talks to one running keyhook. Cheap to clone: clones share the
/// connection pool, so concurrent tests spawn tasks with a clone each.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// What logins are signed with: the first configured ReadMe secret.
    pub readme_secret: Option<String>,
    /// What `/v1` calls authenticate with: the first configured pair.
    pub sensedia_auth: Option<String>,
}

impl ApiClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// The `ReadMe-Signature` ReadMe would send for `body` now.
    pub fn sign(&self, body: &[u8]) -> String {
        self.sign_at(body, clock::now_ms())
    }

    pub fn sign_at(&self, body: &[u8], t_ms: i64) -> String {
        let secret = self
            .readme_secret
            .as_deref()
            .expect("the configuration has a ReadMe secret");
        keyhook::readme::signature::sign(secret, t_ms, body)
    }

    /// POSTs `body` to the ReadMe webhook as JSON, with `signature` (if any)
    /// in `ReadMe-Signature`.
    pub async fn readme_raw(&self, signature: Option<&str>, body: &[u8]) -> Response {
        let mut request = self
            .http
            .post(self.url("/readme/webhook"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("ReadMe-Signature", signature);
        }
        request.send().await.unwrap()
    }

    /// A login as ReadMe sends it: compact JSON, signed now.
    pub async fn login(&self, email: &str) -> Response {
        let body = json!({ "email": email }).to_string();
        let signature = self.sign(body.as_bytes());
        self.readme_raw(Some(&signature), body.as_bytes()).await
    }

    /// The answer to a login that must succeed.
    pub async fn login_ok(&self, email: &str) -> Value {
        let response = self.login(email).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `keys` a login shows; none when the login answers 404.
    pub async fn login_keys(&self, email: &str) -> Vec<Value> {
        let response = self.login(email).await;
        match response.status() {
            StatusCode::OK => {
                let body: Value = response.json().await.unwrap();
                body["keys"].as_array().cloned().expect("keys is an array")
            }
            StatusCode::NOT_FOUND => Vec::new(),
            other => panic!("login {email}: {other} {}", response.text().await.unwrap()),
        }
    }

    /// POSTs JSON to `/v1/<route>` with the configured Basic auth.
    pub async fn sensedia(&self, route: &str, body: &Value) -> Response {
        self.sensedia_raw(
            route,
            self.sensedia_auth.as_deref(),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// POSTs to `/v1/<route>` with exactly the given `Authorization` and
    /// `Content-Type` (none when `None`).
    pub async fn sensedia_raw(
        &self,
        route: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut request = self.http.post(self.url(&format!("/v1/{route}"))).body(body);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// `GET /v1/health` with the configured Basic auth.
    pub async fn sensedia_health(&self) -> Response {
        let mut request = self.http.get(self.url("/v1/health"));
        if let Some(auth) = &self.sensedia_auth {
            request = request.header("authorization", auth);
        }
        request.send().await.unwrap()
    }

    /// `createCredentials` that must succeed; its answer.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self.sensedia("createCredentials", body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "createCredentials {body}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Creates the app `slug` named `App <slug>` for `developer`.
    pub async fn create_app(&self, developer: &str, slug: &str) -> Value {
        self.create(&json!({
            "appName": format!("App {slug}"),
            "appSlug": slug,
            "developer": developer,
        }))
        .await
    }

    /// Sends `request` verbatim on a fresh connection (for what reqwest
    /// would normalise, such as header-name case) and returns the status
    /// and the body. The blocking exchange runs off the runtime, which must
    /// stay free to drive the in-process server.
    pub async fn raw_http(&self, request: &[u8]) -> (u16, Vec<u8>) {
        let (addr, request) = (self.addr, request.to_vec());
        tokio::task::spawn_blocking(move || raw_http(addr, &request))
            .await
            .unwrap()
    }
}

/// One HTTP/1.1 exchange on a fresh connection; `request` should carry
/// `Connection: close`. Bodies are read to the end of the stream.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// Status and body of a complete, non-chunked HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, raw[split + 4..].to_vec())
}

/// keyhook running on a tokio task of the test's runtime.
pub struct TestApp {
    pub api: ApiClient,
    pub config: Config,
    /// The data directory of [`TestApp::local`] apps, removed on drop.
    data_dir: Option<TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::ops::Deref for TestApp {
    type Target = ApiClient;
    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl TestApp {
    /// Spawns `config` with the real clock.
    pub async fn spawn(config: Config) -> TestApp {
        Self::spawn_with_clock(config, clock::system()).await
    }

    /// Spawns `config` with signatures checked against `clock`.
    pub async fn spawn_with_clock(config: Config, clock: Clock) -> TestApp {
        let app = Application::build(&config, Dependencies { clock, aws: None })
            .await
            .expect("keyhook starts");
        Self::run(config, app)
    }

    /// Spawns `config` with `clock` and, for the AWS backend, the SDK
    /// configuration of an emulator (`None`: the standard chain).
    pub async fn spawn_with(config: Config, clock: Clock, aws: Option<SdkConfig>) -> TestApp {
        let app = Application::build(&config, Dependencies { clock, aws })
            .await
            .expect("keyhook starts");
        Self::run(config, app)
    }

    /// The default test configuration in a fresh temporary data directory.
    pub async fn local() -> TestApp {
        Self::local_with(|_| {}).await
    }

    /// As [`TestApp::local`], with `change` applied to the configuration.
    pub async fn local_with(change: impl FnOnce(&mut Config)) -> TestApp {
        Self::local_with_clock(change, clock::system()).await
    }

    /// As [`TestApp::local_with`], with signatures checked against `clock`.
    pub async fn local_with_clock(change: impl FnOnce(&mut Config), clock: Clock) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        change(&mut config);
        Self::spawn_with_clock(config, clock).await.keeping(dir)
    }

    /// Ties `dir` (the app's data directory) to this app's lifetime.
    pub fn keeping(mut self, dir: TempDir) -> TestApp {
        self.data_dir = Some(dir);
        self
    }

    fn run(config: Config, app: Application) -> TestApp {
        let addr = app.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let api = ApiClient {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            readme_secret: config.readme.secret.first().map(|s| s.expose().clone()),
            sensedia_auth: config
                .sensedia
                .users
                .first()
                .map(|u| basic(&format!("{}:{}", u.user, u.password.expose()))),
        };
        TestApp {
            api,
            config,
            data_dir: None,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server as SIGTERM would (stop accepting, finish in-flight
    /// requests), checks it stopped cleanly, and hands back the data
    /// directory it owned, if any, so a test can reopen or restart on it.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task panicked")
                .expect("server stopped cleanly");
        }
        self.data_dir.take()
    }
}
