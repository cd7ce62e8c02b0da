//! Following the changes other nodes make to a shared registry: a task
//! that listens on the registry's PostgreSQL channel and checks the stored
//! generation every [`GENERATION_POLL`] besides, reloading when it moved.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Control;
use crate::registry::CHANGES_CHANNEL;

/// How often a node compares the stored registry generation with its own
/// when no notification came: the longest a change takes to reach a node
/// whose listening connection was down.
pub(crate) const GENERATION_POLL: Duration = Duration::from_millis(500);

/// Starts following `url`'s registry for `control` (until it is dropped).
pub(crate) fn follow_cluster(control: &Arc<Control>, url: String) -> tokio::task::JoinHandle<()> {
    let control = Arc::downgrade(control);
    tokio::spawn(async move { follow(control, url).await })
}

async fn follow(control: Weak<Control>, url: String) {
    let mut listener = None;
    loop {
        if listener.is_none() {
            listener = listen(&url).await;
        }
        let notified = async {
            match listener.as_mut() {
                Some(listener) => listener.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            heard = notified => {
                if let Err(error) = heard {
                    tracing::warn!(%error, "lost the registry notifications; checking every {} ms until they are back", GENERATION_POLL.as_millis());
                    listener = None;
                }
            }
            () = tokio::time::sleep(GENERATION_POLL) => {}
        }
        let Some(control) = control.upgrade() else {
            return;
        };
        match control.reload_if_changed().await {
            Ok(true) => tracing::info!("another node changed the registry: reloaded"),
            Ok(false) => {}
            Err(error) => tracing::warn!(error = %error, "cannot check the registry for changes"),
        }
    }
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let listening = async {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listening.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for registry changes; checking every {} ms", GENERATION_POLL.as_millis());
            None
        }
    }
}
