//! The credential lifecycle on the embedded store, over real sockets, with
//! the server's clock moved by the test: a provisioned key's lifetime, the
//! end date a login honours from its first millisecond, the sweeper, and
//! the reader's fresh key at the next login.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::TestApp;
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::{
    AppId, CredentialKind, CredentialProvider, CredentialSpec, Email, Origin,
};

const TTL_SECS: u64 = 60;

/// A server clock at the real time plus what the test adds.
fn movable_clock() -> (Arc<AtomicI64>, keyhook::clock::Clock) {
    let ahead = Arc::new(AtomicI64::new(0));
    let read = Arc::clone(&ahead);
    let clock: keyhook::clock::Clock =
        Arc::new(move || keyhook::clock::now_ms() + read.load(Ordering::SeqCst));
    (ahead, clock)
}

async fn provisioning_app(refresh_secs: u64) -> (TestApp, Arc<AtomicI64>) {
    let (ahead, clock) = movable_clock();
    let app = TestApp::local_with_clock(
        |c| {
            c.readme.provision = true;
            c.readme.provision_ttl_secs = Some(TTL_SECS);
            c.aws.index_refresh_secs = refresh_secs;
        },
        clock,
    )
    .await;
    (app, ahead)
}

#[tokio::test]
async fn a_provisioned_key_says_when_it_ends_and_the_next_login_after_it_gets_a_fresh_one() {
    // A sweep interval longer than the test: the login alone must honour
    // the end date.
    let (app, ahead) = provisioning_app(3_600).await;
    let first = app.login_keys("ttl@corp.com").await.unwrap();
    assert_eq!(first.len(), 1);
    let label = first[0]["name"].as_str().unwrap();
    assert!(
        label.starts_with("Personal API key (until ") && label.ends_with(" UTC)"),
        "{label}"
    );
    // Within its lifetime, the same key.
    ahead.store((TTL_SECS as i64 - 5) * 1000, Ordering::SeqCst);
    assert_eq!(app.login_keys("ttl@corp.com").await.unwrap(), first);
    // Past it: never shown again; a fresh key instead.
    ahead.store((TTL_SECS as i64 + 1) * 1000, Ordering::SeqCst);
    let second = app.login_keys("ttl@corp.com").await.unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0]["apiKey"], first[0]["apiKey"]);
    assert_eq!(app.login_keys("ttl@corp.com").await.unwrap(), second);
}

#[tokio::test]
async fn the_sweeper_revokes_expired_keys_after_a_restart_and_keeps_the_rest() {
    let (app, ahead) = provisioning_app(1).await;
    app.login_keys("sweep@corp.com").await.unwrap();
    app.login_keys("other@corp.com").await.unwrap();
    let dir = app.stop().await.unwrap();
    // A credential with no end date, stored beside them.
    let store = LocalStore::open(dir.path(), keyhook::clock::system()).unwrap();
    let kept = store.create(&kept_spec()).await.unwrap().0;
    drop(store);

    // Restarted past their end: the store still knows both end dates, and
    // the sweeper (every second here) revokes them with no login asking.
    ahead.store((TTL_SECS as i64 + 1) * 1000, Ordering::SeqCst);
    let read = Arc::clone(&ahead);
    let clock: keyhook::clock::Clock =
        Arc::new(move || keyhook::clock::now_ms() + read.load(Ordering::SeqCst));
    let mut config = crate::harness::test_config(dir.path());
    config.aws.index_refresh_secs = 1;
    let app = TestApp::spawn_with_clock(&config, None, clock)
        .await
        .keeping(dir);
    // The promise is one interval; five are allowed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dir = app.stop().await.unwrap();
    let store = LocalStore::open(dir.path(), keyhook::clock::system()).unwrap();
    let held: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.credential.id)
        .collect();
    assert_eq!(held, [kept.id]);
}

fn kept_spec() -> CredentialSpec {
    CredentialSpec {
        kind: CredentialKind::ApiKey,
        owner: Email::parse("kept@corp.com").unwrap(),
        app: AppId::sensedia_slug("kept"),
        label: "Kept".into(),
        origin: Origin::Sensedia,
        api_ids: Vec::new(),
        usage_plans: Vec::new(),
        expires_at_ms: None,
    }
}
