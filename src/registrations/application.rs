//! The sign-up application (SPEC §1.4, second round): what completing a
//! registration link carries, and the rules it must meet. Each rule names
//! the field it refuses, all at once; nothing here touches the database,
//! so a refused application uses up nothing.

use serde::{Deserialize, Serialize};

use crate::fields::{Checks, Invalid, is_plausible_email};

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub services: CloudServices,
    /// The applying organisation, for the credit check.
    pub organisation: Organisation,
    /// The contact person: becomes the customer's first user, with the role
    /// `contractor`, under the registration's mail address.
    pub contact: ContactPerson,
    pub billing: Billing,
    pub emergency: Emergency,
    pub consents: Consents,
}

/// At least one of the two clouds.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudServices {
    pub aws: Option<Aws>,
    pub google_cloud: Option<GoogleCloud>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    pub account: AwsAccount,
    pub plan: AwsPlan,
}

/// A new AWS account, or an existing one transferred to the resale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AwsAccount {
    New,
    Transfer,
}

/// `fixed_ticket` cannot be combined with Google Cloud; `direct_contract`
/// takes only a `transfer`red account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AwsPlan {
    Standard,
    FixedTicket,
    DirectContract,
}

/// Google Cloud is always a new billing account.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleCloud {
    /// The Google account that administers it.
    #[schema(format = Email, max_length = 254)]
    pub admin_email: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Japan's 13-digit corporate number (法人番号), when it has one.
    #[schema(pattern = "^[0-9]{13}$")]
    pub corporate_number: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub address: String,
    #[schema(pattern = r"^\+?[0-9][0-9 -]{5,19}$")]
    pub phone: String,
}

/// The contact person; the mail address is the registration's.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPerson {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(max_length = 200)]
    pub department: Option<String>,
    #[schema(pattern = r"^\+?[0-9][0-9 -]{5,19}$")]
    pub phone: String,
}

/// Another person: a billing or emergency contact.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(pattern = r"^\+?[0-9][0-9 -]{5,19}$")]
    pub phone: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Billing {
    /// `true`: invoices go to the contact person, and `contact` is absent.
    pub same_as_contact: bool,
    pub contact: Option<Person>,
    /// Whether AWS and Google Cloud are invoiced separately: required when
    /// both are chosen, absent otherwise.
    pub split_invoices: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Emergency {
    /// `true`: the contact person is also the emergency contact.
    pub same_as_contact: bool,
    pub contact: Option<Person>,
}

/// Both must be `true`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consents {
    pub terms: bool,
    pub privacy: bool,
}

fn is_phone(phone: &str) -> bool {
    let rest = phone.strip_prefix('+').unwrap_or(phone);
    (6..=20).contains(&rest.len())
        && rest.starts_with(|c: char| c.is_ascii_digit())
        && rest
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

fn is_text(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && text.chars().count() <= max
}

fn check_person(checks: &mut Checks, field: &str, person: &Person) {
    checks.check(
        is_text(&person.name, 200),
        &format!("{field}.name"),
        "must be 1 to 200 characters",
    );
    checks.check(
        is_plausible_email(&person.email),
        &format!("{field}.email"),
        "must be a mail address",
    );
    checks.check(
        is_phone(&person.phone),
        &format!("{field}.phone"),
        "must be a phone number: digits, spaces or '-', 6 to 20, optional leading '+'",
    );
}

/// `contact` is there exactly when `same_as_contact` is false.
fn check_other_person(checks: &mut Checks, field: &str, same: bool, contact: Option<&Person>) {
    match (same, contact) {
        (false, None) => checks.check(
            false,
            &format!("{field}.contact"),
            "is required unless same_as_contact is true",
        ),
        (true, Some(_)) => checks.check(
            false,
            &format!("{field}.contact"),
            "must be absent when same_as_contact is true",
        ),
        (false, Some(person)) => check_person(checks, &format!("{field}.contact"), person),
        (true, None) => {}
    }
}

impl Application {
    /// Every rule of SPEC §1.4, each naming its field.
    pub fn check(&self) -> Result<(), Invalid> {
        let mut checks = Checks::default();
        let services = &self.services;
        checks.check(
            services.aws.is_some() || services.google_cloud.is_some(),
            "services",
            "must choose aws, google_cloud or both",
        );
        if let Some(aws) = &services.aws {
            checks.check(
                !(aws.plan == AwsPlan::DirectContract && aws.account == AwsAccount::New),
                "services.aws.account",
                "the direct_contract plan takes only an account transfer",
            );
            checks.check(
                !(aws.plan == AwsPlan::FixedTicket && services.google_cloud.is_some()),
                "services.aws.plan",
                "the fixed_ticket plan cannot be combined with google_cloud",
            );
        }
        if let Some(google) = &services.google_cloud {
            checks.check(
                is_plausible_email(&google.admin_email),
                "services.google_cloud.admin_email",
                "must be a mail address",
            );
        }
        let organisation = &self.organisation;
        checks.check(
            is_text(&organisation.name, 200),
            "organisation.name",
            "must be 1 to 200 characters",
        );
        checks.check(
            is_text(&organisation.address, 500),
            "organisation.address",
            "must be 1 to 500 characters",
        );
        checks.check(
            is_phone(&organisation.phone),
            "organisation.phone",
            "must be a phone number: digits, spaces or '-', 6 to 20, optional leading '+'",
        );
        if let Some(number) = &organisation.corporate_number {
            checks.check(
                number.len() == 13 && number.bytes().all(|b| b.is_ascii_digit()),
                "organisation.corporate_number",
                "must be 13 digits",
            );
        }
        let contact = &self.contact;
        checks.check(
            is_text(&contact.name, 200),
            "contact.name",
            "must be 1 to 200 characters",
        );
        checks.check(
            contact
                .department
                .as_deref()
                .is_none_or(|d| d.chars().count() <= 200),
            "contact.department",
            "must be at most 200 characters",
        );
        checks.check(
            is_phone(&contact.phone),
            "contact.phone",
            "must be a phone number: digits, spaces or '-', 6 to 20, optional leading '+'",
        );
        let billing = &self.billing;
        check_other_person(
            &mut checks,
            "billing",
            billing.same_as_contact,
            billing.contact.as_ref(),
        );
        let both = services.aws.is_some() && services.google_cloud.is_some();
        match (both, billing.split_invoices) {
            (true, None) => checks.check(
                false,
                "billing.split_invoices",
                "is required when both aws and google_cloud are chosen",
            ),
            (false, Some(_)) => checks.check(
                false,
                "billing.split_invoices",
                "applies only when both aws and google_cloud are chosen",
            ),
            _ => {}
        }
        let emergency = &self.emergency;
        check_other_person(
            &mut checks,
            "emergency",
            emergency.same_as_contact,
            emergency.contact.as_ref(),
        );
        checks.check(
            self.consents.terms,
            "consents.terms",
            "the terms of service must be accepted",
        );
        checks.check(
            self.consents.privacy,
            "consents.privacy",
            "the privacy policy must be accepted",
        );
        checks.finish()
    }

    /// The services as the start mail names them.
    pub fn service_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.services.aws.is_some() {
            names.push("AWS");
        }
        if self.services.google_cloud.is_some() {
            names.push("Google Cloud");
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub fn valid() -> Value {
        json!({
            "services": { "aws": { "account": "new", "plan": "standard" } },
            "organisation": { "name": "Cust KK", "address": "Tokyo", "phone": "03-1234-5678" },
            "contact": { "name": "Hanako Sato", "phone": "090-1234-5678" },
            "billing": { "same_as_contact": true },
            "emergency": { "same_as_contact": true },
            "consents": { "terms": true, "privacy": true }
        })
    }

    fn refused(body: Value) -> Vec<String> {
        let application: Application = serde_json::from_value(body).unwrap();
        match application.check() {
            Err(Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_complete_application_passes() {
        let application: Application = serde_json::from_value(valid()).unwrap();
        application.check().unwrap();
        assert_eq!(application.service_names(), ["AWS"]);
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut body = valid();
        body["services"] = json!({});
        assert_eq!(refused(body), ["services"]);

        let mut body = valid();
        body["services"]["aws"] = json!({ "account": "new", "plan": "direct_contract" });
        assert_eq!(refused(body), ["services.aws.account"]);

        let mut body = valid();
        body["services"]["aws"]["plan"] = json!("fixed_ticket");
        body["services"]["google_cloud"] = json!({ "admin_email": "admin@cust.example" });
        body["billing"]["split_invoices"] = json!(false);
        assert_eq!(refused(body), ["services.aws.plan"]);

        let mut body = valid();
        body["services"]["google_cloud"] = json!({ "admin_email": "admin@cust.example" });
        assert_eq!(refused(body), ["billing.split_invoices"]);

        let mut body = valid();
        body["billing"] = json!({ "same_as_contact": false });
        body["emergency"] = json!({ "same_as_contact": true,
            "contact": { "name": "E", "email": "e@cust.example", "phone": "0312345678" } });
        assert_eq!(refused(body), ["billing.contact", "emergency.contact"]);

        let mut body = valid();
        body["consents"] = json!({ "terms": false, "privacy": false });
        assert_eq!(refused(body), ["consents.terms", "consents.privacy"]);

        let mut body = valid();
        body["organisation"]["corporate_number"] = json!("12");
        body["contact"]["phone"] = json!("call me");
        assert_eq!(
            refused(body),
            ["organisation.corporate_number", "contact.phone"]
        );
    }

    #[test]
    fn a_direct_contract_transfer_and_both_clouds_with_split_invoices_pass() {
        let mut body = valid();
        body["services"]["aws"] = json!({ "account": "transfer", "plan": "direct_contract" });
        body["services"]["google_cloud"] = json!({ "admin_email": "admin@cust.example" });
        body["billing"] = json!({ "same_as_contact": false, "split_invoices": true,
            "contact": { "name": "B", "email": "b@cust.example", "phone": "+81 3 1234 5678" } });
        let application: Application = serde_json::from_value(body).unwrap();
        application.check().unwrap();
        assert_eq!(application.service_names(), ["AWS", "Google Cloud"]);
    }
}
