//! The vendor adapter: where vendor order ids and license keys come from.
//! The built-in adapter makes them here; a real vendor API plugs in behind
//! the same trait. Calls carry our ids so a vendor can make them idempotent.

use async_trait::async_trait;
use uuid::Uuid;

use super::key::LicenseKey;

#[async_trait]
pub trait VendorAdapter: Send + Sync {
    /// The vendor's order id for our order. Called once per order, under
    /// the order's lock; an API adapter passes `order_id` as its request id.
    async fn create_order(&self, order_id: Uuid) -> anyhow::Result<String>;

    /// A key for one license row. An API adapter passes `license_id` as its
    /// idempotency key, so a retried call returns the same key.
    async fn issue_key(&self, order_id: Uuid, license_id: Uuid) -> anyhow::Result<LicenseKey>;

    /// Revokes one key at the vendor. Revoking a revoked key must succeed.
    async fn revoke_key(&self, order_id: Uuid, license_id: Uuid) -> anyhow::Result<()>;

    /// Revokes the vendor order id; after this the vendor's support no
    /// longer answers for it. Revoking a revoked order must succeed.
    async fn revoke_order(&self, order_id: Uuid, vendor_order_id: &str) -> anyhow::Result<()>;
}

/// Generates vendor order ids and keys locally with the OS's CSPRNG.
pub struct LocalVendor;

#[async_trait]
impl VendorAdapter for LocalVendor {
    async fn create_order(&self, _order_id: Uuid) -> anyhow::Result<String> {
        // The first two groups of a fresh key: 50 random bits in the same
        // typable alphabet, enough to never collide in one vendor's books.
        let key = LicenseKey::generate();
        Ok(format!("VO-{}", &key.as_str()[..11]))
    }

    async fn issue_key(&self, _order_id: Uuid, _license_id: Uuid) -> anyhow::Result<LicenseKey> {
        Ok(LicenseKey::generate())
    }

    // Locally, a key or order is revoked by its row's status alone.
    async fn revoke_key(&self, _order_id: Uuid, _license_id: Uuid) -> anyhow::Result<()> {
        Ok(())
    }

    async fn revoke_order(&self, _order_id: Uuid, _vendor_order_id: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
