//! `fulfil sweep NAME [--dry-run] [--json]`: one sweep, now, from the
//! command line. The jobs it queues are published by any running relay
//! (`fulfil serve`, `api` or `worker`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use chrono::SecondsFormat;

use crate::cli::SweepArgs;
use crate::clock::Clock;
use crate::mail::queue::Mailer;
use crate::settings::Settings;
use crate::sweeps::{SweepReport, SweepRequest, Sweeper, Trigger, counted};

pub async fn run(settings: Settings, args: SweepArgs) -> anyhow::Result<()> {
    let pool = crate::store::open_existing(&settings.database).await?;
    let clock = Clock::from_settings(&settings.clock);
    let settings = Arc::new(settings);
    let mailer = Mailer::new(settings.clone());
    let sweeper = Sweeper::new(pool, settings, clock, mailer);
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
    let due = counted(report.due, report.sweep.subject());
    if report.dry_run {
        writeln!(out, "{due} due")
    } else {
        writeln!(
            out,
            "{due} due: {} queued, {} already pending",
            counted(report.published, "job"),
            report.already_queued
        )
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::sweeps::{Sweep, SweepItem};

    fn report(sweep: Sweep, due: usize, published: usize) -> SweepReport {
        let item = || SweepItem {
            entity_type: "license_request",
            entity_id: Uuid::nil(),
            summary: "open".into(),
            actions: vec!["mail ops@fulfil.localhost: at risk".into()],
            job_id: Some(Uuid::nil()),
        };
        SweepReport {
            run_id: Some(Uuid::nil()),
            sweep,
            dry_run: false,
            now: "2030-01-01T00:00:00Z".parse().unwrap(),
            due,
            published,
            already_queued: due - published,
            items: (0..due).map(|_| item()).collect(),
        }
    }

    fn last_line(report: &SweepReport) -> String {
        let mut out = Vec::new();
        print_report(&mut out, report).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_summary_counts_in_words_that_agree() {
        assert_eq!(
            last_line(&report(Sweep::SlaWatch, 1, 1)),
            "1 license request due: 1 job queued, 0 already pending"
        );
        assert_eq!(
            last_line(&report(Sweep::TrialNotices, 3, 2)),
            "3 trials due: 2 jobs queued, 1 already pending"
        );
        assert_eq!(
            last_line(&report(Sweep::TrialPurges, 0, 0)),
            "nothing is due"
        );
    }
}
