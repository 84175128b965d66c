//! Identifiers and secrets in the shapes AWS uses, so that a credential from
//! the local store looks (and validates) like the real thing.

use rand::distr::{Alphanumeric, SampleString, Uniform};
use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn lower_alnum(len: usize) -> String {
    let mut rng = rand::rng();
    let pick = Uniform::new(0, LOWER_ALNUM.len()).expect("non-empty alphabet");
    (0..len)
        .map(|_| LOWER_ALNUM[rng.sample(pick)] as char)
        .collect()
}

/// An API Gateway API key id: 10 lower-case alphanumerics.
pub fn api_key_id() -> String {
    lower_alnum(10)
}

/// An API Gateway API key value: 40 mixed-case alphanumerics (AWS's own
/// generated keys have this shape; its minimum is 20).
pub fn api_key_value() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

/// A Cognito app client id: 26 lower-case alphanumerics.
pub fn client_id() -> String {
    lower_alnum(26)
}

/// A Cognito app client secret: 51 lower-case alphanumerics.
pub fn client_secret() -> String {
    lower_alnum(51)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_aws() {
        let check = |s: String, len: usize, lower: bool| {
            assert_eq!(s.len(), len, "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            if lower {
                assert!(!s.chars().any(|c| c.is_ascii_uppercase()), "{s}");
            }
        };
        check(api_key_id(), 10, true);
        check(api_key_value(), 40, false);
        check(client_id(), 26, true);
        check(client_secret(), 51, true);
    }

    #[test]
    fn values_do_not_repeat() {
        assert_ne!(api_key_value(), api_key_value());
        assert_ne!(client_secret(), client_secret());
    }
}
