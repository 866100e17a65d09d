//! SPEC §3.4: cron sweeps run once per schedule across scheduler
//! replicas. Two real `fulfil scheduler` processes fire the notices sweep
//! every second against one database; their logs show that both fired
//! each tick and exactly one ran it, and the trial gets one notice; runs
//! older than `scheduler.keep_runs` are pruned.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use fulfil::app::Components;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use support::{spawn_process_with, spawn_with, test_settings, wait_for};
use uuid::Uuid;

/// Per tick: how many replicas fired it, and how many ran it.
fn firings(logs: &[String]) -> BTreeMap<String, (u32, u32)> {
    let mut ticks = BTreeMap::new();
    for line in logs.iter().flat_map(|log| log.lines()) {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["sweep"] != "trial-notices" || fields["claimed"].is_null() {
            continue;
        }
        let tick = fields["tick"].as_str().unwrap().to_owned();
        let counts: &mut (u32, u32) = ticks.entry(tick).or_default();
        counts.0 += 1;
        counts.1 += u32::from(fields["claimed"] == true);
    }
    ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_each_tick_once() {
    // The API and the workers in-process; the schedulers as two processes.
    let mut settings = test_settings();
    let app = spawn_with(settings.clone(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    app.put_ok("/v1/customers/cust-1", &portal, &json!({}))
        .await;
    let trial = json!({
        "customer_id": "cust-1",
        "services": ["chat"],
        "ends_at": Utc::now() + TimeDelta::days(3),
        "customer_admin": { "email": "admin@cust.example" },
        "partner_admin": { "email": "desk@acme.example" },
    });
    let response = app
        .post("/v1/trials", &portal, &Uuid::new_v4().to_string(), &trial)
        .await;
    assert_eq!(response.status(), 201);

    // Rows of an earlier life: past `scheduler.keep_runs` (30 days) a
    // scheduled run is pruned, a manual one is kept, a younger one stays.
    sqlx::query(
        "insert into sweep_runs (id, sweep, tick, trigger, replica, started_at, finished_at)
         values (gen_random_uuid(), 'trial-notices', now() - interval '31 days', 'schedule', 'old', now() - interval '31 days', now() - interval '31 days'),
                (gen_random_uuid(), 'trial-purges', now() - interval '29 days', 'schedule', 'old', now() - interval '29 days', now() - interval '29 days'),
                (gen_random_uuid(), 'trial-notices', null, 'cli', 'old', now() - interval '90 days', now() - interval '90 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    settings.scheduler.enabled = true;
    settings.scheduler.trial_notices = "* * * * * *".into();
    let dir = std::env::temp_dir().join(format!("fulfil-scheduler-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = [("FULFIL_LOG_FORMAT", "json"), ("RUST_LOG", "info")];
    let mut schedulers: Vec<_> = (0..2)
        .map(|i| {
            let log = std::fs::File::create(dir.join(format!("scheduler-{i}.log"))).unwrap();
            spawn_process_with(&settings, &["scheduler"], &env, log)
        })
        .collect();

    let ran_five = wait_for(Duration::from_secs(60), || async {
        app.count("select count(*) from sweep_runs where sweep = 'trial-notices' and trigger = 'schedule' and finished_at is not null")
            .await
            >= 5
    })
    .await;
    for scheduler in &mut schedulers {
        kill(Pid::from_raw(scheduler.0.id() as i32), Signal::SIGTERM).unwrap();
        scheduler.0.wait().unwrap();
    }
    assert!(ran_five, "five ticks ran within a minute");

    let logs: Vec<String> = (0..2)
        .map(|i| std::fs::read_to_string(dir.join(format!("scheduler-{i}.log"))).unwrap())
        .collect();
    let ticks = firings(&logs);
    let both_fired = ticks.values().filter(|(fired, _)| *fired == 2).count();
    assert!(both_fired >= 3, "both replicas fired most ticks: {ticks:?}");
    for (tick, (fired, ran)) in &ticks {
        assert_eq!(
            *ran, 1,
            "tick {tick} fired {fired} times and ran {ran} times"
        );
    }
    let runs = app
        .count("select count(*) from sweep_runs where sweep = 'trial-notices' and trigger = 'schedule'")
        .await;
    assert_eq!(
        runs as usize,
        ticks.len(),
        "one run row per tick, and the 31-day-old one pruned"
    );
    assert_eq!(
        app.count("select count(*) from sweep_runs where replica = 'old'")
            .await,
        2,
        "the 29-day-old scheduled run and the manual run are kept"
    );

    // Ticks kept firing; the trial got one notice job and one mail per admin.
    let mailed = wait_for(Duration::from_secs(30), || async {
        app.count(
            "select count(*) from mails where template = 'trial_expiring' and status = 'sent'",
        )
        .await
            == 2
    })
    .await;
    assert!(mailed, "both admins were mailed");
    assert_eq!(
        app.count("select count(*) from jobs where kind = 'trial.notices'")
            .await,
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}

/// `fulfil sweep NAME [--dry-run] [--json]` at an injected instant.
fn sweep_command(settings: &fulfil::settings::Settings, args: &[&str], now: &str) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .arg("sweep")
        .args(args)
        .arg("--json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(support::settings_env(settings))
        .env("FULFIL__CLOCK__NOW", now)
        .output()
        .expect("fulfil sweep runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_command_dry_runs_then_queues_each_trial_once() {
    let mut settings = test_settings();
    settings.clock.now = Some("2030-03-01T09:00:00Z".parse().unwrap());
    let app = spawn_with(settings.clone(), Components::api_only()).await;
    let portal = app.portal_token("acme").await;
    app.put_ok("/v1/customers/cust-1", &portal, &json!({}))
        .await;
    let trial = json!({
        "customer_id": "cust-1",
        "services": ["chat"],
        "ends_at": "2030-03-31T09:00:00Z",
        "customer_admin": { "email": "admin@cust.example" },
        "partner_admin": { "email": "desk@acme.example" },
    });
    let created = app
        .post("/v1/trials", &portal, &Uuid::new_v4().to_string(), &trial)
        .await;
    assert_eq!(created.status(), 201);
    let after_grace = "2030-05-01T00:00:00Z";

    let dry = sweep_command(&settings, &["trial-purges", "--dry-run"], after_grace);
    assert_eq!(
        (dry["due"].as_u64(), dry["published"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        app.count("select count(*) from jobs").await,
        0,
        "a dry run queues nothing"
    );

    let real = sweep_command(&settings, &["trial-purges"], after_grace);
    assert_eq!(real["published"], 1);
    let again = sweep_command(&settings, &["trial-purges"], after_grace);
    assert_eq!(
        (
            again["published"].as_u64(),
            again["already_queued"].as_u64()
        ),
        (Some(0), Some(1)),
        "the pending job is not queued twice"
    );
    app.cleanup().await;
}
