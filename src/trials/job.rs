//! What the trial workers share: the args every trial kind carries, and
//! locking the trial a job is for at the instant the job acts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::job::JobError;
use crate::store::Tx;
use crate::store::trials::{self, TrialRow};

/// The args of every trial kind: the trial it is for, and the business
/// instant of the sweep that found it due (SPEC §3.10). Each kind wraps it
/// in its own args type (`#[serde(transparent)]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TrialJob {
    pub trial_id: uuid::Uuid,
    /// A sweep run at a moved clock (`clock.now`) queues work due at that
    /// instant; a worker on another clock must still do it, so it acts at
    /// the later of its own clock and this.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
}

/// The trial a trial job is for, locked for the job's transaction, and the
/// instant the job acts at (the clock's, read once the lock is held, or
/// the sweep's later instant); a trial that does not exist is a fatal
/// error (the job can never succeed).
pub async fn lock_trial(
    tx: &mut Tx<'_>,
    job: TrialJob,
    clock: &Clock,
) -> Result<(TrialRow, DateTime<Utc>), JobError> {
    let TrialJob { trial_id, as_of } = job;
    let trial = trials::lock_trial(tx, trial_id)
        .await?
        .ok_or_else(|| JobError::fatal(format!("trial {trial_id} does not exist")))?;
    let now = clock.now();
    Ok((trial, as_of.map_or(now, |as_of| as_of.max(now))))
}
