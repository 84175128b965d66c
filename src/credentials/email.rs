//! The owner of a credential: an email address, compared whole and without
//! regard to case, so `Jo@Corp.com` is `jo@corp.com` and never `jo@corp.com.au`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 5321 caps a forward path at 256 octets, so an address at 254.
const MAX_LEN: usize = 254;

/// A normalised (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("email must contain exactly one '@' with text on both sides")]
    Shape,
    #[error("email must not contain spaces or control characters")]
    ForbiddenCharacter,
}

impl Email {
    /// Validates and normalises an address. Deliberately permissive about
    /// what may stand on either side of the `@` (ReadMe readers have
    /// non-ASCII addresses): it only rejects what cannot be an address.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail::ForbiddenCharacter);
        }
        let mut parts = trimmed.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) => (local, domain),
            _ => return Err(InvalidEmail::Shape),
        };
        if local.is_empty() || domain.is_empty() || domain.starts_with('.') || domain.ends_with('.')
        {
            return Err(InvalidEmail::Shape);
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_surrounding_space() {
        assert_eq!(
            Email::parse("  Jo@Corp.COM ").unwrap().as_str(),
            "jo@corp.com"
        );
        assert_eq!(
            Email::parse("JÖHN@Example.com").unwrap().as_str(),
            "jöhn@example.com"
        );
    }

    #[test]
    fn prefix_addresses_are_different_owners() {
        assert_ne!(Email::parse("jo@corp.com"), Email::parse("jo@corp.com.au"));
    }

    #[test]
    fn rejects_what_cannot_be_an_address() {
        for (raw, err) in [
            ("", InvalidEmail::Empty),
            ("   ", InvalidEmail::Empty),
            ("no-at-sign", InvalidEmail::Shape),
            ("a@b@c", InvalidEmail::Shape),
            ("@corp.com", InvalidEmail::Shape),
            ("jo@", InvalidEmail::Shape),
            ("jo@.com", InvalidEmail::Shape),
            ("jo doe@corp.com", InvalidEmail::ForbiddenCharacter),
            ("jo\0@corp.com", InvalidEmail::ForbiddenCharacter),
            ("jo\r\nx@corp.com", InvalidEmail::ForbiddenCharacter),
        ] {
            assert_eq!(Email::parse(raw), Err(err), "{raw:?}");
        }
        let long = format!("{}@corp.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        #[test]
        fn parse_never_panics_and_normalises(raw in proptest::prelude::any::<String>(), shaped in "[ -~\\PC]{0,20}@[ -~\\PC]{0,20}") {
            for input in [&raw, &shaped] {
                if let Ok(email) = Email::parse(input) {
                    let again = Email::parse(email.as_str()).expect("a parsed email parses again");
                    proptest::prop_assert_eq!(again.as_str(), email.as_str());
                    proptest::prop_assert!(email.as_str().len() <= 254 * 2);
                }
            }
        }
    }
}
