//! Replaying dead letters: each one's job gets a fresh allowance of
//! attempts and goes back through the outbox, but only after a re-check
//! that its entity still needs the work (a request not yet done, a mail
//! not yet sent, a ticket still waiting for this step). Every replay is
//! audited with the token (or CLI user) that asked for it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::job::StillNeeded;
use crate::settings::Settings;
use crate::store::dead_letters::{self, DeadLetterFilter, DeadLetterRow, Replayed};
use crate::store::tokens::TokenIdentity;
use crate::store::{Tx, audit, jobs};

pub struct ReplayRequest<'a> {
    pub kind: Option<&'a str>,
    pub ids: &'a [Uuid],
    pub dry_run: bool,
    /// At most this many replays per second.
    pub per_second: u32,
    pub token_id: Option<Uuid>,
    /// Who asked, for the audit trail (`cli:<user>` or the token's name).
    pub actor: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutcome {
    pub dead_letter_id: Uuid,
    pub job_id: Option<Uuid>,
    pub kind: Option<String>,
    /// `replayed`, `would_replay` (dry run) or `skipped`.
    pub outcome: &'static str,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub replayed: usize,
    pub skipped: usize,
    pub items: Vec<ReplayOutcome>,
}

/// A replay by an operator's token, at the API's rate, audited with the
/// token: what the API route and the dashboard's button both do.
pub async fn replay_as(
    pool: &PgPool,
    settings: &Settings,
    clock: Clock,
    operator: &TokenIdentity,
    kind: Option<&str>,
    ids: &[Uuid],
    dry_run: bool,
) -> anyhow::Result<ReplayReport> {
    let request = ReplayRequest {
        kind,
        ids,
        dry_run,
        per_second: settings.http.rate_limit_per_second,
        token_id: Some(operator.id),
        actor: format!("token:{}", operator.name),
    };
    replay(
        pool,
        settings.jobs.max_attempts,
        &request,
        || clock.now(),
        |_, _| {},
    )
    .await
}

/// The most dead letters one replay takes on.
const MAX_PER_REPLAY: i64 = 10_000;

pub async fn replay(
    pool: &PgPool,
    more_attempts: i32,
    request: &ReplayRequest<'_>,
    now: impl Fn() -> DateTime<Utc>,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<ReplayReport> {
    let filter = DeadLetterFilter {
        kind: request.kind,
        since: None,
        ids: request.ids,
        replayed: Replayed::No,
        limit: MAX_PER_REPLAY,
        before: None,
    };
    let mut letters = dead_letters::list(pool, &filter).await?;
    letters.reverse(); // oldest first
    let pause = Duration::from_secs_f64(1.0 / f64::from(request.per_second.max(1)));
    let mut report = ReplayReport {
        dry_run: request.dry_run,
        replayed: 0,
        skipped: 0,
        items: Vec::new(),
    };
    for (done, letter) in letters.iter().enumerate() {
        let outcome = replay_one(pool, letter, more_attempts, request, now()).await?;
        if outcome.outcome == "skipped" {
            report.skipped += 1;
        } else {
            report.replayed += 1;
        }
        let acted = outcome.outcome == "replayed";
        report.items.push(outcome);
        progress(done + 1, letters.len());
        if acted && done + 1 < letters.len() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(report)
}

async fn replay_one(
    pool: &PgPool,
    letter: &DeadLetterRow,
    more_attempts: i32,
    request: &ReplayRequest<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<ReplayOutcome> {
    let outcome = |outcome, note: String| ReplayOutcome {
        dead_letter_id: letter.id,
        job_id: letter.job_id,
        kind: letter.kind.clone(),
        outcome,
        note,
    };
    let Some(job_id) = letter.job_id else {
        return Ok(outcome(
            "skipped",
            "not a job (unreadable or unknown message): nothing to run again".into(),
        ));
    };
    let mut tx = pool.begin().await?;
    let Some(job) = jobs::lock(&mut tx, job_id).await? else {
        return Ok(outcome("skipped", format!("job {job_id} does not exist")));
    };
    if job.status != jobs::JobStatus::Dead {
        return Ok(outcome(
            "skipped",
            format!("job is {}, not dead: nothing to replay", job.status),
        ));
    }
    if let Some(reason) = no_longer_needed(&mut tx, &job).await? {
        if !request.dry_run {
            dead_letters::mark_replayed(&mut tx, letter.id, now).await?;
            record(&mut tx, letter, request, "skipped", &reason, now).await?;
            tx.commit().await?;
        }
        return Ok(outcome("skipped", reason));
    }
    if request.dry_run {
        return Ok(outcome(
            "would_replay",
            format!("attempt {} of job {job_id}", job.attempts + 1),
        ));
    }
    jobs::requeue_dead(&mut tx, &job, more_attempts).await?;
    if !dead_letters::mark_replayed(&mut tx, letter.id, now).await? {
        return Ok(outcome(
            "skipped",
            "replayed by someone else meanwhile".into(),
        ));
    }
    let note = format!("attempt {} queued", job.attempts + 1);
    record(&mut tx, letter, request, "replayed", &note, now).await?;
    tx.commit().await?;
    Ok(outcome("replayed", note))
}

/// Why the job's entity no longer needs it, if it does not: its kind's
/// handler says (`Worker::still_needed`). The handlers re-check under lock
/// as well; this keeps replays from queueing work that would do nothing,
/// and tells the operator what to do instead.
async fn no_longer_needed(tx: &mut Tx<'_>, job: &jobs::JobRow) -> sqlx::Result<Option<String>> {
    let Some(registration) = crate::workers::registration(&job.kind) else {
        return Ok(None); // no worker here to ask; the attempt will say
    };
    Ok(match registration.handler.still_needed(tx, job).await? {
        StillNeeded::Yes => None,
        StillNeeded::No(reason) => Some(reason),
    })
}

async fn record(
    tx: &mut Tx<'_>,
    letter: &DeadLetterRow,
    request: &ReplayRequest<'_>,
    outcome: &str,
    note: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at: now,
        entity_type: "dead_letter",
        entity_id: letter.id,
        action: "dead_letter.replay",
        from_state: None,
        to_state: Some(outcome),
        token_id: request.token_id,
        job_id: letter.job_id,
        detail: json!({ "by": request.actor, "kind": letter.kind, "note": note }),
    };
    audit::record(tx, event).await
}
