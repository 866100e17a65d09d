use fulfil::licensing::certificate;
use fulfil::licensing::key::LicenseKey;
use serde_json::json;

use crate::support::{new_order, spawn_app, wait_for};

#[tokio::test]
async fn new_order_issues_signed_keys_and_mails_the_contact() {
    // Arrange
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    // Act
    let accepted = app.order(&token, &new_order("hypervisor", 3)).await;
    let order_id = accepted["order_id"].as_str().unwrap();

    // Assert: the 202 names the job, the resource, its URL and the SLA.
    assert!(accepted["job_id"].is_string());
    assert_eq!(
        accepted["status_url"],
        format!("/v1/license-orders/{order_id}")
    );
    assert!(accepted["sla_deadline"].is_string());

    let order = app.until_active(&token, order_id).await;
    assert!(
        order["vendor_order_id"]
            .as_str()
            .unwrap()
            .starts_with("VO-")
    );
    let licenses = order["licenses"].as_array().unwrap();
    assert_eq!(licenses.len(), 3);
    let public_key = fulfil::licensing::load_signer(&app.settings.license)
        .unwrap()
        .public_key();
    for license in licenses {
        let key = license["key"].as_str().unwrap();
        LicenseKey::parse(key).expect("issued keys carry a valid check character");
        let claims =
            certificate::verify(license["certificate"].as_str().unwrap(), &public_key).unwrap();
        assert_eq!(claims.key, key);
        assert_eq!(claims.order_id.to_string(), order_id);
        assert_eq!(claims.vm_count, Some(4));
    }
    let request = &order["requests"][0];
    assert_eq!(request["kind"], "new");
    assert_eq!(
        request["sla_met"], true,
        "the SLA was met and recorded: {request}"
    );

    let job = app
        .get(accepted["job_url"].as_str().unwrap(), &token)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempt_log"][0]["outcome"], "succeeded");

    // The mail reaches the contact, lists every key and carries the certificates.
    assert!(
        wait_for(std::time::Duration::from_secs(20), || async {
            app.mail_files().len() == 1
        })
        .await
    );
    let mail = &app.mail_files()[0];
    assert!(
        mail.contains("To: \"Hanako Sato\" <hanako@example.com>"),
        "the contact's name and address: {mail}"
    );
    assert!(mail.contains("license-certificates.txt"));
    let body = decoded_text(mail);
    for license in licenses {
        assert!(
            body.contains(license["key"].as_str().unwrap()),
            "mail lists every key"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn japanese_contact_gets_the_japanese_mail() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut body = new_order("virtual", 1);
    body["contact"] = json!({ "name": "山田 太郎", "email": "taro@example.jp", "locale": "ja" });

    let accepted = app.order(&token, &body).await;
    app.until_active(&token, accepted["order_id"].as_str().unwrap())
        .await;

    assert!(
        wait_for(std::time::Duration::from_secs(20), || async {
            app.mail_files().len() == 1
        })
        .await
    );
    let raw = &app.mail_files()[0];
    let text = decoded_text(raw);
    assert!(text.contains("山田 太郎"), "{text}");
    // The To: header carries the name fulfil knows, encoded for the wire.
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let to = mailparse::MailHeaderMap::get_first_value(&mail.headers[..], "To").unwrap();
    assert!(
        to.contains("山田 太郎") && to.contains("<taro@example.jp>"),
        "{to}"
    );
    assert!(text.contains("ライセンス"), "{text}");
    app.cleanup().await;
}

/// The decoded text/plain part of a mail the file transport wrote.
pub fn decoded_text(raw: &str) -> String {
    let mail = mailparse::parse_mail(raw.as_bytes()).expect("a well-formed mail");
    let text = std::iter::once(&mail)
        .chain(mail.subparts.iter())
        .find(|part| part.ctype.mimetype == "text/plain")
        .expect("a text part");
    text.get_body().unwrap()
}

#[tokio::test]
async fn jobs_orders_and_requests_are_never_deleted_so_their_references_need_no_check() {
    // Arrange: an order's outbox rows, request, audit events and mail name
    // their jobs, and its keys and request their order, without foreign
    // keys (20261206000026, 20261206000028): what keeps those references
    // whole is that these rows stay, with their ids.
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let accepted = app.order(&token, &new_order("hypervisor", 1)).await;
    let order_id = accepted["order_id"].as_str().unwrap();
    app.until_active(&token, order_id).await;

    for table in ["jobs", "license_orders", "license_requests"] {
        let rows = app.count(&format!("select count(*) from {table}")).await;

        // Act
        let deleted = sqlx::query(&format!("delete from {table}"))
            .execute(&app.pool)
            .await;
        let renamed = sqlx::query(&format!(
            "update {table} set id = gen_random_uuid() where id = (select id from {table} limit 1)"
        ))
        .execute(&app.pool)
        .await;

        // Assert: both refused as references that would dangle, and
        // nothing changed.
        for refused in [deleted, renamed] {
            let error = refused.expect_err("refused");
            let code = error.as_database_error().and_then(|e| e.code());
            assert_eq!(code.as_deref(), Some("23503"), "{table}: {error}");
        }
        let after = app.count(&format!("select count(*) from {table}")).await;
        assert_eq!(after, rows, "{table}");
    }
    let job = app.get(accepted["job_url"].as_str().unwrap(), &token).await;
    assert_eq!(job.status(), 200);
    let order = app
        .get(&format!("/v1/license-orders/{order_id}"), &token)
        .await;
    assert_eq!(order.status(), 200);
    app.cleanup().await;
}
