//! A token bucket that keeps this replica under AWS's control-plane quotas
//! (API Gateway: about 10 management calls/s per account and region), so a
//! login storm degrades to index answers instead of throttled calls.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

struct State {
    /// May go negative: a caller that reserved a future token.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Reserves a token if one is free within `max_wait`, then waits for it.
    /// Returns false (reserving nothing) when the wait would be longer.
    pub async fn acquire_within(&self, max_wait: Duration) -> bool {
        let wait = {
            let mut state = self.state.lock().expect("bucket lock");
            let now = Instant::now();
            let elapsed = now.duration_since(state.last).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.rate).min(self.burst);
            state.last = now;
            let deficit = 1.0 - state.tokens;
            let wait = if deficit > 0.0 {
                Duration::from_secs_f64(deficit / self.rate)
            } else {
                Duration::ZERO
            };
            if wait > max_wait {
                return false;
            }
            state.tokens -= 1.0;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        true
    }

    /// Waits as long as it takes for a token.
    pub async fn acquire(&self) {
        self.acquire_within(Duration::MAX).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spends_the_burst_then_paces_at_the_rate() {
        let bucket = TokenBucket::new(10.0, 3.0);
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            assert!(bucket.acquire_within(Duration::ZERO).await);
        }
        assert!(!bucket.acquire_within(Duration::from_millis(50)).await);
        assert!(bucket.acquire_within(Duration::from_millis(150)).await);
        bucket.acquire().await;
        // Burst of 3, then two tokens at 10/s: about 200 ms of (paused) time.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
    }
}
