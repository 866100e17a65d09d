//! The `/ops` dashboard in a real browser (issue 6): Debian's headless
//! Chromium, driven by playwright-core (tests/browser/dashboard.mjs), signs
//! in with an operator token, finds the dead letter a failing SMTP server
//! left, replays it with the button, and waits for the page to show the
//! job done. Then the database must agree: one mail sent, one audited
//! replay by that token. The screenshot is kept in target/screenshots/.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it) and Node.js; the npm
//! package is installed from tests/browser/package-lock.json when missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fulfil::app::Components;
use fulfil::settings::MailTransportKind;
use fulfil::store::tokens::Role;
use serde_json::Value;
use support::{DeadMail, a_dead_registration_mail, spawn_with, test_settings};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// playwright-core, from the lock file, the first time.
fn ensure_playwright() {
    if browser_dir().join("node_modules/playwright-core").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(browser_dir())
        .status()
        .expect("npm runs (Node.js is needed for the browser test)");
    assert!(status.success(), "npm ci in tests/browser failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_dead_letter_from_the_dashboard() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the dashboard test needs Debian's Chromium: apt-get install chromium"
    );
    ensure_playwright();

    // SMTP to a closed port and one attempt: the registration mail died.
    let DeadMail {
        mut app,
        mut settings,
        operator,
        ..
    } = a_dead_registration_mail().await;

    // The fix (mail to files), then the operator at the dashboard.
    app.stop().await;
    settings.mail.transport = MailTransportKind::File;
    let fixed = spawn_with(settings, Components::everything()).await;
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let screenshot = screenshots.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = tokio::process::Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("BASE_URL", fixed.url(""))
        .env("OPERATOR_TOKEN", &operator)
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the browser run ends within 2 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(result["job_status"], "succeeded");

    // What the page showed is what happened.
    assert_eq!(
        fixed
            .count("select count(*) from mails where status = 'sent'")
            .await,
        1
    );
    assert_eq!(fixed.mail_files().len(), 1);
    let replayed = fixed
        .count(&format!(
            "select count(*) from dead_letters where replayed_at is not null and id = '{}'",
            result["dead_letter"].as_str().unwrap()
        ))
        .await;
    assert_eq!(replayed, 1);
    let audited = fixed
        .count(
            "select count(*) from audit_events a join api_tokens t on t.id = a.token_id
             where a.action = 'dead_letter.replay' and t.role = 'operator'",
        )
        .await;
    assert_eq!(
        audited, 1,
        "the replay is audited with the operator's token"
    );
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    fixed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_refuses_other_tokens_and_foreign_posts() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let signed_out = client.get(app.url("/ops")).send().await.unwrap();
    assert_eq!(signed_out.status(), 200);
    assert!(signed_out.text().await.unwrap().contains("name=\"token\""));

    let as_portal = client
        .post(app.url("/ops/login"))
        .form(&[("token", portal.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_portal.status(), 401, "a portal token does not sign in");
    assert!(as_portal.headers().get("set-cookie").is_none());

    let sign_in = || async {
        let signed_in = client
            .post(app.url("/ops/login"))
            .form(&[("token", operator.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303);
        signed_in.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let cookie = sign_in().await;
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Max-Age=43200"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(&operator),
        "the browser holds a session secret, not the token"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let signed_in_page = |session: String| {
        let client = client.clone();
        let url = app.url("/ops");
        async move {
            let html = client
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            !html.contains("name=\"token\"")
        }
    };

    // A dead letter replayed an hour ago, then sixty newer ones still open:
    // more than the page lists, yet the replayed one is still shown.
    let long_replayed = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into dead_letters (id, kind, queue, reason, body, created_at, replayed_at)
         values ($1, 'mail.send', 'q', 'old', '', now() - interval '2 hours', now() - interval '1 hour')",
    )
    .bind(long_replayed)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into dead_letters (id, kind, queue, reason, body, created_at)
         select gen_random_uuid(), 'mail.send', 'q', 'new', '', now() - n * interval '1 second'
         from generate_series(1, 60) n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let page = client
        .get(app.url("/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"dead-letters\"") && html.contains("http-equiv=\"refresh\""));
    assert!(!html.contains(&operator), "the page never shows the token");
    assert!(
        html.contains(&format!("data-dead-letter=\"{long_replayed}\"")),
        "recently replayed is not crowded out by open dead letters"
    );

    // Another site's form, riding the cookie, is refused and changes nothing.
    let foreign = client
        .post(app.url(&format!(
            "/ops/dead-letters/{}/replay",
            uuid::Uuid::new_v4()
        )))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert_eq!(
        app.count("select count(*) from audit_events where action = 'dead_letter.replay'")
            .await,
        0
    );

    // Signing out ends the session on the server, not just in the browser.
    let signed_out = client
        .post(app.url("/ops/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    assert!(
        !signed_in_page(session.clone()).await,
        "the old cookie no longer signs in"
    );
    // An expired session, and a live one whose token is revoked, end too.
    let expiring = sign_in().await.split(';').next().unwrap().to_owned();
    assert!(signed_in_page(expiring.clone()).await);
    sqlx::query("update ops_sessions set expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(!signed_in_page(expiring).await, "expired");
    let revoking = sign_in().await.split(';').next().unwrap().to_owned();
    assert!(signed_in_page(revoking.clone()).await);
    sqlx::query("update api_tokens set revoked_at = now() where role = 'operator'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(!signed_in_page(revoking).await, "token revoked");
    assert_eq!(
        app.count(
            "select count(*) from audit_events a join api_tokens t on t.id = a.token_id
             where t.role = 'operator' and a.entity_type = 'ops_session'
               and a.action in ('ops.signed_in', 'ops.signed_out')"
        )
        .await,
        4,
        "three sign-ins and one sign-out, each with the operator's token"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailed_sign_up_link_takes_the_application_in_a_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the browser test needs Debian's Chromium: apt-get install chromium"
    );
    ensure_playwright();
    let app = spawn_with(test_settings(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let accepted = app
        .post(
            "/v1/registrations",
            &portal,
            "reg-browser",
            &serde_json::json!({ "email": "browser@cust.example" }),
        )
        .await;
    assert_eq!(accepted.status(), 202);
    // The mailed link, pointed at this test's server instead of :8080.
    let token = app.link_token("reg_").await;
    let link = app.url(&format!("/register?token={token}"));
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/signup.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();

    let output = tokio::process::Command::new("node")
        .arg(browser_dir().join("signup.mjs"))
        .env("LINK", &link)
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the browser run ends within 2 minutes")
        .expect("node runs");

    assert!(
        output.status.success(),
        "the browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        app.count(
            "select count(*) from registrations where status = 'applied'
               and application->'organisation'->>'name' = 'Browser KK'
               and application->'services'->'aws'->>'plan' = 'direct_contract'"
        )
        .await,
        1,
        "the application the browser filled in awaits review"
    );
    app.cleanup().await;
}
