//! Dead letters: what could not be done, with the reason and the raw body.

use uuid::Uuid;

pub struct NewDeadLetter<'a> {
    pub job_id: Option<Uuid>,
    pub kind: Option<&'a str>,
    pub queue: &'a str,
    pub reason: &'a str,
    pub body: &'a str,
    pub attempts: i32,
}

/// Stores a dead letter. PostgreSQL text cannot hold NUL, and a dead
/// letter must be storable whatever bytes arrived, so NULs become U+FFFD.
pub async fn insert<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    letter: NewDeadLetter<'_>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into dead_letters (id, job_id, kind, queue, reason, body, attempts)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(letter.job_id)
    .bind(letter.kind)
    .bind(letter.queue)
    .bind(letter.reason.replace('\0', "\u{fffd}"))
    .bind(letter.body.replace('\0', "\u{fffd}"))
    .bind(letter.attempts)
    .execute(executor)
    .await?;
    Ok(id)
}

/// Stores a message that names no job (garbage, an unknown job id): the
/// raw body with the reason, for operators to look at.
pub async fn insert_unattached<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    queue: &str,
    reason: &str,
    body: &str,
) -> sqlx::Result<()> {
    let letter = NewDeadLetter {
        job_id: None,
        kind: None,
        queue,
        reason,
        body,
        attempts: 0,
    };
    insert(executor, letter).await.map(|_| ())
}
