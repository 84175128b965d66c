//! The form an app identity takes in AWS.

use sha2::{Digest, Sha256};

use crate::credentials::{AppId, Email};

/// 16 hex digits of an app identity's SHA-256. Tag values and client names
/// cannot hold every character an app name or slug may contain; a hash
/// always fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey(String);

impl AppKey {
    pub fn from_hash(hash: &str) -> Self {
        AppKey(hash.to_ascii_lowercase())
    }

    pub fn hash(&self) -> &str {
        &self.0
    }

    /// The identity credentials read back from AWS carry.
    pub fn app_id(&self) -> AppId {
        AppId::from_stored(format!("aws:{}", self.0))
    }
}

pub fn app_key(app: &AppId) -> AppKey {
    // Already in stored form (read back from AWS): keep it.
    if let Some(hash) = app.as_str().strip_prefix("aws:") {
        return AppKey::from_hash(hash);
    }
    let digest = Sha256::digest(app.as_str().as_bytes());
    AppKey(hex::encode(&digest[..8]))
}

/// Where a request's app may be found in AWS. Tags and client names keep
/// the hash they were made with, and replicas of the previous version may
/// still be running beside this one during a rolling upgrade, so nothing is
/// re-tagged: a credential made for a named app before its developer was
/// escaped (see `AppId`) is found under the hash of the previous form, when
/// its owner is still that developer (the previous form could also name
/// another developer's app).
///
/// The previous form also let an address with a `/` in its domain, which
/// today's rules refuse, name another developer's app (`a@b.c/x` and app
/// `y`, `a@b.c` and app `x/y`): a named app's credential whose owner is such
/// an address is never taken for a request's.
#[derive(Debug, Clone)]
pub struct AppKeys {
    current: AppId,
    previous: Option<(AppId, Email)>,
    named: bool,
}

impl AppKeys {
    pub fn of(app: &AppId) -> Self {
        AppKeys {
            current: app_key(app).app_id(),
            previous: app
                .as_previously_written()
                .map(|(previous, developer)| (app_key(&previous).app_id(), developer)),
            named: app.names_a_developer(),
        }
    }

    /// The identity credentials of this app made today carry.
    pub fn current(&self) -> &AppId {
        &self.current
    }

    /// The identity a credential of this app made by the previous version
    /// carries, and the owner it must still have.
    pub fn previous(&self) -> Option<(&AppId, &Email)> {
        self.previous.as_ref().map(|(app, owner)| (app, owner))
    }

    /// Whether a credential read back from AWS (its app, its owner) is of
    /// this app.
    pub fn names(&self, stored: &AppId, owner: &Email) -> bool {
        if self.named && Email::parse(owner.as_str()).is_err() {
            return false;
        }
        *stored == self.current
            || self
                .previous
                .as_ref()
                .is_some_and(|(app, developer)| stored == app && owner == developer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_keeps_its_key_once_read_back_from_aws() {
        let app = AppId::sensedia_slug("590d83b5c05f");
        let key = app_key(&app);
        assert_eq!(key.hash().len(), 16);
        assert!(key.hash().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(app_key(&app), key);
        assert_eq!(app_key(&key.app_id()), key);
        assert_ne!(app_key(&AppId::sensedia_slug("other")), key);
        assert_eq!(AppKey::from_hash("00FF").app_id().as_str(), "aws:00ff");
    }

    #[test]
    fn a_named_app_is_also_found_as_the_previous_version_tagged_it() {
        let slashed = Email::parse("a/b@corp.com").unwrap();
        let other = Email::parse("jo@corp.com").unwrap();
        let keys = AppKeys::of(&AppId::sensedia_named(&slashed, "x"));
        let previous = app_key(&AppId::from_stored("app:a/b@corp.com/x")).app_id();
        assert_ne!(*keys.current(), previous);
        assert!(keys.names(keys.current(), &other));
        assert!(keys.names(&previous, &slashed));
        // Under the previous form, only while its developer owns it.
        assert!(!keys.names(&previous, &other));
        // A credential an address refused today made under the previous
        // form is not another developer's.
        let prefix = Email::parse("a@b.c").unwrap();
        let victims = AppKeys::of(&AppId::sensedia_named(&prefix, "x/y"));
        let theirs = app_key(&AppId::from_stored("app:a@b.c/x/y")).app_id();
        assert!(victims.names(&theirs, &prefix));
        assert!(!victims.names(&theirs, &Email::from_stored("a@b.c/x").unwrap()));
        // Nothing else has a previous form.
        let plain = AppKeys::of(&AppId::sensedia_named(&other, "x/y"));
        assert!(plain.previous().is_none());
        assert_eq!(
            plain.current(),
            &app_key(&AppId::from_stored("app:jo@corp.com/x/y")).app_id()
        );
    }
}
