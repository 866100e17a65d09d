//! The real `fulfil` binary as a new user runs it (SPEC §2.3): commands that
//! only read create nothing, verification never mints a key, a revoked key
//! is not valid, and tokens are listed and revoked without their secrets.

use std::process::{Command, Output};

use fulfil::app::Components;
use fulfil::store::tokens::Role;
use serde_json::Value;

use crate::support::{
    ADMIN_DATABASE_URL, TestApp, new_order, settings_env, spawn_app, spawn_with, test_settings,
};

fn fulfil(env: &[(String, String)], dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().cloned())
        .output()
        .expect("fulfil runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn database_exists(name: &str) -> bool {
    let pool = sqlx::PgPool::connect(ADMIN_DATABASE_URL).await.unwrap();
    let exists = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    exists
}

#[tokio::test]
async fn read_only_commands_against_a_mistyped_database_fail_and_create_nothing() {
    let settings = test_settings();
    let name = format!("fulfil_typo_{}", uuid::Uuid::new_v4().simple());
    let mut env = settings_env(&settings);
    env.retain(|(key, _)| key != "FULFIL__DATABASE__URL");
    env.push((
        "FULFIL__DATABASE__URL".into(),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
    ));
    let dir = std::env::temp_dir();

    for args in [
        &["dead-letters", "list"][..],
        &["queues", "--json"],
        &["sweep", "trial-notices", "--dry-run"],
        &["token", "list"],
        &["license", "verify", "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"],
    ] {
        let output = fulfil(&env, &dir, args);
        assert!(!output.status.success(), "{args:?}: {output:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("does not exist") || args[0] == "license",
            "{args:?}: {stderr}"
        );
    }
    assert!(!database_exists(&name).await, "no database was created");
}

#[tokio::test]
async fn verify_never_creates_a_key_and_takes_the_public_key_from_where_fulfil_runs() {
    // A certificate signed where fulfil runs.
    let app = spawn_app().await;
    let portal = app.portal_with_customer("acme", "cust-1").await;
    let order = app.active_order(&portal, &new_order("virtual", 1)).await;
    let view = app.order_view(&portal, &order).await;
    let certificate = view["licenses"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = settings_env(&app.settings);
    let public = fulfil(&env, std::path::Path::new("."), &["license", "public-key"]);
    assert!(public.status.success(), "{public:?}");
    let public_key = text(&public.stdout).trim().to_owned();

    // Elsewhere: no signing key configured, an empty directory.
    let elsewhere = std::env::temp_dir().join(format!("fulfil-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut bare = env.clone();
    bare.retain(|(key, _)| key != "FULFIL__LICENSE__SIGNING_KEY");
    let without = fulfil(&bare, &elsewhere, &["license", "verify", &certificate]);
    let with = fulfil(
        &bare,
        &elsewhere,
        &[
            "license",
            "verify",
            &certificate,
            "--public-key",
            &public_key,
        ],
    );

    assert!(!without.status.success());
    assert!(
        text(&without.stderr).contains("fulfil license public-key"),
        "{without:?}"
    );
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "verify created nothing (no var/license-signing.key)"
    );
    assert!(with.status.success(), "{with:?}");
    assert!(text(&with.stdout).contains("valid certificate"), "{with:?}");
    std::fs::remove_dir_all(&elsewhere).ok();
    app.cleanup().await;
}

async fn cancel_all(app: &TestApp, portal: &str, order: &str) {
    let response = app
        .post(
            &format!("/v1/license-orders/{order}/cancellations"),
            portal,
            "cancel",
            &serde_json::json!({ "all": true }),
        )
        .await;
    assert_eq!(response.status(), 202);
    crate::support::poll_until(
        "keys revoked",
        || app.order_view(portal, order),
        |view| view["licenses"][0]["status"] == "revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_not_valid() {
    let app = spawn_app().await;
    let portal = app.portal_with_customer("acme", "cust-1").await;
    let order = app.active_order(&portal, &new_order("virtual", 1)).await;
    let key: String = sqlx::query_scalar("select key from licenses limit 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let env = settings_env(&app.settings);
    let dir = std::path::Path::new(".");
    let issued = fulfil(&env, dir, &["license", "verify", &key, "--json"]);
    assert!(issued.status.success(), "{issued:?}");

    cancel_all(&app, &portal, &order).await;
    let revoked = fulfil(&env, dir, &["license", "verify", &key, "--json"]);

    assert!(!revoked.status.success(), "{revoked:?}");
    let answer: Value = serde_json::from_slice(&revoked.stdout).unwrap();
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["status"], "revoked");
    app.cleanup().await;
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_a_revoked_one_answers_401_at_once() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let secret = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let env = settings_env(&app.settings);
    let dir = std::path::Path::new(".");
    assert_eq!(
        app.get("/v1/partners/acme", &secret).await.status(),
        200,
        "the token works"
    );

    let listed = fulfil(&env, dir, &["token", "list", "--json"]);
    assert!(listed.status.success(), "{listed:?}");
    let stdout = text(&listed.stdout);
    assert!(!stdout.contains(&secret) && !stdout.contains(&operator));
    let tokens: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tokens.len(), 2);
    let portal = tokens.iter().find(|t| t["role"] == "portal").unwrap();
    assert_eq!(portal["partner_id"], "acme");
    assert!(portal["revoked_at"].is_null());

    let id = portal["id"].as_str().unwrap();
    let revoked = fulfil(&env, dir, &["token", "revoke", id]);
    assert!(revoked.status.success(), "{revoked:?}");

    // The API's token cache hears of it through NOTIFY, a moment after the
    // commit: poll for it with a deadline.
    let refused = crate::support::wait_for(std::time::Duration::from_secs(5), || async {
        app.get("/v1/partners/acme", &secret).await.status() == 401
    })
    .await;
    assert!(refused, "the revoked token answers 401");
    let listed: Vec<Value> =
        serde_json::from_slice(&fulfil(&env, dir, &["token", "list", "--json"]).stdout).unwrap();
    let portal = listed.iter().find(|t| t["id"] == id).unwrap();
    assert!(!portal["revoked_at"].is_null());
    let unknown = fulfil(
        &env,
        dir,
        &["token", "revoke", &uuid::Uuid::new_v4().to_string()],
    );
    assert!(!unknown.status.success());
    app.cleanup().await;
}

#[tokio::test]
async fn queues_watch_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["queues", "--watch", "1"])
        .envs(settings_env(&app.settings))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // `fulfil queues --watch | head -1`: read a line, then hang up.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let exited = crate::support::wait_for(std::time::Duration::from_secs(15), || {
        std::future::ready(child.try_wait().unwrap().is_some())
    })
    .await;

    assert!(first.starts_with("queues at "), "{first}");
    assert!(exited, "the watch ends once its reader is gone");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        !text(&output.stderr).contains("Broken pipe"),
        "{}",
        text(&output.stderr)
    );
    app.cleanup().await;
}
