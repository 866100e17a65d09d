//! Mail templates: owns the wording of every mail and the rendering of a
//! template's [`Content`] (its typed context, see `contexts`) in a locale
//! into a subject and a plain-text body.
//!
//! Each kind has one file per locale, `templates/<kind>.<locale>.txt`, compiled
//! into the binary with `include_str!` so a deployed worker never depends on
//! files next to it; the build script lists the directory, so a new file
//! needs no line here. A file's first line is `subject: ...`, then one blank line,
//! then the body; both parts are minijinja templates and see the fields of the
//! kind's context struct plus `service_name`. Line numbers in body errors count
//! from the first body line (line 3 of the file).
//!
//! Rendering is strict: an undefined variable is an error, because a mail row
//! is written once, in the same transaction as the state change, and a blank
//! where a license key should be would go out to a customer as is.
//!
//! What this module does not own: choosing the recipient, the Message-ID, and
//! turning the rendered text into MIME (see `message`).

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

use super::contexts::Content;
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
    #[error("mail context for {template:?} must be a struct with named fields")]
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

    /// Renders `content`'s template in `locale` with its context: subject
    /// (already prefixed `"[service] "`) and plain-text body.
    pub fn render(&self, content: &Content, locale: Locale) -> Result<RenderedMail, RenderError> {
        self.render_context(content.template(), locale, content.context())
    }

    /// `template` is a kind name like `"license_issued"`.
    fn render_context(
        &self,
        template: &str,
        locale: Locale,
        context: &Value,
    ) -> Result<RenderedMail, RenderError> {
        let file = TEMPLATES
            .iter()
            .find(|f| f.kind == template && f.locale == locale)
            .ok_or_else(|| RenderError::UnknownTemplate {
                template: template.to_owned(),
                locale,
            })?;
        if context.kind() != ValueKind::Map {
            return Err(RenderError::ContextNotObject {
                template: template.to_owned(),
            });
        }
        let (subject_src, body_src) = split_file(file)?;

        // `service_name` comes from configuration and wins over a context key
        // of the same name: the prefix and the text must agree.
        let ctx = context! {
            service_name => self.service_name.as_str(),
            ..context.clone()
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
    use chrono::{DateTime, NaiveDateTime, Utc};
    use serde::Serialize;
    use serde_json::json;
    use std::collections::BTreeSet;
    use uuid::Uuid;

    use crate::mail::contexts::{
        IssuedKey, IssuedKeys, KeysCancelled, LicenseAdded, LicenseIssued, MailContext,
        OrderRevoked, PartnershipInvitation, Registration, RegistrationCompleted,
        RegistrationRefused, RegistrationRejected, RelationshipInvitation, ServiceStarted,
        SlaAlert, TransferFormLink, TransferFormReturned, TransferNotice, TransferRole,
        TrialExpired, TrialExpiring, TrialNotice, TrialPurchaseRequest, TrialPurged, TrialRole,
        VmCountChanged,
    };
    use crate::store::trials::TrialStatus;
    use crate::transfers::TransferMail;

    const ORDER_ID: &str = "0190f3a2-7c41-7d2e-9a51-3b8f2c1d4e5f";

    fn id(text: &str) -> Uuid {
        Uuid::parse_str(text).unwrap()
    }

    /// The instant a mail shows as `shown`, e.g. `2026-12-24 00:00 UTC`.
    fn instant(shown: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(shown, "%Y-%m-%d %H:%M UTC")
            .unwrap()
            .and_utc()
    }

    fn issued_keys(sla_met: bool) -> IssuedKeys<'static> {
        IssuedKeys {
            order_id: id(ORDER_ID),
            vendor_order_id: "VO-2026-004211",
            customer_id: "CUST-0042",
            contact_name: "山田 太郎",
            usage: "hypervisor",
            licenses: vec![
                IssuedKey {
                    key: Some("AAAA-BBBB-CCCC-0001"),
                    usage: "hypervisor",
                    vm_count: Some(25),
                },
                IssuedKey {
                    key: Some("AAAA-BBBB-CCCC-0002"),
                    usage: "virtual",
                    vm_count: None,
                },
            ],
            sla_met,
        }
    }

    fn vm_count_changed() -> VmCountChanged<'static> {
        VmCountChanged {
            order_id: id(ORDER_ID),
            vendor_order_id: "VO-2026-004211",
            contact_name: "Jane Smith",
            key: "AAAA-BBBB-CCCC-0001",
            previous_vm_count: 25,
            vm_count: 40,
        }
    }

    fn keys_cancelled(order_revoked_next: bool) -> KeysCancelled<'static> {
        let (keys, remaining): (&[&str], _) = if order_revoked_next {
            (&["AAAA-BBBB-CCCC-0001", "AAAA-BBBB-CCCC-0002"], 0)
        } else {
            (&["AAAA-BBBB-CCCC-0001"], 1)
        };
        KeysCancelled {
            order_id: id(ORDER_ID),
            vendor_order_id: Some("VO-2026-004211"),
            contact_name: "山田 太郎",
            keys,
            remaining,
            order_revoked_next,
        }
    }

    fn order_revoked(for_partner: bool) -> OrderRevoked<'static> {
        OrderRevoked {
            order_id: id(ORDER_ID),
            vendor_order_id: "VO-2026-004211",
            customer_id: "CUST-0042",
            recipient_name: if for_partner {
                "佐藤 花子"
            } else {
                "山田 太郎"
            },
            for_partner,
        }
    }

    const TRANSFER_MAILS: [TransferMail; 4] = [
        TransferMail::Submitted,
        TransferMail::Completed,
        TransferMail::Rejected,
        TransferMail::Failed,
    ];
    const TRANSFER_ID: &str = "0190f4c8-1b2a-7e3d-8f4a-6c5b4a3d2e1f";
    const REJECTED_REASON: &str =
        "partner PARTNER-0019 has no reseller relationship with customer CUST-0042";
    const FAILED_REASON: &str = "switching subscription SUB-0002 timed out";

    fn transfer_notice(role: TransferRole) -> TransferNotice<'static> {
        TransferNotice {
            transfer_id: id(TRANSFER_ID),
            customer_id: "CUST-0042",
            source_partner_id: "PARTNER-0007",
            destination_partner_id: "PARTNER-0019",
            subscription_ids: &["SUB-0001", "SUB-0002"],
            recipient_name: match role {
                TransferRole::Customer => "山田 太郎",
                TransferRole::Source => "佐藤 花子",
                TransferRole::Destination => "鈴木 一郎",
            },
            recipient_role: role,
        }
    }

    /// The reason a step's mail gives: empty unless the transfer was
    /// rejected or failed, as the callers send it.
    fn transfer_reason(mail: TransferMail) -> &'static str {
        match mail {
            TransferMail::Rejected => REJECTED_REASON,
            TransferMail::Failed => FAILED_REASON,
            TransferMail::Submitted | TransferMail::Completed => "",
        }
    }

    fn transfer_mail(mail: TransferMail, notice: TransferNotice<'static>) -> Content {
        mail.content(notice, transfer_reason(mail))
    }

    fn transfer_form_link() -> TransferFormLink<'static> {
        TransferFormLink {
            form_id: id(TRANSFER_ID),
            customer_name: "株式会社サンプル",
            source_partner_name: "Acme Resale",
            subscription_ids: &["SUB-0001", "SUB-0002"],
            link: LINK,
            expires_at: instant(EXPIRES_AT),
            valid_days: 14,
        }
    }

    fn transfer_form_returned() -> TransferFormReturned<'static> {
        TransferFormReturned {
            form_id: id(TRANSFER_ID),
            customer_id: "CUST-0042",
            customer_name: "株式会社サンプル",
            recipient_name: "佐藤 花子",
            customer_contact_name: "山田 太郎",
            destination_partner_id: Some("PARTNER-0019"),
            destination_partner_name: "Globex Resale",
            destination_contact_name: "鈴木 一郎",
            subscription_ids: &["SUB-0001", "SUB-0002"],
            expires_at: instant(EXPIRES_AT),
        }
    }

    #[test]
    fn the_form_link_goes_in_the_body_and_the_returned_form_names_the_customers_part() {
        for locale in Locale::ALL {
            let link = render_with(&transfer_form_link(), locale);
            let returned = render_with(&transfer_form_returned(), locale);
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

    fn render_transfer(mail: TransferMail, locale: Locale, role: TransferRole) -> RenderedMail {
        render_content(&transfer_mail(mail, transfer_notice(role)), locale)
    }

    const TRIAL_KINDS: [&str; 2] = ["trial_expiring", "trial_expired"];
    const TRIAL_ROLES: [TrialRole; 2] = [TrialRole::CustomerAdmin, TrialRole::PartnerAdmin];
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

    fn trial_notice(role: TrialRole) -> TrialNotice<'static> {
        TrialNotice {
            recipient_role: role,
            customer_id: "CUST-0042",
            customer_name: "株式会社サンプル",
            trial_id: id(TRIAL_ID),
            services: &["C-Chorus Chat", "C-Chorus Phone"],
            ends_at: instant(ENDS_AT),
            grace_days: 30,
            purchase_link: PURCHASE_LINK,
        }
    }

    /// A notice seven days before the end, with two extensions left, as the
    /// trial sweep sends it.
    fn trial_expiring(role: TrialRole) -> TrialExpiring<'static> {
        TrialExpiring {
            notice: trial_notice(role),
            days_left: 7,
            extensions_left: 2,
        }
    }

    fn trial_expired(role: TrialRole) -> TrialExpired<'static> {
        TrialExpired {
            notice: trial_notice(role),
            grace_ends_at: instant(GRACE_ENDS_AT),
        }
    }

    /// One of `TRIAL_KINDS` with `notice`, for what both say.
    fn trial_mail(kind: &str, notice: TrialNotice<'static>) -> Content {
        match kind {
            "trial_expiring" => Content::of(&TrialExpiring {
                notice,
                ..trial_expiring(TrialRole::CustomerAdmin)
            }),
            _ => Content::of(&TrialExpired {
                notice,
                ..trial_expired(TrialRole::CustomerAdmin)
            }),
        }
    }

    fn trial_purchase_request() -> TrialPurchaseRequest<'static> {
        TrialPurchaseRequest {
            customer_id: "CUST-0042",
            customer_name: "株式会社サンプル",
            customer_admin_email: EMAIL,
            trial_id: id(TRIAL_ID),
            status: TrialStatus::Active,
            services: &["C-Chorus Chat", "C-Chorus Phone"],
            note: "",
            ends_at: instant(ENDS_AT),
            requested_at: instant(EXPIRES_AT),
            purchase_link: PURCHASE_LINK,
        }
    }

    #[test]
    fn trial_purchase_request_both_locales() {
        let with_note = || TrialPurchaseRequest {
            note: "Please call us.",
            status: TrialStatus::Expired,
            ..trial_purchase_request()
        };
        for locale in Locale::ALL {
            for (ctx, note) in [(trial_purchase_request(), false), (with_note(), true)] {
                let mail = render_with(&ctx, locale);
                let at = format!("trial_purchase_request.{locale} (note: {note})");
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
        let ja = render_with(&trial_purchase_request(), Locale::Ja);
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアルからのご購入依頼のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.starts_with("ご担当者様\n\n"));
        assert!(ja.body.contains("お客様名：株式会社サンプル\n"));
        let en = render_with(&trial_purchase_request(), Locale::En);
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
                    let mail = render_content(&trial_mail(kind, trial_notice(role)), locale);
                    let line = format!("{PURCHASE_LINK}\n");
                    assert!(mail.body.contains(&line), "{kind}.{locale} for {role:?}");
                }
            }
        }
    }

    fn trial_purged() -> TrialPurged<'static> {
        TrialPurged {
            user_name: "山田 太郎",
            customer_id: "CUST-0042",
            customer_name: "株式会社サンプル",
            trial_id: id(TRIAL_ID),
            services: &["C-Chorus Chat", "C-Chorus Phone"],
            purged_at: instant(PURGED_AT),
        }
    }

    fn registration() -> Registration<'static> {
        Registration {
            email: EMAIL,
            link: LINK,
            expires_at: instant(EXPIRES_AT),
            valid_hours: 3,
        }
    }

    fn relationship_invitation(provider: Option<&'static str>) -> RelationshipInvitation<'static> {
        RelationshipInvitation {
            partner_name: "Globex Resale",
            customer_name: "株式会社サンプル",
            provider_name: provider,
            link: LINK,
            expires_at: instant(EXPIRES_AT),
            valid_days: 7,
        }
    }

    fn partnership_invitation() -> PartnershipInvitation<'static> {
        PartnershipInvitation {
            provider_name: "Initech Distribution",
            reseller_name: "Globex Resale",
            link: LINK,
            expires_at: instant(EXPIRES_AT),
            valid_days: 7,
        }
    }

    #[test]
    fn a_two_tier_invitation_names_the_provider_and_a_direct_one_does_not() {
        for locale in Locale::ALL {
            let direct = render_with(&relationship_invitation(None), locale);
            let two_tier = render_with(
                &relationship_invitation(Some("Initech Distribution")),
                locale,
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

    fn service_started() -> ServiceStarted<'static> {
        ServiceStarted {
            email: EMAIL,
            services: &["C-Chorus Chat", "C-Chorus Phone"],
        }
    }

    const SLA_REQUEST_ID: &str = "0190f7a1-2b3c-7d4e-8f5a-6b7c8d9e0f1a";

    fn sla_alert(stage: &'static str, completed: bool) -> SlaAlert<'static> {
        SlaAlert {
            stage,
            request_id: id(SLA_REQUEST_ID),
            kind: "additional",
            order_id: id(ORDER_ID),
            partner_id: "acme",
            accepted_at: instant("2030-01-01 09:00 UTC"),
            sla_deadline: instant("2030-01-01 09:30 UTC"),
            now: instant("2030-01-01 09:40 UTC"),
            completed_at: completed.then(|| instant("2030-01-01 09:35 UTC")),
            late: completed.then_some("5m"),
            job_id: id("0190f7a1-2b3c-7d4e-8f5a-6b7c8d9e0f1b"),
            job_kind: "license.additional",
            job_status: "retrying",
            attempts: 3,
            last_error: Some("vendor timed out"),
        }
    }

    #[test]
    fn sla_alert_names_the_stage_and_what_is_late() {
        for locale in Locale::ALL {
            let breached = render_with(&sla_alert("breached", true), locale);
            let at_risk = render_with(&sla_alert("at_risk", false), locale);
            assert_well_formed(&breached, "breached");
            assert_well_formed(&at_risk, "at_risk");
            assert_ne!(breached.subject, at_risk.subject, "{locale}");
            assert!(breached.body.contains("5m"), "{locale}: {}", breached.body);
            assert!(at_risk.body.contains("2030-01-01 09:40 UTC"), "{locale}");
            assert!(at_risk.body.contains("vendor timed out"), "{locale}");
        }
        let stray =
            Renderer::new("C-Chorus").render(&Content::of(&sla_alert("late", false)), Locale::En);
        assert!(stray.is_err());
    }

    fn render_with(context: &impl MailContext, locale: Locale) -> RenderedMail {
        render_content(&Content::of(context), locale)
    }

    fn render_content(content: &Content, locale: Locale) -> RenderedMail {
        Renderer::new("C-Chorus").render(content, locale).unwrap()
    }

    /// A context as JSON, to take apart in ways its struct does not allow.
    fn json_of(context: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(context).unwrap()
    }

    /// Renders `kind` with a context made by hand: a field missing, a word
    /// no variant has.
    fn render_json(
        kind: &str,
        locale: Locale,
        context: &serde_json::Value,
    ) -> Result<RenderedMail, RenderError> {
        Renderer::new("C-Chorus").render_context(kind, locale, &Value::from_serialize(context))
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

    /// A template's example context, and the fields of it that choose the
    /// wording rather than show in the mail (a role, a stage, a code).
    struct Example {
        content: Content,
        wording: &'static [&'static str],
    }

    fn example(context: &impl MailContext, wording: &'static [&'static str]) -> Example {
        let content = Content::of(context);
        Example { content, wording }
    }

    /// One example per template.
    fn examples() -> Vec<Example> {
        let customer = TransferRole::Customer;
        let mut examples = vec![
            example(&LicenseIssued(issued_keys(true)), &["usage"]),
            example(&LicenseAdded(issued_keys(true)), &["usage"]),
            example(&vm_count_changed(), &[]),
            example(&keys_cancelled(false), &[]),
            example(&order_revoked(false), &[]),
            example(&transfer_form_link(), &[]),
            example(&transfer_form_returned(), &[]),
            example(
                &trial_expiring(TrialRole::CustomerAdmin),
                &["recipient_role"],
            ),
            example(
                &trial_expired(TrialRole::CustomerAdmin),
                &["recipient_role"],
            ),
            example(&trial_purged(), &[]),
            example(&trial_purchase_request(), &["status"]),
            example(&registration(), &[]),
            example(&registration_completed(), &[]),
            example(&registration_refused("in_progress"), &["reason"]),
            example(&registration_rejected(), &[]),
            example(&service_started(), &[]),
            example(&relationship_invitation(None), &[]),
            example(&partnership_invitation(), &[]),
            example(&sla_alert("at_risk", false), &["stage"]),
        ];
        examples.extend(TRANSFER_MAILS.map(|mail| Example {
            content: transfer_mail(mail, transfer_notice(customer)),
            wording: &["recipient_role"],
        }));
        examples
    }

    #[test]
    fn every_template_has_an_example_in_every_locale() {
        let examples = examples();
        let templates: BTreeSet<&str> = examples.iter().map(|e| e.content.template()).collect();
        assert_eq!(templates.len(), examples.len(), "one example per template");
        let kinds: BTreeSet<&str> = kinds().collect();
        assert_eq!(templates, kinds, "the examples and the template files");
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

    /// Strict rendering catches a variable missing from the branch that
    /// runs; this catches it in every branch: each template reads only
    /// fields of its context struct (and `service_name`), and each field is
    /// read by a template of its kind.
    #[test]
    fn every_template_reads_only_fields_of_its_context() {
        let r = Renderer::new("C-Chorus");
        let globals: BTreeSet<&str> = r.env.globals().map(|(name, _)| name).collect();
        for example in examples() {
            let kind = example.content.template();
            let context = json_of(example.content.context());
            let fields: BTreeSet<&str> = context
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert!(
                !fields.contains("service_name"),
                "{kind}: set by the renderer"
            );
            let mut read = BTreeSet::new();
            for file in TEMPLATES.iter().filter(|f| f.kind == kind) {
                for name in [file.subject_name, file.body_name] {
                    let template = r.env.get_template(name).unwrap();
                    for variable in template.undeclared_variables(false) {
                        if variable == "service_name" || globals.contains(variable.as_str()) {
                            continue;
                        }
                        assert!(
                            fields.contains(variable.as_str()),
                            "{name} reads {variable:?}, which {kind}'s context lacks"
                        );
                        read.insert(variable);
                    }
                }
            }
            for field in fields {
                assert!(read.contains(field), "no {kind} template reads {field:?}");
            }
        }
    }

    #[test]
    fn no_subject_repeats_the_service_name_after_its_prefix() {
        let r = Renderer::new("C-Chorus");
        for example in examples() {
            let kind = example.content.template();
            if kind.starts_with("registration") {
                continue;
            }
            for locale in Locale::ALL {
                let subject = r.render(&example.content, locale).unwrap().subject;
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
        for example in examples() {
            let kind = example.content.template();
            let context = json_of(example.content.context());
            let fields = context.as_object().unwrap();
            for field in example.wording {
                assert!(fields.contains_key(*field), "{kind} has no field {field}");
            }
            for locale in Locale::ALL {
                let mail = r.render(&example.content, locale).unwrap();
                assert!(
                    mail.subject.starts_with("[C-Chorus] "),
                    "{kind}.{locale}: {}",
                    mail.subject
                );
                assert!(!mail.subject.contains('\n'));
                // The example's top-level strings all show, but for those
                // that choose the wording.
                for (field, value) in fields {
                    let Some(value) = value.as_str() else {
                        continue;
                    };
                    if example.wording.contains(&field.as_str()) {
                        continue;
                    }
                    let shown = mail.body.contains(value) || mail.subject.contains(value);
                    assert!(shown, "{kind}.{locale} does not show {field} {value:?}");
                }
                if kind.starts_with("transfer_") {
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
                    assert!(mail.body.contains(SLA_REQUEST_ID), "{kind}.{locale}");
                    assert!(mail.body.contains("fulfil queues"), "{kind}.{locale}");
                } else if matches!(
                    kind,
                    "license_issued"
                        | "license_added"
                        | "vm_count_changed"
                        | "keys_cancelled"
                        | "order_revoked"
                ) {
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
        let mail = render_with(&LicenseIssued(issued_keys(true)), Locale::Ja);
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
        let mail = render_with(&LicenseIssued(issued_keys(true)), Locale::En);
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
        let late = [
            Content::of(&LicenseIssued(issued_keys(false))),
            Content::of(&LicenseAdded(issued_keys(false))),
        ];
        for content in late {
            let kind = content.template();
            let ja = render_content(&content, Locale::Ja);
            assert!(ja.body.contains("お詫び"), "{kind}");
            let en = render_content(&content, Locale::En);
            assert!(en.body.contains("apologise"), "{kind}");
        }
    }

    #[test]
    fn license_added_both_locales() {
        let ja = render_with(&LicenseAdded(issued_keys(true)), Locale::Ja);
        assert_eq!(ja.subject, "[C-Chorus] 追加ライセンスキー発行のお知らせ");
        assert!(ja.body.contains("追加"));
        assert!(ja.body.contains("AAAA-BBBB-CCCC-0002"));
        let en = render_with(&LicenseAdded(issued_keys(true)), Locale::En);
        assert_eq!(
            en.subject,
            "[C-Chorus] Additional license keys have been issued"
        );
        assert!(en.body.contains("additional"));
    }

    #[test]
    fn vm_count_changed_both_locales() {
        let ja = render_with(&vm_count_changed(), Locale::Ja);
        assert_eq!(ja.subject, "[C-Chorus] 対象VM数変更完了のお知らせ");
        assert!(ja.body.contains("25台"));
        assert!(ja.body.contains("40台"));
        assert!(ja.body.contains("添付"));
        let en = render_with(&vm_count_changed(), Locale::En);
        assert!(en.subject.starts_with("[C-Chorus] "));
        assert!(en.body.contains("from 25 to 40"));
        assert!(en.body.contains("attached"));
    }

    #[test]
    fn keys_cancelled_ja() {
        let mail = render_with(&keys_cancelled(false), Locale::Ja);
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

        let mail = render_with(&keys_cancelled(true), Locale::Ja);
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
        let mail = render_with(&keys_cancelled(false), Locale::En);
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

        let mail = render_with(&keys_cancelled(true), Locale::En);
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
        let ja = render_with(&order_revoked(false), Locale::Ja);
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
        let en = render_with(&order_revoked(false), Locale::En);
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
        let ja = render_with(&order_revoked(true), Locale::Ja);
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
        let en = render_with(&order_revoked(true), Locale::En);
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
        for kind in TRANSFER_MAILS {
            for locale in Locale::ALL {
                for role in TransferRole::ALL {
                    let name = transfer_notice(role).recipient_name;
                    let mail = render_transfer(kind, locale, role);
                    let at = format!("{kind:?}.{locale} for {role:?}");
                    assert!(mail.subject.starts_with("[C-Chorus] "), "{at}");
                    // Partners handle many customers: their subject says which.
                    assert_eq!(
                        mail.subject.contains("CUST-0042"),
                        role != TransferRole::Customer,
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
                    let reason = transfer_reason(kind);
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
                        TransferRole::Source => format!("{src}{ours}\n{dst}\n"),
                        TransferRole::Destination => format!("{src}\n{dst}{ours}\n"),
                        TransferRole::Customer => format!("{src}\n{dst}\n"),
                    };
                    assert!(b.contains(&own), "{at}");
                    assert_eq!(
                        b.matches(ours).count(),
                        usize::from(role != TransferRole::Customer),
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
        let kind = TransferMail::Submitted;
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Customer);
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
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Source);
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
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Destination);
        assert!(
            ja.body
                .contains("（パートナーID：PARTNER-0007）から貴社へ移管する")
        );
        assert!(ja.body.contains("貴社にて管理していただくことになります"));
        assert!(!ja.body.contains("管理者権限"));

        let en = render_transfer(kind, Locale::En, TransferRole::Customer);
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
        let en = render_transfer(kind, Locale::En, TransferRole::Source);
        assert_eq!(
            en.subject,
            "[C-Chorus] A C-Chorus subscription transfer request has been received (customer ID CUST-0042)"
        );
        assert!(en.body.contains("your customer CUST-0042's"));
        assert!(en.body.contains(
            "your company will no longer manage the\n\
             subscriptions, and your admin roles on them will be removed.\n"
        ));
        let en = render_transfer(kind, Locale::En, TransferRole::Destination);
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
        let kind = TransferMail::Completed;
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Customer);
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
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Source);
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管完了のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(
            ja.body
                .contains("貴社に付与されていた管理者権限は削除されており")
        );
        assert!(ja.body.contains("管理していただくことはできません"));
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Destination);
        assert!(ja.body.contains("今後は貴社にて管理していただけます"));
        assert!(
            ja.body
                .contains("移管元パートナーに付与されていた管理者権限は削除済みです")
        );

        let en = render_transfer(kind, Locale::En, TransferRole::Customer);
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
        let en = render_transfer(kind, Locale::En, TransferRole::Source);
        assert_eq!(
            en.subject,
            "[C-Chorus] A C-Chorus subscription transfer is complete (customer ID CUST-0042)"
        );
        assert!(en.body.contains(
            "Your company's admin roles on them have been removed, and your company\n\
             no longer manages them.\n"
        ));
        let en = render_transfer(kind, Locale::En, TransferRole::Destination);
        assert!(en.body.contains("from now on your company manages them"));
        assert!(
            en.body
                .contains("The admin roles of partner PARTNER-0007 on them have been removed.")
        );
    }

    #[test]
    fn transfer_rejected_both_locales() {
        let kind = TransferMail::Rejected;
        for role in TransferRole::ALL {
            let ja = render_transfer(kind, Locale::Ja, role);
            assert!(
                ja.subject
                    .starts_with("[C-Chorus] サブスクリプション移管不成立のお知らせ"),
                "{role:?}"
            );
            assert!(
                ja.body
                    .contains(&format!("■移管を実施できなかった理由\n{REJECTED_REASON}\n")),
                "{role:?}"
            );
            assert!(
                ja.body.contains("移管を実施することが\nできませんでした"),
                "{role:?}"
            );
            assert!(ja.body.contains("一切行っておらず"), "{role:?}");
            assert!(ja.body.contains("■今後のお手続きについて"), "{role:?}");
            assert!(
                ja.body.contains("新しい移管のご依頼をお送りください"),
                "{role:?}"
            );
            assert!(!ja.body.contains("再度実行"), "{role:?}");

            let en = render_transfer(kind, Locale::En, role);
            assert!(en.subject.contains("could not be carried out"), "{role:?}");
            assert!(
                en.body.contains(&format!("\nReason\n{REJECTED_REASON}\n")),
                "{role:?}"
            );
            assert!(
                en.body.contains("Nothing has been changed by this request"),
                "{role:?}"
            );
            assert!(
                en.body.contains("submit a new transfer request"),
                "{role:?}"
            );
            assert!(!en.body.contains("retry"), "{role:?}");
        }
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Customer);
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管不成立のお知らせ"
        );
        assert!(!ja.body.contains("貴社"));
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Destination);
        assert!(
            ja.body
                .contains("から貴社へ移管するご依頼につきまして、\n移管の条件")
        );
        let en = render_transfer(kind, Locale::En, TransferRole::Source);
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
        let kind = TransferMail::Failed;
        for role in TransferRole::ALL {
            let ja = render_transfer(kind, Locale::Ja, role);
            assert!(
                ja.subject
                    .starts_with("[C-Chorus] サブスクリプション移管処理エラーのお知らせ"),
                "{role:?}"
            );
            assert!(
                ja.body.contains(&format!("■エラー内容\n{FAILED_REASON}\n")),
                "{role:?}"
            );
            assert!(
                ja.body.contains("移管の手続きが完了しておりません"),
                "{role:?}"
            );
            assert!(ja.body.contains("申し訳ございません"), "{role:?}");
            assert!(ja.body.contains("運用担当者へ通知されており"), "{role:?}");
            assert!(ja.body.contains("処理を再度実行いたします"), "{role:?}");
            assert!(!ja.body.contains("新しい移管のご依頼"), "{role:?}");

            let en = render_transfer(kind, Locale::En, role);
            assert!(
                en.subject.contains("An error occurred while processing"),
                "{role:?}"
            );
            assert!(
                en.body.contains(&format!("\nError\n{FAILED_REASON}\n")),
                "{role:?}"
            );
            assert!(en.body.contains("has not been completed"), "{role:?}");
            assert!(en.body.contains("apologise"), "{role:?}");
            assert!(en.body.contains("will retry the transfer"), "{role:?}");
            assert!(en.body.contains("No action is needed from you"), "{role:?}");
            assert!(!en.body.contains("submit a new"), "{role:?}");
        }
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Customer);
        assert_eq!(
            ja.subject,
            "[C-Chorus] サブスクリプション移管処理エラーのお知らせ"
        );
        assert!(
            ja.body
                .contains("現時点でお客様にてご対応いただく必要はございません")
        );
        assert!(!ja.body.contains("貴社"));
        let ja = render_transfer(kind, Locale::Ja, TransferRole::Source);
        assert!(
            ja.body
                .contains("現時点で貴社にてご対応いただく必要はございません")
        );
        let en = render_transfer(kind, Locale::En, TransferRole::Destination);
        assert_eq!(
            en.subject,
            "[C-Chorus] An error occurred while processing a C-Chorus subscription transfer (customer ID CUST-0042)"
        );
    }

    #[test]
    fn transfer_with_one_subscription_is_singular_in_english() {
        for kind in TRANSFER_MAILS {
            for role in TransferRole::ALL {
                let notice = TransferNotice {
                    subscription_ids: &["SUB-0001"],
                    ..transfer_notice(role)
                };
                let en = render_content(&transfer_mail(kind, notice), Locale::En);
                assert!(en.body.contains("  1. SUB-0001\n"), "{kind:?} {role:?}");
                assert!(!en.body.contains("2. "), "{kind:?} {role:?}");
                assert!(!en.body.contains("subscriptions"), "{kind:?} {role:?}");
                assert!(!en.body.contains("them"), "{kind:?} {role:?}");
            }
        }
    }

    #[test]
    fn transfer_with_unknown_recipient_role_is_an_error() {
        for mail in TRANSFER_MAILS {
            let content = transfer_mail(mail, transfer_notice(TransferRole::Customer));
            let kind = content.template();
            for locale in Locale::ALL {
                for role in ["reseller", "Customer", ""] {
                    let mut ctx = json_of(content.context());
                    ctx["recipient_role"] = json!(role);
                    let err = render_json(kind, locale, &ctx).unwrap_err();
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
                        let notice = TrialNotice {
                            customer_name,
                            ..trial_notice(role)
                        };
                        let mail = render_content(&trial_mail(kind, notice), locale);
                        let at = format!("{kind}.{locale} for {role:?} ({customer_name:?})");
                        assert_well_formed(&mail, &at);
                        // Partners handle many customers: their subject says which.
                        assert_eq!(
                            mail.subject.contains("CUST-0042"),
                            role == TrialRole::PartnerAdmin,
                            "{at}: {}",
                            mail.subject
                        );
                        let b = &mail.body;
                        let greeting = match (locale, role, customer_name) {
                            (Locale::Ja, TrialRole::CustomerAdmin, "") => {
                                "ご担当者様\n\n".to_owned()
                            }
                            (Locale::Ja, TrialRole::CustomerAdmin, name) => {
                                format!("{name} ご担当者様\n\n")
                            }
                            (Locale::Ja, _, _) => "ご担当者様\n\n".to_owned(),
                            (Locale::En, TrialRole::CustomerAdmin, "") => {
                                "Dear administrator,\n\n".to_owned()
                            }
                            (Locale::En, TrialRole::CustomerAdmin, name) => {
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
                        let for_partner = role == TrialRole::PartnerAdmin;
                        assert_eq!(b.contains(partner_words), for_partner, "{at}");
                        let contact = match locale {
                            Locale::Ja => "パートナー（販売店）",
                            Locale::En => "partner (reseller)",
                        };
                        assert_eq!(b.contains(contact), !for_partner, "{at}");
                        assert!(b.contains("C-Chorus\n"), "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn trial_expiring_ja() {
        let ja = render_with(&trial_expiring(TrialRole::CustomerAdmin), Locale::Ja);
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

        let ja = render_with(&trial_expiring(TrialRole::PartnerAdmin), Locale::Ja);
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
        let ctx = TrialExpiring {
            days_left: 0,
            extensions_left: 0,
            ..trial_expiring(TrialRole::CustomerAdmin)
        };
        let ja = render_with(&ctx, Locale::Ja);
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
        let ctx = TrialExpiring {
            extensions_left: 0,
            ..trial_expiring(TrialRole::PartnerAdmin)
        };
        let ja = render_with(&ctx, Locale::Ja);
        assert!(
            ja.body
                .contains("本契約への切り替えのお手続きをお願いいたします")
        );
    }

    #[test]
    fn trial_expiring_en() {
        let en = render_with(&trial_expiring(TrialRole::CustomerAdmin), Locale::En);
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

        let en = render_with(&trial_expiring(TrialRole::PartnerAdmin), Locale::En);
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

        let mut ctx = TrialExpiring {
            days_left: 0,
            extensions_left: 0,
            ..trial_expiring(TrialRole::CustomerAdmin)
        };
        ctx.notice.grace_days = 1;
        let en = render_with(&ctx, Locale::En);
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

        let ctx = TrialExpiring {
            days_left: 1,
            extensions_left: 1,
            ..trial_expiring(TrialRole::PartnerAdmin)
        };
        let en = render_with(&ctx, Locale::En);
        assert!(en.body.contains("ends in 1 day, at"));
        assert!(en.body.contains("The trial can be extended 1 more time.\n"));
    }

    #[test]
    fn trial_expired_both_locales() {
        let ja = render_with(&trial_expired(TrialRole::CustomerAdmin), Locale::Ja);
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
        let ja = render_with(&trial_expired(TrialRole::PartnerAdmin), Locale::Ja);
        assert_eq!(
            ja.subject,
            "[C-Chorus] トライアル期間終了のお知らせ（お客様ID：CUST-0042）"
        );
        assert!(ja.body.contains("貴社のお客様（お客様ID：CUST-0042）"));
        assert!(ja.body.contains("別途お送りしております"));

        let en = render_with(&trial_expired(TrialRole::CustomerAdmin), Locale::En);
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
        let en = render_with(&trial_expired(TrialRole::PartnerAdmin), Locale::En);
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
        for kind in TRIAL_KINDS {
            let content = trial_mail(kind, trial_notice(TrialRole::CustomerAdmin));
            for locale in Locale::ALL {
                for role in ["customer", "Partner_admin", "source", ""] {
                    let mut ctx = json_of(content.context());
                    ctx["recipient_role"] = json!(role);
                    let err = render_json(kind, locale, &ctx).unwrap_err();
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
        let ja = render_with(&trial_purged(), Locale::Ja);
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

        let en = render_with(&trial_purged(), Locale::En);
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
        let ctx = TrialPurged {
            user_name: "",
            customer_name: "",
            ..trial_purged()
        };
        let ja = render_with(&ctx, Locale::Ja);
        assert_well_formed(&ja, "ja without names");
        assert!(ja.body.starts_with("お客様\n\n"));
        assert!(ja.body.contains("トライアル組織\n（お客様ID：CUST-0042）"));
        assert!(!ja.body.contains("「"));
        assert!(!ja.body.contains("お客様名"));
        let en = render_with(&ctx, Locale::En);
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
        let ja = render_with(&registration(), Locale::Ja);
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

        let en = render_with(&registration(), Locale::En);
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

        let ctx = Registration {
            valid_hours: 1,
            ..registration()
        };
        let en = render_with(&ctx, Locale::En);
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
        let ja = render_with(&registration_completed(), Locale::Ja);
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
        let en = render_with(&registration_completed(), Locale::En);
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

    fn registration_completed() -> RegistrationCompleted<'static> {
        RegistrationCompleted {
            email: EMAIL,
            organisation: "Cust KK",
            services: &["AWS", "Google Cloud"],
        }
    }

    fn registration_rejected() -> RegistrationRejected<'static> {
        RegistrationRejected {
            email: EMAIL,
            reason: "credit check",
        }
    }

    fn registration_refused(reason: &'static str) -> RegistrationRefused<'static> {
        RegistrationRefused {
            email: EMAIL,
            reason,
        }
    }

    #[test]
    fn registration_refused_says_why_in_both_locales() {
        let ja = render_with(&registration_refused("in_progress"), Locale::Ja);
        assert_eq!(
            ja.subject,
            "[C-Chorus] リセールサービス申し込み手続き未完了のご案内"
        );
        assert!(ja.body.contains("手続き中のお申し込みがすでにございます"));
        let ja = render_with(&registration_refused("domain_refused"), Locale::Ja);
        assert!(
            ja.body
                .contains("ドメインでは、お申し込みをお受けできません")
        );
        let en = render_with(&registration_refused("in_progress"), Locale::En);
        assert_eq!(
            en.subject,
            "[C-Chorus] Your resale service application could not be completed"
        );
        assert!(en.body.contains("already has an application in progress"));
        let en = render_with(&registration_refused("domain_refused"), Locale::En);
        assert!(en.body.contains("from this email address's domain"));
        for locale in Locale::ALL {
            let unknown = Content::of(&registration_refused("other"));
            let unknown = Renderer::new("C-Chorus").render(&unknown, locale);
            assert!(unknown.is_err(), "{locale}: an unknown reason fails");
        }
    }

    #[test]
    fn registration_rejected_carries_the_reason_in_both_locales() {
        let ctx = RegistrationRejected {
            email: EMAIL,
            reason: "The credit check failed.",
        };
        let ja = render_with(&ctx, Locale::Ja);
        assert_eq!(ja.subject, "[C-Chorus] お申し込み審査結果のお知らせ");
        assert!(ja.body.contains("■理由\nThe credit check failed.\n"));
        let en = render_with(&ctx, Locale::En);
        assert_eq!(
            en.subject,
            "[C-Chorus] The result of the review of your application"
        );
        assert!(en.body.contains("Reason\n  The credit check failed.\n"));
    }

    #[test]
    fn service_started_both_locales() {
        let ja = render_with(&service_started(), Locale::Ja);
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
        let en = render_with(&service_started(), Locale::En);
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

        let ctx = ServiceStarted {
            services: &["C-Chorus Chat"],
            ..service_started()
        };
        let en = render_with(&ctx, Locale::En);
        assert!(en.body.contains("Available service\n  1. C-Chorus Chat\n"));
        assert!(!en.body.contains("2. "));

        // No list: the mail still says the service started, without a
        // heading over nothing.
        let ctx = ServiceStarted {
            services: &[],
            ..service_started()
        };
        let ja = render_with(&ctx, Locale::Ja);
        assert_well_formed(&ja, "ja without services");
        assert!(
            ja.body
                .contains("C-Chorusをご利用いただけるようになりました")
        );
        assert!(!ja.body.contains("■ご利用いただけるサービス"));
        assert!(!ja.body.contains("1. "));
        let en = render_with(&ctx, Locale::En);
        assert_well_formed(&en, "en without services");
        assert!(en.body.contains("is now available to you."));
        assert!(!en.body.contains("Available service"));
        assert!(!en.body.contains("listed below"));
    }

    /// Renders `content`, then each context with one of its fields left
    /// out, which must fail: the template reads every field, whichever
    /// branch its values select.
    fn assert_every_field_required(content: &Content) {
        let kind = content.template();
        let context = json_of(content.context());
        for locale in Locale::ALL {
            assert!(
                Renderer::new("C-Chorus").render(content, locale).is_ok(),
                "{kind}.{locale}"
            );
            for field in context.as_object().unwrap().keys() {
                let mut without = context.clone();
                without.as_object_mut().unwrap().remove(field);
                let err = render_json(kind, locale, &without).unwrap_err();
                assert!(
                    matches!(err, RenderError::Template { .. }),
                    "{kind}.{locale} without {field}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn trial_and_registration_kinds_require_every_field() {
        let mut cases: Vec<Content> = Vec::new();
        for kind in TRIAL_KINDS {
            for role in TRIAL_ROLES {
                cases.push(trial_mail(kind, trial_notice(role)));
                // An empty name selects other branches; the keys stay required.
                let notice = TrialNotice {
                    customer_name: "",
                    ..trial_notice(role)
                };
                cases.push(trial_mail(kind, notice));
            }
        }
        cases.push(Content::of(&trial_purged()));
        cases.push(Content::of(&trial_purchase_request()));
        cases.push(Content::of(&TrialPurged {
            user_name: "",
            customer_name: "",
            ..trial_purged()
        }));
        cases.push(Content::of(&registration()));
        cases.push(Content::of(&registration_completed()));
        for reason in ["in_progress", "domain_refused"] {
            cases.push(Content::of(&registration_refused(reason)));
        }
        cases.push(Content::of(&registration_rejected()));
        cases.push(Content::of(&service_started()));
        cases.push(Content::of(&ServiceStarted {
            services: &[],
            ..service_started()
        }));
        for content in &cases {
            assert_every_field_required(content);
        }
    }

    #[test]
    fn service_name_is_configurable_and_wins_over_context() {
        let r = Renderer::new("Backup Store");
        let mut ctx = json_of(&vm_count_changed());
        ctx["service_name"] = json!("Spoofed");
        let ctx = Value::from_serialize(&ctx);
        let mail = r
            .render_context("vm_count_changed", Locale::En, &ctx)
            .unwrap();
        assert!(mail.subject.starts_with("[Backup Store] "));
        assert!(mail.body.contains("Backup Store"));
        assert!(!mail.body.contains("Spoofed"));
        assert!(!mail.subject.contains("Spoofed"));
    }

    #[test]
    fn missing_variable_is_an_error() {
        for locale in Locale::ALL {
            let mut ctx = json_of(&LicenseIssued(issued_keys(true)));
            ctx.as_object_mut().unwrap().remove("vendor_order_id");
            let err = render_json("license_issued", locale, &ctx).unwrap_err();
            assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
            assert!(err.to_string().contains("undefined"), "{err}");

            // A missing field inside a list item fails as well.
            let mut ctx = json_of(&LicenseIssued(issued_keys(true)));
            ctx["licenses"][1]
                .as_object_mut()
                .unwrap()
                .remove("vm_count");
            assert!(render_json("license_issued", locale, &ctx).is_err());

            let mut ctx = json_of(&vm_count_changed());
            ctx.as_object_mut().unwrap().remove("previous_vm_count");
            assert!(render_json("vm_count_changed", locale, &ctx).is_err());
        }
        // Every field of these kinds is required, whichever branch the
        // flags and roles select.
        let mut cases: Vec<Content> = Vec::new();
        for flag in [false, true] {
            cases.push(Content::of(&keys_cancelled(flag)));
            cases.push(Content::of(&order_revoked(flag)));
        }
        for mail in TRANSFER_MAILS {
            for role in TransferRole::ALL {
                cases.push(transfer_mail(mail, transfer_notice(role)));
            }
        }
        for content in &cases {
            assert_every_field_required(content);
        }
    }

    #[test]
    fn render_error_does_not_leak_context_values() {
        let mut ctx = json_of(&LicenseIssued(issued_keys(true)));
        ctx.as_object_mut().unwrap().remove("contact_name");
        let err = render_json("license_issued", Locale::En, &ctx).unwrap_err();
        let shown = format!("{err} {err:?} {err:#}");
        assert!(!shown.contains("AAAA-BBBB"), "{shown}");
    }

    #[test]
    fn unknown_template_and_bad_context() {
        assert!(matches!(
            render_json("no_such_kind", Locale::Ja, &json!({})),
            Err(RenderError::UnknownTemplate { .. })
        ));
        assert!(matches!(
            render_json("license_issued", Locale::Ja, &json!(null)),
            Err(RenderError::ContextNotObject { .. })
        ));
    }

    #[test]
    fn newline_in_a_value_cannot_break_the_subject() {
        let r = Renderer::new("C-Chorus\r\nBcc: x@example.com");
        let mail = r
            .render(&Content::of(&vm_count_changed()), Locale::En)
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
