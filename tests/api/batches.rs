//! Jobs of one kind share a transaction under load, as a set (a few
//! statements for all) or each in its own savepoint: a failing job rolls
//! back its own writes and nothing else.

use std::time::Duration;

use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::settings::Settings;

use crate::support::*;

#[tokio::test]
async fn a_batch_commits_its_jobs_together_and_a_failing_job_rolls_back_alone() {
    // Arrange: a backlog published before any worker runs. Two attempt
    // slots for twelve deliveries, so the deliveries must share them.
    let mut settings = test_settings();
    settings.database.max_connections = 4;
    settings.jobs.batch_size = 8;
    let api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    let mut orders = Vec::new();
    for _ in 0..12 {
        let accepted = api.order(&token, &new_order("virtual", 2)).await;
        orders.push(accepted["order_id"].as_str().unwrap().to_owned());
    }
    // One order's activation fails after its keys were written: the set
    // statement fails as a whole, and its jobs run again in savepoints.
    let doomed = orders[5].clone();
    let refuse = format!(
        "create function refuse_activation() returns trigger language plpgsql as $$
         begin
             if new.id = '{doomed}' and new.status = 'active' then
                 raise exception 'refused by the test' using errcode = '23514';
             end if;
             return new;
         end $$;
         create trigger refuse_activation before update on license_orders
             for each row execute function refuse_activation();"
    );
    sqlx::raw_sql(&refuse).execute(&api.pool).await.unwrap();
    // Act: the backlog reaches the broker before any worker runs.
    let mut worker = publish_then_work(api, &settings, vec![JobKind::LicenseNew]).await;

    // Assert
    let settled = wait_for(Duration::from_secs(30), || async {
        worker
            .count("select count(*) from jobs where kind = 'license.new' and status in ('succeeded', 'dead')")
            .await
            == 12
    })
    .await;
    assert!(settled, "every job of the backlog settled");
    let dead: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select resource_id from jobs where kind = 'license.new' and status = 'dead'",
    )
    .fetch_all(&worker.pool)
    .await
    .unwrap();
    assert_eq!(dead, [doomed.parse::<uuid::Uuid>().unwrap()]);
    let written_for_doomed = worker
        .count(&format!(
            "select count(*) from licenses where order_id = '{doomed}'
             and (status <> 'pending' or key is not null)"
        ))
        .await;
    assert_eq!(
        written_for_doomed, 0,
        "the failing job's keys were rolled back with it"
    );
    assert_eq!(
        worker
            .count("select count(*) from licenses where status = 'issued'")
            .await,
        22,
        "the other eleven orders got their two keys each"
    );
    // Rows written by one transaction share its id (xmin).
    let transactions = worker
        .count(
            "select count(distinct xmin::text) from jobs
             where kind = 'license.new' and status = 'succeeded'",
        )
        .await;
    assert!(
        transactions < 11,
        "eleven jobs succeeded in {transactions} transactions: some shared one"
    );
    worker.stop().await;
    cleanup(&settings).await;
}

/// Waits until the API's backlog is on the broker, stops the API, and
/// starts workers of `kinds` (the act of these tests).
async fn publish_then_work(mut api: TestApp, settings: &Settings, kinds: Vec<JobKind>) -> TestApp {
    let published = wait_for(Duration::from_secs(20), || async {
        api.count("select count(*) from outbox").await == 0
    })
    .await;
    assert!(published, "the backlog is on the broker");
    api.stop().await;
    spawn_with(settings.clone(), Components::workers(kinds)).await
}

/// A job of the backlog that names nothing: what it would work on does
/// not exist.
async fn enqueue_ghost(api: &TestApp, kind: JobKind, payload: serde_json::Value) {
    let mut tx = api.pool.begin().await.unwrap();
    let job = fulfil::store::jobs::NewJob {
        kind,
        payload,
        partner_id: Some("acme"),
        token_id: None,
        resource_type: "ghost",
        resource_id: uuid::Uuid::now_v7(),
        sla_deadline: None,
    };
    fulfil::store::jobs::enqueue(&mut tx, job, 1, chrono::Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_set_of_jobs_shares_its_statements_and_a_job_that_cannot_run_fails_alone() {
    // Arrange: twelve orders and two ghosts (a new-order job whose order
    // does not exist, a mail job whose mail does not), all on the broker
    // before any worker runs.
    let mut settings = test_settings();
    settings.database.max_connections = 4;
    settings.jobs.batch_size = 16;
    let api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    for _ in 0..12 {
        api.order(&token, &new_order("virtual", 2)).await;
    }
    let ghost =
        serde_json::json!({ "order_id": uuid::Uuid::now_v7(), "request_id": uuid::Uuid::now_v7() });
    enqueue_ghost(&api, JobKind::LicenseNew, ghost).await;
    let ghost_mail = serde_json::json!({ "mail_id": uuid::Uuid::now_v7() });
    enqueue_ghost(&api, JobKind::MailSend, ghost_mail).await;
    // Act: the backlog reaches the broker before any worker runs.
    let mut worker =
        publish_then_work(api, &settings, vec![JobKind::LicenseNew, JobKind::MailSend]).await;

    // Assert: the orders' mails are this process's own to send, with no
    // job; the ghost mail's job is the only mail job.
    let settled = wait_for(Duration::from_secs(30), || async {
        worker
            .count("select count(*) from jobs where status in ('succeeded', 'dead')")
            .await
            == 14
            && worker
                .count("select count(*) from mails where status = 'sent'")
                .await
                == 12
    })
    .await;
    assert!(
        settled,
        "every job settled (13 issuing, 1 mailing) and 12 mails sent"
    );
    let dead: Vec<String> =
        sqlx::query_scalar("select kind from jobs where status = 'dead' order by kind")
            .fetch_all(&worker.pool)
            .await
            .unwrap();
    assert_eq!(dead, ["license.new", "mail.send"], "only the ghosts died");
    let errors: Vec<String> = sqlx::query_scalar(
        "select a.error from job_attempts a join jobs j on j.id = a.job_id where j.status = 'dead'",
    )
    .fetch_all(&worker.pool)
    .await
    .unwrap();
    assert!(
        errors.iter().all(|e| e.contains("does not exist")),
        "{errors:?}"
    );
    assert_eq!(
        worker
            .count("select count(*) from license_orders where status = 'active'")
            .await,
        12
    );
    assert_eq!(worker.mail_files().len(), 12, "one mail per order, sent");
    // A row written inside a savepoint carries the savepoint's own
    // transaction id (xmin): keys issued job by job would show one per
    // order, keys issued as a set share theirs.
    let issuing_statements = worker
        .count("select count(distinct xmin::text) from licenses where status = 'issued'")
        .await;
    assert!(
        issuing_statements < 12,
        "24 keys of 12 orders were written by {issuing_statements} set statements"
    );
    let sending_statements = worker
        .count("select count(distinct xmin::text) from mails where status = 'sent'")
        .await;
    assert!(
        sending_statements < 12,
        "12 mails were marked sent by {sending_statements} batch statements"
    );
    worker.stop().await;
    cleanup(&settings).await;
}
