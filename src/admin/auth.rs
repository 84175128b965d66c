//! Bearer tokens for the admin listener. `Authorization: Bearer <token>`;
//! any configured token is accepted, so one can be rotated.
//!
//! Tokens are kept as SHA-256 digests and a presented token's digest is
//! compared with every one of them in constant time: equal-length digests
//! leak neither which token nor how much of it matched. A token is named
//! (audit events, `keyhook check`) by its fingerprint, the first 12 hex
//! digits of its digest: enough to tell tokens apart, never its value.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Challenge};
use crate::secret::Redacted;

/// An `Authorization` header longer than this holds no token of ours.
const MAX_HEADER_LEN: usize = 4096;

/// Hex digits of a fingerprint.
const FINGERPRINT_HEX: usize = 12;

/// The name audit events give `token`: the first 12 hex digits of its
/// SHA-256.
pub fn fingerprint(token: &str) -> String {
    let mut hex = hex::encode(Sha256::digest(token.as_bytes()));
    hex.truncate(FINGERPRINT_HEX);
    hex
}

/// Who made an admin call, as audit events name it: `admin:<fingerprint>`.
/// Put in the request's extensions by [`require`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// The token is missing, malformed or matches none: one answer for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", Self::MESSAGE)]
pub struct TokenRequired;

impl TokenRequired {
    const MESSAGE: &'static str = "a bearer token is required";
}

/// A 401 that asks for a bearer token.
impl From<TokenRequired> for ApiError {
    fn from(_: TokenRequired) -> Self {
        ApiError::Unauthorized {
            message: TokenRequired::MESSAGE,
            challenge: Some(Challenge::Bearer),
        }
    }
}

#[derive(Clone)]
pub struct BearerAuth {
    digests: Vec<[u8; 32]>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl BearerAuth {
    pub fn new(tokens: &[Redacted<String>]) -> Self {
        BearerAuth {
            digests: tokens
                .iter()
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
        }
    }

    /// Checks the request's `Authorization` header; the caller, named by
    /// the token's fingerprint.
    pub fn check(&self, headers: &HeaderMap) -> Result<Actor, TokenRequired> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value.as_bytes(),
            _ => return Err(TokenRequired),
        };
        if value.len() > MAX_HEADER_LEN {
            return Err(TokenRequired);
        }
        let value = std::str::from_utf8(value).map_err(|_| TokenRequired)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenRequired)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenRequired);
        }
        let token = token.trim();
        let presented = digest(token.as_bytes());
        let mut matched = subtle::Choice::from(0u8);
        for expected in &self.digests {
            matched |= expected.ct_eq(&presented);
        }
        if bool::from(matched) {
            Ok(Actor(format!("admin:{}", fingerprint(token))))
        } else {
            Err(TokenRequired)
        }
    }
}

/// Middleware guarding every admin route: the caller's [`Actor`] goes into
/// the request's extensions.
pub async fn require(State(auth): State<BearerAuth>, mut request: Request, next: Next) -> Response {
    match auth.check(request.headers()) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const FIRST: &str = "first-admin-token-0123";
    const NEXT: &str = "next-admin-token-4567";

    fn auth() -> BearerAuth {
        BearerAuth::new(&[FIRST.to_string().into(), NEXT.to_string().into()])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn either_token_is_accepted_and_named_by_its_fingerprint() {
        for token in [FIRST, NEXT] {
            let actor = auth().check(&headers(&format!("Bearer {token}"))).unwrap();
            assert_eq!(actor, Actor(format!("admin:{}", fingerprint(token))));
            assert!(!actor.0.contains(token));
        }
        assert!(auth().check(&headers(&format!("bearer  {FIRST} "))).is_ok());
        assert_ne!(fingerprint(FIRST), fingerprint(NEXT));
        assert_eq!(fingerprint(FIRST).len(), 12);
        // SHA-256 of "abc".
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
    }

    #[test]
    fn everything_else_is_refused() {
        let long = format!("Bearer {}", "x".repeat(10_000));
        for value in [
            "Bearer wrong-token-0000000000",
            "Bearer",
            "Bearer ",
            &format!("Basic {FIRST}"),
            &format!("Bearer {FIRST}x"),
            &format!("Bearer {}", &FIRST[..FIRST.len() - 1]),
            FIRST,
            &long,
        ] {
            assert_eq!(auth().check(&headers(value)), Err(TokenRequired), "{value}");
        }
        assert_eq!(auth().check(&HeaderMap::new()), Err(TokenRequired));
        let mut twice = headers(&format!("Bearer {FIRST}"));
        twice.append(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {NEXT}")).unwrap(),
        );
        assert_eq!(auth().check(&twice), Err(TokenRequired));
        assert_eq!(
            BearerAuth::new(&[]).check(&headers("Bearer ")),
            Err(TokenRequired)
        );
    }
}
