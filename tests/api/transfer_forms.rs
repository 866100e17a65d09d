//! The transfer form filled by three parties (SPEC §1.2, second round):
//! the source opens it, the customer completes it with the destination
//! through a mailed one-time link, the source submits it and the ticket
//! runs. Through HTTP, the real broker and the mail files.

use std::time::Duration;

use chrono::TimeDelta;
use fulfil::app::Components;
use fulfil::mail::message::message_id_for;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuance::decoded_text;
use crate::support::{TestApp, poll_until, spawn_app, spawn_with, test_settings, wait_for};

struct World {
    /// cust-1's partner of record: the source.
    acme: String,
    /// Has a reseller relationship with cust-1: the destination.
    globex: String,
    /// Knows nothing of cust-1.
    initech: String,
    operator: String,
}

async fn world(app: &TestApp) -> World {
    let acme = app.portal_token("acme").await;
    let globex = app.portal_token("globex").await;
    let initech = app.portal_token("initech").await;
    app.put_ok(
        "/v1/partners/acme",
        &acme,
        &json!({ "name": "Acme Resale" }),
    )
    .await;
    app.put_ok(
        "/v1/partners/globex",
        &globex,
        &json!({ "name": "Globex Resale" }),
    )
    .await;
    app.put_ok(
        "/v1/customers/cust-1",
        &acme,
        &json!({ "name": "Cust One" }),
    )
    .await;
    for sub in ["sub-1", "sub-2"] {
        app.put_ok(
            &format!("/v1/subscriptions/{sub}"),
            &acme,
            &json!({ "customer_id": "cust-1", "product": "Azure plan" }),
        )
        .await;
    }
    app.grant_relationship(&globex, &acme, "cust-1").await;
    World {
        acme,
        globex,
        initech,
        operator: app.token(Role::Operator, None).await,
    }
}

/// The source's part. The link goes to `it@cust.example`, an address no
/// other mail of these tests uses.
fn opening(locale: &str) -> Value {
    json!({
        "customer_id": "cust-1",
        "subscription_ids": ["sub-1", "sub-2"],
        "source_contact": { "name": "Acme Desk", "email": "desk@acme.example", "locale": locale },
        "customer_admin_email": "it@cust.example",
        "locale": locale,
    })
}

/// The customer's part, naming `destination`.
fn completion(destination: &str) -> Value {
    json!({
        "customer_contact": { "name": "Cust Admin", "email": "admin@cust.example", "locale": "ja" },
        "destination_partner_id": destination,
        "destination_contact": { "name": "Globex Desk", "email": "desk@globex.example", "locale": "en" },
    })
}

/// Posts and returns the status and the body.
async fn act(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .post(path, token, &Uuid::new_v4().to_string(), body)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// acme opens a form; returns its id and the link token from the mail.
async fn open_form(app: &TestApp, w: &World, locale: &str) -> (String, String) {
    let (status, body) = act(app, &w.acme, "/v1/transfer-forms", &opening(locale)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "draft");
    assert!(!body.to_string().contains("tform_"), "no link in {body}");
    let id = body["form_id"].as_str().unwrap().to_owned();
    (id, app.link_token("tform_").await)
}

fn completion_path(link: &str) -> String {
    format!("/v1/transfer-forms/{link}/completion")
}

async fn form_view(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    let response = app.get(&format!("/v1/transfer-forms/{id}"), token).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn stored_status(app: &TestApp, id: &str) -> String {
    sqlx::query_scalar("select status from transfer_forms where id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The decoded text of the mail file for `cause`, found by the Message-ID
/// the cause determines, once the mail worker has written it.
async fn mail_file(app: &TestApp, cause: &str) -> String {
    let message_id = message_id_for(cause, &app.settings.mail.message_id_domain);
    let found = wait_for(Duration::from_secs(20), || async {
        app.mail_files().iter().any(|raw| raw.contains(&message_id))
    })
    .await;
    assert!(
        found,
        "a mail file with Message-ID {message_id} for {cause}"
    );
    let raw = app
        .mail_files()
        .into_iter()
        .find(|raw| raw.contains(&message_id))
        .unwrap();
    decoded_text(&raw)
}

async fn mails(app: &TestApp, template: &str) -> i64 {
    app.count(&format!(
        "select count(*) from mails where template = '{template}'"
    ))
    .await
}

fn assert_state_conflict((status, body): &(u16, Value), state: &str) {
    assert_eq!(*status, 409, "{body}");
    assert_eq!(body["type"], "urn:fulfil:problem:transfer-form-state");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("is {state}")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_parties_fill_the_form_in_order_and_the_submitted_ticket_runs() {
    let app = spawn_app().await;
    let w = world(&app).await;

    // The source opens it; the customer admin is mailed the link, in English.
    let (id, link) = open_form(&app, &w, "en").await;
    let text = mail_file(&app, &format!("transfer_form_link:{id}")).await;
    assert!(text.contains("Acme Resale, your current partner"), "{text}");
    assert!(text.contains(&format!("?token={link}")), "{text}");
    assert!(text.contains("sub-2"), "{text}");
    assert_eq!(
        form_view(&app, &w.globex, &id).await.0,
        404,
        "not yet named"
    );

    // The customer, with globex, completes it through the link.
    let (status, returned) = act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    assert_eq!(status, 200, "{returned}");
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["destination_partner_id"], "globex");
    assert_eq!(returned["destination_related"], true);
    let (status, seen) = form_view(&app, &w.globex, &id).await;
    assert_eq!((status, &seen["status"]), (200, &json!("returned")));
    let text = mail_file(&app, &format!("transfer_form_returned:{id}")).await;
    assert!(text.contains("Dear Acme Desk"), "{text}");
    assert!(
        text.contains("Cust Admin") && text.contains("Globex Desk"),
        "{text}"
    );
    assert!(text.contains("Globex Resale (globex)"), "{text}");

    // The source submits it; the ticket runs as a one-shot one does.
    let (status, submitted) = act(
        &app,
        &w.acme,
        &format!("/v1/transfer-forms/{id}/submission"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["form_status"], "submitted");
    let transfer_id = submitted["transfer_id"].as_str().unwrap().to_owned();
    let transfer = poll_until(
        "the ticket completed",
        || async {
            app.get(&format!("/v1/transfers/{transfer_id}"), &w.acme)
                .await
                .json()
                .await
                .unwrap()
        },
        |view| view["status"] == "completed",
    )
    .await;
    assert_eq!(transfer["destination_partner_id"], "globex");
    assert_eq!(transfer["form"]["customer_contact"]["name"], "Cust Admin");
    let seller: String =
        sqlx::query_scalar("select partner_id from subscriptions where id = 'sub-2'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(seller, "globex");

    let (_, form) = form_view(&app, &w.operator, &id).await;
    assert_eq!(form["status"], "submitted");
    assert_eq!(form["transfer_id"], transfer_id.as_str());
    let states: Vec<&str> = form["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["draft", "returned", "submitted"]);
    assert_eq!(
        app.count("select count(*) from audit_events where entity_type = 'transfer_form' and token_id is not null").await,
        3
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            app.count("select count(*) from mails where template = 'transfer_submitted' and status = 'sent'").await == 3
        })
        .await
    );
    assert_eq!(mails(&app, "transfer_form_link").await, 1);
    assert_eq!(mails(&app, "transfer_form_returned").await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_is_stored_hashed_mailed_in_the_admins_language_and_works_once() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (id, link) = open_form(&app, &w, "ja").await;

    let (_, view) = form_view(&app, &w.acme, &id).await;
    assert!(!view.to_string().contains(&link), "{view}");
    assert_eq!(
        app.count(&format!(
            "select count(*) from transfer_forms where token_hash = sha256('{link}'::bytea)
               and position('{link}' in transfer_forms::text) = 0"
        ))
        .await,
        1,
        "only the hash is stored"
    );
    let text = mail_file(&app, &format!("transfer_form_link:{id}")).await;
    assert!(
        text.contains("移管するための申請書が作成されました"),
        "{text}"
    );

    let first = act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    let again = act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    assert_state_conflict(&again, "returned");
    let unknown = act(
        &app,
        &w.globex,
        &completion_path("tform_nope"),
        &completion("globex"),
    )
    .await;
    assert_eq!(unknown.0, 404);

    // The returned mail speaks the source contact's language, once.
    let text = mail_file(&app, &format!("transfer_form_returned:{id}")).await;
    assert!(text.contains("Acme Desk 様"), "{text}");
    assert_eq!(mails(&app, "transfer_form_returned").await, 1);

    // An opening sent twice with one key is one form and one mail.
    let body = opening("en");
    let once = || app.post("/v1/transfer-forms", &w.acme, "once", &body);
    let first: Value = once().await.json().await.unwrap();
    let replay = once().await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.json::<Value>().await.unwrap()["form_id"],
        first["form_id"]
    );
    assert_eq!(app.count("select count(*) from transfer_forms").await, 2);
    assert_eq!(mails(&app, "transfer_form_link").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn only_a_portal_acting_for_the_customer_other_than_the_source_completes_it() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let (id, link) = open_form(&app, &w, "en").await;

    for (who, token) in [("the source", &w.acme), ("a stranger", &w.initech)] {
        let (status, body) = act(&app, token, &completion_path(&link), &completion("globex")).await;
        assert_eq!(status, 403, "{who}: {body}");
    }
    assert_eq!(stored_status(&app, &id).await, "draft");

    // An operator may post the customer's part too.
    let (status, _) = act(
        &app,
        &w.operator,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    assert_eq!(status, 200);
    for (token, expected) in [
        (&w.acme, 200),
        (&w.globex, 200),
        (&w.operator, 200),
        (&w.initech, 404),
    ] {
        assert_eq!(form_view(&app, token, &id).await.0, expected);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn submission_needs_the_destinations_reseller_relationship() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let (id, link) = open_form(&app, &w, "en").await;
    let (status, returned) = act(
        &app,
        &w.operator,
        &completion_path(&link),
        &completion("initech"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(returned["destination_related"], false);
    let submission = format!("/v1/transfer-forms/{id}/submission");

    let (status, refused) = act(&app, &w.acme, &submission, &json!({})).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["type"],
        "urn:fulfil:problem:destination-not-related"
    );
    assert!(
        refused["detail"].as_str().unwrap().contains("initech"),
        "{refused}"
    );
    assert_eq!(app.count("select count(*) from transfers").await, 0);
    assert_eq!(stored_status(&app, &id).await, "returned");

    // Once the customer accepted initech, the same form goes through.
    app.grant_relationship(&w.initech, &w.acme, "cust-1").await;
    let (status, submitted) = act(&app, &w.acme, &submission, &json!({})).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(
        app.count("select count(*) from transfers where status = 'submitted'")
            .await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_submitted_form_whose_relationship_ended_before_the_worker_ran_is_rejected() {
    // Arrange: submitted while globex still has the relationship.
    let settings = test_settings();
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let w = world(&api).await;
    let (id, link) = open_form(&api, &w, "en").await;
    act(
        &api,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    let (status, submitted) = act(
        &api,
        &w.acme,
        &format!("/v1/transfer-forms/{id}/submission"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let transfer_id = submitted["transfer_id"].as_str().unwrap().to_owned();

    // Act: the relationship ends before any worker runs the ticket.
    let ended = api
        .client
        .delete(api.url("/v1/reseller-relationships/globex/cust-1"))
        .bearer_auth(&w.acme)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    api.stop().await;
    let app = spawn_with(settings, Components::everything()).await;

    // Assert: the worker re-checks under lock and rejects the ticket.
    let view = poll_until(
        "the ticket rejected",
        || async {
            app.get(&format!("/v1/transfers/{transfer_id}"), &w.acme)
                .await
                .json()
                .await
                .unwrap()
        },
        |view| view["status"] == "rejected",
    )
    .await;
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("no reseller relationship"),
        "{view}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn only_the_source_submits_or_withdraws_and_only_in_the_right_state() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let (returned, link) = open_form(&app, &w, "en").await;
    let (draft, draft_link) = open_form(&app, &w, "en").await;
    let path = |id: &str, act: &str| format!("/v1/transfer-forms/{id}/{act}");

    // Before it is named, the destination does not see the form at all.
    assert_eq!(
        act(&app, &w.globex, &path(&returned, "submission"), &json!({}))
            .await
            .0,
        404
    );
    act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    for what in ["submission", "withdrawal"] {
        assert_eq!(
            act(&app, &w.globex, &path(&returned, what), &json!({}))
                .await
                .0,
            403,
            "{what}"
        );
        assert_eq!(
            act(&app, &w.operator, &path(&returned, what), &json!({}))
                .await
                .0,
            403,
            "{what}"
        );
    }
    assert_state_conflict(
        &act(&app, &w.acme, &path(&draft, "submission"), &json!({})).await,
        "draft",
    );

    // Withdrawn from returned and from draft; nothing more is possible.
    for (id, from) in [(&returned, "returned"), (&draft, "draft")] {
        let (status, view) = act(&app, &w.acme, &path(id, "withdrawal"), &json!({})).await;
        assert_eq!(
            (status, &view["status"]),
            (200, &json!("withdrawn")),
            "from {from}"
        );
        assert_state_conflict(
            &act(&app, &w.acme, &path(id, "withdrawal"), &json!({})).await,
            "withdrawn",
        );
        assert_state_conflict(
            &act(&app, &w.acme, &path(id, "submission"), &json!({})).await,
            "withdrawn",
        );
    }
    assert_state_conflict(
        &act(
            &app,
            &w.globex,
            &completion_path(&draft_link),
            &completion("globex"),
        )
        .await,
        "withdrawn",
    );
    assert_eq!(app.count("select count(*) from transfers").await, 0);
    assert_eq!(
        app.count("select count(*) from audit_events where entity_type = 'transfer_form' and to_state = 'withdrawn'").await,
        2
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_form_not_submitted_within_form_valid_expires() {
    let mut app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    assert_eq!(
        app.settings.transfers.form_valid,
        Duration::from_secs(14 * 24 * 3600)
    );
    let (draft, draft_link) = open_form(&app, &w, "en").await;
    let (returned, link) = open_form(&app, &w, "en").await;
    act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("globex"),
    )
    .await;
    let (_, view) = form_view(&app, &w.acme, &draft).await;
    let opened_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(view["created_at"].clone()).unwrap();

    app.travel_to(opened_at + TimeDelta::days(14) + TimeDelta::minutes(1))
        .await;

    // A read shows the expiry; the first act records it and is refused.
    assert_eq!(
        form_view(&app, &w.acme, &draft).await.1["status"],
        "expired"
    );
    assert_eq!(stored_status(&app, &draft).await, "draft");
    assert_state_conflict(
        &act(
            &app,
            &w.globex,
            &completion_path(&draft_link),
            &completion("globex"),
        )
        .await,
        "expired",
    );
    assert_eq!(stored_status(&app, &draft).await, "expired");
    let path = format!("/v1/transfer-forms/{returned}/submission");
    assert_state_conflict(&act(&app, &w.acme, &path, &json!({})).await, "expired");
    assert_state_conflict(&act(&app, &w.acme, &path, &json!({})).await, "expired");
    let path = format!("/v1/transfer-forms/{returned}/withdrawal");
    assert_state_conflict(&act(&app, &w.acme, &path, &json!({})).await, "expired");
    assert_eq!(
        app.count("select count(*) from audit_events where entity_type = 'transfer_form' and to_state = 'expired'").await,
        2,
        "each expiry is recorded once"
    );
    assert_eq!(app.count("select count(*) from transfers").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_or_foreign_forms_are_refused_and_store_nothing() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    app.put_ok(
        "/v1/subscriptions/sub-g",
        &w.globex,
        &json!({ "customer_id": "cust-1", "product": "M365" }),
    )
    .await;
    let with = |field: &str, value: Value| {
        let mut body = opening("en");
        body[field] = value;
        body
    };

    let (status, _) = act(&app, &w.operator, "/v1/transfer-forms", &opening("en")).await;
    assert_eq!(status, 403, "operators enter a complete ticket instead");
    let mut bad = with("subscription_ids", json!([]));
    bad["source_contact"]["email"] = json!("nope");
    bad["customer_admin_email"] = json!("nope");
    bad["locale"] = json!("fr");
    let (status, body) = act(&app, &w.acme, "/v1/transfer-forms", &bad).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "subscription_ids",
            "source_contact.email",
            "customer_admin_email",
            "locale"
        ]
    );
    assert_eq!(
        act(&app, &w.initech, "/v1/transfer-forms", &opening("en"))
            .await
            .0,
        404,
        "not acted for"
    );
    let unknown = with("customer_id", json!("cust-404"));
    assert_eq!(
        act(&app, &w.acme, "/v1/transfer-forms", &unknown).await.0,
        404
    );
    let (status, body) = act(
        &app,
        &w.acme,
        "/v1/transfer-forms",
        &with("subscription_ids", json!(["sub-1", "sub-g", "sub-404"])),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "subscription_ids[1]");
    assert_eq!(body["errors"][1]["field"], "subscription_ids[2]");
    assert_eq!(app.count("select count(*) from transfer_forms").await, 0);
    assert_eq!(mails(&app, "transfer_form_link").await, 0);

    // The customer's part is checked as strictly.
    let (id, link) = open_form(&app, &w, "en").await;
    let mut bad = completion("globex");
    bad["customer_contact"]["name"] = json!(" ");
    let (status, body) = act(&app, &w.globex, &completion_path(&link), &bad).await;
    assert_eq!(
        (status, &body["errors"][0]["field"]),
        (400, &json!("customer_contact.name"))
    );
    let (status, _) = act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("acme"),
    )
    .await;
    assert_eq!(status, 400, "the destination is not the source");
    let (status, body) = act(
        &app,
        &w.globex,
        &completion_path(&link),
        &completion("nobody"),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["field"]),
        (422, &json!("destination_partner_id"))
    );
    assert_eq!(stored_status(&app, &id).await, "draft");
    assert_eq!(mails(&app, "transfer_form_returned").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_form_routes_statuses_and_enums() {
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
    for (path, statuses) in [
        (
            "/v1/transfer-forms",
            &["202", "400", "403", "404", "422"][..],
        ),
        (
            "/v1/transfer-forms/{token}/completion",
            &["200", "403", "404", "409", "422"],
        ),
        (
            "/v1/transfer-forms/{id}/submission",
            &["202", "403", "404", "409", "422"],
        ),
        (
            "/v1/transfer-forms/{id}/withdrawal",
            &["200", "403", "404", "409"],
        ),
    ] {
        let responses = &paths[path]["post"]["responses"];
        for status in statuses {
            assert!(responses.get(*status).is_some(), "POST {path}: no {status}");
        }
    }
    assert!(paths["/v1/transfer-forms/{id}"]["get"]["responses"]["200"].is_object());
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["FormStatus"]["enum"],
        json!(["draft", "returned", "submitted", "withdrawn", "expired"])
    );
    assert_eq!(
        schemas["TransferFormRequest"]["properties"]["customer_admin_email"]["format"],
        "email"
    );
    assert_eq!(schemas["Contact"]["properties"]["email"]["format"], "email");
    let required = schemas["TransferFormCompletion"]["required"]
        .as_array()
        .unwrap();
    assert_eq!(required.len(), 3, "{required:?}");
    app.cleanup().await;
}
