//! The tenant boundary (SPEC §2.1, §3.9), route by route: every operation
//! of the OpenAPI document is called with a foreign partner's portal token
//! against acme's objects, and must answer 404 (403 for a write naming
//! another partner, or a route not for portals) and change nothing. The
//! routes come from `/openapi.json` itself: a route added later without a
//! case here fails this test until someone decides how it is guarded.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::store::tokens::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, new_order, spawn_with, test_settings};

/// acme's objects, and the one-time links mailed for them.
struct Victim {
    order: String,
    job: String,
    trial: String,
    transfer: String,
    form: String,
    form_link: String,
    registration: String,
    registration_link: String,
    request: String,
    request_link: String,
    partnership: String,
    partnership_link: String,
}

async fn created(response: reqwest::Response, what: &str) -> Value {
    assert!(
        response.status().is_success(),
        "{what}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

fn id(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
        .to_owned()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.post(path, token, &Uuid::new_v4().to_string(), body)
        .await
}

/// acme holds cust-1 with a user, a subscription, a role, an order, a
/// trial, a registration, a transfer to initech (which acts for cust-1)
/// and an open transfer form;
/// umbrella has asked cust-1 for a relationship and been invited by
/// initech to a partnership.
async fn victim(app: &TestApp) -> Victim {
    let acme = app.portal_token("acme").await;
    let initech = app.portal_token("initech").await;
    let umbrella = app.portal_token("umbrella").await;
    let operator = app.token(Role::Operator, None).await;
    app.put_ok(
        "/v1/partners/umbrella",
        &umbrella,
        &json!({ "admin_email": "admin@umbrella.example" }),
    )
    .await;
    for (path, body) in [
        ("/v1/customers/cust-1", json!({ "name": "Cust One" })),
        (
            "/v1/users/user-1",
            json!({ "customer_id": "cust-1", "email": "u1@cust.example" }),
        ),
        (
            "/v1/subscriptions/sub-1",
            json!({ "customer_id": "cust-1", "product": "Azure plan" }),
        ),
        (
            "/v1/role-assignments/role-1",
            json!({ "principal_type": "partner", "principal_id": "acme", "role": "admin-agent",
                    "scope_type": "subscription", "scope_id": "sub-1" }),
        ),
        ("/v1/reseller-relationships/initech/cust-1", json!({})),
    ] {
        app.put_ok(path, &acme, &body).await;
    }
    let order = created(
        post(app, "/v1/license-orders", &acme, &new_order("virtual", 1)).await,
        "order",
    )
    .await;
    let trial = created(
        post(
            app,
            "/v1/trials",
            &acme,
            &json!({ "customer_id": "cust-1", "services": ["chat"],
                     "ends_at": Utc::now() + TimeDelta::days(30),
                     "customer_admin": { "email": "admin@cust.example" },
                     "partner_admin": { "email": "desk@acme.example" } }),
        )
        .await,
        "trial",
    )
    .await;
    let contact = json!({ "name": "N", "email": "n@example.com" });
    let transfer = created(
        post(
            app,
            "/v1/transfers",
            &operator,
            &json!({ "customer_id": "cust-1", "source_partner_id": "acme",
                     "destination_partner_id": "initech", "subscription_ids": ["sub-1"],
                     "customer_contact": contact, "source_contact": contact,
                     "destination_contact": contact }),
        )
        .await,
        "transfer",
    )
    .await;
    let form = created(
        post(
            app,
            "/v1/transfer-forms",
            &acme,
            &json!({ "customer_id": "cust-1", "subscription_ids": ["sub-1"],
                     "source_contact": contact, "customer_admin_email": "admin@cust.example" }),
        )
        .await,
        "transfer form",
    )
    .await;
    let form_link = app.link_token("tform_").await;
    let registration = created(
        post(
            app,
            "/v1/registrations",
            &acme,
            &json!({ "email": "new@cust.example" }),
        )
        .await,
        "registration",
    )
    .await;
    let registration_link = app.link_token("reg_").await;
    let request = created(
        post(
            app,
            "/v1/relationship-requests",
            &umbrella,
            &json!({ "customer_id": "cust-1", "customer_admin_email": "admin@cust.example" }),
        )
        .await,
        "relationship request",
    )
    .await;
    let request_link = app.link_token("rel_").await;
    let partnership = created(
        post(
            app,
            "/v1/partnerships",
            &initech,
            &json!({ "reseller_id": "umbrella" }),
        )
        .await,
        "partnership",
    )
    .await;
    let partnership_link = app.link_token("pship_").await;
    Victim {
        order: id(&order, "order_id"),
        job: id(&order, "job_id"),
        trial: id(&trial, "id"),
        transfer: id(&transfer, "transfer_id"),
        form: id(&form, "form_id"),
        form_link,
        registration: id(&registration, "registration_id"),
        registration_link,
        request: id(&request, "request_id"),
        request_link,
        partnership: id(&partnership, "partnership_id"),
        partnership_link,
    }
}

/// How one operation is called by the attacker, and what it must answer.
enum Case {
    Attack {
        path: String,
        body: Option<Value>,
        /// Acceptable statuses: 404, or 403 where the route refuses writes
        /// naming another partner or is not for portals at all.
        expect: &'static [u16],
    },
    /// Not a way to reach another partner's data; says why.
    Exempt(&'static str),
}

const NOT_FOUND: &[u16] = &[404];
const FORBIDDEN: &[u16] = &[403];
const REFUSED: &[u16] = &[403, 404];

fn attack(path: impl Into<String>, body: Option<Value>, expect: &'static [u16]) -> Case {
    Case::Attack {
        path: path.into(),
        body,
        expect,
    }
}

/// Every operation of the document, keyed by method and path template.
fn cases(v: &Victim) -> BTreeMap<(&'static str, &'static str), Case> {
    let contact = json!({ "name": "N", "email": "n@example.com" });
    let order = format!("/v1/license-orders/{}", v.order);
    let trial = format!("/v1/trials/{}", v.trial);
    let transfer = format!("/v1/transfers/{}", v.transfer);
    let form = format!("/v1/transfer-forms/{}", v.form);
    let registration = format!("/v1/registrations/{}", v.registration);
    let role = json!({ "principal_type": "partner", "principal_id": "globex", "role": "admin",
                       "scope_type": "subscription", "scope_id": "sub-1" });
    let empty = || Some(json!({}));
    BTreeMap::from([
        (
            ("post", "/v1/license-orders"),
            attack(
                "/v1/license-orders",
                Some(new_order("virtual", 1)),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/license-orders/{id}"),
            attack(&order, None, NOT_FOUND),
        ),
        (
            ("post", "/v1/license-orders/{id}/additions"),
            attack(
                format!("{order}/additions"),
                Some(json!({ "quantity": 1 })),
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/license-orders/{id}/vm-count"),
            attack(
                format!("{order}/vm-count"),
                Some(json!({ "vm_count": 9 })),
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/license-orders/{id}/cancellations"),
            attack(
                format!("{order}/cancellations"),
                Some(json!({ "all": true })),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/jobs/{id}"),
            attack(format!("/v1/jobs/{}", v.job), None, NOT_FOUND),
        ),
        (
            ("get", "/v1/ops/audit"),
            attack("/v1/ops/audit", None, FORBIDDEN),
        ),
        (
            ("get", "/v1/ops/queues"),
            attack("/v1/ops/queues", None, FORBIDDEN),
        ),
        (
            ("get", "/v1/ops/dead-letters"),
            attack("/v1/ops/dead-letters", None, FORBIDDEN),
        ),
        (
            ("post", "/v1/ops/dead-letters/replay"),
            attack("/v1/ops/dead-letters/replay", empty(), FORBIDDEN),
        ),
        (
            ("get", "/v1/ops/sla"),
            attack("/v1/ops/sla", None, FORBIDDEN),
        ),
        (
            ("post", "/v1/transfers"),
            attack(
                "/v1/transfers",
                Some(json!({
            "customer_id": "cust-1", "source_partner_id": "acme", "subscription_ids": ["sub-1"],
            "destination_partner_id": "globex",
            "customer_contact": contact, "source_contact": contact, "destination_contact": contact })),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/transfer-forms"),
            attack(
                "/v1/transfer-forms",
                Some(json!({
            "customer_id": "cust-1", "subscription_ids": ["sub-1"], "source_contact": contact,
            "customer_admin_email": "a@globex.example" })),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/transfer-forms/{id}"),
            attack(&form, None, NOT_FOUND),
        ),
        (
            ("post", "/v1/transfer-forms/{token}/completion"),
            attack(
                format!("/v1/transfer-forms/{}/completion", v.form_link),
                Some(json!({
            "customer_contact": contact, "destination_partner_id": "globex",
            "destination_contact": contact })),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/transfer-forms/{id}/submission"),
            attack(format!("{form}/submission"), empty(), NOT_FOUND),
        ),
        (
            ("post", "/v1/transfer-forms/{id}/withdrawal"),
            attack(format!("{form}/withdrawal"), empty(), NOT_FOUND),
        ),
        (
            ("get", "/v1/transfers/{id}"),
            attack(&transfer, None, NOT_FOUND),
        ),
        (
            ("post", "/v1/transfers/{id}/cancellation"),
            attack(format!("{transfer}/cancellation"), empty(), NOT_FOUND),
        ),
        (
            ("post", "/v1/transfers/{id}/retry"),
            attack(format!("{transfer}/retry"), empty(), REFUSED),
        ),
        (
            ("post", "/v1/role-cleanups"),
            attack(
                "/v1/role-cleanups",
                Some(json!({
            "customer_id": "cust-1", "partner_id": "acme", "subscription_ids": ["sub-1"] })),
                NOT_FOUND,
            ),
        ),
        (
            ("put", "/v1/partners/{id}"),
            attack(
                "/v1/partners/acme",
                Some(json!({ "name": "taken" })),
                FORBIDDEN,
            ),
        ),
        (
            ("get", "/v1/partners/{id}"),
            attack("/v1/partners/acme", None, NOT_FOUND),
        ),
        (
            ("put", "/v1/customers/{id}"),
            attack(
                "/v1/customers/cust-1",
                Some(json!({ "name": "taken" })),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/customers/{id}"),
            attack("/v1/customers/cust-1", None, NOT_FOUND),
        ),
        (
            ("put", "/v1/users/{id}"),
            attack(
                "/v1/users/user-1",
                Some(json!({ "customer_id": "cust-1", "email": "x@globex.example" })),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/users/{id}"),
            attack("/v1/users/user-1", None, NOT_FOUND),
        ),
        (
            ("put", "/v1/subscriptions/{id}"),
            attack(
                "/v1/subscriptions/sub-1",
                Some(json!({ "customer_id": "cust-1", "product": "taken" })),
                NOT_FOUND,
            ),
        ),
        (
            ("get", "/v1/subscriptions/{id}"),
            attack("/v1/subscriptions/sub-1", None, NOT_FOUND),
        ),
        (
            ("put", "/v1/role-assignments/{id}"),
            attack("/v1/role-assignments/role-1", Some(role), NOT_FOUND),
        ),
        (
            ("get", "/v1/role-assignments/{id}"),
            attack("/v1/role-assignments/role-1", None, NOT_FOUND),
        ),
        (
            (
                "put",
                "/v1/reseller-relationships/{partner_id}/{customer_id}",
            ),
            attack(
                "/v1/reseller-relationships/globex/cust-1",
                empty(),
                FORBIDDEN,
            ),
        ),
        (
            (
                "get",
                "/v1/reseller-relationships/{partner_id}/{customer_id}",
            ),
            attack("/v1/reseller-relationships/initech/cust-1", None, NOT_FOUND),
        ),
        (
            (
                "delete",
                "/v1/reseller-relationships/{partner_id}/{customer_id}",
            ),
            attack("/v1/reseller-relationships/initech/cust-1", None, FORBIDDEN),
        ),
        (
            ("post", "/v1/relationship-requests"),
            Case::Exempt(
                "asking is how a partner seeks access; it shows nothing and grants nothing until the customer accepts (tests/api/relationships.rs)",
            ),
        ),
        (
            ("get", "/v1/relationship-requests/{id}"),
            attack(
                format!("/v1/relationship-requests/{}", v.request),
                None,
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/relationship-requests/{token}/acceptance"),
            attack(
                format!("/v1/relationship-requests/{}/acceptance", v.request_link),
                empty(),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/relationship-requests/{token}/decline"),
            attack(
                format!("/v1/relationship-requests/{}/decline", v.request_link),
                empty(),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/partnerships"),
            Case::Exempt(
                "inviting a reseller grants nothing until that reseller's own portal accepts (tests/api/relationships.rs)",
            ),
        ),
        (
            ("get", "/v1/partnerships/{id}"),
            attack(
                format!("/v1/partnerships/{}", v.partnership),
                None,
                NOT_FOUND,
            ),
        ),
        (
            ("delete", "/v1/partnerships/{id}"),
            attack(
                format!("/v1/partnerships/{}", v.partnership),
                None,
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/partnerships/{token}/acceptance"),
            attack(
                format!("/v1/partnerships/{}/acceptance", v.partnership_link),
                empty(),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/partnerships/{token}/decline"),
            attack(
                format!("/v1/partnerships/{}/decline", v.partnership_link),
                empty(),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/trials"),
            attack(
                "/v1/trials",
                Some(json!({
            "customer_id": "cust-1", "services": ["chat"], "ends_at": Utc::now() + TimeDelta::days(30),
            "customer_admin": { "email": "a@globex.example" }, "partner_admin": { "email": "d@globex.example" } })),
                NOT_FOUND,
            ),
        ),
        (("get", "/v1/trials/{id}"), attack(&trial, None, NOT_FOUND)),
        (
            ("post", "/v1/trials/{id}/extensions"),
            attack(format!("{trial}/extensions"), empty(), NOT_FOUND),
        ),
        (
            ("post", "/v1/trials/{id}/conversions"),
            attack(format!("{trial}/conversions"), empty(), NOT_FOUND),
        ),
        (
            ("post", "/v1/trials/{id}/services"),
            attack(
                format!("{trial}/services"),
                Some(json!({ "services": ["phone"] })),
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/trials/{id}/purchase-requests"),
            attack(format!("{trial}/purchase-requests"), empty(), NOT_FOUND),
        ),
        (
            ("get", "/v1/customers/{id}/services"),
            attack("/v1/customers/cust-1/services", None, NOT_FOUND),
        ),
        (
            ("put", "/v1/customers/{id}/services/{service}"),
            attack("/v1/customers/cust-1/services/video", empty(), NOT_FOUND),
        ),
        (
            ("post", "/v1/registrations"),
            Case::Exempt(
                "a sign-up names a mail address, not another partner's object; it belongs to the caller's partner",
            ),
        ),
        (
            ("get", "/v1/registrations/{id}"),
            attack(&registration, None, NOT_FOUND),
        ),
        (
            ("post", "/v1/registrations/{token}/completion"),
            attack(
                format!("/v1/registrations/{}/completion", v.registration_link),
                empty(),
                NOT_FOUND,
            ),
        ),
        (
            ("post", "/v1/registrations/{id}/approval"),
            attack(format!("{registration}/approval"), empty(), FORBIDDEN),
        ),
        (
            ("post", "/v1/registrations/{id}/rejection"),
            attack(
                format!("{registration}/rejection"),
                Some(json!({ "reason": "taken" })),
                FORBIDDEN,
            ),
        ),
        (
            ("post", "/v1/sweeps/{sweep}"),
            attack(
                "/v1/sweeps/trial-notices",
                Some(json!({ "dry_run": false })),
                FORBIDDEN,
            ),
        ),
    ])
}

/// A digest of every table that holds data (the outbox is delivery
/// bookkeeping the relay updates on its own).
async fn digest(app: &TestApp) -> BTreeMap<String, String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = 'public' and table_type = 'BASE TABLE'
           and table_name not in ('_sqlx_migrations', 'outbox')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut digests = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from {table} t"
        );
        let digest: String = sqlx::query_scalar(&sql).fetch_one(&app.pool).await.unwrap();
        digests.insert(table, digest);
    }
    digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_portal_reaches_nothing_of_another_partner_on_any_route() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let v = victim(&app).await;
    let globex = app.portal_with_customer("globex", "cust-g").await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cases = cases(&v);
    let before = digest(&app).await;

    let mut failures = Vec::new();
    let mut attacked = 0;
    let mut exempt = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let Some(case) = cases.remove(&(method, template.as_str())) else {
                failures.push(format!(
                    "{method} {template} has no case here: say how a foreign portal is kept out"
                ));
                continue;
            };
            let (path, body, expect) = match case {
                Case::Attack { path, body, expect } => (path, body, expect),
                Case::Exempt(why) => {
                    exempt.push(format!("{method} {template}: {why}"));
                    continue;
                }
            };
            let mut request = app
                .client
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    app.url(&path),
                )
                .bearer_auth(&globex)
                .header("Idempotency-Key", Uuid::new_v4().to_string());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            attacked += 1;
            if !expect.contains(&status) {
                failures.push(format!(
                    "{method} {path}: {status}, expected {expect:?}: {text}"
                ));
            }
            // An answer may echo what was asked for, nothing of acme's besides.
            let asked = format!(
                "{path} {}",
                body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            for secret in [
                "cust-1",
                "Cust One",
                "admin-agent",
                "Azure plan",
                "u1@cust.example",
            ] {
                if text.contains(secret) && !asked.contains(secret) {
                    failures.push(format!("{method} {path} leaks {secret}: {text}"));
                }
            }
        }
    }
    for ((method, template), _) in cases {
        failures.push(format!(
            "{method} {template} has a case but is not in the OpenAPI document"
        ));
    }

    let after = digest(&app).await;
    let changed: Vec<_> = before
        .iter()
        .filter(|(table, digest)| after.get(*table) != Some(digest))
        .map(|(table, _)| table.clone())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(changed.is_empty(), "the attempts changed {changed:?}");
    assert!(attacked >= 40, "only {attacked} operations were attacked");
    eprintln!("not attacked, and why:\n{}", exempt.join("\n"));
    assert!(
        exempt.len() <= 3,
        "exemptions need a reason each: {exempt:?}"
    );
    app.cleanup().await;
}
