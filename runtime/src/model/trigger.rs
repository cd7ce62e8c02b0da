//! A trigger: what invokes a function. An HTTP route on the gateway, or an
//! event trigger (object storage, a watched folder, a timer). Typed from
//! the manifest or the API inward, and stored as JSON in that same shape.

use serde::{Deserialize, Serialize};

use super::{Route, StorageTrigger, Target, TimerTrigger, WatchTrigger};

/// What a trigger is and what it invokes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum TriggerSpec {
    /// An HTTP route on the function gateway.
    Http {
        /// `/hello` (exact) or `/api/...` (prefix).
        #[schema(value_type = String)]
        route: Route,
        /// `name`, `name:3` (a version) or `name:alias`.
        #[schema(value_type = String)]
        function: Target,
    },
    /// Objects created or removed in a bucket of Kumo's object storage.
    Storage(StorageTrigger),
    /// Files written into a folder on the host.
    Watch(WatchTrigger),
    /// A cron schedule.
    Timer(TimerTrigger),
}

impl TriggerSpec {
    /// The target it invokes.
    pub(crate) fn function(&self) -> &Target {
        match self {
            Self::Http { function, .. } => function,
            Self::Storage(trigger) => &trigger.function,
            Self::Watch(trigger) => &trigger.function,
            Self::Timer(trigger) => &trigger.function,
        }
    }

    /// The target it invokes, to point it elsewhere.
    pub(crate) fn function_mut(&mut self) -> &mut Target {
        match self {
            Self::Http { function, .. } => function,
            Self::Storage(trigger) => &mut trigger.function,
            Self::Watch(trigger) => &mut trigger.function,
            Self::Timer(trigger) => &mut trigger.function,
        }
    }

    /// `http`, `storage`, `watch` or `timer`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Storage(_) => "storage",
            Self::Watch(_) => "watch",
            Self::Timer(_) => "timer",
        }
    }

    /// The event trigger's name (unique per kind); `None` for HTTP.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            Self::Http { .. } => None,
            Self::Storage(trigger) => Some(&trigger.name),
            Self::Watch(trigger) => Some(&trigger.name),
            Self::Timer(trigger) => Some(&trigger.name),
        }
    }

    /// Whether `other` would take this trigger's place: the same HTTP
    /// route, or the same kind and name of an event trigger.
    pub(crate) fn same_slot(&self, other: &TriggerSpec) -> bool {
        match (self, other) {
            (Self::Http { route, .. }, Self::Http { route: other, .. }) => route == other,
            _ => self.kind() == other.kind() && self.name() == other.name(),
        }
    }

    /// What fires it, in a few words: the route, the bucket and filter,
    /// the folder, or the schedule.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Http { route, .. } => route.to_string(),
            Self::Storage(trigger) => format!(
                "{} {}*{} {}",
                trigger.bucket,
                trigger.prefix,
                trigger.suffix,
                trigger.events.join(",")
            ),
            Self::Watch(trigger) => format!(
                "{}{}",
                trigger.path.display(),
                trigger
                    .pattern
                    .as_ref()
                    .map(|pattern| format!(" ({pattern})"))
                    .unwrap_or_default()
            ),
            Self::Timer(trigger) => format!("cron {}", trigger.cron),
        }
    }

    /// The event trigger's name, to fill in a default.
    pub(crate) fn name_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::Http { .. } => None,
            Self::Storage(trigger) => Some(&mut trigger.name),
            Self::Watch(trigger) => Some(&mut trigger.name),
            Self::Timer(trigger) => Some(&mut trigger.name),
        }
    }
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Trigger {
    /// Its id (`trg_...`).
    pub id: String,
    /// What fires it and what it invokes (flattened into its JSON).
    #[serde(flatten)]
    pub spec: TriggerSpec,
    /// RFC 3339, UTC.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_trigger_is_stored_in_the_shape_it_was_written_in() {
        let json = r#"{"kind":"http","route":"/api/...","function":"hello:live"}"#;
        let spec: TriggerSpec = serde_json::from_str(json).unwrap();
        assert_eq!(
            spec,
            TriggerSpec::Http {
                route: Route::Prefix("/api".into()),
                function: Target::parse("hello:live").unwrap(),
            }
        );
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
        let bad = r#"{"kind":"http","route":"api","function":"hello"}"#;
        let error = serde_json::from_str::<TriggerSpec>(bad).unwrap_err();
        assert!(error.to_string().contains("invalid route `api`"), "{error}");
    }
}
