//! Dead letters: what could not be done, with the reason and the raw body.

use uuid::Uuid;

pub struct NewDeadLetter<'a> {
    pub job_id: Option<Uuid>,
    pub kind: Option<&'a str>,
    pub queue: &'a str,
    pub reason: &'a str,
    pub body: &'a str,
    pub attempts: i32,
    /// The AMQP message id it arrived with, when it came from the broker.
    pub message_id: Option<&'a str>,
}

/// Stores a dead letter. PostgreSQL text cannot hold NUL, and a dead
/// letter must be storable whatever bytes arrived, so NULs become U+FFFD.
pub async fn insert<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    letter: NewDeadLetter<'_>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into dead_letters (id, job_id, kind, queue, reason, body, attempts, message_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        letter.job_id,
        letter.kind,
        letter.queue,
        letter.reason.replace('\0', "\u{fffd}"),
        letter.body.replace('\0', "\u{fffd}"),
        letter.attempts,
        letter.message_id.map(|id| id.replace('\0', "\u{fffd}")),
    )
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
    message_id: Option<&str>,
) -> sqlx::Result<()> {
    let letter = NewDeadLetter {
        job_id: None,
        kind: None,
        queue,
        reason,
        body,
        attempts: 0,
        message_id,
    };
    insert(executor, letter).await.map(|_| ())
}

/// A dead letter as operators see it, with its job's state.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetterRow {
    pub id: Uuid,
    pub job_id: Option<Uuid>,
    pub kind: Option<String>,
    pub queue: String,
    pub reason: String,
    pub attempts: i32,
    /// The AMQP message id it arrived with, if the broker delivered it.
    pub message_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub replayed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub job_status: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    /// The message as it arrived, cut at [`BODY_EXCERPT_CHARS`].
    pub body: String,
    /// The whole body's size, however much of it `body` shows.
    pub body_bytes: i32,
    /// What the body says it is, when it parses as an envelope far enough
    /// to tell (a message that names no job is found by these).
    #[sqlx(skip)]
    pub envelope: Option<EnvelopeFields>,
}

/// The fields of a job envelope that a dead letter's body carried.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EnvelopeFields {
    pub job_id: Option<serde_json::Value>,
    pub kind: Option<serde_json::Value>,
    pub version: Option<serde_json::Value>,
}

/// How much of a dead letter's body a listing shows.
pub const BODY_EXCERPT_CHARS: i32 = 2000;

impl DeadLetterRow {
    fn with_envelope(mut self) -> DeadLetterRow {
        self.envelope = serde_json::from_str::<EnvelopeFields>(&self.body)
            .ok()
            .filter(|e| e.job_id.is_some() || e.kind.is_some());
        self
    }
}

/// Which dead letters by replay: still open, replayed, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    No,
    Yes,
    Either,
}

impl Replayed {
    fn as_str(self) -> &'static str {
        match self {
            Replayed::No => "no",
            Replayed::Yes => "yes",
            Replayed::Either => "either",
        }
    }
}

pub struct DeadLetterFilter<'a> {
    pub kind: Option<&'a str>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only these dead letters (or, as well, the dead letters of these jobs).
    pub ids: &'a [Uuid],
    pub replayed: Replayed,
    pub limit: i64,
    /// Only those older than this dead letter: the cursor of the next page.
    pub before: Option<Uuid>,
}

/// Dead letters, newest first; replayed ones alone come latest replay first.
pub async fn list<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    filter: &DeadLetterFilter<'_>,
) -> sqlx::Result<Vec<DeadLetterRow>> {
    let rows = sqlx::query!(
        r#"select d.id, d.job_id, coalesce(d.kind, j.kind) as kind, d.queue, d.reason, d.attempts,
                d.message_id, d.created_at, d.replayed_at, j.status as "job_status?", j.resource_type, j.resource_id,
                left(d.body, $6) as "body!", octet_length(d.body) as "body_bytes!"
         from dead_letters d left join jobs j on j.id = d.job_id
         where ($1::text is null or coalesce(d.kind, j.kind) = $1)
           and ($2::timestamptz is null or d.created_at >= $2)
           and (cardinality($3::uuid[]) = 0 or d.id = any($3) or d.job_id = any($3))
           and ($4 = 'either' or ($4 = 'yes') = (d.replayed_at is not null))
           and ($7::uuid is null
                or (d.created_at, d.id) < (select c.created_at, c.id from dead_letters c where c.id = $7))
         order by case when $4 = 'yes' then d.replayed_at end desc, d.created_at desc, d.id desc
         limit $5"#,
        filter.kind,
        filter.since,
        filter.ids,
        filter.replayed.as_str(),
        filter.limit,
        BODY_EXCERPT_CHARS,
        filter.before,
    )
    .fetch_all(executor)
    .await?;
    // Built by hand: `envelope` is no column but read from the body.
    let rows = rows.into_iter().map(|r| DeadLetterRow {
        id: r.id,
        job_id: r.job_id,
        kind: r.kind,
        queue: r.queue,
        reason: r.reason,
        attempts: r.attempts,
        message_id: r.message_id,
        created_at: r.created_at,
        replayed_at: r.replayed_at,
        job_status: r.job_status,
        resource_type: r.resource_type,
        resource_id: r.resource_id,
        body: r.body,
        body_bytes: r.body_bytes,
        envelope: None,
    });
    Ok(rows.map(DeadLetterRow::with_envelope).collect())
}

/// Open dead letters per job kind.
pub async fn open_by_kind<'e>(
    executor: impl sqlx::PgExecutor<'e>,
) -> sqlx::Result<Vec<(Option<String>, i64)>> {
    let rows = sqlx::query!(
        r#"select coalesce(d.kind, j.kind) as kind, count(*) as "count!" from dead_letters d
         left join jobs j on j.id = d.job_id
         where d.replayed_at is null group by 1"#,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.count)).collect())
}

/// Marks a dead letter handled; false if another replay got there first.
pub async fn mark_replayed(
    tx: &mut super::Tx<'_>,
    id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "update dead_letters set replayed_at = $2 where id = $1 and replayed_at is null",
        id,
        now,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}
