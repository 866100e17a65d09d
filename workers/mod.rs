//! The workers: one module per job kind, each declaring its args
//! (`JobArgs`) and its `Worker`, and the one registry of them. Adding a
//! kind is its module plus its line in `REGISTRY` (README, "Adding a job
//! kind"); the topology, the CLI, metrics, the dashboard and replays all
//! read the kinds from here.

pub mod license_additional;
pub mod license_new;
pub mod license_order_revoke;
pub mod license_revoke;
pub mod license_vm_count;
pub mod mail_send;
pub mod number_release;
pub mod role_cleanup;
pub mod transfer_process;
pub mod trial_notices;
pub mod trial_purge;

use crate::job::{JobArgs, JobKind};
use crate::runtime::{JobHandler, Worker};

/// One job kind this build runs: its name and its handler.
#[derive(Clone, Copy)]
pub struct Registration {
    pub kind: JobKind,
    pub handler: &'static dyn JobHandler,
}

impl Registration {
    /// The kind comes from the worker's args type, so a registration
    /// cannot pair a kind with another kind's worker.
    pub const fn of<W: Worker>(worker: &'static W) -> Registration {
        Registration {
            kind: <W::Args as JobArgs>::KIND,
            handler: worker,
        }
    }
}

/// Every job kind, in the order they are listed to people (CLI help,
/// `fulfil queues`, the dashboard). Each gets its own durable quorum
/// queue named after the kind.
pub const REGISTRY: &[Registration] = &[
    Registration::of(&license_new::LicenseNew),
    Registration::of(&license_additional::LicenseAdditional),
    Registration::of(&license_vm_count::LicenseVmCount),
    Registration::of(&license_revoke::LicenseRevoke),
    Registration::of(&license_order_revoke::LicenseOrderRevoke),
    Registration::of(&transfer_process::TransferProcess),
    Registration::of(&role_cleanup::RoleCleanup),
    Registration::of(&trial_notices::TrialNotices),
    Registration::of(&trial_purge::TrialPurge),
    Registration::of(&number_release::NumberRelease),
    Registration::of(&mail_send::MailSend),
];

/// The registry's kinds, worked out at compile time so that
/// `JobKind::ALL` stays a constant; a kind registered twice fails the
/// build.
const KINDS: [JobKind; REGISTRY.len()] = {
    let mut kinds = [REGISTRY[0].kind; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        let mut j = 0;
        while j < i {
            assert!(
                !same_name(REGISTRY[i].kind.as_str(), REGISTRY[j].kind.as_str()),
                "a job kind is registered twice"
            );
            j += 1;
        }
        kinds[i] = REGISTRY[i].kind;
        i += 1;
    }
    kinds
};

const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The kind type's view of the registry lives here, so that `job` (the
// wire vocabulary) does not depend on the workers.
impl JobKind {
    /// Every registered kind, in registry order.
    pub const ALL: &'static [JobKind] = &KINDS;

    /// The registered kind of this name, if there is one.
    pub fn parse(name: &str) -> Option<JobKind> {
        registration(name).map(|r| r.kind)
    }
}

/// The registration of the kind of this name.
pub fn registration(name: &str) -> Option<&'static Registration> {
    REGISTRY.iter().find(|r| r.kind.as_str() == name)
}

/// The handler of a kind. The kinds callers hold come from `ALL`, `parse`
/// or a registered args type, so a miss is a programming error: an args
/// type whose worker was left out of `REGISTRY`.
pub fn handler(kind: JobKind) -> &'static dyn JobHandler {
    registration(kind.as_str())
        .unwrap_or_else(|| panic!("job kind {kind} has no registered worker"))
        .handler
}

/// The kinds as people read them in help and errors: `a, b, c`.
pub fn kind_list() -> String {
    let names: Vec<&str> = REGISTRY.iter().map(|r| r.kind.as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::licensing::orders::LicenseJob;
    use crate::trials::job::TrialJob;

    #[test]
    fn the_registry_keeps_the_wire_names_and_their_order() {
        // Kinds may be added after these; these are on the wire already.
        let names: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names[..11],
            [
                "license.new",
                "license.additional",
                "license.vm_count",
                "license.revoke",
                "license.order_revoke",
                "transfer.process",
                "role.cleanup",
                "trial.notices",
                "trial.purge",
                "trial.number_release",
                "mail.send",
            ]
        );
    }

    #[test]
    fn each_registered_handler_serves_its_own_kind() {
        for registration in REGISTRY {
            assert_eq!(registration.handler.kind(), registration.kind);
            assert_eq!(
                JobKind::parse(registration.kind.as_str()),
                Some(registration.kind)
            );
        }
        assert_eq!(JobKind::parse("license.nope"), None);
    }

    #[test]
    fn shared_args_serialise_to_the_payloads_of_before() {
        let (order_id, request_id) = (Uuid::now_v7(), Uuid::now_v7());
        let license = LicenseJob {
            order_id,
            request_id,
        };
        let payload = serde_json::to_value(license_new::LicenseNewArgs(license)).unwrap();
        assert_eq!(
            payload,
            json!({ "order_id": order_id, "request_id": request_id })
        );
        let trial_id = Uuid::now_v7();
        let old: trial_purge::TrialPurgeArgs =
            serde_json::from_value(json!({ "trial_id": trial_id })).unwrap();
        assert_eq!(old.0.trial_id, trial_id);
        assert_eq!(old.0.as_of, None);
        let now = chrono::Utc::now();
        let swept = trial_notices::TrialNoticesArgs(TrialJob {
            trial_id,
            as_of: Some(now),
        });
        assert_eq!(
            serde_json::to_value(swept).unwrap(),
            json!({ "trial_id": trial_id, "as_of": now })
        );
    }
}
