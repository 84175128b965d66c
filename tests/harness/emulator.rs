//! What the emulator holds, read straight from moto (not through keyhook or
//! a proxy): the reliability tests check every effect there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use keyhook::config::{BackendKind, Config};
use keyhook::credentials::CredentialKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::app::TestApp;
use super::base_config;
use super::moto::{private_account, sdk_config_as, seed, Moto, Seed, DEFAULT_ACCESS_KEY};
use super::proxy::{Fault, Proxy};

pub struct Emulator {
    /// A moto of this emulator's own, if it has one ([`Emulator::own_moto`]).
    _own: Option<Arc<Moto>>,
    pub endpoint: String,
    pub seed: Arc<Seed>,
    /// The moto account's access key (keyhook must be given it too).
    pub access_key: String,
    pub apigw: aws_sdk_apigateway::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

/// Every item of an API Gateway listing: `$request` (a request builder of
/// the SDK, whose listings share no trait) sent page after page, following
/// `position` through [`every_page`].
macro_rules! apigateway_pages {
    ($operation:literal, $request:expr) => {
        every_page($operation, |position| {
            let request = $request;
            async move {
                let page = request
                    .limit(500)
                    .set_position(position)
                    .send()
                    .await
                    .unwrap();
                (page.items().to_vec(), page.position().map(str::to_string))
            }
        })
        .await
    };
}

impl Emulator {
    /// The shared moto, with fresh resources (`plans` usage plans, a REST
    /// API, a user pool with a resource server) for this test.
    pub async fn new(plans: usize) -> Emulator {
        Emulator::on(Moto::shared(), None, plans, DEFAULT_ACCESS_KEY.into()).await
    }

    /// As [`Emulator::new`], in a moto account of its own: no other test
    /// sees its keys, nor it theirs (see [`private_account`]).
    pub async fn isolated(plans: usize) -> Emulator {
        let moto = Moto::shared();
        let access_key = private_account(&moto.endpoint).await;
        Emulator::on(moto, None, plans, access_key).await
    }

    /// As [`Emulator::new`], on a moto of its own (see [`Moto::own`]): for
    /// keyhook processes, which take the default account's credentials.
    pub async fn own_moto(plans: usize) -> Emulator {
        let moto = Arc::new(Moto::own());
        Emulator::on(&moto.clone(), Some(moto), plans, DEFAULT_ACCESS_KEY.into()).await
    }

    /// Fresh resources on the same moto and account as `self`.
    pub async fn beside(&self, plans: usize) -> Emulator {
        match &self._own {
            Some(own) => {
                Emulator::on(
                    &own.clone(),
                    Some(own.clone()),
                    plans,
                    self.access_key.clone(),
                )
                .await
            }
            None => Emulator::on(Moto::shared(), None, plans, self.access_key.clone()).await,
        }
    }

    async fn on(moto: &Moto, own: Option<Arc<Moto>>, plans: usize, access_key: String) -> Emulator {
        let direct = sdk_config_as(&moto.endpoint, &access_key);
        Emulator {
            _own: own,
            endpoint: moto.endpoint.clone(),
            seed: Arc::new(seed(&direct, plans).await),
            apigw: aws_sdk_apigateway::Client::new(&direct),
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&direct),
            dynamodb: aws_sdk_dynamodb::Client::new(&direct),
            access_key,
        }
    }

    /// The same resources, read through `proxy`: a test of the reads
    /// themselves (the proxy can paginate where moto does not).
    pub fn through(&self, proxy: &Proxy) -> Emulator {
        let sdk = sdk_config_as(&proxy.endpoint, &self.access_key);
        Emulator {
            _own: self._own.clone(),
            endpoint: proxy.endpoint.clone(),
            seed: Arc::clone(&self.seed),
            access_key: self.access_key.clone(),
            apigw: aws_sdk_apigateway::Client::new(&sdk),
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        }
    }

    pub fn sdk(&self) -> SdkConfig {
        sdk_config_as(&self.endpoint, &self.access_key)
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
        config.aws.claim_table = Some(self.seed.claim_table.clone());
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

    /// A key named `owner`, described `label`, with `tags`, made straight
    /// in moto (as keyhook, or an earlier version of it, would have made
    /// it) and attached to the seed's first plan: (id, value).
    pub async fn tagged_key(
        &self,
        owner: &str,
        label: &str,
        tags: &[(&str, &str)],
    ) -> (String, String) {
        let mut request = self
            .apigw
            .create_api_key()
            .name(owner)
            .description(label)
            .enabled(true);
        for (tag, value) in tags {
            request = request.tags(*tag, *value);
        }
        let key = request.send().await.unwrap();
        let id = key.id().unwrap().to_string();
        self.apigw
            .create_usage_plan_key()
            .usage_plan_id(&self.seed.plans[0])
            .key_id(&id)
            .key_type("API_KEY")
            .send()
            .await
            .unwrap();
        (id, key.value().unwrap().to_string())
    }

    /// Every API key named `owner` (enabled or not), from every page.
    pub async fn keys_named(&self, owner: &str) -> Vec<aws_sdk_apigateway::types::ApiKey> {
        apigateway_pages!("GetApiKeys", self.apigw.get_api_keys().include_values(true))
            .into_iter()
            .filter(|k| k.name() == Some(owner))
            .collect()
    }

    /// Whether API key `id` exists.
    pub async fn key_exists(&self, id: &str) -> bool {
        match self.apigw.get_api_key().api_key(id).send().await {
            Ok(_) => true,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) =>
            {
                false
            }
            Err(err) => panic!("GetApiKey {id}: {err:?}"),
        }
    }

    /// The items of this test's claim table: claim key (`<kind>#aws:<app
    /// hash>`) → the credential holding it.
    pub async fn claims(&self) -> BTreeMap<String, String> {
        let page = self
            .dynamodb
            .scan()
            .table_name(&self.seed.claim_table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(
            page.last_evaluated_key().is_none(),
            "one page holds a test's claims"
        );
        let text = |item: &HashMap<String, AttributeValue>, name| {
            item.get(name).and_then(|v| v.as_s().ok()).cloned()
        };
        page.items()
            .iter()
            .filter_map(|item| Some((text(item, "app")?, text(item, "credential")?)))
            .collect()
    }

    /// The ids of the keys attached to `plan`, from every page.
    pub async fn plan_key_ids(&self, plan: &str) -> Vec<String> {
        apigateway_pages!(
            "GetUsagePlanKeys",
            self.apigw.get_usage_plan_keys().usage_plan_id(plan)
        )
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

    /// Every app client in the pool: id and name, from every page.
    pub async fn clients(&self) -> Vec<(String, String)> {
        every_page("ListUserPoolClients", |token| async move {
            let page = self
                .cognito
                .list_user_pool_clients()
                .user_pool_id(&self.seed.pool_id)
                .max_results(60)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            let clients = page.user_pool_clients().iter().map(|c| {
                (
                    c.client_id().unwrap().to_string(),
                    c.client_name().unwrap_or_default().to_string(),
                )
            });
            (clients.collect(), page.next_token().map(str::to_string))
        })
        .await
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

/// Every item of a paginated listing: `fetch` gets the token of the page to
/// read (`position` or `nextToken`, none for the first) and answers the
/// page's items and the next token. moto answers API Gateway listings in one
/// page whatever their `limit`, AWS does not: a "nothing left behind" check
/// reading one page would pass without looking. A token that comes back
/// twice would loop forever, so it fails the test instead.
async fn every_page<T, F, Fut>(operation: &str, mut fetch: F) -> Vec<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = (Vec<T>, Option<String>)>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut token = None;
    loop {
        let (page, next) = fetch(token.take()).await;
        items.extend(page);
        match next.filter(|next| !next.is_empty()) {
            Some(next) => {
                assert!(
                    seen.insert(next.clone()),
                    "{operation} answered the page token {next:?} twice"
                );
                token = Some(next);
            }
            None => return items,
        }
    }
}

/// What keyhook answers when every attempt of `operation` meets `fault`
/// (README, "Responses" and "AWS backend" → "Failures"; sorted in
/// `src/credentials/aws/call.rs`): the status and the whole JSON body, the
/// operation and the kind and nothing of AWS's own words. `503` for what is
/// worth trying later (throttling, a 5xx, no answer, a timeout), `502` for a
/// refusal. A delay is taken to outlast keyhook's timeout.
pub fn expected_failure(fault: &Fault, operation: &str) -> (StatusCode, Value) {
    let (status, kind, sentence) = match fault {
        Fault::Status(_, "NotFoundException" | "ResourceNotFoundException") => {
            panic!("a NotFound is an answer keyhook acts on, not a failure")
        }
        Fault::Status(status, code)
            if *status == 429
                || matches!(
                    *code,
                    "TooManyRequestsException"
                        | "ThrottlingException"
                        | "Throttling"
                        | "LimitExceededException"
                ) =>
        {
            (503, "aws_throttled", "AWS is throttling calls")
        }
        Fault::Status(status, _) if *status >= 500 => {
            (503, "aws_unavailable", "AWS is unavailable")
        }
        Fault::Status(403, _) => (502, "aws_access_denied", "AWS denied access"),
        Fault::Status(_, _) | Fault::Cancelled(_) => {
            (502, "aws_refused", "AWS refused the request")
        }
        Fault::Drop | Fault::Lost => (503, "aws_unavailable", "AWS is unavailable"),
        Fault::Delay(_) => (503, "aws_timeout", "AWS did not answer in time"),
    };
    (
        StatusCode::from_u16(status).unwrap(),
        json!({
            "error": format!("{operation} failed: {sentence}"),
            "kind": kind,
            "operation": operation,
        }),
    )
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

    /// As [`AwsEnv::new`], in a moto account of its own.
    pub async fn isolated(plans: usize) -> AwsEnv {
        let emu = Emulator::isolated(plans).await;
        let proxy = emu.proxy().await;
        AwsEnv { emu, proxy }
    }

    /// keyhook's view of AWS: through the proxy.
    pub fn keyhook_sdk(&self) -> SdkConfig {
        sdk_config_as(&self.proxy.endpoint, &self.access_key)
    }

    /// The emulator's configuration, with per-API scopes.
    pub fn config(&self, kind: CredentialKind) -> Config {
        self.emu.scoped_config(kind)
    }

    /// keyhook on `config` through the proxy, ready.
    pub async fn spawn(&self, config: &Config) -> TestApp {
        let app = TestApp::spawn(config, Some(self.keyhook_sdk())).await;
        app.ready().await;
        app
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
