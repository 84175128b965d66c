use super::*;
use crate::credentials::aws::apigateway::{TAG_CLAIM, TAG_CLIENT};
use crate::credentials::aws::audit::record::{TAG_REPLACES, TAG_UNTIL};

const NOW: u64 = 1_000_000_000;
const GRACE: u64 = 30_000;
/// Made long enough ago to be settled.
const OLD: u64 = NOW - GRACE - 1;

fn rules() -> Rules {
    Rules {
        now_ms: NOW,
        grace_ms: GRACE,
        table: Some("claims".into()),
        default_plan: Some("default-plan".into()),
        revoke: RevokeMode::Delete,
    }
}

fn key(id: &str, name: &str, tags: &[(&str, &str)]) -> Key {
    Key {
        id: id.into(),
        name: name.into(),
        description: "label".into(),
        enabled: true,
        created_ms: OLD,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        customer_id: None,
        read_name: Default::default(),
    }
}

/// A key keyhook made for app `hash` (hex).
fn app_key(id: &str, hash: &str) -> Key {
    key(
        id,
        "jo@corp.com",
        &[(TAG_APP, hash), ("keyhook:origin", "sensedia")],
    )
}

fn client(id: &str, hash: &str, fields: &str) -> Client {
    Client {
        id: id.into(),
        name: format!("kh.{hash}.Label.jo@corp.com{fields}"),
        created_ms: Some(OLD),
    }
}

/// `account` with every key on `plan`, unless it is in `planless`.
fn on_plan(mut account: Account, planless: &[&str]) -> Account {
    for key in &account.keys {
        if !planless.contains(&key.id.as_str()) {
            account
                .plans
                .entry(key.id.clone())
                .or_default()
                .insert("plan-1".into());
        }
    }
    account
}

fn found(planned: &[Planned]) -> Vec<(&'static str, &str)> {
    planned
        .iter()
        .map(|p| (p.finding.kind.as_str(), p.finding.credential_id.as_str()))
        .collect()
}

fn fix_of<'a>(planned: &'a [Planned], id: &str) -> &'a Fix {
    &planned
        .iter()
        .find(|p| p.finding.credential_id == id)
        .unwrap_or_else(|| panic!("no finding for {id}"))
        .fix
}

#[test]
fn one_case_of_every_kind_is_found_and_healthy_credentials_and_a_rotation_are_not() {
    let mut expired = app_key("k-expired", "a5");
    expired.customer_id = Some(format!("keyhook:expires={}", NOW - 1));
    let mut disabled = key("k-disabled", "prod key", &[]);
    disabled.enabled = false;
    let mut marketplace = app_key("k-marketplace", "a9");
    marketplace.customer_id = Some("marketplace-customer".into());
    let mut later = app_key("k-later", "aa");
    later.customer_id = Some(format!("keyhook:expires={}", NOW + 1));
    let until = (NOW + 60_000).to_string();
    let account = Account {
        keys: vec![
            app_key("k-ok", "a1"),
            app_key("k-pred", "a2"),
            key(
                "k-succ",
                "jo@corp.com",
                &[
                    (TAG_APP, "a2"),
                    (TAG_REPLACES, "k-pred"),
                    (TAG_UNTIL, &until),
                ],
            ),
            app_key("k-dup-1", "a3"),
            Key {
                created_ms: OLD + 1,
                ..app_key("k-dup-2", "a3")
            },
            app_key("k-planless", "a4"),
            key("k-hand", "Al@Corp.com", &[]),
            key("k-unnamed", "prod key", &[]),
            expired,
            disabled,
            marketplace,
            later,
            key(
                "k-orphan",
                "jo@corp.com",
                &[(TAG_APP, "a6"), (TAG_CLIENT, "gone")],
            ),
            key(
                "k-companion",
                "jo@corp.com",
                &[(TAG_APP, "a7"), (TAG_CLIENT, "c-ok")],
            ),
        ],
        clients: Some(vec![
            client("c-ok", "a7", ""),
            client("c-expired", "a8", &format!(" e={}", NOW - 1)),
            Client {
                id: "c-foreign".into(),
                name: "web app".into(),
                created_ms: None,
            },
        ]),
        ..Default::default()
    };
    let planned = analyse(&on_plan(account, &["k-planless"]), &rules());
    assert_eq!(
        found(&planned),
        [
            ("unmanaged", "k-hand"),
            ("duplicate", "k-dup-2"),
            ("planless", "k-planless"),
            ("orphan", "k-orphan"),
            ("expired", "c-expired"),
            ("expired", "k-expired"),
            ("unnamed", "k-unnamed"),
        ]
    );
    assert_eq!(
        fix_of(&planned, "k-dup-2"),
        &Fix::DeleteKey("k-dup-2".into())
    );
    assert_eq!(
        fix_of(&planned, "k-orphan"),
        &Fix::DeleteKey("k-orphan".into())
    );
    assert_eq!(
        fix_of(&planned, "k-expired"),
        &Fix::RevokeKey {
            id: "k-expired".into(),
            claim: Some("api_key#aws:a5".into())
        }
    );
    assert_eq!(
        fix_of(&planned, "c-expired"),
        &Fix::RevokeClient {
            id: "c-expired".into(),
            companions: vec![],
            claim: Some("client_credentials#aws:a8".into())
        }
    );
    assert_eq!(fix_of(&planned, "k-hand"), &Fix::Nothing);
    assert_eq!(fix_of(&planned, "k-unnamed"), &Fix::Nothing);
    for p in &planned {
        assert_eq!(p.finding.kind.repairable(), p.fix != Fix::Nothing, "{p:?}");
    }
}

#[test]
fn duplicates_keep_the_claim_holder_else_the_first_made_and_wait_for_young_copies() {
    let keys = || {
        vec![
            app_key("k-b", "a3"),
            Key {
                created_ms: OLD - 5,
                ..app_key("k-c", "a3")
            },
            app_key("k-a", "a3"),
        ]
    };
    let account = |claims: Option<&[(&str, &str)]>| {
        on_plan(
            Account {
                keys: keys(),
                claims: claims.map(|pairs| {
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            },
            &[],
        )
    };
    // No table: the first made (then the smallest id) is kept.
    let planned = analyse(&account(None), &rules());
    assert_eq!(
        found(&planned),
        [("duplicate", "k-a"), ("duplicate", "k-b")]
    );
    assert_eq!(
        planned[0].guard,
        Some(("api_key#aws:a3".into(), "k-c".into()))
    );
    // The claim's holder is kept.
    let planned = analyse(&account(Some(&[("api_key#aws:a3", "k-b")])), &rules());
    assert_eq!(
        found(&planned),
        [("duplicate", "k-a"), ("duplicate", "k-c")]
    );
    // A claim naming none of them: as without one.
    let planned = analyse(&account(Some(&[("api_key#aws:a3", "zzz")])), &rules());
    assert_eq!(
        found(&planned),
        [("duplicate", "k-a"), ("duplicate", "k-b")]
    );
    // A young copy may be a create in flight: unclaimed, nothing yet.
    let early = Rules {
        now_ms: OLD + GRACE - 1,
        ..rules()
    };
    assert_eq!(found(&analyse(&account(None), &early)), []);
    // Claimed: the old copies are extras already.
    let planned = analyse(&account(Some(&[("api_key#aws:a3", "k-b")])), &early);
    assert_eq!(found(&planned), [("duplicate", "k-c")]);
}

#[test]
fn a_rotation_pair_is_one_credential_and_a_third_copy_is_an_extra() {
    let until = (NOW + 1).to_string();
    let succ = |id: &str, pred: &str| {
        key(
            id,
            "jo@corp.com",
            &[(TAG_APP, "a2"), (TAG_REPLACES, pred), (TAG_UNTIL, &until)],
        )
    };
    let pair = || {
        vec![
            app_key("k-pred", "a2"),
            Key {
                created_ms: OLD + 1,
                ..succ("k-succ", "k-pred")
            },
        ]
    };
    let account = |mut keys: Vec<Key>, claims: &[(&str, &str)]| {
        keys.extend(pair());
        on_plan(
            Account {
                keys,
                claims: Some(
                    claims
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            &[],
        )
    };
    // The claim moved to the successor: the pair is the app's credential.
    let claimed = [("api_key#aws:a2", "k-succ")];
    assert_eq!(found(&analyse(&account(vec![], &claimed), &rules())), []);
    let extra = Key {
        created_ms: OLD - 10,
        ..app_key("k-extra", "a2")
    };
    let planned = analyse(&account(vec![extra.clone()], &claimed), &rules());
    assert_eq!(found(&planned), [("duplicate", "k-extra")]);
    // Without a claim the first made is kept, a rotation being as old as
    // its predecessor: made before it, the extra is kept and the pair goes;
    // made after it (even before its successor), the extra goes.
    let planned = analyse(&account(vec![extra], &[]), &rules());
    assert_eq!(
        found(&planned),
        [("duplicate", "k-pred"), ("duplicate", "k-succ")]
    );
    let later = Key {
        created_ms: OLD + 1,
        ..app_key("k-later", "a2")
    };
    let planned = analyse(&account(vec![later], &[]), &rules());
    assert_eq!(found(&planned), [("duplicate", "k-later")]);
}

#[test]
fn a_predecessor_ends_at_the_earlier_of_its_own_end_and_its_successors_grace() {
    let succ = |until: u64| {
        key(
            "k-succ",
            "jo@corp.com",
            &[
                (TAG_APP, "a2"),
                (TAG_REPLACES, "k-pred"),
                (TAG_UNTIL, &until.to_string()),
            ],
        )
    };
    let pred = |own: Option<u64>| Key {
        customer_id: own.map(|ms| format!("keyhook:expires={ms}")),
        ..app_key("k-pred", "a2")
    };
    let case = |own, until| {
        let account = on_plan(
            Account {
                keys: vec![pred(own), succ(until)],
                ..Default::default()
            },
            &[],
        );
        found(&analyse(&account, &rules()))
            .into_iter()
            .map(|(kind, id)| format!("{kind} {id}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(case(None, NOW), ["expired k-pred"]);
    assert_eq!(case(None, NOW + 1), Vec::<String>::new());
    assert_eq!(case(Some(NOW - 1), NOW + 1), ["expired k-pred"]);
    assert_eq!(case(Some(NOW + 1), NOW - 1), ["expired k-pred"]);

    // A client successor's ` u=` does the same for its predecessor.
    let clients = vec![
        client("c-pred", "a8", ""),
        client("c-succ", "a8", &format!(" r=c-pred u={NOW}")),
    ];
    let account = Account {
        clients: Some(clients),
        ..Default::default()
    };
    assert_eq!(found(&analyse(&account, &rules())), [("expired", "c-pred")]);
}

#[test]
fn a_planless_key_goes_to_its_apps_plans_else_the_default_plan_else_is_disabled() {
    let mut account = Account {
        keys: vec![
            app_key("k-1", "a1"),
            key(
                "k-companion",
                "jo@corp.com",
                &[(TAG_APP, "a1"), (TAG_CLIENT, "c-1")],
            ),
            app_key("k-2", "a2"),
        ],
        clients: Some(vec![client("c-1", "a1", "")]),
        ..Default::default()
    };
    for plan in ["plan-x", "plan-y"] {
        account
            .plans
            .entry("k-1".into())
            .or_default()
            .insert(plan.into());
    }
    let planned = analyse(&account, &rules());
    assert_eq!(
        found(&planned),
        [("planless", "k-2"), ("planless", "k-companion")]
    );
    assert_eq!(
        fix_of(&planned, "k-companion"),
        &Fix::Attach {
            key: "k-companion".into(),
            plans: vec!["plan-x".into(), "plan-y".into()]
        }
    );
    assert_eq!(
        fix_of(&planned, "k-2"),
        &Fix::Attach {
            key: "k-2".into(),
            plans: vec!["default-plan".into()]
        }
    );
    let no_default = Rules {
        default_plan: None,
        ..rules()
    };
    let planned = analyse(&account, &no_default);
    assert_eq!(fix_of(&planned, "k-2"), &Fix::Disable("k-2".into()));
    // Young: maybe a create between its key and its plan.
    account.keys[2].created_ms = NOW;
    assert_eq!(
        found(&analyse(&account, &rules())),
        [("planless", "k-companion")]
    );
}

#[test]
fn another_deployments_keys_and_clients_outside_a_pool_are_left_alone() {
    let account = Account {
        keys: vec![
            // Made to be claimed in another table: that deployment's.
            key("k-theirs", "prod key", &[(TAG_CLAIM, "other-table")]),
            key(
                "k-their-companion",
                "jo@corp.com",
                &[
                    (TAG_APP, "a1"),
                    (TAG_CLIENT, "gone"),
                    (TAG_CLAIM, "other-table"),
                ],
            ),
            // Ours (our table's tag): an orphan.
            key(
                "k-ours",
                "jo@corp.com",
                &[(TAG_APP, "a1"), (TAG_CLIENT, "gone"), (TAG_CLAIM, "claims")],
            ),
        ],
        clients: Some(vec![]),
        ..Default::default()
    };
    let account = on_plan(account, &[]);
    assert_eq!(found(&analyse(&account, &rules())), [("orphan", "k-ours")]);
    // Without a user pool, no key can be told an orphan.
    let account = Account {
        clients: None,
        ..account
    };
    assert_eq!(found(&analyse(&account, &rules())), []);
}

#[test]
fn duplicate_clients_keep_the_smallest_id_and_go_with_their_companion_keys() {
    let account = Account {
        keys: vec![key(
            "k-comp",
            "jo@corp.com",
            &[(TAG_APP, "a7"), (TAG_CLIENT, "c-2")],
        )],
        clients: Some(vec![
            client("c-2", "a7", ""),
            client("c-1", "a7", ""),
            client("c-3", "a7", " r=c-2"),
        ]),
        ..Default::default()
    };
    let planned = analyse(&on_plan(account, &[]), &rules());
    assert_eq!(
        found(&planned),
        [("duplicate", "c-2"), ("duplicate", "c-3")]
    );
    assert_eq!(
        fix_of(&planned, "c-2"),
        &Fix::DeleteClient {
            id: "c-2".into(),
            companions: vec!["k-comp".into()]
        }
    );
}

#[test]
fn one_finding_per_credential_the_first_that_applies() {
    // An extra copy on no plan, past its end: deleted as a duplicate.
    let mut extra = Key {
        created_ms: OLD + 1,
        ..app_key("k-2", "a3")
    };
    extra.customer_id = Some(format!("keyhook:expires={NOW}"));
    let account = Account {
        keys: vec![
            app_key("k-1", "a3"),
            extra,
            key("k-hand", "jo@corp.com", &[]),
        ],
        ..Default::default()
    };
    let planned = analyse(&on_plan(account, &["k-2", "k-hand"]), &rules());
    assert_eq!(
        found(&planned),
        [("unmanaged", "k-hand"), ("duplicate", "k-2")]
    );
    assert!(
        planned[0].finding.detail.contains("no usage plan"),
        "{:?}",
        planned[0]
    );
}

/// The app of the `i`th key of the benchmark's account: every 20th key
/// is a rotation's successor (of the key before it) and every 200th a
/// duplicate of that pair; the others are each their own app.
pub(crate) fn bench_app(i: u64) -> u64 {
    match (i % 20 == 1, i % 200 == 2) {
        (true, _) | (_, true) => bench_app(i - 1),
        _ => i,
    }
}

/// keyhook's own time in an audit of 10,000 keys, apart from AWS's: the
/// analysis of an in-memory listing shaped like the AWS benchmark's
/// (`tests/aws/audit.rs`): every 50th key hand-made, every 100th on no
/// plan, rotations and duplicates as [`bench_app`] says. Prints; asserts
/// no time.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture (in release for a figure)"]
fn the_analysis_of_ten_thousand_keys_prints_its_time() {
    let mut account = Account::default();
    for i in 0..10_000u64 {
        let id = format!("k{i:05}");
        let app = format!("{:016x}", bench_app(i));
        let predecessor = format!("k{:05}", i.saturating_sub(1));
        let mut key = match (i % 50, i % 20) {
            (49, _) => key(&id, "", &[]),
            (_, 1) => key(&id, "", &[(TAG_APP, &app), (TAG_REPLACES, &predecessor)]),
            _ => app_key(&id, &app),
        };
        key.name = format!("reader{i}@corp.com");
        if i % 100 != 98 {
            let plan = format!("plan-{}", i % 3);
            account.plans.entry(id).or_default().insert(plan);
        }
        account.keys.push(key);
    }
    let started = std::time::Instant::now();
    let planned = analyse(&account, &rules());
    let took = started.elapsed();
    let mut kinds = BTreeMap::new();
    for p in &planned {
        *kinds.entry(p.finding.kind.as_str()).or_insert(0) += 1;
    }
    println!(
        "analysis of {} keys: {:.1} ms, findings {kinds:?}",
        account.keys.len(),
        took.as_secs_f64() * 1000.0,
    );
    assert_eq!(
        kinds.get("duplicate"),
        Some(&50),
        "the shape the AWS benchmark seeds"
    );
}
