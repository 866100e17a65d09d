//! Trials through the API, the real broker and the real workers, at
//! injected instants: each step restarts the app with `clock.now` set
//! (the documented setting) instead of sleeping through days.

use chrono::{DateTime, TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, poll_until, spawn_with, test_settings};

/// The instant every test starts at; trials end 30 days later.
fn t0() -> DateTime<Utc> {
    "2030-03-01T09:00:00Z".parse().unwrap()
}

fn day(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::days(n)
}

struct World {
    portal: String,
    operator: String,
    scheduler: String,
}

/// acme's customer cust-1 with two users, at t0.
async fn world(app: &TestApp) -> World {
    let portal = app.portal_token("acme").await;
    app.put_ok(
        "/v1/customers/cust-1",
        &portal,
        &json!({ "name": "Cust One" }),
    )
    .await;
    for (id, locale) in [("u-1", "en"), ("u-2", "ja")] {
        let user = json!({ "customer_id": "cust-1", "email": format!("{id}@cust.example"),
                           "locale": locale, "name": format!("User {id}") });
        app.put_ok(&format!("/v1/users/{id}"), &portal, &user).await;
    }
    World {
        portal,
        operator: app.token(Role::Operator, None).await,
        scheduler: app.token(Role::Scheduler, None).await,
    }
}

fn new_trial(users: &[&str], numbers: &[&str]) -> Value {
    json!({
        "customer_id": "cust-1",
        "services": ["chat", "meetings"],
        "ends_at": day(30),
        "customer_admin": { "email": "admin@cust.example", "locale": "en" },
        "partner_admin": { "email": "desk@acme.example", "locale": "ja" },
        "user_ids": users,
        "calling_numbers": numbers,
        "settings": { "theme": "dark" },
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post("/v1/trials", token, &Uuid::new_v4().to_string(), body)
        .await
}

async fn create_ok(app: &TestApp, token: &str, body: &Value) -> String {
    let response = create(app, token, body).await;
    let status = response.status();
    let view: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{view}");
    view["id"].as_str().unwrap().to_owned()
}

async fn trial(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get(&format!("/v1/trials/{id}"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn action(app: &TestApp, token: &str, id: &str, action: &str) -> reqwest::Response {
    let path = format!("/v1/trials/{id}/{action}");
    app.post(&path, token, &Uuid::new_v4().to_string(), &json!({}))
        .await
}

async fn sweep(app: &TestApp, token: &str, name: &str, dry_run: bool) -> Value {
    let path = format!("/v1/sweeps/{name}");
    let body = json!({ "dry_run": dry_run });
    let response = app
        .post(&path, token, &Uuid::new_v4().to_string(), &body)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until every job is finished and every mail sent.
async fn settled(app: &TestApp) {
    let open = "select count(*) from jobs where status not in ('succeeded', 'dead')";
    poll_until(
        "all jobs finished",
        || async { json!(app.count(open).await) },
        |open| open == 0,
    )
    .await;
    assert_eq!(app.count("select count(*) from dead_letters").await, 0);
}

async fn mails(app: &TestApp, template: &str) -> i64 {
    let sql =
        format!("select count(*) from mails where template = '{template}' and status = 'sent'");
    app.count(&sql).await
}

async fn user_status(app: &TestApp, token: &str, id: &str) -> String {
    let response = app.get(&format!("/v1/users/{id}"), token).await;
    let user: Value = response.json().await.unwrap();
    user["status"].as_str().unwrap().to_owned()
}

fn at_t0() -> fulfil::settings::Settings {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_lives_through_notices_expiry_grace_purge_and_number_release() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let w = world(&app).await;
    let id = create_ok(
        &app,
        &w.portal,
        &new_trial(&["u-1", "u-2"], &["+81312345678"]),
    )
    .await;
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(
        view["organisation"],
        json!({ "licenses": 4, "admin_roles": 2, "settings": 1, "users": 2, "numbers": 1 })
    );
    assert_eq!(
        sweep(&app, &w.scheduler, "trial-notices", false).await["due"],
        0
    );

    // Six days before the end: the expiring notice, to both admins, once.
    app.travel_to(day(24)).await;
    let report = sweep(&app, &w.scheduler, "trial-notices", false).await;
    assert_eq!(
        (report["due"].as_u64(), report["published"].as_u64()),
        (Some(1), Some(1))
    );
    settled(&app).await;
    assert_eq!(mails(&app, "trial_expiring").await, 2);
    assert_eq!(
        sweep(&app, &w.scheduler, "trial-notices", false).await["due"],
        0
    );

    // The end: expired, grace starts, the expiry notice goes out.
    app.travel_to(day(30) + TimeDelta::hours(1)).await;
    sweep(&app, &w.scheduler, "trial-notices", false).await;
    settled(&app).await;
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(view["grace_ends_at"], json!(day(60)));
    assert_eq!(mails(&app, "trial_expired").await, 2);
    let notices: Vec<(&str, &str)> = view["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(notices, [("expiring", "sent"), ("expired", "sent")]);

    // Grace over: a dry run lists the purge and changes nothing.
    app.travel_to(day(60) + TimeDelta::hours(1)).await;
    let dry = sweep(&app, &w.operator, "trial-purges", true).await;
    assert_eq!(dry["due"], 1);
    assert_eq!(dry["published"], 0);
    let plan = dry["items"][0]["actions"][0].as_str().unwrap();
    assert!(
        plan.contains("delete 4 licenses, 2 admin roles and 1 setting;")
            && plan.contains("move 2 users"),
        "{plan}"
    );
    assert_eq!(trial(&app, &w.portal, &id).await["status"], "expired");
    assert_eq!(
        app.count("select count(*) from jobs where kind = 'trial.purge'")
            .await,
        0
    );

    // The purge: organisation deleted, users moved to free, mailed.
    sweep(&app, &w.scheduler, "trial-purges", false).await;
    settled(&app).await;
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "purged");
    assert_eq!(
        view["organisation"],
        json!({ "licenses": 0, "admin_roles": 0, "settings": 0, "users": 0, "numbers": 0 })
    );
    for user in ["u-1", "u-2"] {
        assert_eq!(user_status(&app, &w.portal, user).await, "moved_to_free");
    }
    assert_eq!(mails(&app, "trial_purged").await, 2);
    let purge = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "trial.purged")
        .expect("the purge is audited");
    assert_eq!(
        purge["detail"]["deleted"],
        json!({ "licenses": 4, "admin_roles": 2, "settings": 1 })
    );
    assert_eq!(view["calling_numbers"][0]["status"], "held");
    assert_eq!(
        action(&app, &w.portal, &id, "conversions").await.status(),
        409,
        "nothing converts a purged trial"
    );

    // The number stays reserved for 15 days, then is released.
    let mut second = new_trial(&[], &["+81312345678"]);
    second["ends_at"] = json!(day(90));
    assert_eq!(create(&app, &w.portal, &second).await.status(), 409);
    app.travel_to(day(75) + TimeDelta::hours(2)).await;
    assert_eq!(
        sweep(&app, &w.scheduler, "number-releases", false).await["due"],
        1
    );
    settled(&app).await;
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["calling_numbers"][0]["status"], "released");
    create_ok(&app, &w.portal, &second).await;

    let mail_files = app.mail_files();
    assert_eq!(mail_files.len(), 6, "2 expiring, 2 expired, 2 purged");
    assert!(mail_files.iter().any(|m| m.contains(&id)));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_run_twice_or_a_job_run_twice_sends_no_second_notice() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let w = world(&app).await;
    let id = create_ok(&app, &w.portal, &new_trial(&["u-1"], &[])).await;
    app.travel_to(day(25)).await;

    let (first, second) = tokio::join!(
        sweep(&app, &w.scheduler, "trial-notices", false),
        sweep(&app, &w.operator, "trial-notices", false),
    );
    settled(&app).await;
    let queued = first["published"].as_u64().unwrap() + second["published"].as_u64().unwrap();
    assert!(queued >= 1, "{first} {second}");
    // A copy of the job, as a redelivery or a replayed dead letter would be.
    let mut tx = app.pool.begin().await.unwrap();
    let job = fulfil::store::jobs::NewJob {
        kind: JobKind::TrialNotices,
        payload: json!({ "trial_id": id }),
        partner_id: None,
        token_id: None,
        resource_type: "trial",
        resource_id: id.parse().unwrap(),
        sla_deadline: None,
    };
    fulfil::store::jobs::enqueue(&mut tx, job, 3, day(25))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sweep(&app, &w.scheduler, "trial-notices", false).await;
    settled(&app).await;

    assert_eq!(mails(&app, "trial_expiring").await, 2, "one per admin");
    assert_eq!(app.mail_files().len(), 2);
    assert_eq!(app.count("select count(*) from trial_notices").await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_missed_days_catches_up_without_stale_notices() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let w = world(&app).await;
    let id = create_ok(&app, &w.portal, &new_trial(&["u-1"], &[])).await;

    // No sweep ran for the whole notice window; three days past the end:
    app.travel_to(day(33)).await;
    let dry = sweep(&app, &w.operator, "trial-notices", true).await;
    assert_eq!(
        dry["items"][0]["actions"],
        json!([
            "expire (grace starts)",
            "skip the expiring notice (its moment passed)",
            "send the expired notice to both admins"
        ])
    );
    sweep(&app, &w.scheduler, "trial-notices", false).await;
    settled(&app).await;

    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(mails(&app, "trial_expiring").await, 0, "never sent late");
    assert_eq!(mails(&app, "trial_expired").await, 2);
    assert_eq!(
        sweep(&app, &w.scheduler, "trial-notices", false).await["due"],
        0
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_in_grace_reactivates_and_the_old_purge_date_passes_harmlessly() {
    let mut settings = at_t0();
    settings.trial.max_extensions = 1;
    let mut app = spawn_with(settings, Components::everything()).await;
    let w = world(&app).await;
    let id = create_ok(&app, &w.portal, &new_trial(&["u-1"], &[])).await;
    app.travel_to(day(40)).await;
    sweep(&app, &w.scheduler, "trial-notices", false).await;
    settled(&app).await;
    assert_eq!(trial(&app, &w.portal, &id).await["status"], "expired");

    let response = action(&app, &w.portal, &id, "extensions").await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "active");
    let ends_at: DateTime<Utc> = view["ends_at"].as_str().unwrap().parse().unwrap();
    let after_now = ends_at - day(70);
    assert!(
        after_now >= TimeDelta::zero() && after_now < TimeDelta::minutes(1),
        "30 days after now (day 40), the later of now and the end: {ends_at}"
    );
    let again = action(&app, &w.portal, &id, "extensions").await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:trial-extension-limit");

    app.travel_to(day(61)).await;
    assert_eq!(
        sweep(&app, &w.scheduler, "trial-purges", false).await["due"],
        0
    );
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["organisation"]["licenses"], 2);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_arriving_while_the_purge_job_waits_wins() {
    // No purge worker yet: the job waits in its queue.
    let mut settings = at_t0();
    let mut kinds = JobKind::ALL.to_vec();
    kinds.retain(|k| *k != JobKind::TrialPurge);
    let mut components = Components::everything();
    components.workers = kinds;
    let mut app = spawn_with(settings.clone(), components).await;
    let w = world(&app).await;
    let id = create_ok(
        &app,
        &w.portal,
        &new_trial(&["u-1", "u-2"], &["+81399990000"]),
    )
    .await;
    app.travel_to(day(61)).await;
    assert_eq!(
        sweep(&app, &w.scheduler, "trial-purges", false).await["published"],
        1
    );

    let converted = action(&app, &w.portal, &id, "conversions").await;
    assert_eq!(converted.status(), 200);

    settings.clock.now = Some(day(61));
    let mut purger = spawn_with(settings, Components::workers(vec![JobKind::TrialPurge])).await;
    poll_until(
        "the purge job ran",
        || async {
            json!(
                app.count(
                    "select count(*) from jobs where kind = 'trial.purge' and status = 'succeeded'"
                )
                .await
            )
        },
        |done| done == 1,
    )
    .await;
    let view = trial(&app, &w.portal, &id).await;
    assert_eq!(view["status"], "converted");
    assert_eq!(
        view["organisation"],
        json!({ "licenses": 4, "admin_roles": 2, "settings": 1, "users": 2, "numbers": 1 })
    );
    assert_eq!(user_status(&app, &w.portal, "u-1").await, "active");
    assert_eq!(mails(&app, "trial_purged").await, 0);
    purger.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_racing_purges_never_purge_a_converted_trial() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let w = world(&app).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let user = format!("r-{i}");
        let body = json!({ "customer_id": "cust-1", "email": format!("{user}@cust.example") });
        app.put_ok(&format!("/v1/users/{user}"), &w.portal, &body)
            .await;
        ids.push(create_ok(&app, &w.portal, &new_trial(&[&user], &[])).await);
    }
    app.travel_to(day(61)).await;

    let conversions = futures::future::join_all(
        ids.iter()
            .map(|id| action(&app, &w.portal, id, "conversions")),
    );
    let (responses, report) = tokio::join!(
        conversions,
        sweep(&app, &w.scheduler, "trial-purges", false)
    );
    settled(&app).await;

    assert!(report["due"].as_u64().unwrap() <= 8);
    for (id, response) in ids.iter().zip(responses) {
        let view = trial(&app, &w.portal, id).await;
        match response.status().as_u16() {
            200 => {
                assert_eq!(view["status"], "converted", "{view}");
                assert_eq!(view["organisation"]["licenses"], 2, "{view}");
            }
            409 => assert_eq!(view["status"], "purged", "{view}"),
            other => panic!("conversion answered {other}"),
        }
    }
    let purged = app
        .count("select count(*) from trials where status = 'purged'")
        .await;
    assert_eq!(mails(&app, "trial_purged").await, purged);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_trials_are_refused_with_every_field_named_and_nothing_stored() {
    let app = spawn_with(at_t0(), Components::api_only()).await;
    let w = world(&app).await;
    let mut body = new_trial(&["u-1"], &["12"]);
    body["services"] = json!(["Chat!"]);
    body["ends_at"] = json!(t0() - TimeDelta::days(1));
    body["customer_admin"]["email"] = json!("not-mail");
    let response = create(&app, &w.portal, &body).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "services[0]",
            "ends_at",
            "customer_admin.email",
            "calling_numbers[0]"
        ]
    );

    let stranger = new_trial(&["u-9"], &[]);
    let response = create(&app, &w.portal, &stranger).await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "user_ids[0]");

    let other = app.portal_token("globex").await;
    assert_eq!(
        create(&app, &other, &new_trial(&[], &[])).await.status(),
        404
    );
    assert_eq!(app.count("select count(*) from trials").await, 0);
    assert_eq!(app.count("select count(*) from trial_numbers").await, 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_at_a_moved_clock_is_carried_out_at_that_instant_by_a_worker_on_another() {
    // Arrange: the workers' clock is at t0; the trial ends at day 30.
    let app = spawn_with(at_t0(), Components::everything()).await;
    let w = world(&app).await;
    create_ok(&app, &w.portal, &new_trial(&[], &[])).await;

    // Act: an operator sweeps from a shell whose clock says day 24, when
    // the "ends in 7 days" notice is due (the drill SPEC §3.10 describes).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["sweep", "trial-notices"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(crate::support::settings_env(&app.settings))
        .env("FULFIL__CLOCK__NOW", day(24).to_rfc3339())
        .output()
        .expect("fulfil sweep runs");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 job queued"),
        "{output:?}"
    );
    settled(&app).await;

    // Assert: the job did what the sweep said, at the sweep's instant.
    assert_eq!(
        app.count(
            "select count(*) from trial_notices where kind = 'expiring' and outcome = 'sent'"
        )
        .await,
        1,
        "the notice the sweep found due was sent, not skipped as not due yet"
    );
    assert_eq!(
        mails(&app, "trial_expiring").await,
        2,
        "customer and partner admin"
    );
    app.cleanup().await;
}
