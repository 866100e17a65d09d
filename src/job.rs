//! What a job is on the wire and in outcome: its kind and typed args, its
//! envelope, and whether a failed attempt is worth retrying.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job kind: the name that travels on the wire (envelope `kind`, job row,
/// routing key, queue name). It is a name rather than an enum so that a new
/// kind is declared where its args are (`JobArgs::KIND`) and listed once,
/// in the registry (`workers::REGISTRY`), instead of in a hand-kept enum.
/// `JobKind::ALL` and `JobKind::parse` come from that registry; the
/// constants of the existing kinds (`JobKind::LicenseNew`, …) sit next to
/// their args.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobKind(&'static str);

impl JobKind {
    /// Names a kind; only a kind's own args type should call this.
    pub const fn new(name: &'static str) -> JobKind {
        JobKind(name)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The envelope version this build understands for the kind.
    pub fn version(self) -> i32 {
        1
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind's arguments: the one payload type its producers serialise and
/// its worker deserialises, so the payload contract is written once.
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: JobKind;
}

/// What a replay's re-check found: whether a dead job's entity still needs
/// the work, or why not (told to the operator, who may act instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StillNeeded {
    Yes,
    No(String),
}

/// The message body on the broker (SPEC §2.2). The job row in PostgreSQL
/// is the truth; the envelope is how a worker learns of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub job_id: Uuid,
    pub kind: String,
    pub version: i32,
    pub enqueued_at: DateTime<Utc>,
    pub attempt: i32,
    pub payload: serde_json::Value,
}

/// What handling a set of jobs came to: per job, in order, done or failed
/// (a failed job wrote nothing). `Err` for the set as a whole: nothing it
/// wrote stands, and its jobs are to run one by one.
pub type SetOutcome = Result<Vec<Result<(), JobError>>, JobError>;

/// How an attempt failed, which decides what happens next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt after a backoff (a database or vendor hiccup).
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// No attempt can succeed (the payload names nothing that exists, a
    /// rule forbids it): dead-letter it now with the reason.
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

impl JobError {
    pub fn fatal(message: impl std::fmt::Display) -> JobError {
        JobError::Fatal(anyhow::anyhow!("{message}"))
    }
}

/// Database errors are transient unless they say the data itself is wrong.
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> JobError {
        let permanent = matches!(&error, sqlx::Error::Database(db)
            if db.is_check_violation() || db.is_foreign_key_violation());
        if permanent {
            JobError::Fatal(error.into())
        } else {
            JobError::Retryable(error.into())
        }
    }
}

impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> JobError {
        JobError::Retryable(error)
    }
}
