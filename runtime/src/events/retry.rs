//! What happens after a delivery attempt: the backoff before the next one
//! (exponential, with equal jitter), and when an event gives up. Pure
//! functions of the attempt count, the policy, a random number and the
//! clock, so they are tested with tables.

use std::time::Duration;

/// The longest delay between two attempts, whatever the count.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The delay before the next attempt after `failed_attempts` failed ones
/// (1 after the first failure): `base × 2^(failed_attempts - 1)`, capped at
/// [`MAX_DELAY`], with equal jitter: half of it fixed, the other half
/// scaled by `unit_random` (in `[0, 1)`). So the delays grow: the n-th
/// retry waits between `base × 2^(n-2)` and `base × 2^(n-1)`.
pub fn backoff(failed_attempts: u32, base: Duration, unit_random: f64) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(30);
    let full = base
        .checked_mul(1u32 << exponent)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    let half = full / 2;
    half + half.mul_f64(unit_random.clamp(0.0, 1.0))
}

/// What to do with an event after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (milliseconds since the epoch).
    RetryAt(i64),
    /// Give up: every attempt is spent.
    DeadNoAttemptsLeft,
    /// Give up: the next attempt would come after `max_event_age_s`.
    DeadTooOld,
}

/// After `failed_attempts` (counting the one that just failed) at `now_ms`,
/// for an event first seen at `first_seen_ms`: retry (when) or give up.
pub fn after_failure(
    failed_attempts: u32,
    max_retries: u32,
    base: Duration,
    max_age: Duration,
    first_seen_ms: i64,
    now_ms: i64,
    unit_random: f64,
) -> AfterFailure {
    if failed_attempts > max_retries {
        return AfterFailure::DeadNoAttemptsLeft;
    }
    let delay = backoff(failed_attempts, base, unit_random);
    let next = now_ms.saturating_add(millis(delay));
    if next > first_seen_ms.saturating_add(millis(max_age)) {
        AfterFailure::DeadTooOld
    } else {
        AfterFailure::RetryAt(next)
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

    #[test]
    fn events_retry_until_attempts_or_age_run_out() {
        let day = Duration::from_secs(86_400);
        // (failed, max_retries, max_age, first_seen, now, expected)
        let cases = [
            (1, 3, day, 0, 10_000, AfterFailure::RetryAt(10_500)),
            (3, 3, day, 0, 10_000, AfterFailure::RetryAt(12_000)),
            (4, 3, day, 0, 10_000, AfterFailure::DeadNoAttemptsLeft),
            (1, 0, day, 0, 10_000, AfterFailure::DeadNoAttemptsLeft),
            // the retry would land past the age limit
            (
                1,
                3,
                Duration::from_secs(10),
                0,
                9_600,
                AfterFailure::DeadTooOld,
            ),
            (
                1,
                3,
                Duration::from_secs(10),
                0,
                9_500,
                AfterFailure::RetryAt(10_000),
            ),
        ];
        for (failed, max_retries, max_age, first_seen, now, expected) in cases {
            assert_eq!(
                after_failure(failed, max_retries, S, max_age, first_seen, now, 0.0),
                expected,
                "failed {failed}, max_retries {max_retries}, now {now}"
            );
        }
    }
}
