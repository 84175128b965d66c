//! Who may be given a key at their first login, and on which usage plan
//! (`readme.provision_domains`, `[readme.plans_by_domain]`). Pure: the
//! door asks, the backend is not involved.

use std::collections::BTreeMap;
use std::fmt;

use crate::credentials::Email;

/// `corp.com` (that domain exactly) or `*.corp.com` (any of its
/// subdomains, at any depth, not `corp.com` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    domain: String,
    subdomains: bool,
}

impl DomainPattern {
    /// A pattern as configured; the domain is checked as a login's address
    /// is, so a pattern matches the form addresses are compared in.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (domain, subdomains) = match text.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let email = Email::parse(&format!("x@{domain}"))
            .map_err(|_| format!("`{text}` is not a domain (`corp.com` or `*.corp.com`)"))?;
        Ok(DomainPattern {
            domain: email.domain().to_string(),
            subdomains,
        })
    }

    pub fn matches(&self, domain: &str) -> bool {
        if self.subdomains {
            domain
                .strip_suffix(self.domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            domain == self.domain
        }
    }

    /// How closely it names a domain: an exact domain before any wildcard,
    /// a longer wildcard before a shorter one.
    fn specificity(&self) -> (bool, usize) {
        (!self.subdomains, self.domain.len())
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subdomains {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

/// The provisioning policy a first login is checked against.
#[derive(Debug, Clone, Default)]
pub struct ProvisionPolicy {
    /// Empty: every domain.
    domains: Vec<DomainPattern>,
    /// Most specific first.
    plans: Vec<(DomainPattern, String)>,
    default_plan: Option<String>,
}

impl ProvisionPolicy {
    pub fn new(
        domains: &[String],
        plans_by_domain: &BTreeMap<String, String>,
        default_plan: Option<String>,
    ) -> Result<Self, String> {
        let domains = domains
            .iter()
            .map(|d| DomainPattern::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut plans = plans_by_domain
            .iter()
            .map(|(d, plan)| Ok((DomainPattern::parse(d)?, plan.clone())))
            .collect::<Result<Vec<_>, String>>()?;
        plans.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.specificity()));
        Ok(ProvisionPolicy {
            domains,
            plans,
            default_plan,
        })
    }

    /// Whether `reader` may be given a key at their first login.
    pub fn admits(&self, reader: &Email) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|p| p.matches(reader.domain()))
    }

    /// The usage plan `reader`'s key goes on: the most specific domain's,
    /// else the default plan.
    pub fn plan_for(&self, reader: &Email) -> Option<&str> {
        self.plans
            .iter()
            .find(|(pattern, _)| pattern.matches(reader.domain()))
            .map(|(_, plan)| plan.as_str())
            .or(self.default_plan.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    #[test]
    fn an_exact_domain_and_a_wildcard_match_what_they_say_and_nothing_else() {
        let exact = DomainPattern::parse("Corp.com").unwrap();
        assert!(exact.matches("corp.com"));
        for other in ["eu.corp.com", "xcorp.com", "corp.com.au", "corp.co"] {
            assert!(!exact.matches(other), "{other}");
        }
        let wild = DomainPattern::parse("*.corp.com").unwrap();
        for sub in ["eu.corp.com", "a.b.corp.com"] {
            assert!(wild.matches(sub), "{sub}");
        }
        for other in ["corp.com", "xcorp.com", ".corp.com", "eu.corp.com.evil.io"] {
            assert!(!wild.matches(other), "{other}");
        }
        for bad in ["", "*", "*.", "corp.com/x", "a@corp.com", "**.corp.com"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn readers_outside_the_domains_are_refused_and_no_domains_admits_all() {
        let policy = ProvisionPolicy::new(
            &["corp.com".into(), "*.partner.io".into()],
            &BTreeMap::new(),
            None,
        )
        .unwrap();
        assert!(policy.admits(&email("jo@corp.com")));
        assert!(policy.admits(&email("jo@eu.partner.io")));
        assert!(!policy.admits(&email("jo@partner.io")));
        assert!(!policy.admits(&email("jo@gmail.com")));
        let open = ProvisionPolicy::new(&[], &BTreeMap::new(), None).unwrap();
        assert!(open.admits(&email("jo@gmail.com")));
    }

    #[test]
    fn the_most_specific_domain_chooses_the_plan_else_the_default() {
        let plans = BTreeMap::from([
            ("*.corp.com".to_string(), "staff".to_string()),
            ("*.eu.corp.com".to_string(), "staff-eu".to_string()),
            ("vip.eu.corp.com".to_string(), "vip".to_string()),
        ]);
        let policy = ProvisionPolicy::new(&[], &plans, Some("free".into())).unwrap();
        let plan = |e: &str| policy.plan_for(&email(e)).map(str::to_string);
        assert_eq!(plan("a@vip.eu.corp.com").as_deref(), Some("vip"));
        assert_eq!(plan("a@x.eu.corp.com").as_deref(), Some("staff-eu"));
        assert_eq!(plan("a@eu.corp.com").as_deref(), Some("staff"));
        assert_eq!(plan("a@corp.com").as_deref(), Some("free"));
        assert_eq!(plan("a@gmail.com").as_deref(), Some("free"));
    }
}
