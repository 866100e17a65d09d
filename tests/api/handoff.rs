//! A process that runs `mail.send` sends the mail its own workers queue
//! itself, without a job; the mail gets its job, and goes through the
//! broker, when that send fails or does not happen within the grace.

use std::sync::Arc;
use std::time::Duration;

use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::mail::contexts::{Content, Registration};
use fulfil::mail::handoff::Handoff;
use fulfil::mail::queue::{MailRequest, Mailer, queue_rendered, render_mail};

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// The outbox row of the mail's job, while it has one: whether it is due
/// for the relay. A row is deleted once its job is published.
async fn mail_outbox_row(app: &TestApp) -> Option<bool> {
    sqlx::query_scalar(
        "select o.available_at <= now()
         from outbox o join jobs j on j.id = o.job_id
         where j.kind = 'mail.send'",
    )
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// Waits until the one mail of the test is sent.
async fn one_mail_sent(app: &TestApp) -> bool {
    wait_for(Duration::from_secs(30), || async {
        app.count("select count(*) from mails where status = 'sent'")
            .await
            == 1
    })
    .await
}

#[tokio::test]
async fn mail_queued_by_a_process_that_sends_mail_itself_never_waits_for_the_broker() {
    // Arrange: the relay may not publish a held row for an hour, so a
    // mail sent within the test was handed over in the process.
    let mut settings = test_settings();
    settings.outbox.handoff_grace = HOUR;
    let app = spawn_with(settings, Components::everything()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    // Act
    app.active_order(&token, &new_order("virtual", 2)).await;

    // Assert
    let sent = one_mail_sent(&app).await;
    assert!(sent, "the order's mail was sent");
    assert_eq!(
        app.count("select count(*) from jobs where kind = 'mail.send'")
            .await,
        0,
        "the mail was sent without a job"
    );
    assert_eq!(mail_outbox_row(&app).await, None, "nor an outbox row");
    assert_eq!(
        app.count("select count(*) from mails where handoff_until is not null")
            .await,
        0,
        "the send ended the handoff"
    );
    assert_eq!(app.mail_files().len(), 1, "one mail file, written once");
    app.cleanup().await;
}

#[tokio::test]
async fn a_process_without_mail_send_hands_no_mail_over() {
    // Arrange: this process issues keys; another one would send the mail.
    let mut settings = test_settings();
    settings.outbox.handoff_grace = HOUR;
    let components = Components {
        workers: vec![JobKind::LicenseNew],
        ..Components::api_only()
    };
    let app = spawn_with(settings, components).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    // Act
    app.active_order(&token, &new_order("virtual", 1)).await;

    // Assert: the mail job's row was due at once (the grace is an hour),
    // and the relay published it.
    let published = wait_for(Duration::from_secs(30), || async {
        app.count("select count(*) from jobs where kind = 'mail.send'")
            .await
            == 1
            && mail_outbox_row(&app).await.is_none()
    })
    .await;
    assert!(published, "the relay published the mail job");
    app.cleanup().await;
}

/// Writes one mail handed off to a sender that is gone (its receiver
/// dropped, as in a crash after the commit); the id of the job it was
/// written for.
async fn hand_off_to_no_one(app: &TestApp, settings: &fulfil::settings::Settings) -> uuid::Uuid {
    let (to, gone) = tokio::sync::mpsc::channel(8);
    let handoff = Handoff::to(to, settings.outbox.handoff_grace);
    let mailer = Mailer::new(Arc::new(settings.clone()));
    let now = chrono::Utc::now();
    let request = MailRequest {
        cause: "handoff-test:1".into(),
        content: Content::of(&Registration {
            email: "new@cust.example",
            link: "https://example.test/r/abc",
            expires_at: now + chrono::TimeDelta::days(1),
            valid_hours: 24,
        }),
        locale: None,
        to: "new@cust.example",
        to_name: None,
        attachments: Vec::new(),
        partner_id: None,
    };
    let mail = render_mail(&mailer, request, now).unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    let queued = queue_rendered(&mut tx, std::slice::from_ref(&mail), &handoff)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(gone);
    handoff.release();
    queued[0].expect("the mail was written")
}

#[tokio::test]
async fn a_handed_off_mail_counts_as_waiting_mail_work_before_it_has_a_job() {
    // Arrange: a mail handed off to a sender that is gone, an hour of
    // grace: it has no job for the hour.
    let mut settings = test_settings();
    settings.outbox.handoff_grace = HOUR;
    let app = spawn_with(settings.clone(), Components::api_only()).await;
    hand_off_to_no_one(&app, &settings).await;

    // Act: the figures `fulfil queues` and /metrics show.
    let (kinds, _) = fulfil::ops::queues::database_figures(&app.pool)
        .await
        .unwrap();

    // Assert: the mail waits as `mail.send` work, with its age; no other
    // kind counts it, and there is no job.
    let figures_of = |kind: JobKind| kinds.iter().find(|k| k.kind == kind).unwrap();
    let mail = figures_of(JobKind::MailSend);
    assert_eq!(mail.waiting, 1, "the handed-off mail waits");
    assert!(mail.oldest_waiting.is_some(), "with its age");
    assert_eq!(figures_of(JobKind::LicenseNew).waiting, 0);
    assert_eq!(
        app.count("select count(*) from jobs").await,
        0,
        "a handed-off mail has no job"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_mail_handed_off_but_never_sent_gets_its_job_after_the_grace() {
    // Arrange: a process whose mail sender is gone (the receiver of its
    // handoff is dropped, as in a crash after the commit).
    let mut settings = test_settings();
    settings.outbox.handoff_grace = Duration::from_secs(1);
    let app = spawn_with(
        settings.clone(),
        Components::workers(vec![JobKind::MailSend]),
    )
    .await;

    // Act: the mail is committed and handed off to no one.
    let job_id = hand_off_to_no_one(&app, &settings).await;
    assert_eq!(
        app.count("select count(*) from jobs where kind = 'mail.send'")
            .await,
        0,
        "a handed-off mail has no job"
    );

    // Assert: after the grace a relay gives the mail its job, under the
    // id the mail was written with, and the worker sends it.
    let sent = one_mail_sent(&app).await;
    assert!(sent, "the held mail was sent through the broker");
    let done = wait_for(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, String>("select status from jobs where id = $1")
            .bind(job_id)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
            .as_deref()
            == Some("succeeded")
    })
    .await;
    assert!(done, "the mail's job succeeded");
    assert_eq!(app.mail_files().len(), 1, "sent once");
    app.cleanup().await;
}

#[tokio::test]
async fn a_mail_the_process_cannot_send_gets_its_job_with_the_error() {
    // Arrange: mail goes to an SMTP port where nothing listens; no relay
    // would take the mail within the test's hour of grace.
    let mut settings = test_settings();
    settings.outbox.handoff_grace = HOUR;
    settings.mail.transport = fulfil::settings::MailTransportKind::Smtp;
    settings.mail.smtp_url = secrecy::SecretString::from("smtp://127.0.0.1:1".to_owned());
    settings.jobs.max_attempts = 1;
    let app = spawn_with(settings, Components::everything()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    // Act
    app.active_order(&token, &new_order("virtual", 1)).await;

    // Assert: the failed send queued the mail's job, which ran and died.
    let dead = wait_for(Duration::from_secs(30), || async {
        app.count("select count(*) from jobs where kind = 'mail.send' and status = 'dead'")
            .await
            == 1
    })
    .await;
    assert!(dead, "the mail's job ran its one attempt");
    let (error, handed_off): (Option<String>, bool) =
        sqlx::query_as("select last_error, handoff_until is not null from mails")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        error.is_some_and(|e| e.contains("sending mail")),
        "the mail keeps why its send failed"
    );
    assert!(!handed_off, "the mail is its job's now");
    assert_eq!(
        app.count("select count(*) from mails where status = 'sent'")
            .await,
        0
    );
    app.cleanup().await;
}
