//! The event side of a running Kumo: watched folders and cron timers that
//! turn outside events into queued events, and delivery of the queue, kept
//! in step with the registry's triggers by `control`. Object storage calls
//! [`crate::events::Events`] directly; HTTP requests come through
//! `gateway`. Nothing here touches wasmtime types.
//!
//! - [`watch`]: files written into a watched host folder.
//! - [`timer`]: cron schedules.

pub(crate) mod timer;
pub(crate) mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::database::Database;
use crate::events::{self, Delivery, DeliverySettings, Events, Resolver};
use crate::model::{StorageTrigger, TimerTrigger, WatchTrigger};

/// The event side of a running Kumo: the queue's producers, its delivery,
/// the watched folders and the timers. Which triggers run follows the
/// registry: [`EventTriggers::apply`] is called after every reload.
pub(crate) struct EventTriggers {
    /// The queue's producers' side: object storage calls
    /// [`Events::on_object_change`] on it.
    pub(crate) events: Arc<Events>,
    delivery: Delivery,
    /// The folders watch triggers may watch.
    watch_roots: watch::WatchRoots,
    watchers: Option<(Vec<WatchTrigger>, watch::Watchers)>,
    timers: Option<(Vec<TimerTrigger>, timer::Timers)>,
}

/// Starts delivering queued events (resuming those a previous run left)
/// through the pools `resolve` finds; destination records for buckets are
/// written into object storage under `storage_root`, and their own events
/// queued as an upload's would be. No trigger runs until
/// [`EventTriggers::apply`]; watch triggers only watch folders under
/// `watch_roots`.
///
/// # Errors
///
/// The database fails.
pub(crate) async fn start_event_triggers(
    database: Database,
    resolve: Resolver,
    storage_root: std::path::PathBuf,
    watch_roots: watch::WatchRoots,
) -> anyhow::Result<EventTriggers> {
    let events = Events::new(database, Vec::new());
    let weak_events = Arc::downgrade(&events);
    let write_object: events::destination::ObjectWriter =
        Arc::new(move |bucket, key, bytes, hops| {
            let (root, weak_events) = (storage_root.clone(), weak_events.clone());
            Box::pin(async move {
                let change =
                    crate::storage::put_object(&root, &bucket, &key, bytes, "application/json")
                        .await?;
                let events = weak_events
                    .upgrade()
                    .ok_or_else(|| anyhow::anyhow!("the event queue is shutting down"))?;
                events
                    .on_object_change_caused_by(change, Some(hops))
                    .await?;
                Ok(())
            })
        });
    let delivery = events::start_delivery(
        events.clone(),
        resolve,
        write_object,
        match crate::database::dialect(events.database()) {
            crate::database::Dialect::Sqlite => DeliverySettings::default(),
            crate::database::Dialect::Postgres => DeliverySettings::cluster(),
        },
    )
    .await?;
    Ok(EventTriggers {
        events,
        delivery,
        watch_roots,
        watchers: None,
        timers: None,
    })
}

impl EventTriggers {
    /// The folders watch triggers may watch, to check a new trigger before
    /// it is stored.
    pub(crate) fn watch_roots(&self) -> &watch::WatchRoots {
        &self.watch_roots
    }

    /// Makes these the running triggers: storage matching switches at
    /// once; watchers and timers restart only when their set changed.
    /// A watcher or timer that cannot start is logged and left out.
    pub(crate) fn apply(
        &mut self,
        storage: Vec<StorageTrigger>,
        watch: Vec<WatchTrigger>,
        timer: Vec<TimerTrigger>,
    ) {
        self.events.set_storage_triggers(storage);
        if self.watchers.as_ref().map(|(running, _)| running) != Some(&watch) {
            if let Some((_, watchers)) = self.watchers.take() {
                watchers.stop();
            }
            let mut started = Vec::new();
            for trigger in &watch {
                match watch::start_watchers(
                    self.events.clone(),
                    &self.watch_roots,
                    vec![trigger.clone()],
                ) {
                    Ok(watchers) => started.push(watchers),
                    Err(error) => {
                        tracing::error!(trigger = %trigger.name, error = format!("{error:#}"), "cannot start a watch trigger")
                    }
                }
            }
            self.watchers = Some((watch, watch::Watchers::join(started)));
        }
        if self.timers.as_ref().map(|(running, _)| running) != Some(&timer) {
            if let Some((_, timers)) = self.timers.take() {
                timers.stop();
            }
            let schedules = timer
                .iter()
                .filter_map(|trigger| match trigger.validate() {
                    Ok(cron) => Some((trigger.clone(), cron)),
                    Err(error) => {
                        tracing::error!(trigger = %trigger.name, error = %error, "cannot start a timer");
                        None
                    }
                })
                .collect();
            self.timers = Some((timer, timer::start_timers(self.events.clone(), schedules)));
        }
    }

    /// Stops the timers and watchers, then delivery (waiting up to `grace`
    /// for deliveries in flight; the rest resume at the next start).
    pub(crate) async fn stop(self, grace: Duration) {
        if let Some((_, timers)) = self.timers {
            timers.stop();
        }
        if let Some((_, watchers)) = self.watchers {
            watchers.stop();
        }
        self.delivery.stop(grace).await;
    }
}
