//! Wall-clock time in Unix milliseconds, injectable so tests can replay
//! signatures made at a fixed instant. The application holds one `Clock`
//! (`app::Dependencies`) and hands it to whatever reads the time: the ReadMe
//! verifier, and the backends that date credentials.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system() -> Clock {
    Arc::new(now_ms)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A clock stopped at `ms`.
pub fn fixed(ms: i64) -> Clock {
    Arc::new(move || ms)
}
