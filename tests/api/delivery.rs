use std::time::Duration;

use fulfil::app::Components;
use serde_json::{Value, json};

use crate::support::{new_order, publish_raw, spawn_app, spawn_with, test_settings, wait_for};

#[tokio::test]
async fn redelivered_jobs_issue_no_second_key_and_no_second_mail() {
    // Arrange: the job is published once by the relay and twice more by
    // hand before any worker runs, so the worker sees three copies.
    let settings = test_settings();
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    let accepted = api.order(&token, &new_order("virtual", 3)).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            api.count("select count(*) from outbox").await == 0
        })
        .await
    );
    let envelope: Value = sqlx::query_scalar(
        "select json_build_object('job_id', id, 'kind', kind, 'version', version,
                'enqueued_at', enqueued_at, 'attempt', 1, 'payload', payload)
         from jobs where id = $1::uuid",
    )
    .bind(&job_id)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    let queue = format!("{}license.new", settings.amqp.prefix);
    for _ in 0..2 {
        publish_raw(&settings, &queue, envelope.to_string().as_bytes()).await;
    }

    // Act
    let workers = spawn_with(
        settings.clone(),
        Components::workers(fulfil::job::JobKind::ALL.to_vec()),
    )
    .await;

    // Assert: every copy was delivered, one did the work.
    let deliveries = format!("select deliveries::int8 from jobs where id = '{job_id}'");
    assert!(
        wait_for(Duration::from_secs(20), || async {
            workers.count(&deliveries).await == 3
        })
        .await
    );
    let order = api
        .until_active(&token, accepted["order_id"].as_str().unwrap())
        .await;
    assert_eq!(order["licenses"].as_array().unwrap().len(), 3);
    assert_eq!(
        api.count("select count(distinct key) from licenses").await,
        3
    );
    let job: Value = api
        .get(&format!("/v1/jobs/{job_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    let log = job["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "one attempt ran: {log:?}");
    assert_eq!(log[0]["outcome"], "succeeded");
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(job["deliveries"], 3);
    assert!(
        wait_for(Duration::from_secs(20), || async {
            api.count("select count(*) from mails where status = 'sent'")
                .await
                == 1
        })
        .await
    );
    assert_eq!(api.count("select count(*) from mails").await, 1);
    assert_eq!(api.mail_files().len(), 1);
    api.stop().await;
    workers.cleanup().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_the_reason_while_good_jobs_flow() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let queue = format!("{}license.new", app.settings.amqp.prefix);
    let unknown_version = json!({
        "job_id": uuid::Uuid::now_v7(), "kind": "license.new", "version": 99,
        "enqueued_at": chrono::Utc::now(), "attempt": 1, "payload": {}
    });
    let wrong_kind = json!({
        "job_id": uuid::Uuid::now_v7(), "kind": "license.bogus", "version": 1,
        "enqueued_at": chrono::Utc::now(), "attempt": 1, "payload": {}
    });

    let garbage_id = publish_raw(&app.settings, &queue, b"\x00\xffthis is not json").await;
    publish_raw(
        &app.settings,
        &queue,
        unknown_version.to_string().as_bytes(),
    )
    .await;
    let first = app.order(&token, &new_order("virtual", 1)).await;
    publish_raw(&app.settings, &queue, wrong_kind.to_string().as_bytes()).await;
    let second = app.order(&token, &new_order("virtual", 1)).await;

    app.until_active(&token, first["order_id"].as_str().unwrap())
        .await;
    app.until_active(&token, second["order_id"].as_str().unwrap())
        .await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            app.count("select count(*) from dead_letters").await == 3
        })
        .await
    );
    let reasons: Vec<String> =
        sqlx::query_scalar("select reason from dead_letters order by created_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        reasons.iter().any(|r| r.contains("not a job envelope")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("version 99")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("license.bogus")),
        "{reasons:?}"
    );

    // Operators find a message that was never a job by what it carried.
    let operator = app.token(fulfil::store::tokens::Role::Operator, None).await;
    let listed: Vec<serde_json::Value> = app
        .get("/v1/ops/dead-letters", &operator)
        .await
        .json()
        .await
        .unwrap();
    let bogus = listed
        .iter()
        .find(|d| d["envelope"]["kind"] == "license.bogus")
        .unwrap_or_else(|| panic!("the bogus envelope is listed by its kind: {listed:?}"));
    assert_eq!(bogus["envelope"]["job_id"], wrong_kind["job_id"]);
    assert!(bogus["job_id"].is_null());
    let garbage = listed
        .iter()
        .find(|d| d["body"].as_str().unwrap().contains("this is not json"))
        .expect("the raw body is shown");
    assert_eq!(
        garbage["message_id"], garbage_id,
        "the AMQP message id it came with"
    );
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["dead-letters", "list"])
        .envs(crate::support::settings_env(&app.settings))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("message id: {garbage_id}")),
        "the CLI shows the message id too:\n{listed}"
    );
    // 16 ASCII bytes; the NUL and 0xFF are stored as U+FFFD, 3 bytes each.
    assert_eq!(garbage["body_bytes"], 22);
    assert!(garbage["envelope"].is_null());
    app.cleanup().await;
}

#[tokio::test]
async fn a_job_failing_every_attempt_is_dead_lettered_with_its_last_error() {
    // Arrange: mail goes to an SMTP port where nothing listens.
    let mut settings = test_settings();
    settings.mail.transport = fulfil::settings::MailTransportKind::Smtp;
    settings.mail.smtp_url = secrecy::SecretString::from("smtp://127.0.0.1:1".to_owned());
    settings.jobs.max_attempts = 3;
    let app = spawn_with(settings, Components::everything()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    // Act
    let accepted = app.order(&token, &new_order("virtual", 1)).await;

    // Assert: the order completes; its mail job dies after three attempts.
    app.until_active(&token, accepted["order_id"].as_str().unwrap())
        .await;
    assert!(
        wait_for(Duration::from_secs(20), || async {
            app.count("select count(*) from jobs where kind = 'mail.send' and status = 'dead'")
                .await
                == 1
        })
        .await
    );
    let (job_id, attempts, error): (uuid::Uuid, i32, String) =
        sqlx::query_as("select id, attempts, last_error from jobs where kind = 'mail.send'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);
    assert!(error.contains("sending mail"), "{error}");
    let job: Value = app
        .get(&format!("/v1/jobs/{job_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = job["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "dead"]);
    let dead: i64 = app
        .count(&format!(
            "select count(*) from dead_letters where job_id = '{job_id}'"
        ))
        .await;
    assert_eq!(dead, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn workers_starting_together_on_fresh_queues_all_consume_at_their_first_try() {
    // Arrange: a fresh prefix per round, so every quorum queue is created
    // by the declarations racing here, as when `fulfil serve` starts on a
    // new broker. RabbitMQ 3.10 answered a declaration of a queue that
    // another connection was still starting as if it ran; a consume on it
    // then failed (`noproc`) and the broker closed the connection.
    for _round in 0..10 {
        let settings = test_settings();
        let topology = fulfil::broker::topology::Topology::new(&settings.amqp);

        // Act: one connection per kind, as the workers of one process.
        let starts = fulfil::job::JobKind::ALL.iter().map(|&kind| {
            let (settings, topology) = (settings.clone(), topology.clone());
            async move {
                let connection = fulfil::broker::connect(&settings.amqp, "test-start").await?;
                let channel = connection.create_channel().await?;
                topology.declare(&channel).await?;
                let consumer = channel
                    .basic_consume(
                        topology.queue(kind).into(),
                        "".into(),
                        Default::default(),
                        Default::default(),
                    )
                    .await?;
                // Torn down in order, and outside the assertion: a consumer
                // dropped active is cancelled by lapin later, and a
                // cancel-ok meeting a closing channel is a connection error.
                let _ = channel
                    .basic_cancel(consumer.tag(), Default::default())
                    .await;
                drop(consumer);
                let _ = channel.close(200, "started".into()).await;
                let _ = connection.close(200, "started".into()).await;
                anyhow::Ok(())
            }
        });
        let started = futures::future::join_all(starts).await;

        // Assert
        crate::support::cleanup(&settings).await;
        for result in started {
            result.expect("a worker consumes at its first try");
        }
    }
}
