//! The provisioning policy and budget over real sockets: only readers of the
//! allowed domains get a key at their first login, on the plan their domain
//! names; past the key ceiling or the hourly budget nothing new is made,
//! while what exists keeps working.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::harness::TestApp;
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::CredentialProvider;
use serde_json::json;

#[tokio::test]
async fn only_readers_of_the_allowed_domains_get_a_key_on_their_domains_plan() {
    let app = TestApp::local_with(|c| {
        c.readme.provision = true;
        c.readme.provision_domains = vec!["corp.com".into(), "*.partner.io".into()];
        c.readme.usage_plan_id = Some("free".into());
        c.readme.plans_by_domain =
            BTreeMap::from([("*.partner.io".to_string(), "partners".to_string())]);
    })
    .await;
    for outsider in ["jo@gmail.com", "jo@partner.io", "jo@corp.com.evil.io"] {
        assert!(app.visible_keys(outsider).await.is_empty(), "{outsider}");
        // Asking again changes nothing.
        assert!(app.visible_keys(outsider).await.is_empty(), "{outsider}");
    }
    assert_eq!(app.visible_keys("jo@corp.com").await.len(), 1);
    assert_eq!(app.visible_keys("jo@eu.partner.io").await.len(), 1);

    let dir = app.stop().await.unwrap();
    let store = LocalStore::open(dir.path(), keyhook::clock::system()).unwrap();
    let mut held: Vec<(String, Vec<String>)> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.credential.owner.to_string(), l.credential.usage_plans))
        .collect();
    held.sort();
    assert_eq!(
        held,
        [
            ("jo@corp.com".to_string(), vec!["free".to_string()]),
            ("jo@eu.partner.io".to_string(), vec!["partners".to_string()]),
        ]
    );
}

async fn refused(response: reqwest::Response, reason: &str, limit: &str) {
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["limit"], limit, "{body}");
    assert!(body["error"].as_str().unwrap().contains(limit), "{body}");
}

#[tokio::test]
async fn past_the_key_ceiling_new_credentials_stop_and_existing_ones_keep_working() {
    let app = TestApp::local_with(|c| {
        c.max_keys = 2;
        c.readme.provision = true;
    })
    .await;
    let first = app.create_app("dev@corp.com", "one").await;
    app.create_app("dev@corp.com", "two").await;
    // A new app, and a first-time reader: refused, nothing made.
    let third = json!({"appName": "Three", "appSlug": "three", "developer": "dev@corp.com"});
    refused(
        app.sensedia("createCredentials", &third).await,
        "key_ceiling",
        "KEYHOOK_MAX_KEYS",
    )
    .await;
    refused(
        app.login("new@corp.com").await,
        "key_ceiling",
        "KEYHOOK_MAX_KEYS",
    )
    .await;
    // What exists keeps working: a retry, an update, a login.
    assert_eq!(app.create_app("dev@corp.com", "one").await, first);
    let renamed = json!({"appName": "One v2", "appSlug": "one", "developer": "dev@corp.com",
        "apiKeyId": first["apiKeyId"]});
    assert!(app
        .sensedia("updateCredentials", &renamed)
        .await
        .status()
        .is_success());
    assert_eq!(app.visible_keys("dev@corp.com").await.len(), 2);
    // A revoke frees room.
    let gone = json!({"appSlug": "one", "developer": "dev@corp.com", "appName": "One v2"});
    assert!(app
        .sensedia("revokeCredentials", &gone)
        .await
        .status()
        .is_success());
    app.create(&third).await;
}

#[tokio::test]
async fn the_hourly_budget_refuses_first_logins_until_the_hour_has_passed() {
    let ahead = Arc::new(AtomicI64::new(0));
    let read = Arc::clone(&ahead);
    let clock: keyhook::clock::Clock =
        Arc::new(move || keyhook::clock::now_ms() + read.load(Ordering::SeqCst));
    let app = TestApp::local_with_clock(
        |c| {
            c.readme.provision = true;
            c.readme.provision_per_hour = Some(2);
            // Logins are signed now and verified an hour ahead.
            c.readme.tolerance_secs = 86_400;
        },
        clock,
    )
    .await;
    assert_eq!(app.visible_keys("a@corp.com").await.len(), 1);
    assert_eq!(app.visible_keys("b@corp.com").await.len(), 1);
    refused(
        app.login("c@corp.com").await,
        "hourly_budget",
        "KEYHOOK_README_PROVISION_PER_HOUR",
    )
    .await;
    // Readers who have a key are not affected, nor are portal creates.
    assert_eq!(app.visible_keys("a@corp.com").await.len(), 1);
    app.create_app("dev@corp.com", "portal").await;
    ahead.store(3_601_000, Ordering::SeqCst);
    assert_eq!(app.visible_keys("c@corp.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_at_the_ceiling_make_no_key_past_it() {
    let app = TestApp::local_with(|c| {
        c.max_keys = 3;
        c.readme.provision = true;
    })
    .await;
    let logins = (0..24).map(|n| {
        let api = app.api.clone();
        async move { api.login(&format!("storm{n}@corp.com")).await.status() }
    });
    let statuses = futures_statuses(logins).await;
    let ok = statuses.iter().filter(|s| s.is_success()).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == reqwest::StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!((ok, refused), (3, 21), "{statuses:?}");
    let dir = app.stop().await.unwrap();
    let store = LocalStore::open(dir.path(), keyhook::clock::system()).unwrap();
    assert_eq!(store.list().await.unwrap().len(), 3);
}

async fn futures_statuses(
    logins: impl Iterator<
        Item = impl std::future::Future<Output = reqwest::StatusCode> + Send + 'static,
    >,
) -> Vec<reqwest::StatusCode> {
    let tasks: Vec<_> = logins.map(tokio::spawn).collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}
