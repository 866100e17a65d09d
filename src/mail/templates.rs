//! Mail templates: owns the wording of every mail and the rendering of a
//! mail kind + locale + JSON context into a subject and a plain-text body.
//!
//! Each kind has one file per locale, `templates/<kind>.<locale>.txt`, compiled
//! into the binary with `include_str!` so a deployed worker never depends on
//! files next to it; the build script lists the directory, so a new file
//! needs no line here. A file's first line is `subject: ...`, then one blank line,
//! then the body; both parts are minijinja templates and see the caller's
//! context plus `service_name`. Line numbers in body errors count from the first
//! body line (line 3 of the file).
//!
//! Rendering is strict: an undefined variable is an error, because a mail row
//! is written once, in the same transaction as the state change, and a blank
//! where a license key should be would go out to a customer as is.
//!
//! What this module does not own: choosing the recipient, the Message-ID, and
//! turning the rendered text into MIME (see `message`).

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

pub use crate::locale::Locale;

/// One template file compiled into the binary.
struct TemplateFile {
    kind: &'static str,
    locale: Locale,
    /// `'static` names, because minijinja's `Environment<'static>` borrows them.
    subject_name: &'static str,
    body_name: &'static str,
    source: &'static str,
}

macro_rules! template_file {
    ($kind:literal, $locale:literal, $variant:expr) => {
        TemplateFile {
            kind: $kind,
            locale: $variant,
            subject_name: concat!($kind, ".", $locale, ".txt (subject)"),
            body_name: concat!($kind, ".", $locale, ".txt (body)"),
            // From the crate root: the list is `include!`d from OUT_DIR.
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/mail/templates/",
                $kind,
                ".",
                $locale,
                ".txt"
            )),
        }
    };
}

/// Every kind in every locale: each file of `templates/`, listed by the
/// build script (`build.rs`), so a new template needs no line here; the
/// tests check that each kind exists in all of [`Locale::ALL`].
const TEMPLATES: &[TemplateFile] = include!(concat!(env!("OUT_DIR"), "/mail_templates.rs"));

/// The mail kinds that have templates, e.g. for validating a `template`
/// column before a row is written.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for file in TEMPLATES {
        if !seen.contains(&file.kind) {
            seen.push(file.kind);
        }
    }
    seen.into_iter()
}

/// A rendered mail. `Debug` shows the subject only: bodies carry license keys
/// and must not end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// Already prefixed with `[service name] `.
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for RenderedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedMail")
            .field("subject", &self.subject)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no mail template {template:?} for locale {locale}")]
    UnknownTemplate { template: String, locale: Locale },
    #[error("mail context for {template:?} must be a JSON object")]
    ContextNotObject { template: String },
    #[error("mail template {name} is malformed: {reason}")]
    Malformed {
        name: &'static str,
        reason: &'static str,
    },
    /// Syntax errors and undefined variables. minijinja's message names the
    /// template and line; it does not include context values (debug info is
    /// switched off, see [`Renderer::new`]).
    #[error("rendering mail template failed: {source}")]
    Template {
        #[source]
        source: minijinja::Error,
    },
}

/// Renders mail templates. Templates are compiled in (`include_str!`) so the
/// binary is self-contained. Cheap to share: build one at startup and put it
/// behind an `Arc`.
pub struct Renderer {
    service_name: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(service_name: impl Into<String>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Plain text: HTML-escaping would turn `&` in a company name into `&amp;`.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Block tags on their own line leave no blank line or indentation
        // behind, so the template files can be laid out like the mail.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Bodies end with a newline like the files do; subjects are one line.
        env.set_keep_trailing_newline(true);
        // With debug on, minijinja attaches the variables in scope to errors
        // and prints them in `Debug`; those include license keys.
        env.set_debug(false);
        env.add_filter("usage_label", usage_label);
        env.add_function("fail", fail);
        // Compiled once here rather than on every render. A file that does
        // not compile is left out, and `render` reports its error.
        for file in TEMPLATES {
            if let Ok((subject, body)) = split_file(file) {
                let _ = env.add_template(file.subject_name, subject);
                let _ = env.add_template(file.body_name, body);
            }
        }
        Renderer {
            service_name: service_name.into(),
            env,
        }
    }

    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// `template` is a kind name like `"license_issued"`; context is JSON.
    /// Returns subject (already prefixed `"[service] "`) and plain-text body.
    pub fn render(
        &self,
        template: &str,
        locale: Locale,
        context: &serde_json::Value,
    ) -> Result<RenderedMail, RenderError> {
        let file = TEMPLATES
            .iter()
            .find(|f| f.kind == template && f.locale == locale)
            .ok_or_else(|| RenderError::UnknownTemplate {
                template: template.to_owned(),
                locale,
            })?;
        if !context.is_object() {
            return Err(RenderError::ContextNotObject {
                template: template.to_owned(),
            });
        }
        let (subject_src, body_src) = split_file(file)?;

        // `service_name` comes from configuration and wins over a context key
        // of the same name: the prefix and the text must agree.
        let ctx = context! {
            service_name => self.service_name.as_str(),
            ..Value::from_serialize(context)
        };
        let render = |name: &'static str, src: &'static str| {
            self.env
                .get_template(name)
                .or_else(|_| self.env.template_from_named_str(name, src))
                .and_then(|t| t.render(&ctx))
                .map_err(|source| RenderError::Template { source })
        };
        let subject = render(file.subject_name, subject_src)?;
        let body = render(file.body_name, body_src)?;

        // A header is one line: a newline from a context value (or from the
        // configured service name) must not start a new header or cut the
        // subject short, so control characters become spaces.
        let subject: String = format!("[{}] {}", self.service_name, subject.trim())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Ok(RenderedMail { subject, body })
    }
}

/// Splits a template file into its subject template and body template.
fn split_file(file: &TemplateFile) -> Result<(&'static str, &'static str), RenderError> {
    let malformed = |reason| RenderError::Malformed {
        name: file.subject_name,
        reason,
    };
    let source: &'static str = file.source;
    let (first, rest) = source
        .split_once('\n')
        .ok_or_else(|| malformed("no body"))?;
    let subject = first
        .trim_end_matches('\r')
        .strip_prefix("subject:")
        .ok_or_else(|| malformed("first line must start with `subject:`"))?
        .trim();
    let body = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .ok_or_else(|| malformed("second line must be blank"))?;
    Ok((subject, body))
}

/// `{{ usage | usage_label("ja") }}`: the words for a license's usage column
/// (`virtual`, `bare_metal`, `hypervisor`). Kept in one table rather than in
/// each template; an unknown value prints as is so a new usage added to the
/// database never blocks a mail.
fn usage_label(usage: &str, locale: &str) -> String {
    let label = match (Locale::parse(locale), usage) {
        (Some(Locale::Ja), "virtual") => "仮想マシン",
        (Some(Locale::Ja), "bare_metal") => "物理サーバー",
        (Some(Locale::Ja), "hypervisor") => "ハイパーバイザー",
        (Some(Locale::En), "virtual") => "Virtual machine",
        (Some(Locale::En), "bare_metal") => "Physical server",
        (Some(Locale::En), "hypervisor") => "Hypervisor",
        _ => usage,
    };
    label.to_owned()
}

/// `{{ fail("...") }}`: stops rendering with an error. For the `else` of a
/// branch on a value that must be one of a known set (`recipient_role`), so a
/// missing or unexpected value fails like an undefined variable instead of
/// going out with another recipient's wording. The message is the template's
/// literal, never a context value.
fn fail(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn license_context(sla_met: bool) -> serde_json::Value {
        json!({
            "order_id": "0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f",
            "vendor_order_id": "VO-2026-004211",
            "customer_id": "CUST-0042",
            "contact_name": "山田 太郎",
            "usage": "hypervisor",
            "licenses": [
                { "key": "AAAA-BBBB-CCCC-0001", "usage": "hypervisor", "vm_count": 25 },
                { "key": "AAAA-BBBB-CCCC-0002", "usage": "virtual", "vm_count": null }
            ],
            "sla_met": sla_met
        })
    }

    fn vm_count_context() -> serde_json::Value {
        json!({
            "order_id": "0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f",
            "vendor_order_id": "VO-2026-004211",
            "contact_name": "Jane Smith",
            "key": "AAAA-BBBB-CCCC-0001",
            "previous_vm_count": 25,
            "vm_count": 40
        })
    }

    fn keys_cancelled_context(order_revoked_next: bool) -> serde_json::Value {
        let (keys, remaining) = if order_revoked_next {
            (json!(["AAAA-BBBB-CCCC-0001", "AAAA-BBBB-CCCC-0002"]), 0)
        } else {
            (json!(["AAAA-BBBB-CCCC-0001"]), 1)
        };
        json!({
            "order_id": "0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f",
            "vendor_order_id": "VO-2026-004211",
            "contact_name": "山田 太郎",
            "keys": keys,
            "remaining": remaining,
            "order_revoked_next": order_revoked_next
        })
    }

    fn order_revoked_context(for_partner: bool) -> serde_json::Value {
        json!({
            "order_id": "0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f",
            "vendor_order_id": "VO-2026-004211",
            "customer_id": "CUST-0042",
            "recipient_name": if for_partner { "佐藤 花子" } else { "山田 太郎" },
            "for_partner": for_partner
        })
    }

    const TRANSFER_KINDS: [&str; 4] = [
        "transfer_submitted",
        "transfer_completed",
        "transfer_rejected",
        "transfer_failed",
    ];
    const TRANSFER_ROLES: [&str; 3] = ["customer", "source", "destination"];
    const TRANSFER_ID: &str = "0190f4c8-1b2a-7e3d-8f4a-6c5b4a3d2e1f";
    const REJECTED_REASON: &str =
        "partner PARTNER-0019 has no reseller relationship with customer CUST-0042";
    const FAILED_REASON: &str = "switching subscription SUB-0002 timed out";

    /// `reason` is empty unless the transfer was rejected or failed, as the
    /// callers send it.
    fn transfer_context(kind: &str, role: &str) -> serde_json::Value {
        let reason = match kind {
            "transfer_rejected" => REJECTED_REASON,
            "transfer_failed" => FAILED_REASON,
            _ => "",
        };
        let recipient_name = match role {
            "customer" => "山田 太郎",
            "source" => "佐藤 花子",
            _ => "鈴木 一郎",
        };
        json!({
            "transfer_id": TRANSFER_ID,
            "customer_id": "CUST-0042",
            "source_partner_id": "PARTNER-0007",
            "destination_partner_id": "PARTNER-0019",
            "subscription_ids": ["SUB-0001", "SUB-0002"],
            "recipient_name": recipient_name,
            "recipient_role": role,
            "reason": reason
        })
    }

    /// Both transfer-form mails take the same context: the form is named by
    /// its id (`TRANSFER_ID`) and lists its subscriptions.
    fn transfer_form_context() -> serde_json::Value {
        json!({
            "form_id": TRANSFER_ID, "customer_id": "CUST-0042", "customer_name": "株式会社サンプル",
            "source_partner_name": "Acme Resale", "subscription_ids": ["SUB-0001", "SUB-0002"],
            "link": LINK, "expires_at": EXPIRES_AT, "valid_days": 14,
            "recipient_name": "佐藤 花子", "customer_contact_name": "山田 太郎",
            "destination_partner_id": "PARTNER-0019", "destination_partner_name": "Globex Resale",
            "destination_contact_name": "鈴木 一郎",
        })
    }

    #[test]
    fn the_form_link_goes_in_the_body_and_the_returned_form_names_the_customers_part() {
        for locale in Locale::ALL {
            let link = render_with("transfer_form_link", locale, &transfer_form_context());
            let returned = render_with("transfer_form_returned", locale, &transfer_form_context());
            assert_well_formed(&link, "link");
            assert_well_formed(&returned, "returned");
            assert!(link.body.contains(TOKEN), "{locale}: {}", link.body);
            assert!(!link.subject.contains(TOKEN), "{locale}");
            assert!(link.body.contains("Acme Resale"), "{locale}");
            assert!(!returned.body.contains(TOKEN), "{locale}");
            for part in ["山田 太郎", "Globex Resale", "PARTNER-0019", "鈴木 一郎"] {
                assert!(returned.body.contains(part), "{locale}: {part}");
            }
        }
    }

    fn render_transfer(kind: &str, locale: Locale, role: &str) -> RenderedMail {
        Renderer::new("C-Chorus")
            .render(kind, locale, &transfer_context(kind, role))
            .unwrap()
    }

    const TRIAL_KINDS: [&str; 2] = ["trial_expiring", "trial_expired"];
    const TRIAL_ROLES: [&str; 2] = ["customer_admin", "partner_admin"];
    const TRIAL_ID: &str = "0190f6e2-3c4d-7f5e-8a6b-7d6c5b4a3f2e";
    const ENDS_AT: &str = "2026-12-24 00:00 UTC";
    const GRACE_ENDS_AT: &str = "2027-01-23 00:00 UTC";
    const PURGED_AT: &str = "2027-01-23 00:05 UTC";
    const EMAIL: &str = "taro.yamada@example.co.jp";
    const TOKEN: &str = "q7Zr2L9xWm4Tn8Kp";
    const LINK: &str = "https://portal.example.com/signup/complete?token=q7Zr2L9xWm4Tn8Kp";
    const EXPIRES_AT: &str = "2026-06-01 03:00 UTC";
    const PURCHASE_LINK: &str =
        "https://portal.example.com/purchase?trial=0190f6e2-3c4d-7f5e-8a6b-7d6c5b4a3f2e";

    /// A notice seven days before the end, with two extensions left, as the
    /// trial sweep sends it.
    fn trial_context(kind: &str, role: &str) -> serde_json::Value {
        let mut ctx = json!({
            "recipient_role": role,
            "customer_id": "CUST-0042",
            "customer_name": "株式会社サンプル",
            "trial_id": TRIAL_ID,
            "services": ["C-Chorus Chat", "C-Chorus Phone"],
            "ends_at": ENDS_AT,
            "grace_days": 30
        });
        ctx["purchase_link"] = json!(PURCHASE_LINK);
        if kind == "trial_expiring" {
            ctx["days_left"] = json!(7);
            ctx["extensions_left"] = json!(2);
        } else {
            ctx["grace_ends_at"] = json!(GRACE_ENDS_AT);
        }
        ctx
    }

    fn trial_purchase_request_context() -> serde_json::Value {
        json!({
            "customer_id": "CUST-0042",
            "customer_name": "株式会社サンプル",
            "customer_admin_email": EMAIL,
            "trial_id": TRIAL_ID,
            "status": "active",
            "services": ["C-Chorus Chat", "C-Chorus Phone"],
            "note": "",
            "ends_at": ENDS_AT,
            "requested_at": EXPIRES_AT,
            "purchase_link": PURCHASE_LINK
        })
    }

    #[test]
    fn trial_purchase_request_both_locales() {
        let kind = "trial_purchase_request";
        let mut with_note = trial_purchase_request_context();
        with_note["note"] = json!("Please call us.");
        with_note["status"] = json!("expired");
        for locale in Locale::ALL {
            for (ctx, note) in [
                (trial_purchase_request_context(), false),
                (with_note.clone(), true),
            ] {
                let mail = render_with(kind, locale, &ctx);
                let at = format!("{kind}.{locale} (note: {note})");
                assert_well_formed(&mail, &at);
                // Partners handle many customers: the subject says which.
                assert!(mail.subject.contains("CUST-0042"), "{at}: {}", mail.subject);
                for value in [
                    TRIAL_ID,
                    EMAIL,
                    ENDS_AT,
                    PURCHASE_LINK,
                    "2. C-Chorus Phone\n",
                ] {
                    assert!(mail.body.contains(value), "{at}: {value}");
                }
                assert_eq!(mail.body.contains("Please call us."), note, "{at}");
                let grace = match locale {
                    Locale::Ja => "猶予期間中",
                    Locale::En => "in grace",
                };
                assert_eq!(mail.body.contains(grace), note, "{at}");
            }
        }
        let ja = render_with(kind, Locale::Ja, &trial_purchase_request_context());
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアルからのご購入依頼のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.starts_with("ご担当者様\n\n"));
        assert!(ja.body.contains("お客様名：株式会社サンプル\n"));
        let en = render_with(kind, Locale::En, &trial_purchase_request_context());
        assert_eq!(
            en.subject,
            "[C-Chorus] Purchase request from your customer's trial (customer ID CUST-0042)"
        );
        assert!(en.body.starts_with("Dear partner administrator,\n\n"));
    }

    #[test]
    fn trial_notices_carry_the_purchase_link_in_both_locales() {
        for kind in TRIAL_KINDS {
            for locale in Locale::ALL {
                for role in TRIAL_ROLES {
                    let mail = render_with(kind, locale, &trial_context(kind, role));
                    let line = format!("{PURCHASE_LINK}\n");
                    assert!(mail.body.contains(&line), "{kind}.{locale} for {role}");
                }
            }
        }
    }

    fn trial_purged_context() -> serde_json::Value {
        json!({
            "user_name": "山田 太郎",
            "customer_id": "CUST-0042",
            "customer_name": "株式会社サンプル",
            "trial_id": TRIAL_ID,
            "services": ["C-Chorus Chat", "C-Chorus Phone"],
            "purged_at": PURGED_AT
        })
    }

    fn registration_context() -> serde_json::Value {
        json!({
            "email": EMAIL,
            "link": LINK,
            "expires_at": EXPIRES_AT,
            "valid_hours": 3
        })
    }

    fn relationship_invitation_context(provider: Option<&str>) -> serde_json::Value {
        json!({
            "partner_name": "Globex Resale", "customer_name": "株式会社サンプル",
            "provider_name": provider, "link": LINK, "expires_at": EXPIRES_AT, "valid_days": 7
        })
    }

    fn partnership_invitation_context() -> serde_json::Value {
        json!({
            "provider_name": "Initech Distribution", "reseller_name": "Globex Resale",
            "link": LINK, "expires_at": EXPIRES_AT, "valid_days": 7
        })
    }

    #[test]
    fn a_two_tier_invitation_names_the_provider_and_a_direct_one_does_not() {
        for locale in Locale::ALL {
            let direct = render_with(
                "relationship_invitation",
                locale,
                &relationship_invitation_context(None),
            );
            let two_tier = render_with(
                "relationship_invitation",
                locale,
                &relationship_invitation_context(Some("Initech Distribution")),
            );
            assert_well_formed(&direct, "direct");
            assert_well_formed(&two_tier, "two-tier");
            assert!(
                !direct.body.contains("Initech"),
                "{locale}: {}",
                direct.body
            );
            assert!(two_tier.body.contains("Initech Distribution"), "{locale}");
            assert!(direct.body.contains(TOKEN), "{locale}: the link");
            assert!(!direct.subject.contains(TOKEN), "{locale}");
        }
    }

    fn service_started_context() -> serde_json::Value {
        json!({ "email": EMAIL, "services": ["C-Chorus Chat", "C-Chorus Phone"] })
    }

    fn sla_alert_context(stage: &str, completed: bool) -> serde_json::Value {
        json!({
            "stage": stage, "request_id": "r-1", "kind": "additional", "order_id": "o-1",
            "partner_id": "acme", "accepted_at": "2030-01-01 09:00 UTC",
            "sla_deadline": "2030-01-01 09:30 UTC", "now": "2030-01-01 09:40 UTC",
            "completed_at": if completed { json!("2030-01-01 09:35 UTC") } else { json!(null) },
            "late": "5m", "job_id": "j-1", "job_kind": "license.additional",
            "job_status": "retrying", "attempts": 3, "last_error": "vendor timed out",
        })
    }

    #[test]
    fn sla_alert_names_the_stage_and_what_is_late() {
        for locale in Locale::ALL {
            let breached = render_with("sla_alert", locale, &sla_alert_context("breached", true));
            let at_risk = render_with("sla_alert", locale, &sla_alert_context("at_risk", false));
            assert_well_formed(&breached, "breached");
            assert_well_formed(&at_risk, "at_risk");
            assert_ne!(breached.subject, at_risk.subject, "{locale}");
            assert!(breached.body.contains("5m"), "{locale}: {}", breached.body);
            assert!(at_risk.body.contains("2030-01-01 09:40 UTC"), "{locale}");
            assert!(at_risk.body.contains("vendor timed out"), "{locale}");
        }
        let stray = Renderer::new("C-Chorus").render(
            "sla_alert",
            Locale::En,
            &sla_alert_context("late", false),
        );
        assert!(stray.is_err());
    }

    fn render_with(kind: &str, locale: Locale, ctx: &serde_json::Value) -> RenderedMail {
        Renderer::new("C-Chorus").render(kind, locale, ctx).unwrap()
    }

    /// What holds for every mail: prefixed one-line subject, no template
    /// syntax left, no triple newline, a final newline.
    fn assert_well_formed(mail: &RenderedMail, at: &str) {
        assert!(
            mail.subject.starts_with("[C-Chorus] "),
            "{at}: {}",
            mail.subject
        );
        assert!(!mail.subject.contains('\n'), "{at}");
        assert!(!mail.body.contains("{{"), "{at}");
        assert!(!mail.body.contains("{%"), "{at}");
        assert!(!mail.body.contains("\n\n\n"), "{at}: triple newline");
        assert!(mail.body.ends_with('\n'), "{at}");
    }

    /// Example contexts kept beside their templates, `<kind>.example.json`.
    const EXAMPLES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/mail_examples.rs"));

    fn example_for(kind: &str) -> Option<serde_json::Value> {
        let (_, example) = EXAMPLES.iter().find(|(k, _)| *k == kind)?;
        Some(serde_json::from_str(example).expect("an example context is JSON"))
    }

    fn context_for(kind: &str) -> serde_json::Value {
        if let Some(example) = example_for(kind) {
            return example;
        }
        match kind {
            "vm_count_changed" => vm_count_context(),
            "keys_cancelled" => keys_cancelled_context(false),
            "order_revoked" => order_revoked_context(false),
            kind if kind.starts_with("transfer_form_") => transfer_form_context(),
            kind if kind.starts_with("transfer_") => transfer_context(kind, "customer"),
            "trial_expiring" | "trial_expired" => trial_context(kind, "customer_admin"),
            "trial_purged" => trial_purged_context(),
            "trial_purchase_request" => trial_purchase_request_context(),
            "registration" => registration_context(),
            "registration_completed" => registration_completed_context(),
            "service_started" => service_started_context(),
            "registration_refused" => json!({ "email": EMAIL, "reason": "in_progress" }),
            "registration_rejected" => json!({ "email": EMAIL, "reason": "credit check" }),
            "relationship_invitation" => relationship_invitation_context(None),
            "partnership_invitation" => partnership_invitation_context(),
            "sla_alert" => sla_alert_context("breached", true),
            _ => license_context(true),
        }
    }

    #[test]
    fn every_kind_exists_in_every_locale() {
        let kinds: Vec<_> = kinds().collect();
        // The kinds the code sends are compiled in (the build script
        // lists the directory, so a lost file would go unnoticed there).
        for sent in [
            "license_issued",
            "license_added",
            "vm_count_changed",
            "keys_cancelled",
            "order_revoked",
            "transfer_submitted",
            "transfer_completed",
            "transfer_rejected",
            "transfer_failed",
            "transfer_form_link",
            "transfer_form_returned",
            "trial_expiring",
            "trial_expired",
            "trial_purged",
            "trial_purchase_request",
            "registration",
            "registration_completed",
            "service_started",
            "registration_refused",
            "registration_rejected",
            "relationship_invitation",
            "partnership_invitation",
            "sla_alert",
        ] {
            assert!(kinds.contains(&sent), "no template {sent}");
        }
        for kind in kinds {
            for locale in Locale::ALL {
                assert!(
                    TEMPLATES
                        .iter()
                        .any(|f| f.kind == kind && f.locale == locale),
                    "{kind} has no {locale} template"
                );
            }
        }
    }

    #[test]
    fn no_subject_repeats_the_service_name_after_its_prefix() {
        let r = Renderer::new("C-Chorus");
        for kind in kinds().filter(|k| !k.starts_with("registration")) {
            for locale in Locale::ALL {
                let subject = r.render(kind, locale, &context_for(kind)).unwrap().subject;
                let after_prefix = subject.trim_start_matches("[C-Chorus] ");
                assert!(
                    !after_prefix.starts_with("C-Chorus")
                        && !after_prefix.starts_with("Your C-Chorus"),
                    "{kind}.{locale}: {subject}"
                );
            }
        }
    }

    #[test]
    fn every_template_renders_with_prefixed_one_line_subject() {
        let r = Renderer::new("C-Chorus");
        for kind in kinds() {
            for locale in Locale::ALL {
                let mail = r.render(kind, locale, &context_for(kind)).unwrap();
                assert!(
                    mail.subject.starts_with("[C-Chorus] "),
                    "{kind}.{locale}: {}",
                    mail.subject
                );
                assert!(!mail.subject.contains('\n'));
                if let Some(example) = example_for(kind) {
                    // A template with an example context shows each of its
                    // top-level strings.
                    let strings = example.as_object().into_iter().flat_map(|o| o.values());
                    for value in strings.filter_map(|v| v.as_str()) {
                        let shown = mail.body.contains(value) || mail.subject.contains(value);
                        assert!(shown, "{kind}.{locale} does not show {value:?}");
                    }
                } else if kind.starts_with("transfer_") {
                    // A transfer is about subscriptions, not about an order.
                    assert!(mail.body.contains(TRANSFER_ID), "{kind}.{locale}");
                    assert!(mail.body.contains("SUB-0001"), "{kind}.{locale}");
                } else if kind.starts_with("trial_") {
                    assert!(mail.body.contains(TRIAL_ID), "{kind}.{locale}");
                    assert!(mail.body.contains("CUST-0042"), "{kind}.{locale}");
                    assert!(mail.body.contains("1. C-Chorus Chat\n"), "{kind}.{locale}");
                } else if matches!(
                    kind,
                    "registration"
                        | "registration_completed"
                        | "service_started"
                        | "registration_refused"
                        | "registration_rejected"
                ) {
                    assert!(mail.body.contains(EMAIL), "{kind}.{locale}");
                    // Only the registration mail carries the one-time link.
                    assert_eq!(
                        mail.body.contains(TOKEN),
                        kind == "registration",
                        "{kind}.{locale}"
                    );
                    assert!(!mail.subject.contains(TOKEN), "{kind}.{locale}");
                } else if kind.ends_with("_invitation") {
                    // The one-time link is in the body, never the subject.
                    assert!(mail.body.contains(TOKEN), "{kind}.{locale}");
                    assert!(!mail.subject.contains(TOKEN), "{kind}.{locale}");
                    assert!(mail.body.contains("Globex Resale"), "{kind}.{locale}");
                } else if kind == "sla_alert" {
                    // For operators: what is late and where to look.
                    assert!(mail.body.contains("r-1"), "{kind}.{locale}");
                    assert!(mail.body.contains("fulfil queues"), "{kind}.{locale}");
                } else {
                    assert!(mail.body.contains("VO-2026-004211"), "{kind}.{locale}");
                    // An order_revoked mail is about the order, not about keys.
                    if kind != "order_revoked" {
                        assert!(mail.body.contains("AAAA-BBBB-CCCC-0001"), "{kind}.{locale}");
                    }
                }
                assert!(!mail.body.contains("{{"), "{kind}.{locale}");
                assert!(
                    !mail.body.contains("\n\n\n"),
                    "{kind}.{locale}: triple newline"
                );
                assert!(mail.body.ends_with('\n'), "{kind}.{locale}");
            }
        }
    }

    #[test]
    fn license_issued_ja() {
        let r = Renderer::new("C-Chorus");
        let mail = r
            .render("license_issued", Locale::Ja, &license_context(true))
            .unwrap();
        assert_eq!(mail.subject, "[C-Chorus] ライセンスキー発行のお知らせ");
        assert!(mail.body.starts_with("山田 太郎 様\n"));
        assert!(mail.body.contains("AAAA-BBBB-CCCC-0001"));
        assert!(mail.body.contains("AAAA-BBBB-CCCC-0002"));
        assert!(mail.body.contains("対象VM数：25台"));
        // The virtual-machine key has no VM count line.
        assert_eq!(mail.body.matches("対象VM数").count(), 1);
        assert!(mail.body.contains("ハイパーバイザー"));
        assert!(mail.body.contains("添付"));
        assert!(mail.body.contains("CUST-0042"));
        assert!(!mail.body.contains("お詫び"));
    }

    #[test]
    fn license_issued_en() {
        let r = Renderer::new("C-Chorus");
        let mail = r
            .render("license_issued", Locale::En, &license_context(true))
            .unwrap();
        assert_eq!(
            mail.subject,
            "[C-Chorus] Your license keys have been issued"
        );
        assert!(mail.body.starts_with("Dear 山田 太郎,\n"));
        assert!(mail.body.contains("VMs covered: 25"));
        assert_eq!(mail.body.matches("VMs covered").count(), 1);
        assert!(mail.body.contains("attached"));
        assert!(mail.body.contains("Virtual machine"));
        assert!(!mail.body.contains("apologi"));
    }

    #[test]
    fn missed_sla_apologises() {
        let r = Renderer::new("C-Chorus");
        for kind in ["license_issued", "license_added"] {
            let ja = r.render(kind, Locale::Ja, &license_context(false)).unwrap();
            assert!(ja.body.contains("お詫び"), "{kind}");
            let en = r.render(kind, Locale::En, &license_context(false)).unwrap();
            assert!(en.body.contains("apologise"), "{kind}");
        }
    }

    #[test]
    fn license_added_both_locales() {
        let r = Renderer::new("C-Chorus");
        let ja = r
            .render("license_added", Locale::Ja, &license_context(true))
            .unwrap();
        assert_eq!(ja.subject, "[C-Chorus] 追加ライセンスキー発行のお知らせ");
        assert!(ja.body.contains("追加"));
        assert!(ja.body.contains("AAAA-BBBB-CCCC-0002"));
        let en = r
            .render("license_added", Locale::En, &license_context(true))
            .unwrap();
        assert_eq!(
            en.subject,
            "[C-Chorus] Additional license keys have been issued"
        );
        assert!(en.body.contains("additional"));
    }

    #[test]
    fn vm_count_changed_both_locales() {
        let r = Renderer::new("C-Chorus");
        let ja = r
            .render("vm_count_changed", Locale::Ja, &vm_count_context())
            .unwrap();
        assert_eq!(ja.subject, "[C-Chorus] 対象VM数変更完了のお知らせ");
        assert!(ja.body.contains("25台"));
        assert!(ja.body.contains("40台"));
        assert!(ja.body.contains("添付"));
        let en = r
            .render("vm_count_changed", Locale::En, &vm_count_context())
            .unwrap();
        assert!(en.subject.starts_with("[C-Chorus] "));
        assert!(en.body.contains("from 25 to 40"));
        assert!(en.body.contains("attached"));
    }

    #[test]
    fn keys_cancelled_ja() {
        let r = Renderer::new("C-Chorus");
        let mail = r
            .render("keys_cancelled", Locale::Ja, &keys_cancelled_context(false))
            .unwrap();
        assert_eq!(mail.subject, "[C-Chorus] ライセンスキー解約完了のお知らせ");
        assert!(mail.body.starts_with("山田 太郎 様\n"));
        assert!(mail.body.contains("1. AAAA-BBBB-CCCC-0001\n"));
        assert!(!mail.body.contains("AAAA-BBBB-CCCC-0002"));
        assert!(mail.body.contains("即時"));
        assert!(mail.body.contains("解約後の有効なライセンスキー数：1件"));
        assert!(mail.body.contains("引き続きそのままご利用いただけます"));
        assert!(
            mail.body
                .contains("■メーカーサポートへのお問い合わせについて")
        );
        assert!(!mail.body.contains("失効"));
        assert!(!mail.body.contains("別途"));

        let mail = r
            .render("keys_cancelled", Locale::Ja, &keys_cancelled_context(true))
            .unwrap();
        assert!(mail.body.contains("1. AAAA-BBBB-CCCC-0001\n"));
        assert!(mail.body.contains("2. AAAA-BBBB-CCCC-0002\n"));
        assert!(mail.body.contains("解約後の有効なライセンスキー数：0件"));
        assert!(mail.body.contains("■ご注文の終了について"));
        assert!(
            mail.body
                .contains("メーカー注文番号（VO-2026-004211）は\n失効いたします")
        );
        assert!(mail.body.contains("別途"));
        assert!(!mail.body.contains("引き続きそのままご利用いただけます"));
        assert!(!mail.body.contains("\n\n\n"));
    }

    #[test]
    fn keys_cancelled_en() {
        let r = Renderer::new("C-Chorus");
        let mail = r
            .render("keys_cancelled", Locale::En, &keys_cancelled_context(false))
            .unwrap();
        assert_eq!(
            mail.subject,
            "[C-Chorus] Your license key has been cancelled"
        );
        assert!(mail.body.starts_with("Dear 山田 太郎,\n"));
        assert!(mail.body.contains("cancelled the license key listed below"));
        assert!(mail.body.contains("immediately"));
        assert!(mail.body.contains("Active keys left: 1\n"));
        assert!(mail.body.contains("  1. AAAA-BBBB-CCCC-0001\n"));
        assert!(mail.body.contains("remain valid"));
        assert!(
            mail.body
                .contains("quote the vendor order ID VO-2026-004211")
        );
        assert!(!mail.body.contains("revoked"));
        assert!(!mail.body.contains("separate notice"));

        let mail = r
            .render("keys_cancelled", Locale::En, &keys_cancelled_context(true))
            .unwrap();
        assert_eq!(
            mail.subject,
            "[C-Chorus] Your license keys have been cancelled"
        );
        assert!(
            mail.body
                .contains("cancelled the license keys listed below")
        );
        assert!(mail.body.contains("Active keys left: 0\n"));
        assert!(mail.body.contains("  2. AAAA-BBBB-CCCC-0002\n"));
        assert!(mail.body.contains("vendor order ID VO-2026-004211 revoked"));
        assert!(mail.body.contains("separate notice"));
        assert!(!mail.body.contains("remain valid"));
        assert!(!mail.body.contains("\n\n\n"));
    }

    #[test]
    fn order_revoked_for_customer_both_locales() {
        let r = Renderer::new("C-Chorus");
        let ja = r
            .render("order_revoked", Locale::Ja, &order_revoked_context(false))
            .unwrap();
        assert_eq!(ja.subject, "[C-Chorus] ご注文終了のお知らせ");
        assert!(ja.body.starts_with("山田 太郎 様\n"));
        assert!(ja.body.contains("ご利用いただき"));
        assert!(
            ja.body
                .contains("メーカー注文番号：VO-2026-004211（失効済み）")
        );
        assert!(ja.body.contains("お客様ID：CUST-0042"));
        assert!(ja.body.contains("お問い合わせいただくことはできません"));
        assert!(!ja.body.contains("貴社"));
        assert!(!ja.body.contains("別途"));
        let en = r
            .render("order_revoked", Locale::En, &order_revoked_context(false))
            .unwrap();
        assert_eq!(en.subject, "[C-Chorus] Your order has been closed");
        assert!(en.body.starts_with("Dear 山田 太郎,\n"));
        assert!(
            en.body
                .contains("on your order 0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f")
        );
        assert!(
            en.body
                .contains("Vendor order ID: VO-2026-004211 (revoked)")
        );
        assert!(en.body.contains("can no longer be contacted"));
        assert!(!en.body.contains("your customer"));
        assert!(!en.body.contains("separate notice"));
    }

    #[test]
    fn order_revoked_for_partner_both_locales() {
        let r = Renderer::new("C-Chorus");
        let ja = r
            .render("order_revoked", Locale::Ja, &order_revoked_context(true))
            .unwrap();
        assert_eq!(
            ja.subject,
            "[C-Chorus] ご注文終了のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.starts_with("佐藤 花子 様\n"));
        assert!(ja.body.contains("お取り扱いいただき"));
        assert!(ja.body.contains("貴社のお客様（お客様ID：CUST-0042）"));
        assert!(
            ja.body
                .contains("メーカー注文番号：VO-2026-004211（失効済み）")
        );
        assert!(ja.body.contains("お問い合わせいただくことはできません"));
        assert!(ja.body.contains("別途"));
        assert!(!ja.body.contains("\n\n\n"));
        let en = r
            .render("order_revoked", Locale::En, &order_revoked_context(true))
            .unwrap();
        assert_eq!(
            en.subject,
            "[C-Chorus] Your customer's order has been closed (customer ID CUST-0042)"
        );
        assert!(en.body.starts_with("Dear 佐藤 花子,\n"));
        assert!(en.body.contains("your customer's order"));
        assert!(en.body.contains("(customer ID CUST-0042)"));
        assert!(
            en.body
                .contains("Vendor order ID: VO-2026-004211 (revoked)")
        );
        assert!(en.body.contains("can no longer be contacted"));
        assert!(en.body.contains("no longer valid"));
        assert!(en.body.contains("separate notice"));
        assert!(!en.body.contains("\n\n\n"));
    }

    #[test]
    fn transfer_kinds_render_for_every_role() {
        for kind in TRANSFER_KINDS {
            for locale in Locale::ALL {
                for role in TRANSFER_ROLES {
                    let ctx = transfer_context(kind, role);
                    let name = ctx["recipient_name"].as_str().unwrap();
                    let mail = render_transfer(kind, locale, role);
                    let at = format!("{kind}.{locale} for {role}");
                    assert!(mail.subject.starts_with("[C-Chorus] "), "{at}");
                    // Partners handle many customers: their subject says which.
                    assert_eq!(
                        mail.subject.contains("CUST-0042"),
                        role != "customer",
                        "{at}: {}",
                        mail.subject
                    );
                    let b = &mail.body;
                    let greeting = match locale {
                        Locale::Ja => format!("{name} 様\n\n"),
                        Locale::En => format!("Dear {name},\n\n"),
                    };
                    assert!(b.starts_with(&greeting), "{at}");
                    for id in [TRANSFER_ID, "CUST-0042", "PARTNER-0007", "PARTNER-0019"] {
                        assert!(b.contains(id), "{at}: {id}");
                    }
                    assert!(b.contains("1. SUB-0001\n"), "{at}");
                    assert!(b.contains("2. SUB-0002\n"), "{at}");
                    let reason = ctx["reason"].as_str().unwrap();
                    if !reason.is_empty() {
                        assert!(b.contains(&format!("\n{reason}\n")), "{at}");
                    }
                    // "Your company" marks the recipient's own partner ID.
                    let (src, dst, ours) = match locale {
                        Locale::Ja => (
                            "移管元パートナーID：PARTNER-0007",
                            "移管先パートナーID：PARTNER-0019",
                            "（貴社）",
                        ),
                        Locale::En => (
                            "  Source partner ID:      PARTNER-0007",
                            "  Destination partner ID: PARTNER-0019",
                            " (your company)",
                        ),
                    };
                    let own = match role {
                        "source" => format!("{src}{ours}\n{dst}\n"),
                        "destination" => format!("{src}\n{dst}{ours}\n"),
                        _ => format!("{src}\n{dst}\n"),
                    };
                    assert!(b.contains(&own), "{at}");
                    assert_eq!(
                        b.matches(ours).count(),
                        usize::from(role != "customer"),
                        "{at}"
                    );
                    assert!(!b.contains("{{"), "{at}");
                    assert!(!b.contains("\n\n\n"), "{at}: triple newline");
                    assert!(b.ends_with('\n'), "{at}");
                }
            }
        }
    }

    #[test]
    fn transfer_submitted_both_locales() {
        let kind = "transfer_submitted";
        let ja = render_transfer(kind, Locale::Ja, "customer");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管受付のお知らせ"
        );
        assert!(ja.body.contains("ご利用いただき"));
        assert!(ja.body.contains("移管するご依頼を\n受け付けましたので"));
        assert!(
            ja.body
                .contains("移管先パートナーが\nお取り扱いいたします。")
        );
        assert!(ja.body.contains("■対象サブスクリプション\n1. SUB-0001\n"));
        assert!(ja.body.contains("あらためてメールにてご案内いたします"));
        assert!(!ja.body.contains("貴社"));
        assert!(!ja.body.contains("管理者権限"));
        let ja = render_transfer(kind, Locale::Ja, "source");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管受付のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.contains("お取り扱いいただき"));
        assert!(ja.body.contains("貴社のお客様（お客様ID：CUST-0042）"));
        assert!(ja.body.contains("貴社の管理対象から外れ"));
        assert!(
            ja.body
                .contains("貴社に付与されている管理者権限は削除されます")
        );
        let ja = render_transfer(kind, Locale::Ja, "destination");
        assert!(
            ja.body
                .contains("（パートナーID：PARTNER-0007）から貴社へ移管する")
        );
        assert!(ja.body.contains("貴社にて管理していただくことになります"));
        assert!(!ja.body.contains("管理者権限"));

        let en = render_transfer(kind, Locale::En, "customer");
        assert_eq!(
            en.subject,
            "[C-Chorus] Your subscription transfer request has been received"
        );
        assert!(en.body.contains("Thank you for choosing C-Chorus."));
        assert!(en.body.contains("transfer your subscriptions listed below"));
        assert!(
            en.body
                .contains("your subscriptions will be served by\npartner PARTNER-0019.")
        );
        assert!(
            en.body
                .contains("Subscriptions to be transferred\n  1. SUB-0001\n")
        );
        assert!(en.body.contains("let you know the outcome by email"));
        assert!(!en.body.contains("your company"));
        let en = render_transfer(kind, Locale::En, "source");
        assert_eq!(
            en.subject,
            "[C-Chorus] A C-Chorus subscription transfer request has been received (customer ID CUST-0042)"
        );
        assert!(en.body.contains("your customer CUST-0042's"));
        assert!(en.body.contains(
            "your company will no longer manage the\n\
             subscriptions, and your admin roles on them will be removed.\n"
        ));
        let en = render_transfer(kind, Locale::En, "destination");
        assert!(
            en.body
                .contains("from partner PARTNER-0007 to your company.\n")
        );
        assert!(
            en.body
                .contains("your company will manage the subscriptions")
        );
        assert!(!en.body.contains("admin roles"));
    }

    #[test]
    fn transfer_completed_both_locales() {
        let kind = "transfer_completed";
        let ja = render_transfer(kind, Locale::Ja, "customer");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管完了のお知らせ"
        );
        assert!(ja.body.contains("移管が完了いたしました"));
        assert!(
            ja.body
                .contains("今後は移管先パートナーがお取り扱いいたします")
        );
        assert!(
            ja.body
                .contains("移管元パートナーに付与されていた管理者権限は削除済みです")
        );
        assert!(
            ja.body
                .contains("■移管したサブスクリプション\n1. SUB-0001\n")
        );
        assert!(!ja.body.contains("貴社"));
        let ja = render_transfer(kind, Locale::Ja, "source");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管完了のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(
            ja.body
                .contains("貴社に付与されていた管理者権限は削除されており")
        );
        assert!(ja.body.contains("管理していただくことはできません"));
        let ja = render_transfer(kind, Locale::Ja, "destination");
        assert!(ja.body.contains("今後は貴社にて管理していただけます"));
        assert!(
            ja.body
                .contains("移管元パートナーに付与されていた管理者権限は削除済みです")
        );

        let en = render_transfer(kind, Locale::En, "customer");
        assert_eq!(
            en.subject,
            "[C-Chorus] Your subscription transfer is complete"
        );
        assert!(en.body.contains(
            "will be served by partner PARTNER-0019\n\
             instead of partner PARTNER-0007, whose admin roles on them have been removed.\n"
        ));
        assert!(
            en.body
                .contains("Transferred subscriptions\n  1. SUB-0001\n")
        );
        let en = render_transfer(kind, Locale::En, "source");
        assert_eq!(
            en.subject,
            "[C-Chorus] A C-Chorus subscription transfer is complete (customer ID CUST-0042)"
        );
        assert!(en.body.contains(
            "Your company's admin roles on them have been removed, and your company\n\
             no longer manages them.\n"
        ));
        let en = render_transfer(kind, Locale::En, "destination");
        assert!(en.body.contains("from now on your company manages them"));
        assert!(
            en.body
                .contains("The admin roles of partner PARTNER-0007 on them have been removed.")
        );
    }

    #[test]
    fn transfer_rejected_both_locales() {
        let kind = "transfer_rejected";
        for role in TRANSFER_ROLES {
            let ja = render_transfer(kind, Locale::Ja, role);
            assert!(
                ja.subject
                    .starts_with("[C-Chorus] サブスクリプション移管不成立のお知らせ"),
                "{role}"
            );
            assert!(
                ja.body
                    .contains(&format!("■移管を実施できなかった理由\n{REJECTED_REASON}\n")),
                "{role}"
            );
            assert!(
                ja.body.contains("移管を実施することが\nできませんでした"),
                "{role}"
            );
            assert!(ja.body.contains("一切行っておらず"), "{role}");
            assert!(ja.body.contains("■今後のお手続きについて"), "{role}");
            assert!(
                ja.body.contains("新しい移管のご依頼をお送りください"),
                "{role}"
            );
            assert!(!ja.body.contains("再度実行"), "{role}");

            let en = render_transfer(kind, Locale::En, role);
            assert!(en.subject.contains("could not be carried out"), "{role}");
            assert!(
                en.body.contains(&format!("\nReason\n{REJECTED_REASON}\n")),
                "{role}"
            );
            assert!(
                en.body.contains("Nothing has been changed by this request"),
                "{role}"
            );
            assert!(en.body.contains("submit a new transfer request"), "{role}");
            assert!(!en.body.contains("retry"), "{role}");
        }
        let ja = render_transfer(kind, Locale::Ja, "customer");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管不成立のお知らせ"
        );
        assert!(!ja.body.contains("貴社"));
        let ja = render_transfer(kind, Locale::Ja, "destination");
        assert!(
            ja.body
                .contains("から貴社へ移管するご依頼につきまして、\n移管の条件")
        );
        let en = render_transfer(kind, Locale::En, "source");
        assert_eq!(
            en.subject,
            "[C-Chorus] A C-Chorus subscription transfer could not be carried out (customer ID CUST-0042)"
        );
        assert!(
            en.body
                .contains("from your company to\npartner PARTNER-0019 could not be carried out")
        );
    }

    #[test]
    fn transfer_failed_both_locales() {
        let kind = "transfer_failed";
        for role in TRANSFER_ROLES {
            let ja = render_transfer(kind, Locale::Ja, role);
            assert!(
                ja.subject
                    .starts_with("[C-Chorus] サブスクリプション移管処理エラーのお知らせ"),
                "{role}"
            );
            assert!(
                ja.body.contains(&format!("■エラー内容\n{FAILED_REASON}\n")),
                "{role}"
            );
            assert!(
                ja.body.contains("移管の手続きが完了しておりません"),
                "{role}"
            );
            assert!(ja.body.contains("申し訳ございません"), "{role}");
            assert!(ja.body.contains("運用担当者へ通知されており"), "{role}");
            assert!(ja.body.contains("処理を再度実行いたします"), "{role}");
            assert!(!ja.body.contains("新しい移管のご依頼"), "{role}");

            let en = render_transfer(kind, Locale::En, role);
            assert!(
                en.subject.contains("An error occurred while processing"),
                "{role}"
            );
            assert!(
                en.body.contains(&format!("\nError\n{FAILED_REASON}\n")),
                "{role}"
            );
            assert!(en.body.contains("has not been completed"), "{role}");
            assert!(en.body.contains("apologise"), "{role}");
            assert!(en.body.contains("will retry the transfer"), "{role}");
            assert!(en.body.contains("No action is needed from you"), "{role}");
            assert!(!en.body.contains("submit a new"), "{role}");
        }
        let ja = render_transfer(kind, Locale::Ja, "customer");
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管処理エラーのお知らせ"
        );
        assert!(
            ja.body
                .contains("現時点でお客様にてご対応いただく必要はございません")
        );
        assert!(!ja.body.contains("貴社"));
        let ja = render_transfer(kind, Locale::Ja, "source");
        assert!(
            ja.body
                .contains("現時点で貴社にてご対応いただく必要はございません")
        );
        let en = render_transfer(kind, Locale::En, "destination");
        assert_eq!(
            en.subject,
            "[C-Chorus] An error occurred while processing a C-Chorus subscription transfer (customer ID CUST-0042)"
        );
    }

    #[test]
    fn transfer_with_one_subscription_is_singular_in_english() {
        for kind in TRANSFER_KINDS {
            for role in TRANSFER_ROLES {
                let mut ctx = transfer_context(kind, role);
                ctx["subscription_ids"] = json!(["SUB-0001"]);
                let en = Renderer::new("C-Chorus")
                    .render(kind, Locale::En, &ctx)
                    .unwrap();
                assert!(en.body.contains("  1. SUB-0001\n"), "{kind} {role}");
                assert!(!en.body.contains("2. "), "{kind} {role}");
                assert!(!en.body.contains("subscriptions"), "{kind} {role}");
                assert!(!en.body.contains("them"), "{kind} {role}");
            }
        }
    }

    #[test]
    fn transfer_with_unknown_recipient_role_is_an_error() {
        let r = Renderer::new("C-Chorus");
        for kind in TRANSFER_KINDS {
            for locale in Locale::ALL {
                for role in ["reseller", "Customer", ""] {
                    let ctx = transfer_context(kind, role);
                    let err = r.render(kind, locale, &ctx).unwrap_err();
                    assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
                    assert!(
                        err.to_string().contains("recipient_role must be"),
                        "{kind}.{locale} {role:?}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn trial_kinds_render_for_every_role() {
        for kind in TRIAL_KINDS {
            for locale in Locale::ALL {
                for role in TRIAL_ROLES {
                    for customer_name in ["株式会社サンプル", ""] {
                        let mut ctx = trial_context(kind, role);
                        ctx["customer_name"] = json!(customer_name);
                        let mail = render_with(kind, locale, &ctx);
                        let at = format!("{kind}.{locale} for {role} ({customer_name:?})");
                        assert_well_formed(&mail, &at);
                        // Partners handle many customers: their subject says which.
                        assert_eq!(
                            mail.subject.contains("CUST-0042"),
                            role == "partner_admin",
                            "{at}: {}",
                            mail.subject
                        );
                        let b = &mail.body;
                        let greeting = match (locale, role, customer_name) {
                            (Locale::Ja, "customer_admin", "") => "ご担当者様\n\n".to_owned(),
                            (Locale::Ja, "customer_admin", name) => {
                                format!("{name} ご担当者様\n\n")
                            }
                            (Locale::Ja, _, _) => "ご担当者様\n\n".to_owned(),
                            (Locale::En, "customer_admin", "") => {
                                "Dear administrator,\n\n".to_owned()
                            }
                            (Locale::En, "customer_admin", name) => {
                                format!("Dear administrator of {name},\n\n")
                            }
                            (Locale::En, _, _) => "Dear partner administrator,\n\n".to_owned(),
                        };
                        assert!(b.starts_with(&greeting), "{at}");
                        for value in [TRIAL_ID, "CUST-0042", ENDS_AT] {
                            assert!(b.contains(value), "{at}: {value}");
                        }
                        assert!(b.contains("1. C-Chorus Chat\n"), "{at}");
                        assert!(b.contains("2. C-Chorus Phone\n"), "{at}");
                        let name_line = match locale {
                            Locale::Ja => "お客様名：",
                            Locale::En => "Customer name:",
                        };
                        assert_eq!(b.contains(name_line), !customer_name.is_empty(), "{at}");
                        // The partner wording ("your company", "your customer")
                        // never reaches the customer and vice versa.
                        let partner_words = match locale {
                            Locale::Ja => "貴社",
                            Locale::En => "your customer",
                        };
                        assert_eq!(b.contains(partner_words), role == "partner_admin", "{at}");
                        let contact = match locale {
                            Locale::Ja => "パートナー（販売店）",
                            Locale::En => "partner (reseller)",
                        };
                        assert_eq!(b.contains(contact), role == "customer_admin", "{at}");
                        assert!(b.contains("C-Chorus\n"), "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn trial_expiring_ja() {
        let kind = "trial_expiring";
        let ja = render_with(kind, Locale::Ja, &trial_context(kind, "customer_admin"));
        assert_eq!(ja.subject, "[C-Chorus] トライアル期間終了予定のお知らせ");
        assert!(
            ja.body
                .starts_with("株式会社サンプル ご担当者様\n\n平素より")
        );
        assert!(ja.body.contains("ご利用いただき"));
        assert!(
            ja.body
                .contains("トライアル期間があと7日（2026-12-24 00:00 UTC）で終了いたします")
        );
        assert!(
            ja.body
                .contains("トライアル終了日時：2026-12-24 00:00 UTC\n")
        );
        assert!(
            ja.body
                .contains("■対象サービス\n1. C-Chorus Chat\n2. C-Chorus Phone\n")
        );
        assert!(ja.body.contains("30日間の猶予期間となります"));
        assert!(
            ja.body
                .contains("本契約への切り替え、またはトライアル期間の延長が可能です")
        );
        assert!(ja.body.contains(
            "トライアル組織およびそのデータはすべて削除され、\n復元することはできません"
        ));
        assert!(ja.body.contains("あと2回延長することができます"));
        assert!(ja.body.contains("本契約への切り替えや延長をご希望の場合は"));
        assert!(
            ja.body
                .ends_with("――――――――――――――――――――\nC-Chorus\n――――――――――――――――――――\n")
        );

        let ja = render_with(kind, Locale::Ja, &trial_context(kind, "partner_admin"));
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアル期間終了予定のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.starts_with("ご担当者様\n\n"));
        assert!(ja.body.contains("お取り扱いいただき"));
        assert!(ja.body.contains("貴社のお客様（お客様ID：CUST-0042）"));
        assert!(
            ja.body
                .contains("本契約への切り替えまたは延長のお手続きをお願いいたします")
        );
        assert!(
            ja.body
                .contains("お客様のご担当者様にも、同じご案内を別途お送りしております")
        );

        // The last day, and no extension left.
        let mut ctx = trial_context(kind, "customer_admin");
        ctx["days_left"] = json!(0);
        ctx["extensions_left"] = json!(0);
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert_well_formed(&ja, "ja, last day");
        assert!(
            ja.body
                .contains("トライアル期間が本日（2026-12-24 00:00 UTC）終了いたします")
        );
        assert!(
            ja.body
                .contains("猶予期間中は、本契約への切り替えが可能です。")
        );
        assert!(ja.body.contains("これ以上延長することはできません"));
        assert!(ja.body.contains("本契約への切り替えをご希望の場合は"));
        assert!(!ja.body.contains("延長が可能"));
        assert!(!ja.body.contains("あと0"));
        assert!(!ja.body.contains("や延長"));
        let mut ctx = trial_context(kind, "partner_admin");
        ctx["extensions_left"] = json!(0);
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert!(
            ja.body
                .contains("本契約への切り替えのお手続きをお願いいたします")
        );
    }

    #[test]
    fn trial_expiring_en() {
        let kind = "trial_expiring";
        let en = render_with(kind, Locale::En, &trial_context(kind, "customer_admin"));
        assert_eq!(en.subject, "[C-Chorus] Your trial ends soon");
        assert!(
            en.body
                .starts_with("Dear administrator of 株式会社サンプル,\n\n")
        );
        assert!(en.body.contains("Thank you for choosing C-Chorus."));
        assert!(en.body.contains(
            "Your C-Chorus trial of the services listed below ends in 7 days,\n\
             at 2026-12-24 00:00 UTC.\n"
        ));
        assert!(en.body.contains("  Trial ends:    2026-12-24 00:00 UTC\n"));
        assert!(
            en.body
                .contains("Services in the trial\n  1. C-Chorus Chat\n  2. C-Chorus Phone\n")
        );
        assert!(en.body.contains("grace period of\n30 days begins"));
        assert!(en.body.contains("to a paid contract or extended."));
        assert!(
            en.body
                .contains("organisation and all its data will be deleted and cannot be restored.")
        );
        assert!(
            en.body
                .contains("The trial can be extended 2 more times.\n")
        );
        assert!(en.body.contains("please contact your partner (reseller)"));
        assert!(en.body.ends_with("Kind regards,\nC-Chorus\n"));

        let en = render_with(kind, Locale::En, &trial_context(kind, "partner_admin"));
        assert_eq!(
            en.subject,
            "[C-Chorus] Your customer's trial ends soon (customer ID CUST-0042)"
        );
        assert!(en.body.starts_with("Dear partner administrator,\n\n"));
        assert!(
            en.body
                .contains("Thank you for your continued partnership with C-Chorus.")
        );
        assert!(
            en.body
                .contains("The C-Chorus trial of your customer CUST-0042")
        );
        assert!(en.body.contains("ends in 7 days, at 2026-12-24 00:00 UTC."));
        assert!(en.body.contains("contract or extend it."));
        assert!(en.body.contains("sent the\nsame notice separately"));

        let mut ctx = trial_context(kind, "customer_admin");
        ctx["days_left"] = json!(0);
        ctx["extensions_left"] = json!(0);
        ctx["grace_days"] = json!(1);
        let en = render_with(kind, Locale::En, &ctx);
        assert_well_formed(&en, "en, last day");
        assert!(en.body.contains("ends today,\nat 2026-12-24 00:00 UTC."));
        assert!(en.body.contains("grace period of\n1 day begins"));
        assert!(
            en.body
                .contains("to a paid contract. When the grace period is over")
        );
        assert!(en.body.contains("no further extension is possible"));
        assert!(!en.body.contains("extended."));
        assert!(!en.body.contains("or extend it"));

        let mut ctx = trial_context(kind, "partner_admin");
        ctx["days_left"] = json!(1);
        ctx["extensions_left"] = json!(1);
        let en = render_with(kind, Locale::En, &ctx);
        assert!(en.body.contains("ends in 1 day, at"));
        assert!(en.body.contains("The trial can be extended 1 more time.\n"));
    }

    #[test]
    fn trial_expired_both_locales() {
        let kind = "trial_expired";
        let ja = render_with(kind, Locale::Ja, &trial_context(kind, "customer_admin"));
        assert_eq!(ja.subject, "[C-Chorus] トライアル期間終了のお知らせ");
        assert!(
            ja.body
                .contains("2026-12-24 00:00 UTCをもってトライアル期間が終了いたしました")
        );
        assert!(
            ja.body
                .contains("下記のサービスはご利用いただけなくなりました")
        );
        assert!(ja.body.contains("猶予期間終了日時：2027-01-23 00:00 UTC\n"));
        assert!(
            ja.body
                .contains("30日間（2027-01-23 00:00 UTCまで）は猶予期間となります")
        );
        assert!(
            ja.body
                .contains("本契約への切り替え、またはトライアル期間の延長")
        );
        assert!(ja.body.contains(
            "・ライセンスの削除\n・管理者権限の削除\n・各種設定の削除\n・ユーザーの無料組織への移動\n"
        ));
        assert!(ja.body.contains("復元することができず"));
        assert!(ja.body.contains("取り消すことができません"));
        let ja = render_with(kind, Locale::Ja, &trial_context(kind, "partner_admin"));
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアル期間終了のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.contains("貴社のお客様（お客様ID：CUST-0042）"));
        assert!(ja.body.contains("別途お送りしております"));

        let en = render_with(kind, Locale::En, &trial_context(kind, "customer_admin"));
        assert_eq!(en.subject, "[C-Chorus] Your trial has ended");
        assert!(en.body.contains(
            "Your C-Chorus trial ended at 2026-12-24 00:00 UTC, and the services listed\n\
             below have been suspended.\n"
        ));
        assert!(
            en.body
                .contains("  Grace period ends: 2027-01-23 00:00 UTC\n")
        );
        assert!(en.body.contains(
            "A grace period of 30 days has started and lasts until 2027-01-23 00:00 UTC."
        ));
        assert!(en.body.contains("converted to a paid contract or"));
        assert!(en.body.contains("extended"));
        for line in [
            "its licenses will be deleted",
            "its admin roles will be deleted",
            "its settings will be deleted",
            "its users will be moved to the free organisation",
        ] {
            assert!(en.body.contains(line), "{line}");
        }
        assert!(
            en.body
                .contains("This cannot be undone, and deleted data cannot be restored.")
        );
        let en = render_with(kind, Locale::En, &trial_context(kind, "partner_admin"));
        assert_eq!(
            en.subject,
            "[C-Chorus] Your customer's trial has ended (customer ID CUST-0042)"
        );
        assert!(en.body.contains(
            "The C-Chorus trial of your customer CUST-0042 ended at\n2026-12-24 00:00 UTC"
        ));
        assert!(en.body.contains("sent the same\nnotice separately"));
    }

    #[test]
    fn trial_with_unknown_recipient_role_is_an_error() {
        let r = Renderer::new("C-Chorus");
        for kind in TRIAL_KINDS {
            for locale in Locale::ALL {
                for role in ["customer", "Partner_admin", "source", ""] {
                    let ctx = trial_context(kind, role);
                    let err = r.render(kind, locale, &ctx).unwrap_err();
                    assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
                    assert!(
                        err.to_string().contains("recipient_role must be"),
                        "{kind}.{locale} {role:?}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn trial_purged_both_locales() {
        let kind = "trial_purged";
        let ja = render_with(kind, Locale::Ja, &trial_purged_context());
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアルサービス提供終了のお知らせ"
        );
        assert!(ja.body.starts_with("山田 太郎 様\n\n平素より"));
        assert!(
            ja.body
                .contains("トライアル組織「株式会社サンプル」\n（お客様ID：CUST-0042）")
        );
        assert!(ja.body.contains(
            "2027-01-23 00:05 UTCをもって下記のトライアルサービスの提供を終了いたしました"
        ));
        assert!(ja.body.contains("今後ご利用いただくことはできません"));
        assert!(
            ja.body
                .contains("■提供を終了したサービス\n1. C-Chorus Chat\n2. C-Chorus Phone\n")
        );
        assert!(ja.body.contains(
            "トライアル組織のデータ（ライセンス、管理者権限、各種設定）は削除いたしました"
        ));
        assert!(ja.body.contains("無料組織へ移動いたしました"));
        assert!(ja.body.contains("引き続きサインインしていただけます"));
        assert!(ja.body.contains(TRIAL_ID));

        let en = render_with(kind, Locale::En, &trial_purged_context());
        assert_eq!(
            en.subject,
            "[C-Chorus] Your trial services are no longer available"
        );
        assert!(en.body.starts_with("Dear 山田 太郎,\n\n"));
        assert!(en.body.contains(
            "The C-Chorus trial of your trial organisation 株式会社サンプル\n\
             (customer ID CUST-0042) has ended, and so has its grace period.\n"
        ));
        assert!(
            en.body
                .contains("As of 2027-01-23 00:05 UTC, the trial services")
        );
        assert!(
            en.body.contains(
                "Services no longer available\n  1. C-Chorus Chat\n  2. C-Chorus Phone\n"
            )
        );
        assert!(en.body.contains("has been deleted and cannot be restored"));
        assert!(en.body.contains("moved to the free organisation"));
        assert!(en.body.contains("keep signing in"));

        // No name: addressed to the customer; no organisation name either.
        let mut ctx = trial_purged_context();
        ctx["user_name"] = json!("");
        ctx["customer_name"] = json!("");
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert_well_formed(&ja, "ja without names");
        assert!(ja.body.starts_with("お客様\n\n"));
        assert!(ja.body.contains("トライアル組織\n（お客様ID：CUST-0042）"));
        assert!(!ja.body.contains("「"));
        assert!(!ja.body.contains("お客様名"));
        let en = render_with(kind, Locale::En, &ctx);
        assert_well_formed(&en, "en without names");
        assert!(en.body.starts_with("Dear customer,\n\n"));
        assert!(
            en.body
                .contains("your trial organisation\n(customer ID CUST-0042)")
        );
        assert!(!en.body.contains("Customer name"));
    }

    #[test]
    fn registration_both_locales() {
        let kind = "registration";
        let ja = render_with(kind, Locale::Ja, &registration_context());
        assert_eq!(ja.subject, "[C-Chorus] C-Chorus申し込み手続きのご案内");
        assert!(ja.body.starts_with(&format!("{EMAIL} 様\n\n")));
        assert!(
            ja.body
                .contains("お申し込みいただき、誠にありがとうございます")
        );
        assert!(ja.body.contains("まだ完了しておりません"));
        assert!(
            ja.body
                .contains("3時間以内（2026-06-01 03:00 UTCまで）に開き")
        );
        assert!(
            ja.body
                .contains(&format!("■お申し込み手続き用リンク\n{LINK}\n"))
        );
        assert!(ja.body.contains("一度のみご利用いただけます"));
        assert!(ja.body.contains("お心当たりのない場合は"));
        assert!(ja.body.contains("破棄してください"));

        let en = render_with(kind, Locale::En, &registration_context());
        assert_eq!(en.subject, "[C-Chorus] Complete your C-Chorus registration");
        assert!(en.body.starts_with("Dear customer,\n\n"));
        assert!(
            en.body
                .contains("Thank you for your request to register for C-Chorus.")
        );
        assert!(en.body.contains("within 3 hours, by 2026-06-01 03:00 UTC."));
        assert!(en.body.contains(&format!("Registration link\n{LINK}\n")));
        assert!(en.body.contains(&format!("  Email address: {EMAIL}\n")));
        assert!(en.body.contains("can be used only once"));
        assert!(
            en.body
                .contains("If you did not request this registration, please ignore this email.")
        );

        let mut ctx = registration_context();
        ctx["valid_hours"] = json!(1);
        let en = render_with(kind, Locale::En, &ctx);
        assert!(en.body.contains("within 1 hour, by"));

        for mail in [&ja, &en] {
            // The link carries a one-time token: body only, exactly once.
            assert!(!mail.subject.contains(TOKEN));
            assert!(!mail.subject.contains("http"));
            assert_eq!(mail.body.matches(TOKEN).count(), 1);
            assert!(!format!("{mail:?}").contains(TOKEN));
        }
    }

    #[test]
    fn registration_completed_both_locales() {
        let kind = "registration_completed";
        let ctx = registration_completed_context();
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert_eq!(ja.subject, "[C-Chorus] C-Chorus申し込み完了のお知らせ");
        assert!(ja.body.starts_with(&format!("{EMAIL} 様\n\n")));
        assert!(ja.body.contains("お申し込み手続きが完了いたしました"));
        assert!(
            ja.body
                .contains(&format!("ご登録メールアドレス：{EMAIL}\n"))
        );
        assert!(
            ja.body
                .contains("サービス提供開始のご案内をあらためてメールにてお送りいたします")
        );
        assert!(
            ja.body
                .contains("お申し込みサービス：AWS、Google Cloud\n\n■今後の流れ")
        );
        assert!(ja.body.contains("お申し込み団体名：Cust KK\n"));
        let en = render_with(kind, Locale::En, &ctx);
        assert_eq!(
            en.subject,
            "[C-Chorus] Your C-Chorus registration is complete"
        );
        assert!(en.body.starts_with("Dear customer,\n\n"));
        assert!(en.body.contains("Your registration is complete."));
        assert!(en.body.contains(&format!("  Email address: {EMAIL}\n")));
        assert!(en.body.contains("we will send you a further email"));
        assert!(
            en.body
                .contains("  Services:      AWS, Google Cloud\n\nWhat happens next")
        );
    }

    fn registration_completed_context() -> serde_json::Value {
        json!({ "email": EMAIL, "organisation": "Cust KK", "services": ["AWS", "Google Cloud"] })
    }

    #[test]
    fn registration_refused_says_why_in_both_locales() {
        let kind = "registration_refused";
        let ctx = |reason: &str| json!({ "email": EMAIL, "reason": reason });
        let ja = render_with(kind, Locale::Ja, &ctx("in_progress"));
        assert_eq!(
            ja.subject,
            "[C-Chorus] リセールサービス申し込み手続き未完了のご案内"
        );
        assert!(ja.body.contains("手続き中のお申し込みがすでにございます"));
        let ja = render_with(kind, Locale::Ja, &ctx("domain_refused"));
        assert!(
            ja.body
                .contains("ドメインでは、お申し込みをお受けできません")
        );
        let en = render_with(kind, Locale::En, &ctx("in_progress"));
        assert_eq!(
            en.subject,
            "[C-Chorus] Your resale service application could not be completed"
        );
        assert!(en.body.contains("already has an application in progress"));
        let en = render_with(kind, Locale::En, &ctx("domain_refused"));
        assert!(en.body.contains("from this email address's domain"));
        for locale in Locale::ALL {
            let unknown = Renderer::new("C-Chorus").render(kind, locale, &ctx("other"));
            assert!(unknown.is_err(), "{locale}: an unknown reason fails");
        }
    }

    #[test]
    fn registration_rejected_carries_the_reason_in_both_locales() {
        let kind = "registration_rejected";
        let ctx = json!({ "email": EMAIL, "reason": "The credit check failed." });
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert_eq!(ja.subject, "[C-Chorus] お申し込み審査結果のお知らせ");
        assert!(ja.body.contains("■理由\nThe credit check failed.\n"));
        let en = render_with(kind, Locale::En, &ctx);
        assert_eq!(
            en.subject,
            "[C-Chorus] The result of the review of your application"
        );
        assert!(en.body.contains("Reason\n  The credit check failed.\n"));
    }

    #[test]
    fn service_started_both_locales() {
        let kind = "service_started";
        let ja = render_with(kind, Locale::Ja, &service_started_context());
        assert_eq!(ja.subject, "[C-Chorus] サービス提供開始のお知らせ");
        assert!(ja.body.starts_with(&format!("{EMAIL} 様\n\n")));
        assert!(ja.body.contains("C-Chorusのサービス提供を開始いたしました"));
        assert!(
            ja.body
                .contains("下記のサービスをご利用いただけるようになりました")
        );
        assert!(
            ja.body
                .contains("■ご利用いただけるサービス\n1. C-Chorus Chat\n2. C-Chorus Phone\n")
        );
        let en = render_with(kind, Locale::En, &service_started_context());
        assert_eq!(en.subject, "[C-Chorus] Your service is now available");
        assert!(en.body.starts_with("Dear customer,\n\n"));
        assert!(en.body.contains("has started and is now available to you"));
        assert!(
            en.body
                .contains("You can now use the services listed below.")
        );
        assert!(
            en.body
                .contains("Available services\n  1. C-Chorus Chat\n  2. C-Chorus Phone\n")
        );

        let ctx = json!({ "email": EMAIL, "services": ["C-Chorus Chat"] });
        let en = render_with(kind, Locale::En, &ctx);
        assert!(en.body.contains("Available service\n  1. C-Chorus Chat\n"));
        assert!(!en.body.contains("2. "));

        // No list: the mail still says the service started, without a
        // heading over nothing.
        let ctx = json!({ "email": EMAIL, "services": [] });
        let ja = render_with(kind, Locale::Ja, &ctx);
        assert_well_formed(&ja, "ja without services");
        assert!(
            ja.body
                .contains("C-Chorusをご利用いただけるようになりました")
        );
        assert!(!ja.body.contains("■ご利用いただけるサービス"));
        assert!(!ja.body.contains("1. "));
        let en = render_with(kind, Locale::En, &ctx);
        assert_well_formed(&en, "en without services");
        assert!(en.body.contains("is now available to you."));
        assert!(!en.body.contains("Available service"));
        assert!(!en.body.contains("listed below"));
    }

    #[test]
    fn trial_and_registration_kinds_require_every_field() {
        let r = Renderer::new("C-Chorus");
        let mut cases: Vec<(&str, serde_json::Value)> = Vec::new();
        for kind in TRIAL_KINDS {
            for role in TRIAL_ROLES {
                cases.push((kind, trial_context(kind, role)));
                // An empty name selects other branches; the keys stay required.
                let mut ctx = trial_context(kind, role);
                ctx["customer_name"] = json!("");
                cases.push((kind, ctx));
            }
        }
        cases.push(("trial_purged", trial_purged_context()));
        cases.push(("trial_purchase_request", trial_purchase_request_context()));
        let mut ctx = trial_purged_context();
        ctx["user_name"] = json!("");
        ctx["customer_name"] = json!("");
        cases.push(("trial_purged", ctx));
        cases.push(("registration", registration_context()));
        cases.push(("registration_completed", registration_completed_context()));
        for reason in ["in_progress", "domain_refused"] {
            cases.push((
                "registration_refused",
                json!({ "email": EMAIL, "reason": reason }),
            ));
        }
        cases.push((
            "registration_rejected",
            json!({ "email": EMAIL, "reason": "credit check" }),
        ));
        cases.push(("service_started", service_started_context()));
        cases.push(("service_started", json!({ "email": EMAIL, "services": [] })));
        for (kind, ctx) in cases {
            for locale in Locale::ALL {
                assert!(r.render(kind, locale, &ctx).is_ok(), "{kind}.{locale}");
                for field in ctx.as_object().unwrap().keys() {
                    let mut without = ctx.clone();
                    without.as_object_mut().unwrap().remove(field);
                    let err = r.render(kind, locale, &without).unwrap_err();
                    assert!(
                        matches!(err, RenderError::Template { .. }),
                        "{kind}.{locale} without {field}: {err:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn service_name_is_configurable_and_wins_over_context() {
        let r = Renderer::new("Backup Store");
        let mut ctx = vm_count_context();
        ctx["service_name"] = json!("Spoofed");
        let mail = r.render("vm_count_changed", Locale::En, &ctx).unwrap();
        assert!(mail.subject.starts_with("[Backup Store] "));
        assert!(mail.body.contains("Backup Store"));
        assert!(!mail.body.contains("Spoofed"));
        assert!(!mail.subject.contains("Spoofed"));
    }

    #[test]
    fn missing_variable_is_an_error() {
        let r = Renderer::new("C-Chorus");
        for locale in Locale::ALL {
            let mut ctx = license_context(true);
            ctx.as_object_mut().unwrap().remove("vendor_order_id");
            let err = r.render("license_issued", locale, &ctx).unwrap_err();
            assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
            assert!(err.to_string().contains("undefined"), "{err}");

            // A missing field inside a list item fails as well.
            let mut ctx = license_context(true);
            ctx["licenses"][1]
                .as_object_mut()
                .unwrap()
                .remove("vm_count");
            assert!(r.render("license_issued", locale, &ctx).is_err());

            let mut ctx = vm_count_context();
            ctx.as_object_mut().unwrap().remove("previous_vm_count");
            assert!(r.render("vm_count_changed", locale, &ctx).is_err());

            // Every field of the new kinds is required, whichever branch the
            // flags select.
            for flag in [false, true] {
                for field in [
                    "order_id",
                    "vendor_order_id",
                    "contact_name",
                    "keys",
                    "remaining",
                    "order_revoked_next",
                ] {
                    let mut ctx = keys_cancelled_context(flag);
                    ctx.as_object_mut().unwrap().remove(field);
                    assert!(
                        r.render("keys_cancelled", locale, &ctx).is_err(),
                        "keys_cancelled.{locale} without {field}"
                    );
                }
                for field in [
                    "order_id",
                    "vendor_order_id",
                    "customer_id",
                    "recipient_name",
                    "for_partner",
                ] {
                    let mut ctx = order_revoked_context(flag);
                    ctx.as_object_mut().unwrap().remove(field);
                    assert!(
                        r.render("order_revoked", locale, &ctx).is_err(),
                        "order_revoked.{locale} without {field}"
                    );
                }
            }
            for kind in TRANSFER_KINDS {
                // Only a rejected or failed transfer has a reason to show.
                let uses_reason = matches!(kind, "transfer_rejected" | "transfer_failed");
                for role in TRANSFER_ROLES {
                    for field in [
                        "transfer_id",
                        "customer_id",
                        "source_partner_id",
                        "destination_partner_id",
                        "subscription_ids",
                        "recipient_name",
                        "recipient_role",
                        "reason",
                    ] {
                        if field == "reason" && !uses_reason {
                            continue;
                        }
                        let mut ctx = transfer_context(kind, role);
                        ctx.as_object_mut().unwrap().remove(field);
                        assert!(
                            r.render(kind, locale, &ctx).is_err(),
                            "{kind}.{locale} for {role} without {field}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn render_error_does_not_leak_context_values() {
        let r = Renderer::new("C-Chorus");
        let mut ctx = license_context(true);
        ctx.as_object_mut().unwrap().remove("contact_name");
        let err = r.render("license_issued", Locale::En, &ctx).unwrap_err();
        let shown = format!("{err} {err:?} {err:#}");
        assert!(!shown.contains("AAAA-BBBB"), "{shown}");
    }

    #[test]
    fn unknown_template_and_bad_context() {
        let r = Renderer::new("C-Chorus");
        assert!(matches!(
            r.render("no_such_kind", Locale::Ja, &json!({})),
            Err(RenderError::UnknownTemplate { .. })
        ));
        assert!(matches!(
            r.render("license_issued", Locale::Ja, &json!(null)),
            Err(RenderError::ContextNotObject { .. })
        ));
    }

    #[test]
    fn newline_in_a_value_cannot_break_the_subject() {
        let r = Renderer::new("C-Chorus\r\nBcc: x@example.com");
        let mail = r
            .render("vm_count_changed", Locale::En, &vm_count_context())
            .unwrap();
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
    }

    #[test]
    fn unknown_usage_prints_as_is() {
        assert_eq!(usage_label("hypervisor", "ja"), "ハイパーバイザー");
        assert_eq!(usage_label("bare_metal", "en"), "Physical server");
        assert_eq!(usage_label("mainframe", "en"), "mainframe");
    }

    #[test]
    fn locale_parse() {
        assert_eq!(Locale::parse("ja"), Some(Locale::Ja));
        assert_eq!(Locale::parse("ja-JP"), Some(Locale::Ja));
        assert_eq!(Locale::parse("JA_jp"), Some(Locale::Ja));
        assert_eq!(Locale::parse("en"), Some(Locale::En));
        assert_eq!(Locale::parse("EN_us"), Some(Locale::En));
        assert_eq!(Locale::parse("en-GB"), Some(Locale::En));
        assert_eq!(Locale::parse(" en "), Some(Locale::En));
        assert_eq!(Locale::parse("fr-FR"), None);
        assert_eq!(Locale::parse("jam"), None);
        assert_eq!(Locale::parse("english"), None);
        assert_eq!(Locale::parse(""), None);
        assert_eq!(Locale::resolve(Some("de"), Locale::Ja), Locale::Ja);
        assert_eq!(Locale::resolve(None, Locale::En), Locale::En);
        assert_eq!(Locale::resolve(Some("en-US"), Locale::Ja), Locale::En);
        for l in Locale::ALL {
            assert_eq!(Locale::parse(l.as_str()), Some(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.as_str()));
            assert_eq!(serde_json::from_str::<Locale>(&json).unwrap(), l);
        }
    }
}
