//! The billing math, pure and exact where it can be.
//!
//! - A duration is kept in whole microseconds, rounded **up** from the
//!   measured nanoseconds ([`micros_ceil`]).
//! - Billed duration = ceil to 1 ms of (execution + init on a cold start):
//!   [`billed_ms`]. 0.2 ms → 1 ms, 1.0 ms → 1 ms, 1.0001 ms → 2 ms; an
//!   invocation that never ran (0 µs) bills 0 ms.
//! - Compute usage is summed as integer MB·ms (memory_mb × billed_ms) and
//!   only turned into GB-seconds at the end: GB-s = MB·ms / 1024 / 1000
//!   ([`gb_seconds`]), so sums over millions of records stay exact.
//! - Cost = billable invocations × price per million / 10⁶ + GB-s × price
//!   per GB-s ([`charge`]). A `rejected` invocation is recorded and counted
//!   but never charged per request (Lambda does not charge throttled
//!   requests); its billed ms (0 unless the function ran) are.
//!
//! **Free tier.** [`Prices::free_invocations`] and
//! [`Prices::free_gb_seconds`] are allowances per report: they are
//! subtracted once from the totals of a whole report (its time range and
//! filter), never below zero, and never per row. A report over a month
//! with the free tier set to Lambda's (1,000,000 invocations and 400,000
//! GB-s) therefore matches Lambda's monthly bill; rows always show the
//! gross cost. Both default to 0.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// MB·ms in one GB-second (1024 MB × 1000 ms).
pub(crate) const MB_MS_PER_GB_SECOND: u64 = 1024 * 1000;

/// Prices and free tier, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Prices {
    /// Dollars per million billable invocations.
    pub per_million_invocations: f64,
    /// Dollars per GB-second.
    pub per_gb_second: f64,
    /// Invocations free per report (see the module docs).
    pub free_invocations: u64,
    /// GB-seconds free per report.
    pub free_gb_seconds: f64,
}

impl Default for Prices {
    /// Lambda's x86 list prices: $0.20 per million requests and
    /// $0.0000166667 per GB-s; no free tier.
    fn default() -> Self {
        Self {
            per_million_invocations: 0.20,
            per_gb_second: 0.000_016_666_7,
            free_invocations: 0,
            free_gb_seconds: 0.0,
        }
    }
}

/// A duration in whole microseconds, rounded up (1 ns → 1 µs).
pub(crate) fn micros_ceil(duration: Duration) -> u64 {
    // In u64 (no 128-bit division): it runs twice per invocation.
    duration
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(duration.subsec_nanos().div_ceil(1000)))
}

/// The billed duration in ms: ceil((execution + init) / 1 ms), where
/// `init_us` is given on cold starts only.
pub(crate) fn billed_ms(duration_us: u64, init_us: Option<u64>) -> u64 {
    duration_us
        .saturating_add(init_us.unwrap_or(0))
        .div_ceil(1000)
}

/// Compute usage of one invocation in MB·ms.
pub(crate) fn mb_ms(memory_mb: u64, billed_ms: u64) -> u64 {
    memory_mb.saturating_mul(billed_ms)
}

/// GB-seconds for a sum of MB·ms.
pub(crate) fn gb_seconds(mb_ms: u64) -> f64 {
    mb_ms as f64 / MB_MS_PER_GB_SECOND as f64
}

/// What a group of invocations used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    /// Invocations charged per request (all but `rejected`).
    pub billable_invocations: u64,
    /// Σ memory_mb × billed_ms.
    pub mb_ms: u64,
}

/// The cost of some usage, in dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charge {
    /// Invocations charged after the free tier.
    pub charged_invocations: u64,
    /// GB-seconds charged after the free tier.
    pub charged_gb_seconds: f64,
    /// charged_invocations × per_million_invocations / 10⁶.
    pub request_cost: f64,
    /// charged_gb_seconds × per_gb_second.
    pub compute_cost: f64,
    /// request_cost + compute_cost.
    pub total: f64,
}

/// The cost of `usage`; with `apply_free_tier` the allowances of `prices`
/// are subtracted first (once per report: see the module docs).
pub(crate) fn charge(usage: Usage, prices: &Prices, apply_free_tier: bool) -> Charge {
    let (free_invocations, free_mb_ms) = if apply_free_tier {
        // The allowance in whole MB·ms (rounded down: never give more away).
        let free_mb_ms = (prices.free_gb_seconds.max(0.0) * MB_MS_PER_GB_SECOND as f64) as u64;
        (prices.free_invocations, free_mb_ms)
    } else {
        (0, 0)
    };
    let charged_invocations = usage.billable_invocations.saturating_sub(free_invocations);
    let charged_gb_seconds = gb_seconds(usage.mb_ms.saturating_sub(free_mb_ms));
    let request_cost = charged_invocations as f64 * prices.per_million_invocations / 1_000_000.0;
    let compute_cost = charged_gb_seconds * prices.per_gb_second;
    Charge {
        charged_invocations,
        charged_gb_seconds,
        request_cost,
        compute_cost,
        total: request_cost + compute_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn durations_round_up_to_the_microsecond() {
        let cases = [
            (0, 0),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (200_000, 200),
            (1_000_000_001, 1_000_001),
            (3_999_999_999, 4_000_000),
            (u64::MAX, 18_446_744_073_709_552),
        ];
        for (nanos, micros) in cases {
            assert_eq!(
                micros_ceil(Duration::from_nanos(nanos)),
                micros,
                "{nanos} ns"
            );
        }
    }

    #[test]
    fn billed_duration_is_the_ceiling_in_ms_with_init_only_on_cold_starts() {
        // (execution, init on a cold start, billed ms)
        let cases = [
            (Duration::from_micros(200), None, 1),      // 0.2 ms
            (Duration::from_millis(1), None, 1),        // 1.0 ms
            (Duration::from_nanos(1_000_100), None, 2), // 1.0001 ms
            (Duration::from_nanos(1), None, 1),         // anything that ran bills 1 ms
            (Duration::ZERO, None, 0),                  // never ran
            (Duration::from_micros(999_999), None, 1000),
            (
                Duration::from_micros(500),
                Some(Duration::from_micros(600)),
                2,
            ), // 1.1 ms cold
            (
                Duration::from_micros(400),
                Some(Duration::from_micros(600)),
                1,
            ), // exactly 1 ms cold
            (Duration::ZERO, Some(Duration::from_micros(2_500)), 3), // init alone
            (Duration::from_millis(3), Some(Duration::from_nanos(1)), 4),
        ];
        for (execution, init, expected) in cases {
            let billed = billed_ms(micros_ceil(execution), init.map(micros_ceil));
            assert_eq!(billed, expected, "{execution:?} + {init:?}");
        }
        // A warm start passes no init: the same execution bills less.
        assert_eq!(billed_ms(500, None), 1);
        assert_eq!(billed_ms(500, Some(600)), 2);
    }

    #[test]
    fn gb_seconds_and_cost_for_several_memory_sizes() {
        let prices = Prices::default();
        // (memory_mb, billed_ms, invocations, expected GB-s, expected cost)
        let cases = [
            // 1 GB for 1 s, once: 1 GB-s.
            (1024, 1000, 1, 1.0, 0.000_000_2 + 0.000_016_666_7),
            // 128 MB for 100 ms: 0.0125 GB-s.
            (128, 100, 1, 0.0125, 0.000_000_2 + 0.0125 * 0.000_016_666_7),
            // 512 MB, 1 ms, a million times: 500 GB-s.
            (512, 1, 1_000_000, 500.0, 0.20 + 500.0 * 0.000_016_666_7),
            // 4096 MB, 60 s: 240 GB-s.
            (
                4096,
                60_000,
                1,
                240.0,
                0.000_000_2 + 240.0 * 0.000_016_666_7,
            ),
            // Nothing ran.
            (128, 0, 0, 0.0, 0.0),
        ];
        for (memory_mb, billed, invocations, expected_gb_s, expected_cost) in cases {
            let usage = Usage {
                billable_invocations: invocations,
                mb_ms: mb_ms(memory_mb, billed) * invocations,
            };
            assert!(
                close(gb_seconds(usage.mb_ms), expected_gb_s),
                "{memory_mb} MB {billed} ms"
            );
            let charge = charge(usage, &prices, true);
            assert!(
                close(charge.total, expected_cost),
                "{memory_mb} MB: {charge:?}"
            );
            assert!(close(
                charge.total,
                charge.request_cost + charge.compute_cost
            ));
        }
    }

    #[test]
    fn the_free_tier_is_deducted_once_and_never_below_zero() {
        let prices = Prices {
            free_invocations: 1_000,
            free_gb_seconds: 10.0,
            ..Prices::default()
        };
        // (invocations, GB-s used, charged invocations, charged GB-s)
        let cases = [
            (0, 0.0, 0, 0.0),
            (999, 9.0, 0, 0.0),
            (1_000, 10.0, 0, 0.0),
            (1_001, 10.5, 1, 0.5),
            (2_000_000, 1010.0, 1_999_000, 1000.0),
        ];
        for (invocations, used_gb_s, charged_invocations, charged_gb_s) in cases {
            let usage = Usage {
                billable_invocations: invocations,
                mb_ms: (used_gb_s * MB_MS_PER_GB_SECOND as f64) as u64,
            };
            let charge = charge(usage, &prices, true);
            assert_eq!(
                charge.charged_invocations, charged_invocations,
                "{invocations}"
            );
            assert!(close(charge.charged_gb_seconds, charged_gb_s), "{charge:?}");
            let expected = charged_invocations as f64 * 0.2 / 1e6 + charged_gb_s * 0.000_016_666_7;
            assert!(close(charge.total, expected), "{charge:?}");
            // Without the free tier, the gross cost.
            let gross = super::charge(usage, &prices, false);
            assert_eq!(gross.charged_invocations, invocations);
        }
    }

    #[test]
    fn the_worked_examples_of_docs_billing_md() {
        // thumbnail, 256 MB: cold 3,210 + 12,345 µs; warm 200 µs; warm
        // 1.0001 ms; a 429.
        let billed = [
            billed_ms(3_210, Some(12_345)),
            billed_ms(200, None),
            billed_ms(micros_ceil(Duration::from_nanos(1_000_100)), None),
            billed_ms(0, None),
        ];
        assert_eq!(billed, [16, 1, 2, 0]);
        let usage = Usage {
            billable_invocations: 3,
            mb_ms: billed.iter().map(|&ms| mb_ms(256, ms)).sum(),
        };
        assert_eq!(usage.mb_ms, 4_864);
        assert!(close(gb_seconds(usage.mb_ms), 0.004_75));
        let charge = charge(usage, &Prices::default(), true);
        assert!(close(charge.total, 0.000_000_679_166_8), "{charge:?}");

        // A million 100 ms invocations at 128 MB.
        let usage = Usage {
            billable_invocations: 1_000_000,
            mb_ms: 1_000_000 * mb_ms(128, 100),
        };
        assert!(close(gb_seconds(usage.mb_ms), 12_500.0));
        assert!(close(
            super::charge(usage, &Prices::default(), true).total,
            0.408_333_75
        ));
        let lambda_free_tier = Prices {
            free_invocations: 1_000_000,
            free_gb_seconds: 400_000.0,
            ..Prices::default()
        };
        assert_eq!(super::charge(usage, &lambda_free_tier, true).total, 0.0);
    }

    #[test]
    fn default_prices_are_lambdas() {
        let prices = Prices::default();
        assert_eq!(prices.per_million_invocations, 0.20);
        assert_eq!(prices.per_gb_second, 0.000_016_666_7);
        assert_eq!((prices.free_invocations, prices.free_gb_seconds), (0, 0.0));
    }
}
