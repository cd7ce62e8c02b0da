//! Kumo's vocabulary: the values that name things and say what invokes
//! what — routes, targets, trigger specifications with their retry policy,
//! object changes. Text becomes these types once, where it enters Kumo (the
//! manifest, the admin API, a stored row), and everything further in works
//! with the types. Nothing here does I/O or knows another module of the
//! crate: every other layer may use it.

mod event_trigger;
mod object_change;
mod route;
mod target;
mod trigger;

pub use event_trigger::{
    ObjectEventFormat, RetryPolicy, StorageTrigger, TimerTrigger, TriggerError, WatchTrigger,
    defaults as event_defaults, event_pattern_matches, glob_matches, is_valid_bucket_name,
    matching_storage_triggers, parse_cron,
};
pub use object_change::ObjectChange;
pub use route::{Route, RouteTable};
pub use target::{
    Qualifier, Target, check_alias_name, check_function_name, is_valid_alias_name,
    is_valid_function_name,
};
pub use trigger::{Trigger, TriggerSpec};

/// Text that does not parse as the value it should be: the message names
/// the value and ends with a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
