//! The acks of one consumer's channel, in as few frames as the order in
//! which deliveries settle allows.
//!
//! An ack with `multiple` settles every delivery up to its tag, so the
//! settled run at the front of the channel's deliveries (its lowest tags)
//! goes in one frame. A delivery that settles behind one still running is
//! acked on its own at once: held back, it would keep its place in the
//! prefetch window for as long as the job before it runs. A delivery
//! handed back (nacked) is no longer the broker's to count, so an ack with
//! `multiple` may pass over it; but it must be nacked before such an ack,
//! or the ack would settle it.

use std::collections::BTreeMap;

/// How a delivery of the channel was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its attempt is recorded: to be acked.
    Done,
    /// Already settled with the broker (handed back, or acked on its own).
    WithBroker,
}

/// The channel's deliveries not yet acked, by delivery tag: `None` while
/// the attempt runs.
#[derive(Debug, Default)]
pub struct PendingAcks {
    deliveries: BTreeMap<u64, Option<Settled>>,
}

/// What to send after a batch settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acks {
    /// One ack with `multiple` up to this tag.
    pub up_to: Option<u64>,
    /// Acks of one delivery each: settled behind a delivery still running.
    pub each: Vec<u64>,
}

impl PendingAcks {
    pub fn delivered(&mut self, tag: u64) {
        self.deliveries.insert(tag, None);
    }

    pub fn settle(&mut self, tag: u64, how: Settled) {
        if let Some(state) = self.deliveries.get_mut(&tag) {
            *state = Some(how);
        }
    }

    /// The acks that settle every delivery done so far; the deliveries
    /// they cover are forgotten, or remembered as settled with the broker.
    pub fn take(&mut self) -> Acks {
        let mut acks = Acks::default();
        while let Some(front) = self.deliveries.first_entry() {
            let Some(how) = *front.get() else { break };
            let tag = front.remove_entry().0;
            if how == Settled::Done {
                acks.up_to = Some(tag);
            }
        }
        for (&tag, state) in &mut self.deliveries {
            if *state == Some(Settled::Done) {
                acks.each.push(tag);
                *state = Some(Settled::WithBroker);
            }
        }
        acks
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(up_to: Option<u64>, each: &[u64]) -> Acks {
        Acks {
            up_to,
            each: each.to_vec(),
        }
    }

    fn pending(tags: std::ops::RangeInclusive<u64>) -> PendingAcks {
        let mut acks = PendingAcks::default();
        tags.for_each(|tag| acks.delivered(tag));
        acks
    }

    #[test]
    fn a_settled_run_at_the_front_is_one_ack() {
        let mut acks = pending(1..=6);
        (1..=3).for_each(|tag| acks.settle(tag, Settled::Done));

        assert_eq!(acks.take(), sent(Some(3), &[]));
        assert_eq!(acks.take(), Acks::default(), "nothing twice");
    }

    #[test]
    fn deliveries_settled_behind_a_running_one_are_acked_each_and_not_again() {
        let mut acks = pending(1..=6);
        (4..=6).for_each(|tag| acks.settle(tag, Settled::Done));

        assert_eq!(acks.take(), sent(None, &[4, 5, 6]));

        (1..=3).for_each(|tag| acks.settle(tag, Settled::Done));
        // 4..=6 are settled already: the multiple ack may pass over them.
        assert_eq!(acks.take(), sent(Some(3), &[]));
        assert!(acks.is_empty());
    }

    #[test]
    fn a_running_delivery_is_never_covered() {
        let mut acks = pending(1..=4);
        acks.settle(1, Settled::Done);
        acks.settle(3, Settled::Done);

        let due = acks.take();

        assert_eq!(due, sent(Some(1), &[3]));
        assert!(!acks.is_empty(), "2 and 4 still run");
    }

    #[test]
    fn a_handed_back_delivery_ends_the_run_only_while_it_is_unsettled() {
        let mut acks = pending(1..=3);
        acks.settle(1, Settled::Done);
        acks.settle(3, Settled::Done);
        acks.settle(2, Settled::WithBroker);

        assert_eq!(acks.take(), sent(Some(3), &[]));
    }

    #[test]
    fn a_run_of_deliveries_handed_back_needs_no_ack() {
        let mut acks = pending(1..=2);
        acks.settle(1, Settled::WithBroker);
        acks.settle(2, Settled::WithBroker);

        assert_eq!(acks.take(), Acks::default());
        assert!(acks.is_empty());
    }
}
