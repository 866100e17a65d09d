//! Backup-software licensing: key format, signed certificates, the vendor
//! adapter that issues order ids and keys, and the issuance steps the
//! license workers share.

pub mod certificate;
pub mod issuance;
pub mod key;
pub mod vendor;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::settings::LicenseSettings;

/// The configured signer: `license.signing_key` if set, else the key file
/// (created on first use).
pub fn load_signer(settings: &LicenseSettings) -> anyhow::Result<certificate::Signer> {
    match &settings.signing_key {
        Some(seed) => certificate::Signer::from_seed_base64(seed.expose_secret())
            .context("license.signing_key is not a valid Ed25519 seed"),
        None => {
            certificate::Signer::load_or_create(&settings.signing_key_file).with_context(|| {
                format!(
                    "loading the license signing key from {}",
                    settings.signing_key_file.display()
                )
            })
        }
    }
}
