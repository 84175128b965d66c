//! The identity of the app a credential was issued for, and how it is
//! written, so that distinct apps can never share one.
//!
//! Each form is a prefix and its parts: `slug:<slug>`, `readme:<reader>`,
//! `apikey:<id>` (one part each), and for a Sensedia app without a slug its
//! developer and name: `app:<developer>/<app name>` when the developer's
//! address holds neither `%` nor `/`, so the first `/` ends it, and else
//! `appx:<developer>/<app name>` with `%` and `/` in the developer escaped
//! (`%25`, `%2F`). No two (developer, name) pairs are written alike. The
//! previous version wrote every developer unescaped under `app:`, which
//! today's `app:` form equals wherever it is unambiguous; a new prefix for
//! the escaped form keeps it from ever equalling one of those
//! (`a%2Fb@corp.com` was written as is), and [`AppId::upgraded`] /
//! [`AppId::as_previously_written`] read the rest.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Email;

const SLUG: &str = "slug:";
const NAMED: &str = "app:";
const NAMED_ESCAPED: &str = "appx:";
const READER: &str = "readme:";
const HAND_MADE: &str = "apikey:";

/// The stable identity of the app a credential was issued for. Two create
/// requests with the same identity (and kind) name the same credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// A Sensedia app known by its slug.
    pub fn sensedia_slug(slug: &str) -> Self {
        AppId(format!("{SLUG}{}", slug.trim()))
    }

    /// A Sensedia app without a slug: its developer and its name.
    pub fn sensedia_named(developer: &Email, app_name: &str) -> Self {
        AppId(named(developer.as_str(), app_name.trim()))
    }

    /// The app keyhook provisions for a first-time ReadMe reader.
    pub fn readme_reader(reader: &Email) -> Self {
        AppId(format!("{READER}{reader}"))
    }

    /// A key made by hand (in the console, not by keyhook): its own app,
    /// named by its id, so no request can speak for it.
    pub fn hand_made_key(id: &str) -> Self {
        AppId(format!("{HAND_MADE}{id}"))
    }

    /// Whether keyhook issued the credential of this app (a hand-made key's
    /// app is its own, see [`AppId::hand_made_key`]).
    pub fn issued_by_keyhook(&self) -> bool {
        !self.0.starts_with(HAND_MADE)
    }

    /// Rebuilds an identity read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        AppId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a Sensedia app named by its developer and name.
    pub(crate) fn names_a_developer(&self) -> bool {
        self.0.starts_with(NAMED) || self.0.starts_with(NAMED_ESCAPED)
    }

    /// The identity a credential stored by the previous version carries, in today's
    /// form. `owner` is the credential's owner: for an app named by its
    /// developer it is that developer unless the credential was since
    /// updated to another, and it tells where the developer ends when the
    /// unescaped form alone cannot (an old address could hold a `/` after
    /// its `@`). Today's forms come back unchanged, so a store can be
    /// upgraded whenever it is opened (after a rollback too).
    pub(crate) fn upgraded(&self, owner: &Email) -> AppId {
        let Some(rest) = self.0.strip_prefix(NAMED) else {
            return self.clone();
        };
        let split = match rest
            .strip_prefix(owner.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(name) => Some((owner.as_str(), name)),
            // The developer ends at the first `/` after its `@`.
            None => rest.find('@').and_then(|at| {
                let slash = at + rest[at..].find('/')?;
                Some((&rest[..slash], &rest[slash + 1..]))
            }),
        };
        match split {
            Some((developer, name)) => AppId(named(developer, name)),
            None => self.clone(),
        }
    }

    /// For an app named by a developer whose address holds `%` or `/`:
    /// this identity as the previous version wrote it, and that developer.
    /// AWS keeps what it was tagged with, so a credential made then is
    /// found through it (when its owner is still that developer, since the
    /// old form could also name another's app).
    pub(crate) fn as_previously_written(&self) -> Option<(AppId, Email)> {
        let rest = self.0.strip_prefix(NAMED_ESCAPED)?;
        let (escaped, name) = rest.split_once('/')?;
        let developer = unescape(escaped);
        let previous = AppId(format!("{NAMED}{developer}/{name}"));
        Some((previous, Email::from_stored(&developer).ok()?))
    }
}

/// A named app's identity in today's form.
fn named(developer: &str, name: &str) -> String {
    if developer.contains(['%', '/']) {
        format!("{NAMED_ESCAPED}{}/{name}", escape(developer))
    } else {
        format!("{NAMED}{developer}/{name}")
    }
}

/// Escapes `%` first, so that unescaping is exact.
fn escape(part: &str) -> String {
    part.replace('%', "%25").replace('/', "%2F")
}

fn unescape(part: &str) -> String {
    part.replace("%2F", "/").replace("%25", "%")
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    #[test]
    fn distinct_developers_and_names_never_share_an_identity() {
        // The previous version wrote both as `app:jo@corp.com/x/y`; the
        // second developer is one it accepted.
        assert_ne!(
            AppId::sensedia_named(&email("jo@corp.com"), "x/y"),
            AppId(named("jo@corp.com/x", "y")),
        );
        // Escaped, `a/b@corp.com` is written as the previous version wrote
        // `a%2Fb@corp.com` (itself a valid address, were it not for ASCII
        // case): the prefix differs.
        let slashed = AppId::sensedia_named(&email("a/b@corp.com"), "x");
        let percent = AppId::sensedia_named(&email("a%2Fb@corp.com"), "x");
        assert_ne!(slashed, percent);
        assert_ne!(slashed.as_str(), "app:a%2Fb@corp.com/x");
        assert_eq!(slashed.as_str(), "appx:a%2Fb@corp.com/x");
        assert_eq!(percent.as_str(), "appx:a%252fb@corp.com/x");
    }

    /// The previous version's form of a named app.
    fn previously(developer: &str, name: &str) -> String {
        format!("{NAMED}{developer}/{name}")
    }

    proptest::proptest! {
        #[test]
        fn the_named_form_is_injective_and_never_another_apps_previous_form(
            a in ("[a%/@.2F5]{0,6}", "[a%/@. 2F]{0,6}"),
            b in ("[a%/@.2F5]{0,6}", "[a%/@. 2F]{0,6}"),
        ) {
            let today = |(developer, name): &(String, String)| named(developer, name.trim());
            let same = a.0 == b.0 && a.1.trim() == b.1.trim();
            proptest::prop_assert_eq!(today(&a) == today(&b), same);
            // Today's form equals the previous form only of the same app,
            // or of a developer with a `/` after its `@`, which only the
            // previous version accepted (see `AppKeys` for that case).
            if today(&a) == previously(&b.0, b.1.trim()) && !same {
                let domain = b.0.split_once('@').map_or("", |(_, domain)| domain);
                proptest::prop_assert!(domain.contains('/') || !a.0.contains('@'), "{:?} {:?}", a, b);
            }
            proptest::prop_assert_eq!(unescape(&escape(&a.0)), a.0.clone());
        }
    }

    #[test]
    fn identities_the_previous_version_stored_upgrade_to_todays_form() {
        let plain = email("jo@corp.com");
        let slashed = email("a/b@corp.com");
        for (stored, owner, today) in [
            // Unchanged: no `%` or `/` in the developer, or not a named app.
            (
                "app:jo@corp.com/x/y",
                &plain,
                AppId::sensedia_named(&plain, "x/y"),
            ),
            ("slug:s1", &plain, AppId::sensedia_slug("s1")),
            ("readme:jo@corp.com", &plain, AppId::readme_reader(&plain)),
            // Escaped: the owner is the developer, or (after a transfer)
            // the developer ends at the first `/` after its `@`.
            (
                "app:a/b@corp.com/x",
                &slashed,
                AppId::sensedia_named(&slashed, "x"),
            ),
            (
                "app:a/b@corp.com/x/y",
                &plain,
                AppId::sensedia_named(&slashed, "x/y"),
            ),
            // An address once accepted with a `/` in its domain: the owner
            // says where it ends; no request can name it again.
            (
                "app:a@b.c/x/y",
                &Email::from_stored("a@b.c/x").unwrap(),
                AppId(named("a@b.c/x", "y")),
            ),
            // A `%2f` written as is by the previous version.
            (
                "app:a%2fb@corp.com/x",
                &email("a%2fb@corp.com"),
                AppId::sensedia_named(&email("a%2Fb@corp.com"), "x"),
            ),
        ] {
            let upgraded = AppId(stored.into()).upgraded(owner);
            assert_eq!(upgraded, today, "{stored}");
            // Upgrading again changes nothing.
            assert_eq!(upgraded.upgraded(owner), upgraded, "{stored}");
            assert_eq!(today.upgraded(&plain), today, "{stored}");
        }
    }

    #[test]
    fn the_previous_form_is_offered_only_where_it_differs() {
        let slashed = email("a/b@corp.com");
        let today = AppId::sensedia_named(&slashed, "x");
        assert_eq!(
            today.as_previously_written(),
            Some((AppId("app:a/b@corp.com/x".into()), slashed))
        );
        assert_eq!(
            AppId::sensedia_named(&email("jo@corp.com"), "x/y").as_previously_written(),
            None
        );
        assert_eq!(AppId::sensedia_slug("a%2F").as_previously_written(), None);
    }
}
