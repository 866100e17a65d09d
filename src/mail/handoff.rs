//! Mail handed straight to this process's `mail.send` worker.
//!
//! A mail's job is written, as every job is, with its outbox row in the
//! transaction that causes it. When the process runs `mail.send` itself,
//! the row is written to fall due only after a grace period, and once the
//! transaction commits the job goes to the local worker over a channel:
//! no publish, no confirm, no delivery, no relay claim. The local attempt
//! deletes the row when it commits. A place in the channel is
//! taken for each mail before its row is written; when there is none (the
//! local worker is behind) the row is written due at once and the relay
//! publishes it. Should the process die before the handoff, the row falls
//! due after the grace and the relay publishes it as any other: the broker
//! path is the fallback, and a copy that arrives after the local attempt
//! finds its job finished.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{self, OwnedPermit};

use crate::job::Envelope;

/// A job given to the local worker: the body the relay would publish,
/// its message id (the job's id, as the relay sets it), and the outbox
/// row that the attempt deletes when it commits.
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
    held: Arc<Mutex<Held>>,
}

/// What an attempt holds until its transaction ends: a place in the
/// channel for each mail whose row it writes with the grace, and the
/// jobs that took their place.
#[derive(Default)]
struct Held {
    places: Vec<OwnedPermit<HandedOff>>,
    jobs: Vec<(OwnedPermit<HandedOff>, HandedOff)>,
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

    /// How long the outbox rows of `mails` more mails are held back: the
    /// grace when the local worker has room for all of them, else zero.
    /// The room is taken now, not looked at: attempts that commit side
    /// by side cannot each count the same free places and then find the
    /// channel full, which left their mails to wait out the grace.
    pub fn hold_for(&self, mails: usize) -> Duration {
        let Some(to) = &self.to else {
            return Duration::ZERO;
        };
        if self.grace.is_zero() {
            return Duration::ZERO;
        }
        let mut places = Vec::with_capacity(mails);
        for _ in 0..mails {
            match to.clone().try_reserve_owned() {
                Ok(place) => places.push(place),
                // The places taken so far are given back as they drop.
                Err(_) => return Duration::ZERO,
            }
        }
        self.lock().places.extend(places);
        self.grace
    }

    /// Keeps jobs whose rows were written with [`Handoff::hold_for`]'s
    /// grace until the transaction's end, each in a place taken for it;
    /// places left over (a mail whose cause had one already) go back.
    pub fn hold(&self, jobs: impl IntoIterator<Item = HandedOff>) {
        let mut held = self.lock();
        for job in jobs {
            match held.places.pop() {
                Some(place) => held.jobs.push((place, job)),
                // Not held back by hold_for: its row is due now.
                None => break,
            }
        }
        held.places.clear();
    }

    /// The transaction committed: the held jobs go to the local worker,
    /// into the places kept for them.
    pub fn release(&self) {
        let mut held = self.lock();
        held.places.clear();
        for (place, job) in std::mem::take(&mut held.jobs) {
            place.send(job);
        }
    }

    /// The transaction rolled back: nothing it held exists.
    pub fn discard(&self) {
        let mut held = self.lock();
        held.places.clear();
        held.jobs.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic while holding the list cannot leave it half-written.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn jobs(n: i64) -> impl Iterator<Item = HandedOff> {
        (0..n).map(|outbox_id| HandedOff {
            body: Vec::new(),
            message_id: outbox_id.to_string(),
            outbox_id,
        })
    }

    #[test]
    fn attempts_side_by_side_cannot_count_the_same_free_places() {
        let (to, mut local_worker) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let (first, second) = (handoff.for_attempt(), handoff.for_attempt());

        assert_eq!(first.hold_for(3), GRACE);
        assert_eq!(second.hold_for(3), Duration::ZERO, "one place is left");
        assert_eq!(second.hold_for(1), GRACE);
        first.hold(jobs(3));
        second.hold(jobs(1));
        first.release();
        second.release();

        let arrived = std::iter::from_fn(|| local_worker.try_recv().ok()).count();
        assert_eq!(arrived, 4, "every held job reached the local worker");
    }

    #[test]
    fn a_rolled_back_attempt_gives_its_places_back() {
        let (to, _local_worker) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let rolled_back = handoff.for_attempt();
        assert_eq!(rolled_back.hold_for(4), GRACE);
        rolled_back.hold(jobs(4));

        rolled_back.discard();

        assert_eq!(handoff.for_attempt().hold_for(4), GRACE);
    }

    #[test]
    fn places_not_used_by_a_mail_go_back_when_the_rest_are_held() {
        let (to, _local_worker) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let attempt = handoff.for_attempt();
        assert_eq!(attempt.hold_for(4), GRACE);

        // Two of the four mails had a cause that was mailed already.
        attempt.hold(jobs(2));

        let other = handoff.for_attempt();
        assert_eq!(other.hold_for(2), GRACE);
        assert_eq!(handoff.for_attempt().hold_for(1), Duration::ZERO);
    }
}
