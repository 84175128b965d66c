//! A data directory the previous version wrote (its rows, byte for byte, in
//! `tests/fixtures/previous-store-rows.tsv`), opened by this version over
//! real sockets: the portal's retries find the credentials they made
//! before, readers see theirs, and nothing is issued twice.

use crate::harness::{test_config, TestApp};
use keyhook::credentials::local::FILE_NAME;
use serde_json::{json, Value};

const ROWS: &str = include_str!("../fixtures/previous-store-rows.tsv");

/// A data directory holding exactly what the previous version wrote: the
/// `credentials` table and no other.
fn previous_versions_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
    let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("credentials");
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(table).unwrap();
        for line in ROWS.lines().filter(|line| !line.starts_with('#')) {
            let (id, row) = line.split_once('\t').unwrap();
            table.insert(id, row.as_bytes()).unwrap();
        }
    }
    txn.commit().unwrap();
    dir
}

fn api(plan: &str) -> Value {
    json!([{"id": "a1b2c3d4e5", "usagePlans": [{"id": plan}]}])
}

#[tokio::test]
async fn after_the_upgrade_a_portal_retry_finds_the_credential_it_made_before() {
    let dir = previous_versions_data_dir();
    // Twice: the upgrade, then a restart on the upgraded store.
    for _ in 0..2 {
        let app = TestApp::spawn(&test_config(dir.path()), None).await;
        for (request, id, value) in [
            (
                json!({"appSlug": "app1", "appName": "app app1", "developer": "dev@corp.com", "apis": api("plan01")}),
                "key1",
                "kv-1",
            ),
            // A developer with a `/`: its identity is now written escaped.
            (
                json!({"appName": "Billing", "developer": "a/b@corp.com", "apis": api("plan01")}),
                "key3",
                "kv-3",
            ),
            // With a `%`: the portal retrying the original create.
            (
                json!({"appName": "x/y", "developer": "a%b@corp.com"}),
                "key4",
                "kv-4",
            ),
        ] {
            let answer = app.create(&request).await;
            assert_eq!(
                (&answer["apiKeyId"], &answer["apiKey"]),
                (&json!(id), &json!(value)),
                "{request}"
            );
        }
        assert_eq!(app.visible_keys("a/b@corp.com").await.len(), 1);
        // A reader stored lower-cased whole logs in as before.
        assert_eq!(
            app.visible_keys("jöhn@example.com").await,
            vec![json!({"name": "Personal key", "apiKey": "kv-6"})]
        );
        let dev = app.visible_keys("dev@corp.com").await;
        assert_eq!(dev.len(), 2, "{dev:?}");
        app.stop().await;
    }
}
