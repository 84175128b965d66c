//! keyhook itself, spawned in-process on a free loopback port, and a client
//! that speaks both portals' protocols to it over real sockets.

use std::time::Duration;

use aws_config::SdkConfig;
use base64::Engine;
use keyhook::app::{Application, Dependencies};
use keyhook::config::Config;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub const README_SECRET: &str = "test-readme-secret";
pub const PORTAL_USER: &str = "portal";
pub const PORTAL_PASSWORD: &str = "portal-password";

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A configuration with both front doors open.
pub fn base_config() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.readme.secret = vec![README_SECRET.to_string().into()];
    config.sensedia.users = vec![format!("{PORTAL_USER}:{PORTAL_PASSWORD}").parse().unwrap()];
    config
}

impl Server {
    pub async fn spawn(config: &Config, aws: Option<SdkConfig>) -> Server {
        Self::spawn_with_clock(config, aws, keyhook::clock::system()).await
    }

    pub async fn spawn_with_clock(
        config: &Config,
        aws: Option<SdkConfig>,
        clock: keyhook::clock::Clock,
    ) -> Server {
        let app = Application::build(config, Dependencies { clock, aws })
            .await
            .expect("keyhook starts");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Server {
            base,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A client for a server another handle owns (for concurrent calls).
    pub fn client_for(base: &str) -> Server {
        Server {
            base: base.to_string(),
            http: reqwest::Client::new(),
            shutdown: None,
            task: None,
        }
    }

    /// Waits until `/readyz` answers 200 (the AWS index has loaded).
    pub async fn ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("keyhook did not become ready");
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn login(&self, email: &str) -> Response {
        let body = json!({ "email": email }).to_string();
        let header = keyhook::readme::signature::sign(
            README_SECRET,
            keyhook::clock::now_ms(),
            body.as_bytes(),
        );
        self.http
            .post(format!("{}/readme/webhook", self.base))
            .header("ReadMe-Signature", header)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The `keys` a login shows, or the status when it is not 200.
    pub async fn login_keys(&self, email: &str) -> Result<Vec<Value>, StatusCode> {
        let response = self.login(email).await;
        if response.status() != StatusCode::OK {
            return Err(response.status());
        }
        let body: Value = response.json().await.unwrap();
        Ok(body["keys"].as_array().cloned().unwrap_or_default())
    }

    pub async fn sensedia(&self, route: &str, body: &Value) -> Response {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{PORTAL_USER}:{PORTAL_PASSWORD}"));
        self.http
            .post(format!("{}/v1/{route}", self.base))
            .header("authorization", format!("Basic {auth}"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{PORTAL_USER}:{PORTAL_PASSWORD}"));
        self.http
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Basic {auth}"))
            .send()
            .await
            .unwrap()
    }
}
