//! The IAM policies cannot drift from the code. For each deployment mode
//! keyhook runs its real flows on the AWS backend against moto, through the
//! recording proxy, and every request the proxy saw keyhook send must be
//! allowed by that mode's policy file, rendered for the test's user pool,
//! usage plans and claim table, as AWS would authorize it: the action and
//! the resource ARN its method and path (API Gateway), its `X-Amz-Target`
//! and `UserPoolId` (Cognito) or `TableName` (DynamoDB) name (`iam.rs`
//! evaluates the policy). keyhook runs with the claim table, and each mode's
//! flows are checked to call it themselves, not only through `keyhook
//! check`. Each operation must also be listed for that mode in
//! `deploy/iam/operations.json`. What a policy grants that the flows never
//! called is printed, not failed: some grants cover paths only a race or a
//! fault takes. `audit-readonly` is not a serving mode: it is checked
//! against the calls of `keyhook audit` itself, the real binary.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::emulator::{app, expected_failure, Emulator};
use crate::harness::moto::{sdk_config, sdk_config_as};
use crate::harness::proxy::{Call, Fault, Proxy};
use crate::harness::TestApp;
use crate::iam::{self, strings, Deployment};
use keyhook::config::Config;
use keyhook::credentials::aws::settings::RevokeMode;
use keyhook::credentials::aws::{app_key, cognito, AwsProvider};
use keyhook::credentials::{AppId, CredentialKind, CredentialProvider, Email};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The deployment kit's view: operations.json and the policy files.

struct Kit {
    /// `apigateway:GetApiKeys` → its entry.
    operations: BTreeMap<String, Value>,
    /// mode → the (action, resource) pairs its policy names, as written.
    granted: BTreeMap<String, BTreeSet<(String, String)>>,
    /// mode → its policy document (a template).
    policies: BTreeMap<String, Value>,
}

impl Kit {
    fn load() -> Kit {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/iam");
        let read = |name: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("read deploy/iam/{name}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse deploy/iam/{name}: {e}"))
        };
        let doc = read("operations.json");
        let operations: BTreeMap<String, Value> = doc["operations"]
            .as_object()
            .expect("operations.json: `operations` is an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut granted = BTreeMap::new();
        let mut policies = BTreeMap::new();
        for (mode, file) in doc["policies"]
            .as_object()
            .expect("operations.json: `policies` is an object")
        {
            let policy = read(file.as_str().expect("policy file name"));
            let mut pairs = BTreeSet::new();
            for statement in policy["Statement"].as_array().expect("Statement list") {
                if statement["Effect"] != "Allow" {
                    continue;
                }
                for action in strings(&statement["Action"]) {
                    for resource in strings(&statement["Resource"]) {
                        pairs.insert((action.clone(), resource));
                    }
                }
            }
            granted.insert(mode.clone(), pairs);
            policies.insert(mode.clone(), policy);
        }
        Kit {
            operations,
            granted,
            policies,
        }
    }

    /// The operations.json entry for a proxy operation name
    /// (`GetApiKeys`, `DescribeUserPool`).
    fn entry(&self, operation: &str) -> Option<(&String, &Value)> {
        self.operations
            .iter()
            .find(|(key, _)| key.rsplit(':').next() == Some(operation))
    }

    fn modes_of(entry: &Value) -> Vec<String> {
        strings(&entry["modes"])
    }

    /// What `mode`'s policy lacks for `entry`, if anything.
    fn missing_grants(&self, mode: &str, entry: &Value) -> Vec<String> {
        let Some(granted) = self.granted.get(mode) else {
            return vec![format!("mode {mode} has no policy in operations.json")];
        };
        let mut wants = vec![(
            entry["action"].as_str().unwrap_or_default().to_string(),
            entry["resource"].as_str().unwrap_or_default().to_string(),
        )];
        for also in entry["also"].as_array().into_iter().flatten() {
            wants.push((
                also["action"].as_str().unwrap_or_default().to_string(),
                also["resource"].as_str().unwrap_or_default().to_string(),
            ));
        }
        wants
            .into_iter()
            .filter(|pair| !granted.contains(pair))
            .map(|(action, resource)| format!("{action} on {resource}"))
            .collect()
    }

    /// Fails unless every request keyhook sent is allowed by the policies
    /// of `modes` (attached together, rendered for `deployment`) as AWS
    /// would authorize it: its action and the resource its method and path
    /// (API Gateway) or its `UserPoolId` (Cognito) name. Also fails unless
    /// each operation is listed for one of `modes` in operations.json with
    /// grants the mode's policy names. Prints what those modes grant that
    /// was never called.
    fn assert_covers(&self, label: &str, modes: &[&str], calls: &[Call], deployment: &Deployment) {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for call in calls {
            *counts.entry(call.operation.clone()).or_default() += 1;
        }
        println!("[{label}] keyhook called, as policies {modes:?}: {counts:?}");
        assert!(!calls.is_empty(), "[{label}] the proxy saw no AWS call");
        let mut problems = BTreeSet::new();
        for call in calls {
            for (action, resource) in iam::authorizations(call) {
                let allowed = modes.iter().any(|mode| {
                    let policy = self.policies.get(*mode).expect("a policy for every mode");
                    iam::allows(policy, deployment, &action, &resource)
                });
                if !allowed {
                    problems.insert(format!(
                        "{} {} ({}): no policy of {modes:?} allows {action} on {resource}",
                        call.method, call.path, call.operation
                    ));
                }
            }
        }
        for operation in counts.keys() {
            let Some((key, entry)) = self.entry(operation) else {
                problems.insert(format!(
                    "keyhook called {operation}, which deploy/iam/operations.json does not list"
                ));
                continue;
            };
            let listed = Self::modes_of(entry);
            let Some(mode) = modes.iter().find(|m| listed.iter().any(|l| l == *m)) else {
                problems.insert(format!(
                    "keyhook called {key}, but operations.json lists it only for {listed:?}, not {modes:?}"
                ));
                continue;
            };
            for missing in self.missing_grants(mode, entry) {
                problems.insert(format!("{key}: the {mode} policy does not grant {missing}"));
            }
        }
        for mode in modes {
            for (key, entry) in &self.operations {
                let operation = key.rsplit(':').next().unwrap_or(key);
                if Self::modes_of(entry).iter().any(|m| m == mode)
                    && !counts.contains_key(operation)
                {
                    let when = entry["when"][*mode].as_str().unwrap_or("no `when` given");
                    println!("[{label}] note: {mode} grants {key}, never called here ({when})");
                }
            }
        }
        assert!(
            problems.is_empty(),
            "[{label}] the IAM policies have drifted from the code:\n  {}",
            problems.into_iter().collect::<Vec<_>>().join("\n  ")
        );
    }
}

/// The deployment the policies are rendered for: this test's user pool,
/// usage plans and claim table.
fn deployment(env: &Emulator) -> Deployment {
    Deployment {
        user_pool_id: env.seed.pool_id.clone(),
        usage_plans: env.seed.plans.clone(),
        claim_table: env.seed.claim_table.clone(),
    }
}

// ---------------------------------------------------------------------------
// A fresh corner of the shared moto server, and keyhook in front of it.

/// The settings every mode shares; each test adds its own. `pool`: with
/// the Cognito user pool and per-API scopes, else API keys only.
fn config(emu: &Emulator, kind: CredentialKind, pool: bool) -> Config {
    let mut config = match pool {
        true => emu.scoped_config(kind),
        false => emu.config(kind),
    };
    if pool {
        return config;
    }
    config.aws.cognito_user_pool_id = None;
    config.aws.cognito_domain = None;
    config.aws.cognito_scopes.clear();
    config
}

/// An app client named the way keyhook names its own, made directly in moto
/// (as another replica or deployment would have).
async fn foreign_client(emu: &Emulator, slug: &str, label: &str, owner: &str) -> String {
    let name = cognito::client_name(
        &app_key(&AppId::sensedia_slug(slug)),
        label,
        &Email::parse(owner).unwrap(),
    )
    .unwrap();
    emu.cognito
        .create_user_pool_client()
        .user_pool_id(&emu.seed.pool_id)
        .client_name(name)
        .generate_secret(true)
        .allowed_o_auth_flows(
            aws_sdk_cognitoidentityprovider::types::OAuthFlowType::ClientCredentials,
        )
        .allowed_o_auth_flows_user_pool_client(true)
        .allowed_o_auth_scopes(emu.seed.scopes[0].clone())
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_string()
}

/// What `keyhook check` runs, through `proxy`; returns how many calls the
/// proxy has seen so far, where the flows' own calls begin.
async fn verify(config: &Config, proxy: &Proxy) -> usize {
    let report = AwsProvider::new(
        &config.aws,
        config.readme.usage_plan_id.clone(),
        &sdk_config(&proxy.endpoint),
        keyhook::clock::system(),
    )
    .verify()
    .await;
    assert!(report.is_ok(), "keyhook check fails: {report:?}");
    proxy.requests().len()
}

/// Fails unless the flows themselves (the calls after `keyhook check`, which
/// makes all four claim calls anyway) made each of `claim_calls` on the
/// claim table: else the policy test would not show that the flows' use of
/// the table is granted.
fn assert_flows_call(label: &str, proxy: &Proxy, checked: usize, claim_calls: &[&str]) {
    let calls = proxy.requests();
    let made: BTreeSet<&str> = calls[checked..]
        .iter()
        .filter(|call| call.table_name.is_some())
        .map(|call| call.operation.as_str())
        .collect();
    for op in claim_calls {
        assert!(
            made.contains(op),
            "[{label}] the flows never called {op} on the claim table (only {made:?})"
        );
    }
}

async fn probes(server: &TestApp) {
    for path in ["/healthz", "/readyz", "/v1/health"] {
        let status = server.get_as_portal(path).await.status();
        assert!(status.is_success(), "{path}: {status}");
    }
}

async fn status_of(server: &TestApp, route: &str, body: &Value) -> StatusCode {
    server.sensedia(route, body).await.status()
}

async fn created(server: &TestApp, body: &Value) -> Value {
    let response = server.sensedia("createCredentials", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

// ---------------------------------------------------------------------------
// The four modes.

/// ReadMe logins only: keys are made by hand (or by another deployment),
/// keyhook never writes.
#[tokio::test]
async fn readme_readonly_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::new(1).await;
    let proxy = env.proxy().await;
    let known = env.hand_made_key("known@ro.io", true).await;
    env.hand_made_key("known@ro.io", false).await;
    env.hand_made_key("not an email", true).await;
    let client = foreign_client(&env, "ro-app", "Reports", "oauth@ro.io").await;

    let sensedia_config = config(&env, CredentialKind::ApiKey, false);
    let mut config = config(&env, CredentialKind::ApiKey, true);
    config.readme.provision = false;
    config.readme.usage_plan_id = Some(env.seed.plans[0].clone());
    // A refresh after the first load settles (the first load only shows).
    config.aws.index_refresh_secs = 1;
    let checked = verify(&config, &proxy).await;

    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    probes(&server).await;
    // A reader the index knows, twice; one with a Cognito client.
    for _ in 0..2 {
        let keys = server.login_keys("Known@RO.io").await.unwrap();
        assert_eq!(keys, vec![json!({"name": "API key", "apiKey": known})]);
    }
    let keys = server.login_keys("oauth@ro.io").await.unwrap();
    assert_eq!(keys[0]["user"], client);
    // Readers the index does not know: one AWS has nothing for, one whose
    // key was made after keyhook started.
    assert_eq!(
        server.login_keys("stranger@ro.io").await,
        Err(StatusCode::NOT_FOUND)
    );
    let late = env.hand_made_key("late@ro.io", true).await;
    assert_eq!(
        server.login_keys("late@ro.io").await.unwrap()[0]["apiKey"],
        late
    );
    // A key a Sensedia deployment sharing the claim table made (and
    // claimed) after keyhook started: the login reads its claim (GetItem).
    let sensedia = TestApp::spawn_ready(&sensedia_config, &env.endpoint).await;
    let made = created(
        &sensedia,
        &app(
            "made@ro.io",
            "ro-keys",
            &env.seed.api_id,
            &[&env.seed.plans[0]],
        ),
    )
    .await;
    sensedia.stop().await;
    assert_eq!(
        server.login_keys("made@ro.io").await.unwrap()[0]["apiKey"],
        made["apiKey"]
    );
    // A refresh claims the foreign client (below); generous bound.
    for _ in 0..100 {
        let calls = proxy.requests();
        if calls[checked..].iter().any(|c| c.operation == "PutItem") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await;

    // PutItem: a refresh claims the foreign client for its app (at once:
    // moto gives app clients no creation date, so it is old enough).
    assert_flows_call(
        "readme-readonly",
        &proxy,
        checked,
        &["GetItem", "PutItem", "Scan"],
    );
    kit.assert_covers(
        "readme-readonly",
        &["readme-readonly"],
        &proxy.requests(),
        &deployment(&env),
    );
}

/// ReadMe logins that issue a key to first-time readers, on a usage plan.
#[tokio::test]
async fn readme_provisioning_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::new(1).await;
    let proxy = env.proxy().await;
    let plan = env.seed.plans[0].clone();
    let existing = env.hand_made_key("old@prov.io", true).await;
    foreign_client(&env, "prov-app", "Reports", "oauth@prov.io").await;

    let mut config = config(&env, CredentialKind::ApiKey, true);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(plan.clone());
    let checked = verify(&config, &proxy).await;

    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    let second = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    probes(&server).await;
    // First login issues a key; repeat logins show it.
    let first = server.login_keys("first@prov.io").await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(server.login_keys("first@prov.io").await.unwrap(), first);
    assert_eq!(second.login_keys("first@prov.io").await.unwrap(), first);
    assert_eq!(env.keys_named("first@prov.io").await.len(), 1);
    // Readers who already have a credential are not issued another.
    assert_eq!(
        server.login_keys("old@prov.io").await.unwrap()[0]["apiKey"],
        existing
    );
    assert_eq!(server.login_keys("oauth@prov.io").await.unwrap().len(), 1);
    // Two replicas, one first-time reader, concurrent logins.
    let logins: Vec<_> = (0..8)
        .map(|i| {
            let api = if i % 2 == 0 {
                server.api.clone()
            } else {
                second.api.clone()
            };
            tokio::spawn(async move { api.login_keys("race@prov.io").await })
        })
        .collect();
    for login in logins {
        assert!(login.await.unwrap().is_ok());
    }
    assert_eq!(env.keys_named("race@prov.io").await.len(), 1);
    // An attach that fails: the orphaned key is deleted again.
    let refused = Fault::Status(400, "BadRequestException");
    proxy.fail("CreateUsagePlanKey", refused.clone(), 10);
    let response = server.login("orphan@prov.io").await;
    let (status, want_body) = expected_failure(&refused, "CreateUsagePlanKey");
    assert_eq!(response.status(), status);
    assert_eq!(response.json::<Value>().await.unwrap(), want_body);
    proxy.clear_faults();
    assert!(env.keys_named("orphan@prov.io").await.is_empty());
    assert_eq!(server.login_keys("orphan@prov.io").await.unwrap().len(), 1);
    // A key deleted by hand (in the console) still holds its app's claim:
    // a replica that starts without it provisions a new key at the reader's
    // next login, releasing the stale claim (DeleteItem) first.
    let gone = env.keys_named("first@prov.io").await;
    env.apigw
        .delete_api_key()
        .api_key(gone[0].id().unwrap())
        .send()
        .await
        .unwrap();
    let third = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    let again = third.login_keys("first@prov.io").await.unwrap();
    assert_eq!(again.len(), 1);
    assert_ne!(again, first);
    assert_eq!(env.keys_named("first@prov.io").await.len(), 1);
    third.stop().await;
    probes(&second).await;
    second.stop().await;
    server.stop().await;

    assert_flows_call(
        "readme-provisioning",
        &proxy,
        checked,
        &[
            "GetItem",
            "PutItem",
            "TransactWriteItems",
            "DeleteItem",
            "Scan",
        ],
    );
    kit.assert_covers(
        "readme-provisioning",
        &["readme-provisioning"],
        &proxy.requests(),
        &deployment(&env),
    );
}

/// Sensedia apps get API Gateway keys: create, update with plan changes,
/// revoke by deleting and by disabling; ReadMe logins show the keys.
#[tokio::test]
async fn sensedia_api_keys_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::new(3).await;
    let proxy = env.proxy().await;
    let [p0, p1, p2] = [&env.seed.plans[0], &env.seed.plans[1], &env.seed.plans[2]];
    let api = env.seed.api_id.clone();
    let dev = "dev@keys.io";

    let config = config(&env, CredentialKind::ApiKey, false);
    let checked = verify(&config, &proxy).await;
    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    probes(&server).await;

    let body = app(dev, "keys1", &api, &[p0, p1]);
    let first = created(&server, &body).await;
    assert_eq!(
        created(&server, &body).await,
        first,
        "a retry is idempotent"
    );
    let key_id = first["apiKeyId"].as_str().unwrap().to_string();
    assert_eq!(server.login_keys(dev).await.unwrap().len(), 1);

    // Update by id: plans p1+p2, renamed; then by slug, back to p0.
    let mut update = app(dev, "keys1", &api, &[p1, p2]);
    update["appName"] = json!("Keys renamed");
    update["apiKeyId"] = json!(key_id);
    assert_eq!(
        status_of(&server, "updateCredentials", &update).await,
        StatusCode::NO_CONTENT
    );
    let update = app(dev, "keys1", &api, &[p0]);
    assert_eq!(
        status_of(&server, "updateCredentials", &update).await,
        StatusCode::NO_CONTENT
    );
    // A replica that did not make it finds it (index loaded from AWS).
    let fresh = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    assert_eq!(created(&fresh, &body).await["apiKeyId"], key_id.as_str());
    fresh.stop().await;

    // Revoke (delete), twice; unknown ids.
    let revoke = json!({"apiKeyId": key_id, "credentialType": "API_KEY"});
    // The second finds it gone, as an unknown id.
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        assert_eq!(
            status_of(&server, "revokeCredentials", &revoke).await,
            status
        );
    }
    assert!(env.keys_named(dev).await.is_empty());
    let mut unknown = app(dev, "keys1", &api, &[p0]);
    unknown["apiKeyId"] = json!("nosuchkey1");
    assert_eq!(
        status_of(&server, "updateCredentials", &unknown).await,
        StatusCode::NOT_FOUND
    );
    server.stop().await;

    // Revoke by disabling.
    let mut config = config.clone();
    config.aws.revoke = RevokeMode::Disable;
    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    let made = created(&server, &app("dis@keys.io", "keys2", &api, &[p2])).await;
    let by_slug = json!({"appSlug": "keys2", "credentialType": "API_KEY"});
    assert_eq!(
        status_of(&server, "revokeCredentials", &by_slug).await,
        StatusCode::NO_CONTENT
    );
    let keys = env.keys_named("dis@keys.io").await;
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].enabled());
    // By id: a disabled key is revoked already, as an unknown id (404).
    let by_id = json!({"apiKeyId": made["apiKeyId"], "credentialType": "API_KEY"});
    assert_eq!(
        status_of(&server, "revokeCredentials", &by_id).await,
        StatusCode::NOT_FOUND
    );
    probes(&server).await;
    server.stop().await;

    assert_flows_call(
        "sensedia-api-keys",
        &proxy,
        checked,
        &[
            "GetItem",
            "PutItem",
            "TransactWriteItems",
            "DeleteItem",
            "Scan",
        ],
    );
    kit.assert_covers(
        "sensedia-api-keys",
        &["sensedia-api-keys"],
        &proxy.requests(),
        &deployment(&env),
    );
}

/// Sensedia apps get Cognito app clients. Without companion API keys the
/// client-credentials policy alone must do; with `client_api_key` keyhook
/// also issues API keys, and operations.json says to attach the API-key
/// policy as well.
#[tokio::test]
async fn sensedia_client_credentials_calls_only_what_its_policies_grant() {
    let kit = Kit::load();
    let env = Emulator::new(2).await;
    let [p0, p1] = [&env.seed.plans[0], &env.seed.plans[1]];
    let api = env.seed.api_id.clone();

    // Client credentials alone.
    let proxy = env.proxy().await;
    let config = config(&env, CredentialKind::ClientCredentials, true);
    let checked = verify(&config, &proxy).await;
    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    probes(&server).await;
    let dev = "plain@cc.io";
    let body = app(dev, "cc-plain", &api, &[]);
    let first = created(&server, &body).await;
    assert_eq!(
        created(&server, &body).await,
        first,
        "a retry is idempotent"
    );
    let client_id = first["clientId"].as_str().unwrap().to_string();
    assert_eq!(server.login_keys(dev).await.unwrap()[0]["user"], client_id);
    let mut update = app(dev, "cc-plain", &api, &[]);
    update["appName"] = json!("Plain renamed");
    update["clientId"] = json!(client_id);
    update["credentialType"] = json!("CLIENT_CREDENTIALS");
    assert_eq!(
        status_of(&server, "updateCredentials", &update).await,
        StatusCode::NO_CONTENT
    );
    // A replica that did not make it: its index describes the client.
    let fresh = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    assert_eq!(created(&fresh, &body).await["clientId"], client_id.as_str());
    fresh.stop().await;
    let revoke = json!({"clientId": client_id, "credentialType": "CLIENT_CREDENTIALS"});
    // The second finds it gone, as an unknown id.
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        assert_eq!(
            status_of(&server, "revokeCredentials", &revoke).await,
            status
        );
    }
    server.stop().await;
    assert_flows_call(
        "sensedia-client-credentials",
        &proxy,
        checked,
        &["GetItem", "PutItem", "DeleteItem", "Scan"],
    );
    let plain = proxy.requests();
    kit.assert_covers(
        "sensedia-client-credentials",
        &["sensedia-client-credentials"],
        &plain,
        &deployment(&env),
    );

    // With a companion API key on the app's usage plans.
    let proxy = env.proxy().await;
    let mut config = config.clone();
    config.aws.client_api_key = true;
    let checked = verify(&config, &proxy).await;
    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    probes(&server).await;
    let dev = "companion@cc.io";
    let body = app(dev, "cc-key", &api, &[p0]);
    let first = created(&server, &body).await;
    let client_id = first["clientId"].as_str().unwrap().to_string();
    assert!(
        first["customCredentials"]["apiKeyId"].is_string(),
        "{first}"
    );
    let fresh = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    assert_eq!(created(&fresh, &body).await["clientId"], client_id.as_str());
    fresh.stop().await;
    let with = |plans: &[&String], name: &str| {
        let mut update = app(dev, "cc-key", &api, plans);
        update["appName"] = json!(name);
        update["clientId"] = json!(client_id);
        update["credentialType"] = json!("CLIENT_CREDENTIALS");
        update
    };
    // Plans change (re-sync), go (companion deleted), come back (re-made).
    for (plans, name) in [
        (vec![p1], "Key renamed"),
        (vec![], "Key renamed"),
        (vec![p0, p1], "Key again"),
    ] {
        assert_eq!(
            status_of(&server, "updateCredentials", &with(&plans, name)).await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(server.login_keys(dev).await.unwrap().len(), 1);
    let revoke = json!({"clientId": client_id, "credentialType": "CLIENT_CREDENTIALS"});
    assert_eq!(
        status_of(&server, "revokeCredentials", &revoke).await,
        StatusCode::NO_CONTENT
    );
    assert!(env.keys_named(dev).await.is_empty());
    server.stop().await;
    assert_flows_call(
        "+ client_api_key",
        &proxy,
        checked,
        &[
            "GetItem",
            "PutItem",
            "TransactWriteItems",
            "DeleteItem",
            "Scan",
        ],
    );
    let all: Vec<Call> = plain.into_iter().chain(proxy.requests()).collect();
    kit.assert_covers(
        "sensedia-client-credentials + client_api_key",
        &["sensedia-client-credentials", "sensedia-api-keys"],
        &all,
        &deployment(&env),
    );
}

/// `keyhook audit` (no `--fix`), the real binary reading the account
/// directly as an operator runs it before deploying keyhook: the read-only
/// audit policy must be enough, and it lists each usage plan's keys. The
/// account holds a Sensedia app's key, hand-made keys (one on no plan, one
/// whose name is not an address), an app client and the claim table.
#[tokio::test]
async fn audit_readonly_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    // An account of its own: the audit reads all of it.
    let env = Emulator::isolated(2).await;
    let proxy = env.proxy().await;
    let sensedia = TestApp::spawn(
        &config(&env, CredentialKind::ApiKey, false),
        Some(env.sdk()),
    )
    .await;
    sensedia.ready().await;
    created(
        &sensedia,
        &app(
            "dev@audit.io",
            "audit-keys",
            &env.seed.api_id,
            &[&env.seed.plans[0]],
        ),
    )
    .await;
    sensedia.stop().await;
    env.hand_made_key("console@audit.io", true).await;
    env.hand_made_key("not an email", true).await;
    foreign_client(&env, "audit-app", "Reports", "oauth@audit.io").await;

    let mut vars = crate::harness::process::aws_env(&proxy.endpoint);
    vars.retain(|(name, _)| *name != "AWS_ACCESS_KEY_ID");
    vars.push(("AWS_ACCESS_KEY_ID", env.access_key.clone()));
    vars.push(("KEYHOOK_USAGE_PLAN_ID", env.seed.plans[0].clone()));
    vars.push(("KEYHOOK_COGNITO_USER_POOL_ID", env.seed.pool_id.clone()));
    vars.push(("KEYHOOK_CLAIM_TABLE", env.seed.claim_table.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut audit = std::process::Command::new(env!("CARGO_BIN_EXE_keyhook"));
    audit
        .args(["audit", "--json"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    // Waited for off this runtime's one thread, which serves the proxy.
    let output = tokio::task::spawn_blocking(move || audit.output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // 1: findings (the hand-made keys are some); 2 would be "could not run".
    assert_eq!(output.status.code(), Some(1), "keyhook audit: {text}");

    let calls = proxy.requests();
    for wanted in ["GetApiKeys", "GetUsagePlanKeys", "ListUserPoolClients"] {
        assert!(
            calls.iter().any(|c| c.operation == wanted),
            "keyhook audit never called {wanted}"
        );
    }
    kit.assert_covers(
        "audit-readonly",
        &["audit-readonly"],
        &calls,
        &deployment(&env),
    );
}

// ---------------------------------------------------------------------------
// The lifecycle: what the admin routes and the sweeper call, through the
// provider as they do, in each mode that writes.

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    u64::try_from(since.unwrap().as_millis()).unwrap()
}

/// keyhook serving `config` through `proxy`, in `env`'s moto account.
async fn serve_in(env: &Emulator, config: &Config, proxy: &Proxy) -> TestApp {
    let server = TestApp::spawn(
        config,
        Some(sdk_config_as(&proxy.endpoint, &env.access_key)),
    )
    .await;
    server.ready().await;
    server
}

/// keyhook's provider through `proxy`, in `env`'s moto account, once its
/// owner index has loaded.
async fn loaded_provider(env: &Emulator, config: &Config, proxy: &Proxy) -> AwsProvider {
    let provider = AwsProvider::start(
        &config.aws,
        config.readme.usage_plan_id.clone(),
        config.max_keys,
        &sdk_config_as(&proxy.endpoint, &env.access_key),
        keyhook::clock::system(),
    );
    for _ in 0..300 {
        if provider.health().await.is_ok() {
            return provider;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the owner index never loaded");
}

/// Rotates `id` (an hour's grace), brings the predecessor's end forward,
/// sets, clears and sets the successor's, sweeps as if two hours had
/// passed (both revoked, by this call), then audits: every lifecycle write
/// and the admin audit's listings.
async fn rotate_expire_sweep_audit(provider: &AwsProvider, id: &str) {
    let now = now_ms();
    let rotation = provider.rotate(id, now + 3_600_000).await.expect("rotate");
    let successor = rotation.successor.id.clone();
    assert_ne!(successor, id);
    provider
        .set_expiry(id, Some(now + 60_000))
        .await
        .expect("bring the predecessor's end forward");
    for end in [Some(now + 5_400_000), None, Some(now + 5_400_000)] {
        provider
            .set_expiry(&successor, end)
            .await
            .unwrap_or_else(|e| panic!("set the successor's end to {end:?}: {e}"));
    }
    let mut swept: Vec<String> = (provider.sweep(now + 7_200_000).await)
        .expect("sweep")
        .into_iter()
        .map(|c| c.id)
        .collect();
    swept.sort();
    let mut both = vec![id.to_string(), successor];
    both.sort();
    assert_eq!(swept, both, "the sweep revokes both, once");
    provider.audit(now_ms()).await.expect("audit");
}

/// A reader's provisioned key, revoked by disabling it.
#[tokio::test]
async fn lifecycle_readme_provisioning_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::isolated(1).await;
    let proxy = env.proxy().await;
    let mut config = config(&env, CredentialKind::ApiKey, true);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(env.seed.plans[0].clone());
    config.aws.revoke = RevokeMode::Disable;
    let server = serve_in(&env, &config, &proxy).await;
    assert_eq!(server.login_keys("life@prov.io").await.unwrap().len(), 1);
    server.stop().await;
    let key = env.keys_named("life@prov.io").await[0]
        .id()
        .unwrap()
        .to_string();

    let provider = loaded_provider(&env, &config, &proxy).await;
    rotate_expire_sweep_audit(&provider, &key).await;
    drop(provider);
    kit.assert_covers(
        "lifecycle readme-provisioning",
        &["readme-provisioning"],
        &proxy.requests(),
        &deployment(&env),
    );
}

/// A Sensedia app's key on two plans, revoked by deleting (one app) and
/// by disabling (another).
#[tokio::test]
async fn lifecycle_sensedia_api_keys_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::isolated(2).await;
    let proxy = env.proxy().await;
    let [p0, p1] = [&env.seed.plans[0], &env.seed.plans[1]];
    let mut config = config(&env, CredentialKind::ApiKey, false);
    for (revoke, slug) in [
        (RevokeMode::Delete, "life-del"),
        (RevokeMode::Disable, "life-dis"),
    ] {
        config.aws.revoke = revoke;
        let server = serve_in(&env, &config, &proxy).await;
        let made = created(
            &server,
            &app("life@keys.io", slug, &env.seed.api_id, &[p0, p1]),
        )
        .await;
        server.stop().await;
        let provider = loaded_provider(&env, &config, &proxy).await;
        rotate_expire_sweep_audit(&provider, made["apiKeyId"].as_str().unwrap()).await;
    }
    kit.assert_covers(
        "lifecycle sensedia-api-keys",
        &["sensedia-api-keys"],
        &proxy.requests(),
        &deployment(&env),
    );
}

/// A Sensedia app's client: its successor is a client too.
#[tokio::test]
async fn lifecycle_sensedia_client_credentials_calls_only_what_its_policy_grants() {
    let kit = Kit::load();
    let env = Emulator::isolated(1).await;
    let proxy = env.proxy().await;
    let config = config(&env, CredentialKind::ClientCredentials, true);
    let server = serve_in(&env, &config, &proxy).await;
    let made = created(
        &server,
        &app("life@cc.io", "life-cc", &env.seed.api_id, &[]),
    )
    .await;
    server.stop().await;
    let provider = loaded_provider(&env, &config, &proxy).await;
    rotate_expire_sweep_audit(&provider, made["clientId"].as_str().unwrap()).await;
    drop(provider);
    kit.assert_covers(
        "lifecycle sensedia-client-credentials",
        &["sensedia-client-credentials"],
        &proxy.requests(),
        &deployment(&env),
    );
}
