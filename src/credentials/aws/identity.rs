//! The form an app identity takes in AWS.

use sha2::{Digest, Sha256};

use crate::credentials::AppId;

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
}
