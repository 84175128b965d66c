//! A client that speaks both portals' protocols to one running keyhook (in
//! process or a child process) over real sockets: logins signed as ReadMe
//! signs them, `/v1` calls with Sensedia's Basic auth, and raw HTTP/1.1 for
//! what reqwest would normalise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use keyhook::clock;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

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
    /// A client for the keyhook at `addr`, signing with `readme_secret` and
    /// authenticating `/v1` calls with `sensedia_pair` (`user:password`).
    pub fn new(addr: SocketAddr, readme_secret: Option<&str>, sensedia_pair: Option<&str>) -> Self {
        ApiClient {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            readme_secret: readme_secret.map(str::to_string),
            sensedia_auth: sensedia_pair.map(basic),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, unauthenticated.
    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// `GET path` with the configured Basic auth, as the portal would.
    pub async fn get_as_portal(&self, path: &str) -> Response {
        let mut request = self.http.get(self.url(path));
        if let Some(auth) = &self.sensedia_auth {
            request = request.header("authorization", auth);
        }
        request.send().await.unwrap()
    }

    /// Waits until `/readyz` answers 200 (the AWS index has loaded).
    pub async fn ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("keyhook did not become ready");
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

    /// A login as ReadMe sends it: compact JSON, signed now; not sent yet
    /// (the load driver times the sending alone).
    pub fn login_request(&self, email: &str) -> RequestBuilder {
        let body = json!({ "email": email }).to_string();
        let signature = self.sign(body.as_bytes());
        self.http
            .post(self.url("/readme/webhook"))
            .header("ReadMe-Signature", signature)
            .header("content-type", "application/json")
            .body(body)
    }

    /// A login as ReadMe sends it: compact JSON, signed now.
    pub async fn login(&self, email: &str) -> Response {
        self.login_request(email).send().await.unwrap()
    }

    /// The answer to a login that must succeed.
    pub async fn login_ok(&self, email: &str) -> Value {
        let response = self.login(email).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `keys` a login shows, or the status when it is not 200.
    pub async fn login_keys(&self, email: &str) -> Result<Vec<Value>, StatusCode> {
        let response = self.login(email).await;
        if response.status() != StatusCode::OK {
            return Err(response.status());
        }
        let body: Value = response.json().await.unwrap();
        Ok(body["keys"].as_array().cloned().expect("keys is an array"))
    }

    /// The `keys` a login shows; none when the login answers 404, and any
    /// other failure fails the test.
    pub async fn visible_keys(&self, email: &str) -> Vec<Value> {
        match self.login_keys(email).await {
            Ok(keys) => keys,
            Err(StatusCode::NOT_FOUND) => Vec::new(),
            Err(other) => panic!("login {email}: {other}"),
        }
    }

    /// A JSON POST to `/v1/<route>` with the configured Basic auth; not
    /// sent yet.
    pub fn sensedia_request(&self, route: &str, body: &Value) -> RequestBuilder {
        self.sensedia_raw_request(
            route,
            self.sensedia_auth.as_deref(),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
    }

    /// POSTs JSON to `/v1/<route>` with the configured Basic auth.
    pub async fn sensedia(&self, route: &str, body: &Value) -> Response {
        self.sensedia_request(route, body).send().await.unwrap()
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
        self.sensedia_raw_request(route, authorization, content_type, body)
            .send()
            .await
            .unwrap()
    }

    fn sensedia_raw_request(
        &self,
        route: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> RequestBuilder {
        let mut request = self.http.post(self.url(&format!("/v1/{route}"))).body(body);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
    }

    /// `GET /v1/health` with the configured Basic auth.
    pub async fn sensedia_health(&self) -> Response {
        self.get_as_portal("/v1/health").await
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
