//! Kumo's vocabulary: the values that name things and say what invokes
//! what — routes, targets, trigger specifications with their retry policy,
//! object changes, the destinations of asynchronous invocations. Text becomes these types once, where it enters Kumo (the
//! manifest, the admin API, a stored row), and everything further in works
//! with the types. Nothing here does I/O or knows another module of the
//! crate: every other layer may use it.

mod bucket_name;
mod destination;
mod event_trigger;
mod object_change;
#[cfg(test)]
mod proptests;
mod route;
mod target;
mod trigger;

pub(crate) use bucket_name::bucket_name_problem;
pub use destination::{AsyncPolicy, Destination, DestinationTable};
pub(crate) use event_trigger::defaults as retry_defaults;
#[cfg(test)]
pub(crate) use event_trigger::parse_cron;
pub use event_trigger::{ObjectEventFormat, RetryPolicy, StorageTrigger, TriggerError};
pub(crate) use event_trigger::{TimerTrigger, WatchTrigger, matching_storage_triggers};
pub use object_change::ObjectChange;
pub(crate) use route::{Route, RouteTable};
pub use target::{Qualifier, Target};
pub(crate) use target::{check_alias_name, check_function_name, is_valid_function_name};
pub(crate) use trigger::{Trigger, TriggerSpec};

/// Text that does not parse as the value it should be: the message names
/// the value and ends with a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
