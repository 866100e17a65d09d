//! The operators' surface against the real services: a mail that cannot
//! be sent dies, shows up in `fulfil queues`, `fulfil dead-letters list`
//! and the ops API, and a replay (after the cause is fixed) sends it once,
//! audited with the operator's token.

use fulfil::app::Components;
use fulfil::settings::MailTransportKind;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    DeadMail, TestApp, a_dead_registration_mail, settings_env, spawn_with, test_settings, wait_for,
};

fn command(app: &TestApp, args: &[&str]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(settings_env(&app.settings))
        .output()
        .expect("fulfil runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

async fn replay(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app
        .post(
            "/v1/ops/dead-letters/replay",
            token,
            &Uuid::new_v4().to_string(),
            body,
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mail_is_listed_counted_and_replayed_once_after_the_fix() {
    let DeadMail {
        mut app,
        mut settings,
        portal,
        operator,
    } = a_dead_registration_mail().await;

    let listed: Value = app
        .get("/v1/ops/dead-letters", &operator)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["kind"], "mail.send", "{listed}");
    assert_eq!(listed[0]["job_status"], "dead");
    assert_eq!(app.get("/v1/ops/dead-letters", &portal).await.status(), 403);
    let queues: Value = app
        .get("/v1/ops/queues", &operator)
        .await
        .json()
        .await
        .unwrap();
    let mail_queue = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "mail.send")
        .unwrap()
        .clone();
    assert_eq!(mail_queue["dead_letters"], 1, "{queues}");
    assert!(mail_queue["consumers"].as_u64().unwrap() >= 1, "{queues}");

    let from_cli = command(&app, &["dead-letters", "list", "--json"]);
    assert_eq!(from_cli[0]["id"], listed[0]["id"]);
    let queues_cli = command(&app, &["queues", "--json"]);
    assert!(
        queues_cli["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["kind"] == "mail.send" && q["dead_letters"] == 1)
    );

    let dry_cli = command(
        &app,
        &[
            "dead-letters",
            "replay",
            "--kind",
            "mail.send",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry_cli["items"][0]["outcome"], "would_replay", "{dry_cli}");
    let dry = replay(
        &app,
        &operator,
        &json!({ "kind": "mail.send", "dry_run": true }),
    )
    .await;
    assert_eq!(dry["items"][0]["outcome"], "would_replay", "{dry}");
    assert_eq!(
        app.count("select count(*) from dead_letters where replayed_at is null")
            .await,
        1
    );

    // The fix: mail goes to files now. Then the replay.
    app.stop().await;
    settings.mail.transport = MailTransportKind::File;
    let fixed = spawn_with(settings, Components::everything()).await;
    let report = replay(&fixed, &operator, &json!({ "kind": "mail.send" })).await;
    assert_eq!(
        (report["replayed"].as_u64(), report["skipped"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );
    let sent = wait_for(std::time::Duration::from_secs(30), || async {
        fixed
            .count("select count(*) from mails where status = 'sent'")
            .await
            == 1
    })
    .await;
    assert!(sent, "the replayed mail was sent");
    assert_eq!(fixed.mail_files().len(), 1);
    let again = replay(&fixed, &operator, &json!({ "kind": "mail.send" })).await;
    assert_eq!(again["replayed"], 0, "nothing left to replay");
    let audited = fixed
        .count("select count(*) from audit_events where action = 'dead_letter.replay' and token_id is not null")
        .await;
    assert_eq!(audited, 1);
    fixed.cleanup().await;
}

/// Follows a list's `Link: <…>; rel="next"` from `first` to its end; each
/// page as the `field` of its rows.
async fn follow_pages(app: &TestApp, token: &str, first: &str, field: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let response = app.get(&path, token).await;
        assert_eq!(response.status(), 200);
        next = response
            .headers()
            .get("link")
            .map(|link| link.to_str().unwrap().to_owned())
            .map(|link| {
                link.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            });
        let page: Vec<Value> = response.json().await.unwrap();
        pages.push(
            page.iter()
                .map(|row| row[field].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        assert!(pages.len() <= 4, "the cursor ends");
    }
    pages
}

#[tokio::test]
async fn the_audit_trail_is_newest_first_and_pages_with_a_cursor() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let operator = app.token(Role::Operator, None).await;
    for n in 0..5 {
        sqlx::query(
            "insert into audit_events (at, entity_type, entity_id, action, detail)
             values (now(), 'test', $1, $2, '{}')",
        )
        .bind(Uuid::now_v7())
        .bind(format!("step.{n}"))
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let pages = follow_pages(&app, &operator, "/v1/ops/audit?limit=2", "action").await;

    assert_eq!(
        pages,
        [
            vec!["step.4", "step.3"],
            vec!["step.2", "step.1"],
            vec!["step.0"]
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn dead_letters_are_newest_first_and_page_with_a_cursor() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let operator = app.token(Role::Operator, None).await;
    for n in 0..5 {
        fulfil::store::dead_letters::insert_unattached(
            &app.pool,
            "test.queue",
            &format!("garbage {n}"),
            "not json",
            None,
        )
        .await
        .unwrap();
    }

    let pages = follow_pages(&app, &operator, "/v1/ops/dead-letters?limit=2", "reason").await;

    assert_eq!(
        pages,
        [
            vec!["garbage 4", "garbage 3"],
            vec!["garbage 2", "garbage 1"],
            vec!["garbage 0"]
        ]
    );
    app.cleanup().await;
}
