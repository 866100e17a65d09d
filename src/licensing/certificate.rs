//! Ed25519 license certificates: signing at issue time, offline verification.
//!
//! This module owns the certificate text format, the signing key (its seed
//! file included) and verification. A certificate states who a license key was
//! issued to and for what (the [`CertificateClaims`]); anyone holding the
//! vendor's [`PublicKey`] can check it without contacting us.
//!
//! The text is four dot-separated parts:
//!
//! ```text
//! fulfil-cert-v1.<key id>.<base64url(JSON claims)>.<base64url(signature)>
//! ```
//!
//! The signature covers the bytes `fulfil-cert-v1.<key id>.<payload>` exactly
//! as transmitted, so the JSON never needs re-serialising into a canonical form
//! and the version and key id cannot be swapped without breaking it. The key
//! id (first 8 hex digits of SHA-256 of the public key) only lets us say
//! "signed by a different key" instead of "forged"; the signature is what is trusted.
//!
//! Neither the license key nor the seed ever appears in an error message or a
//! `Debug` output.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{
    PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH, Signature, Signer as _, SigningKey, VerifyingKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The first part of every certificate this code writes.
pub const VERSION: &str = "fulfil-cert-v1";
/// What every certificate version starts with; also how keys and certificates are told apart.
const FAMILY_PREFIX: &str = "fulfil-cert-";
const KEY_ID_LEN: usize = 8;

/// What a certificate vouches for.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateClaims {
    pub key: String,
    pub order_id: Uuid,
    pub vendor_order_id: String,
    pub usage: String,
    pub vm_count: Option<i32>,
    pub issued_at: DateTime<Utc>,
}

impl fmt::Debug for CertificateClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateClaims")
            .field("key", &redact_key(&self.key))
            .field("order_id", &self.order_id)
            .field("vendor_order_id", &self.vendor_order_id)
            .field("usage", &self.usage)
            .field("vm_count", &self.vm_count)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// Shows the first group of a full-length key, as `LicenseKey::redacted`
/// does; anything short enough that a prefix would give most of it away is
/// hidden entirely.
fn redact_key(key: &str) -> String {
    if key.chars().count() >= 20 {
        let group: String = key.chars().take(5).collect();
        format!("{group}-…")
    } else {
        "<redacted>".to_owned()
    }
}

/// Holds the Ed25519 signing key. `Debug` shows only the public key id.
pub struct Signer {
    signing_key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new signing key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self {
            signing_key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Restores a signer from its 32-byte seed in standard base64 (surrounding
    /// whitespace ignored), as written by [`Signer::seed_base64`].
    pub fn from_seed_base64(seed: &str) -> Result<Self, CertificateError> {
        seed_from_base64(seed)
            .map(|signing_key| Self { signing_key })
            .map_err(CertificateError::InvalidSeed)
    }

    /// The seed in standard base64, for persisting. Callers must keep it secret:
    /// whoever has it can issue certificates.
    pub fn seed_base64(&self) -> String {
        STANDARD.encode(self.signing_key.to_bytes())
    }

    /// Loads the seed from `path` (base64 text), or, when the file is missing,
    /// creates it with a new seed (mode 0600 on unix, parent directories
    /// created).
    ///
    /// Creation is atomic: the seed is written to a temporary file that is then
    /// hard-linked into place, so several workers starting at once agree on
    /// one key and none of them can read a half-written file. An existing file
    /// is never overwritten, even if invalid: replacing a signing key silently
    /// would invalidate every certificate already issued.
    pub fn load_or_create(path: &Path) -> Result<Self, CertificateError> {
        match fs::read_to_string(path) {
            Ok(text) => return Self::from_seed_file_text(path, &text),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(seed_file_error(path, "read", source)),
        }
        let signer = Self::generate();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|source| seed_file_error(parent, "create the directory for", source))?;
        }
        match create_seed_file(path, &signer.seed_base64()) {
            Ok(()) => Ok(signer),
            // Another process created it first; use its key so we all agree.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(path)
                    .map_err(|source| seed_file_error(path, "read", source))?;
                Self::from_seed_file_text(path, &text)
            }
            Err(source) => Err(seed_file_error(path, "create", source)),
        }
    }

    fn from_seed_file_text(path: &Path, text: &str) -> Result<Self, CertificateError> {
        seed_from_base64(text)
            .map(|signing_key| Self { signing_key })
            .map_err(|reason| CertificateError::InvalidSeedFile {
                path: path.to_owned(),
                reason,
            })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing_key.verifying_key())
    }

    /// Signs `claims` and returns the certificate text (one line, no trailing newline).
    pub fn sign(&self, claims: &CertificateClaims) -> String {
        let json = serde_json::to_vec(claims)
            .expect("claims hold only strings, numbers, a UUID and a timestamp");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signed = signed_part(&self.public_key().key_id(), &payload);
        let signature = self.signing_key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// Decodes into a fixed buffer so the seed is not copied around the heap, and
/// reports only what is wrong, never the seed text.
fn seed_from_base64(seed: &str) -> Result<SigningKey, &'static str> {
    let mut bytes = [0u8; SECRET_KEY_LENGTH];
    match STANDARD.decode_slice(seed.trim(), &mut bytes) {
        Ok(SECRET_KEY_LENGTH) => Ok(SigningKey::from_bytes(&bytes)),
        Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            Err("the seed must be exactly 32 bytes (44 characters of base64)")
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err("the seed is not valid base64"),
    }
}

fn create_seed_file(path: &Path, seed: &str) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", Uuid::new_v4()));
    let temp_path = path.with_file_name(temp_name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp_path).and_then(|mut file| {
        file.write_all(seed.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    // Unlike rename, hard_link refuses to replace an existing file.
    let linked = written.and_then(|()| fs::hard_link(&temp_path, path));
    let _ = fs::remove_file(&temp_path);
    linked
}

fn seed_file_error(path: &Path, action: &'static str, source: io::Error) -> CertificateError {
    CertificateError::SeedFile {
        path: path.to_owned(),
        action,
        source,
    }
}

/// The bytes the signature covers.
fn signed_part(key_id: &str, payload: &str) -> String {
    format!("{VERSION}.{key_id}.{payload}")
}

/// An Ed25519 public key that verifies certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The 32 key bytes in standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// Parses [`PublicKey::to_base64`] output (surrounding whitespace ignored).
    /// Rejects weak (small-order) keys, which would accept forged signatures.
    pub fn from_base64(s: &str) -> Result<Self, CertificateError> {
        let mut bytes = [0u8; PUBLIC_KEY_LENGTH];
        match STANDARD.decode_slice(s.trim(), &mut bytes) {
            Ok(PUBLIC_KEY_LENGTH) => {}
            Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                return Err(CertificateError::InvalidPublicKey(
                    "a public key is exactly 32 bytes (44 characters of base64)",
                ));
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => {
                return Err(CertificateError::InvalidPublicKey(
                    "the public key is not valid base64",
                ));
            }
        }
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            CertificateError::InvalidPublicKey("the bytes are not an Ed25519 public key")
        })?;
        if key.is_weak() {
            return Err(CertificateError::InvalidPublicKey(
                "the public key is a weak (small-order) point",
            ));
        }
        Ok(Self(key))
    }

    /// First 8 hex digits of SHA-256 of the key bytes: a label for telling
    /// keys apart, not a security property.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..KEY_ID_LEN / 2])
    }
}

/// Checks `certificate` against `public_key` and returns its claims.
///
/// Whitespace anywhere is ignored, so a certificate that a mail client wrapped
/// over several lines still verifies. The signature is checked before the
/// payload is decoded, so nothing unauthenticated is parsed as JSON.
pub fn verify(
    certificate: &str,
    public_key: &PublicKey,
) -> Result<CertificateClaims, CertificateError> {
    let text: String = certificate.chars().filter(|c| !c.is_whitespace()).collect();
    if text.is_empty() {
        return Err(CertificateError::Malformed("it is empty"));
    }
    let Some(version) = text
        .split('.')
        .next()
        .filter(|v| v.starts_with(FAMILY_PREFIX))
    else {
        return Err(CertificateError::Malformed(
            "it does not start with \"fulfil-cert-\"",
        ));
    };
    if version != VERSION {
        return Err(CertificateError::UnsupportedVersion(printable_prefix(
            version,
        )));
    }
    let parts: Vec<&str> = text.split('.').collect();
    let [_, key_id, payload, signature] = parts[..] else {
        return Err(CertificateError::Malformed(
            "it should have four parts separated by dots",
        ));
    };
    if key_id.len() != KEY_ID_LEN
        || !key_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(CertificateError::Malformed(
            "its key id is not 8 lower-case hex digits",
        ));
    }
    let expected_key_id = public_key.key_id();
    if key_id != expected_key_id {
        return Err(CertificateError::KeyMismatch {
            certificate_key_id: key_id.to_owned(),
            verifying_key_id: expected_key_id,
        });
    }
    if payload.is_empty() {
        return Err(CertificateError::Malformed("its claims part is empty"));
    }

    let mut signature_bytes = [0u8; Signature::BYTE_SIZE];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut signature_bytes) {
        Ok(Signature::BYTE_SIZE) => {}
        Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            return Err(CertificateError::Malformed(
                "its signature is not 64 bytes long",
            ));
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => {
            return Err(CertificateError::Base64 { part: "signature" });
        }
    }
    let signature = Signature::from_bytes(&signature_bytes);
    // verify_strict also rejects malleable signatures, so a certificate has
    // exactly one valid encoding.
    public_key
        .0
        .verify_strict(signed_part(key_id, payload).as_bytes(), &signature)
        .map_err(|_| CertificateError::BadSignature)?;

    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| CertificateError::Base64 { part: "claims" })?;
    // serde_json's messages can quote field values (the license key among
    // them), so only the position is passed on.
    serde_json::from_slice(&json).map_err(|error| CertificateError::Json {
        line: error.line(),
        column: error.column(),
    })
}

/// At most 32 characters, without control characters, so an odd version
/// string can be shown safely.
fn printable_prefix(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// True when `s` looks like a certificate rather than a license key, so the
/// CLI (`fulfil license verify KEY|CERT`) can tell them apart. Any
/// `fulfil-cert-` version counts, so an unsupported version gets a clear
/// error instead of "not a valid key". A key can never match: `I` is not in
/// the key alphabet.
pub fn looks_like_certificate(s: &str) -> bool {
    s.trim_start().starts_with(FAMILY_PREFIX)
}

/// Why a certificate, key or seed was rejected. No message contains the
/// license key or the seed.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("not a license certificate: {0}")]
    Malformed(&'static str),
    #[error("unsupported certificate version {0:?} (this program reads {VERSION})")]
    UnsupportedVersion(String),
    #[error(
        "certificate was signed by key {certificate_key_id}, but the public key given is \
         {verifying_key_id}"
    )]
    KeyMismatch {
        certificate_key_id: String,
        verifying_key_id: String,
    },
    #[error("certificate signature does not match: the certificate was altered or is not genuine")]
    BadSignature,
    #[error("the certificate's {part} part is not valid base64url")]
    Base64 { part: &'static str },
    #[error(
        "the certificate's claims are not in the expected format (JSON error at line {line}, \
         column {column})"
    )]
    Json { line: usize, column: usize },
    #[error("invalid signing seed: {0}")]
    InvalidSeed(&'static str),
    #[error("invalid signing seed in {}: {reason}", path.display())]
    InvalidSeedFile { path: PathBuf, reason: &'static str },
    #[error("could not {action} signing seed file {}: {source}", path.display())]
    SeedFile {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "7KQ2M-WX9PA-3HNTE-R8FZC-DLV45";

    fn claims() -> CertificateClaims {
        CertificateClaims {
            key: KEY.to_owned(),
            order_id: Uuid::now_v7(),
            vendor_order_id: "VO-1234".to_owned(),
            usage: "backup".to_owned(),
            vm_count: Some(5),
            issued_at: Utc::now(),
        }
    }

    /// Rebuilds a certificate with different claims but the original signature.
    fn with_payload(certificate: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = certificate.split('.').collect();
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        edit(&mut json);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap());
        format!("{}.{}.{payload}.{}", parts[0], parts[1], parts[3])
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("fulfil-cert-test-{}", Uuid::new_v4()))
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let signer = Signer::generate();
        let claims = claims();
        let certificate = signer.sign(&claims);
        assert!(certificate.starts_with(&format!("{VERSION}.{}.", signer.public_key().key_id())));
        assert_eq!(certificate.split('.').count(), 4);
        assert_eq!(verify(&certificate, &signer.public_key()).unwrap(), claims);

        let wrapped = format!("\n  {}\r\n{}\n\n", &certificate[..60], &certificate[60..]);
        assert_eq!(verify(&wrapped, &signer.public_key()).unwrap(), claims);
    }

    #[test]
    fn tampered_payload_fails() {
        let signer = Signer::generate();
        let certificate = signer.sign(&claims());
        let tampered = with_payload(&certificate, |json| json["vm_count"] = 500.into());
        let error = verify(&tampered, &signer.public_key()).unwrap_err();
        assert!(matches!(error, CertificateError::BadSignature), "{error}");
        assert!(error.to_string().contains("altered"));

        let mut chars: Vec<char> = certificate.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'Q' } else { 'A' };
        let error = verify(&chars.into_iter().collect::<String>(), &signer.public_key());
        assert!(error.is_err());
    }

    #[test]
    fn other_key_fails_with_both_key_ids() {
        let signer = Signer::generate();
        let other = Signer::generate();
        let certificate = signer.sign(&claims());
        let error = verify(&certificate, &other.public_key()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, CertificateError::KeyMismatch { .. }),
            "{message}"
        );
        assert!(message.contains(&signer.public_key().key_id()), "{message}");
        assert!(message.contains(&other.public_key().key_id()), "{message}");
    }

    #[test]
    fn forged_key_id_is_still_a_bad_signature() {
        let signer = Signer::generate();
        let forger = Signer::generate();
        let forged = forger.sign(&claims()).replacen(
            &forger.public_key().key_id(),
            &signer.public_key().key_id(),
            1,
        );
        let error = verify(&forged, &signer.public_key()).unwrap_err();
        assert!(matches!(error, CertificateError::BadSignature), "{error}");
    }

    #[test]
    fn malformed_input_gets_clear_errors_without_the_key() {
        let public_key = Signer::generate().public_key();
        let cases = [
            ("", "empty"),
            (KEY, "does not start"),
            (
                "fulfil-cert-v2.abcdef12.e30.AAAA",
                "unsupported certificate version \"fulfil-cert-v2\"",
            ),
            ("fulfil-cert-v1.abcdef12.e30", "four parts"),
            ("fulfil-cert-v1.ABCDEF12.e30.AAAA", "key id"),
        ];
        for (input, expected) in cases {
            let message = verify(input, &public_key).unwrap_err().to_string();
            assert!(message.contains(expected), "{input:?}: {message}");
            assert!(!message.contains(KEY), "{message}");
        }
        let certificate = format!("{VERSION}.{}.e30.!!!", public_key.key_id());
        assert!(matches!(
            verify(&certificate, &public_key),
            Err(CertificateError::Base64 { part: "signature" })
        ));
    }

    #[test]
    fn signed_but_unreadable_claims_report_json_position_only() {
        let signer = Signer::generate();
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"key\":\"{KEY}\",\"vm_count\":\"x\"}}"));
        let signed = signed_part(&signer.public_key().key_id(), &payload);
        let signature =
            URL_SAFE_NO_PAD.encode(signer.signing_key.sign(signed.as_bytes()).to_bytes());
        let error = verify(&format!("{signed}.{signature}"), &signer.public_key()).unwrap_err();
        assert!(matches!(error, CertificateError::Json { .. }), "{error}");
        assert!(!error.to_string().contains(KEY), "{error}");
    }

    #[test]
    fn seed_and_public_key_round_trip_through_base64() {
        let signer = Signer::generate();
        let seed = signer.seed_base64();
        assert_eq!(seed.len(), 44);
        let restored = Signer::from_seed_base64(&format!(" {seed}\n")).unwrap();
        assert_eq!(restored.public_key(), signer.public_key());

        let public = signer.public_key().to_base64();
        assert_eq!(
            PublicKey::from_base64(&public).unwrap(),
            signer.public_key()
        );
        assert!(PublicKey::from_base64("AAAA").is_err());
        // The identity point is a weak key: it would accept forged signatures.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_base64(&STANDARD.encode(identity)),
            Err(CertificateError::InvalidPublicKey(_))
        ));

        for bad in [&seed[..40], "not base64!", "", &format!("{seed}{seed}")] {
            let message = Signer::from_seed_base64(bad).unwrap_err().to_string();
            assert!(message.starts_with("invalid signing seed"), "{message}");
            assert!(!message.contains(&seed[..20]), "{message}");
        }
    }

    #[test]
    fn load_or_create_creates_then_reloads_the_same_key() {
        let dir = temp_dir();
        let path = dir.join("nested").join("signing.seed");
        let created = Signer::load_or_create(&path).unwrap();
        assert!(path.is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let reloaded = Signer::load_or_create(&path).unwrap();
        assert_eq!(reloaded.public_key(), created.public_key());
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            created.seed_base64()
        );
        // Only the seed file is left behind, no temporary files.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        fs::write(&path, "garbage").unwrap();
        let message = Signer::load_or_create(&path).unwrap_err().to_string();
        assert!(message.contains("signing.seed"), "{message}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");

        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_creators_agree_on_one_key() {
        let dir = temp_dir();
        let path = dir.join("signing.seed");
        let keys: Vec<PublicKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| Signer::load_or_create(&path).unwrap().public_key()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_output_holds_no_secret_or_key() {
        let signer = Signer::generate();
        let debug = format!("{signer:?}");
        assert!(!debug.contains(&signer.seed_base64()), "{debug}");
        assert!(!debug.contains(&signer.seed_base64()[..8]), "{debug}");
        assert!(
            !debug.contains(&hex::encode(signer.signing_key.to_bytes())[..8]),
            "{debug}"
        );
        assert!(debug.contains(&signer.public_key().key_id()), "{debug}");

        let debug = format!("{:?}", claims());
        assert!(!debug.contains(KEY), "{debug}");
        assert!(!debug.contains(&KEY[5..]), "{debug}");
        assert!(debug.contains("7KQ2M-…"), "{debug}");
    }

    #[test]
    fn looks_like_certificate_tells_keys_and_certificates_apart() {
        let certificate = Signer::generate().sign(&claims());
        assert!(looks_like_certificate(&certificate));
        assert!(looks_like_certificate(&format!("\n  {certificate}\n")));
        assert!(looks_like_certificate("fulfil-cert-v9.whatever"));
        assert!(!looks_like_certificate(KEY));
        assert!(!looks_like_certificate(&KEY.to_lowercase()));
        assert!(!looks_like_certificate(""));
    }
}
