//! A wrapper that keeps secret values out of logs, error bodies and panics.

use std::fmt;

use serde::Deserialize;

/// A value that must never be printed. `Debug` shows `[redacted]`, there is
/// no `Display`, and reading the value takes an explicit [`Redacted::expose`].
///
/// Nor is there `Serialize`, so a struct holding one cannot be written into
/// a log line or a body by accident: what is meant to write the value (the
/// local store's rows, the portals' responses) serialises `expose()`'s
/// answer. Deserialising is transparent.
///
/// ```compile_fail
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<keyhook::secret::Redacted<String>>();
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(value: T) -> Self {
        Redacted(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Redacted(value)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Redacted::new("s3cr3t-value".to_string());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }

    #[test]
    fn deserializes_transparently() {
        let secret: Redacted<String> = serde_json::from_str("\"v\"").unwrap();
        assert_eq!(secret.expose(), "v");
    }
}
