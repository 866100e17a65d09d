//! The mails of a license order: keys issued or added, a VM count raised,
//! keys cancelled, the order closed.

use serde::Serialize;
use uuid::Uuid;

use super::MailContext;

/// What both key mails list: a request's keys, just issued.
#[derive(Serialize)]
pub struct IssuedKeys<'a> {
    pub order_id: Uuid,
    pub vendor_order_id: &'a str,
    pub customer_id: &'a str,
    pub contact_name: &'a str,
    /// The order's usage (`virtual`, `bare_metal`, `hypervisor`), shown
    /// through the `usage_label` filter.
    pub usage: &'a str,
    /// All of the request's keys.
    pub licenses: Vec<IssuedKey<'a>>,
    /// Issued by the request's SLA deadline; when not, the mail apologises.
    pub sla_met: bool,
}

#[derive(Serialize)]
pub struct IssuedKey<'a> {
    /// Set for every key the mail lists: they are issued before it is
    /// written (a `None` would read "none").
    pub key: Option<&'a str>,
    pub usage: &'a str,
    /// Only hypervisor keys cover a number of VMs.
    pub vm_count: Option<i32>,
}

/// `license_issued`: a new order's keys.
#[derive(Serialize)]
#[serde(transparent)]
pub struct LicenseIssued<'a>(pub IssuedKeys<'a>);

impl MailContext for LicenseIssued<'_> {
    const TEMPLATE: &'static str = "license_issued";
}

/// `license_added`: keys added to an active order.
#[derive(Serialize)]
#[serde(transparent)]
pub struct LicenseAdded<'a>(pub IssuedKeys<'a>);

impl MailContext for LicenseAdded<'_> {
    const TEMPLATE: &'static str = "license_added";
}

/// `vm_count_changed`: a hypervisor key covers more VMs; its new
/// certificate is attached.
#[derive(Serialize)]
pub struct VmCountChanged<'a> {
    pub order_id: Uuid,
    pub vendor_order_id: &'a str,
    pub contact_name: &'a str,
    pub key: &'a str,
    pub previous_vm_count: i32,
    pub vm_count: i32,
}

impl MailContext for VmCountChanged<'_> {
    const TEMPLATE: &'static str = "vm_count_changed";
}

/// `keys_cancelled`: keys revoked at the customer's request.
#[derive(Serialize)]
pub struct KeysCancelled<'a> {
    pub order_id: Uuid,
    /// Set on every order with issued keys (a `None` would read "none").
    pub vendor_order_id: Option<&'a str>,
    pub contact_name: &'a str,
    /// The keys cancelled now.
    pub keys: &'a [&'a str],
    /// The order's keys still live after this cancellation.
    pub remaining: i64,
    /// No key is left, so the order itself is revoked next.
    pub order_revoked_next: bool,
}

impl MailContext for KeysCancelled<'_> {
    const TEMPLATE: &'static str = "keys_cancelled";
}

/// `order_revoked`: the order is closed and its vendor order id revoked;
/// to the order's contact and to its partner's admin.
#[derive(Serialize)]
pub struct OrderRevoked<'a> {
    pub order_id: Uuid,
    pub vendor_order_id: &'a str,
    pub customer_id: &'a str,
    /// The contact's name, or the partner's id for the partner's admin.
    pub recipient_name: &'a str,
    /// Written to the partner's admin, about its customer's order.
    pub for_partner: bool,
}

impl MailContext for OrderRevoked<'_> {
    const TEMPLATE: &'static str = "order_revoked";
}
