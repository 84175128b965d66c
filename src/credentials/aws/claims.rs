//! One credential per app across replicas: the claim table.
//!
//! Replicas racing on one app (a first-time reader's logins, a portal's
//! retried create) can each make a credential before either sees the other's;
//! a re-read cannot tell them which to keep, because neither knows what the
//! other has already shown. A claim can: one DynamoDB item per app and kind,
//! written with a conditional `PutItem` (`attribute_not_exists`), so exactly
//! one credential ever holds it. A credential is shown only once it holds
//! its app's claim; a create that loses deletes its own credential and
//! answers the claimed one. Revoking releases the claim.
//!
//! Credentials that hold no claim are settled by the refresh ([`settle`]):
//! once older than a create can take, the first made of an unclaimed app is
//! claimed for it (made before the table existed, or by a create whose claim
//! was lost with its answer), and the others are deleted, as are those whose
//! app's claim names another credential (a loser's failed clean-up, the
//! extra credential of a retried create whose first answer was lost).
//!
//! Without a table (`KEYHOOK_CLAIM_TABLE` unset) one replica is still exact:
//! its creates for an app take turns and re-read AWS after creating.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::call::Aws;
use super::lineage;
use super::sync::first_made;
use crate::credentials::{AppId, Credential, CredentialError, CredentialKind, Email, Result};

/// The table's partition key: `<kind>#<app identity as stored in AWS>`.
pub(super) const KEY: &str = "app";
/// The id of the credential holding the claim.
pub(super) const HOLDER: &str = "credential";

/// The prefix of a clean-up to-do: a credential with no tags to find it by
/// (an app client) whose deletion failed, for a later refresh to finish.
const CLEANUP: &str = "cleanup#";

/// The prefix of the item that decides which replica sweeps a key in
/// disable mode ([`Claims::sweep_turn`]): no app's claim.
const SWEPT: &str = "swept#";

/// Whether a table item is an app's claim (not a to-do, a sweep's turn,
/// or the key count of `ceiling.rs`).
fn is_app_claim(key: &str) -> bool {
    !key.starts_with(CLEANUP) && !key.starts_with(SWEPT) && key != super::ceiling::COUNT
}

/// The to-do item for deleting app client `id`.
pub(super) fn cleanup_key(id: &str) -> String {
    format!(
        "{CLEANUP}{}#{id}",
        CredentialKind::ClientCredentials.as_str()
    )
}

/// The app clients a to-do names, among `claims`.
pub(super) fn clients_to_clean_up(claims: &ClaimMap) -> Vec<String> {
    let prefix = cleanup_key("");
    let mut ids: Vec<String> = claims
        .keys()
        .filter_map(|key| key.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// The credentials holding an app's claim (not a clean-up to-do's).
pub(super) fn holders(claims: &ClaimMap) -> HashSet<String> {
    claims
        .iter()
        .filter(|(key, _)| is_app_claim(key))
        .map(|(_, holder)| holder.clone())
        .collect()
}

/// The claim a credential of `kind` for `app` (as AWS stores it) holds.
pub(super) fn claim_key(kind: CredentialKind, app: &AppId) -> String {
    format!("{}#{}", kind.as_str(), app.as_str())
}

/// Claims are made only for credentials keyhook made (tagged or named with
/// an app identity; a hand-made key is its own app) for an owner today's
/// rules accept.
pub(super) fn is_claimable(credential: &Credential) -> bool {
    credential.app.as_str().starts_with("aws:") && Email::parse(credential.owner.as_str()).is_ok()
}

/// The holder a refresh claims an app with while it deletes credentials
/// that app's creates failed to claim: names no credential.
pub(super) const SETTLING: &str = "settling";

/// Whether a claim's holder is [`SETTLING`]'s: no credential.
pub(super) fn is_settling(holder: &str) -> bool {
    holder.starts_with(SETTLING)
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claimed {
    /// The claim is this credential's (now, or already: a retried `PutItem`
    /// whose first answer was lost finds its own claim).
    Mine,
    /// Another credential holds it.
    Theirs(String),
}

/// Every claim in the table: claim key → the credential holding it.
pub(super) type ClaimMap = HashMap<String, String>;

pub(super) struct Claims {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
}

impl Claims {
    pub(super) fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Claims { client, table }
    }

    pub(super) fn table(&self) -> &str {
        &self.table
    }

    /// Claims `key` for credential `id`, unless another credential holds it.
    /// DynamoDB's own quota is not API Gateway's: no token is taken.
    pub(super) async fn claim(&self, aws: &Aws, key: &str, id: &str) -> Result<Claimed> {
        // A claim released between our put and our read (the holder was
        // revoked) is tried again; twice is plenty for a race with a revoke.
        for _ in 0..3 {
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(KEY, AttributeValue::S(key.to_string()))
                .item(HOLDER, AttributeValue::S(id.to_string()))
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", KEY);
            match aws.run("PutItem", request.send()).await {
                Ok(_) => return Ok(Claimed::Mine),
                Err(err) if err.is_conflict() => {}
                Err(err) => return Err(err.into()),
            }
            match self.holder(aws, key).await? {
                Some(holder) if holder == id => return Ok(Claimed::Mine),
                Some(holder) => return Ok(Claimed::Theirs(holder)),
                None => continue,
            }
        }
        Err(CredentialError::Backend {
            operation: "PutItem",
            detail: "the app's claim kept changing".into(),
        })
    }

    /// The credential holding `key`, read consistently.
    pub(super) async fn holder(&self, aws: &Aws, key: &str) -> Result<Option<String>> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true);
        let out = aws.run("GetItem", request.send()).await?;
        Ok(out
            .item()
            .and_then(|item| item.get(HOLDER))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// Releases `key` if `id` still holds it (a claim someone else has
    /// since taken is theirs to keep).
    pub(super) async fn release(&self, aws: &Aws, key: &str, id: &str) -> Result<()> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_string()))
            .condition_expression("#h = :id")
            .expression_attribute_names("#h", HOLDER)
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()));
        match aws.run("DeleteItem", request.send()).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_conflict() => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Moves `key` from credential `from` to `to` (a rotation), if `from`
    /// holds it or no credential does; `false` if another one does.
    pub(super) async fn pass(&self, aws: &Aws, key: &str, from: &str, to: &str) -> Result<bool> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_string()))
            .item(HOLDER, AttributeValue::S(to.to_string()))
            .condition_expression("attribute_not_exists(#k) OR #h = :from")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#h", HOLDER)
            .expression_attribute_values(":from", AttributeValue::S(from.to_string()));
        match aws.run("PutItem", request.send()).await {
            Ok(_) => Ok(true),
            Err(err) if err.is_conflict() => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Decides which replica sweeps credential `id` in disable mode: the
    /// one whose conditional put of `swept#<id>` lands. The item stays (a
    /// few bytes per swept key), so a later sweep never revokes it twice.
    pub(super) async fn sweep_turn(&self, aws: &Aws, id: &str) -> Result<Option<String>> {
        let mine = format!("{id}:{}", crate::credentials::generate::client_id());
        let turn = self.claim(aws, &format!("{SWEPT}{id}"), &mine).await?;
        Ok((turn == Claimed::Mine).then_some(mine))
    }

    /// Gives back a sweep turn whose revoke failed.
    pub(super) async fn end_sweep_turn(&self, aws: &Aws, id: &str, turn: &str) -> Result<()> {
        self.release(aws, &format!("{SWEPT}{id}"), turn).await
    }

    /// Every claim, read consistently (one item per app: small).
    pub(super) async fn all(&self, aws: &Aws) -> Result<ClaimMap> {
        let mut claims = ClaimMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            let page = aws.run("Scan", request.send()).await?;
            for item in page.items() {
                let text = |name| item.get(name).and_then(|v: &AttributeValue| v.as_s().ok());
                if let (Some(key), Some(holder)) = (text(KEY), text(HOLDER)) {
                    claims.insert(key.clone(), holder.clone());
                }
            }
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => break,
            }
        }
        Ok(claims)
    }

    /// What `keyhook check` proves: every call keyhook makes on the table
    /// works, on a key no credential can have.
    pub(super) async fn verify(&self, aws: &Aws) -> Result<()> {
        let key = "keyhook#check";
        self.release(aws, key, "check").await?;
        self.claim(aws, key, "check").await?;
        self.holder(aws, key).await?;
        self.all(aws).await?;
        self.release(aws, key, "check").await
    }

    /// Records that app client `id` is to be deleted by a later refresh.
    pub(super) async fn clean_up_later(&self, aws: &Aws, id: &str) -> Result<()> {
        self.claim(aws, &cleanup_key(id), id).await.map(|_| ())
    }

    /// The claims of `keys` only: for a login that read one owner's keys.
    pub(super) async fn some(&self, aws: &Aws, keys: &[String]) -> Result<ClaimMap> {
        let mut claims = ClaimMap::new();
        for key in keys {
            if let Some(holder) = self.holder(aws, key).await? {
                claims.insert(key.clone(), holder);
            }
        }
        Ok(claims)
    }
}

/// The API keys made to be claimed (`apigateway::TAG_CLAIM`), by table.
#[derive(Debug, Default)]
pub(super) struct MadeToClaim {
    /// In this deployment's table.
    pub here: HashSet<String>,
    /// In another deployment's: shown as they are, never settled here.
    pub elsewhere: HashSet<String>,
}

/// One app's credentials a refresh may delete, and why that is safe.
#[derive(Debug)]
pub(super) enum Settle {
    /// The app's claim names `holder`, listed: the others are extras (a
    /// loser whose own deletion failed, a lost answer's). Deleted once the
    /// claim still names `holder`.
    Extras {
        key: String,
        holder: String,
        extras: Vec<Credential>,
    },
    /// The app's claim names a credential not listed: gone (its revoke
    /// could not release the claim) or made since the listing. Released
    /// if gone; the app's credentials wait for the next refresh.
    Unlisted { key: String, holder: String },
    /// No claim, all old, and `kept` made before the table (shown, as it
    /// was before): claimed for its app, then the others deleted.
    Adopt {
        key: String,
        kept: Box<Credential>,
        extras: Vec<Credential>,
    },
    /// No claim, all old, all made to be claimed: each create failed. The
    /// app is claimed for the deletion first, so that no create still in
    /// flight can claim one of them meanwhile.
    Orphans {
        key: String,
        orphans: Vec<Credential>,
    },
}

/// What a refresh does with the credentials keyhook made, app by app.
#[derive(Debug, Default)]
pub(super) struct Settlement {
    /// Shown: claimed (or, without a table, every credential kept).
    pub shown: Vec<Credential>,
    /// Not shown: no claim yet (a create may still claim it), or waiting
    /// for what [`Settlement::settle`] decides.
    pub held: Vec<Credential>,
    /// What the refresh settles with the claim table.
    pub settle: Vec<Settle>,
    /// Without a table: extras to delete, each with the credential its app
    /// keeps.
    pub delete: Vec<(Credential, String)>,
}

/// Sorts `listed` by app. With `claims` (the table): the claim decides what
/// is shown; an app without one is settled once all its credentials are
/// older than `grace_ms` at `now_ms` (see [`Settle`]). Without (one
/// replica): an app's first made key or smallest client id (as a create
/// without a table keeps) is shown, and its others are deleted once all are
/// that old. Hand-made keys, keys another
/// deployment's table tags, and credentials whose owner today's rules
/// refuse (an earlier version's identity may share a hash with another
/// app's, see `AppKeys`) are shown as they are and never settled.
pub(super) fn settle(
    listed: Vec<Credential>,
    claims: Option<&ClaimMap>,
    made_to_claim: &MadeToClaim,
    now_ms: u64,
    grace_ms: u64,
) -> Settlement {
    let mut out = Settlement::default();
    let mut apps: BTreeMap<String, Vec<Credential>> = BTreeMap::new();
    for credential in listed {
        // Past its end: the sweeper's, never an app's credential or extra
        // (a create has made, or makes, the app a fresh one).
        let expired = credential.is_expired(now_ms);
        if !expired
            && is_claimable(&credential)
            && !made_to_claim.elsewhere.contains(&credential.id)
        {
            apps.entry(claim_key(credential.kind(), &credential.app))
                .or_default()
                .push(credential);
        } else {
            out.shown.push(credential);
        }
    }
    let old = |c: &Credential| c.created_at_ms.saturating_add(grace_ms) <= now_ms;
    // Claims of apps nothing listed belongs to: their holder is gone (its
    // release failed), or made since the listing, or a settling claim left.
    if let Some(claims) = claims {
        let mut unlisted: Vec<(&String, &String)> = claims
            .iter()
            .filter(|(key, _)| is_app_claim(key) && !apps.contains_key(*key))
            .collect();
        unlisted.sort();
        out.settle
            .extend(unlisted.into_iter().map(|(key, holder)| Settle::Unlisted {
                key: key.clone(),
                holder: holder.clone(),
            }));
    }
    for (key, mut group) in apps {
        match group[0].kind() {
            CredentialKind::ApiKey => group.sort_by(first_made),
            CredentialKind::ClientCredentials => group.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        let Some(claims) = claims else {
            // The first is the app's (with its rotation's successor or
            // predecessor: one app credential); the others are shown to no
            // one, and deleted once all are old.
            let settled = group.iter().all(old);
            let mut units = lineage::units(group).into_iter();
            let first = units.next().expect("a group has a member");
            let kept = lineage::head(&first).map(|c| c.id.clone());
            let kept = kept.unwrap_or_else(|| first[0].id.clone());
            for extra in units.flatten() {
                match settled {
                    true => out.delete.push((extra, kept.clone())),
                    false => out.held.push(extra),
                }
            }
            out.shown.extend(first);
            continue;
        };
        match claims.get(&key) {
            Some(holder) => {
                // The holder, and the predecessor it replaces in its grace
                // (unclaimed since the rotation moved the claim): one app
                // credential, never an extra.
                let pred = group
                    .iter()
                    .find(|c| &c.id == holder)
                    .and_then(|c| c.replaces.clone());
                let (held, extras): (Vec<_>, Vec<_>) = group
                    .into_iter()
                    .partition(|c| &c.id == holder || Some(&c.id) == pred.as_ref());
                let listed = held.iter().any(|c| &c.id == holder);
                match listed {
                    true => out.shown.extend(held),
                    false => out.held.extend(held),
                }
                let holder = holder.clone();
                if !listed {
                    out.held.extend(extras);
                    out.settle.push(Settle::Unlisted { key, holder });
                    continue;
                }
                let (extras, young): (Vec<_>, Vec<_>) = extras.into_iter().partition(old);
                out.held.extend(young);
                if !extras.is_empty() {
                    out.held.extend(extras.iter().cloned());
                    out.settle.push(Settle::Extras {
                        key,
                        holder,
                        extras,
                    });
                }
            }
            None if group.iter().all(old) => {
                out.held.extend(group.iter().cloned());
                let earlier = group
                    .iter()
                    .position(|c| !made_to_claim.here.contains(&c.id));
                match earlier {
                    Some(i) => {
                        let kept = group.remove(i);
                        // Shown as before the table while it is claimed:
                        // every create adopts the same one (the first made).
                        out.held.retain(|c| c.id != kept.id);
                        out.shown.push(kept.clone());
                        out.settle.push(Settle::Adopt {
                            key,
                            kept: Box::new(kept),
                            extras: group,
                        });
                    }
                    None => out.settle.push(Settle::Orphans {
                        key,
                        orphans: group,
                    }),
                }
            }
            None => out.held.extend(group),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sync::tests as fixture;
    use super::*;

    const GRACE: u64 = 30_000;

    fn key(id: &str, app: &str, created_at_ms: u64) -> Credential {
        fixture::key(id, "jo@corp.com", app, created_at_ms)
    }

    fn client(id: &str, app: &str, created_at_ms: u64) -> Credential {
        fixture::client(id, "jo@corp.com", app, created_at_ms)
    }

    fn ids(found: &[Credential]) -> Vec<&str> {
        let mut ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        ids
    }

    fn claims(pairs: &[(&str, &str)]) -> ClaimMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn clean_up_to_dos_name_clients_and_no_app() {
        let map = claims(&[
            (&cleanup_key("c9"), "c9"),
            ("client_credentials#aws:01", "c1"),
            (&cleanup_key("c2"), "c2"),
        ]);
        assert_eq!(clients_to_clean_up(&map), ["c2", "c9"]);
    }

    #[test]
    fn keys_are_apps_and_kinds_as_aws_stores_them() {
        let app = AppId::from_stored("aws:00ff");
        assert_eq!(claim_key(CredentialKind::ApiKey, &app), "api_key#aws:00ff");
        assert_eq!(
            claim_key(CredentialKind::ClientCredentials, &app),
            "client_credentials#aws:00ff"
        );
        assert!(!is_claimable(&key("h1", "apikey:h1", 0)));
    }

    /// What a settlement decides, in short: per app, what and why.
    fn decided(s: &Settlement) -> Vec<String> {
        let names = |cs: &[Credential]| ids(cs).join(",");
        let mut out: Vec<String> = s
            .settle
            .iter()
            .map(|settle| match settle {
                Settle::Extras {
                    key,
                    holder,
                    extras,
                } => format!("{key}: extras {} of {holder}", names(extras)),
                Settle::Unlisted { key, holder } => format!("{key}: unlisted {holder}"),
                Settle::Adopt { key, kept, extras } => {
                    format!("{key}: adopt {} drop {}", kept.id, names(extras))
                }
                Settle::Orphans { key, orphans } => format!("{key}: orphans {}", names(orphans)),
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_claim_decides_which_credential_is_shown() {
        let now = 100_000;
        let listed = vec![
            key("k1", "aws:01", 1_000),
            // The holder, though made later.
            key("k2", "aws:01", 2_000),
            // A loser still in flight: hidden, not deleted.
            key("k3", "aws:01", now - 1),
            // Its app's client is another claim.
            client("c1", "aws:01", 1_000),
            // Claimed by a credential the listing does not hold.
            key("k5", "aws:05", 1_000),
            key("h1", "apikey:h1", 0),
        ];
        let map = claims(&[
            ("api_key#aws:01", "k2"),
            ("client_credentials#aws:01", "c1"),
            ("api_key#aws:05", "k9"),
        ]);
        let s = settle(listed, Some(&map), &MadeToClaim::default(), now, GRACE);
        assert_eq!(ids(&s.shown), ["c1", "h1", "k2"]);
        assert_eq!(ids(&s.held), ["k1", "k3", "k5"]);
        assert_eq!(
            decided(&s),
            [
                "api_key#aws:01: extras k1 of k2",
                "api_key#aws:05: unlisted k9"
            ]
        );
        assert!(s.delete.is_empty());
    }

    #[test]
    fn a_claim_of_an_app_nothing_listed_belongs_to_is_checked() {
        let map = claims(&[
            ("api_key#aws:07", "k7"),
            ("api_key#aws:08", "settling:1"),
            (&cleanup_key("c9"), "c9"),
        ]);
        let s = settle(Vec::new(), Some(&map), &MadeToClaim::default(), 0, GRACE);
        assert_eq!(
            decided(&s),
            [
                "api_key#aws:07: unlisted k7",
                "api_key#aws:08: unlisted settling:1"
            ]
        );
        assert_eq!(
            holders(&map),
            ["k7".to_string(), "settling:1".to_string()].into()
        );
    }

    #[test]
    fn an_unclaimed_app_is_settled_once_no_create_can_be_in_flight() {
        let listed = || {
            vec![
                key("kb", "aws:01", 1_000),
                key("ka", "aws:01", 1_000),
                key("kc", "aws:01", 5_000),
                client("c1", "aws:02", 1_000),
            ]
        };
        let map = ClaimMap::new();
        let none = MadeToClaim::default();
        // One of them could still be a create about to claim: wait.
        let early = settle(listed(), Some(&map), &none, 5_000 + GRACE - 1, GRACE);
        assert_eq!(ids(&early.shown), ["c1"]);
        assert_eq!(ids(&early.held), ["ka", "kb", "kc"]);
        // `c1`'s app is settled on its own.
        assert_eq!(
            decided(&early),
            ["client_credentials#aws:02: adopt c1 drop "]
        );
        let s = settle(listed(), Some(&map), &none, 5_000 + GRACE, GRACE);
        assert_eq!(
            decided(&s),
            [
                "api_key#aws:01: adopt ka drop kb,kc",
                "client_credentials#aws:02: adopt c1 drop "
            ]
        );
        assert_eq!(ids(&s.shown), ["c1", "ka"]);
        assert_eq!(ids(&s.held), ["kb", "kc"]);
    }

    #[test]
    fn an_unclaimed_key_made_to_be_claimed_is_a_failed_creates_and_goes() {
        let listed = || {
            vec![
                // Made before the table: adopted, though made later.
                key("k2", "aws:01", 2_000),
                key("k1", "aws:01", 1_000),
                key("k3", "aws:03", 1_000),
                key("k4", "aws:04", 1_000),
            ]
        };
        let made_to_claim = MadeToClaim {
            here: ["k1".to_string(), "k3".to_string()].into(),
            // Another deployment's: not ours to settle.
            elsewhere: ["k4".to_string()].into(),
        };
        let s = settle(
            listed(),
            Some(&ClaimMap::new()),
            &made_to_claim,
            2_000 + GRACE,
            GRACE,
        );
        assert_eq!(
            decided(&s),
            [
                "api_key#aws:01: adopt k2 drop k1",
                "api_key#aws:03: orphans k3"
            ]
        );
        assert_eq!(ids(&s.shown), ["k2", "k4"]);
    }

    #[test]
    fn an_owner_todays_rules_refuse_is_never_settled() {
        // The previous form let `a@b.c/x` with app `y` and `a@b.c` with
        // app `x/y` share an identity: never one group.
        let mut theirs = key("k1", "aws:01", 1_000);
        theirs.owner = Email::from_stored("a@b.c/x").unwrap();
        let listed = vec![theirs, key("k2", "aws:01", 2_000)];
        for table in [Some(ClaimMap::new()), None] {
            let s = settle(
                listed.clone(),
                table.as_ref(),
                &MadeToClaim::default(),
                2_000 + GRACE,
                GRACE,
            );
            assert!(s.delete.is_empty(), "{:?}", s.delete);
            assert!(ids(&s.shown).contains(&"k1"));
        }
    }

    #[test]
    fn a_rotations_successor_and_predecessor_are_one_app_credential() {
        let now = 100_000;
        let pred = key("k1", "aws:01", 1_000);
        let mut succ = key("k2", "aws:01", 2_000);
        succ.replaces = Some("k1".into());
        let dup = key("k3", "aws:01", 3_000);
        let cpred = client("c1", "aws:02", 1_000);
        let mut csucc = client("c0", "aws:02", 2_000);
        csucc.replaces = Some("c1".into());
        let listed = || {
            vec![
                dup.clone(),
                succ.clone(),
                pred.clone(),
                cpred.clone(),
                csucc.clone(),
            ]
        };
        // The rotation moved the claim to the successor: the predecessor
        // is shown beside it, never settled; a true duplicate still is.
        let map = claims(&[
            ("api_key#aws:01", "k2"),
            ("client_credentials#aws:02", "c0"),
        ]);
        let s = settle(listed(), Some(&map), &MadeToClaim::default(), now, GRACE);
        assert_eq!(ids(&s.shown), ["c0", "c1", "k1", "k2"]);
        assert_eq!(decided(&s), ["api_key#aws:01: extras k3 of k2"]);
        // Without a table: the pair is kept whole (the client with the
        // smallest id is the successor here), the duplicate goes.
        let s = settle(listed(), None, &MadeToClaim::default(), now, GRACE);
        assert_eq!(ids(&s.shown), ["c0", "c1", "k1", "k2"]);
        let deleted: Vec<(&str, &str)> = s
            .delete
            .iter()
            .map(|(c, kept)| (c.id.as_str(), kept.as_str()))
            .collect();
        assert_eq!(deleted, [("k3", "k2")]);
        // Once the predecessor is swept, the successor is simply the app's.
        let s = settle(
            vec![succ.clone(), dup.clone()],
            None,
            &MadeToClaim::default(),
            now,
            GRACE,
        );
        assert_eq!(ids(&s.shown), ["k2"]);
        assert_eq!(s.delete.len(), 1);
    }

    #[test]
    fn without_a_table_the_first_of_an_app_is_shown_and_old_extras_go() {
        let listed = || {
            vec![
                key("kb", "aws:01", 1_000),
                key("ka", "aws:01", 1_000),
                key("k9", "aws:09", 1_000),
                // A create without a table keeps the smallest client id.
                client("c2", "aws:02", 1_000),
                client("c1", "aws:02", 9_000),
            ]
        };
        let none = MadeToClaim::default();
        let young = settle(listed(), None, &none, 9_000, GRACE);
        assert_eq!(ids(&young.shown), ["c1", "k9", "ka"]);
        assert_eq!(ids(&young.held), ["c2", "kb"]);
        assert!(young.delete.is_empty());
        let s = settle(listed(), None, &none, 9_000 + GRACE, GRACE);
        assert_eq!(ids(&s.shown), ["c1", "k9", "ka"]);
        let mut deleted: Vec<(&str, &str)> = s
            .delete
            .iter()
            .map(|(c, kept)| (c.id.as_str(), kept.as_str()))
            .collect();
        deleted.sort();
        assert_eq!(deleted, [("c2", "c1"), ("kb", "ka")]);
        assert!(s.settle.is_empty());
    }
}
