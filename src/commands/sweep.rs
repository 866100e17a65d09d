//! `fulfil sweep NAME [--dry-run] [--json]`: one sweep, now, from the
//! command line. The jobs it queues are published by any running relay
//! (`fulfil serve`, `api` or `worker`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use chrono::SecondsFormat;

use crate::cli::SweepArgs;
use crate::clock::Clock;
use crate::settings::Settings;
use crate::sweeps::{SweepReport, SweepRequest, Sweeper, Trigger};

pub async fn run(settings: Settings, args: SweepArgs) -> anyhow::Result<()> {
    let pool = crate::store::prepare(&settings.database).await?;
    let clock = Clock::from_settings(&settings.clock);
    let sweeper = Sweeper::new(pool, Arc::new(settings), clock);
    let request = SweepRequest {
        sweep: args.sweep,
        trigger: Trigger::Cli,
        dry_run: args.dry_run,
        token_id: None,
    };
    let show_progress = !args.json && !args.dry_run && std::io::stderr().is_terminal();
    let report = sweeper
        .run(&request, |done, due| {
            if show_progress && due > 0 {
                eprint!("\r{}: queued jobs for {done}/{due} trials", args.sweep);
                if done == due {
                    eprintln!();
                }
            }
        })
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(())
}

fn print_report(out: &mut impl Write, report: &SweepReport) -> std::io::Result<()> {
    let mode = if report.dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    let now = report.now.to_rfc3339_opts(SecondsFormat::Secs, true);
    writeln!(out, "{} at {now}{mode}", report.sweep)?;
    if report.due == 0 {
        return writeln!(out, "nothing is due");
    }
    for item in &report.items {
        let job = match (report.dry_run, item.job_id) {
            (true, _) => String::new(),
            (false, Some(job)) => format!("  job {job}"),
            (false, None) => "  (a job is already pending)".to_owned(),
        };
        let what = item.entity_type.replace('_', " ");
        writeln!(out, "{what} {}  {}{job}", item.entity_id, item.summary)?;
        for action in &item.actions {
            writeln!(out, "    {action}")?;
        }
    }
    let subjects = report.sweep.subjects();
    if report.dry_run {
        writeln!(out, "{} {subjects} due", report.due)
    } else {
        writeln!(
            out,
            "{} {subjects} due: {} jobs queued, {} already pending",
            report.due, report.published, report.already_queued
        )
    }
}
