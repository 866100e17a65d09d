//! What a job is on the wire and in outcome: its kind, its envelope, and
//! whether a failed attempt is worth retrying.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every kind of job, each with its own durable quorum queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    LicenseNew,
    LicenseAdditional,
    LicenseVmCount,
    LicenseRevoke,
    LicenseOrderRevoke,
    TransferProcess,
    RoleCleanup,
    TrialNotices,
    TrialPurge,
    NumberRelease,
    MailSend,
}

impl JobKind {
    pub const ALL: [JobKind; 11] = [
        JobKind::LicenseNew,
        JobKind::LicenseAdditional,
        JobKind::LicenseVmCount,
        JobKind::LicenseRevoke,
        JobKind::LicenseOrderRevoke,
        JobKind::TransferProcess,
        JobKind::RoleCleanup,
        JobKind::TrialNotices,
        JobKind::TrialPurge,
        JobKind::NumberRelease,
        JobKind::MailSend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::LicenseNew => "license.new",
            JobKind::LicenseAdditional => "license.additional",
            JobKind::LicenseVmCount => "license.vm_count",
            JobKind::LicenseRevoke => "license.revoke",
            JobKind::LicenseOrderRevoke => "license.order_revoke",
            JobKind::TransferProcess => "transfer.process",
            JobKind::RoleCleanup => "role.cleanup",
            JobKind::TrialNotices => "trial.notices",
            JobKind::TrialPurge => "trial.purge",
            JobKind::NumberRelease => "trial.number_release",
            JobKind::MailSend => "mail.send",
        }
    }

    pub fn parse(name: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == name)
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
