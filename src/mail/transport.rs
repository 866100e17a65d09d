//! Delivery of a built mail: owns the [`MailTransport`] trait, its two
//! implementations ([`FileTransport`], the one-machine default that writes
//! `.eml` files, and [`SmtpTransport`]), and the [`SendError`] classification
//! the mail worker uses to decide between retrying later and giving up.
//!
//! Not owned here: picking pending rows, retry schedules, marking rows sent.
//! A transport is called at least once per mail (the worker may crash between
//! sending and recording it), which is why both implementations are safe to
//! call again with the same mail: the file transport overwrites the same file,
//! and over SMTP the unchanged Message-ID lets the receiving side recognise
//! the duplicate.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::message::{MailError, OutgoingMail, build_message};

#[async_trait]
pub trait MailTransport: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError>;

    /// Sends several mails: one result per mail, in order. Side by side
    /// unless the transport can share work between them.
    async fn send_all(&self, mails: &[OutgoingMail]) -> Vec<Result<(), SendError>> {
        futures::future::join_all(mails.iter().map(|mail| self.send(mail))).await
    }
}

/// Why a send failed. [`SendError::is_transient`] says whether the same mail
/// may succeed later (retry) or never will (mark it failed).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The mail itself is broken (bad address, bad Message-ID, ...).
    #[error("mail cannot be built: {0}")]
    Message(#[from] MailError),
    /// Transport settings are wrong. Never contains the SMTP password.
    #[error("invalid mail transport setting: {reason}")]
    Config { reason: String },
    /// Writing the `.eml` file failed (disk full, permissions, ...).
    #[error("writing mail file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Connection refused or lost, timeout, 4xx reply: try again later.
    /// (Whether it is tried again is the job's business, so the message
    /// does not promise it: it also ends up as a dead letter's reason.)
    #[error("SMTP delivery failed (transient): {source}")]
    SmtpTransient {
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// 5xx reply (recipient or message rejected), or a message the SMTP client
    /// refuses to send: the same mail will fail the same way.
    #[error("SMTP server rejected the mail: {source}")]
    SmtpRejected {
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        match self {
            // The mail is fine; the machine is not. An operator fixing the
            // disk or the permissions should not have to requeue mails.
            SendError::Io { .. } | SendError::SmtpTransient { .. } => true,
            SendError::Message(_) | SendError::Config { .. } | SendError::SmtpRejected { .. } => {
                false
            }
        }
    }

    fn from_smtp(source: lettre::transport::smtp::Error) -> Self {
        // lettre sorts replies by their first digit; everything that is not a
        // 5xx or a client-side refusal (connection, network, timeout, 4xx,
        // garbled reply) may go through on a later attempt.
        if source.is_permanent() || source.is_client() {
            SendError::SmtpRejected { source }
        } else {
            SendError::SmtpTransient { source }
        }
    }
}

/// Builds the transport a setting names, so switching from files to SMTP is
/// one configuration value: `smtp://...` (and `smtps://...`, which this build
/// refuses, see [`SmtpTransport`]) for [`SmtpTransport::from_url`],
/// `file://<dir>` for [`FileTransport`] (`file:///var/spool/fulfil/mail`, or
/// `file://./mail` for a path relative to the working directory).
pub fn transport_from_url(url: &str) -> Result<Arc<dyn MailTransport>, SendError> {
    if let Some(dir) = url.strip_prefix("file://") {
        if dir.is_empty() {
            return Err(SendError::Config {
                reason: "file:// mail transport needs a directory".into(),
            });
        }
        return Ok(Arc::new(FileTransport::new(dir)));
    }
    if url.starts_with("smtp://") || url.starts_with("smtps://") {
        return Ok(Arc::new(SmtpTransport::from_url(url)?));
    }
    Err(SendError::Config {
        reason: format!(
            "unknown mail transport {:?}: expected smtp://, smtps:// or file://",
            redact_url(url)
        ),
    })
}

/// Writes each mail as `<dir>/<message id without <> and with unsafe chars
/// replaced>.eml`, via a temp file + rename so a reader never sees half a
/// file, and so a resend of the same mail overwrites the same file instead of
/// making a second one.
///
/// That is why this is not lettre's `FileTransport`: lettre names each file by
/// a fresh random uuid, so a mail resent after a crash would appear twice in
/// the outbox, and it writes in place, so a reader can see a partial file.
#[derive(Clone, Debug)]
pub struct FileTransport {
    dir: PathBuf,
    dir_sync: Arc<DirSync>,
}

impl FileTransport {
    /// The directory is created on the first send, not here, so building the
    /// transport at startup has no side effects.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileTransport {
            dir: dir.into(),
            dir_sync: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the mail with this Message-ID is (or will be) written. Always a
    /// direct child of the directory, whatever the id contains.
    pub fn path_for(&self, message_id: &str) -> PathBuf {
        self.dir.join(format!("{}.eml", file_stem(message_id)))
    }
}

/// Longest stem we write; with `.eml`, a hash suffix and the temp-file
/// decoration it stays under the usual 255-byte file name limit.
const MAX_STEM: usize = 180;

fn file_stem(message_id: &str) -> String {
    let id = message_id.trim();
    let inner = id.strip_prefix('<').unwrap_or(id);
    let inner = inner.strip_suffix('>').unwrap_or(inner);
    let mut stem: String = inner
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '@' | '+' => c,
            _ => '_',
        })
        .collect();
    // A leading dot would hide the file, could make "." or "..", and would
    // collide with our own temp-file names.
    if stem.is_empty() || stem.starts_with('.') {
        stem.insert(0, '_');
    }
    // Ids from `message_id_for` are hex@domain and pass unchanged. Any other
    // id that had to be altered gets a hash of the original, so two ids that
    // differ only in replaced characters cannot overwrite each other's file.
    if stem != inner || stem.len() > MAX_STEM {
        stem.truncate(MAX_STEM); // ASCII only by now, so any index is a char boundary
        let digest = hex::encode(Sha256::digest(message_id.as_bytes()));
        stem.push('-');
        stem.push_str(&digest[..16]);
    }
    stem
}

#[async_trait]
impl MailTransport for FileTransport {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let mut sent = self.send_all(std::slice::from_ref(mail)).await;
        sent.pop().expect("one result per mail")
    }

    /// Writes the mails' files in one trip to the blocking pool. One trip
    /// each cost more than the writing: a thread woken and waited for per
    /// mail, in a drain a fifth of the worker's CPU in futex and scheduler
    /// work.
    async fn send_all(&self, mails: &[OutgoingMail]) -> Vec<Result<(), SendError>> {
        let mut results: Vec<Option<Result<(), SendError>>> = Vec::with_capacity(mails.len());
        let mut files = Vec::with_capacity(mails.len());
        for mail in mails {
            match build_message(mail) {
                Ok(message) => {
                    files.push((self.path_for(&mail.message_id), message.formatted()));
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(error.into()))),
            }
        }
        let paths: Vec<PathBuf> = files.iter().map(|(path, _)| path.clone()).collect();
        let mut written = write_atomically(&self.dir, files, &self.dir_sync)
            .await
            .into_iter()
            .zip(paths);
        results
            .into_iter()
            .zip(mails)
            .map(|(built, mail)| {
                built.unwrap_or_else(|| {
                    let (outcome, path) = written.next().expect("one outcome per file");
                    outcome.map_err(|source| SendError::Io { path: path.clone(), source })?;
                    tracing::debug!(message_id = %mail.message_id, path = %path.display(), "mail written to file");
                    Ok(())
                })
            })
            .collect()
    }
}

/// Writes each file atomically (see [`write_files`]), all in one trip to
/// the blocking pool, then makes the renames durable: one outcome per
/// file, in order.
async fn write_atomically(
    dir: &Path,
    files: Vec<(PathBuf, Vec<u8>)>,
    dir_sync: &DirSync,
) -> Vec<io::Result<()>> {
    let count = files.len();
    let dir_owned = dir.to_owned();
    let written = tokio::task::spawn_blocking(move || write_files(&dir_owned, &files)).await;
    let mut written = match written {
        Ok(written) => written,
        Err(join) => {
            let reason = join.to_string();
            return (0..count)
                .map(|_| Err(io::Error::other(reason.clone())))
                .collect();
        }
    };
    let renamed = written.iter().filter(|outcome| outcome.is_ok()).count();
    if renamed > 0 {
        // Make the renames themselves durable.
        if let Err(error) = dir_sync.after_renames(dir, renamed as u64).await {
            for outcome in written.iter_mut().filter(|outcome| outcome.is_ok()) {
                *outcome = Err(io::Error::new(error.kind(), error.to_string()));
            }
        }
    }
    written
}

/// Writes each of `files` to a temp file beside its path, syncs it and
/// renames it into place; creates the directory when it is missing. One
/// outcome per file, in order.
///
/// One after another on one thread: on this project's disks a file's
/// sync took as long (about 0.45 ms) whether the files of a batch were
/// synced one after another or side by side from threads of their own,
/// and the threads cost twice the CPU.
fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> Vec<io::Result<()>> {
    let temps: Vec<io::Result<TempFile>> = files
        .iter()
        .map(|(path, bytes)| TempFile::write(dir, path, bytes))
        .collect();
    temps
        .into_iter()
        .zip(files)
        .map(|(temp, (path, _))| temp?.sync_and_rename(path))
        .collect()
}

/// A mail's contents written under a temporary name, not yet synced.
struct TempFile {
    path: PathBuf,
    file: std::fs::File,
}

impl TempFile {
    fn write(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<TempFile> {
        use std::io::Write;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("mail.eml");
        // Unique per attempt, so two workers sending the same mail at once
        // do not write into one temp file; the dot keeps it out of `*.eml`
        // globs.
        let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Mails carry license keys: not world-readable, but readable by the
        // group so a pickup process need not run as this user.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        let file = match options.open(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                options.open(&tmp)?
            }
            opened => opened?,
        };
        let mut temp = TempFile { path: tmp, file };
        match temp.file.write_all(bytes) {
            Ok(()) => Ok(temp),
            Err(error) => {
                temp.discard();
                Err(error)
            }
        }
    }

    /// Contents reach the disk before the name points at them; otherwise a
    /// crash right after the rename could leave an empty mail behind a row
    /// already marked sent.
    fn sync_and_rename(self, path: &Path) -> io::Result<()> {
        match self.file.sync_all() {
            Ok(()) => std::fs::rename(&self.path, path).inspect_err(|_| self.discard()),
            Err(error) => {
                self.discard();
                Err(error)
            }
        }
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Group commit for the directory: one `fsync` of the directory makes
/// every rename finished before it durable, so concurrent sends share
/// one instead of queueing one each behind the disk.
#[derive(Debug, Default)]
struct DirSync {
    /// Renames finished so far, counted as they finish.
    renamed: std::sync::atomic::AtomicU64,
    /// How many of them the last completed directory sync covers.
    synced: tokio::sync::Mutex<u64>,
}

impl DirSync {
    /// Makes `count` renames just finished durable.
    async fn after_renames(&self, dir: &Path, count: u64) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        let mine = self.renamed.fetch_add(count, Ordering::AcqRel) + count;
        let mut synced = self.synced.lock().await;
        if *synced >= mine {
            return Ok(());
        }
        // Every rename counted by now has finished: this sync covers it.
        let covered = self.renamed.load(Ordering::Acquire);
        #[cfg(unix)]
        {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(io::Error::other)??;
        }
        *synced = covered;
        Ok(())
    }
}

/// SMTP through lettre's `AsyncSmtpTransport<Tokio1Executor>`, from a URL
/// like `smtp://127.0.0.1:2525` (plain, no TLS, for local relays) or
/// `smtp://user:pass@relay.internal:587/helo.name`.
///
/// lettre's own `from_url` exists only when one of lettre's TLS features is
/// on, and this build enables none (`builder`, `smtp-transport`, `tokio1`,
/// `hostname`), so [`SmtpTransport::from_url`] reads the same URL format
/// itself for `smtp://` and answers `smtps://` or `?tls=...` with a clear
/// configuration error. Enabling a TLS feature (e.g. `tokio1-rustls` with
/// `rustls-platform-verifier`) would let it hand those URLs to lettre's
/// `from_url` unchanged.
///
/// The URL may contain a password: `Debug` and every error show only the
/// scheme, host and port.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    endpoint: String,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    pub fn from_url(url: &str) -> Result<Self, SendError> {
        let parsed = parse_smtp_url(url).map_err(|reason| SendError::Config {
            // The reasons never quote the URL; scrubbing anyway keeps a
            // password out of logs if that ever changes.
            reason: scrub_credentials(&format!("SMTP URL {}: {reason}", redact_url(url)), url),
        })?;
        let endpoint = if parsed.host.contains(':') {
            format!("smtp://[{}]:{}", parsed.host, parsed.port)
        } else {
            format!("smtp://{}:{}", parsed.host, parsed.port)
        };
        // "dangerous" is lettre's name for "no TLS": what `smtp://` means.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(parsed.host).port(parsed.port);
        if let Some((user, password)) = parsed.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        if let Some(name) = parsed.hello_name {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        Ok(SmtpTransport {
            inner: builder.build(),
            endpoint,
        })
    }

    /// `smtp://host:port`, without credentials: safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[async_trait]
impl MailTransport for SmtpTransport {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let message = build_message(mail)?;
        self.inner
            .send(message)
            .await
            .map_err(SendError::from_smtp)?;
        tracing::debug!(message_id = %mail.message_id, endpoint = %self.endpoint, "mail sent over SMTP");
        Ok(())
    }
}

/// The parts of an `smtp://` URL, with user and password percent-decoded.
#[derive(Debug, PartialEq, Eq)]
struct SmtpUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
}

/// Reads `smtp://[user:password@]host[:port][/hello-name]` the way lettre's
/// `from_url` does: port 25 by default, credentials only when a password is
/// given, the path (if any) as the EHLO name. Errors never quote the URL.
fn parse_smtp_url(url: &str) -> Result<SmtpUrl, String> {
    let (scheme, rest) = url.split_once("://").ok_or("expected smtp://host:port")?;
    if scheme.eq_ignore_ascii_case("smtps") {
        return Err(
            "smtps:// needs TLS, and lettre's TLS features are not enabled in this \
                    build; use smtp:// to a local or internal relay"
                .into(),
        );
    }
    if !scheme.eq_ignore_ascii_case("smtp") {
        return Err("unsupported scheme, expected smtp://".into());
    }
    // RFC 3986: the authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None | Some("") => SMTP_PORT,
        Some(p) => p.parse().map_err(|_| "invalid port number")?,
    };
    let credentials = match userinfo.and_then(|u| u.split_once(':')) {
        Some((_, "")) | None => None,
        Some((user, password)) => Some((
            percent_decode(user).ok_or("user name is not valid percent-encoded UTF-8")?,
            percent_decode(password).ok_or("password is not valid percent-encoded UTF-8")?,
        )),
    };
    let (path, query) = {
        let tail = tail.split('#').next().unwrap_or("");
        tail.split_once('?').unwrap_or((tail, ""))
    };
    if query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("tls"))
    {
        return Err(
            "tls=... needs TLS, and lettre's TLS features are not enabled in this build".into(),
        );
    }
    let hello_name = Some(path.trim_matches('/'))
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    Ok(SmtpUrl {
        host: host.to_owned(),
        port,
        credentials,
        hello_name,
    })
}

const SMTP_PORT: u16 = 25;

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The user-info part of `scheme://user:pass@host...`. Taken up to the last
/// `@` of the whole URL, so a password with an unescaped `/` or `@` is still
/// treated as secret rather than shown as the host.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    match rest.rfind('@') {
        Some(at) => Some((scheme, &rest[..at], &rest[at + 1..])),
        None => Some((scheme, "", rest)),
    }
}

/// `scheme://host:port` without user-info, path or query, for messages.
fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, _, host_and_rest)) => {
            let end = host_and_rest
                .find(['/', '?', '#'])
                .unwrap_or(host_and_rest.len());
            format!("{scheme}://{}", &host_and_rest[..end])
        }
        None => "<not a URL>".to_owned(),
    }
}

fn scrub_credentials(text: &str, url: &str) -> String {
    let Some((_, userinfo, _)) = split_userinfo(url) else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    let password = userinfo.split_once(':').map_or("", |(_, p)| p);
    for secret in [userinfo, password] {
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::message::message_id_for;
    use super::super::message::testutil::{decode_rfc2047, decoded_parts, header};
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// Upper bound for one test's network exchange, so a protocol mistake
    /// fails the test instead of hanging CI. Not used to wait for anything.
    const LIMIT: Duration = Duration::from_secs(30);

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            TempDir(std::env::temp_dir().join(format!("fulfil-mail-test-{}", uuid::Uuid::new_v4())))
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sample_mail(cause: &str) -> OutgoingMail {
        OutgoingMail {
            message_id: message_id_for(cause, "mail.example.com"),
            from: "C-Chorus <noreply@example.com>".into(),
            to: "taro@example.co.jp".into(),
            subject: "[C-Chorus] C-Chorusライセンスキー発行のお知らせ".into(),
            body: "山田 太郎 様\n\nBODY-MARKER-7f3a\nライセンスキー: AAAA-0001\n".into(),
            attachments: vec![super::super::message::Attachment {
                filename: "AAAA-0001.lic".into(),
                content_type: "application/json".into(),
                content: r#"{"key":"AAAA-0001"}"#.into(),
            }],
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn file_transport_writes_a_readable_eml() {
        let tmp = TempDir::new();
        // A nested directory that does not exist yet: created on first send.
        let transport = FileTransport::new(tmp.0.join("outbox"));
        let mail = sample_mail("license_issued:0190f3a2");
        transport.send(&mail).await.unwrap();

        let path = transport.path_for(&mail.message_id);
        assert_eq!(path.parent(), Some(tmp.0.join("outbox").as_path()));
        let raw = std::fs::read_to_string(&path).unwrap();
        assert_eq!(header(&raw, "Message-ID").unwrap(), mail.message_id);
        assert_eq!(header(&raw, "To").unwrap(), "taro@example.co.jp");
        let subject = header(&raw, "Subject").unwrap();
        assert!(subject.contains("=?utf-8?b?"), "not RFC 2047: {subject}");
        assert_eq!(decode_rfc2047(&subject), mail.subject);
        let parts = decoded_parts(&raw);
        assert!(parts[0].contains("BODY-MARKER-7f3a"), "{parts:?}");
        assert!(parts[0].contains("山田 太郎 様"));
        assert_eq!(parts[1], r#"{"key":"AAAA-0001"}"#);
        // No temp file left behind.
        assert_eq!(
            entries(&tmp.0.join("outbox")),
            [format!(
                "{}.eml",
                &mail.message_id[1..mail.message_id.len() - 1]
            )]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o007, 0, "mail file is world-accessible: {mode:o}");
        }
    }

    #[tokio::test]
    async fn resending_overwrites_the_same_file() {
        let tmp = TempDir::new();
        let transport = FileTransport::new(&tmp.0);
        let mut mail = sample_mail("license_issued:resend");
        transport.send(&mail).await.unwrap();
        mail.body = "second attempt BODY-MARKER-2\n".into();
        transport.send(&mail).await.unwrap();
        assert_eq!(entries(&tmp.0).len(), 1, "{:?}", entries(&tmp.0));
        let raw = std::fs::read_to_string(transport.path_for(&mail.message_id)).unwrap();
        assert!(decoded_parts(&raw)[0].contains("BODY-MARKER-2"));

        // A different cause is a different mail and a different file.
        transport
            .send(&sample_mail("license_added:other"))
            .await
            .unwrap();
        assert_eq!(entries(&tmp.0).len(), 2);
    }

    #[tokio::test]
    async fn a_batch_writes_every_good_mail_and_reports_the_broken_one() {
        let tmp = TempDir::new();
        let transport = FileTransport::new(tmp.0.join("outbox"));
        let first = sample_mail("license_issued:batch-1");
        let mut broken = sample_mail("license_issued:batch-2");
        broken.to = "nobody".into();
        let last = sample_mail("license_issued:batch-3");
        let sent = transport
            .send_all(&[first.clone(), broken, last.clone()])
            .await;
        assert!(sent[0].is_ok(), "{:?}", sent[0]);
        assert!(
            matches!(sent[1], Err(SendError::Message(_))),
            "{:?}",
            sent[1]
        );
        assert!(sent[2].is_ok(), "{:?}", sent[2]);
        for mail in [&first, &last] {
            let raw = std::fs::read_to_string(transport.path_for(&mail.message_id)).unwrap();
            assert_eq!(header(&raw, "Message-ID").unwrap(), mail.message_id);
        }
        // Two mails, no temp file left behind.
        assert_eq!(entries(&tmp.0.join("outbox")).len(), 2);
    }

    #[tokio::test]
    async fn concurrent_sends_of_one_mail_leave_one_file() {
        let tmp = TempDir::new();
        let transport = Arc::new(FileTransport::new(&tmp.0));
        let mail = sample_mail("license_issued:race");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (t, m) = (transport.clone(), mail.clone());
                tokio::spawn(async move { t.send(&m).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(entries(&tmp.0).len(), 1, "{:?}", entries(&tmp.0));
    }

    #[test]
    fn path_for_stays_inside_the_directory() {
        let t = FileTransport::new("/var/mail/out");
        assert_eq!(
            t.path_for("<0123abcd@mail.example.com>"),
            Path::new("/var/mail/out/0123abcd@mail.example.com.eml")
        );
        for id in [
            "<../../etc/passwd@x>",
            "<..>",
            "</abs/path@x>",
            "<a\\b@x>",
            "<>",
            "",
            "<.hidden@x>",
            "<ä@x>",
        ] {
            let p = t.path_for(id);
            assert_eq!(p.parent(), Some(Path::new("/var/mail/out")), "{id:?}");
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(!name.starts_with('.'), "{id:?} -> {name}");
            assert!(name.ends_with(".eml"));
        }
        assert_ne!(t.path_for("<a/b@x>"), t.path_for("<a_b@x>"));
        assert_ne!(t.path_for("<a/b@x>"), t.path_for("<a:b@x>"));
        let long = format!("<{}@x>", "a".repeat(1000));
        let name = t.path_for(&long);
        assert!(name.file_name().unwrap().len() < 255);
        assert_ne!(name, t.path_for(&format!("<{}@x>", "a".repeat(999))));
    }

    #[tokio::test]
    async fn file_transport_reports_unwritable_directory() {
        let tmp = TempDir::new();
        std::fs::write(&tmp.0, b"a file, not a directory").unwrap();
        let err = FileTransport::new(&tmp.0)
            .send(&sample_mail("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Io { .. }), "{err:?}");
        assert!(err.is_transient());
        let _ = std::fs::remove_file(&tmp.0);
    }

    #[tokio::test]
    async fn broken_mail_is_permanent() {
        let tmp = TempDir::new();
        let mut mail = sample_mail("x");
        mail.to = "nobody".into();
        let err = FileTransport::new(&tmp.0).send(&mail).await.unwrap_err();
        assert!(matches!(err, SendError::Message(_)), "{err:?}");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("to address"), "{err}");
        assert!(!tmp.0.exists(), "nothing written for a broken mail");
    }

    #[derive(Debug, Default)]
    struct Captured {
        mail_from: String,
        rcpt_to: Vec<String>,
        data: String,
    }

    /// A minimal SMTP server for one connection: 220 greeting, EHLO/HELO 250,
    /// MAIL 250, RCPT `rcpt_reply`, DATA 354 ... "." 250, QUIT 221. Returns
    /// what it received once the client hangs up.
    async fn fake_smtp(rcpt_reply: &'static str) -> (u16, JoinHandle<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut captured = Captured::default();
            if write
                .write_all(b"220 localhost fake ESMTP\r\n")
                .await
                .is_err()
            {
                return captured;
            }
            while let Ok(Some(line)) = lines.next_line().await {
                let command = line.to_ascii_uppercase();
                let reply = if command.starts_with("EHLO") || command.starts_with("HELO") {
                    "250 localhost\r\n"
                } else if command.starts_with("MAIL FROM:") {
                    captured.mail_from = line[10..].trim().to_owned();
                    "250 2.1.0 OK\r\n"
                } else if command.starts_with("RCPT TO:") {
                    captured.rcpt_to.push(line[8..].trim().to_owned());
                    rcpt_reply
                } else if command == "DATA" {
                    if write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await
                        .is_err()
                    {
                        break;
                    }
                    while let Ok(Some(data_line)) = lines.next_line().await {
                        if data_line == "." {
                            break;
                        }
                        // Undo the client's dot-stuffing.
                        let data_line = data_line.strip_prefix('.').unwrap_or(&data_line);
                        captured.data.push_str(data_line);
                        captured.data.push_str("\r\n");
                    }
                    "250 2.0.0 OK queued\r\n"
                } else if command == "QUIT" {
                    let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                    break;
                } else if command == "RSET" || command == "NOOP" {
                    "250 2.0.0 OK\r\n"
                } else {
                    "502 5.5.2 Command not implemented\r\n"
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
            captured
        });
        (port, server)
    }

    #[tokio::test]
    async fn smtp_delivers_to_a_real_listener() {
        let (port, server) = fake_smtp("250 2.1.5 OK\r\n").await;
        let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let mail = sample_mail("license_issued:smtp");
        tokio::time::timeout(LIMIT, transport.send(&mail))
            .await
            .expect("send timed out")
            .unwrap();
        let captured = tokio::time::timeout(LIMIT, server)
            .await
            .expect("server timed out")
            .unwrap();

        assert_eq!(captured.mail_from, "<noreply@example.com>");
        assert_eq!(captured.rcpt_to, ["<taro@example.co.jp>"]);
        assert_eq!(
            header(&captured.data, "Message-ID").unwrap(),
            mail.message_id
        );
        assert_eq!(header(&captured.data, "To").unwrap(), "taro@example.co.jp");
        assert_eq!(
            decode_rfc2047(&header(&captured.data, "Subject").unwrap()),
            mail.subject
        );
        assert!(decoded_parts(&captured.data)[0].contains("BODY-MARKER-7f3a"));
    }

    #[tokio::test]
    async fn smtp_rejected_recipient_is_permanent() {
        let (port, server) = fake_smtp("550 5.1.1 No such user\r\n").await;
        let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let err = tokio::time::timeout(LIMIT, transport.send(&sample_mail("x")))
            .await
            .expect("send timed out")
            .unwrap_err();
        assert!(matches!(err, SendError::SmtpRejected { .. }), "{err:?}");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("550"), "{err}");
        let captured = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
        assert!(captured.data.is_empty(), "no DATA after a rejected RCPT");
    }

    #[tokio::test]
    async fn smtp_4xx_is_transient() {
        let (port, server) = fake_smtp("451 4.3.0 Try again later\r\n").await;
        let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let err = tokio::time::timeout(LIMIT, transport.send(&sample_mail("x")))
            .await
            .expect("send timed out")
            .unwrap_err();
        assert!(matches!(err, SendError::SmtpTransient { .. }), "{err:?}");
        assert!(err.is_transient());
        tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn smtp_refused_connection_is_transient() {
        // Bind to learn a free port, then close it: nothing listens there.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let err = tokio::time::timeout(LIMIT, transport.send(&sample_mail("x")))
            .await
            .expect("send timed out")
            .unwrap_err();
        assert!(matches!(err, SendError::SmtpTransient { .. }), "{err:?}");
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn smtp_url_password_never_shown() {
        let ok = SmtpTransport::from_url("smtp://mailer:hunter2@127.0.0.1:2525").unwrap();
        assert_eq!(ok.endpoint(), "smtp://127.0.0.1:2525");
        assert!(!format!("{ok:?}").contains("hunter2"));

        for url in [
            // No TLS feature in this build: a configuration error, not a panic.
            "smtps://mailer:hunter2@mail.example.com",
            "smtp://mailer:hunter2@",
            "smtp://mailer:hunter2@host:notaport",
            "smtp://mailer:hun/ter2@host",
            "ftp://mailer:hunter2@host",
        ] {
            match SmtpTransport::from_url(url) {
                Ok(t) => assert!(!format!("{t:?}").contains("hunter2"), "{url}"),
                Err(e) => {
                    assert!(matches!(e, SendError::Config { .. }), "{url}: {e:?}");
                    assert!(!e.is_transient());
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains("hunter2"), "{url}: {shown}");
                    assert!(
                        !shown.contains("hun/ter2") && !shown.contains("ter2"),
                        "{shown}"
                    );
                }
            }
            match transport_from_url(url) {
                Ok(_) => {}
                Err(e) => assert!(!format!("{e} {e:?}").contains("hunter2"), "{url}"),
            }
        }
    }

    #[tokio::test]
    async fn transport_from_url_picks_the_implementation() {
        let tmp = TempDir::new();
        let url = format!("file://{}", tmp.0.display());
        let transport = transport_from_url(&url).unwrap();
        let mail = sample_mail("license_issued:from-url");
        transport.send(&mail).await.unwrap();
        assert!(
            FileTransport::new(&tmp.0)
                .path_for(&mail.message_id)
                .exists()
        );
        assert!(transport_from_url("smtp://127.0.0.1:2525").is_ok());
        assert!(matches!(
            transport_from_url("file://"),
            Err(SendError::Config { .. })
        ));
        assert!(matches!(
            transport_from_url("/var/mail"),
            Err(SendError::Config { .. })
        ));
    }

    #[test]
    fn smtp_url_parsing() {
        let plain = parse_smtp_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            plain,
            SmtpUrl {
                host: "127.0.0.1".into(),
                port: 2525,
                credentials: None,
                hello_name: None
            }
        );
        assert_eq!(parse_smtp_url("smtp://relay.internal").unwrap().port, 25);
        assert_eq!(parse_smtp_url("SMTP://relay.internal:").unwrap().port, 25);
        let full =
            parse_smtp_url("smtp://mailer%40corp:p%2Fss%3Aw@relay.internal:587/fulfil.example")
                .unwrap();
        assert_eq!(full.host, "relay.internal");
        assert_eq!(full.port, 587);
        assert_eq!(
            full.credentials,
            Some(("mailer@corp".to_owned(), "p/ss:w".to_owned()))
        );
        assert_eq!(full.hello_name.as_deref(), Some("fulfil.example"));
        // Like lettre: a user without a password means no authentication.
        assert_eq!(
            parse_smtp_url("smtp://mailer@relay").unwrap().credentials,
            None
        );
        let v6 = parse_smtp_url("smtp://[::1]:2525").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2525));
        assert_eq!(
            SmtpTransport::from_url("smtp://u:p@[::1]:2525")
                .unwrap()
                .endpoint(),
            "smtp://[::1]:2525"
        );

        for bad in [
            "127.0.0.1:2525",
            "smtps://relay",
            "smtp://relay?tls=required",
            "http://relay",
            "smtp://",
            "smtp://:25",
            "smtp://relay:99999",
            "smtp://[::1",
            "smtp://u:%zz@relay",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad} accepted");
        }
    }
}
