//! Trial changes while they run (SPEC §1.3, second round): services added
//! to an active trial with their licenses (and purged with it), no trial of
//! a kind the customer already pays for, purchase requests mailed to the
//! partner admin once, and the purchase link in the notices.

use chrono::{DateTime, TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::mail::message::message_id_for;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuance::decoded_text;
use crate::support::{TestApp, poll_until, spawn_with, test_settings};

fn t0() -> DateTime<Utc> {
    "2030-03-01T09:00:00Z".parse().unwrap()
}

fn day(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::days(n)
}

const LINK_BASE: &str = "https://shop.example/buy?trial=";

fn at_t0() -> fulfil::settings::Settings {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    settings.trial.purchase_link_base = LINK_BASE.to_owned();
    settings
}

/// acme's customer cust-1 with two users; acme's portal token.
async fn world(app: &TestApp) -> String {
    let portal = app.portal_token("acme").await;
    app.put_ok(
        "/v1/customers/cust-1",
        &portal,
        &json!({ "name": "Cust One" }),
    )
    .await;
    for (id, locale) in [("u-1", "en"), ("u-2", "ja")] {
        let user = json!({ "customer_id": "cust-1", "email": format!("{id}@cust.example"),
                           "locale": locale, "name": format!("User {id}") });
        app.put_ok(&format!("/v1/users/{id}"), &portal, &user).await;
    }
    portal
}

fn new_trial(services: &[&str], partner_locale: &str) -> Value {
    json!({
        "customer_id": "cust-1",
        "services": services,
        "ends_at": day(30),
        "customer_admin": { "email": "admin@cust.example", "locale": "en" },
        "partner_admin": { "email": format!("desk-{partner_locale}@acme.example"),
                           "locale": partner_locale },
        "user_ids": ["u-1", "u-2"],
    })
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = app
        .post(path, token, &Uuid::new_v4().to_string(), body)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn create_ok(app: &TestApp, token: &str, body: &Value) -> String {
    let (status, view) = post(app, "/v1/trials", token, body).await;
    assert_eq!(status, 201, "{view}");
    view["id"].as_str().unwrap().to_owned()
}

async fn put(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(path))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn sweep(app: &TestApp, token: &str, name: &str) {
    let (status, report) = post(
        app,
        &format!("/v1/sweeps/{name}"),
        token,
        &json!({ "dry_run": false }),
    )
    .await;
    assert_eq!(status, 200, "{report}");
}

/// Waits until every job is finished and every mail sent.
async fn settled(app: &TestApp) {
    let open = "select count(*) from jobs where status not in ('succeeded', 'dead')";
    poll_until(
        "all jobs finished",
        || async { json!(app.count(open).await) },
        |open| open == 0,
    )
    .await;
    assert_eq!(app.count("select count(*) from dead_letters").await, 0);
}

fn problem_type(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default()
}

/// The mail files sent to `to`, decoded, with their raw text.
fn mails_to(app: &TestApp, to: &str) -> Vec<(String, String)> {
    app.mail_files()
        .into_iter()
        .filter(|raw| {
            let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
            mailparse::MailHeaderMap::get_first_value(&mail.headers[..], "To")
                .is_some_and(|v| v.contains(to))
        })
        .map(|raw| {
            // Line ends on the wire are CRLF.
            let text = decoded_text(&raw).replace("\r\n", "\n");
            (raw, text)
        })
        .collect()
}

fn header(raw: &str, name: &str) -> String {
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    mailparse::MailHeaderMap::get_first_value(&mail.headers[..], name).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_added_to_an_active_trial_get_a_license_per_member_and_are_purged_with_it() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let portal = world(&app).await;
    let scheduler = app.token(Role::Scheduler, None).await;
    let id = create_ok(&app, &portal, &new_trial(&["chat", "meetings"], "ja")).await;
    let services = format!("/v1/trials/{id}/services");

    // Act: one service more, for both members.
    let (status, view) = post(&app, &services, &portal, &json!({ "services": ["phone"] })).await;

    assert_eq!(status, 200, "{view}");
    assert_eq!(view["services"], json!(["chat", "meetings", "phone"]));
    assert_eq!(view["organisation"]["licenses"], 6);
    let phone = "select count(*) from trial_licenses where service = 'phone'";
    assert_eq!(app.count(phone).await, 2, "one per member");
    let added = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "trial.services_added")
        .expect("the addition is audited");
    assert_eq!(
        added["detail"],
        json!({ "services": ["phone"], "licenses": 2 })
    );

    // A service the trial has answers 409 and adds nothing, not even the new one.
    for body in [
        json!({ "services": ["phone"] }),
        json!({ "services": ["video", "chat"] }),
    ] {
        let (status, problem) = post(&app, &services, &portal, &body).await;
        assert_eq!(status, 409, "{problem}");
        assert_eq!(
            problem_type(&problem),
            "urn:fulfil:problem:trial-service-present"
        );
    }
    assert_eq!(app.count("select count(*) from trial_licenses").await, 6);
    let (status, problem) =
        post(&app, &services, &portal, &json!({ "services": ["Video!"] })).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "services[0]");

    // An expired trial (in grace) takes no new service.
    app.travel_to(day(30) + TimeDelta::hours(1)).await;
    sweep(&app, &scheduler, "trial-notices").await;
    settled(&app).await;
    let (status, problem) = post(&app, &services, &portal, &json!({ "services": ["video"] })).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem_type(&problem),
        "urn:fulfil:problem:trial-not-active"
    );

    // The purge deletes the added licenses with the others.
    app.travel_to(day(60) + TimeDelta::hours(1)).await;
    sweep(&app, &scheduler, "trial-purges").await;
    settled(&app).await;
    assert_eq!(app.count("select count(*) from trial_licenses").await, 0);
    let deleted: Value = sqlx::query_scalar(
        "select detail -> 'deleted' from audit_events where action = 'trial.purged'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(deleted["licenses"], 6);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_paying_for_a_kind_cannot_start_or_add_a_trial_of_it() {
    let app = spawn_with(at_t0(), Components::api_only()).await;
    let acme = world(&app).await;
    let operator = app.token(Role::Operator, None).await;
    let initech = app.portal_token("initech").await;
    app.grant_relationship(&initech, &acme, "cust-1").await;
    let globex = app.portal_with_customer("globex", "cust-g").await;

    // A converted trial makes its kinds paid.
    let first = create_ok(&app, &acme, &new_trial(&["chat", "meetings"], "ja")).await;
    let (status, view) = post(
        &app,
        &format!("/v1/trials/{first}/conversions"),
        &acme,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let (status, problem) = post(
        &app,
        "/v1/trials",
        &acme,
        &new_trial(&["phone", "chat"], "ja"),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem_type(&problem),
        "urn:fulfil:problem:service-already-paid"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("chat"),
        "{problem}"
    );

    // A direct sale, recorded by the partner of record, does too.
    let (status, sale) = put(&app, "/v1/customers/cust-1/services/video", &acme).await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["source"], "direct");
    let (status, again) = put(&app, "/v1/customers/cust-1/services/video", &acme).await;
    assert_eq!((status, &again["id"]), (200, &sale["id"]), "idempotent");
    let (status, _) = post(&app, "/v1/trials", &acme, &new_trial(&["video"], "ja")).await;
    assert_eq!(status, 409);

    // Adding a paid kind to a running trial is refused the same way.
    let second = create_ok(&app, &acme, &new_trial(&["phone"], "ja")).await;
    let (status, problem) = post(
        &app,
        &format!("/v1/trials/{second}/services"),
        &acme,
        &json!({ "services": ["video"] }),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem_type(&problem),
        "urn:fulfil:problem:service-already-paid"
    );

    // Who records and who sees: a related partner sees but cannot record;
    // a stranger gets 404; an operator records for anyone.
    let (status, listed) = app_get(&app, "/v1/customers/cust-1/services", &initech).await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("chat", "converted"),
            ("meetings", "converted"),
            ("video", "direct")
        ]
    );
    assert_eq!(listed["services"][0]["trial_id"], json!(first));
    assert_eq!(
        put(&app, "/v1/customers/cust-1/services/voice", &initech)
            .await
            .0,
        403
    );
    assert_eq!(
        put(&app, "/v1/customers/cust-1/services/voice", &globex)
            .await
            .0,
        404
    );
    assert_eq!(
        app_get(&app, "/v1/customers/cust-1/services", &globex)
            .await
            .0,
        404
    );
    assert_eq!(
        put(&app, "/v1/customers/cust-1/services/Voice", &acme)
            .await
            .0,
        400
    );
    assert_eq!(
        put(&app, "/v1/customers/cust-1/services/voice", &operator)
            .await
            .0,
        201
    );
    // The body is optional: JSON null, as the schema allows, is no body.
    let null_body = app
        .client
        .put(app.url("/v1/customers/cust-1/services/fax"))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(null_body.status().as_u16(), 201);

    assert_eq!(app.count("select count(*) from trials").await, 2);
    assert_eq!(app.count("select count(*) from customer_services").await, 5);
    let audited = "select count(*) from audit_events where action = 'customer_service.recorded'";
    assert_eq!(app.count(audited).await, 3, "each direct sale once");
    app.cleanup().await;
}

async fn app_get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let response = app.get(path, token).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_request_mails_the_partner_admin_once_in_their_language() {
    let app = spawn_with(at_t0(), Components::everything()).await;
    let portal = world(&app).await;
    let ja_trial = create_ok(&app, &portal, &new_trial(&["chat", "meetings"], "ja")).await;
    let path = format!("/v1/trials/{ja_trial}/purchase-requests");
    let body = json!({ "services": ["chat"], "note": "お電話ください" });

    // Act: the request, then its retry with the same Idempotency-Key.
    let first = app.post(&path, &portal, "buy-1", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry: Value = app
        .post(&path, &portal, "buy-1", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry, first, "the retry answers the first response");

    // An English-speaking partner admin, all of the trial's services.
    let en_trial = create_ok(&app, &portal, &new_trial(&["chat", "phone"], "en")).await;
    let en_path = format!("/v1/trials/{en_trial}/purchase-requests");
    let (status, en) = post(&app, &en_path, &portal, &json!({})).await;
    assert_eq!(status, 201, "{en}");
    assert_eq!(en["services"], json!(["chat", "phone"]));
    settled(&app).await;

    let sent =
        "select count(*) from mails where template = 'trial_purchase_request' and status = 'sent'";
    assert_eq!(
        app.count(sent).await,
        2,
        "one mail per request, not per retry"
    );
    let domain = &app.settings.mail.message_id_domain;
    let ja_mails = mails_to(&app, "desk-ja@acme.example");
    assert_eq!(ja_mails.len(), 1);
    let (raw, text) = &ja_mails[0];
    assert!(header(raw, "Subject").contains("ご購入依頼"), "{raw}");
    assert_eq!(
        header(raw, "Message-ID"),
        message_id_for(
            &format!(
                "trial_purchase_request:{}",
                first["request_id"].as_str().unwrap()
            ),
            domain
        )
    );
    assert!(
        text.contains("1. chat\n") && !text.contains("meetings"),
        "{text}"
    );
    assert!(text.contains("お電話ください"), "{text}");
    assert!(text.contains(&format!("{LINK_BASE}{ja_trial}")), "{text}");
    let en_mails = mails_to(&app, "desk-en@acme.example");
    assert_eq!(en_mails.len(), 1);
    let (raw, text) = &en_mails[0];
    assert!(header(raw, "Subject").contains("Purchase request"), "{raw}");
    assert!(text.contains("2. phone\n"), "{text}");
    assert!(text.contains(&format!("{LINK_BASE}{en_trial}")), "{text}");

    // Audited, shown on the trial; refused for services not on it and
    // once the trial is converted.
    let audited = "select count(*) from audit_events where action = 'trial.purchase_requested'";
    assert_eq!(app.count(audited).await, 2);
    let (_, view) = app_get(&app, &format!("/v1/trials/{ja_trial}"), &portal).await;
    assert_eq!(view["purchase_requests"][0]["id"], first["request_id"]);
    let (status, _) = post(&app, &path, &portal, &json!({ "services": ["phone"] })).await;
    assert_eq!(status, 422);
    post(
        &app,
        &format!("/v1/trials/{ja_trial}/conversions"),
        &portal,
        &json!({}),
    )
    .await;
    let (status, problem) = post(&app, &path, &portal, &json!({})).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem_type(&problem),
        "urn:fulfil:problem:trial-not-purchasable"
    );
    assert_eq!(
        app.count("select count(*) from trial_purchase_requests")
            .await,
        2
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_notices_carry_the_purchase_link_in_both_languages() {
    let mut app = spawn_with(at_t0(), Components::everything()).await;
    let portal = world(&app).await;
    let scheduler = app.token(Role::Scheduler, None).await;
    let id = create_ok(&app, &portal, &new_trial(&["chat"], "ja")).await;
    let link = format!("{LINK_BASE}{id}\n");

    for (at, subject_en) in [
        (day(24), "ends soon"),
        (day(30) + TimeDelta::hours(1), "has ended"),
    ] {
        app.travel_to(at).await;
        sweep(&app, &scheduler, "trial-notices").await;
        settled(&app).await;
        // The customer admin reads English, the partner admin Japanese.
        let en = mails_to(&app, "admin@cust.example");
        let (_, text) = en
            .iter()
            .find(|(raw, _)| header(raw, "Subject").contains(subject_en))
            .unwrap_or_else(|| panic!("no '{subject_en}' notice"));
        assert!(text.contains(&link), "{text}");
        let ja = mails_to(&app, "desk-ja@acme.example");
        assert_eq!(ja.len(), if subject_en == "ends soon" { 1 } else { 2 });
        assert!(
            ja.iter()
                .all(|(_, text)| text.contains(&link) && text.contains("ご購入"))
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_trial_change_routes() {
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
    let paths = &document["paths"];
    let schemas = &document["components"]["schemas"];
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let mut statuses: Vec<String> = paths[path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .keys()
            .cloned()
            .collect();
        statuses.sort();
        statuses
    };
    let expected = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let post_statuses = [
        "400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503",
    ];
    let mut services = expected(&post_statuses);
    services.insert(0, "200".into());
    assert_eq!(statuses("/v1/trials/{id}/services", "post"), services);
    let mut purchase = expected(&post_statuses);
    purchase.insert(0, "201".into());
    assert_eq!(
        statuses("/v1/trials/{id}/purchase-requests", "post"),
        purchase
    );
    assert_eq!(
        statuses("/v1/customers/{id}/services/{service}", "put"),
        expected(&[
            "200", "201", "400", "401", "403", "404", "413", "415", "429", "500", "503"
        ])
    );
    assert_eq!(
        statuses("/v1/customers/{id}/services", "get"),
        expected(&["200", "401", "403", "404", "429", "500", "503"])
    );
    // Formats and enums the server enforces.
    let add = &schemas["AddServices"]["properties"]["services"];
    assert_eq!(add["items"]["pattern"], "^[a-z0-9._-]{1,64}$", "{add}");
    assert_eq!(
        (add["minItems"].as_u64(), add["maxItems"].as_u64()),
        (Some(1), Some(20))
    );
    assert_eq!(
        schemas["PurchaseRequestBody"]["properties"]["note"]["maxLength"],
        1000
    );
    assert_eq!(
        schemas["CustomerService"]["properties"]["source"]["enum"],
        json!(["converted", "direct"])
    );
    let id = &paths["/v1/trials/{id}/services"]["post"]["parameters"][0]["schema"];
    assert_eq!(id["format"], "uuid", "{id}");
    app.cleanup().await;
}
