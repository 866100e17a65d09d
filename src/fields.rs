//! Field rules: the fields a request or an application breaks, collected
//! so that the caller hears about all of them at once, and the shape
//! checks several of them share (a mail address, an identifier). A leaf
//! next to `locale`, so that a domain module can state its rules without
//! depending on the intake; the intake answers [`Invalid`] with a 400
//! naming each field.

use serde::Serialize;

use crate::locale::Locale;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `contact.email`.
    pub field: String,
    pub message: String,
}

/// The fields that broke a rule, each with what the rule wants.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the request has invalid fields")]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    /// One field broke a rule.
    pub fn field(field: &str, message: impl Into<String>) -> Invalid {
        Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// Collects field errors so the caller hears about all of them at once.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// A locale, when one is given, is one fulfil writes mail in.
    pub fn locale(&mut self, field: &str, locale: Option<&str>) {
        if let Some(locale) = locale {
            let known = Locale::parse(locale).is_some();
            self.check(known, field, "must be ja or en");
        }
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError {
                field: field.to_owned(),
                message: message.into(),
            });
        }
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

pub fn is_plausible_email(address: &str) -> bool {
    address.len() <= 254 && address.parse::<lettre::Address>().is_ok()
}

pub fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}
