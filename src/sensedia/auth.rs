//! Basic authentication for the Sensedia routes. The portal sends
//! `Authorization: Basic base64(user:password)`; any configured pair may match.
//!
//! Pairs are kept as SHA-256 digests of `user:password` and a presented pair
//! is compared against every one of them in constant time: equal-length
//! digests leak neither which pair nor how much of it matched.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::settings::BasicUser;
use crate::error::{ApiError, Challenge};

/// An `Authorization` header longer than this is not one we issued.
const MAX_HEADER_LEN: usize = 4096;

/// The presented credentials are missing, malformed or match no pair.
/// Deliberately one answer: the caller learns nothing about which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", Self::MESSAGE)]
pub struct AuthRequired;

impl AuthRequired {
    const MESSAGE: &'static str = "authentication required";
}

/// A 401 that asks for Basic credentials.
impl From<AuthRequired> for ApiError {
    fn from(_: AuthRequired) -> Self {
        ApiError::Unauthorized {
            message: AuthRequired::MESSAGE,
            challenge: Some(Challenge::Basic),
        }
    }
}

#[derive(Clone)]
pub struct BasicAuth {
    digests: Vec<[u8; 32]>,
}

fn digest(pair: &[u8]) -> [u8; 32] {
    Sha256::digest(pair).into()
}

impl BasicAuth {
    /// `None` when no pair is configured: the routes then answer 503.
    pub fn new(users: &[BasicUser]) -> Option<Self> {
        (!users.is_empty()).then(|| BasicAuth {
            digests: users
                .iter()
                .map(|u| digest(format!("{}:{}", u.user, u.password.expose()).as_bytes()))
                .collect(),
        })
    }

    /// Checks the request's `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthRequired> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value.as_bytes(),
            _ => return Err(AuthRequired),
        };
        if value.len() > MAX_HEADER_LEN {
            return Err(AuthRequired);
        }
        let value = std::str::from_utf8(value).map_err(|_| AuthRequired)?;
        let (scheme, encoded) = value.trim().split_once(' ').ok_or(AuthRequired)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthRequired);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| AuthRequired)?;
        if !decoded.contains(&b':') {
            return Err(AuthRequired);
        }
        let presented = digest(&decoded);
        let mut matched = subtle::Choice::from(0u8);
        for expected in &self.digests {
            matched |= expected.ct_eq(&presented);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(AuthRequired)
        }
    }
}

/// Middleware guarding every `/v1` route.
pub async fn require(
    State(auth): State<Option<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auth) = auth else {
        return ApiError::NotConfigured(
            "Sensedia Basic-auth users are not configured (KEYHOOK_SENSEDIA_USERS)",
        )
        .into_response();
    };
    match auth.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;
    use axum::http::HeaderValue;

    fn auth() -> BasicAuth {
        BasicAuth::new(&[
            BasicUser {
                user: "portal".into(),
                password: Redacted::new("pw:with colon".into()),
            },
            BasicUser {
                user: "next".into(),
                password: Redacted::new("rotated".into()),
            },
        ])
        .unwrap()
    }

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        );
        h
    }

    fn basic(pair: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
        .into_bytes()
    }

    #[test]
    fn any_configured_pair_is_accepted() {
        assert!(auth()
            .check(&headers(&basic("portal:pw:with colon")))
            .is_ok());
        assert!(auth().check(&headers(&basic("next:rotated"))).is_ok());
        assert!(auth()
            .check(&headers(b"basic cG9ydGFsOnB3OndpdGggY29sb24="))
            .is_ok());
    }

    #[test]
    fn everything_else_is_refused() {
        let long = basic(&format!("portal:{}", "x".repeat(10_000)));
        let cases: Vec<Vec<u8>> = vec![
            basic("portal:wrong"),
            basic("portal:"),
            basic("portal"),
            basic(":pw:with colon"),
            basic("next:pw:with colon"),
            b"Basic".to_vec(),
            b"Basic !!!not-base64!!!".to_vec(),
            b"Bearer cG9ydGFsOnB3".to_vec(),
            long,
        ];
        for case in cases {
            assert!(
                matches!(auth().check(&headers(&case)), Err(AuthRequired)),
                "{}",
                String::from_utf8_lossy(&case)
            );
        }
        assert!(auth().check(&HeaderMap::new()).is_err());
        let mut twice = headers(&basic("portal:pw:with colon"));
        twice.append(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(&basic("next:rotated")).unwrap(),
        );
        assert!(auth().check(&twice).is_err());
    }

    /// From the configured text to the check: a password keeps its commas
    /// and colons, and one user may hold two passwords while rotating.
    #[test]
    fn pairs_as_configured_one_per_line_authenticate_and_their_fragments_do_not() {
        let config = crate::config::Config::from_toml(
            "[sensedia]\nusers = \"\"\"\nportal:pa,ss:w:rd\nportal:next-password\n\"\"\"",
        )
        .unwrap();
        let auth = BasicAuth::new(&config.sensedia.users).unwrap();
        for pair in ["portal:pa,ss:w:rd", "portal:next-password"] {
            assert!(auth.check(&headers(&basic(pair))).is_ok(), "{pair}");
        }
        for pair in ["portal:pa", "ss:w:rd", "portal:pa,ss", "portal:w:rd"] {
            assert!(auth.check(&headers(&basic(pair))).is_err(), "{pair}");
        }
    }

    #[test]
    fn no_users_means_not_configured() {
        assert!(BasicAuth::new(&[]).is_none());
    }
}
