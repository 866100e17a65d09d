//! Mail handed straight to this process's mail sender.
//!
//! A mail is written in the transaction that causes it. When the process
//! runs `mail.send` itself, the mail is written as this process's to send
//! for a grace period, with no job, and once the transaction commits its
//! id goes to the local sender (`runtime::mail_sender`) over a channel: no
//! job row, no outbox row, no publish, no delivery. A place in the
//! channel is taken for each mail before its row is written; when there
//! is none (the sender is behind) the mail is written with its job, due
//! at once, and the relay publishes it. Should the process die before
//! the send, the grace runs out and a relay gives the mail its job
//! (`store::mails::queue_stale_handoffs`): the broker path is the
//! fallback, and a job that arrives after a late send finds its mail sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{self, OwnedPermit};
use uuid::Uuid;

/// A mail given to the local sender, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOff {
    pub mail_id: Uuid,
}

/// Where this process's mails go after their commit. Each attempt
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
/// mails that took their place.
#[derive(Default)]
struct Held {
    places: Vec<OwnedPermit<HandedOff>>,
    mails: Vec<(OwnedPermit<HandedOff>, HandedOff)>,
}

impl Handoff {
    /// No local sender: every mail goes through the broker.
    pub fn none() -> Handoff {
        Handoff {
            to: None,
            grace: Duration::ZERO,
            held: Arc::default(),
        }
    }

    /// Hands mails to `to`, keeping them this process's for `grace`.
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

    /// How long `mails` more mails are this process's to send: the grace
    /// when the local sender has room for all of them, else zero (they
    /// are written with their jobs).
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

    /// Keeps mails written with [`Handoff::hold_for`]'s grace until the
    /// transaction's end, each in a place taken for it; places left over
    /// (a mail whose cause had one already) go back.
    pub fn hold(&self, mails: impl IntoIterator<Item = HandedOff>) {
        let mut held = self.lock();
        for mail in mails {
            match held.places.pop() {
                Some(place) => held.mails.push((place, mail)),
                // Not held back by hold_for: its row is due now.
                None => break,
            }
        }
        held.places.clear();
    }

    /// The transaction committed: the held mails go to the local sender,
    /// into the places kept for them.
    pub fn release(&self) {
        let mut held = self.lock();
        held.places.clear();
        for (place, mail) in std::mem::take(&mut held.mails) {
            place.send(mail);
        }
    }

    /// The transaction rolled back: nothing it held exists.
    pub fn discard(&self) {
        let mut held = self.lock();
        held.places.clear();
        held.mails.clear();
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

    fn mails(n: usize) -> impl Iterator<Item = HandedOff> {
        (0..n).map(|_| HandedOff {
            mail_id: Uuid::now_v7(),
        })
    }

    #[test]
    fn attempts_side_by_side_cannot_count_the_same_free_places() {
        let (to, mut local_sender) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let (first, second) = (handoff.for_attempt(), handoff.for_attempt());

        assert_eq!(first.hold_for(3), GRACE);
        assert_eq!(second.hold_for(3), Duration::ZERO, "one place is left");
        assert_eq!(second.hold_for(1), GRACE);
        first.hold(mails(3));
        second.hold(mails(1));
        first.release();
        second.release();

        let arrived = std::iter::from_fn(|| local_sender.try_recv().ok()).count();
        assert_eq!(arrived, 4, "every held mail reached the local sender");
    }

    #[test]
    fn a_rolled_back_attempt_gives_its_places_back() {
        let (to, _local_sender) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let rolled_back = handoff.for_attempt();
        assert_eq!(rolled_back.hold_for(4), GRACE);
        rolled_back.hold(mails(4));

        rolled_back.discard();

        assert_eq!(handoff.for_attempt().hold_for(4), GRACE);
    }

    #[test]
    fn places_not_used_by_a_mail_go_back_when_the_rest_are_held() {
        let (to, _local_sender) = mpsc::channel(4);
        let handoff = Handoff::to(to, GRACE);
        let attempt = handoff.for_attempt();
        assert_eq!(attempt.hold_for(4), GRACE);

        // Two of the four mails had a cause that was mailed already.
        attempt.hold(mails(2));

        let other = handoff.for_attempt();
        assert_eq!(other.hold_for(2), GRACE);
        assert_eq!(handoff.for_attempt().hold_for(1), Duration::ZERO);
    }
}
