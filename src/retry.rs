//! Exponential backoff with full jitter, for job retries and reconnects.
//! Jitter spreads retries out so that a fleet of workers that failed
//! together does not come back together.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next try; grows with each call.
    pub fn next_delay(&mut self) -> Duration {
        let delay = delay_for_attempt(self.base, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Delay before retry number `attempt` (0-based): uniformly random in
/// [cap/2, cap] where cap = min(max, base * 2^attempt). Half is kept so that
/// a retry never comes back at once.
pub fn delay_for_attempt(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempt.min(30)));
    let cap = exponential.min(max);
    let half = cap / 2;
    let spread = cap - half;
    half + spread.mul_f64(rand::thread_rng().r#gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_stop_at_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..12 {
            let cap = base.saturating_mul(1 << attempt).min(max);
            for _ in 0..50 {
                let delay = delay_for_attempt(base, max, attempt);
                assert!(
                    delay >= cap / 2 && delay <= cap,
                    "attempt {attempt}: {delay:?} vs cap {cap:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| delay_for_attempt(Duration::from_secs(1), Duration::from_secs(60), 3))
            .collect();
        assert!(delays.len() > 10);
    }
}
