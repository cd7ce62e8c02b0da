//! Timer triggers: a cron schedule (croner; five fields, or six with
//! seconds first, in UTC) enqueues Function Compute's timer event.
//!
//! A timer has at most one outstanding event: when it fires while its
//! previous event is still pending or retrying, the firing is skipped
//! (logged), so a slow or failing function does not pile up runs. Firings
//! missed while Kumo was stopped are not made up; a firing the task woke
//! late for is delivered once, with its scheduled time.
//!
//! Every node of a cluster runs every timer; a firing (timer, scheduled
//! time) is recorded in `timer_firings` in the transaction that enqueues
//! its event, so the first node to record it enqueues it and the others
//! skip it: one event per tick however many nodes run, and no takeover
//! when a node dies.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::events::queue::{self, EventKind, NewEvent, TimerFiring};
use crate::events::{Events, document};
use crate::model::TimerTrigger;

/// When a schedule fires next, strictly after `after`; `None` when it
/// never does again.
pub(crate) fn next_fire_after(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// A timer's schedule, advanced by an injected clock.
#[derive(Debug, Clone)]
pub(crate) struct TimerSchedule {
    cron: Cron,
    next: Option<DateTime<Utc>>,
}

impl TimerSchedule {
    /// The schedule as of `now`: the first firing is the next one after
    /// `now`.
    pub(crate) fn new(cron: Cron, now: DateTime<Utc>) -> Self {
        let next = next_fire_after(&cron, now);
        Self { cron, next }
    }

    /// When it fires next.
    pub(crate) fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.next
    }

    /// At `now`: the scheduled time to fire for, if one has come, and the
    /// schedule moves past `now` (firings missed in between collapse into
    /// this one, the latest).
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.next?;
        if next > now {
            return None;
        }
        let mut latest = next;
        while let Some(following) = next_fire_after(&self.cron, latest) {
            if following > now {
                self.next = Some(following);
                return Some(latest);
            }
            latest = following;
        }
        self.next = None;
        Some(latest)
    }
}

/// The running timers.
pub(crate) struct Timers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Timers {
    /// Stops every timer.
    pub(crate) fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts one task per timer (each validated: its parsed schedule beside
/// it).
pub(crate) fn start_timers(events: Arc<Events>, timers: Vec<(TimerTrigger, Cron)>) -> Timers {
    let tasks = timers
        .into_iter()
        .map(|(trigger, cron)| tokio::spawn(run_timer(events.clone(), trigger, cron)))
        .collect();
    Timers { tasks }
}

async fn run_timer(events: Arc<Events>, trigger: TimerTrigger, cron: Cron) {
    let mut schedule = TimerSchedule::new(cron, Utc::now());
    loop {
        let Some(next) = schedule.next_fire() else {
            tracing::info!(timer = %trigger.name, "the timer's schedule has no further firing");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        let Some(scheduled) = schedule.due(Utc::now()) else {
            // Woke a little early (clock granularity): sleep again.
            continue;
        };
        fire(&events, &trigger, scheduled).await;
    }
}

/// Enqueues the timer's event for `scheduled`, unless one is outstanding.
async fn fire(events: &Events, trigger: &TimerTrigger, scheduled: DateTime<Utc>) {
    let event = NewEvent {
        id: queue::new_event_id(),
        trigger_id: queue::trigger_id(EventKind::Timer, &trigger.name),
        target: trigger.function.to_string(),
        kind: EventKind::Timer,
        document: document::timer_event(&trigger.name, scheduled, &trigger.payload),
        retry: trigger.retry(),
        hops: 0,
        dead_reason: None,
        call: None,
    };
    match queue::insert_timer_event_once(
        events.database(),
        &event,
        scheduled.timestamp_millis(),
        Utc::now().timestamp_millis(),
    )
    .await
    {
        Ok(TimerFiring::Stored) => events.wake_delivery(),
        Ok(TimerFiring::AlreadyFired) => tracing::debug!(
            timer = %trigger.name,
            scheduled = %scheduled,
            "another node already fired this timer run"
        ),
        Ok(TimerFiring::Outstanding) => tracing::info!(
            timer = %trigger.name,
            scheduled = %scheduled,
            "timer fired while its previous event is still queued; skipping this run"
        ),
        Err(error) => {
            tracing::error!(timer = %trigger.name, %error, "cannot enqueue the timer's event")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_cron;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn next_firings_follow_the_cron_expression() {
        // (cron, after, next)
        let cases = [
            (
                "* * * * * *",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:01Z",
            ),
            (
                "* * * * * *",
                "2026-01-01T00:00:00.5Z",
                "2026-01-01T00:00:01Z",
            ),
            (
                "*/5 * * * *",
                "2026-01-01T00:03:10Z",
                "2026-01-01T00:05:00Z",
            ),
            (
                "0 */5 * * * *",
                "2026-01-01T00:05:00Z",
                "2026-01-01T00:10:00Z",
            ),
            ("30 2 * * *", "2026-01-01T03:00:00Z", "2026-01-02T02:30:00Z"),
            ("0 0 1 * *", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"),
        ];
        for (cron, after, next) in cases {
            let cron = parse_cron(cron).unwrap();
            assert_eq!(
                next_fire_after(&cron, at(after)),
                Some(at(next)),
                "{} after {after}",
                cron.as_str()
            );
        }
    }

    #[test]
    fn a_schedule_fires_once_per_due_time_and_collapses_missed_ones() {
        let cron = parse_cron("*/10 * * * * *").unwrap();
        let mut schedule = TimerSchedule::new(cron, at("2026-01-01T00:00:03Z"));
        assert_eq!(schedule.next_fire(), Some(at("2026-01-01T00:00:10Z")));
        // (clock, fired for)
        let steps = [
            ("2026-01-01T00:00:09.999Z", None),
            ("2026-01-01T00:00:10Z", Some("2026-01-01T00:00:10Z")),
            ("2026-01-01T00:00:10Z", None),
            ("2026-01-01T00:00:15Z", None),
            // woke late: still the 00:20 firing, once
            ("2026-01-01T00:00:21Z", Some("2026-01-01T00:00:20Z")),
            ("2026-01-01T00:00:29Z", None),
            // asleep through 00:30, 00:40, 00:50: one firing, the latest
            ("2026-01-01T00:00:55Z", Some("2026-01-01T00:00:50Z")),
            ("2026-01-01T00:00:59Z", None),
            ("2026-01-01T00:01:00Z", Some("2026-01-01T00:01:00Z")),
        ];
        for (now, fired) in steps {
            assert_eq!(schedule.due(at(now)), fired.map(at), "at {now}");
        }
        assert_eq!(schedule.next_fire(), Some(at("2026-01-01T00:01:10Z")));
    }
}
