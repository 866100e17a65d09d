//! Test support: a fresh database and a unique AMQP name prefix per test,
//! the app started in-process (or as a real `fulfil` child process), and
//! polling helpers with deadlines instead of sleeps.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use fulfil::app::{Application, Components};
use fulfil::licensing::certificate::Signer;
use fulfil::settings::Settings;
use fulfil::store::tokens::{self, Role};
use nix::fcntl::{Flock, FlockArg};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub const ADMIN_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test's database acted on from the server's admin database, as a
/// restart of PostgreSQL would: its connections refused, the open ones
/// dropped, then allowed again. The database itself stays.
pub struct DatabaseOutage {
    database: String,
    admin: PgPool,
}

impl DatabaseOutage {
    pub async fn of(settings: &Settings) -> DatabaseOutage {
        DatabaseOutage {
            database: fulfil::store::database_name(&settings.database).unwrap(),
            admin: PgPool::connect(ADMIN_DATABASE_URL).await.unwrap(),
        }
    }

    /// New connections to the database are refused.
    pub async fn refuse_connections(&self) {
        self.allow(false).await;
    }

    pub async fn allow_connections(&self) {
        self.allow(true).await;
    }

    async fn allow(&self, yes: bool) {
        let database = &self.database;
        let sql = format!("alter database \"{database}\" with allow_connections {yes}");
        sqlx::query(&sql).execute(&self.admin).await.unwrap();
    }

    /// Every open connection to the database ends.
    pub async fn drop_connections(&self) {
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(&self.database)
            .execute(&self.admin)
            .await
            .unwrap();
    }

    pub async fn close(self) {
        self.admin.close().await;
    }
}

/// The machine's one RabbitMQ broker is shared by every test process on
/// it -- this worktree's and any other's, each `cargo test` -- and
/// tests/broker_restart.rs stops it for all of them. Cargo running test
/// binaries one after another keeps that binary from overlapping the other
/// binaries of the same run, not from overlapping another run: a restart in
/// the middle of, say, `role_cleanup_run_twice_…` holds its jobs back for
/// the whole outage plus the reconnect backoff, past the test's wait.
///
/// So every test process holds a shared lock on one well-known file for
/// its lifetime, taken before it first touches the broker, and the broker
/// restart converts its own to exclusive ([`own_the_broker`]) before
/// stopping it: the restart waits until no other test process is running,
/// and test processes that start meanwhile wait until it is over.
static BROKER_LOCK: OnceLock<Flock<File>> = OnceLock::new();

fn broker_lock() -> &'static Flock<File> {
    BROKER_LOCK.get_or_init(|| {
        let path = std::env::temp_dir().join("fulfil-test-broker.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        Flock::lock(file, FlockArg::LockShared)
            .unwrap_or_else(|(_, errno)| panic!("shared lock on {}: {errno}", path.display()))
    })
}

/// Takes this process's shared hold on the broker (once; it lasts until
/// the process exits). Blocks while another process restarts the broker.
pub fn share_the_broker() {
    broker_lock();
}

/// Makes this process the broker's only user: blocks until every other
/// test process has exited, and keeps new ones waiting until this one
/// exits. For tests that stop the broker.
pub fn own_the_broker() {
    broker_lock()
        .relock(FlockArg::LockExclusive)
        .expect("exclusive lock on the broker lock file");
}

/// Settings for one isolated test: its own database, AMQP prefix and mail
/// directory, fast retries, any free port. Holds the broker for the
/// process (see [`share_the_broker`]).
pub fn test_settings() -> Settings {
    share_the_broker();
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from(&config_dir).expect("test settings load");
    let id = Uuid::new_v4().simple().to_string();
    settings.database.url = SecretString::from(format!(
        "postgres://postgres@127.0.0.1:5432/fulfil_test_{id}"
    ));
    settings.database.max_connections = 6;
    settings.amqp.prefix = format!("test-{}.", &id[..12]);
    settings.amqp.prefetch = 8;
    settings.amqp.queue_expires = Some(Duration::from_secs(600));
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.mail.dir = std::env::temp_dir().join(format!("fulfil-test-mail-{id}"));
    settings.license.signing_key = Some(SecretString::from(Signer::generate().seed_base64()));
    settings.jobs.backoff_base = Duration::from_millis(50);
    settings.jobs.backoff_max = Duration::from_millis(400);
    settings.jobs.shutdown_grace = Duration::from_secs(10);
    settings.outbox.poll_interval = Duration::from_millis(200);
    // Tests run sweeps when they mean to; the scheduler test turns it on.
    settings.scheduler.enabled = false;
    settings
}

pub struct TestApp {
    pub settings: Settings,
    components: Components,
    pub addr: Option<std::net::SocketAddr>,
    pub pool: PgPool,
    pub client: reqwest::Client,
    app: Option<Application>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings(), Components::everything()).await
}

/// A running app whose one mail died: SMTP points at a closed port with
/// one attempt, and a registration's mail was dead-lettered.
pub struct DeadMail {
    pub app: TestApp,
    /// The settings it ran on, to restart it fixed (mail to files, say).
    pub settings: Settings,
    pub portal: String,
    pub operator: String,
}

pub async fn a_dead_registration_mail() -> DeadMail {
    let mut settings = test_settings();
    settings.mail.transport = fulfil::settings::MailTransportKind::Smtp;
    settings.mail.smtp_url = SecretString::from("smtp://127.0.0.1:9".to_owned());
    settings.jobs.max_attempts = 1;
    let app = spawn_with(settings.clone(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let body = json!({ "email": "new@cust.example" });
    let accepted = app.post("/v1/registrations", &portal, "reg-1", &body).await;
    assert_eq!(accepted.status(), 202);
    let died = wait_for(Duration::from_secs(30), || async {
        app.count("select count(*) from dead_letters").await == 1
    })
    .await;
    assert!(died, "the mail was dead-lettered");
    DeadMail {
        app,
        settings,
        portal,
        operator,
    }
}

pub async fn spawn_with(settings: Settings, components: Components) -> TestApp {
    fulfil::telemetry::init();
    let app = Application::build(settings.clone(), components.clone())
        .await
        .expect("app starts");
    TestApp {
        components,
        addr: app.addr(),
        pool: app.pool().clone(),
        settings,
        // A request that never answers fails the test instead of hanging it.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        app: Some(app),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.addr.expect("this app runs the API"),
            path
        )
    }

    pub async fn token(&self, role: Role, partner: Option<&str>) -> String {
        tokens::create_token(&self.pool, "test", role, partner, None)
            .await
            .unwrap()
            .1
    }

    pub async fn portal_token(&self, partner: &str) -> String {
        self.token(Role::Portal, Some(partner)).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a new order and returns the 202 body.
    pub async fn order(&self, token: &str, body: &Value) -> Value {
        let response = self
            .post(
                "/v1/license-orders",
                token,
                &Uuid::new_v4().to_string(),
                body,
            )
            .await;
        assert_eq!(response.status(), 202, "order accepted");
        response.json().await.unwrap()
    }

    pub async fn order_view(&self, token: &str, order_id: &str) -> Value {
        let response = self
            .get(&format!("/v1/license-orders/{order_id}"), token)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Orders and waits until the order is active; returns its id.
    pub async fn active_order(&self, token: &str, body: &Value) -> String {
        let order_id = self.order(token, body).await["order_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.until_active(token, &order_id).await;
        order_id
    }

    /// Waits until the order is active with every key issued.
    pub async fn until_active(&self, token: &str, order_id: &str) -> Value {
        let all = |order: &Value, list: &str, status: &str| {
            order[list]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["status"] == status)
        };
        poll_until(
            &format!("order {order_id} active"),
            || self.order_view(token, order_id),
            |order| {
                order["status"] == "active"
                    && all(order, "licenses", "issued")
                    && all(order, "requests", "done")
            },
        )
        .await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// The `.eml` files the file transport wrote.
    pub fn mail_files(&self) -> Vec<String> {
        mail_files(&self.settings)
    }

    /// Stops the app's parts; the test keeps a pool on its database.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            // Shutdown is bounded by the job grace period; past a minute
            // something hangs, and the test says so instead of blocking.
            tokio::time::timeout(Duration::from_secs(60), app.stop())
                .await
                .expect("the app stopped within 60 s");
            self.pool = PgPool::connect(self.settings.database.url.expose_secret())
                .await
                .unwrap();
        }
    }

    /// Restarts the app with its business clock starting at `now` (the
    /// documented `clock.now` setting): the way tests live through days.
    pub async fn travel_to(&mut self, now: chrono::DateTime<chrono::Utc>) {
        self.stop().await;
        self.settings.clock.now = Some(now);
        let app = Application::build(self.settings.clone(), self.components.clone())
            .await
            .expect("app restarts");
        self.addr = app.addr();
        self.pool = app.pool().clone();
        self.app = Some(app);
    }

    /// PUTs a directory entry and expects success.
    pub async fn put_ok(&self, path: &str, token: &str, body: &Value) {
        let response = self
            .client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        assert!(
            response.status().is_success(),
            "PUT {path}: {}",
            response.status()
        );
    }

    /// The one-time token in the newest mail whose link starts with
    /// `prefix` (`rel_`, `pship_`, `reg_`), read from the mail row itself,
    /// so it works whether or not a mail worker runs.
    pub async fn link_token(&self, prefix: &str) -> String {
        let bodies: Vec<String> =
            sqlx::query_scalar("select body from mails order by created_at desc, id desc")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        bodies
            .iter()
            .find_map(|body| token_in(body, prefix))
            .unwrap_or_else(|| panic!("no mail carries a {prefix} link"))
    }

    /// `requester` asks `customer` for a reseller relationship, and the
    /// customer accepts through `host`, the portal that hosts its page (a
    /// partner that already acts for it): the way access is granted.
    pub async fn grant_relationship(&self, requester: &str, host: &str, customer: &str) {
        let asked = self
            .post(
                "/v1/relationship-requests",
                requester,
                &Uuid::new_v4().to_string(),
                &json!({ "customer_id": customer, "customer_admin_email": "admin@cust.example" }),
            )
            .await;
        assert_eq!(asked.status(), 202, "relationship requested");
        let token = self.link_token("rel_").await;
        let accepted = self
            .post(
                &format!("/v1/relationship-requests/{token}/acceptance"),
                host,
                &Uuid::new_v4().to_string(),
                &json!({}),
            )
            .await;
        assert_eq!(accepted.status(), 200, "relationship accepted");
    }

    /// A portal token whose partner holds `customer` in the directory, as
    /// an order needs (its customer must be one the partner acts for).
    pub async fn portal_with_customer(&self, partner: &str, customer: &str) -> String {
        let token = self.portal_token(partner).await;
        sqlx::query(
            "insert into customers (id, partner_id) values ($1, $2) on conflict (id) do nothing",
        )
        .bind(customer)
        .bind(partner)
        .execute(&self.pool)
        .await
        .unwrap();
        token
    }

    /// Stops the app and removes its database and queues.
    pub async fn cleanup(mut self) {
        self.stop().await;
        cleanup(&self.settings).await;
    }
}

/// The token of the first link in `body` whose token starts with `prefix`.
pub fn token_in(body: &str, prefix: &str) -> Option<String> {
    let start = body.find(&format!("token={prefix}"))? + "token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    Some(token)
}

pub fn mail_files(settings: &Settings) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&settings.mail.dir) else {
        return Vec::new();
    };
    let mut mails: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    mails.sort();
    mails
}

pub async fn cleanup(settings: &Settings) {
    if let Ok(connection) = fulfil::broker::connect(&settings.amqp, "test-cleanup").await {
        if let Ok(channel) = connection.create_channel().await {
            let topology = fulfil::broker::topology::Topology::new(&settings.amqp);
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
    let name = fulfil::store::database_name(&settings.database).unwrap();
    if let Ok(admin) = PgPool::connect(ADMIN_DATABASE_URL).await {
        let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
            .execute(&admin)
            .await;
    }
    let _ = std::fs::remove_dir_all(&settings.mail.dir);
}

/// Fetches a JSON view until `done` holds, for at most 30 s; fails naming
/// `what` and showing the last view.
pub async fn poll_until<F, Fut>(what: &str, mut fetch: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = fetch().await;
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached: {what}; last seen: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it holds or `limit` passes.
pub async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn new_order(usage: &str, quantity: i32) -> Value {
    let mut body = json!({
        "customer_id": "cust-1",
        "usage": usage,
        "quantity": quantity,
        "contact": { "name": "Hanako Sato", "email": "hanako@example.com", "locale": "en" }
    });
    if usage == "hypervisor" {
        body["vm_count"] = json!(4);
    }
    body
}

/// The environment that makes a `fulfil` child process use these settings.
pub fn settings_env(settings: &Settings) -> Vec<(String, String)> {
    vec![
        (
            "FULFIL__DATABASE__URL".into(),
            settings.database.url.expose_secret().to_owned(),
        ),
        (
            "FULFIL__DATABASE__MAX_CONNECTIONS".into(),
            settings.database.max_connections.to_string(),
        ),
        (
            "FULFIL__AMQP__URL".into(),
            settings.amqp.url.expose_secret().to_owned(),
        ),
        ("FULFIL__AMQP__PREFIX".into(), settings.amqp.prefix.clone()),
        (
            "FULFIL__AMQP__PREFETCH".into(),
            settings.amqp.prefetch.to_string(),
        ),
        ("FULFIL__AMQP__QUEUE_EXPIRES".into(), "10m".into()),
        ("FULFIL__HTTP__ADDR".into(), "127.0.0.1:0".into()),
        (
            "FULFIL__MAIL__DIR".into(),
            settings.mail.dir.display().to_string(),
        ),
        (
            "FULFIL__LICENSE__SIGNING_KEY".into(),
            settings
                .license
                .signing_key
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned(),
        ),
        ("FULFIL__JOBS__BACKOFF_BASE".into(), "50ms".into()),
        ("FULFIL__JOBS__BACKOFF_MAX".into(), "400ms".into()),
        ("FULFIL__OUTBOX__POLL_INTERVAL".into(), "200ms".into()),
        (
            "FULFIL__SCHEDULER__ENABLED".into(),
            settings.scheduler.enabled.to_string(),
        ),
        (
            "FULFIL__SCHEDULER__TRIAL_NOTICES".into(),
            settings.scheduler.trial_notices.clone(),
        ),
        ("RUST_LOG".into(), "warn".into()),
    ]
}

/// A `fulfil` child process, killed when dropped so that a failing test
/// leaves no process behind.
pub struct ChildProcess(pub Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `fulfil ARGS…` as a real child process on these settings.
pub fn spawn_process(settings: &Settings, args: &[&str]) -> ChildProcess {
    spawn_process_with(settings, args, &[], std::process::Stdio::inherit())
}

/// [`spawn_process`] with more environment and its log (stderr) sent to
/// `log`.
pub fn spawn_process_with(
    settings: &Settings,
    args: &[&str],
    env: &[(&str, &str)],
    log: impl Into<std::process::Stdio>,
) -> ChildProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(settings_env(settings))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("fulfil starts");
    ChildProcess(child)
}

/// Publishes raw bytes straight onto a job queue, as a broken or hostile
/// producer would; returns the AMQP message id it gave them.
pub async fn publish_raw(settings: &Settings, queue: &str, body: &[u8]) -> String {
    let message_id = format!("raw-{}", uuid::Uuid::new_v4().simple());
    let connection = fulfil::broker::connect(&settings.amqp, "test-publisher")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    // The app's workers declare the queues when they connect, which may
    // not have happened yet; declaring is idempotent, and `mandatory`
    // makes a message no queue takes fail here instead of vanishing.
    fulfil::broker::topology::Topology::new(&settings.amqp)
        .declare(&channel)
        .await
        .unwrap();
    let mandatory = lapin::options::BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            mandatory,
            body,
            lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(message_id.clone().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirm, lapin::Confirmation::Ack(None)),
        "raw message confirmed and routed to {queue}: {confirm:?}"
    );
    connection.close(200, "done".into()).await.unwrap();
    message_id
}
