//! The provisioning policy over real sockets: only readers of the allowed
//! domains get a key at their first login, on the plan their domain names.

use std::collections::BTreeMap;

use crate::harness::TestApp;
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::CredentialProvider;

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
