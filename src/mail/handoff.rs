//! Mail handed straight to this process's `mail.send` worker.
//!
//! A mail's job is written, as every job is, with its outbox row in the
//! transaction that causes it. When the process runs `mail.send` itself,
//! the row is written to fall due only after a grace period, and once the
//! transaction commits the job goes to the local worker over a channel:
//! no publish, no confirm, no delivery, no relay claim. The local attempt
//! marks the row published when it commits. Should the process die first,
//! or the local worker be full, the row falls due after the grace and the
//! relay publishes it as any other: the broker path is the fallback, and
//! a copy that arrives after the local attempt finds its job finished.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::job::Envelope;

/// A job given to the local worker: the body the relay would publish,
/// its message id (the job's id, as the relay sets it), and the outbox
/// row that the attempt marks published when it commits.
#[derive(Debug)]
pub struct HandedOff {
    pub body: Vec<u8>,
    pub message_id: String,
    pub outbox_id: i64,
}

impl HandedOff {
    pub fn new(envelope: &Envelope, outbox_id: i64) -> HandedOff {
        HandedOff {
            body: serde_json::to_vec(envelope).expect("an envelope serialises"),
            message_id: envelope.job_id.to_string(),
            outbox_id,
        }
    }
}

/// Where this process's mail jobs go after their commit. Each attempt
/// works on its own copy ([`Handoff::for_attempt`]): what it holds goes
/// out only if its own transaction commits.
#[derive(Clone)]
pub struct Handoff {
    to: Option<mpsc::Sender<HandedOff>>,
    grace: Duration,
    held: Arc<Mutex<Vec<HandedOff>>>,
}

impl Handoff {
    /// No local `mail.send` worker: every mail goes through the broker.
    pub fn none() -> Handoff {
        Handoff {
            to: None,
            grace: Duration::ZERO,
            held: Arc::default(),
        }
    }

    /// Hands jobs to `to`, holding their outbox rows back for `grace`.
    pub fn to(to: mpsc::Sender<HandedOff>, grace: Duration) -> Handoff {
        Handoff {
            to: Some(to),
            grace,
            held: Arc::default(),
        }
    }

    /// The same channel, with nothing held yet.
    pub fn for_attempt(&self) -> Handoff {
        Handoff {
            to: self.to.clone(),
            grace: self.grace,
            held: Arc::default(),
        }
    }

    /// How long the outbox rows of `mails` more mails are held back:
    /// the grace when the local worker has room for them, else zero.
    pub fn hold_for(&self, mails: usize) -> Duration {
        match &self.to {
            Some(to) if !self.grace.is_zero() && to.capacity() >= self.held_len() + mails => {
                self.grace
            }
            _ => Duration::ZERO,
        }
    }

    /// Keeps jobs whose rows were written with [`Handoff::hold_for`]'s
    /// grace until the transaction's end.
    pub fn hold(&self, jobs: impl IntoIterator<Item = HandedOff>) {
        self.lock().extend(jobs);
    }

    /// The transaction committed: the held jobs go to the local worker.
    /// One that finds the channel full is left to the relay.
    pub fn release(&self) {
        let held = std::mem::take(&mut *self.lock());
        let Some(to) = &self.to else { return };
        for job in held {
            if let Err(error) = to.try_send(job) {
                let job_id = match &error {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => &job.message_id,
                };
                tracing::debug!(%job_id, grace = ?self.grace, "the local mail worker is full; the relay publishes the job after the grace");
            }
        }
    }

    /// The transaction rolled back: nothing it held exists.
    pub fn discard(&self) {
        self.lock().clear();
    }

    fn held_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<HandedOff>> {
        // A panic while holding the list cannot leave it half-written.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
