//! `fulfil license verify KEY|CERT` and `fulfil license public-key`.

use std::time::Duration;

use serde_json::json;

use crate::cli::LicenseVerify;
use crate::licensing::certificate::{self, PublicKey};
use crate::licensing::key::LicenseKey;
use crate::settings::Settings;

/// Returns whether the input verified (the process exits 1 when not).
pub async fn verify(settings: Settings, args: LicenseVerify) -> anyhow::Result<bool> {
    if certificate::looks_like_certificate(&args.input) {
        verify_certificate(&settings, &args)
    } else {
        verify_key(&settings, &args).await
    }
}

fn verify_certificate(settings: &Settings, args: &LicenseVerify) -> anyhow::Result<bool> {
    let public_key = match &args.public_key {
        Some(encoded) => PublicKey::from_base64(encoded)?,
        None => crate::licensing::existing_public_key(&settings.license)?,
    };
    match certificate::verify(&args.input, &public_key) {
        Ok(claims) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "valid": true, "kind": "certificate", "claims": claims })
                );
            } else {
                println!("valid certificate, signed by key {}", public_key.key_id());
                println!("  order:        {}", claims.order_id);
                println!("  vendor order: {}", claims.vendor_order_id);
                println!("  usage:        {}", claims.usage);
                if let Some(vm) = claims.vm_count {
                    println!("  VM count:     {vm}");
                }
                println!("  issued at:    {}", claims.issued_at.to_rfc3339());
            }
            Ok(true)
        }
        Err(error) => {
            report_invalid(args.json, "certificate", &error.to_string());
            Ok(false)
        }
    }
}

async fn verify_key(settings: &Settings, args: &LicenseVerify) -> anyhow::Result<bool> {
    let key = match LicenseKey::parse(&args.input) {
        Ok(key) => key,
        Err(error) => {
            report_invalid(args.json, "key", &error.to_string());
            return Ok(false);
        }
    };
    // The status is a bonus when the database is away: the check character
    // alone is the offline answer. A database that answers but is not
    // fulfil's (a mistyped URL) is an error, not "unknown".
    // Generous: an answer that merely came late must not pass for "the
    // database is away" and turn a revoked key's answer into "unknown".
    let status = match tokio::time::timeout(
        Duration::from_secs(15),
        crate::store::open_existing(&settings.database),
    )
    .await
    {
        Ok(Ok(pool)) => Some(crate::store::licenses::status_of_key(&pool, key.as_str()).await?),
        Ok(Err(error)) if unreachable(&error) => None,
        Ok(Err(error)) => return Err(error),
        Err(_) => None,
    };
    let revoked = matches!(&status, Some(Some((status, _))) if status == "revoked");
    if args.json {
        let (status, order) = match &status {
            Some(Some((status, order))) => (json!(status), json!(order)),
            Some(None) => (json!("unknown"), json!(null)),
            None => (json!(null), json!(null)),
        };
        println!(
            "{}",
            json!({ "valid": !revoked, "kind": "key", "status": status, "order_id": order })
        );
    } else {
        println!("the key is well-formed (check character matches)");
        match status {
            Some(Some((status, order))) if revoked => {
                println!("status: {status} (order {order}): this key is no longer valid")
            }
            Some(Some((status, order))) => println!("status: {status} (order {order})"),
            Some(None) => println!("status: not issued by this system"),
            None => println!("status: unknown (the database is not reachable)"),
        }
    }
    Ok(!revoked)
}

/// Whether the database server itself could not be reached (as opposed to
/// answering that the database or schema is missing).
fn unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut))
    })
}

pub fn public_key(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let key = crate::licensing::existing_public_key(&settings.license)?;
    if json {
        println!(
            "{}",
            json!({ "public_key": key.to_base64(), "key_id": key.key_id() })
        );
    } else {
        println!("{}", key.to_base64());
        eprintln!(
            "key id {}; verify elsewhere with: fulfil license verify CERT --public-key {}",
            key.key_id(),
            key.to_base64()
        );
    }
    Ok(())
}

fn report_invalid(json: bool, kind: &str, reason: &str) {
    if json {
        println!(
            "{}",
            json!({ "valid": false, "kind": kind, "reason": reason })
        );
    } else {
        println!("invalid {kind}: {reason}");
    }
}
