//! A per-process cache of token lookups, so a request does not cost a
//! database round trip (and a commit) just to say who is calling.
//!
//! Only known, unrevoked tokens are cached; a miss always asks the
//! database, so a new token works at once. Any change to `api_tokens`
//! (a revocation, a new rate limit) fires `NOTIFY fulfil_tokens` from a
//! trigger, and every process clears its cache on it. The cache is used
//! only while this process is listening: when the listener is down, every
//! lookup goes to the database, as without a cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::retry::Backoff;
use crate::store::tokens::{self, TokenIdentity};

pub const CHANNEL: &str = "fulfil_tokens";

#[derive(Default)]
pub struct TokenCache {
    /// By the hash of the secret: the secret itself is kept nowhere.
    entries: Mutex<HashMap<Vec<u8>, TokenIdentity>>,
    /// Bumped on every invalidation, so a lookup that raced a revocation
    /// does not put what it read before the revocation into the cache.
    generation: AtomicU64,
    listening: AtomicBool,
}

impl TokenCache {
    /// The caller behind `secret`, from the cache or the database.
    pub async fn find(&self, pool: &PgPool, secret: &str) -> sqlx::Result<Option<TokenIdentity>> {
        let hash = tokens::hash_secret(secret);
        let listening = self.listening.load(Ordering::Acquire);
        if listening
            && let Some(identity) = self
                .entries
                .lock()
                .expect("token cache poisoned")
                .get(&hash)
        {
            return Ok(Some(identity.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = tokens::find_by_hash(pool, &hash).await?;
        if let Some(identity) = &found
            && listening
        {
            let mut entries = self.entries.lock().expect("token cache poisoned");
            // Checked under the lock that `invalidate` clears under.
            if self.listening.load(Ordering::Acquire)
                && self.generation.load(Ordering::Acquire) == generation
            {
                entries.insert(hash, identity.clone());
            }
        }
        Ok(found)
    }

    fn invalidate(&self) {
        let mut entries = self.entries.lock().expect("token cache poisoned");
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn set_listening(&self, listening: bool) {
        self.invalidate();
        self.listening.store(listening, Ordering::Release);
    }

    /// Listens for token changes until `shutdown`, reconnecting with
    /// backoff; the cache is off whenever the listener is.
    pub async fn watch(self: std::sync::Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let connecting = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                sqlx::Result::Ok(listener)
            };
            let connected: sqlx::Result<PgListener> = tokio::select! {
                _ = shutdown.cancelled() => return,
                connected = connecting => connected,
            };
            if let Ok(mut listener) = connected {
                self.set_listening(true);
                backoff.reset();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            self.set_listening(false);
                            return;
                        }
                        notified = listener.try_recv() => match notified {
                            Ok(Some(_)) => self.invalidate(),
                            // None: the connection was lost (and any
                            // notification with it).
                            Ok(None) | Err(_) => break,
                        },
                    }
                }
            }
            self.set_listening(false);
            let delay = backoff.next_delay();
            tracing::warn!(retry_in = ?delay, "token cache lost its listener; looking tokens up in the database meanwhile");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}
