//! The owner of a credential: an email address, compared whole and exactly,
//! except that ASCII letters compare without regard to case: `Jo@Corp.com` is
//! `jo@corp.com`, and never `jo@corp.com.au`.
//!
//! Nothing else is folded. Unicode lower-casing and normalisation merge
//! distinct addresses (the Kelvin sign `K` lower-cases to an ASCII `k`, so
//! `Kate@corp.com` spelt with it would be shown kate's key), so an address
//! that is not already in NFC is refused, and non-ASCII letters keep their
//! case. The domain must be a host name: ASCII letters, digits and hyphens,
//! or a non-ASCII (IDNA) name written as IDNA maps it.
//!
//! What keyhook stored before these rules, or what an operator typed as a
//! key's name in the console, is read with [`Email::from_stored`]: kept as
//! written when today's rules refuse it, so its credential stays reachable
//! by app and id, while no login (parsed with [`Email::parse`]) can match it.

use std::borrow::Cow;
use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Serialize};
use unicode_normalization::is_nfc;

use crate::text::trim;

/// RFC 5321 caps a forward path at 256 octets, so an address at 254.
const MAX_LEN: usize = 254;

/// An address in canonical form: trimmed, ASCII letters lower-cased.
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
    #[error("email must not contain spaces, control or invisible characters")]
    ForbiddenCharacter,
    #[error("email must be in Unicode normalisation form C (it holds a character such as the Kelvin sign that stands for another)")]
    NotNormalized,
    #[error("email's domain must be a host name (letters, digits and hyphens; a non-ASCII domain as IDNA writes it)")]
    Domain,
}

impl Email {
    /// Validates an address and brings it to canonical form. ReadMe readers
    /// have non-ASCII addresses, so the local part may hold any printable
    /// character; what it holds is compared exactly.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let (local, domain) = split(raw)?;
        // ASCII holds no invisible character and is in NFC: the usual
        // address skips both scans.
        if !local.is_ascii() && local.chars().any(is_invisible) {
            return Err(InvalidEmail::ForbiddenCharacter);
        }
        if !(local.is_ascii() || is_nfc(local)) || !(domain.is_ascii() || is_nfc(domain)) {
            return Err(InvalidEmail::NotNormalized);
        }
        let domain = match domain.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(domain.to_ascii_lowercase()),
            false => Cow::Borrowed(domain),
        };
        if !is_host_name(&domain) {
            return Err(InvalidEmail::Domain);
        }
        Ok(Email(trim(raw).to_ascii_lowercase()))
    }

    /// An address as it was stored: by an earlier version (which lower-cased
    /// all of it and checked only its shape), or by an operator naming a key
    /// in the console. Canonical when [`Email::parse`] accepts it; else, if
    /// it has the shape of an address, kept as written (ASCII letters
    /// lower-cased), which no parsed address can equal: parsing accepts or
    /// refuses an address whatever the case of its ASCII letters.
    pub fn from_stored(raw: &str) -> Result<Self, InvalidEmail> {
        Email::parse(raw).or_else(|_| {
            split(raw)?;
            Ok(Email(trim(raw).to_ascii_lowercase()))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What follows the `@`, as stored (ASCII letters lower-cased).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

/// The local part and domain of `raw`, if it has the shape of an address.
fn split(raw: &str) -> Result<(&str, &str), InvalidEmail> {
    let trimmed = trim(raw);
    if trimmed.is_empty() {
        return Err(InvalidEmail::Empty);
    }
    if trimmed.len() > MAX_LEN {
        return Err(InvalidEmail::TooLong);
    }
    // Over ASCII, `char::is_whitespace` and `char::is_control` are the
    // space and the ASCII controls.
    let forbidden = match trimmed.is_ascii() {
        true => trimmed.bytes().any(|b| b == b' ' || b.is_ascii_control()),
        false => trimmed.chars().any(|c| c.is_whitespace() || c.is_control()),
    };
    if forbidden {
        return Err(InvalidEmail::ForbiddenCharacter);
    }
    match trimmed.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok((local, domain))
        }
        _ => Err(InvalidEmail::Shape),
    }
}

/// Characters that show nothing (soft hyphen, zero-width spaces and
/// joiners, direction marks and overrides, the byte-order mark): addresses
/// differing only in them look alike in ReadMe and in logs. (IDNA refuses
/// them in a domain.)
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Whether `domain` (ASCII letters lower-cased) is a host name as IDNA
/// writes it: UTS #46 with the STD3 rules (letters, digits, hyphens; none
/// first or last in a label) and DNS lengths accepts it, and maps it to
/// itself, either in ASCII (`xn--` labels included) or in its Unicode form.
/// A domain IDNA would map to another (full-width letters, non-ASCII
/// capitals) is refused rather than folded into that other one.
fn is_host_name(domain: &str) -> bool {
    if domain.ends_with('.') {
        return false;
    }
    plain_host_name(domain) || idna_host_name(domain)
}

/// The usual domain, answered without IDNA: labels of 1 to 63 lower-case
/// letters, digits and inner hyphens, none of them `xn--`, 253 bytes in all.
/// UTS #46 maps such a name to itself and accepts it; anything else is left
/// to [`idna_host_name`] (a property test holds the two to one answer).
fn plain_host_name(domain: &str) -> bool {
    let ldh = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    domain.len() <= 253
        && domain.split('.').all(|label| {
            let bytes = label.as_bytes();
            (1..=63).contains(&bytes.len())
                && bytes.iter().all(ldh)
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
                && !label.starts_with("xn--")
        })
}

/// The whole check, through IDNA.
fn idna_host_name(domain: &str) -> bool {
    let uts46 = Uts46::new();
    let Ok(ascii) = uts46.to_ascii(
        domain.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
        DnsLength::Verify,
    ) else {
        return false;
    };
    if domain.is_ascii() {
        return ascii == domain;
    }
    let (unicode, mapped) = uts46.to_unicode(
        ascii.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    mapped.is_ok() && unicode == domain
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stored rows are read as stored (see [`Email::from_stored`]); requests are
/// parsed with [`Email::parse`], never through serde.
impl TryFrom<String> for Email {
    type Error = InvalidEmail;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::from_stored(&value)
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

    fn parsed(raw: &str) -> Result<String, InvalidEmail> {
        Email::parse(raw).map(String::from)
    }

    #[test]
    fn only_ascii_letters_compare_without_case() {
        assert_eq!(parsed("  Jo@Corp.COM ").unwrap(), "jo@corp.com");
        // Non-ASCII letters keep their case: `Ö` and `ö` are two owners.
        assert_eq!(parsed("JÖHN@Example.com").unwrap(), "jÖhn@example.com");
        assert_ne!(parsed("JÖHN@example.com"), parsed("jöhn@example.com"));
    }

    #[test]
    fn prefix_addresses_are_different_owners() {
        assert_ne!(Email::parse("jo@corp.com"), Email::parse("jo@corp.com.au"));
    }

    #[test]
    fn look_alikes_never_become_another_address() {
        // The Kelvin sign and the Angstrom sign lower-case (and NFC-map) to
        // `k` and `å`; a decomposed `é` is `é` under NFC.
        for raw in [
            "\u{212A}ate@corp.com",
            "kate@\u{212A}orp.com",
            "\u{212B}sa@corp.com",
            "jose\u{301}@corp.com",
        ] {
            assert_eq!(parsed(raw), Err(InvalidEmail::NotNormalized), "{raw:?}");
        }
        // IDNA would map these domains onto corp.com and bücher.de.
        for raw in ["jo@\u{FF43}orp.com", "jo@B\u{DC}CHER.de"] {
            assert_eq!(parsed(raw), Err(InvalidEmail::Domain), "{raw:?}");
        }
        // A full-width local part is its own owner, never kate's.
        assert_eq!(
            parsed("\u{FF4B}ate@corp.com").unwrap(),
            "\u{FF4B}ate@corp.com"
        );
    }

    #[test]
    fn the_domain_is_a_host_name() {
        for ok in [
            "jo@corp.com",
            "jo@localhost",
            "jo@mail-1.corp.io",
            "jo@bücher.de",
            "jo@xn--bcher-kva.de",
            "jo@Bücher.DE",
            "jo@ab--cd.io",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "a@b.c/x",
            "jo@corp_x.com",
            "jo@-corp.com",
            "jo@corp-.com",
            "jo@corp..com",
            "jo@corp.com.",
            "jo@[192.0.2.1]",
            "jo@corp.com:443",
            "jo@corp!.com",
        ] {
            assert_eq!(parsed(bad), Err(InvalidEmail::Domain), "{bad:?}");
        }
        let long_label = format!("jo@{}.com", "a".repeat(64));
        assert_eq!(parsed(&long_label), Err(InvalidEmail::Domain));
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
            ("jo@.com", InvalidEmail::Domain),
            ("jo doe@corp.com", InvalidEmail::ForbiddenCharacter),
            ("jo\0@corp.com", InvalidEmail::ForbiddenCharacter),
            ("jo\r\nx@corp.com", InvalidEmail::ForbiddenCharacter),
            ("ka\u{200B}te@corp.com", InvalidEmail::ForbiddenCharacter),
            ("\u{202E}moc.proc@etak", InvalidEmail::ForbiddenCharacter),
            ("\u{FEFF}kate@corp.com", InvalidEmail::ForbiddenCharacter),
        ] {
            assert_eq!(Email::parse(raw), Err(err), "{raw:?}");
        }
        let long = format!("{}@corp.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn what_an_earlier_version_stored_reads_back_as_stored() {
        // Each of these was accepted, lower-cased and stored before.
        for stored in [
            "dev@corp.com",
            "jöhn@example.com",
            "a@b.c/x",
            "jose\u{301}@corp.com",
            "jo@corp_x.com",
        ] {
            assert_eq!(Email::from_stored(stored).unwrap().as_str(), stored);
        }
        // A console key named with a look-alike is nobody's login.
        let kelvin = Email::from_stored("\u{212A}ate@corp.com").unwrap();
        assert_eq!(kelvin.as_str(), "\u{212A}ate@corp.com");
        assert_ne!(Some(kelvin), Email::parse("kate@corp.com").ok());
        assert_eq!(
            Email::from_stored("Kate@Corp.com").unwrap().as_str(),
            "kate@corp.com"
        );
        // What never had the shape of an address (a console key named
        // "test-key") is nobody's.
        assert_eq!(Email::from_stored("test-key"), Err(InvalidEmail::Shape));
    }

    #[test]
    fn usual_domains_skip_idna_and_the_limits_hold_either_way() {
        let label = |n: usize| "a".repeat(n);
        for plain in [
            "corp.com",
            "a-b.c0",
            &label(63),
            &[label(63), label(63), label(63), label(61)].join("."),
        ] {
            assert!(plain_host_name(plain), "{plain}");
            assert!(is_host_name(plain), "{plain}");
        }
        // Left to IDNA, which accepts a valid `xn--` label and refuses the rest.
        for (domain, host) in [
            ("xn--bcher-kva.com", true),
            ("xn--a.com", false),
            ("-a.com", false),
            ("a-.com", false),
            ("a..com", false),
            (&label(64), false),
            (
                &[label(63), label(63), label(63), label(62)].join("."),
                false,
            ),
            ("a_b.com", false),
        ] {
            assert!(!plain_host_name(domain), "{domain}");
            assert_eq!(is_host_name(domain), host, "{domain}");
        }
    }

    /// The ASCII shortcuts of `parse` and `split` rest on these facts.
    #[test]
    fn ascii_is_visible_normalized_and_spaced_only_by_space_and_controls() {
        for c in (0u8..=0x7f).map(char::from) {
            assert!(!is_invisible(c), "{c:?}");
            assert!(is_nfc(&c.to_string()), "{c:?}");
            assert_eq!(
                c.is_whitespace() || c.is_control(),
                c == ' ' || c.is_ascii_control(),
                "{c:?}"
            );
        }
    }

    /// `parse` as it was before its ASCII shortcuts (every domain through
    /// IDNA): the same answer for every input.
    fn reference_parse(raw: &str) -> Result<Email, InvalidEmail> {
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
        let (local, domain) = match trimmed.split_once('@') {
            Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
            {
                (local, domain)
            }
            _ => return Err(InvalidEmail::Shape),
        };
        if local.chars().any(is_invisible) {
            return Err(InvalidEmail::ForbiddenCharacter);
        }
        if !is_nfc(local) || !is_nfc(domain) {
            return Err(InvalidEmail::NotNormalized);
        }
        let domain = domain.to_ascii_lowercase();
        if domain.ends_with('.') || !idna_host_name(&domain) {
            return Err(InvalidEmail::Domain);
        }
        Ok(Email(raw.trim().to_ascii_lowercase()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        #[test]
        fn parse_answers_as_the_reference_parser(
            raw in proptest::prelude::any::<String>(),
            ascii in "[ -~\\t\\x0b\\x7f]{0,12}@[a-zA-Z0-9.\\- _\\x0b]{0,16}",
            shaped in "[ -~\\PC]{0,20}@[ -~\\PC]{0,20}",
            invisible in "[a-zÖ\\u{AD}\\u{200B}-\\u{200F}\\u{202A}-\\u{202E}\\u{2060}-\\u{2064}\\u{2066}-\\u{2069}\\u{FEFF}]{1,6}@[a-z\\u{AD}\\u{200B}]{1,6}\\.com",
        ) {
            for input in [&raw, &ascii, &shaped, &invisible] {
                proptest::prop_assert_eq!(Email::parse(input), reference_parse(input), "{:?}", input);
            }
        }

        /// The plain-domain shortcut never accepts what IDNA refuses (and
        /// what it accepts, IDNA accepts too), around every limit it checks.
        #[test]
        fn plain_domains_are_host_names_as_idna_has_them(
            short in "[a-z0-9\\-.]{0,20}",
            labels in proptest::collection::vec("(xn--)?[a-z0-9\\-]{0,4}|[a-z0-9]{60,65}|-?[a-z0-9]{0,3}-?", 1..6),
            long in proptest::collection::vec("[a-z0-9]{1,63}", 1..6),
        ) {
            let long = long.join(".");
            for domain in [short, labels.join("."), long.clone(), format!("{long}.{long}")] {
                if plain_host_name(&domain) {
                    proptest::prop_assert!(idna_host_name(&domain), "{:?}", domain);
                }
            }
        }

        #[test]
        fn parse_never_panics_and_is_canonical(raw in proptest::prelude::any::<String>(), shaped in "[ -~\\PC]{0,20}@[ -~\\PC]{0,20}") {
            for input in [&raw, &shaped] {
                if let Ok(email) = Email::parse(input) {
                    let again = Email::parse(email.as_str()).expect("a parsed email parses again");
                    proptest::prop_assert_eq!(again.as_str(), email.as_str());
                    proptest::prop_assert_eq!(Email::from_stored(email.as_str()), Ok(email.clone()));
                    proptest::prop_assert!(email.as_str().len() <= MAX_LEN);
                } else {
                    // What parsing refuses, however stored, equals no login.
                    if let Ok(stored) = Email::from_stored(input.as_str()) {
                        proptest::prop_assert!(Email::parse(stored.as_str()).is_err());
                    }
                }
            }
        }
    }
}
