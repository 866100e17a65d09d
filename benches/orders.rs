//! End-to-end throughput: N license orders posted to an in-process
//! `fulfil serve` (API, relay, workers, mail to files), timed until every
//! order is active and every mail sent, against a baseline measured in the
//! same run on the same broker: N persistent messages published with
//! confirms into a quorum queue and consumed with manual acks — the floor
//! any RabbitMQ job system pays.
//!
//!     cargo bench --bench orders            # 1000 orders
//!     BENCH_ORDERS=5000 cargo bench --bench orders

use std::time::{Duration, Instant};

use fulfil::app::{Application, Components};
use fulfil::licensing::certificate::Signer;
use fulfil::settings::Settings;
use fulfil::store::tokens::{self, Role};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const CONCURRENCY: usize = 32;

fn bench_settings() -> Settings {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from(&dir).expect("settings");
    let id = Uuid::new_v4().simple().to_string();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:5432/fulfil_bench_{id}"
    ));
    settings.amqp.prefix = format!("bench-{}.", &id[..12]);
    settings.amqp.queue_expires = Some(Duration::from_secs(300));
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.http.rate_limit_per_second = 1_000_000;
    settings.http.rate_limit_burst = 1_000_000;
    settings.mail.dir = std::env::temp_dir().join(format!("fulfil-bench-mail-{id}"));
    settings.license.signing_key = Some(SecretString::from(Signer::generate().seed_base64()));
    settings.outbox.poll_interval = Duration::from_millis(200);
    settings
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn until(pool: &PgPool, sql: &str, target: i64, limit: Duration) -> Duration {
    let start = Instant::now();
    while count(pool, sql).await < target {
        assert!(start.elapsed() < limit, "gave up waiting for: {sql}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// The broker floor: publish N persistent messages with confirms into a
/// quorum queue, consume them with manual acks, time until the last ack.
async fn baseline(settings: &Settings, n: usize) -> Duration {
    let connection = fulfil::broker::connect(&settings.amqp, "bench-baseline")
        .await
        .unwrap();
    let publish = connection.create_channel().await.unwrap();
    let consume = connection.create_channel().await.unwrap();
    publish.confirm_select(Default::default()).await.unwrap();
    let queue = format!("{}baseline", settings.amqp.prefix);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    publish
        .queue_declare(queue.clone().into(), durable, args)
        .await
        .unwrap();
    consume
        .basic_qos(settings.amqp.prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consume
        .basic_consume(
            queue.clone().into(),
            "baseline".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body =
        json!({ "job_id": Uuid::now_v7(), "kind": "license.new", "payload": {} }).to_string();

    let start = Instant::now();
    let consuming = tokio::spawn(async move {
        for _ in 0..n {
            let delivery = consumer.next().await.unwrap().unwrap();
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
    });
    let mut confirms = Vec::with_capacity(n);
    for _ in 0..n {
        let properties = lapin::BasicProperties::default().with_delivery_mode(2);
        confirms.push(
            publish
                .basic_publish(
                    "".into(),
                    queue.clone().into(),
                    Default::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap(),
        );
    }
    for confirm in confirms {
        confirm.await.unwrap();
    }
    consuming.await.unwrap();
    let elapsed = start.elapsed();
    let _ = publish.queue_delete(queue.into(), Default::default()).await;
    let _ = connection.close(200, "done".into()).await;
    elapsed
}

async fn fulfil_end_to_end(
    settings: Settings,
    n: usize,
) -> (Duration, Duration, Duration, i64, i64, usize) {
    let app = Application::build(settings.clone(), Components::everything())
        .await
        .unwrap();
    let pool = app.pool().clone();
    let (_, token) = tokens::create_token(&pool, "bench", Role::Portal, Some("bench"), None)
        .await
        .unwrap();
    let url = format!("http://{}/v1/license-orders", app.addr().unwrap());
    let client = reqwest::Client::new();
    let body = json!({
        "customer_id": "bench-customer", "usage": "virtual", "quantity": 1,
        "contact": { "name": "Bench", "email": "bench@example.com", "locale": "en" }
    });

    let start = Instant::now();
    let posts = futures::stream::iter(0..n)
        .map(|_| {
            client
                .post(&url)
                .bearer_auth(&token)
                .header("Idempotency-Key", Uuid::new_v4().to_string())
                .json(&body)
                .send()
        })
        .buffer_unordered(CONCURRENCY);
    let statuses: Vec<u16> = posts.map(|r| r.unwrap().status().as_u16()).collect().await;
    let accepted = start.elapsed();
    assert!(statuses.iter().all(|s| *s == 202), "every order accepted");
    let n = n as i64;
    let limit = Duration::from_secs(600);
    until(
        &pool,
        "select count(*) from license_orders where status = 'active'",
        n,
        limit,
    )
    .await;
    let active = start.elapsed();
    until(
        &pool,
        "select count(*) from mails where status = 'sent'",
        n,
        limit,
    )
    .await;
    let mailed = start.elapsed();
    let keys = count(
        &pool,
        "select count(distinct key) from licenses where status = 'issued'",
    )
    .await;
    let mails = count(&pool, "select count(*) from mails where status = 'sent'").await;
    let files = std::fs::read_dir(&settings.mail.dir)
        .map(|d| d.count())
        .unwrap_or(0);
    app.stop().await;
    (accepted, active, mailed, keys, mails, files)
}

async fn cleanup(settings: &Settings) {
    let name = settings
        .database
        .url
        .expose_secret()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    if let Ok(admin) = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
            .execute(&admin)
            .await;
    }
    let _ = std::fs::remove_dir_all(&settings.mail.dir);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) is a dry run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let settings = bench_settings();
    println!(
        "fulfil end-to-end benchmark: {n} new orders (1 key each), {CONCURRENCY} concurrent POSTs, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );

    let floor = baseline(&settings, n).await;
    let (accepted, active, mailed, keys, mails, files) =
        fulfil_end_to_end(settings.clone(), n).await;
    cleanup(&settings).await;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "baseline  broker floor (publish+confirm+consume+ack): {:>8.2?}  {:>7.0}/s",
        floor,
        rate(floor)
    );
    println!(
        "fulfil    all {n} POSTs answered 202:                 {:>8.2?}  {:>7.0}/s",
        accepted,
        rate(accepted)
    );
    println!(
        "fulfil    all orders active (keys issued):           {:>8.2?}  {:>7.0}/s  = {:.1}x baseline",
        active,
        rate(active),
        active.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "fulfil    all mails sent:                            {:>8.2?}  {:>7.0}/s  = {:.1}x baseline",
        mailed,
        rate(mailed),
        mailed.as_secs_f64() / floor.as_secs_f64()
    );
    println!("produced: {keys} distinct keys, {mails} mails sent, {files} .eml files");
}
