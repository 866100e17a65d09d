//! The throughput suite (SPEC §5): every figure is measured in one run on
//! one machine, and compared with the broker floor measured in that run.
//!
//! Each run prints machine-readable `name=value` lines first, then
//! readable ones:
//!
//! - `broker_floor_msgs_per_s`: N persistent messages published with
//!   confirms into a quorum queue and consumed with manual acks; the
//!   median of three such runs. Its client sends one message at a time
//!   and acks each delivery alone, awaiting each.
//! - `broker_floor_pipelined_msgs_per_s`: the same, driven as fulfil
//!   drives the broker (a batch of publishes polled together, acks with
//!   `multiple` per batch): what the broker itself can do. Printed beside
//!   the floor the targets are set against, with the ratios against it.
//! - `intake_orders_per_s`: new orders answered 202 with the workers off
//!   (API and relay only); these orders are the drain's backlog.
//! - `drain_jobs_per_s`: that backlog of `license.new` jobs, all published
//!   before a `fulfil worker` process starts, drained by it.
//! - `worker_rss_mb`: that worker process's peak resident set.
//! - `e2e_orders_per_s`: a full `fulfil serve` in process, HTTP 202 → keys
//!   issued → mail written, timed from after one warm-up order's mail.
//! - `p99_http_202_ms`, `p99_accept_to_issued_ms`: new orders offered at a
//!   fixed rate of half the e2e peak, open loop.
//! - `statements_per_order` (every statement fulfil sends, BEGIN and
//!   COMMIT included, counted from sqlx's statement log) and
//!   `commits_per_order` (PostgreSQL's `xact_commit` of the database).
//!
//! ```text
//! cargo bench --bench orders
//! BENCH_ORDERS=1000 BENCH_DRAIN=2000 BENCH_LATENCY_SECS=5 cargo bench --bench orders
//! BENCH_GROWTH=1 cargo bench --bench orders        # e2e at 1,000 and 10,000
//! BENCH_GROWTH=100000 cargo bench --bench orders   # … and at 100,000
//! ```
//!
//! Other knobs: `BENCH_ONLY=drain` (stop after the drain), `BENCH_ONLY=latency`
//! with `BENCH_RATE` (the latency alone, at that many orders/s), `BENCH_ONLY=e2e`
//! (the end-to-end figure alone, at `BENCH_ORDERS`), `BENCH_FLOOR`
//! (messages, default 5,000), `BENCH_COUNT`
//! (orders of the counting run, default 1,000), `BENCH_CONCURRENCY`
//! (POSTs in flight in the closed-loop phases, default 32), `BENCH_KEEP_DB=1`
//! (keep each phase's database, named on stderr, for EXPLAIN).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fulfil::app::{Application, Components};
use fulfil::broker::topology::Topology;
use fulfil::licensing::certificate::Signer;
use fulfil::settings::Settings;
use fulfil::store::tokens::{self, Role};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::ConnectOptions;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use uuid::Uuid;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PARTNER: &str = "bench";
const CUSTOMER: &str = "bench-customer";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------
// Counting the statements fulfil sends: sqlx logs each one (target
// `sqlx::query`, at debug); this layer counts those events while COUNTING
// is on. Off, the filter says no and sqlx does not even format the log.

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static TX_CONTROL: AtomicU64 = AtomicU64::new(0);
/// Statements by sqlx's summary of them (their first words).
static BY_SUMMARY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

struct StatementCounter;

#[derive(Default)]
struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.trim().to_owned();
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.record_str(field, &format!("{value:?}").replace('"', ""));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut summary = Summary::default();
        event.record(&mut summary);
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
        let head = summary.0.to_ascii_uppercase();
        if ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"]
            .iter()
            .any(|word| head.starts_with(word))
        {
            TX_CONTROL.fetch_add(1, Ordering::Relaxed);
        }
        *BY_SUMMARY.lock().unwrap().entry(summary.0).or_default() += 1;
    }
}

fn init_tracing() {
    let counter =
        StatementCounter.with_filter(tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
            COUNTING.load(Ordering::Relaxed) && meta.target() == "sqlx::query"
        }));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    tracing_subscriber::registry()
        .with(log)
        .with(counter)
        .init();
}

// ---------------------------------------------------------------------
// Settings, setup, cleanup.

fn bench_settings() -> Settings {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from(&dir).expect("settings");
    let id = Uuid::new_v4().simple().to_string();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:5432/fulfil_bench_{id}"
    ));
    settings.amqp.prefix = format!("bench-{}.", &id[..12]);
    settings.amqp.queue_expires = Some(Duration::from_secs(1800));
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.http.rate_limit_per_second = 1_000_000;
    settings.http.rate_limit_burst = 1_000_000;
    let mail_parent = std::env::var_os("BENCH_MAIL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    settings.mail.dir = mail_parent.join(format!("fulfil-bench-mail-{id}"));
    settings.license.signing_key = Some(SecretString::from(Signer::generate().seed_base64()));
    settings.scheduler.enabled = false;
    settings
}

/// A pool on the bench database that does not log its statements, so the
/// bench's own polling is never counted as fulfil's. Its counts take an
/// index where there is one: the statistics of a table in mid-drain say
/// most jobs are queued, and the planner then counts the few left by
/// reading the whole table (auto_explain: 2.3 ms a poll at 10,000 jobs).
async fn quiet_pool(settings: &Settings) -> PgPool {
    let options: PgConnectOptions = settings.database.url.expose_secret().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            options
                .disable_statement_logging()
                .options([("enable_seqscan", "off")]),
        )
        .await
        .unwrap()
}

fn database_name(settings: &Settings) -> String {
    fulfil::store::database_name(&settings.database).expect("the bench's database URL names one")
}

async fn cleanup(settings: &Settings) {
    if let Ok(connection) = fulfil::broker::connect(&settings.amqp, "bench-cleanup").await {
        if let Ok(channel) = connection.create_channel().await {
            let topology = Topology::new(&settings.amqp);
            for queue in topology.queues() {
                let _ = channel.queue_delete(queue.into(), Default::default()).await;
            }
            let _ = channel
                .exchange_delete(topology.exchange().into(), Default::default())
                .await;
            let _ = channel
                .exchange_delete(topology.dead_letter_exchange().into(), Default::default())
                .await;
            // Closed before the connection: a channel dropped open is
            // closed by lapin later, and with the connection closing by
            // then, lapin logs the refusal as an ERROR.
            let _ = channel.close(200, "done".into()).await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
    let name = database_name(settings);
    // `BENCH_KEEP_DB=1` keeps the database for EXPLAIN and pg_stat_statements.
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept database {name}");
    } else if let Ok(admin) = PgPool::connect(ADMIN_URL).await {
        let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
            .execute(&admin)
            .await;
    }
    // The mail is removed once, at the end of the run: this machine's ext4
    // has no journal, and there every new inode is checked against those
    // deleted in the last seconds (`recently_deleted`), so deleting one
    // phase's 20,000 files would bill the next phase for them.
    MAIL_DIRS.lock().unwrap().push(settings.mail.dir.clone());
}

static MAIL_DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

fn remove_mail_dirs() {
    for dir in MAIL_DIRS.lock().unwrap().drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A portal token for the bench partner, whose partner and customer exist
/// in the directory (an order naming an unknown customer answers 404).
async fn portal(app: &Application, client: &reqwest::Client) -> String {
    let (_, token) = tokens::create_token(app.pool(), "bench", Role::Portal, Some(PARTNER), None)
        .await
        .unwrap();
    let base = format!("http://{}", app.addr().unwrap());
    for (path, body) in [
        (
            format!("/v1/partners/{PARTNER}"),
            json!({ "name": "Bench", "admin_email": "admin@bench.example", "locale": "en" }),
        ),
        (
            format!("/v1/customers/{CUSTOMER}"),
            json!({ "name": "Bench Customer" }),
        ),
    ] {
        let answer = client
            .put(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "PUT {path}: {}",
            answer.status()
        );
    }
    token
}

fn order_body() -> serde_json::Value {
    json!({
        "customer_id": CUSTOMER, "usage": "virtual", "quantity": 1,
        "contact": { "name": "Bench", "email": "bench@example.com", "locale": "en" }
    })
}

async fn post_order(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    client
        .post(url)
        .bearer_auth(token)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&order_body())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Posts `n` orders, `concurrency` at a time; returns how long until the
/// last was answered. Every one must be answered 202.
async fn post_orders(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    n: usize,
    concurrency: usize,
) -> Duration {
    let start = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..n)
        .map(|_| post_order(client, url, token))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = start.elapsed();
    let refused = statuses.iter().filter(|s| **s != 202).count();
    assert_eq!(
        refused,
        0,
        "every order answered 202 (first: {:?})",
        statuses.iter().find(|s| **s != 202)
    );
    took
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls until `sql` counts `target` (counting up to it, or, with 0,
/// down to none left); returns the number of polls.
async fn until(pool: &PgPool, sql: &str, target: i64, limit: Duration) -> u64 {
    let start = Instant::now();
    let mut polls = 1;
    let reached = |counted: i64| {
        if target == 0 {
            counted == 0
        } else {
            counted >= target
        }
    };
    while !reached(count(pool, sql).await) {
        assert!(start.elapsed() < limit, "gave up waiting for: {sql}");
        pause_between_polls(start).await;
        polls += 1;
    }
    polls
}

/// Sleeps between two polls of a phase that began at `start`. A count
/// scans a table that grows through the run: polled every 20 ms it took a
/// share of the cores that grew with the table (at 100,000 orders, most
/// of one). The pause grows with the wait instead, which bounds what the
/// polls cost and keeps their error under 0.5 % of the time measured.
async fn pause_between_polls(start: Instant) {
    let pause = (start.elapsed() / 200).clamp(Duration::from_millis(20), Duration::from_secs(1));
    tokio::time::sleep(pause).await;
}

/// Whether a job of `kind` is not finished yet (1 or 0), by the partial
/// index of the unfinished jobs. Counting them all read the whole backlog
/// at every poll: 3 ms a poll at the start of a 20,000-job drain, 0.65 s
/// of PostgreSQL in one drain of 6.7 s. This stops at the first one.
fn unfinished(kind: &str) -> String {
    format!(
        "select count(*) from ({} limit 1) as one",
        unfinished_jobs(kind)
    )
}

/// The unfinished jobs of `kind`, in the terms of their partial index
/// (`jobs_unfinished_kind`).
fn unfinished_jobs(kind: &str) -> String {
    format!(
        "select 1 from jobs where status in ('queued', 'running', 'retrying') and kind = '{kind}'"
    )
}

/// Whether a mail is still to be sent (1 or 0): one handed to a process's
/// sender (`handoff_until` set), or one with an unfinished `mail.send`
/// job; a pending mail is always one of the two. Both by partial index.
fn unsent() -> String {
    format!(
        "select count(*) from (select 1 from mails where handoff_until is not null \
         union all {} limit 1) as one",
        unfinished_jobs("mail.send")
    )
}

const ACTIVE: &str = "select count(*) from license_orders where status = 'active'";
const SENT: &str = "select count(*) from mails where status = 'sent'";
const LIMIT: Duration = Duration::from_secs(3600);

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

// ---------------------------------------------------------------------
// The broker floor.

/// How the floor's client drives the broker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FloorClient {
    /// Each publish awaited before the next, each delivery acked alone
    /// and awaited: the floor the targets are set against.
    OneAtATime,
    /// Publishes polled together in batches of [`PIPELINED_PUBLISHES`]
    /// (the relay's way), deliveries acked with `multiple` every
    /// [`PIPELINED_ACKS`] (a worker's batch). Lapin's `basic_publish` and
    /// ack return once the connection's I/O thread wrote their frames, so
    /// awaiting each one costs a round trip to that thread per message.
    Pipelined,
}

const PIPELINED_PUBLISHES: usize = 256;
const PIPELINED_ACKS: usize = 32;

/// The floor's runs, fastest first.
async fn floor_runs(n: usize, client: FloorClient) -> Vec<Duration> {
    let mut floors = Vec::with_capacity(FLOOR_RUNS);
    for _ in 0..FLOOR_RUNS {
        floors.push(broker_floor(&bench_settings(), n, client).await);
    }
    floors.sort();
    floors
}

/// Publish N persistent messages with confirms into a quorum queue,
/// consume them with manual acks, time until the last ack.
/// Runs of the floor per suite; the median is the floor.
const FLOOR_RUNS: usize = 3;

async fn broker_floor(settings: &Settings, n: usize, client: FloorClient) -> Duration {
    let connection = fulfil::broker::connect(&settings.amqp, "bench-floor")
        .await
        .unwrap();
    let publish = connection.create_channel().await.unwrap();
    let consume = connection.create_channel().await.unwrap();
    publish.confirm_select(Default::default()).await.unwrap();
    let queue = format!("{}floor", settings.amqp.prefix);
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
            "floor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body =
        json!({ "job_id": Uuid::now_v7(), "kind": "license.new", "payload": {} }).to_string();

    let start = Instant::now();
    let consuming = tokio::spawn(async move {
        for i in 1..=n {
            let delivery = consumer.next().await.unwrap().unwrap();
            let multiple = match client {
                FloorClient::OneAtATime => false,
                FloorClient::Pipelined if i % PIPELINED_ACKS == 0 || i == n => true,
                FloorClient::Pipelined => continue,
            };
            delivery
                .acker
                .ack(BasicAckOptions { multiple })
                .await
                .unwrap();
        }
        consumer
    });
    let batch = match client {
        FloorClient::OneAtATime => 1,
        FloorClient::Pipelined => PIPELINED_PUBLISHES,
    };
    let mut confirms = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let publishes = (start..n.min(start + batch)).map(|_| {
            let properties = lapin::BasicProperties::default().with_delivery_mode(2);
            publish.basic_publish(
                "".into(),
                queue.clone().into(),
                Default::default(),
                body.as_bytes(),
                properties,
            )
        });
        confirms.extend(futures::future::try_join_all(publishes).await.unwrap());
    }
    for confirm in confirms {
        confirm.await.unwrap();
    }
    let consumer = consuming.await.unwrap();
    let elapsed = start.elapsed();
    // Torn down in order, each step awaited: the consumer cancelled while
    // it is still held (dropped active, lapin cancels it later, and a
    // cancel-ok arriving on a closing channel is a connection error), the
    // queue, then the channels before the connection (see `cleanup`).
    let _ = consume
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    drop(consumer);
    let _ = publish.queue_delete(queue.into(), Default::default()).await;
    let _ = consume.close(200, "done".into()).await;
    let _ = publish.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    elapsed
}

// ---------------------------------------------------------------------
// Intake with workers off, then the drain of its backlog.

struct Drain {
    intake: Duration,
    drain: Duration,
    mails: Duration,
    rss_peak_kb: u64,
    /// CPU seconds of the worker process and of PostgreSQL, from the
    /// worker's start until every mail was sent.
    worker_cpu_s: f64,
    postgres_cpu_s: f64,
}

fn settings_env(settings: &Settings) -> Vec<(&'static str, String)> {
    vec![
        (
            "FULFIL__DATABASE__URL",
            settings.database.url.expose_secret().to_owned(),
        ),
        (
            "FULFIL__AMQP__URL",
            settings.amqp.url.expose_secret().to_owned(),
        ),
        ("FULFIL__AMQP__PREFIX", settings.amqp.prefix.clone()),
        ("FULFIL__AMQP__QUEUE_EXPIRES", "30m".into()),
        ("FULFIL__HTTP__ADDR", "127.0.0.1:0".into()),
        ("FULFIL__MAIL__DIR", settings.mail.dir.display().to_string()),
        (
            "FULFIL__LICENSE__SIGNING_KEY",
            settings
                .license
                .signing_key
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned(),
        ),
        ("FULFIL__SCHEDULER__ENABLED", "false".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// Kills the child when dropped, so a failed bench leaves no process.
struct ChildProcess(Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_fulfil(settings: &Settings, args: &[&str]) -> ChildProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(settings_env(settings))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fulfil starts");
    ChildProcess(child)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name; utime and
            // stime are the 14th and 15th of the whole line.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU time used so far by each PostgreSQL process, by pid.
fn postgres_ticks() -> std::collections::HashMap<String, u64> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("postgres"))
        })
        .map(|pid| {
            let ticks = cpu_ticks(&pid);
            (pid, ticks)
        })
        .collect()
}

/// PostgreSQL's CPU time since `before`, of the processes alive now
/// (the drain's backends live as long as the worker's pool); a backend
/// that ended meanwhile is not counted, so this is a lower bound.
fn postgres_ticks_since(before: &std::collections::HashMap<String, u64>) -> u64 {
    postgres_ticks()
        .into_iter()
        .map(|(pid, now)| now.saturating_sub(before.get(&pid).copied().unwrap_or(0)))
        .sum()
}

/// Clock ticks per second of /proc's CPU times (USER_HZ).
const TICKS_PER_S: f64 = 100.0;

/// Stops a child with SIGTERM (graceful, as in production) and waits.
fn terminate(mut child: ChildProcess) {
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.0.wait();
}

async fn intake_then_drain(n: usize, concurrency: usize) -> Drain {
    let settings = bench_settings();
    let app = Application::build(settings.clone(), Components::api_only())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = portal(&app, &client).await;
    let url = format!("http://{}/v1/license-orders", app.addr().unwrap());
    let intake = post_orders(&client, &url, &token, n, concurrency).await;
    let quiet = quiet_pool(&settings).await;
    // The backlog is complete once the relay published every job.
    until(&quiet, "select count(*) from outbox", 0, LIMIT).await;
    app.stop().await;

    let postgres_before = postgres_ticks();
    let worker = spawn_fulfil(&settings, &["worker"]);
    let pid = worker.0.id();
    let start = Instant::now();
    let mut rss_peak_kb = 0;
    // Polled by whether any is left, through the index of the unfinished
    // jobs: a count of the finished ones read a growing share of the
    // table, every 50 ms about 7 ms of PostgreSQL (a seventh of a core)
    // taken from the drain it timed.
    while count(&quiet, &unfinished("license.new")).await > 0 {
        rss_peak_kb = rss_peak_kb.max(rss_kb(pid));
        assert!(start.elapsed() < LIMIT, "the drain did not finish");
        pause_between_polls(start).await;
    }
    let drain = start.elapsed();
    // Every mail was written by the time the last issuing job ended; the
    // worker's own sender sends them with no job to wait for, so the
    // mails themselves are counted (for the short tail after the drain).
    while count(&quiet, SENT).await < n as i64 {
        rss_peak_kb = rss_peak_kb.max(rss_kb(pid));
        assert!(start.elapsed() < LIMIT, "the mails were not all sent");
        pause_between_polls(start).await;
    }
    let mails = start.elapsed();
    let done = "select count(*) from jobs where kind = 'license.new' and status = 'succeeded'";
    assert_eq!(count(&quiet, done).await, n as i64, "every job succeeded");
    assert_eq!(count(&quiet, SENT).await, n as i64, "every mail was sent");
    rss_peak_kb = rss_peak_kb.max(rss_kb(pid));
    let worker_cpu_s = cpu_ticks(&pid.to_string()) as f64 / TICKS_PER_S;
    let postgres_cpu_s = postgres_ticks_since(&postgres_before) as f64 / TICKS_PER_S;
    terminate(worker);
    quiet.close().await;
    cleanup(&settings).await;
    Drain {
        intake,
        drain,
        mails,
        rss_peak_kb,
        worker_cpu_s,
        postgres_cpu_s,
    }
}

// ---------------------------------------------------------------------
// End to end, closed loop.

struct EndToEnd {
    accepted: Duration,
    active: Duration,
    mailed: Duration,
    keys: i64,
    files: usize,
}

/// Sends one order through until `reached` (a count such as [`ACTIVE`]
/// or [`SENT`]) counts it, before a phase starts its clock.
async fn warm_up(client: &reqwest::Client, url: &str, token: &str, quiet: &PgPool, reached: &str) {
    assert_eq!(
        post_order(client, url, token).await,
        202,
        "the warm-up order"
    );
    until(quiet, reached, 1, LIMIT).await;
}

async fn end_to_end(n: usize, concurrency: usize) -> EndToEnd {
    let settings = bench_settings();
    let app = Application::build(settings.clone(), Components::everything())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = portal(&app, &client).await;
    let url = format!("http://{}/v1/license-orders", app.addr().unwrap());
    let quiet = quiet_pool(&settings).await;
    // The figure is the running system's rate, not also the process's
    // start (about 0.15 s of a 2.5 s run, while the consumers declared
    // their queues). The warm-up's key and mail are counted below with
    // the others.
    warm_up(&client, &url, &token, &quiet, SENT).await;
    let start = Instant::now();
    post_orders(&client, &url, &token, n, concurrency).await;
    let accepted = start.elapsed();
    // Timed by whether any is left, through the partial indexes, and
    // counted once the clock stopped: a count of the active orders and
    // of the sent mails read the whole tables at every poll (the mails'
    // 25-50 ms of PostgreSQL each), taken from the orders still running.
    until(&quiet, &unfinished("license.new"), 0, LIMIT).await;
    let active = start.elapsed();
    until(&quiet, &unsent(), 0, LIMIT).await;
    let mailed = start.elapsed();
    assert_eq!(
        count(&quiet, ACTIVE).await,
        n as i64 + 1,
        "every order active"
    );
    assert_eq!(count(&quiet, SENT).await, n as i64 + 1, "every mail sent");
    let keys = count(
        &quiet,
        "select count(distinct key) from licenses where status = 'issued'",
    )
    .await;
    let files = std::fs::read_dir(&settings.mail.dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0);
    app.stop().await;
    quiet.close().await;
    cleanup(&settings).await;
    EndToEnd {
        accepted,
        active,
        mailed,
        keys,
        files,
    }
}

// ---------------------------------------------------------------------
// Latency at a fixed offered rate (open loop).

struct Latency {
    offered_per_s: f64,
    orders: usize,
    p50_http_ms: f64,
    p99_http_ms: f64,
    p50_issued_ms: f64,
    p99_issued_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn latency_at(rate_per_s: f64, seconds: u64) -> Latency {
    let settings = bench_settings();
    let app = Application::build(settings.clone(), Components::everything())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = Arc::new(portal(&app, &client).await);
    let url = Arc::new(format!("http://{}/v1/license-orders", app.addr().unwrap()));
    let quiet = quiet_pool(&settings).await;
    // The figures are of the steady state at this rate, not of the
    // process's first moments: an order accepted while the consumers were
    // still declaring their queues waited for them, and the first
    // second's few hundred such orders made up the whole 1 % tail.
    warm_up(&client, &url, &token, &quiet, ACTIVE).await;
    let n = ((rate_per_s * seconds as f64) as usize).max(1);
    let period = Duration::from_secs_f64(1.0 / rate_per_s.max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..n {
        ticker.tick().await;
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        posts.spawn(async move {
            let sent = Instant::now();
            let status = post_order(&client, &url, &token).await;
            (status, sent.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut http = Vec::with_capacity(n);
    while let Some(joined) = posts.join_next().await {
        let (status, ms) = joined.unwrap();
        assert_eq!(status, 202, "every order answered 202");
        http.push(ms);
    }
    until(&quiet, ACTIVE, n as i64 + 1, LIMIT).await;
    // Accepted (the request row, written by intake) to issued (the request
    // completed, in the worker's transaction that issued the keys); the
    // warm-up order, accepted first, is left out.
    let mut issued: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from completed_at - accepted_at)::float8 * 1000
         from license_requests
         where completed_at is not null
           and accepted_at > (select min(accepted_at) from license_requests)",
    )
    .fetch_all(&quiet)
    .await
    .unwrap();
    app.stop().await;
    quiet.close().await;
    cleanup(&settings).await;
    http.sort_by(f64::total_cmp);
    issued.sort_by(f64::total_cmp);
    Latency {
        offered_per_s: rate_per_s,
        orders: n,
        p50_http_ms: percentile(&http, 0.50),
        p99_http_ms: percentile(&http, 0.99),
        p50_issued_ms: percentile(&issued, 0.50),
        p99_issued_ms: percentile(&issued, 0.99),
    }
}

// ---------------------------------------------------------------------
// Statements and commits per order.

struct Counts {
    orders: usize,
    statements: u64,
    tx_control: u64,
    commits: i64,
}

async fn xact_commit(database: &str) -> i64 {
    let admin = PgPool::connect(ADMIN_URL).await.unwrap();
    let commits = sqlx::query_scalar("select xact_commit from pg_stat_database where datname = $1")
        .bind(database)
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    commits
}

async fn count_per_order(n: usize, concurrency: usize) -> Counts {
    let settings = bench_settings();
    let database = database_name(&settings);
    // Arrange the directory with one process, then count in another.
    let setup = Application::build(settings.clone(), Components::api_only())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = portal(&setup, &client).await;
    setup.stop().await;

    let app = Application::build(settings.clone(), Components::everything())
        .await
        .unwrap();
    let url = format!("http://{}/v1/license-orders", app.addr().unwrap());
    let quiet = quiet_pool(&settings).await;
    // Warm up first: every pool connection prepares each statement once
    // (a transaction of its own), a cost of a fresh process, not of an
    // order. Then wait until every backend reported its counts (an idle
    // backend reports within 10 s), and count from there.
    let warm = (n / 5).clamp(1, 500);
    post_orders(&client, &url, &token, warm, concurrency).await;
    until(&quiet, SENT, warm as i64, LIMIT).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = xact_commit(&database).await;
    STATEMENTS.store(0, Ordering::Relaxed);
    TX_CONTROL.store(0, Ordering::Relaxed);
    BY_SUMMARY.lock().unwrap().clear();
    COUNTING.store(true, Ordering::Relaxed);
    post_orders(&client, &url, &token, n, concurrency).await;
    let total = (warm + n) as i64;
    let mut polls = until(&quiet, ACTIVE, total, LIMIT).await;
    polls += until(&quiet, SENT, total, LIMIT).await;
    COUNTING.store(false, Ordering::Relaxed);
    let statements = STATEMENTS.load(Ordering::Relaxed);
    let tx_control = TX_CONTROL.load(Ordering::Relaxed);
    app.stop().await;
    quiet.close().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = xact_commit(&database).await;
    cleanup(&settings).await;
    Counts {
        orders: n,
        statements,
        tx_control,
        // The bench's own polls commit too; they are not fulfil's.
        commits: after - before - polls as i64,
    }
}

fn print_latency(latency: &Latency) {
    println!(
        "latency  {} orders offered at {:.0}/s: http 202 p50 {:.1} ms, p99 {:.1} ms (target 20); accepted→issued p50 {:.1} ms, p99 {:.1} ms (target 100)",
        latency.orders,
        latency.offered_per_s,
        latency.p50_http_ms,
        latency.p99_http_ms,
        latency.p50_issued_ms,
        latency.p99_issued_ms
    );
}

/// Where the drain's CPU went, per job: the worker process and PostgreSQL.
fn print_drain_cpu(drained: &Drain, jobs: usize, cores: usize) {
    let per_job = |cpu_s: f64| cpu_s * 1000.0 / jobs as f64;
    println!(
        "         CPU per job until all mailed: worker {:.2} ms, PostgreSQL {:.2} ms; {:.0} % of {cores} cores busy",
        per_job(drained.worker_cpu_s),
        per_job(drained.postgres_cpu_s),
        (drained.worker_cpu_s + drained.postgres_cpu_s) * 100.0
            / (drained.mails.as_secs_f64() * cores.max(1) as f64)
    );
}

// ---------------------------------------------------------------------

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) is a dry run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    init_tracing();
    let floor_n = env_usize("BENCH_FLOOR", 5_000);
    let orders_n = env_usize("BENCH_ORDERS", 5_000);
    let drain_n = env_usize("BENCH_DRAIN", 20_000);
    let count_n = env_usize("BENCH_COUNT", 1_000);
    let latency_secs = env_usize("BENCH_LATENCY_SECS", 20) as u64;
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let growth = std::env::var("BENCH_GROWTH").ok();
    // `BENCH_ONLY=drain` stops after the floor, intake and drain: the
    // quick loop while working on the worker.
    let only = std::env::var("BENCH_ONLY").ok();
    let drain_only = only.as_deref() == Some("drain");
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    // `BENCH_ONLY=latency` measures the latency alone, at `BENCH_RATE`
    // orders/s: the same rate for two builds, whatever their peaks.
    if only.as_deref() == Some("latency") {
        let rate = env_usize("BENCH_RATE", 100) as f64;
        print_latency(&latency_at(rate, latency_secs).await);
        remove_mail_dirs();
        return;
    }
    // `BENCH_ONLY=e2e` runs the end-to-end figure alone, at `BENCH_ORDERS`.
    if only.as_deref() == Some("e2e") {
        let e2e = end_to_end(orders_n, concurrency).await;
        println!("e2e_orders_per_s={:.0}", rate(orders_n, e2e.mailed));
        remove_mail_dirs();
        return;
    }

    // The median of three: one short run of the floor moved between 8,000
    // and 18,000/s from one run of the suite to the next on the same
    // machine, and every ratio is taken against it.
    let floors = floor_runs(floor_n, FloorClient::OneAtATime).await;
    let floor = floors[FLOOR_RUNS / 2];
    let floor_rate = rate(floor_n, floor);
    let drained = intake_then_drain(drain_n, concurrency).await;
    let intake_rate = rate(drain_n, drained.intake);
    let drain_rate = rate(drain_n, drained.drain);
    let rss_mb = drained.rss_peak_kb as f64 / 1024.0;
    // The pipelined floor is for comparison only: measured after the
    // phases, nothing of it (the broker still writing its log behind the
    // confirms) runs into them.
    let pipelined_floor = async {
        let pipelined = floor_runs(floor_n, FloorClient::Pipelined).await;
        rate(floor_n, pipelined[FLOOR_RUNS / 2])
    };
    if drain_only {
        let pipelined_rate = pipelined_floor.await;
        println!("broker_floor_msgs_per_s={floor_rate:.0}");
        println!("broker_floor_pipelined_msgs_per_s={pipelined_rate:.0}");
        println!("intake_orders_per_s={intake_rate:.0}");
        println!("drain_jobs_per_s={drain_rate:.0}");
        println!("worker_rss_mb={rss_mb:.0}");
        print_drain_cpu(&drained, drain_n, cores);
        remove_mail_dirs();
        return;
    }
    let e2e = end_to_end(orders_n, concurrency).await;
    let e2e_rate = rate(orders_n, e2e.mailed);
    let latency = latency_at(e2e_rate / 2.0, latency_secs).await;
    let counts = count_per_order(count_n, concurrency).await;
    let pipelined_rate = pipelined_floor.await;

    println!("broker_floor_msgs_per_s={floor_rate:.0}");
    println!("intake_orders_per_s={intake_rate:.0}");
    println!("e2e_orders_per_s={e2e_rate:.0}");
    println!("drain_jobs_per_s={drain_rate:.0}");
    println!("p99_accept_to_issued_ms={:.1}", latency.p99_issued_ms);
    println!("p99_http_202_ms={:.1}", latency.p99_http_ms);
    println!(
        "statements_per_order={:.1}",
        counts.statements as f64 / counts.orders as f64
    );
    println!(
        "commits_per_order={:.2}",
        counts.commits as f64 / counts.orders as f64
    );
    println!("worker_rss_mb={rss_mb:.0}");
    println!("broker_floor_pipelined_msgs_per_s={pipelined_rate:.0}");

    let ratio = |x: f64| x / floor_rate;
    println!();
    println!("{cores} cores; every ratio is against the floor measured in this run");
    println!(
        "floor    {floor_n} msgs, publish+confirm+consume+ack: {floor:>8.2?}  {floor_rate:>7.0}/s  (median of {})",
        floors
            .iter()
            .map(|took| format!("{:.0}/s", rate(floor_n, *took)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "         pipelined client (publishes polled {PIPELINED_PUBLISHES} together, acks with multiple per {PIPELINED_ACKS}): {pipelined_rate:.0}/s = {:.2} x floor",
        pipelined_rate / floor_rate
    );
    println!(
        "intake   {drain_n} orders answered 202, workers off: {:>8.2?}  {intake_rate:>7.0}/s  = {:.2} x floor (target 0.5), {:.2} x pipelined",
        drained.intake,
        ratio(intake_rate),
        intake_rate / pipelined_rate
    );
    println!(
        "drain    {drain_n} license.new jobs by `fulfil worker`: {:>8.2?}  {drain_rate:>7.0}/s  = {:.2} x floor (target 0.5), {:.2} x pipelined; all mails sent after {:.2?}",
        drained.drain,
        ratio(drain_rate),
        drain_rate / pipelined_rate,
        drained.mails
    );
    print_drain_cpu(&drained, drain_n, cores);
    println!(
        "e2e      {orders_n} orders: all 202 after {:.2?}, all active after {:.2?}, all mailed after {:.2?}: {e2e_rate:.0}/s = {:.2} x floor (target 0.25), {:.2} x pipelined",
        e2e.accepted,
        e2e.active,
        e2e.mailed,
        ratio(e2e_rate),
        e2e_rate / pipelined_rate
    );
    println!(
        "         produced {} distinct keys, {} .eml files (with the warm-up order's)",
        e2e.keys, e2e.files
    );
    print_latency(&latency);
    println!(
        "counts   {} orders: {} statements ({} of them BEGIN/COMMIT/ROLLBACK/SAVEPOINT), {} commits",
        counts.orders, counts.statements, counts.tx_control, counts.commits
    );
    println!("worker   peak RSS of `fulfil worker` while draining: {rss_mb:.0} MB (target 150)");
    println!("statements per order, by sqlx's summary (counting run):");
    for (summary, count) in BY_SUMMARY.lock().unwrap().iter() {
        println!("  {:>6.2}  {summary}", *count as f64 / counts.orders as f64);
    }

    if let Some(growth) = growth {
        let largest: usize = growth.parse().unwrap_or(10_000);
        println!();
        println!("growth: e2e throughput as the tables grow (fresh database per run)");
        for n in [1_000, 10_000, 100_000]
            .into_iter()
            .filter(|n| *n <= largest.max(10_000))
        {
            let run = end_to_end(n, concurrency).await;
            let r = rate(n, run.mailed);
            println!(
                "growth_e2e_orders_per_s{{n={n}}}={r:.0}  ({:.2} x floor)",
                ratio(r)
            );
        }
    }
    remove_mail_dirs();
}
