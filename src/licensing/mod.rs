//! Backup-software licensing: key format, signed certificates, the vendor
//! adapter that issues order ids and keys, the changes an existing order
//! accepts (`changes`: the intake's unit of work), and what the license
//! workers share: the issuance steps and the order a job changes
//! (`orders`).

pub mod certificate;
pub mod changes;
pub mod issuance;
pub mod key;
pub mod orders;
pub mod vendor;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::settings::LicenseSettings;

/// The verifying key of the configured signer, never creating one:
/// `license.signing_key` if set, else the key file if it exists. Commands
/// that only verify use it, so that a run outside the deployment cannot
/// mint a new key and call every genuine certificate invalid.
pub fn existing_public_key(settings: &LicenseSettings) -> anyhow::Result<certificate::PublicKey> {
    if let Some(seed) = &settings.signing_key {
        return Ok(certificate::Signer::from_seed_base64(seed.expose_secret())
            .context("license.signing_key is not a valid Ed25519 seed")?
            .public_key());
    }
    let path = &settings.signing_key_file;
    if !path.exists() {
        anyhow::bail!(
            "no signing key here: license.signing_key is unset and {} does not exist. \
             Run `fulfil license public-key` where fulfil signs certificates and pass its \
             output with --public-key",
            path.display()
        );
    }
    Ok(certificate::Signer::load_or_create(path)
        .with_context(|| format!("loading the license signing key from {}", path.display()))?
        .public_key())
}

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
