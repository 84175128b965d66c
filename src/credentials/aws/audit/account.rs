//! What the audit reads of the account: API keys (no values), app
//! clients (names, and a creation date where one was needed), each key's
//! usage plans and the claim table.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use super::super::apigateway::{TAG_APP, TAG_CLAIM, TAG_CLIENT};
use super::super::claims::ClaimMap;
use super::super::cognito::parse_client_name;
use super::record::{self, NameFields};
use crate::credentials::{AppId, Email};

/// An API key as the audit lists it (no value).
#[derive(Debug, Clone, Default)]
pub(crate) struct Key {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub created_ms: u64,
    pub tags: HashMap<String, String>,
    pub customer_id: Option<String>,
    /// Its name read as an owner once (it is asked for several times).
    pub read_name: OnceLock<(Option<Email>, bool)>,
}

impl Key {
    fn read_name(&self) -> &(Option<Email>, bool) {
        self.read_name
            .get_or_init(|| match Email::parse(&self.name) {
                Ok(owner) => (Some(owner), true),
                Err(_) => (Email::from_stored(&self.name).ok(), false),
            })
    }

    /// Its owner: its name, when that is an address (as a login reads it).
    pub fn owner(&self) -> Option<&Email> {
        self.read_name().0.as_ref()
    }

    /// Whether its owner is an address today's rules accept: only such a
    /// key is settled as one of an app's (`claims::is_claimable`), since an
    /// earlier version's identity may share a hash with another app's.
    pub fn claimable_owner(&self) -> bool {
        self.read_name().1
    }

    pub fn app_hash(&self) -> Option<&str> {
        self.tags.get(TAG_APP).map(String::as_str)
    }

    pub fn companion_of(&self) -> Option<&str> {
        self.tags.get(TAG_CLIENT).map(String::as_str)
    }

    pub fn claim_table(&self) -> Option<&str> {
        self.tags.get(TAG_CLAIM).map(String::as_str)
    }

    pub fn replaces(&self) -> Option<&str> {
        record::key_replaces(&self.tags).map(|(id, _)| id)
    }
}

/// An app client as the audit lists it: its name, and its creation date
/// where one was read (only the clients of an app with several).
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub id: String,
    pub name: String,
    pub created_ms: Option<u64>,
}

/// A keyhook client, its name read.
pub(crate) struct Named<'a> {
    pub client: &'a Client,
    pub app: AppId,
    pub owner: Email,
    pub fields: NameFields,
}

impl Client {
    pub fn named(&self) -> Option<Named<'_>> {
        let (head, fields) = record::split_client_name(&self.name);
        let (app, _, owner) = parse_client_name(head)?;
        Some(Named {
            client: self,
            app,
            owner,
            fields,
        })
    }
}

/// What the audit read.
#[derive(Debug, Default)]
pub(crate) struct Account {
    pub keys: Vec<Key>,
    /// `None` without a user pool.
    pub clients: Option<Vec<Client>>,
    /// Key id → the usage plans it is on.
    pub plans: HashMap<String, BTreeSet<String>>,
    /// The claim table's items, with one.
    pub claims: Option<ClaimMap>,
}
