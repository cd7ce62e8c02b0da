//! The pool's bookkeeping, kept apart from wasmtime so it can be tested
//! with plain values and an injected clock.
//!
//! A pool has `max_instances` slots. A slot is idle (holding a warm
//! instance), busy (serving a request), or starting (an instance being
//! created ahead of demand). A request that finds no idle instance and no
//! free slot waits in a bounded FIFO queue; past the bound it is rejected.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What a waiting request receives when a slot frees up: a warm instance,
/// or `None`, the right to create one (a cold start).
pub(super) type Grant<T> = Option<T>;

/// The answer to a request for a slot.
pub(super) enum Acquire<T> {
    /// An idle instance, now busy.
    Warm(T),
    /// A free slot, now busy: create an instance (cold start).
    Cold,
    /// Queued: wait for a grant.
    Wait(oneshot::Receiver<Grant<T>>),
    /// The queue is full.
    Rejected,
}

/// Counts for logs and the admin view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SlotCounts {
    /// Warm instances waiting for work.
    pub(crate) idle: u32,
    /// Instances serving a request.
    pub(crate) busy: u32,
    /// Instances being created ahead of demand.
    pub(crate) starting: u32,
    /// Requests waiting for an instance.
    pub(crate) queued: u32,
}

pub(super) struct Slots<T> {
    /// Oldest idle first; reuse takes the newest (warmest caches) and
    /// expiry takes the oldest.
    idle: VecDeque<(T, Instant)>,
    busy: u32,
    starting: u32,
    waiters: VecDeque<oneshot::Sender<Grant<T>>>,
}

impl<T> Slots<T> {
    pub(super) fn new() -> Self {
        Self {
            idle: VecDeque::new(),
            busy: 0,
            starting: 0,
            waiters: VecDeque::new(),
        }
    }

    pub(super) fn counts(&self) -> SlotCounts {
        SlotCounts {
            idle: self.idle.len() as u32,
            busy: self.busy,
            starting: self.starting,
            queued: self.waiters.len() as u32,
        }
    }

    /// Instances that exist or are being created.
    pub(super) fn total(&self) -> u32 {
        self.idle.len() as u32 + self.busy + self.starting
    }

    pub(super) fn acquire(&mut self, max_instances: u32, max_queue: u32) -> Acquire<T> {
        if let Some((instance, _)) = self.idle.pop_back() {
            self.busy += 1;
            return Acquire::Warm(instance);
        }
        if self.total() < max_instances {
            self.busy += 1;
            return Acquire::Cold;
        }
        self.forget_gone_waiters();
        if self.waiters.len() as u32 >= max_queue {
            return Acquire::Rejected;
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters.push_back(sender);
        Acquire::Wait(receiver)
    }

    /// Drops waiters that stopped waiting (timed out, disconnected), so
    /// they do not count against the queue bound.
    pub(super) fn forget_gone_waiters(&mut self) {
        self.waiters.retain(|waiter| !waiter.is_closed());
    }

    /// A busy slot is done. `instance` is the instance if it may serve
    /// again. The slot goes to the first waiter, else the instance idles.
    /// Returns an instance to drop (outside any lock) when it is not kept.
    pub(super) fn release(&mut self, instance: Option<T>, keep: bool, now: Instant) -> Option<T> {
        self.busy -= 1;
        let (kept, discarded) = if keep {
            (instance, None)
        } else {
            (None, instance)
        };
        self.place(kept, now);
        discarded
    }

    /// A busy slot whose instance is not kept (`reuse = false`) stays
    /// taken by the replacement made ahead of the next request, unless a
    /// request is waiting: that request gets the slot (a cold start).
    /// Returns whether the slot now counts as starting a replacement.
    pub(super) fn release_to_replace(&mut self, now: Instant) -> bool {
        self.busy -= 1;
        self.forget_gone_waiters();
        if self.waiters.is_empty() {
            self.starting += 1;
            true
        } else {
            self.place(None, now);
            false
        }
    }

    /// `n` instances are being created ahead of demand.
    pub(super) fn start(&mut self, n: u32) {
        self.starting += n;
    }

    /// A pre-warm finished: `Some` with the instance, `None` if it failed.
    pub(super) fn started(&mut self, instance: Option<T>, now: Instant) {
        self.starting -= 1;
        self.place(instance, now);
    }

    /// Gives a freed slot (with or without a warm instance) to the first
    /// live waiter, or keeps the instance idle.
    fn place(&mut self, mut instance: Option<T>, now: Instant) {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(instance) {
                Ok(()) => {
                    self.busy += 1;
                    return;
                }
                // That waiter is gone; try the next one with the same grant.
                Err(grant) => instance = grant,
            }
        }
        if let Some(instance) = instance {
            self.idle.push_back((instance, now));
        }
    }

    /// Removes idle instances idle for `idle_timeout` or longer, oldest
    /// first, as long as at least `floor` instances remain.
    pub(super) fn expire(&mut self, now: Instant, idle_timeout: Duration, floor: u32) -> Vec<T> {
        let mut released = Vec::new();
        while self.total() > floor {
            match self.idle.front() {
                Some((_, since)) if now.saturating_duration_since(*since) >= idle_timeout => {
                    if let Some((instance, _)) = self.idle.pop_front() {
                        released.push(instance);
                    }
                }
                _ => break,
            }
        }
        released
    }

    /// Removes every idle instance (draining).
    pub(super) fn take_all_idle(&mut self) -> Vec<T> {
        self.idle.drain(..).map(|(instance, _)| instance).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool whose given instances are all idle since the given times.
    fn idle_since(instances: &[(u32, Instant)]) -> Slots<u32> {
        let mut slots = Slots::new();
        for _ in instances {
            assert!(matches!(slots.acquire(100, 0), Acquire::Cold));
        }
        for &(instance, since) in instances {
            slots.release(Some(instance), true, since);
        }
        slots
    }

    fn warm(acquire: Acquire<u32>) -> Option<u32> {
        match acquire {
            Acquire::Warm(instance) => Some(instance),
            _ => None,
        }
    }

    #[test]
    fn acquire_prefers_warm_then_cold_then_queue_then_rejects() {
        let now = Instant::now();
        let mut slots = Slots::new();
        // Two cold starts fill max_instances = 2.
        assert!(matches!(slots.acquire(2, 1), Acquire::Cold));
        assert!(matches!(slots.acquire(2, 1), Acquire::Cold));
        // One may queue, the next is rejected.
        let Acquire::Wait(mut waiting) = slots.acquire(2, 1) else {
            panic!("expected to wait")
        };
        assert!(matches!(slots.acquire(2, 1), Acquire::Rejected));
        assert_eq!(
            slots.counts(),
            SlotCounts {
                idle: 0,
                busy: 2,
                starting: 0,
                queued: 1
            }
        );
        // A release hands the warm instance straight to the waiter.
        assert_eq!(slots.release(Some(7), true, now), None);
        assert_eq!(waiting.try_recv().unwrap(), Some(7));
        assert_eq!(
            slots.counts(),
            SlotCounts {
                idle: 0,
                busy: 2,
                starting: 0,
                queued: 0
            }
        );
        // Releases with no waiter idle the instance; the newest is reused first.
        slots.release(Some(7), true, now);
        slots.release(Some(8), true, now + Duration::from_secs(1));
        assert_eq!(warm(slots.acquire(2, 1)), Some(8));
        assert_eq!(warm(slots.acquire(2, 1)), Some(7));
    }

    #[test]
    fn a_discarded_instance_still_frees_its_slot() {
        let now = Instant::now();
        let mut slots: Slots<u32> = Slots::new();
        assert!(matches!(slots.acquire(1, 5), Acquire::Cold));
        let Acquire::Wait(mut waiting) = slots.acquire(1, 5) else {
            panic!("expected to wait")
        };
        // The busy instance trapped (None): the waiter gets a cold-start grant.
        slots.release(None, true, now);
        assert_eq!(waiting.try_recv().unwrap(), None);
        assert_eq!(slots.counts().busy, 1);
        // reuse = false: the instance is not kept even when healthy.
        assert_eq!(slots.release(Some(3), false, now), Some(3));
        assert_eq!(slots.counts(), SlotCounts::default());
    }

    #[test]
    fn a_discarded_instance_is_replaced_ahead_unless_a_request_waits() {
        let now = Instant::now();
        let mut slots: Slots<u32> = Slots::new();
        assert!(matches!(slots.acquire(1, 5), Acquire::Cold));
        // No one waits: the slot starts a replacement.
        assert!(slots.release_to_replace(now));
        let replacing = SlotCounts {
            starting: 1,
            ..SlotCounts::default()
        };
        assert_eq!(slots.counts(), replacing);
        // The replacement idles until a request takes it.
        slots.started(Some(4), now);
        assert_eq!(warm(slots.acquire(1, 5)), Some(4));
        // A request waits: it gets the slot, to start its own instance.
        let Acquire::Wait(mut waiting) = slots.acquire(1, 5) else {
            panic!("expected to wait")
        };
        assert!(!slots.release_to_replace(now));
        assert_eq!(waiting.try_recv().unwrap(), None);
        assert_eq!(slots.counts().busy, 1);
        assert_eq!(slots.counts().starting, 0);
    }

    #[test]
    fn waiters_that_left_do_not_count_and_do_not_receive() {
        let now = Instant::now();
        let mut slots: Slots<u32> = Slots::new();
        assert!(matches!(slots.acquire(1, 1), Acquire::Cold));
        let Acquire::Wait(gone) = slots.acquire(1, 1) else {
            panic!("expected to wait")
        };
        drop(gone); // timed out
        // The queue has room again.
        let Acquire::Wait(mut waiting) = slots.acquire(1, 1) else {
            panic!("expected to wait")
        };
        slots.release(Some(1), true, now);
        assert_eq!(waiting.try_recv().unwrap(), Some(1));
    }

    #[test]
    fn idle_instances_expire_oldest_first_down_to_the_floor() {
        let base = Instant::now();
        let at = |s: u64| base + Duration::from_secs(s);
        let timeout = Duration::from_secs(300);
        // (floor, now, expected released) with instances idle since 0, 100, 200 s.
        let cases = [
            (0, at(299), vec![]),
            (0, at(300), vec![1]),
            (0, at(450), vec![1, 2]),
            (0, at(500), vec![1, 2, 3]),
            (1, at(500), vec![1, 2]),
            (3, at(999), vec![]),
        ];
        for (floor, now, expected) in cases {
            let mut slots = idle_since(&[(1, at(0)), (2, at(100)), (3, at(200))]);
            assert_eq!(slots.expire(now, timeout, floor), expected, "floor {floor}");
        }
    }

    #[test]
    fn busy_instances_count_toward_the_floor() {
        let base = Instant::now();
        let mut slots = idle_since(&[(1, base), (2, base)]);
        // One is taken and busy; min 1 is met by it, so the idle one goes.
        assert_eq!(warm(slots.acquire(10, 0)), Some(2));
        assert_eq!(
            slots.expire(base + Duration::from_secs(10), Duration::from_secs(1), 1),
            vec![1]
        );
    }

    #[test]
    fn prewarmed_instances_serve_waiters_or_idle() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.start(2);
        assert_eq!(slots.counts().starting, 2);
        // Both slots are taken by starting instances: a request waits.
        let Acquire::Wait(mut waiting) = slots.acquire(2, 5) else {
            panic!("expected to wait")
        };
        slots.started(Some(10), now);
        assert_eq!(waiting.try_recv().unwrap(), Some(10));
        // A failed pre-warm frees its slot.
        slots.started(None, now);
        assert_eq!(
            slots.counts(),
            SlotCounts {
                idle: 0,
                busy: 1,
                starting: 0,
                queued: 0
            }
        );
        assert!(matches!(slots.acquire(2, 5), Acquire::Cold));
    }

    #[test]
    fn draining_takes_every_idle_instance() {
        let now = Instant::now();
        let mut slots = idle_since(&[(1, now), (2, now), (3, now)]);
        assert_eq!(slots.take_all_idle(), vec![1, 2, 3]);
        assert_eq!(slots.total(), 0);
    }
}
