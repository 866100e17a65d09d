//! Outgoing mail as data, and its MIME form: owns [`OutgoingMail`] (what the
//! mail worker loads from a `mails` row), the deterministic Message-ID, and
//! [`build_message`], which turns an `OutgoingMail` into a `lettre::Message`.
//!
//! The Message-ID is derived from the mail's cause (for example
//! `license_issued:<request uuid>`) rather than generated at send time, so a
//! mail that is sent again after a crash carries the same Message-ID as the
//! first attempt: the file transport overwrites the same file, and receiving
//! systems can recognise the duplicate.
//!
//! Bodies and attachments carry license keys and signed certificates, so no
//! `Debug` output and no error message in this module includes them.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything needed to send one mail; built by the mail worker from the DB row.
#[derive(Clone, Serialize, Deserialize)]
pub struct OutgoingMail {
    /// Complete header value including the angle brackets, as produced by
    /// [`message_id_for`].
    pub message_id: String,
    /// `addr@example.com` or `Display Name <addr@example.com>`.
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

/// Shows message_id, to and subject only: the body carries license keys.
impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("message_id", &self.message_id)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A file attached to a mail, e.g. a signed license certificate. Text content
/// only: that is what the `mails.attachments` JSON column holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type such as `application/json` or `text/plain; charset=utf-8`.
    pub content_type: String,
    pub content: String,
}

/// Shows the name, type and size; the content is a certificate for a key.
impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("content_len", &self.content.len())
            .finish()
    }
}

/// Why a mail could not be turned into a message. Never includes the body.
/// Every variant is a property of the mail itself, so sending it again will
/// fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid Message-ID {message_id:?}: expected <id@domain> in printable ASCII")]
    InvalidMessageId { message_id: String },
    /// The address itself is left out: it is personal data and the row that
    /// holds it is known to whoever reads the error.
    #[error("invalid {field} address: {source}")]
    Address {
        field: &'static str,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("subject contains a line break or other control character")]
    InvalidSubject,
    #[error("attachment {filename:?} has an invalid content type: {source}")]
    ContentType {
        filename: String,
        #[source]
        source: lettre::message::header::ContentTypeErr,
    },
    #[error("could not assemble the message: {source}")]
    Build {
        #[source]
        source: lettre::error::Error,
    },
}

/// Deterministic Message-ID from the cause (e.g. `"license_issued:<request uuid>"`):
/// `<hex(sha256(cause))[..32]@domain>`. 128 bits of the hash keep distinct
/// causes apart while the header stays short; hashing keeps order and request
/// ids out of a header that every relay on the way logs.
pub fn message_id_for(cause: &str, domain: &str) -> String {
    let digest = hex::encode(Sha256::digest(cause.as_bytes()));
    format!("<{}@{}>", &digest[..32], domain)
}

/// The To: value for an address and the name fulfil knows for it:
/// `Hanako Sato <hanako@example.com>`, quoted or encoded as the name needs.
pub fn recipient(address: &str, name: Option<&str>) -> String {
    match (name, address.parse::<lettre::Address>()) {
        (Some(name), Ok(address)) => Mailbox::new(Some(name.to_owned()), address).to_string(),
        _ => address.to_owned(),
    }
}

/// Builds the MIME message: Message-ID exactly as `mail.message_id`, Date
/// (now), From, To, Subject (RFC 2047-encoded when not ASCII), a
/// `text/plain; charset=utf-8` body, and `multipart/mixed` with the
/// attachments when there are any.
pub fn build_message(mail: &OutgoingMail) -> Result<lettre::Message, MailError> {
    if !is_valid_message_id(&mail.message_id) {
        return Err(MailError::InvalidMessageId {
            message_id: mail.message_id.clone(),
        });
    }
    let from: Mailbox = mail.from.parse().map_err(|source| MailError::Address {
        field: "from",
        source,
    })?;
    let to: Mailbox = mail.to.parse().map_err(|source| MailError::Address {
        field: "to",
        source,
    })?;
    // The renderer already removes these; a row edited by hand must not be
    // able to add headers either.
    if mail.subject.chars().any(char::is_control) {
        return Err(MailError::InvalidSubject);
    }

    let builder = lettre::Message::builder()
        .message_id(Some(mail.message_id.clone()))
        .date_now()
        .from(from)
        .to(to)
        .subject(mail.subject.clone());

    // lettre picks 7bit, quoted-printable or base64 for each part, whichever
    // is valid and shortest, so Japanese text survives relays without
    // 8BITMIME.
    let text = SinglePart::plain(mail.body.clone());
    let built = if mail.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for attachment in &mail.attachments {
            let content_type = ContentType::parse(&attachment.content_type).map_err(|source| {
                MailError::ContentType {
                    filename: attachment.filename.clone(),
                    source,
                }
            })?;
            parts = parts.singlepart(
                lettre::message::Attachment::new(attachment.filename.clone())
                    .body(attachment.content.clone(), content_type),
            );
        }
        builder.multipart(parts)
    };
    built.map_err(|source| MailError::Build { source })
}

/// `<left@right>`, printable ASCII without spaces or further angle brackets:
/// anything else would be re-encoded or folded by lettre and then no longer
/// equal the id stored in the database.
fn is_valid_message_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    let Some((left, right)) = inner.split_once('@') else {
        return false;
    };
    !left.is_empty()
        && !right.is_empty()
        && inner.len() <= 250
        && inner
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// Decoding helpers shared by the tests of this module and of `transport`:
/// just enough MIME to read back what lettre wrote, without another crate.
#[cfg(test)]
pub(crate) mod testutil {
    /// The unfolded value of the first header `name` in the top-level header
    /// block of a raw message.
    pub fn header(raw: &str, name: &str) -> Option<String> {
        let head = raw.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            match &mut value {
                Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
                Some(_) => break,
                None => {
                    if let Some((n, v)) = line.split_once(':')
                        && n.eq_ignore_ascii_case(name)
                    {
                        value = Some(v.trim_start().to_owned());
                    }
                }
            }
        }
        value
    }

    /// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=` and `?q?`);
    /// whitespace between two encoded words is dropped, as the RFC says.
    pub fn decode_rfc2047(value: &str) -> String {
        let mut out = Vec::new();
        let mut rest = value;
        let mut last_was_word = false;
        while !rest.is_empty() {
            if let Some(start) = rest.find("=?") {
                let (before, after) = rest.split_at(start);
                let parts: Vec<&str> = after[2..].splitn(3, '?').collect();
                if parts.len() == 3
                    && let Some(end) = parts[2].find("?=")
                {
                    if !(last_was_word && before.trim().is_empty()) {
                        out.extend_from_slice(before.as_bytes());
                    }
                    let text = &parts[2][..end];
                    match parts[1] {
                        "b" | "B" => out.extend(base64(text)),
                        _ => out.extend(quoted_printable(&text.replace('_', " "))),
                    }
                    rest = &parts[2][end + 2..];
                    last_was_word = true;
                    continue;
                }
            }
            out.extend_from_slice(rest.as_bytes());
            break;
        }
        String::from_utf8(out).expect("utf-8 after decoding")
    }

    pub fn base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for b in text.bytes() {
            let Some(v) = ALPHABET.iter().position(|&a| a == b) else {
                continue; // padding and line breaks
            };
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        out
    }

    pub fn quoted_printable(text: &str) -> Vec<u8> {
        let text = text.replace("=\r\n", "");
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(v) = u8::from_str_radix(hex, 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// The decoded bodies of every leaf part of a raw message, in order (the
    /// whole body for a single-part message).
    pub fn decoded_parts(raw: &str) -> Vec<String> {
        let mut parts = Vec::new();
        collect_parts(raw, &mut parts);
        parts
    }

    fn collect_parts(entity: &str, parts: &mut Vec<String>) {
        let (head, body) = entity.split_once("\r\n\r\n").unwrap_or((entity, ""));
        let head_only = format!("{head}\r\n\r\n");
        let content_type = header(&head_only, "Content-Type").unwrap_or_default();
        if let Some(boundary) = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
        {
            // The CRLF before a delimiter belongs to the delimiter, not to
            // the part before it.
            let delimiter = format!("\r\n--{}", boundary.trim_matches('"'));
            for part in format!("\r\n{body}").split(&delimiter).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                collect_parts(part.strip_prefix("\r\n").unwrap_or(part), parts);
            }
            return;
        }
        let encoding = header(&head_only, "Content-Transfer-Encoding").unwrap_or_default();
        let bytes = match encoding.trim().to_ascii_lowercase().as_str() {
            "base64" => base64(body),
            "quoted-printable" => quoted_printable(body),
            _ => body.as_bytes().to_vec(),
        };
        parts.push(String::from_utf8(bytes).expect("utf-8 part"));
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn sample_mail() -> OutgoingMail {
        OutgoingMail {
            message_id: message_id_for("license_issued:0190f3a2-7c41", "mail.example.com"),
            from: "C-Chorus <noreply@example.com>".into(),
            to: "山田 太郎 <taro@example.co.jp>".into(),
            subject: "[C-Chorus] C-Chorusライセンスキー発行のお知らせ".into(),
            body: "山田 太郎 様\n\nライセンスキー: SECRET-KEY-0001\n".into(),
            attachments: vec![],
        }
    }

    fn raw(mail: &OutgoingMail) -> String {
        String::from_utf8(build_message(mail).unwrap().formatted()).unwrap()
    }

    #[test]
    fn message_id_is_deterministic_and_shaped() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a3...
        assert_eq!(
            message_id_for("abc", "example.com"),
            "<ba7816bf8f01cfea414140de5dae2223@example.com>"
        );
        let a = message_id_for("license_issued:1", "m.example");
        assert_eq!(a, message_id_for("license_issued:1", "m.example"));
        assert_ne!(a, message_id_for("license_issued:2", "m.example"));
        assert_eq!(a.len(), 1 + 32 + 1 + "m.example".len() + 1);
        assert!(is_valid_message_id(&a));
    }

    #[test]
    fn headers_are_set() {
        let mail = sample_mail();
        let raw = raw(&mail);
        assert_eq!(header(&raw, "Message-ID").unwrap(), mail.message_id);
        assert!(header(&raw, "Date").is_some());
        assert_eq!(
            header(&raw, "From").unwrap(),
            "C-Chorus <noreply@example.com>"
        );
        let to = header(&raw, "To").unwrap();
        assert!(to.contains("<taro@example.co.jp>"), "{to}");
        assert_eq!(decode_rfc2047(&to), "山田 太郎 <taro@example.co.jp>");
        let subject = header(&raw, "Subject").unwrap();
        assert!(subject.contains("=?utf-8?"), "not encoded: {subject}");
        assert_eq!(decode_rfc2047(&subject), mail.subject);
        assert!(raw.is_ascii(), "headers and body must be 7-bit clean");
    }

    #[test]
    fn plain_text_body_without_attachments() {
        let mail = sample_mail();
        let raw = raw(&mail);
        let content_type = header(&raw, "Content-Type").unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert!(
            content_type.to_ascii_lowercase().contains("charset=utf-8"),
            "{content_type}"
        );
        // lettre writes CRLF line endings on the wire.
        assert_eq!(decoded_parts(&raw), [mail.body.replace('\n', "\r\n")]);
    }

    #[test]
    fn attachments_make_multipart_mixed() {
        let mut mail = sample_mail();
        mail.attachments = vec![
            Attachment {
                filename: "AAAA-0001.lic".into(),
                content_type: "application/json".into(),
                content: r#"{"key":"AAAA-0001","signature":"c2lnbmVk"}"#.into(),
            },
            Attachment {
                filename: "証書-0002.txt".into(),
                content_type: "text/plain; charset=utf-8".into(),
                content: "署名付き証書\n".into(),
            },
        ];
        let raw = raw(&mail);
        assert!(
            header(&raw, "Content-Type")
                .unwrap()
                .starts_with("multipart/mixed")
        );
        assert_eq!(header(&raw, "Message-ID").unwrap(), mail.message_id);
        let parts = decoded_parts(&raw);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0], mail.body.replace('\n', "\r\n"));
        assert_eq!(parts[1], mail.attachments[0].content);
        assert_eq!(parts[2], "署名付き証書\r\n");
        assert!(raw.contains("filename=\"AAAA-0001.lic\""), "{raw}");
        assert!(raw.contains("Content-Disposition: attachment"));
    }

    #[test]
    fn bad_addresses_name_the_field_not_the_body() {
        let mut mail = sample_mail();
        mail.to = "not an address".into();
        let err = build_message(&mail).unwrap_err();
        assert!(
            matches!(err, MailError::Address { field: "to", .. }),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("to address"), "{shown}");
        assert!(!shown.contains("SECRET-KEY"), "{shown}");

        let mut mail = sample_mail();
        mail.from = "@example.com".into();
        let err = build_message(&mail).unwrap_err();
        assert!(
            matches!(err, MailError::Address { field: "from", .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("invalid from address"), "{err}");
    }

    #[test]
    fn bad_message_id_subject_and_content_type_are_rejected() {
        for id in [
            "",
            "abc@example.com",
            "<abc>",
            "<@x>",
            "<a b@x>",
            "<a@x>>",
            "<秘@x>",
        ] {
            let mut mail = sample_mail();
            mail.message_id = id.into();
            assert!(
                matches!(
                    build_message(&mail),
                    Err(MailError::InvalidMessageId { .. })
                ),
                "{id:?} accepted"
            );
        }

        let mut mail = sample_mail();
        mail.subject = "hello\r\nBcc: someone@example.com".into();
        assert!(matches!(
            build_message(&mail),
            Err(MailError::InvalidSubject)
        ));

        let mut mail = sample_mail();
        mail.attachments.push(Attachment {
            filename: "x.lic".into(),
            content_type: "not a mime type".into(),
            content: "SECRET-KEY-0001".into(),
        });
        let err = build_message(&mail).unwrap_err();
        assert!(matches!(err, MailError::ContentType { .. }), "{err:?}");
        assert!(err.to_string().contains("x.lic"));
        assert!(!format!("{err} {err:?}").contains("SECRET-KEY"));
    }

    #[test]
    fn debug_hides_body_and_attachment_content() {
        let mut mail = sample_mail();
        mail.attachments.push(Attachment {
            filename: "x.lic".into(),
            content_type: "application/json".into(),
            content: "SECRET-CERT".into(),
        });
        let shown = format!("{mail:?} {:?}", mail.attachments);
        assert!(shown.contains(&mail.message_id));
        assert!(shown.contains("taro@example.co.jp"));
        assert!(shown.contains("ライセンスキー発行"));
        assert!(!shown.contains("SECRET-KEY"), "{shown}");
        assert!(!shown.contains("SECRET-CERT"), "{shown}");
    }

    #[test]
    fn serde_round_trip() {
        let mut mail = sample_mail();
        mail.attachments.push(Attachment {
            filename: "x.lic".into(),
            content_type: "application/json".into(),
            content: "{}".into(),
        });
        let json = serde_json::to_value(&mail).unwrap();
        assert_eq!(json["attachments"][0]["filename"], "x.lic");
        let back: OutgoingMail = serde_json::from_value(json).unwrap();
        assert_eq!(back.message_id, mail.message_id);
        assert_eq!(back.body, mail.body);
        assert_eq!(back.attachments[0].content, "{}");
    }
}
