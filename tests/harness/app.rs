//! keyhook built from a [`Config`] exactly as `main` builds it and served
//! in-process, on a task of the test's runtime, zero2prod style:
//!
//! ```ignore
//! let app = TestApp::local().await;        // base_config() in a tempdir
//! let app = TestApp::local_with(|c| c.readme.provision = true).await;
//! let app = TestApp::local_with_clock(|_| {}, clock::fixed(t)).await;
//! let app = TestApp::spawn(&config, None).await;           // any config
//! let app = TestApp::spawn(&config, Some(emu.sdk())).await; // AWS backend
//! ```

use aws_config::SdkConfig;
use keyhook::app::{Application, Dependencies};
use keyhook::clock::{self, Clock};
use keyhook::config::Config;
use tempfile::TempDir;

use super::client::ApiClient;
use super::test_config;

/// keyhook running on a tokio task of the test's runtime; derefs to its
/// [`ApiClient`].
pub struct TestApp {
    pub api: ApiClient,
    /// The admin listener's address, when the configuration has one.
    pub admin: Option<std::net::SocketAddr>,
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
    /// Spawns `config` with the real clock and, for the AWS backend, the SDK
    /// configuration of an emulator (`None`: the standard chain).
    pub async fn spawn(config: &Config, aws: Option<SdkConfig>) -> TestApp {
        Self::spawn_with_clock(config, aws, clock::system()).await
    }

    /// As [`TestApp::spawn`], with signatures checked against `clock`.
    pub async fn spawn_with_clock(
        config: &Config,
        aws: Option<SdkConfig>,
        clock: Clock,
    ) -> TestApp {
        let app = Application::build(config, Dependencies { clock, aws })
            .await
            .expect("keyhook starts");
        let pair =
            (config.sensedia.users.first()).map(|u| format!("{}:{}", u.user, u.password.expose()));
        let api = ApiClient::new(
            app.local_addr(),
            config.readme.secret.first().map(|s| s.expose().as_str()),
            pair.as_deref(),
        );
        let admin = app.admin_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        TestApp {
            api,
            admin,
            data_dir: None,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Spawns `config` on the AWS backend reached through `endpoint` (a
    /// proxy or moto itself) and waits until it is ready.
    pub async fn spawn_ready(config: &Config, endpoint: &str) -> TestApp {
        let app = Self::spawn(config, Some(super::moto::sdk_config(endpoint))).await;
        app.ready().await;
        app
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
        Self::spawn_with_clock(&config, None, clock)
            .await
            .keeping(dir)
    }

    /// Ties `dir` (the app's data directory) to this app's lifetime.
    pub fn keeping(mut self, dir: TempDir) -> TestApp {
        self.data_dir = Some(dir);
        self
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
