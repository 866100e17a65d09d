//! When things happen to a trial: pure functions of its state, its
//! recorded notices and "now", shared by the sweeps (what is due), the
//! dry runs (what would happen) and the workers (what to do, re-checked
//! under the trial's lock).

use chrono::{DateTime, TimeDelta, Utc};

use crate::settings::TrialSettings;
use crate::store::trials::TrialStatus;

/// The lifecycle's offsets, as durations on the business clock.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub notice_before: TimeDelta,
    pub grace: TimeDelta,
    pub extension_step: TimeDelta,
    pub max_extensions: i32,
    pub number_hold: TimeDelta,
}

fn delta(duration: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

impl Timeline {
    pub fn from_settings(settings: &TrialSettings) -> Timeline {
        Timeline {
            notice_before: delta(settings.notice_before),
            grace: delta(settings.grace),
            extension_step: delta(settings.extension_step),
            max_extensions: settings.max_extensions,
            number_hold: delta(settings.number_hold),
        }
    }

    pub fn grace_ends(&self, ends_at: DateTime<Utc>) -> DateTime<Utc> {
        ends_at + self.grace
    }

    /// Whether a trial in `status` ending at `ends_at` is due for purging:
    /// not converted, not purged, and its grace is over.
    pub fn purge_due(
        &self,
        status: TrialStatus,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        status.is_open() && now >= self.grace_ends(ends_at)
    }

    /// The new end after one more extension: a step past the later of now
    /// and the current end.
    pub fn extended_end(&self, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        ends_at.max(now) + self.extension_step
    }

    /// What the notices job does for a trial now, given which notices of
    /// its current term (`ends_at`) are already recorded.
    pub fn notice_plan(&self, trial: TrialMoment, now: DateTime<Utc>) -> NoticePlan {
        let mut plan = NoticePlan::default();
        if !trial.status.is_open() {
            return plan;
        }
        let ended = now >= trial.ends_at;
        let grace_over = now >= self.grace_ends(trial.ends_at);
        plan.expire = trial.status == TrialStatus::Active && ended;
        if now >= trial.ends_at - self.notice_before && !trial.expiring_recorded {
            // Past the end, "your trial ends in N days" would be a lie; the
            // expiry notice says what is true now.
            plan.expiring = Some(if ended { Notice::Skip } else { Notice::Send });
        }
        if ended && !trial.expired_recorded {
            // Once grace is over the purge is due; a notice offering to
            // convert would arrive after the offer ended.
            plan.expired = Some(if grace_over {
                Notice::Skip
            } else {
                Notice::Send
            });
        }
        plan
    }
}

/// A trial as the notice plan sees it.
#[derive(Debug, Clone, Copy)]
pub struct TrialMoment {
    pub status: TrialStatus,
    pub ends_at: DateTime<Utc>,
    /// The `expiring` notice of this term is recorded (sent or skipped).
    pub expiring_recorded: bool,
    pub expired_recorded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Send,
    /// Its moment passed unseen: record it so it never goes out late.
    Skip,
}

impl Notice {
    pub fn outcome(self) -> &'static str {
        match self {
            Notice::Send => "sent",
            Notice::Skip => "skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoticePlan {
    /// The trial reached its end: it becomes `expired` and grace starts.
    pub expire: bool,
    pub expiring: Option<Notice>,
    pub expired: Option<Notice>,
}

impl NoticePlan {
    pub fn is_empty(&self) -> bool {
        *self == NoticePlan::default()
    }

    /// What the plan does, in words for dry runs and logs.
    pub fn describe(&self) -> Vec<String> {
        let mut steps = Vec::new();
        if self.expire {
            steps.push("expire (grace starts)".to_owned());
        }
        for (kind, notice) in [("expiring", self.expiring), ("expired", self.expired)] {
            match notice {
                Some(Notice::Send) => steps.push(format!("send the {kind} notice to both admins")),
                Some(Notice::Skip) => {
                    steps.push(format!("skip the {kind} notice (its moment passed)"))
                }
                None => {}
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            notice_before: TimeDelta::days(7),
            grace: TimeDelta::days(30),
            extension_step: TimeDelta::days(30),
            max_extensions: 3,
            number_hold: TimeDelta::days(15),
        }
    }

    fn at(day: i64) -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::days(day)
    }

    /// A trial ending on day 30, nothing recorded yet.
    fn fresh(status: TrialStatus) -> TrialMoment {
        TrialMoment {
            status,
            ends_at: at(30),
            expiring_recorded: false,
            expired_recorded: false,
        }
    }

    #[test]
    fn nothing_is_due_before_the_notice_window() {
        assert!(
            timeline()
                .notice_plan(fresh(TrialStatus::Active), at(22))
                .is_empty()
        );
    }

    #[test]
    fn the_expiring_notice_is_due_from_seven_days_before() {
        let plan = timeline().notice_plan(fresh(TrialStatus::Active), at(23));
        assert_eq!(plan.expiring, Some(Notice::Send));
        assert!(!plan.expire && plan.expired.is_none());
        // A sweep that missed days still sends it while it is true.
        let late =
            timeline().notice_plan(fresh(TrialStatus::Active), at(29) + TimeDelta::hours(23));
        assert_eq!(late.expiring, Some(Notice::Send));
    }

    #[test]
    fn a_recorded_notice_is_never_planned_again() {
        let trial = TrialMoment {
            expiring_recorded: true,
            ..fresh(TrialStatus::Active)
        };
        assert!(timeline().notice_plan(trial, at(25)).is_empty());
    }

    #[test]
    fn at_the_end_the_trial_expires_and_the_expiry_notice_goes_out() {
        let trial = TrialMoment {
            expiring_recorded: true,
            ..fresh(TrialStatus::Active)
        };
        let plan = timeline().notice_plan(trial, at(30));
        assert!(plan.expire);
        assert_eq!(plan.expired, Some(Notice::Send));
        assert_eq!(plan.expiring, None);
    }

    #[test]
    fn a_sweep_that_missed_the_window_skips_the_stale_notice() {
        let plan = timeline().notice_plan(fresh(TrialStatus::Active), at(33));
        assert!(plan.expire);
        assert_eq!(plan.expiring, Some(Notice::Skip));
        assert_eq!(plan.expired, Some(Notice::Send));
    }

    #[test]
    fn after_grace_no_notice_offers_what_is_over() {
        let plan = timeline().notice_plan(fresh(TrialStatus::Expired), at(61));
        assert!(!plan.expire, "already expired");
        assert_eq!(plan.expired, Some(Notice::Skip));
    }

    #[test]
    fn converted_and_purged_trials_get_nothing() {
        for status in [TrialStatus::Converted, TrialStatus::Purged] {
            assert!(timeline().notice_plan(fresh(status), at(40)).is_empty());
        }
    }

    #[test]
    fn purge_is_due_when_grace_ends_and_only_for_unconverted_trials() {
        let timeline = timeline();
        assert!(!timeline.purge_due(TrialStatus::Expired, at(30), at(59)));
        assert!(timeline.purge_due(TrialStatus::Expired, at(30), at(60)));
        assert!(
            timeline.purge_due(TrialStatus::Active, at(30), at(61)),
            "never swept"
        );
        assert!(!timeline.purge_due(TrialStatus::Converted, at(30), at(90)));
        assert!(!timeline.purge_due(TrialStatus::Purged, at(30), at(90)));
    }

    #[test]
    fn an_extension_counts_from_the_later_of_now_and_the_end() {
        let timeline = timeline();
        assert_eq!(timeline.extended_end(at(30), at(20)), at(60));
        assert_eq!(timeline.extended_end(at(30), at(45)), at(75), "in grace");
    }
}
