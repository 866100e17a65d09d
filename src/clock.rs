//! The business clock. Deadlines, issue times and SLA figures read it, so
//! that tests and drills can run this process at any instant
//! (`clock.now`) without sleeping; it runs forward from where it starts.
//! Infrastructure timing (outbox due times, backoff) stays on wall time.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs forward from there.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn from_settings(settings: &crate::settings::ClockSettings) -> Clock {
        settings.now.map_or_else(Clock::system, Clock::starting_at)
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_clock_starts_at_the_instant_and_runs_forward() {
        let start = "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = Clock::starting_at(start);
        let first = clock.now();
        assert!(first >= start && first - start < TimeDelta::seconds(5));
        assert!(clock.now() >= first);
    }
}
