//! Mail templates: owns the wording of every mail and the rendering of a
//! mail kind + locale + JSON context into a subject and a plain-text body.
//!
//! Each kind has one file per locale, `templates/<kind>.<locale>.txt`, compiled
//! into the binary with `include_str!` so a deployed worker never depends on
//! files next to it. A file's first line is `subject: ...`, then one blank line,
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
use serde::{Deserialize, Serialize};

/// Language of a mail. Serialized as `"ja"` / `"en"`, the same strings
/// [`Locale::as_str`] returns and [`Locale::parse`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Ja,
    En,
}

impl Locale {
    /// Every supported locale, e.g. for tests that must cover all of them.
    pub const ALL: [Locale; 2] = [Locale::Ja, Locale::En];

    /// Parses a language tag as stored on an order (`"ja"`, `"ja-JP"`,
    /// `"EN_us"`, ...). Only the primary language subtag matters: we have one
    /// text per language, not per region. Returns `None` for anything else so
    /// the caller can fall back to its configured default locale.
    pub fn parse(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("ja") {
            Some(Locale::Ja)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else {
            None
        }
    }

    /// [`Locale::parse`] with a fallback: the recipient's locale when we have
    /// one we support, else the configured default.
    pub fn resolve(tag: Option<&str>, default: Locale) -> Locale {
        tag.and_then(Locale::parse).unwrap_or(default)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::Ja => "ja",
            Locale::En => "en",
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
            source: include_str!(concat!("templates/", $kind, ".", $locale, ".txt")),
        }
    };
}

/// Every kind in every locale. Adding a kind means adding one line per locale
/// here; the tests check that each kind exists in all of [`Locale::ALL`].
const TEMPLATES: &[TemplateFile] = &[
    template_file!("license_issued", "ja", Locale::Ja),
    template_file!("license_issued", "en", Locale::En),
    template_file!("license_added", "ja", Locale::Ja),
    template_file!("license_added", "en", Locale::En),
    template_file!("vm_count_changed", "ja", Locale::Ja),
    template_file!("vm_count_changed", "en", Locale::En),
    template_file!("keys_cancelled", "ja", Locale::Ja),
    template_file!("keys_cancelled", "en", Locale::En),
    template_file!("order_revoked", "ja", Locale::Ja),
    template_file!("order_revoked", "en", Locale::En),
    template_file!("transfer_submitted", "ja", Locale::Ja),
    template_file!("transfer_submitted", "en", Locale::En),
    template_file!("transfer_completed", "ja", Locale::Ja),
    template_file!("transfer_completed", "en", Locale::En),
    template_file!("transfer_rejected", "ja", Locale::Ja),
    template_file!("transfer_rejected", "en", Locale::En),
    template_file!("transfer_failed", "ja", Locale::Ja),
    template_file!("transfer_failed", "en", Locale::En),
];

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
                .template_from_named_str(name, src)
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

    fn render_transfer(kind: &str, locale: Locale, role: &str) -> RenderedMail {
        Renderer::new("C-Chorus")
            .render(kind, locale, &transfer_context(kind, role))
            .unwrap()
    }

    fn context_for(kind: &str) -> serde_json::Value {
        match kind {
            "vm_count_changed" => vm_count_context(),
            "keys_cancelled" => keys_cancelled_context(false),
            "order_revoked" => order_revoked_context(false),
            kind if kind.starts_with("transfer_") => transfer_context(kind, "customer"),
            _ => license_context(true),
        }
    }

    #[test]
    fn every_kind_exists_in_every_locale() {
        let kinds: Vec<_> = kinds().collect();
        assert_eq!(
            kinds,
            [
                "license_issued",
                "license_added",
                "vm_count_changed",
                "keys_cancelled",
                "order_revoked",
                "transfer_submitted",
                "transfer_completed",
                "transfer_rejected",
                "transfer_failed"
            ]
        );
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
                if kind.starts_with("transfer_") {
                    // A transfer is about subscriptions, not about an order.
                    assert!(mail.body.contains(TRANSFER_ID), "{kind}.{locale}");
                    assert!(mail.body.contains("SUB-0001"), "{kind}.{locale}");
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
        assert_eq!(
            mail.subject,
            "[C-Chorus] C-Chorusライセンスキー発行のお知らせ"
        );
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
            "[C-Chorus] Your C-Chorus license keys have been issued"
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
        assert_eq!(
            ja.subject,
            "[C-Chorus] C-Chorus追加ライセンスキー発行のお知らせ"
        );
        assert!(ja.body.contains("追加"));
        assert!(ja.body.contains("AAAA-BBBB-CCCC-0002"));
        let en = r
            .render("license_added", Locale::En, &license_context(true))
            .unwrap();
        assert_eq!(
            en.subject,
            "[C-Chorus] Additional C-Chorus license keys have been issued"
        );
        assert!(en.body.contains("additional"));
    }

    #[test]
    fn vm_count_changed_both_locales() {
        let r = Renderer::new("C-Chorus");
        let ja = r
            .render("vm_count_changed", Locale::Ja, &vm_count_context())
            .unwrap();
        assert_eq!(ja.subject, "[C-Chorus] C-Chorus対象VM数変更完了のお知らせ");
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
        assert_eq!(
            mail.subject,
            "[C-Chorus] C-Chorusライセンスキー解約完了のお知らせ"
        );
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
            "[C-Chorus] Your C-Chorus license key has been cancelled"
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
            "[C-Chorus] Your C-Chorus license keys have been cancelled"
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
        assert_eq!(ja.subject, "[C-Chorus] C-Chorusご注文終了のお知らせ");
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
        assert_eq!(en.subject, "[C-Chorus] Your C-Chorus order has been closed");
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
            "[C-Chorus] C-Chorusご注文終了のお知らせ（お客様ID：CUST-0042）"
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
            "[C-Chorus] Your customer's C-Chorus order has been closed (customer ID CUST-0042)"
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
            "[C-Chorus] C-Chorusサブスクリプション移管受付のお知らせ"
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
            "[C-Chorus] C-Chorusサブスクリプション移管受付のお知らせ（お客様ID：CUST-0042）"
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
            "[C-Chorus] Your C-Chorus subscription transfer request has been received"
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
            "[C-Chorus] C-Chorusサブスクリプション移管完了のお知らせ"
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
            "[C-Chorus] C-Chorusサブスクリプション移管完了のお知らせ（お客様ID：CUST-0042）"
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
            "[C-Chorus] Your C-Chorus subscription transfer is complete"
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
                    .starts_with("[C-Chorus] C-Chorusサブスクリプション移管不成立のお知らせ"),
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
            "[C-Chorus] C-Chorusサブスクリプション移管不成立のお知らせ"
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
                    .starts_with("[C-Chorus] C-Chorusサブスクリプション移管処理エラーのお知らせ"),
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
            "[C-Chorus] C-Chorusサブスクリプション移管処理エラーのお知らせ"
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
