//! The scaling decision for one function version's pool of instances: the
//! rule of Knative's KPA (Knative Pod Autoscaler), as a pure function of the
//! recorded observations and the clock passed in.
//!
//! Each instance serves one request at a time. The pool records the observed
//! concurrency (requests in flight plus queued) about once a second with
//! [`Autoscaler::record`] and asks for a decision every tick (2 s) with
//! [`Autoscaler::decide`]. The rule:
//!
//! - `desire = ceil(average concurrency / (target_concurrency * target_utilization))`,
//!   computed over the stable window (60 s) and over the panic window (6 s);
//! - the scale-up and scale-down rate limits bound each desire to
//!   `[floor(ready / max_scale_down_rate), ceil(max_scale_up_rate * ready)]`,
//!   except when nothing is ready (activation from zero is not limited);
//! - panic mode starts when the panic-window desire is at least
//!   `panic_threshold` times the ready count (counted as at least 1), and
//!   lasts until more than a stable window has passed since it was last
//!   triggered; while panicking the result is the larger of the two desires
//!   and never goes down (neither below the highest panic result nor below
//!   the ready count);
//! - the result goes to zero only when no demand was seen for the stable
//!   window plus the scale-to-zero grace period; until then at least one
//!   instance is kept if any is ready;
//! - finally it is clamped to `[min_instances, max_instances]`.
//!
//! Nothing here reads a clock, sleeps or spawns: every method takes `now`,
//! so the same calls give the same decisions. The only state carried from
//! call to call is the recent samples, the panic state and the time of the
//! last demand.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::defaults;

/// Knative's default stable window.
const DEFAULT_STABLE_WINDOW: Duration = Duration::from_secs(60);
/// Knative's default panic window (10 % of the stable window).
const DEFAULT_PANIC_WINDOW: Duration = Duration::from_secs(6);
/// Knative's default panic threshold (200 %).
const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;
/// Knative's default maximum scale-up rate.
const DEFAULT_MAX_SCALE_UP_RATE: f64 = 1000.0;
/// Knative's default maximum scale-down rate.
const DEFAULT_MAX_SCALE_DOWN_RATE: f64 = 2.0;
/// Knative's default scale-to-zero grace period.
const DEFAULT_SCALE_TO_ZERO_GRACE: Duration = Duration::from_secs(30);

/// How close (relative) a desire must be to a whole number to count as that
/// number, so that float noise such as `2.1 / 0.7 = 3.0000000000000004` does
/// not ask for an extra instance.
const WHOLE_NUMBER_TOLERANCE: f64 = 1e-9;

/// Tunables; `Default` gives Knative's defaults (listed on the fields) plus
/// min 0 / max 100.
///
/// [`Autoscaler::new`] does not refuse settings: a value the rule cannot use
/// is replaced by its default, and [`Autoscaler::settings`] shows the values
/// in effect. The replacements are listed on each field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AutoscalerSettings {
    /// Concurrent requests one instance should carry; 1.0 since an instance
    /// serves one request at a time. Not finite or not above 0: the default.
    pub(crate) target_concurrency: f64,
    /// Fraction of `target_concurrency` to aim for, leaving headroom for
    /// bursts; default 0.7. Not finite, not above 0 or above 1: the default.
    pub(crate) target_utilization: f64,
    /// Window of the stable average, and how long panic mode outlasts its
    /// last trigger; default 60 s. Zero: the default.
    pub(crate) stable_window: Duration,
    /// Window of the panic average; default 6 s. Zero: the default; longer
    /// than the stable window: the stable window.
    pub(crate) panic_window: Duration,
    /// Panic when the panic-window desire is at least this many times the
    /// ready count; default 2.0. Infinity turns panic mode off. Not a number
    /// or not above 0: the default.
    pub(crate) panic_threshold: f64,
    /// At most `ceil(max_scale_up_rate * ready)` instances; default 1000.0.
    /// Infinity removes the limit. Not a number or not above 1 (which could
    /// never grow): the default.
    pub(crate) max_scale_up_rate: f64,
    /// At least `floor(ready / max_scale_down_rate)` instances; default 2.0.
    /// Infinity removes the limit. Not a number or not above 1 (which could
    /// never shrink): the default.
    pub(crate) max_scale_down_rate: f64,
    /// How long after the stable window has emptied of demand the last
    /// instance is kept before scaling to zero; default 30 s. Zero scales to
    /// zero as soon as the stable window holds no demand.
    pub(crate) scale_to_zero_grace: Duration,
    /// Never fewer instances than this; 0 (the default) allows scale to zero.
    /// Above `max_instances`: lowered to `max_instances`.
    pub(crate) min_instances: u32,
    /// Never more instances than this; default 100. Taken as written: 0
    /// means no instance is ever wanted.
    pub(crate) max_instances: u32,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        Self {
            target_concurrency: defaults::TARGET_CONCURRENCY,
            target_utilization: defaults::TARGET_UTILIZATION,
            stable_window: DEFAULT_STABLE_WINDOW,
            panic_window: DEFAULT_PANIC_WINDOW,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            max_scale_up_rate: DEFAULT_MAX_SCALE_UP_RATE,
            max_scale_down_rate: DEFAULT_MAX_SCALE_DOWN_RATE,
            scale_to_zero_grace: DEFAULT_SCALE_TO_ZERO_GRACE,
            min_instances: defaults::MIN_INSTANCES,
            max_instances: defaults::MAX_INSTANCES,
        }
    }
}

impl AutoscalerSettings {
    /// The settings with every unusable value replaced as documented on the
    /// fields.
    fn into_effective(self) -> Self {
        let target_concurrency =
            if self.target_concurrency.is_finite() && self.target_concurrency > 0.0 {
                self.target_concurrency
            } else {
                defaults::TARGET_CONCURRENCY
            };
        let target_utilization = if self.target_utilization.is_finite()
            && self.target_utilization > 0.0
            && self.target_utilization <= 1.0
        {
            self.target_utilization
        } else {
            defaults::TARGET_UTILIZATION
        };
        let stable_window = if self.stable_window.is_zero() {
            DEFAULT_STABLE_WINDOW
        } else {
            self.stable_window
        };
        let panic_window = if self.panic_window.is_zero() {
            DEFAULT_PANIC_WINDOW
        } else {
            self.panic_window
        }
        .min(stable_window);
        // Written as `x > bound` so that NaN fails the test and is replaced too.
        let panic_threshold = if self.panic_threshold > 0.0 {
            self.panic_threshold
        } else {
            DEFAULT_PANIC_THRESHOLD
        };
        let max_scale_up_rate = if self.max_scale_up_rate > 1.0 {
            self.max_scale_up_rate
        } else {
            DEFAULT_MAX_SCALE_UP_RATE
        };
        let max_scale_down_rate = if self.max_scale_down_rate > 1.0 {
            self.max_scale_down_rate
        } else {
            DEFAULT_MAX_SCALE_DOWN_RATE
        };
        Self {
            target_concurrency,
            target_utilization,
            stable_window,
            panic_window,
            panic_threshold,
            max_scale_up_rate,
            max_scale_down_rate,
            scale_to_zero_grace: self.scale_to_zero_grace,
            min_instances: self.min_instances.min(self.max_instances),
            max_instances: self.max_instances,
        }
    }
}

/// What the autoscaler decided at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaleDecision {
    /// How many instances the pool should have ready.
    pub(crate) desired: u32,
    /// Whether the autoscaler is in panic mode (a burst; no scale-down).
    pub(crate) panicking: bool,
}

/// The KPA scaling rule for one function version's pool, fed with
/// concurrency samples and asked for a decision once per tick.
#[derive(Debug, Clone)]
pub(crate) struct Autoscaler {
    /// The settings in effect (after replacing unusable values).
    settings: AutoscalerSettings,
    /// Recorded `(time, concurrency)` samples, none older than the stable
    /// window at the last call.
    samples: VecDeque<(Instant, f64)>,
    /// When the panic threshold was last crossed, while in panic mode.
    panic_last_triggered: Option<Instant>,
    /// The highest result while in the current panic mode; 0 when not
    /// panicking.
    highest_panic_desire: f64,
    /// When a sample last showed any demand.
    last_demand: Option<Instant>,
    /// The `now` of the first call, standing in for the last demand until
    /// there has been one, so a pool that never saw demand still waits out
    /// the window and grace period before going to zero.
    first_call: Option<Instant>,
}

impl Autoscaler {
    /// An autoscaler with no history. Unusable settings are replaced by
    /// their defaults, as documented on [`AutoscalerSettings`].
    pub(crate) fn new(settings: AutoscalerSettings) -> Self {
        Self {
            settings: settings.into_effective(),
            samples: VecDeque::new(),
            panic_last_triggered: None,
            highest_panic_desire: 0.0,
            last_demand: None,
            first_call: None,
        }
    }

    /// The settings in effect, after unusable values were replaced.
    #[cfg(test)]
    pub(crate) fn settings(&self) -> &AutoscalerSettings {
        &self.settings
    }

    /// Records the observed concurrency (requests in flight + queued) at `now`.
    /// The pool samples about once a second; samples older than the stable window are dropped.
    ///
    /// A value that is not finite is ignored; a negative one counts as 0.
    pub(crate) fn record(&mut self, now: Instant, concurrency: f64) {
        self.note_call(now);
        self.drop_samples_older_than_stable_window(now);
        if !concurrency.is_finite() {
            return;
        }
        let concurrency = concurrency.max(0.0);
        if concurrency > 0.0 {
            self.last_demand = Some(self.last_demand.map_or(now, |last| last.max(now)));
        }
        self.samples.push_back((now, concurrency));
    }

    /// The decision at `now` given how many instances are ready (the pool
    /// passes idle + busy + starting).
    ///
    /// Call it once per tick: the panic state moves on with each call.
    pub(crate) fn decide(&mut self, now: Instant, ready: u32) -> ScaleDecision {
        self.note_call(now);
        self.drop_samples_older_than_stable_window(now);

        let target = self.settings.target_concurrency * self.settings.target_utilization;
        let stable_desire = instances_for(
            self.window_average(now, self.settings.stable_window),
            target,
        );
        let panic_desire =
            instances_for(self.window_average(now, self.settings.panic_window), target);

        let ready_count = f64::from(ready);
        let (stable_limited, panic_limited) = if ready == 0 {
            // Activation from zero goes straight to the desire.
            (stable_desire, panic_desire)
        } else {
            let most = (self.settings.max_scale_up_rate * ready_count).ceil();
            let least = (ready_count / self.settings.max_scale_down_rate).floor();
            // As in Knative: the scale-up limit wins over the scale-down one.
            (
                stable_desire.max(least).min(most),
                panic_desire.max(least).min(most),
            )
        };

        // As in Knative, the threshold compares the unlimited panic desire
        // with the ready count taken as at least 1.
        let over_threshold = panic_desire / ready_count.max(1.0) >= self.settings.panic_threshold;
        if over_threshold {
            self.panic_last_triggered = Some(now);
        } else if let Some(triggered) = self.panic_last_triggered
            && now.saturating_duration_since(triggered) > self.settings.stable_window
        {
            self.panic_last_triggered = None;
            self.highest_panic_desire = 0.0;
        }
        let panicking = self.panic_last_triggered.is_some();

        let mut desired = stable_limited;
        if panicking {
            desired = desired
                .max(panic_limited)
                .max(self.highest_panic_desire)
                .max(ready_count);
            self.highest_panic_desire = desired;
        }

        if desired < 1.0 && ready > 0 && !self.quiet_long_enough_for_zero(now) {
            desired = 1.0;
        }

        let clamped = desired
            .min(f64::from(self.settings.max_instances))
            .max(f64::from(self.settings.min_instances));
        ScaleDecision {
            desired: whole_instances(clamped),
            panicking,
        }
    }

    /// Remembers the first time the autoscaler was used.
    fn note_call(&mut self, now: Instant) {
        if self.first_call.is_none() {
            self.first_call = Some(now);
        }
    }

    /// Keeps only the samples that can still fall inside the stable window.
    fn drop_samples_older_than_stable_window(&mut self, now: Instant) {
        let window = self.settings.stable_window;
        self.samples.retain(|&(time, _)| {
            now.checked_duration_since(time)
                .is_none_or(|age| age < window)
        });
    }

    /// The mean of the samples taken within `window` before `now` (a sample
    /// exactly `window` old is out); 0 without any.
    fn window_average(&self, now: Instant, window: Duration) -> f64 {
        let (sum, count) = self
            .samples
            .iter()
            .filter(|&&(time, _)| {
                now.checked_duration_since(time)
                    .is_some_and(|age| age < window)
            })
            .fold((0.0, 0_u32), |(sum, count), &(_, concurrency)| {
                (sum + concurrency, count + 1)
            });
        if count == 0 {
            0.0
        } else {
            sum / f64::from(count)
        }
    }

    /// Whether no demand has been seen for the stable window plus the grace
    /// period (counting from the first call if there never was demand).
    fn quiet_long_enough_for_zero(&self, now: Instant) -> bool {
        let quiet_since = match (self.last_demand, self.first_call) {
            (Some(demand), Some(first)) => demand.max(first),
            (Some(time), None) | (None, Some(time)) => time,
            (None, None) => now,
        };
        let needed = self
            .settings
            .stable_window
            .saturating_add(self.settings.scale_to_zero_grace);
        now.saturating_duration_since(quiet_since) >= needed
    }
}

/// `ceil(average / target)`, with values within float noise of a whole
/// number taken as that number.
fn instances_for(average: f64, target: f64) -> f64 {
    let ratio = average / target;
    let nearest = ratio.round();
    if (ratio - nearest).abs() <= WHOLE_NUMBER_TOLERANCE * nearest.abs().max(1.0) {
        nearest
    } else {
        ratio.ceil()
    }
}

/// A desire as an instance count (saturating; not-a-number gives 0).
fn whole_instances(desired: f64) -> u32 {
    if desired.is_nan() || desired <= 0.0 {
        0
    } else if desired >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and whole (or rounded up) by now.
        desired.ceil() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scenario: settings, the samples the pool records, and the
    /// decisions checked along the way.
    struct Case {
        name: &'static str,
        settings: AutoscalerSettings,
        /// `(seconds after the start, concurrency)`.
        samples: Vec<(u64, f64)>,
        /// `(seconds after the start, ready, expected desired, expected panicking)`.
        /// Samples at or before a check's second are recorded before it.
        checks: Vec<(u64, u32, u32, bool)>,
    }

    /// One sample a second from `from` to `to`, both included.
    fn every_second(from: u64, to: u64, concurrency: f64) -> Vec<(u64, f64)> {
        (from..=to).map(|second| (second, concurrency)).collect()
    }

    fn run(case: &Case) {
        let start = Instant::now();
        let at = |second: u64| start + Duration::from_secs(second);
        let mut autoscaler = Autoscaler::new(case.settings.clone());
        let mut samples = case.samples.iter().peekable();
        for &(second, ready, desired, panicking) in &case.checks {
            while let Some(&&(sample_second, concurrency)) = samples.peek()
                && sample_second <= second
            {
                autoscaler.record(at(sample_second), concurrency);
                samples.next();
            }
            let decision = autoscaler.decide(at(second), ready);
            assert_eq!(
                decision,
                ScaleDecision { desired, panicking },
                "case `{}` at {second} s with {ready} ready",
                case.name
            );
        }
    }

    fn cases() -> Vec<Case> {
        let defaults = AutoscalerSettings::default;
        vec![
            Case {
                name: "steady load",
                settings: defaults(),
                samples: every_second(0, 120, 7.0),
                // Both averages 7; 7 / (1.0 * 0.7) = 10. Ready 10: limits [5, 10000],
                // panic 10 / 10 = 1 < 2. Ready 6: limits [3, 6000], panic 10 / 6 < 2.
                checks: vec![
                    (2, 10, 10, false),
                    (4, 6, 10, false),
                    (60, 10, 10, false),
                    (120, 10, 10, false),
                ],
            },
            Case {
                name: "steady load with float noise",
                settings: defaults(),
                samples: every_second(0, 20, 2.1),
                // 2.1 / 0.7 = 3 (3.0000000000000004 in floats, still 3). Panic 3 / 3 = 1.
                checks: vec![(10, 3, 3, false)],
            },
            Case {
                name: "steady load with a higher target",
                settings: AutoscalerSettings {
                    target_concurrency: 10.0,
                    ..defaults()
                },
                samples: every_second(0, 20, 30.0),
                // 30 / (10 * 0.7) = 4.29 -> 5. Panic 5 / 5 = 1.
                checks: vec![(10, 5, 5, false)],
            },
            Case {
                name: "burst enters panic and leaves after the stable window",
                settings: defaults(),
                samples: [
                    every_second(0, 9, 1.0),
                    every_second(10, 19, 10.0),
                    every_second(20, 80, 1.0),
                ]
                .concat(),
                checks: vec![
                    // Both averages 1; 1 / 0.7 = 1.43 -> 2; panic 2 / 2 = 1.
                    (8, 2, 2, false),
                    // Stable 0..=10: (10 + 10) / 11 = 1.82 -> 2.60 -> 3. Panic 5..=10:
                    // (5 + 10) / 6 = 2.5 -> 3.57 -> 4; 4 / 2 = 2 >= 2: panic. max(3, 4) = 4.
                    (10, 2, 4, true),
                    // Stable 0..=12: 40 / 13 = 3.08 -> 4.40 -> 5. Panic 7..=12: 33 / 6 = 5.5
                    // -> 7.86 -> 8; 8 / 4 = 2: panic again (triggered at 12). max(5, 8) = 8.
                    (12, 4, 8, true),
                    // Stable 0..=20: 111 / 21 = 5.29 -> 7.55 -> 8. Panic 15..=20: 51 / 6 = 8.5
                    // -> 12.14 -> 13; 13 / 8 < 2 but still panicking. max(8, 13, 8) = 13.
                    (20, 8, 13, true),
                    // Stable 0..=30: 121 / 31 = 3.90 -> 5.58 -> 6; panic 1 -> 2; floor(13 / 2) = 6
                    // -> 6. Panicking: never below the highest 13.
                    (30, 13, 13, true),
                    // 72 - 12 = 60 s, not more than the window: still panicking, 13.
                    (72, 13, 13, true),
                    // 74 - 12 = 62 s > 60: panic ends. Stable 15..=74: (50 + 55) / 60 = 1.75
                    // -> 2.5 -> 3; floor(13 / 2) = 6 -> 6.
                    (74, 13, 6, false),
                    // Stable 17..=76: (30 + 57) / 60 = 1.45 -> 2.07 -> 3; floor(6 / 2) = 3.
                    (76, 6, 3, false),
                    // Stable 21..=80: 1 -> 1.43 -> 2; floor(3 / 2) = 1 -> 2.
                    (80, 3, 2, false),
                ],
            },
            Case {
                name: "no scale-down while panicking",
                settings: defaults(),
                samples: [
                    every_second(0, 5, 10.0),
                    every_second(6, 70, 0.0),
                    every_second(71, 80, 2.0),
                ]
                .concat(),
                checks: vec![
                    // Both averages 10 -> 14.29 -> 15; 15 / 2 = 7.5 >= 2: panic at 5.
                    (5, 2, 15, true),
                    // Instances still starting (4 ready). Stable 0..=14: 60 / 15 = 4 -> 5.71 -> 6,
                    // floor(4 / 2) = 2; panic 0 -> 2. Panicking: held at the highest 15.
                    (14, 4, 15, true),
                    // Stable 0..=20: 60 / 21 = 2.86 -> 4.08 -> 5, floor(15 / 2) = 7 -> 7; panic 0.
                    // Panicking: stays at 15.
                    (20, 15, 15, true),
                    // Stable 5..=64: 10 / 60 -> 1, limit 7; 64 - 5 = 59 s: still 15.
                    (64, 15, 15, true),
                    // 65 - 5 = 60 s, not more than the window: still 15.
                    (65, 15, 15, true),
                    // 66 - 5 = 61 s: panic ends. Stable 0 -> limit floor(15 / 2) = 7.
                    (66, 15, 7, false),
                    // Stable 0: floor(7 / 2) = 3, then floor(3 / 2) = 1 (stable 71..=72:
                    // 4 / 60 -> 0.10 -> 1; panic 1 / 3 < 2).
                    (70, 7, 3, false),
                    (72, 3, 1, false),
                    // A new, smaller burst. Stable 71..=74: 8 / 60 -> 0.19 -> 1. Panic 69..=74:
                    // 8 / 6 = 1.33 -> 1.90 -> 2; 2 / 1 >= 2: panic again, starting afresh at
                    // max(1, 2, 1 ready) = 2, not at the old highest 15.
                    (74, 1, 2, true),
                ],
            },
            Case {
                name: "ready above the panic desire is not scaled down while panicking",
                settings: defaults(),
                samples: [every_second(0, 5, 10.0), every_second(6, 70, 0.0)].concat(),
                checks: vec![
                    // 10 / 0.7 = 14.29 -> 15; 15 / 2 >= 2: panic at 5.
                    (5, 2, 15, true),
                    // Stable 0..=10: 60 / 11 = 5.45 -> 7.79 -> 8, panic 5..=10: 10 / 6 -> 2.38 -> 3,
                    // both raised to floor(30 / 2) = 15; panicking: not below the 30 ready.
                    (10, 30, 30, true),
                    // 66 - 5 = 61 s: panic ends; stable 0 -> floor(30 / 2) = 15.
                    (66, 30, 15, false),
                ],
            },
            Case {
                name: "load stops: steps down by the scale-down rate limit",
                settings: defaults(),
                samples: [every_second(0, 59, 14.0), every_second(60, 150, 0.0)].concat(),
                checks: vec![
                    // 14 / 0.7 = 20; panic 20 / 20 = 1.
                    (59, 20, 20, false),
                    // Stable 61..=120 is all 0; floor(20 / 2) = 10.
                    (120, 20, 10, false),
                    // floor(10 / 2) = 5, floor(5 / 2) = 2, floor(2 / 2) = 1.
                    (122, 10, 5, false),
                    (124, 5, 2, false),
                    (126, 2, 1, false),
                    // floor(1 / 2) = 0, but the last demand (59 s) is 69 s ago < 60 + 30: keep 1.
                    (128, 1, 1, false),
                    // 149 - 59 = 90 s >= 60 + 30: zero.
                    (149, 1, 0, false),
                ],
            },
            Case {
                name: "load stops with a scale-down rate of 4",
                settings: AutoscalerSettings {
                    max_scale_down_rate: 4.0,
                    ..defaults()
                },
                samples: [every_second(0, 59, 14.0), every_second(60, 130, 0.0)].concat(),
                // floor(20 / 4) = 5, floor(5 / 4) = 1, floor(1 / 4) = 0 but 124 - 59 = 65 s < 90: 1.
                checks: vec![
                    (59, 20, 20, false),
                    (120, 20, 5, false),
                    (122, 5, 1, false),
                    (124, 1, 1, false),
                ],
            },
            Case {
                name: "slow decline within the limit follows the stable desire",
                settings: defaults(),
                samples: [every_second(0, 59, 14.0), every_second(60, 130, 7.0)].concat(),
                checks: vec![
                    (59, 20, 20, false),
                    // Stable 31..=90: (29 * 14 + 31 * 7) / 60 = 623 / 60 = 10.38 -> 14.83 -> 15,
                    // above floor(20 / 2) = 10. Panic 7 -> 10; 10 / 20 < 2.
                    (90, 20, 15, false),
                    // Stable 61..=120 all 7 -> 10, above floor(15 / 2) = 7.
                    (120, 15, 10, false),
                ],
            },
            Case {
                name: "scale to zero after the window and the grace period, not before",
                settings: defaults(),
                samples: [every_second(0, 10, 1.0), every_second(11, 110, 0.0)].concat(),
                checks: vec![
                    // 1 / 0.7 = 1.43 -> 2; panic 2 / 2 = 1.
                    (10, 2, 2, false),
                    // Stable 11..=70 is all 0; floor(2 / 2) = 1.
                    (70, 2, 1, false),
                    // floor(1 / 2) = 0; last demand at 10: 72 - 10 = 62 s < 90: keep 1.
                    (72, 1, 1, false),
                    // 99 - 10 = 89 s < 90: keep 1.
                    (99, 1, 1, false),
                    // 100 - 10 = 90 s: zero.
                    (100, 1, 0, false),
                    // Nothing ready, no demand: stays 0.
                    (102, 0, 0, false),
                ],
            },
            Case {
                name: "zero grace scales to zero when the stable window empties",
                settings: AutoscalerSettings {
                    scale_to_zero_grace: Duration::ZERO,
                    ..defaults()
                },
                samples: [every_second(0, 10, 1.0), every_second(11, 80, 0.0)].concat(),
                checks: vec![
                    // Stable 10..=69 holds the 1 at 10: 1 / 60 / 0.7 -> 1.
                    (69, 1, 1, false),
                    // Stable 11..=70 is all 0, floor(1 / 2) = 0, 70 - 10 = 60 s >= 60 + 0: zero.
                    (70, 1, 0, false),
                ],
            },
            Case {
                name: "a pool that never saw demand waits before going to zero",
                settings: defaults(),
                samples: vec![],
                // First call at 0; zero from 0 + 60 + 30 = 90.
                checks: vec![(0, 1, 1, false), (88, 1, 1, false), (90, 1, 0, false)],
            },
            Case {
                name: "min instances respected",
                settings: AutoscalerSettings {
                    min_instances: 2,
                    ..defaults()
                },
                samples: [every_second(0, 10, 1.0), every_second(11, 200, 0.0)].concat(),
                checks: vec![
                    // 1 / 0.7 -> 2.
                    (10, 2, 2, false),
                    // Stable 0, floor(2 / 2) = 1, quiet 190 s: 0 -> clamped up to 2.
                    (200, 2, 2, false),
                    // Nothing ready, no demand: 0 -> 2.
                    (202, 0, 2, false),
                ],
            },
            Case {
                name: "max instances respected",
                settings: AutoscalerSettings {
                    max_instances: 5,
                    ..defaults()
                },
                samples: every_second(0, 30, 69.0),
                // 69 / 0.7 = 98.57 -> 99; from zero unlimited, 99 / 1 >= 2: panic; clamped to 5.
                // At 30: limits [2, 5000], 99 / 5 >= 2: panic; 99 -> 5.
                checks: vec![(0, 0, 5, true), (30, 5, 5, true)],
            },
            Case {
                name: "scale-up rate limit",
                settings: AutoscalerSettings {
                    max_scale_up_rate: 1.5,
                    ..defaults()
                },
                samples: every_second(0, 20, 13.5),
                // 13.5 / 0.7 = 19.29 -> 20 wanted; at most ceil(1.5 * ready).
                // Panic: 20 / ready >= 2 up to ready 10, then held by the window.
                checks: vec![
                    (0, 1, 2, true),    // ceil(1.5) = 2
                    (2, 2, 3, true),    // ceil(3.0) = 3
                    (4, 3, 5, true),    // ceil(4.5) = 5
                    (6, 5, 8, true),    // ceil(7.5) = 8
                    (8, 8, 12, true),   // ceil(12.0) = 12
                    (10, 12, 18, true), // ceil(18.0) = 18
                    (12, 18, 20, true), // ceil(27.0) = 27 > 20
                ],
            },
            Case {
                name: "activation from zero",
                settings: defaults(),
                samples: vec![(0, 5.0)],
                // 5 / 0.7 = 7.14 -> 8, no rate limit with nothing ready; 8 / max(1, 0) >= 2: panic.
                checks: vec![(0, 0, 8, true)],
            },
            Case {
                name: "activation from zero ignores the rate limits",
                settings: AutoscalerSettings {
                    max_scale_up_rate: 1.5,
                    ..defaults()
                },
                samples: vec![(0, 5.0)],
                // ceil(1.5 * 0) = 0 would block; with nothing ready it does not apply: 8.
                checks: vec![(0, 0, 8, true)],
            },
            Case {
                name: "activation from zero for one request",
                settings: defaults(),
                samples: vec![(0, 1.0)],
                // 1 / 0.7 = 1.43 -> 2; 2 / max(1, 0) = 2 >= 2: panic, as in Knative.
                checks: vec![(0, 0, 2, true)],
            },
            Case {
                name: "nothing ready and no demand stays at zero",
                settings: defaults(),
                samples: vec![],
                checks: vec![(0, 0, 0, false), (10, 0, 0, false)],
            },
        ]
    }

    #[test]
    fn decisions_follow_the_kpa_rule() {
        for case in cases() {
            run(&case);
        }
    }

    #[test]
    fn defaults_are_knatives() {
        let settings = AutoscalerSettings::default();
        assert_eq!(settings.target_concurrency, 1.0);
        assert_eq!(settings.target_utilization, 0.7);
        assert_eq!(settings.stable_window, Duration::from_secs(60));
        assert_eq!(settings.panic_window, Duration::from_secs(6));
        assert_eq!(settings.panic_threshold, 2.0);
        assert_eq!(settings.max_scale_up_rate, 1000.0);
        assert_eq!(settings.max_scale_down_rate, 2.0);
        assert_eq!(settings.scale_to_zero_grace, Duration::from_secs(30));
        assert_eq!(settings.min_instances, 0);
        assert_eq!(settings.max_instances, 100);
    }

    #[test]
    fn unusable_settings_are_replaced_by_defaults() {
        let defaults = AutoscalerSettings::default();
        let autoscaler = Autoscaler::new(AutoscalerSettings {
            target_concurrency: 0.0,
            target_utilization: f64::NAN,
            stable_window: Duration::ZERO,
            panic_window: Duration::ZERO,
            panic_threshold: -1.0,
            max_scale_up_rate: 1.0,
            max_scale_down_rate: f64::NAN,
            scale_to_zero_grace: Duration::from_secs(5),
            min_instances: 7,
            max_instances: 3,
        });
        assert_eq!(
            autoscaler.settings(),
            &AutoscalerSettings {
                scale_to_zero_grace: Duration::from_secs(5),
                min_instances: 3,
                max_instances: 3,
                ..defaults.clone()
            }
        );

        let other = Autoscaler::new(AutoscalerSettings {
            target_concurrency: f64::INFINITY,
            target_utilization: 1.5,
            stable_window: Duration::from_secs(4),
            ..defaults.clone()
        });
        assert_eq!(other.settings().target_concurrency, 1.0);
        assert_eq!(other.settings().target_utilization, 0.7);
        // The 6 s panic window cannot be longer than the 4 s stable window.
        assert_eq!(other.settings().panic_window, Duration::from_secs(4));

        let allowed = AutoscalerSettings {
            panic_threshold: f64::INFINITY,
            max_scale_up_rate: f64::INFINITY,
            max_scale_down_rate: f64::INFINITY,
            target_utilization: 1.0,
            ..defaults
        };
        assert_eq!(Autoscaler::new(allowed.clone()).settings(), &allowed);
    }

    #[test]
    fn replaced_settings_still_decide() {
        let start = Instant::now();
        let mut autoscaler = Autoscaler::new(AutoscalerSettings {
            target_concurrency: 0.0,
            target_utilization: 0.0,
            ..AutoscalerSettings::default()
        });
        autoscaler.record(start, 7.0);
        // Defaults in effect: 7 / 0.7 = 10, ready 10, no panic.
        assert_eq!(
            autoscaler.decide(start, 10),
            ScaleDecision {
                desired: 10,
                panicking: false
            }
        );
    }

    #[test]
    fn unusable_samples_are_ignored_or_floored() {
        let start = Instant::now();
        let mut autoscaler = Autoscaler::new(AutoscalerSettings::default());
        autoscaler.record(start, f64::NAN);
        autoscaler.record(start, f64::INFINITY);
        autoscaler.record(start, -3.0);
        assert_eq!(autoscaler.samples.len(), 1);
        assert_eq!(autoscaler.last_demand, None);
        // One sample of 0 and nothing ready: nothing to do.
        assert_eq!(
            autoscaler.decide(start, 0),
            ScaleDecision {
                desired: 0,
                panicking: false
            }
        );
    }

    #[test]
    fn samples_older_than_the_stable_window_are_dropped() {
        let start = Instant::now();
        let mut autoscaler = Autoscaler::new(AutoscalerSettings::default());
        for second in 0..1000 {
            autoscaler.record(start + Duration::from_secs(second), 1.0);
        }
        // At the last record (999 s) only 940..=999 are younger than 60 s.
        assert_eq!(autoscaler.samples.len(), 60);
        autoscaler.decide(start + Duration::from_secs(2000), 1);
        assert!(autoscaler.samples.is_empty());
    }

    #[test]
    fn huge_values_saturate_at_max_instances() {
        let start = Instant::now();
        let mut autoscaler = Autoscaler::new(AutoscalerSettings {
            max_instances: u32::MAX,
            max_scale_up_rate: f64::INFINITY,
            ..AutoscalerSettings::default()
        });
        autoscaler.record(start, f64::MAX);
        autoscaler.record(start, f64::MAX);
        assert_eq!(
            autoscaler.decide(start, 1),
            ScaleDecision {
                desired: u32::MAX,
                panicking: true
            }
        );
    }

    #[test]
    fn whole_desires_are_not_bumped_by_float_noise() {
        assert_eq!(instances_for(2.1, 0.7), 3.0);
        assert_eq!(instances_for(14.0, 0.7), 20.0);
        assert_eq!(instances_for(7.0, 0.7), 10.0);
        assert_eq!(instances_for(7.01, 0.7), 11.0);
        assert_eq!(instances_for(0.0, 0.7), 0.0);
        assert_eq!(instances_for(0.001, 0.7), 1.0);
    }
}
