//! What the emulator holds, read straight from moto (not through keyhook or
//! a proxy): the reliability tests check every effect there.

use aws_config::SdkConfig;
use keyhook::config::{BackendKind, Config};
use keyhook::credentials::CredentialKind;
use serde_json::{json, Value};

use super::app::TestApp;
use super::base_config;
use super::moto::{sdk_config, seed, Moto, Seed};
use super::proxy::Proxy;

pub struct Emulator {
    pub endpoint: String,
    pub seed: Seed,
    pub apigw: aws_sdk_apigateway::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
}

impl Emulator {
    /// The shared moto, with fresh resources (`plans` usage plans, a REST
    /// API, a user pool with a resource server) for this test.
    pub async fn new(plans: usize) -> Emulator {
        let moto = Moto::shared();
        let direct = sdk_config(&moto.endpoint);
        Emulator {
            endpoint: moto.endpoint.clone(),
            seed: seed(&direct, plans).await,
            apigw: aws_sdk_apigateway::Client::new(&direct),
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&direct),
        }
    }

    pub fn sdk(&self) -> SdkConfig {
        sdk_config(&self.endpoint)
    }

    /// A fresh proxy in front of this emulator, counting what passes.
    pub async fn proxy(&self) -> Proxy {
        Proxy::start(&self.endpoint).await
    }

    /// An in-process keyhook configuration for the aws backend with this
    /// emulator's pool and scopes, small timeouts and no rate limit to speak of.
    pub fn config(&self, kind: CredentialKind) -> Config {
        let mut config = base_config();
        config.backend = BackendKind::Aws;
        config.sensedia.credential_type = kind;
        config.aws.cognito_user_pool_id = Some(self.seed.pool_id.clone());
        config.aws.cognito_domain = Some("https://auth.keyhook.test".into());
        config.aws.cognito_scopes = vec![self.seed.scopes[0].clone()];
        config.aws.timeout_secs = 2;
        config.aws.max_attempts = 2;
        config.aws.rate_limit = 1000.0;
        config
    }

    /// [`Emulator::config`] with per-API scopes: the seed's API asks for the
    /// second scope.
    pub fn scoped_config(&self, kind: CredentialKind) -> Config {
        let mut config = self.config(kind);
        config
            .aws
            .api_scopes
            .insert(self.seed.api_id.clone(), vec![self.seed.scopes[1].clone()]);
        config
    }

    /// One app client as Cognito describes it (secret, flows, scopes).
    pub async fn client(
        &self,
        client_id: &str,
    ) -> aws_sdk_cognitoidentityprovider::types::UserPoolClientType {
        self.cognito
            .describe_user_pool_client()
            .user_pool_id(&self.seed.pool_id)
            .client_id(client_id)
            .send()
            .await
            .unwrap()
            .user_pool_client()
            .cloned()
            .unwrap()
    }

    /// A key made by hand, as in the AWS console; its value.
    pub async fn hand_made_key(&self, name: &str, enabled: bool) -> String {
        self.apigw
            .create_api_key()
            .name(name)
            .enabled(enabled)
            .send()
            .await
            .unwrap()
            .value()
            .unwrap()
            .to_string()
    }

    /// Every API key named `owner` (enabled or not).
    pub async fn keys_named(&self, owner: &str) -> Vec<aws_sdk_apigateway::types::ApiKey> {
        self.apigw
            .get_api_keys()
            .include_values(true)
            .limit(500)
            .send()
            .await
            .unwrap()
            .items()
            .iter()
            .filter(|k| k.name() == Some(owner))
            .cloned()
            .collect()
    }

    /// The ids of the keys attached to `plan`.
    pub async fn plan_key_ids(&self, plan: &str) -> Vec<String> {
        self.apigw
            .get_usage_plan_keys()
            .usage_plan_id(plan)
            .limit(500)
            .send()
            .await
            .unwrap()
            .items()
            .iter()
            .filter_map(|k| k.id().map(str::to_string))
            .collect()
    }

    /// The plans (of this test's seed) `key_id` is attached to.
    pub async fn plans_of(&self, key_id: &str) -> Vec<String> {
        let mut plans = Vec::new();
        for plan in &self.seed.plans {
            if self.plan_key_ids(plan).await.iter().any(|k| k == key_id) {
                plans.push(plan.clone());
            }
        }
        plans
    }

    /// Every app client in the pool: id and name.
    pub async fn clients(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cognito
                .list_user_pool_clients()
                .user_pool_id(&self.seed.pool_id)
                .max_results(60)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            out.extend(page.user_pool_clients().iter().map(|c| {
                (
                    c.client_id().unwrap().to_string(),
                    c.client_name().unwrap_or_default().to_string(),
                )
            }));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        out
    }

    /// The app clients keyhook made for `owner` (their name ends with the
    /// owner; test owners are plain `[a-z0-9.@-]` addresses).
    pub async fn clients_of(&self, owner: &str) -> Vec<(String, String)> {
        let suffix = format!(".{owner}");
        self.clients()
            .await
            .into_iter()
            .filter(|(_, name)| name.ends_with(&suffix))
            .collect()
    }
}

/// An emulator and the proxy keyhook reaches it through: keyhook's calls are
/// counted (and faulted) there, while seeding and checks go to moto direct.
pub struct AwsEnv {
    pub emu: Emulator,
    pub proxy: Proxy,
}

impl std::ops::Deref for AwsEnv {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl AwsEnv {
    pub async fn new(plans: usize) -> AwsEnv {
        let emu = Emulator::new(plans).await;
        let proxy = emu.proxy().await;
        AwsEnv { emu, proxy }
    }

    /// keyhook's view of AWS: through the proxy.
    pub fn keyhook_sdk(&self) -> SdkConfig {
        sdk_config(&self.proxy.endpoint)
    }

    /// The emulator's configuration, with per-API scopes.
    pub fn config(&self, kind: CredentialKind) -> Config {
        self.emu.scoped_config(kind)
    }

    /// keyhook on `config` through the proxy, ready.
    pub async fn spawn(&self, config: &Config) -> TestApp {
        TestApp::spawn_ready(config, &self.proxy.endpoint).await
    }
}

/// A Sensedia `createCredentials` body: app `slug` of `developer`, asking
/// for `plans` of `api`.
pub fn app(developer: &str, slug: &str, api: &str, plans: &[&String]) -> Value {
    json!({
        "appName": format!("App {slug}"),
        "appSlug": slug,
        "developer": developer,
        "apis": [{"id": api, "usagePlans": plans.iter().map(|p| json!({"id": p})).collect::<Vec<_>>()}],
    })
}
