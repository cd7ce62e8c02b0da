//! What invokes a function. Triggers turn an outside event into an
//! invocation and hand it to a pool (HTTP) or to the event queue (watched
//! folders, timers; object storage calls [`crate::events::Events`]
//! directly); they never touch wasmtime types.
//!
//! - [`http`]: routes on the function gateway.
//! - [`watch`]: files written into a watched host folder.
//! - [`timer`]: cron schedules.

pub mod http;
pub mod timer;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::database::Database;
use crate::events::{self, Delivery, DeliverySettings, Events, Resolver};
use crate::manifest::Manifest;

/// The event side of a running Kumo: the queue's producers, its delivery,
/// the watched folders and the timers.
pub struct EventTriggers {
    /// The queue's producers' side: object storage calls
    /// [`Events::on_object_change`] on it.
    pub events: Arc<Events>,
    delivery: Delivery,
    watchers: watch::Watchers,
    timers: timer::Timers,
}

/// Starts delivering queued events (resuming those a previous run left)
/// through the pools `resolve` finds, and starts the manifest's watched
/// folders and timers.
///
/// # Errors
///
/// The database fails, or a watched folder cannot be created or watched.
pub async fn start_event_triggers(
    database: Database,
    manifest: &Manifest,
    resolve: Resolver,
) -> anyhow::Result<EventTriggers> {
    let events = Events::new(database, manifest.storage_triggers.clone());
    let delivery =
        events::start_delivery(events.clone(), resolve, DeliverySettings::default()).await?;
    let watchers = watch::start_watchers(events.clone(), manifest.watch_triggers.clone())?;
    let timers = manifest
        .timer_triggers
        .iter()
        .map(|trigger| {
            let cron = events::trigger::parse_cron(&trigger.cron)
                .expect("the manifest validated its cron expressions");
            (trigger.clone(), cron)
        })
        .collect();
    let timers = timer::start_timers(events.clone(), timers);
    Ok(EventTriggers {
        events,
        delivery,
        watchers,
        timers,
    })
}

impl EventTriggers {
    /// Stops the timers and watchers, then delivery (waiting up to `grace`
    /// for deliveries in flight; the rest resume at the next start).
    pub async fn stop(self, grace: Duration) {
        self.timers.stop();
        self.watchers.stop();
        self.delivery.stop(grace).await;
    }
}
