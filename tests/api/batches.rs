//! Jobs of one kind share a transaction under load, each in its own
//! savepoint: a failing job rolls back its own writes and nothing else.

use std::time::Duration;

use fulfil::app::Components;
use fulfil::job::JobKind;

use crate::support::*;

#[tokio::test]
async fn a_batch_commits_its_jobs_together_and_a_failing_job_rolls_back_alone() {
    // Arrange: a backlog published before any worker runs. Two attempt
    // slots for twelve deliveries, so the deliveries must share them.
    let mut settings = test_settings();
    settings.database.max_connections = 4;
    settings.jobs.batch_size = 8;
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    let mut orders = Vec::new();
    for _ in 0..12 {
        let accepted = api.order(&token, &new_order("virtual", 2)).await;
        orders.push(accepted["order_id"].as_str().unwrap().to_owned());
    }
    // One order's activation fails after its keys were written.
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
    let published = wait_for(Duration::from_secs(20), || async {
        api.count("select count(*) from outbox where published_at is null")
            .await
            == 0
    })
    .await;
    assert!(published, "the backlog is on the broker");
    api.stop().await;

    // Act
    let mut worker = spawn_with(
        settings.clone(),
        Components::workers(vec![JobKind::LicenseNew]),
    )
    .await;

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
