//! The states of the entities whose `status` column has a check constraint
//! in `migrations/`, as Rust enums: a typo in a comparison is a compile
//! error, not a branch that never runs. Each is stored as `text` and
//! written in JSON with the very words the constraint lists (snake_case),
//! so the database and the HTTP API see what they saw before.

/// An enum for one `status` column: `sqlx::Type` as `text`, serde as the
/// same snake_case words, `as_str` and `Display` giving that word.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize)]
        #[sqlx(type_name = "text", rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The word the database and the API use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// `jobs.status`.
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Retrying = "retrying",
        Succeeded = "succeeded",
        Dead = "dead",
    }
}

impl JobStatus {
    /// Succeeded or dead: no attempt will run again (until an operator
    /// replays a dead one).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead)
    }
}

text_enum! {
    /// `license_orders.status`.
    pub enum OrderStatus {
        Preparing = "preparing",
        Active = "active",
        Revoked = "revoked",
    }
}

text_enum! {
    /// `license_requests.status`.
    pub enum RequestStatus {
        Pending = "pending",
        Done = "done",
    }
}

text_enum! {
    /// `licenses.status`: a key is pending until issued.
    pub enum LicenseStatus {
        Pending = "pending",
        Issued = "issued",
        Revoked = "revoked",
    }
}

text_enum! {
    /// `trials.status`.
    pub enum TrialStatus {
        Active = "active",
        Expired = "expired",
        Converted = "converted",
        Purged = "purged",
    }
}

impl TrialStatus {
    /// Active or expired (in grace): not converted, not purged, so it may
    /// still be extended, converted or purged.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Active | Self::Expired)
    }
}

text_enum! {
    /// `transfers.status`.
    pub enum TransferStatus {
        Submitted = "submitted",
        Switching = "switching",
        CleaningRoles = "cleaning_roles",
        Completed = "completed",
        Rejected = "rejected",
        Failed = "failed",
        Expired = "expired",
        Cancelled = "cancelled",
    }
}

impl TransferStatus {
    /// Nothing more happens to the ticket (an operator may retry a failed
    /// one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Rejected | Self::Failed | Self::Expired | Self::Cancelled
        )
    }
}

text_enum! {
    /// `transfer_forms.status`: what has been recorded of a form. The API
    /// shows an open form past its expiry as expired before this says so
    /// (`intake::transfer_forms::FormStatus`).
    pub enum FormState {
        Draft = "draft",
        Returned = "returned",
        Submitted = "submitted",
        Withdrawn = "withdrawn",
        Expired = "expired",
    }
}

impl FormState {
    /// Draft or returned: not submitted, withdrawn or expired, so it may
    /// still run out of time.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Draft | Self::Returned)
    }
}

text_enum! {
    /// `registrations.status`: a link is `pending` until the application
    /// comes in (`applied`), which an operator approves or rejects. Also
    /// the API document's schema of it.
    #[derive(utoipa::ToSchema)]
    pub enum RegistrationStatus {
        Pending = "pending",
        Applied = "applied",
        Approved = "approved",
        Rejected = "rejected",
        Expired = "expired",
    }
}

text_enum! {
    /// `relationship_requests.status` and `partnerships.status`: an
    /// invitation answered through its one-time link. Only a partnership
    /// is ever `ended`.
    pub enum InvitationStatus {
        Invited = "invited",
        Active = "active",
        Declined = "declined",
        Expired = "expired",
        Ended = "ended",
    }
}

text_enum! {
    /// `users.status`: a trial's purge moves its members to the free plan.
    /// Also the API document's schema of it.
    #[derive(utoipa::ToSchema)]
    pub enum UserStatus {
        Active = "active",
        MovedToFree = "moved_to_free",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_serde_and_display() {
        for status in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Retrying,
            JobStatus::Succeeded,
            JobStatus::Dead,
        ] {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::Value::from(status.as_str()));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(serde_json::from_value::<JobStatus>(json).unwrap(), status);
        }
        assert_eq!(
            serde_json::to_value(OrderStatus::Preparing).unwrap(),
            "preparing"
        );
        assert_eq!(serde_json::to_value(RequestStatus::Done).unwrap(), "done");
        assert_eq!(
            serde_json::to_value(LicenseStatus::Issued).unwrap(),
            "issued"
        );
        assert_eq!(
            serde_json::to_value(TrialStatus::Expired).unwrap(),
            "expired"
        );
        assert_eq!(TransferStatus::CleaningRoles.as_str(), "cleaning_roles");
        assert_eq!(
            serde_json::to_value(UserStatus::MovedToFree).unwrap(),
            "moved_to_free"
        );
        assert_eq!(
            serde_json::to_value(InvitationStatus::Declined).unwrap(),
            "declined"
        );
        assert_eq!(
            serde_json::to_value(RegistrationStatus::Applied).unwrap(),
            "applied"
        );
        assert_eq!(
            serde_json::to_value(TransferStatus::CleaningRoles).unwrap(),
            "cleaning_roles"
        );
        assert_eq!(
            serde_json::to_value(FormState::Withdrawn).unwrap(),
            "withdrawn"
        );
    }
}
