//! Registrations (SPEC §1.4): the mailed one-time link, read back from the
//! mail the file transport wrote, carries the application once; a reused
//! link answers 409, an expired one 410; each application rule answers 400
//! naming its field and uses up nothing; an operator approves (the service
//! starts, the contractor joins the directory) or rejects with a reason;
//! no link is issued for an address in progress or a refused domain.

use chrono::{DateTime, TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::mail::message::message_id_for;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuance::decoded_text;
use crate::support::{TestApp, spawn_with, test_settings, wait_for};

fn t0() -> DateTime<Utc> {
    "2030-03-01T09:00:00Z".parse().unwrap()
}

async fn register(app: &TestApp, token: &str, email: &str) -> Value {
    let body = json!({ "email": email, "locale": "en" });
    let response = app
        .post(
            "/v1/registrations",
            token,
            &Uuid::new_v4().to_string(),
            &body,
        )
        .await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

/// The link token from the registration mail sent to `email`.
async fn link_token_mailed_to(app: &TestApp, email: &str) -> String {
    let mut text = None;
    let arrived = wait_for(std::time::Duration::from_secs(30), || {
        text = app
            .mail_files()
            .iter()
            .map(|raw| decoded_text(raw))
            .find(|t| t.contains(email) && t.contains("token="));
        std::future::ready(text.is_some())
    })
    .await;
    assert!(arrived, "a registration mail to {email}");
    let text = text.unwrap();
    let start = text.find("token=").unwrap() + "token=".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// An application that meets every rule: AWS alone, contacts the same.
pub fn application() -> Value {
    json!({
        "services": { "aws": { "account": "new", "plan": "standard" } },
        "organisation": { "name": "Cust KK", "corporate_number": "1234567890123",
                          "address": "1-1 Chiyoda, Tokyo", "phone": "03-1234-5678" },
        "contact": { "name": "Hanako Sato", "department": "IT", "phone": "090-1234-5678" },
        "billing": { "same_as_contact": true },
        "emergency": { "same_as_contact": true },
        "consents": { "terms": true, "privacy": true }
    })
}

async fn complete_with(
    app: &TestApp,
    token: &str,
    link_token: &str,
    body: &Value,
) -> reqwest::Response {
    let path = format!("/v1/registrations/{link_token}/completion");
    app.post(&path, token, &Uuid::new_v4().to_string(), body)
        .await
}

async fn sent(app: &TestApp, template: &str) -> i64 {
    app.count(&format!(
        "select count(*) from mails where template = '{template}' and status = 'sent'"
    ))
    .await
}

async fn view(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/v1/registrations/{id}"), token)
        .await
        .json()
        .await
        .unwrap()
}

/// A registration of `email` by acme, applied for with `body`.
async fn applied(app: &TestApp, portal: &str, email: &str, body: &Value) -> String {
    let accepted = register(app, portal, email).await;
    let link_token = app.link_token("reg_").await;
    let done = complete_with(app, portal, &link_token, body).await;
    assert_eq!(done.status(), 200);
    accepted["registration_id"].as_str().unwrap().to_owned()
}

/// The decoded mail file (subject header and text) to `email` whose text
/// contains `needle`, once it is written.
async fn mail_to(app: &TestApp, email: &str, needle: &str) -> (String, String) {
    let mut found = None;
    let arrived = wait_for(std::time::Duration::from_secs(30), || {
        found = app.mail_files().into_iter().find_map(|raw| {
            let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
            let to = mail
                .headers
                .iter()
                .find(|h| h.get_key_ref().eq_ignore_ascii_case("to"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            let text = decoded_text(&raw);
            (to.contains(email) && text.contains(needle)).then_some((raw, text))
        });
        std::future::ready(found.is_some())
    })
    .await;
    assert!(arrived, "a mail to {email} saying {needle:?}");
    found.unwrap()
}

fn header(raw: &str, name: &str) -> String {
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    mail.headers
        .iter()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case(name))
        .map(|h| h.get_value())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_awaits_review_and_its_approval_starts_the_service_once() {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    let app = spawn_with(settings, Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let accepted = register(&app, &portal, "new@cust.example").await;
    assert_eq!(accepted["status"], "pending");
    assert!(
        !accepted.to_string().contains("reg_"),
        "the link token reaches only the mailbox: {accepted}"
    );

    // Both clouds, invoices split, another billing contact.
    let mut body = application();
    body["services"]["google_cloud"] = json!({ "admin_email": "gadmin@cust.example" });
    body["billing"] = json!({ "same_as_contact": false, "split_invoices": true,
        "contact": { "name": "Taro Billing", "email": "bill@cust.example", "phone": "03-0000-1111" } });
    let link_token = link_token_mailed_to(&app, "new@cust.example").await;
    assert!(link_token.starts_with("reg_"), "{link_token}");
    let done = complete_with(&app, &portal, &link_token, &body).await;
    assert_eq!(done.status(), 200);
    let applied: Value = done.json().await.unwrap();
    assert_eq!(applied["status"], "applied");
    assert_eq!(
        applied["application"]["services"]["google_cloud"]["admin_email"],
        "gadmin@cust.example"
    );
    let reused = complete_with(&app, &portal, &link_token, &body).await;
    assert_eq!(reused.status(), 409);
    let problem: Value = reused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:registration-link-used");
    assert!(!problem.to_string().contains(&link_token), "{problem}");

    // Only an operator reviews.
    let id = accepted["registration_id"].as_str().unwrap();
    let approval = format!("/v1/registrations/{id}/approval");
    let by_portal = app.post(&approval, &portal, "approve-0", &json!({})).await;
    assert_eq!(by_portal.status(), 403);
    let approved = app
        .post(&approval, &operator, "approve-1", &json!({}))
        .await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    let again = app
        .post(&approval, &operator, "approve-2", &json!({}))
        .await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:registration-not-reviewable"
    );

    // The contact person is the new customer's first user, a contractor.
    let shown = view(&app, &portal, id).await;
    let customer = shown["review"]["customer_id"].as_str().unwrap().to_owned();
    let user = shown["review"]["user_id"].as_str().unwrap().to_owned();
    let started = shown["started_at"].as_str().unwrap();
    assert!(
        started.starts_with("2030-03-01T09:0"),
        "on the business clock: {started}"
    );
    let customer_view: Value = app
        .get(&format!("/v1/customers/{customer}"), &portal)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(customer_view["name"], "Cust KK");
    let user_view: Value = app
        .get(&format!("/v1/users/{user}"), &portal)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user_view["email"], "new@cust.example");
    assert_eq!(user_view["name"], "Hanako Sato");
    assert_eq!(user_view["customer_id"], customer.as_str());
    let contractors = app
        .count(&format!(
            "select count(*) from role_assignments where role = 'contractor' and principal_type = 'user'
               and principal_id = '{user}' and scope_type = 'customer' and scope_id = '{customer}'"
        ))
        .await;
    assert_eq!(contractors, 1);

    // Every state change audited; each mail once, with its cause's Message-ID.
    let audited = app
        .count(&format!(
            "select count(*) from audit_events where entity_id = '{id}' and action = 'registration.status'
               and to_state in ('pending', 'applied', 'approved')"
        ))
        .await;
    assert_eq!(audited, 3);
    let all_sent = wait_for(std::time::Duration::from_secs(30), || async {
        sent(&app, "registration").await == 1
            && sent(&app, "registration_completed").await == 1
            && sent(&app, "service_started").await == 1
    })
    .await;
    assert!(
        all_sent,
        "registration, completion and start mails sent once each"
    );
    let (raw, text) = mail_to(&app, "new@cust.example", "has started and is now available").await;
    assert!(text.contains("Google Cloud"), "{text}");
    let domain = &app.settings.mail.message_id_domain;
    assert_eq!(
        header(&raw, "Message-ID"),
        message_id_for(&format!("service_started:{id}"), domain)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_application_rule_answers_400_naming_its_field_and_uses_up_nothing() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let portal = app.portal_token("acme").await;
    let accepted = register(&app, &portal, "rules@cust.example").await;
    let link_token = app.link_token("reg_").await;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = application();
        edit(&mut body);
        body
    };
    let google = json!({ "admin_email": "g@cust.example" });
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["services"]),
        (with(&|b| b["services"] = json!({})), &["services"]),
        (
            with(&|b| b["services"]["aws"]["plan"] = json!("direct_contract")),
            &["services.aws.account"],
        ),
        (
            with(&|b| b["services"]["aws"]["plan"] = json!("gold")),
            &["services.aws.plan"],
        ),
        (
            with(&|b| {
                b["services"]["aws"]["plan"] = json!("fixed_ticket");
                b["services"]["google_cloud"] = google.clone();
                b["billing"]["split_invoices"] = json!(true);
            }),
            &["services.aws.plan"],
        ),
        (
            with(&|b| b["services"]["google_cloud"] = json!({ "admin_email": "nope" })),
            &[
                "services.google_cloud.admin_email",
                "billing.split_invoices",
            ],
        ),
        (
            with(&|b| b["billing"]["same_as_contact"] = json!(false)),
            &["billing.contact"],
        ),
        (
            with(&|b| {
                b["emergency"] = json!({ "same_as_contact": false,
                "contact": { "name": "E", "email": "bad", "phone": "03-1111-2222" } })
            }),
            &["emergency.contact.email"],
        ),
        (
            with(&|b| b["organisation"]["phone"] = json!("")),
            &["organisation.phone"],
        ),
        (
            with(&|b| b["consents"] = json!({ "terms": false, "privacy": true })),
            &["consents.terms"],
        ),
        (
            with(&|b| b["consents"] = json!({ "terms": true, "privacy": false })),
            &["consents.privacy"],
        ),
    ];
    for (body, fields) in cases {
        let refused = complete_with(&app, &portal, &link_token, &body).await;
        assert_eq!(refused.status(), 400, "{body}");
        let problem: Value = refused.json().await.unwrap();
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}: {problem}");
    }

    // Nothing was used up: still pending, no completion mail, and the
    // link still takes a valid application.
    let id = accepted["registration_id"].as_str().unwrap();
    assert_eq!(view(&app, &portal, id).await["status"], "pending");
    assert_eq!(
        app.count("select count(*) from mails where template = 'registration_completed'")
            .await,
        0
    );
    let done = complete_with(&app, &portal, &link_token, &application()).await;
    assert_eq!(done.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_already_registered_keeps_its_user_and_becomes_the_contractor() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    app.put_ok("/v1/customers/cust-1", &portal, &json!({ "name": "Old" }))
        .await;
    let user = json!({ "customer_id": "cust-1", "email": "Known@Cust.example", "name": "Known" });
    app.put_ok("/v1/users/user-1", &portal, &user).await;

    let id = applied(&app, &portal, "known@cust.example", &application()).await;
    let path = format!("/v1/registrations/{id}/approval");
    let approved = app.post(&path, &operator, "approve", &json!({})).await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();

    assert_eq!(approved["review"]["user_id"], "user-1");
    assert_eq!(
        app.count("select count(*) from users where lower(email) = 'known@cust.example'")
            .await,
        1,
        "no second user for the address"
    );
    let customer = approved["review"]["customer_id"].as_str().unwrap();
    let role = app
        .count(&format!(
            "select count(*) from role_assignments where principal_id = 'user-1'
               and role = 'contractor' and scope_id = '{customer}'"
        ))
        .await;
    assert_eq!(role, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_mails_its_reason_and_frees_the_address() {
    let app = spawn_with(test_settings(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let id = applied(&app, &portal, "no@cust.example", &application()).await;
    let path = format!("/v1/registrations/{id}/rejection");

    let blank = app
        .post(&path, &operator, "r-0", &json!({ "reason": " " }))
        .await;
    assert_eq!(blank.status(), 400);
    let problem: Value = blank.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "reason");
    let by_portal = app
        .post(&path, &portal, "r-1", &json!({ "reason": "x" }))
        .await;
    assert_eq!(by_portal.status(), 403);
    let reason = "The credit check could not be completed.";
    let rejected = app
        .post(&path, &operator, "r-2", &json!({ "reason": reason }))
        .await;
    assert_eq!(rejected.status(), 200);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["review"]["rejection_reason"], reason);
    let approval = format!("/v1/registrations/{id}/approval");
    let late = app.post(&approval, &operator, "a-1", &json!({})).await;
    assert_eq!(late.status(), 409, "a rejected application stays rejected");

    let (raw, _) = mail_to(&app, "no@cust.example", reason).await;
    assert_eq!(
        header(&raw, "Message-ID"),
        message_id_for(
            &format!("registration_rejected:{id}"),
            &app.settings.mail.message_id_domain
        )
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from audit_events where entity_id = '{id}' and to_state = 'rejected'
               and detail->>'reason' = '{reason}'"
        ))
        .await,
        1
    );
    // Reviewed, it is no longer in progress: the address may sign up again.
    assert_eq!(
        register(&app, &portal, "no@cust.example").await["status"],
        "pending"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_link_is_issued_for_an_address_in_progress_or_a_refused_domain() {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    settings.registration.refused_domains = vec!["Free-Mail.example".into()];
    let mut app = spawn_with(settings, Components::everything()).await;
    let portal = app.portal_token("acme").await;

    let ja = json!({ "email": "someone@free-mail.example", "locale": "ja" });
    let refused = app.post("/v1/registrations", &portal, "d-1", &ja).await;
    assert_eq!(refused.status(), 202);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["status"], "refused");
    assert_eq!(refused["reason"], "domain_refused");
    assert!(refused["registration_id"].is_null(), "{refused}");
    let replayed = app.post("/v1/registrations", &portal, "d-1", &ja).await;
    assert_eq!(replayed.status(), 202, "the same key answers the same");

    register(&app, &portal, "busy@cust.example").await;
    let second = register(&app, &portal, "BUSY@cust.example").await;
    assert_eq!(second["status"], "refused");
    assert_eq!(second["reason"], "in_progress");
    assert_eq!(
        app.count("select count(*) from registrations").await,
        1,
        "nothing but the first registration was created"
    );

    // The refusals are mailed, saying why, once per refusal.
    let (raw, text) = mail_to(&app, "someone@free-mail.example", "ドメイン").await;
    assert!(
        header(&raw, "Subject").ends_with("リセールサービス申し込み手続き未完了のご案内"),
        "{}",
        header(&raw, "Subject")
    );
    assert!(!text.contains("token="), "a refusal carries no link");
    let (_, text) = mail_to(&app, "BUSY@cust.example", "in progress").await;
    assert!(text.contains("already has an application in progress"));
    let mailed = wait_for(std::time::Duration::from_secs(30), || async {
        sent(&app, "registration_refused").await == 2
    })
    .await;
    assert!(mailed, "two refusals, two mails");
    assert_eq!(
        app.count("select count(*) from audit_events where action = 'registration.refused'")
            .await,
        2
    );

    // A link that lapsed unused no longer holds the address.
    app.travel_to(t0() + TimeDelta::hours(4)).await;
    assert_eq!(
        register(&app, &portal, "busy@cust.example").await["status"],
        "pending"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_answers_410_and_completes_nothing() {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    let mut app = spawn_with(settings, Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let accepted = register(&app, &portal, "late@cust.example").await;
    let link_token = link_token_mailed_to(&app, "late@cust.example").await;

    app.travel_to(t0() + TimeDelta::hours(3) + TimeDelta::minutes(1))
        .await;
    let late = complete_with(&app, &portal, &link_token, &application()).await;
    assert_eq!(late.status(), 410);
    let problem: Value = late.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:registration-link-expired"
    );
    let id = accepted["registration_id"].as_str().unwrap();
    assert_eq!(view(&app, &portal, id).await["status"], "expired");
    let again = complete_with(&app, &portal, &link_token, &application()).await;
    assert_eq!(again.status(), 410);
    assert_eq!(
        app.count("select count(*) from mails where template = 'registration_completed'")
            .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailed_link_opens_an_application_form_that_applies_once() {
    let app = spawn_with(test_settings(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let registration = register(&app, &portal, "page@cust.example").await;

    // The link as mailed, with the default link_base, opens a page here.
    let link_token = link_token_mailed_to(&app, "page@cust.example").await;
    let link_base = &app.settings.registration.link_base;
    assert_eq!(link_base, "http://127.0.0.1:8080/register?token=");
    let path = format!("/register?token={link_token}");
    let page = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/register\""),
        "{html}"
    );
    for field in [
        "aws_plan",
        "google_admin_email",
        "organisation_name",
        "consent_terms",
    ] {
        assert!(html.contains(&format!("name=\"{field}\"")), "{field}");
    }

    let mut form = vec![
        ("token", link_token.as_str()),
        ("aws", "on"),
        ("aws_account", "transfer"),
        ("aws_plan", "direct_contract"),
        ("organisation_name", "Page KK"),
        ("organisation_address", "Osaka"),
        ("organisation_phone", "06-1234-5678"),
        ("contact_name", "Page Person"),
        ("contact_phone", "090-0000-0000"),
        ("billing_same", "on"),
        ("emergency_same", "on"),
        ("consent_terms", "on"),
    ];
    let press = |form: Vec<(&str, &str)>| app.client.post(app.url("/register")).form(&form).send();
    // Without the privacy consent: refused, naming it, nothing used up.
    let refused = press(form.clone()).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("data-field=\"consents.privacy\"")
    );
    form.push(("consent_privacy", "on"));
    let first = press(form.clone()).await.unwrap();
    let second = press(form).await.unwrap();

    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("Application received"));
    assert_eq!(second.status(), 409);
    let id = registration["registration_id"].as_str().unwrap();
    let shown = view(&app, &portal, id).await;
    assert_eq!(shown["status"], "applied");
    assert_eq!(
        shown["application"]["services"]["aws"]["plan"],
        "direct_contract"
    );
    assert_eq!(shown["application"]["organisation"]["name"], "Page KK");
    assert!(
        wait_for(std::time::Duration::from_secs(20), || async {
            sent(&app, "registration_completed").await == 1
        })
        .await
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reviews_the_queue_from_the_dashboard() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let portal = app.portal_token("acme").await;
    let operator = app.token(Role::Operator, None).await;
    let yes = applied(&app, &portal, "yes@cust.example", &application()).await;
    let no = applied(&app, &portal, "no@cust.example", &application()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = client
        .post(app.url("/ops/login"))
        .form(&[("token", operator.as_str())])
        .send()
        .await
        .unwrap();
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(app.url("/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in [&yes, &no] {
        assert!(
            page.contains(&format!("data-registration=\"{id}\"")),
            "{id}"
        );
        assert!(page.contains(&format!("/ops/registrations/{id}/approval")));
    }
    assert!(page.contains("Cust KK") && page.contains("aws (standard, new)"));

    let post = |path: String, form: Vec<(&'static str, &'static str)>, origin: &str| {
        client
            .post(app.url(&path))
            .header("cookie", &session)
            .header("origin", origin)
            .form(&form)
            .send()
    };
    let here = format!("http://{}", app.addr.unwrap());
    let here = here.as_str();
    let foreign = post(
        format!("/ops/registrations/{yes}/approval"),
        vec![],
        "http://evil.example",
    )
    .await
    .unwrap();
    assert_eq!(foreign.status(), 403, "another site's form changes nothing");
    let approved = post(format!("/ops/registrations/{yes}/approval"), vec![], here)
        .await
        .unwrap();
    assert_eq!(approved.status(), 303);
    assert_eq!(
        approved.headers()["location"],
        "/ops?reviewed=approved#reviews"
    );
    let no_reason = post(
        format!("/ops/registrations/{no}/rejection"),
        vec![("reason", "")],
        here,
    )
    .await
    .unwrap();
    assert_eq!(
        no_reason.headers()["location"],
        "/ops?reviewed=refused#reviews"
    );
    let rejected = post(
        format!("/ops/registrations/{no}/rejection"),
        vec![("reason", "Outside our service area.")],
        here,
    )
    .await
    .unwrap();
    assert_eq!(
        rejected.headers()["location"],
        "/ops?reviewed=rejected#reviews"
    );

    assert_eq!(view(&app, &portal, &yes).await["status"], "approved");
    assert_eq!(view(&app, &portal, &no).await["status"], "rejected");
    let audited = app
        .count(
            "select count(*) from audit_events a join api_tokens t on t.id = a.token_id
             where a.action = 'registration.status' and t.role = 'operator'
               and a.to_state in ('approved', 'rejected')",
        )
        .await;
    assert_eq!(audited, 2, "each review audited with the operator's token");
    let page = client
        .get(app.url("/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("No applications awaiting review."));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_application_and_its_review() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &document["components"]["schemas"];
    let enumerated = |name: &str| schemas[name]["enum"].clone();
    assert_eq!(enumerated("AwsAccount"), json!(["new", "transfer"]));
    assert_eq!(
        enumerated("AwsPlan"),
        json!(["standard", "fixed_ticket", "direct_contract"])
    );
    assert_eq!(
        enumerated("RegistrationStatus"),
        json!(["pending", "applied", "approved", "rejected", "expired"])
    );
    assert_eq!(
        enumerated("Refusal"),
        json!(["in_progress", "domain_refused"])
    );
    assert_eq!(
        schemas["GoogleCloud"]["properties"]["admin_email"]["format"],
        "email"
    );
    for (path, statuses) in [
        (
            "/v1/registrations/{token}/completion",
            ["200", "400", "404", "409", "410"],
        ),
        (
            "/v1/registrations/{id}/approval",
            ["200", "400", "403", "404", "409"],
        ),
        (
            "/v1/registrations/{id}/rejection",
            ["200", "400", "403", "404", "409"],
        ),
    ] {
        let responses = &document["paths"][path]["post"]["responses"];
        for status in statuses {
            assert!(responses.get(status).is_some(), "{path} declares {status}");
        }
        let body = &document["paths"][path]["post"]["requestBody"];
        assert!(body.is_object(), "{path} declares its body");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_sign_up_is_approved_under_the_partner_it_names() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let operator = app.token(Role::Operator, None).await;
    app.portal_token("acme").await;
    let id = applied(&app, &operator, "direct@cust.example", &application()).await;
    let path = format!("/v1/registrations/{id}/approval");

    for (key, body) in [
        ("a-1", json!({})),
        ("a-2", json!({ "partner_id": "nobody" })),
    ] {
        let refused = app.post(&path, &operator, key, &body).await;
        assert_eq!(refused.status(), 400, "{body}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "partner_id");
    }
    assert_eq!(view(&app, &operator, &id).await["status"], "applied");
    let approved = app
        .post(&path, &operator, "a-3", &json!({ "partner_id": "acme" }))
        .await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    let customer = approved["review"]["customer_id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "select count(*) from customers where id = '{customer}' and partner_id = 'acme'"
        ))
        .await,
        1
    );
    app.cleanup().await;
}
