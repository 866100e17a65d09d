//! What each change asks of the locked order's keys, checked before it is
//! accepted: the VM count of added keys, the hypervisor key whose count
//! rises, the issued keys a cancellation names.

use uuid::Uuid;

use super::ChangeError;
use crate::fields::{FieldError, Invalid};
use crate::licensing::key::LicenseKey;
use crate::store::Tx;
use crate::store::licenses::{self, LicenseRow, LicenseStatus, OrderRow};

/// The VM count of each key an addition writes: hypervisor keys carry
/// the one asked for, or else the order's first key's; other keys carry
/// none and may not be given one.
pub async fn added_vm_count(
    tx: &mut Tx<'_>,
    order: &OrderRow,
    asked: Option<i32>,
) -> Result<Option<i32>, ChangeError> {
    let vm_count = match (order.usage.as_str(), asked) {
        ("hypervisor", Some(count)) => Some(count),
        ("hypervisor", None) => licenses::list_licenses(&mut **tx, order.id)
            .await?
            .first()
            .and_then(|l| l.vm_count),
        (_, None) => None,
        (_, Some(_)) => {
            return Err(
                Invalid::field("vm_count", "only hypervisor licenses carry a VM count").into(),
            );
        }
    };
    if let Some(count) = vm_count
        && !(1..=100_000).contains(&count)
    {
        return Err(Invalid::field("vm_count", "must be between 1 and 100000").into());
    }
    Ok(vm_count)
}

/// The issued hypervisor key whose VM count rises to `vm_count`: the one
/// named, or the order's only one; the new count must be higher.
pub async fn raised_key(
    tx: &mut Tx<'_>,
    order: &OrderRow,
    license_id: Option<Uuid>,
    vm_count: i32,
) -> Result<Uuid, ChangeError> {
    if order.usage != "hypervisor" {
        return Err(ChangeError::NotHypervisor {
            usage: order.usage.clone(),
        });
    }
    let keys: Vec<_> = licenses::list_licenses(&mut **tx, order.id)
        .await?
        .into_iter()
        .filter(|l| l.status == LicenseStatus::Issued)
        .collect();
    let license = match license_id {
        Some(license_id) => keys
            .iter()
            .find(|l| l.id == license_id)
            .ok_or(ChangeError::UnknownLicense(license_id))?,
        None if keys.len() == 1 => &keys[0],
        None => {
            let message = format!(
                "the order has {} issued hypervisor keys; name one",
                keys.len()
            );
            return Err(Invalid::field("license_id", message).into());
        }
    };
    let current = license.vm_count.unwrap_or(0);
    if vm_count <= current {
        return Err(ChangeError::VmCountNotHigher { current });
    }
    Ok(license.id)
}

/// The keys a cancellation names, in exactly one way.
pub enum Named {
    /// Every issued key (and so the order).
    All,
    Ids(Vec<Uuid>),
    Keys(Vec<LicenseKey>),
}

/// The ids of the issued keys `named` names on the order, each once.
pub async fn cancelled_keys(
    tx: &mut Tx<'_>,
    order: &OrderRow,
    named: &Named,
) -> Result<Vec<Uuid>, ChangeError> {
    let licenses = licenses::list_licenses(&mut **tx, order.id).await?;
    resolve(named, &licenses)
}

/// The issued licenses named, or every one that is not, by its field.
fn resolve(named: &Named, licenses: &[LicenseRow]) -> Result<Vec<Uuid>, ChangeError> {
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut take = |field: String, label: String, found: Option<&LicenseRow>| match found {
        None => errors.push(FieldError {
            field,
            message: format!("{label} is not a key of this order"),
        }),
        Some(l) if l.status == LicenseStatus::Revoked => errors.push(FieldError {
            field,
            message: format!("{label} is already revoked"),
        }),
        Some(l) if l.status != LicenseStatus::Issued => errors.push(FieldError {
            field,
            message: format!("{label} is not issued yet"),
        }),
        Some(l) => {
            if !ids.contains(&l.id) {
                ids.push(l.id);
            }
        }
    };
    match named {
        Named::All => {
            for license in licenses
                .iter()
                .filter(|l| l.status == LicenseStatus::Issued)
            {
                take(String::new(), String::new(), Some(license));
            }
        }
        Named::Ids(wanted) => {
            for (i, id) in wanted.iter().enumerate() {
                take(
                    format!("license_ids[{i}]"),
                    format!("license {id}"),
                    licenses.iter().find(|l| l.id == *id),
                );
            }
        }
        Named::Keys(wanted) => {
            for (i, key) in wanted.iter().enumerate() {
                let found = licenses
                    .iter()
                    .find(|l| l.key.as_deref() == Some(key.as_str()));
                // The error names the key redacted, never whole.
                take(
                    format!("keys[{i}]"),
                    format!("key {}", key.redacted()),
                    found,
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(ChangeError::NotCancellable(errors));
    }
    if ids.is_empty() {
        return Err(ChangeError::NoIssuedKey);
    }
    Ok(ids)
}
