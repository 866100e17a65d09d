//! A process that runs `mail.send` sends the mail its own workers queue
//! without the broker; the outbox row held back meanwhile is the fallback
//! when that does not happen.

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
/// for the relay. A row is deleted once its job is published, or once the
/// local attempt it was handed to commits.
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
    // Held for an hour, the row was never the relay's to publish.
    assert_eq!(
        mail_outbox_row(&app).await,
        None,
        "the local attempt deleted the row"
    );
    let job_succeeded = app
        .count(
            "select count(*) from jobs where kind = 'mail.send'
             and status = 'succeeded' and attempts = 1 and started_at is not null",
        )
        .await;
    assert_eq!(
        job_succeeded, 1,
        "the mail job succeeded at its first attempt"
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

#[tokio::test]
async fn a_mail_job_held_for_a_handoff_that_never_came_is_published_after_the_grace() {
    // Arrange: a process whose mail worker is gone (the receiver of its
    // handoff is dropped, as in a crash after the commit).
    let mut settings = test_settings();
    settings.outbox.handoff_grace = Duration::from_secs(1);
    let app = spawn_with(
        settings.clone(),
        Components::workers(vec![JobKind::MailSend]),
    )
    .await;
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

    // Act: the mail is queued for the handoff and committed; the handoff
    // finds no one to take it.
    let mut tx = app.pool.begin().await.unwrap();
    let queued = queue_rendered(&mut tx, std::slice::from_ref(&mail), &handoff)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(gone);
    handoff.release();
    assert!(queued[0].is_some(), "the mail and its job were queued");
    assert_eq!(
        mail_outbox_row(&app).await,
        Some(false),
        "the row is held for the grace"
    );

    // Assert: after the grace the relay publishes it and the worker sends it.
    let sent = one_mail_sent(&app).await;
    assert!(sent, "the held mail was sent through the broker");
    // The relay deletes the row when it commits, after the broker's
    // confirm: the worker may have sent the mail by then.
    let deleted = wait_for(Duration::from_secs(10), || async {
        mail_outbox_row(&app).await.is_none()
    })
    .await;
    assert!(deleted, "the relay deleted the row");
    assert_eq!(app.mail_files().len(), 1, "sent once");
    app.cleanup().await;
}
