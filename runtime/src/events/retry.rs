//! Where an event retry is decided. After every delivery attempt (and
//! before one, for an event already too old), [`RetryPolicy::after_attempt`]
//! and [`RetryPolicy::expired`] say where the event goes: done, retried at
//! a time (exponential backoff with equal jitter), or dead, with the
//! reason. Delivery (`delivery.rs`) only carries the answer out. Pure
//! functions of the policy, the attempt, a random number and the clock, so
//! they are tested with tables.

use std::time::Duration;

use super::queue::NextState;
use crate::model::RetryPolicy;

/// The longest delay between two attempts, whatever the count.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The delay before the next attempt after `failed_attempts` failed ones
/// (1 after the first failure): `base × 2^(failed_attempts - 1)`, capped at
/// [`MAX_DELAY`], with equal jitter: half of it fixed, the other half
/// scaled by `unit_random` (in `[0, 1)`). So the delays grow: the n-th
/// retry waits between `base × 2^(n-2)` and `base × 2^(n-1)`.
pub(crate) fn backoff(failed_attempts: u32, base: Duration, unit_random: f64) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(30);
    let full = base
        .checked_mul(1u32 << exponent)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    let half = full / 2;
    half + half.mul_f64(unit_random.clamp(0.0, 1.0))
}

/// How a delivery attempt ended, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempted<'a> {
    /// The function answered 2xx.
    Acknowledged,
    /// An error, trap, timeout or other status: it counts against
    /// `max_retries`.
    Failed { error: &'a str },
    /// The function's pool pushed back (429, or no capacity): not the
    /// event's fault, so it is tried again after `retry_after` without
    /// spending an attempt; the age limit still applies.
    Throttled {
        retry_after: Duration,
        error: &'a str,
    },
}

impl RetryPolicy {
    /// Why an event first seen at `first_seen_ms` is not attempted at all
    /// at `now_ms` (it is older than `max_event_age_s`), or `None`.
    pub(crate) fn expired(&self, first_seen_ms: i64, now_ms: i64) -> Option<String> {
        (now_ms > self.age_limit_ms(first_seen_ms)).then(|| {
            format!(
                "the event is older than its max_event_age_s ({} s) and was not delivered; hint: replay it, or raise max_event_age_s",
                self.max_event_age.as_secs()
            )
        })
    }

    /// Where an event first seen at `first_seen_ms` goes after its attempt
    /// number `attempt` (1 for the first) ended at `now_ms` as
    /// `attempted`: done; retried at a time; or dead when `max_retries + 1`
    /// attempts failed or the next one would come after `max_event_age_s`.
    /// `unit_random` (in `[0, 1)`) is the backoff's jitter.
    pub(crate) fn after_attempt(
        &self,
        attempt: u32,
        attempted: Attempted<'_>,
        first_seen_ms: i64,
        now_ms: i64,
        unit_random: f64,
    ) -> NextState {
        let age_limit = self.age_limit_ms(first_seen_ms);
        match attempted {
            Attempted::Acknowledged => NextState::Done,
            Attempted::Throttled { retry_after, error } => {
                let at = now_ms.saturating_add(millis(retry_after));
                if at > age_limit {
                    NextState::Dead(format!(
                        "the function stayed overloaded until the event passed its max_event_age_s; last error: {error}"
                    ))
                } else {
                    NextState::RetryAt(at)
                }
            }
            Attempted::Failed { error } => {
                if attempt > self.max_retries {
                    return NextState::Dead(format!(
                        "failed {attempt} attempts (max_retries = {}); last error: {error}",
                        self.max_retries
                    ));
                }
                let at =
                    now_ms.saturating_add(millis(backoff(attempt, self.retry_base, unit_random)));
                if at > age_limit {
                    NextState::Dead(format!(
                        "the next retry would pass the event's max_event_age_s; last error: {error}"
                    ))
                } else {
                    NextState::RetryAt(at)
                }
            }
        }
    }

    /// The last moment an attempt may start, in ms since the epoch.
    fn age_limit_ms(&self, first_seen_ms: i64) -> i64 {
        first_seen_ms.saturating_add(millis(self.max_event_age))
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_with_equal_jitter() {
        // (failed attempts, base, random, expected)
        let cases = [
            (1, S, 0.0, Duration::from_millis(500)),
            (1, S, 0.5, Duration::from_millis(750)),
            (1, S, 0.999_999, Duration::from_micros(999_999)),
            (2, S, 0.0, S),
            (2, S, 0.5, Duration::from_millis(1500)),
            (3, S, 0.0, 2 * S),
            (3, S, 1.0, 4 * S),
            (
                4,
                Duration::from_millis(100),
                0.0,
                Duration::from_millis(400),
            ),
            // capped at an hour, jitter still applies
            (20, S, 0.0, MAX_DELAY / 2),
            (u32::MAX, S, 1.0, MAX_DELAY),
            // 0 failures behaves as 1
            (0, S, 0.0, Duration::from_millis(500)),
            // out-of-range randoms are clamped
            (1, S, -3.0, Duration::from_millis(500)),
            (1, S, 7.0, S),
        ];
        for (failed, base, random, expected) in cases {
            let delay = backoff(failed, base, random);
            let difference = delay.abs_diff(expected);
            assert!(
                difference <= Duration::from_micros(1),
                "backoff({failed}, {base:?}, {random}) = {delay:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn delays_never_shrink_from_one_retry_to_the_next() {
        for failed in 1..12 {
            let longest_now = backoff(failed, S, 1.0);
            let shortest_next = backoff(failed + 1, S, 0.0);
            assert!(shortest_next >= longest_now, "retry {failed}");
        }
    }

    fn policy(max_retries: u32, max_event_age: Duration) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            retry_base: S,
            max_event_age,
        }
    }

    /// The kind of a next state, and its time or the start of its reason.
    fn summary(next: &NextState) -> String {
        match next {
            NextState::Done => "done".to_owned(),
            NextState::RetryAt(at) => format!("retry at {at}"),
            NextState::Dead(reason) => format!("dead: {reason}"),
        }
    }

    #[test]
    fn events_retry_until_attempts_or_age_run_out() {
        let day = Duration::from_secs(86_400);
        let ten_s = Duration::from_secs(10);
        let failed = Attempted::Failed { error: "boom" };
        let throttled = |ms| Attempted::Throttled {
            retry_after: Duration::from_millis(ms),
            error: "busy",
        };
        // (attempt, how it ended, max_retries, max_age, first_seen, now, expected)
        let cases = [
            (1, Attempted::Acknowledged, 3, day, 0, 10_000, "done".to_owned()),
            (4, Attempted::Acknowledged, 3, day, 0, 10_000, "done".to_owned()),
            (1, failed, 3, day, 0, 10_000, "retry at 10500".to_owned()),
            (3, failed, 3, day, 0, 10_000, "retry at 12000".to_owned()),
            (
                4,
                failed,
                3,
                day,
                0,
                10_000,
                "dead: failed 4 attempts (max_retries = 3); last error: boom".to_owned(),
            ),
            (
                1,
                failed,
                0,
                day,
                0,
                10_000,
                "dead: failed 1 attempts (max_retries = 0); last error: boom".to_owned(),
            ),
            // the retry would land past the age limit
            (
                1,
                failed,
                3,
                ten_s,
                0,
                9_600,
                "dead: the next retry would pass the event's max_event_age_s; last error: boom"
                    .to_owned(),
            ),
            (1, failed, 3, ten_s, 0, 9_500, "retry at 10000".to_owned()),
            // backpressure spends no attempt, only time
            (9, throttled(1000), 3, day, 0, 10_000, "retry at 11000".to_owned()),
            (1, throttled(500), 3, ten_s, 0, 9_500, "retry at 10000".to_owned()),
            (
                1,
                throttled(501),
                3,
                ten_s,
                0,
                9_500,
                "dead: the function stayed overloaded until the event passed its max_event_age_s; last error: busy"
                    .to_owned(),
            ),
        ];
        for (attempt, attempted, max_retries, max_age, first_seen, now, expected) in cases {
            let next = policy(max_retries, max_age)
                .after_attempt(attempt, attempted, first_seen, now, 0.0);
            assert_eq!(
                summary(&next),
                expected,
                "attempt {attempt} {attempted:?}, max_retries {max_retries}, now {now}"
            );
        }
    }

    #[test]
    fn events_too_old_are_not_attempted() {
        let policy = policy(3, Duration::from_secs(10));
        // (first seen, now, expired)
        let cases = [
            (0, 0, false),
            (0, 10_000, false),
            (0, 10_001, true),
            (5_000, 15_001, true),
        ];
        for (first_seen, now, expired) in cases {
            let reason = policy.expired(first_seen, now);
            assert_eq!(
                reason.is_some(),
                expired,
                "first seen {first_seen}, now {now}"
            );
            if let Some(reason) = reason {
                assert!(reason.contains("max_event_age_s (10 s)"), "{reason}");
            }
        }
    }
}
