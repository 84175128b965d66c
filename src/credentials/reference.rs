//! How a caller names an existing credential, and the one check that lets
//! update and revoke reach only a credential keyhook issued, through the app
//! it was issued to.

use std::fmt;

use super::{AppId, Credential, CredentialError, CredentialKind, Email, Result};

/// How a caller names an existing credential: by its id when it has one, by
/// the app it was issued for otherwise; with the kind the caller says it is,
/// which tells a backend where to look. A caller naming an id also says which
/// app it speaks for, when it does ([`Claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Id(String, CredentialKind, Claim),
    App(AppId, CredentialKind),
}

/// The app a request naming a credential by id speaks for. A credential is
/// acted on only through the app it was issued to: anything else is
/// reported exactly as an unknown id, so a caller cannot learn that a
/// credential of another app (or one made by hand) exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The request names no app: it acts within the credential's own app.
    None,
    /// The request names its app (a slug): the credential must be its.
    App(AppId),
    /// The request names its developer and app name, which an edit may just
    /// have changed: the credential must be of the app so named, or owned by
    /// that developer (never someone else's).
    Named(AppId, Email),
}

impl CredentialRef {
    pub fn kind(&self) -> CredentialKind {
        match self {
            CredentialRef::Id(_, kind, _) | CredentialRef::App(_, kind) => *kind,
        }
    }

    /// `found`, what this reference resolved to, if the caller may act on
    /// it: keyhook issued it, to the app the caller speaks for (compared by
    /// `of_app(requested, found)`, as the backend stores identities).
    /// Otherwise `NotFound`, as for an unknown id; a credential of another
    /// kind than the caller said is refused (409), as update always did.
    pub(crate) fn admit(
        &self,
        found: Option<Credential>,
        of_app: impl Fn(&AppId, &Credential) -> bool,
    ) -> Result<Credential> {
        let not_found = || CredentialError::NotFound(self.clone());
        let found = found.ok_or_else(not_found)?;
        let claimed = match self {
            CredentialRef::App(app, _) | CredentialRef::Id(_, _, Claim::App(app)) => {
                of_app(app, &found)
            }
            CredentialRef::Id(_, _, Claim::Named(app, developer)) => {
                of_app(app, &found) || found.owner == *developer
            }
            CredentialRef::Id(_, _, Claim::None) => true,
        };
        if !found.app.issued_by_keyhook() || !claimed {
            return Err(not_found());
        }
        if found.kind() != self.kind() {
            return Err(CredentialError::Invalid(format!(
                "credential {} is a {}, not a {}",
                found.id,
                found.kind(),
                self.kind()
            )));
        }
        Ok(found)
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Id(id, kind, _) => write!(f, "{kind} {id}"),
            CredentialRef::App(app, kind) => write!(f, "{kind} of app {app}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{Origin, Secret};
    use crate::secret::Redacted;
    use std::collections::BTreeMap;

    fn key(id: &str, app: AppId, owner: &str) -> Credential {
        Credential {
            id: id.into(),
            owner: Email::parse(owner).unwrap(),
            app,
            label: "app".into(),
            origin: Origin::Sensedia,
            secret: Secret::ApiKey {
                value: Redacted::new("v".into()),
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom: BTreeMap::new(),
            created_at_ms: 0,
            expires_at_ms: None,
            replaces: None,
        }
    }

    #[test]
    fn a_reference_admits_only_a_credential_keyhook_issued_to_its_app() {
        let same = |a: &AppId, c: &Credential| *a == c.app;
        let mine = AppId::sensedia_slug("mine");
        let jo = Email::parse("jo@corp.com").unwrap();
        let named = AppId::sensedia_named(&jo, "Old name");
        let by = |claim| CredentialRef::Id("k1".into(), CredentialKind::ApiKey, claim);
        let admitted = |r: &CredentialRef, c: Credential| r.admit(Some(c), same);
        let is_not_found = |r: Result<Credential>| matches!(r, Err(CredentialError::NotFound(_)));

        for claim in [Claim::None, Claim::App(mine.clone())] {
            assert!(admitted(&by(claim), key("k1", mine.clone(), "jo@corp.com")).is_ok());
        }
        // Another app's credential, through this app; a hand-made key,
        // through any; nothing at all: one answer.
        let theirs = key("k1", AppId::sensedia_slug("theirs"), "al@corp.com");
        assert!(is_not_found(admitted(
            &by(Claim::App(mine.clone())),
            theirs.clone()
        )));
        let hand_made = key("k1", AppId::hand_made_key("k1"), "al@corp.com");
        assert!(is_not_found(admitted(&by(Claim::None), hand_made.clone())));
        assert!(is_not_found(admitted(
            &CredentialRef::App(AppId::hand_made_key("k1"), CredentialKind::ApiKey),
            hand_made
        )));
        assert!(is_not_found(by(Claim::None).admit(None, same)));
        // Without a slug: the app so named, or (a rename) one of the
        // developer's own; never someone else's.
        let renamed = Claim::Named(AppId::sensedia_named(&jo, "New name"), jo.clone());
        assert!(admitted(&by(renamed.clone()), key("k1", named, "jo@corp.com")).is_ok());
        assert!(is_not_found(admitted(&by(renamed), theirs)));
        // The wrong kind is refused, as update always did.
        let wrong = CredentialRef::Id("k1".into(), CredentialKind::ClientCredentials, Claim::None);
        assert!(matches!(
            admitted(&wrong, key("k1", mine, "jo@corp.com")),
            Err(CredentialError::Invalid(_))
        ));
    }
}
