//! `fulfil queues` and `fulfil dead-letters list|replay`: the operators'
//! commands, straight against the database and the broker.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::SecondsFormat;

use crate::cli::{DeadLettersCommand, QueuesArgs};
use crate::clock::Clock;
use crate::job::JobKind;
use crate::ops::{queues, replay};
use crate::settings::Settings;
use crate::store::dead_letters::{self, DeadLetterFilter, Replayed};

pub async fn queues(settings: Settings, args: QueuesArgs) -> anyhow::Result<()> {
    let pool = crate::store::open_existing(&settings.database).await?;
    loop {
        let report = queues::stats(&pool, &settings).await?;
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                write!(out, "\x1b[2J\x1b[H")?; // clear the screen between refreshes
            }
            print_queues(&mut out, &report)?;
        }
        drop(out);
        let Some(seconds) = args.watch else {
            return Ok(());
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(seconds.max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_queues(out: &mut impl Write, report: &queues::QueuesReport) -> std::io::Result<()> {
    let at = report.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    writeln!(out, "queues at {at}")?;
    if let Some(error) = &report.broker_error {
        writeln!(
            out,
            "broker unreachable ({error}): ready and consumers unknown"
        )?;
    }
    writeln!(
        out,
        "{:<22} {:>7} {:>9} {:>8} {:>8} {:>12} {:>6}",
        "KIND", "READY", "CONSUMERS", "WAITING", "RUNNING", "OLDEST", "DEAD"
    )?;
    let figure = |v: Option<u32>| v.map_or("?".to_owned(), |v| v.to_string());
    for q in &report.queues {
        let oldest = q.oldest_waiting_secs.map_or("-".to_owned(), human_age);
        writeln!(
            out,
            "{:<22} {:>7} {:>9} {:>8} {:>8} {:>12} {:>6}",
            q.kind,
            figure(q.ready),
            figure(q.consumers),
            q.waiting,
            q.running,
            oldest,
            q.dead_letters
        )?;
    }
    Ok(())
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn check_kind(kind: &Option<String>) -> anyhow::Result<()> {
    if let Some(kind) = kind
        && JobKind::parse(kind).is_none()
    {
        anyhow::bail!(
            "unknown job kind {kind:?}; the kinds are {}",
            crate::workers::kind_list()
        );
    }
    Ok(())
}

pub async fn dead_letters(settings: Settings, command: DeadLettersCommand) -> anyhow::Result<()> {
    let pool = crate::store::open_existing(&settings.database).await?;
    let mut out = std::io::stdout().lock();
    match command {
        DeadLettersCommand::List {
            kind,
            since,
            limit,
            json,
        } => {
            check_kind(&kind)?;
            let filter = DeadLetterFilter {
                kind: kind.as_deref(),
                since,
                ids: &[],
                replayed: Replayed::No,
                limit: limit.clamp(1, 10_000),
                before: None,
            };
            let letters = dead_letters::list(&pool, &filter).await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &letters)?;
                writeln!(out)?;
                return Ok(());
            }
            if letters.is_empty() {
                writeln!(out, "no dead letters")?;
            }
            for d in &letters {
                writeln!(
                    out,
                    "{}  {}  {}  attempts {}  job {}",
                    d.id,
                    d.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    d.kind.as_deref().unwrap_or("(not a job)"),
                    d.attempts,
                    d.job_id.map_or("-".to_owned(), |j| j.to_string()),
                )?;
                writeln!(out, "    {}", d.reason)?;
                if d.job_id.is_none() {
                    // Never a job: what it claims to be and what arrived.
                    if let Some(message_id) = &d.message_id {
                        writeln!(out, "    message id: {}", message_id.escape_debug())?;
                    }
                    if let Some(envelope) = &d.envelope {
                        let field = |v: &Option<serde_json::Value>| {
                            v.as_ref().map_or("-".to_owned(), |v| v.to_string())
                        };
                        writeln!(
                            out,
                            "    envelope: job_id {}  kind {}  version {}",
                            field(&envelope.job_id),
                            field(&envelope.kind),
                            field(&envelope.version)
                        )?;
                    }
                    let shown: String = d.body.chars().take(200).collect();
                    writeln!(
                        out,
                        "    body ({} bytes{}): {}",
                        d.body_bytes,
                        if shown.len() < d.body_bytes as usize {
                            ", cut"
                        } else {
                            ""
                        },
                        shown.escape_debug()
                    )?;
                }
            }
        }
        DeadLettersCommand::Replay {
            kind,
            ids,
            dry_run,
            rate,
            json,
        } => {
            check_kind(&kind)?;
            anyhow::ensure!(
                kind.is_some() || !ids.is_empty(),
                "name what to replay: --kind KIND and/or --id ID (repeatable)"
            );
            let clock = Clock::from_settings(&settings.clock);
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let request = replay::ReplayRequest {
                kind: kind.as_deref(),
                ids: &ids,
                dry_run,
                per_second: rate,
                token_id: None,
                actor: format!("cli:{user}"),
            };
            let show_progress = !json && std::io::stderr().is_terminal();
            let report = replay::replay(
                &pool,
                settings.jobs.max_attempts,
                &request,
                || clock.now(),
                |done, total| {
                    if show_progress {
                        eprint!("\rreplaying {done}/{total}");
                        if done == total {
                            eprintln!();
                        }
                    }
                },
            )
            .await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
                return Ok(());
            }
            for item in &report.items {
                writeln!(
                    out,
                    "{}  {}  {}: {}",
                    item.dead_letter_id,
                    item.kind.as_deref().unwrap_or("(not a job)"),
                    item.outcome,
                    item.note
                )?;
            }
            let verb = if dry_run { "would replay" } else { "replayed" };
            writeln!(
                out,
                "{verb} {}, skipped {}",
                report.replayed, report.skipped
            )?;
        }
    }
    Ok(())
}
