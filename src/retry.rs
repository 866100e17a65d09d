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

    /// The delay before reconnecting after a session that lasted `lasted`.
    /// A session that held up for [`HEALTHY_SESSION`] was no part of a
    /// failing streak: the delays start small again, so a loss a week after
    /// the last one does not wait the capped delay.
    pub fn after_session(&mut self, lasted: Duration) -> Duration {
        if lasted >= HEALTHY_SESSION {
            self.reset();
        }
        self.next_delay()
    }
}

/// How long a connection must have held up to count as healthy again.
pub const HEALTHY_SESSION: Duration = Duration::from_secs(30);

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
    fn a_healthy_session_starts_the_delays_small_again() {
        let base = Duration::from_millis(100);
        let mut backoff = Backoff::new(base, Duration::from_secs(10));
        for _ in 0..8 {
            backoff.after_session(Duration::ZERO);
        }
        let in_a_streak = backoff.after_session(Duration::from_secs(1));
        let after_a_week = backoff.after_session(Duration::from_secs(7 * 24 * 3600));
        assert!(in_a_streak >= Duration::from_secs(5), "{in_a_streak:?}");
        assert!(after_a_week <= base, "{after_a_week:?}");
    }

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
