//! Queue figures per job kind: what the broker holds (ready messages,
//! consumers) next to what the database knows (jobs waiting and running,
//! the oldest waiting job's age, open dead letters).

use chrono::{DateTime, Utc};
use lapin::options::QueueDeclareOptions;
use serde::Serialize;
use sqlx::PgPool;

use crate::broker::topology::Topology;
use crate::job::JobKind;
use crate::settings::Settings;
use crate::store::{dead_letters, jobs, mails};

#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    pub kind: String,
    pub queue: String,
    /// Messages ready on the broker; `None` when it could not be asked.
    pub ready: Option<u32>,
    pub consumers: Option<u32>,
    /// Jobs waiting for an attempt (queued or retrying), per the database;
    /// for `mail.send`, also the mails handed to their process's sender
    /// and not sent yet, which have no job unless they fail.
    pub waiting: i64,
    /// Jobs in an attempt now: deliveries held by workers. Kinds that
    /// run as sets go from queued to succeeded in one transaction and
    /// never count here.
    pub running: i64,
    pub oldest_waiting_secs: Option<i64>,
    pub dead_letters: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuesReport {
    pub at: DateTime<Utc>,
    /// Why the broker's figures are missing, if they are.
    pub broker_error: Option<String>,
    pub queues: Vec<QueueStats>,
}

/// What PostgreSQL knows of one job kind's queue.
#[derive(Debug, Clone)]
pub struct KindFigures {
    pub kind: JobKind,
    pub waiting: i64,
    pub running: i64,
    pub oldest_waiting: Option<DateTime<Utc>>,
    pub dead_letters: i64,
}

/// Every job kind's database figures, and the open dead letters that
/// named no job at all (garbage, unknown ids). Mails handed over in
/// process wait as `mail.send` work, as their jobs would.
pub async fn database_figures(pool: &PgPool) -> sqlx::Result<(Vec<KindFigures>, i64)> {
    let backlog = jobs::backlog_by_kind(pool).await?;
    let (handed_off, oldest_handed_off) = mails::handed_off_backlog(pool).await?;
    let dead = dead_letters::open_by_kind(pool).await?;
    let dead_of = |kind: Option<&str>| {
        dead.iter()
            .find(|(k, _)| k.as_deref() == kind)
            .map_or(0, |(_, n)| *n)
    };
    let kinds = JobKind::ALL
        .iter()
        .map(|&kind| {
            let job = backlog.iter().find(|b| b.kind == kind.as_str());
            let mut figures = KindFigures {
                kind,
                waiting: job.map_or(0, |b| b.waiting),
                running: job.map_or(0, |b| b.running),
                oldest_waiting: job.and_then(|b| b.oldest_waiting),
                dead_letters: dead_of(Some(kind.as_str())),
            };
            if kind == JobKind::MailSend {
                figures.waiting += handed_off;
                figures.oldest_waiting = figures
                    .oldest_waiting
                    .into_iter()
                    .chain(oldest_handed_off)
                    .min();
            }
            figures
        })
        .collect();
    Ok((kinds, dead_of(None)))
}

pub async fn stats(pool: &PgPool, settings: &Settings) -> anyhow::Result<QueuesReport> {
    let topology = Topology::new(&settings.amqp);
    let broker = broker_figures(settings, &topology).await;
    let (kinds, _) = database_figures(pool).await?;
    let now = Utc::now();
    let queues = kinds
        .into_iter()
        .map(|db| {
            let queue = topology.queue(db.kind);
            let figures = broker
                .as_ref()
                .ok()
                .and_then(|f| f.iter().find(|(q, ..)| *q == queue));
            QueueStats {
                kind: db.kind.to_string(),
                ready: figures.map(|f| f.1),
                consumers: figures.map(|f| f.2),
                waiting: db.waiting,
                running: db.running,
                oldest_waiting_secs: db.oldest_waiting.map(|at| (now - at).num_seconds().max(0)),
                dead_letters: db.dead_letters,
                queue,
            }
        })
        .collect();
    Ok(QueuesReport {
        at: now,
        broker_error: broker.err(),
        queues,
    })
}

/// (queue, ready, consumers) per job queue, by passive declaration: it
/// asks without creating anything.
async fn broker_figures(
    settings: &Settings,
    topology: &Topology,
) -> Result<Vec<(String, u32, u32)>, String> {
    let connection = crate::broker::connect(&settings.amqp, "fulfil-queues")
        .await
        .map_err(|e| format!("{e:#}"))?;
    let mut figures = Vec::new();
    for &kind in JobKind::ALL {
        let queue = topology.queue(kind);
        // A failed passive declare closes the channel: one channel each.
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(declared) = channel
            .queue_declare(queue.as_str().into(), passive, Default::default())
            .await
        {
            figures.push((queue, declared.message_count(), declared.consumer_count()));
            let _ = channel.close(200, "done".into()).await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(figures)
}
