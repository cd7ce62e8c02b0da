//! Serving HTTP connections on a listener with limits no client can
//! outlast: the gateway, the admin API and the S3 endpoint all go through
//! [`serve`].
//!
//! - A request's head (request line and headers) must arrive within
//!   [`ConnectionLimits::header_timeout`]; the same clock runs while a
//!   kept-alive connection waits for its next request, so it is also the
//!   idle keep-alive timeout. A client sending one byte a second is cut off.
//! - At most [`ConnectionLimits::max_connections`] connections are open per
//!   listener; past that, new ones wait in the kernel's backlog until one
//!   closes, so one flooded listener cannot use up the process's file
//!   descriptors and starve the others.
//! - An accept that fails for lack of descriptors backs off instead of
//!   spinning.
//!
//! [`serve`] hands each connection to a service made for it from the
//! peer's address ([`axum_app`] puts that address in each request as
//! axum's `ConnectInfo`). Nothing here knows what the requests are for.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The default time a client has to send a request's head, and the idle
/// keep-alive timeout.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Descriptors kept back from the connection caps, for the database,
/// storage files, watchers and the compile cache.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How long accepting pauses after the process ran out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The limits every listener applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed for a request's head, and for an idle kept-alive
    /// connection's next request.
    pub header_timeout: Duration,
    /// Open connections per listener.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// [`DEFAULT_HEADER_TIMEOUT`] and 1,024 connections.
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: 1024,
        }
    }
}

impl ConnectionLimits {
    /// The limits for a process allowed `descriptors` open files, shared by
    /// `listeners` listeners: each gets an equal share of what is left
    /// after [`RESERVED_DESCRIPTORS`], or `max_connections` if that is
    /// smaller.
    pub(crate) fn for_descriptors(
        descriptors: u64,
        listeners: u64,
        header_timeout: Duration,
        max_connections: Option<usize>,
    ) -> Self {
        let share = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / listeners.max(1);
        let share = usize::try_from(share).unwrap_or(usize::MAX).max(1);
        Self {
            header_timeout,
            max_connections: max_connections
                .map_or(share, |given| given.min(share))
                .max(1),
        }
    }
}

/// Raises the soft limit on open files to the hard limit and returns the
/// limit in force (the soft one when it cannot be raised).
pub(crate) fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => return limit.maximum.unwrap_or(u64::MAX),
            Err(error) => {
                tracing::warn!(%error, soft, "cannot raise the open-file limit to its hard limit")
            }
        }
    }
    soft
}

/// The service of one connection to an axum app: each request carries the
/// peer's address as `ConnectInfo`, for handlers that extract it.
pub(crate) struct AxumConnection {
    app: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<http::Request<Incoming>> for AxumConnection {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = tower::util::Oneshot<Router, axum::extract::Request>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.clone().oneshot(request.map(axum::body::Body::new))
    }
}

/// What [`serve`] takes to serve the axum `app`.
pub(crate) fn axum_app(app: Router) -> impl Fn(SocketAddr) -> AxumConnection {
    move |peer| AxumConnection {
        app: app.clone(),
        peer,
    }
}

/// Serves on `listener` under `limits` until `shutdown` resolves, then
/// stops accepting and waits for open connections to finish their
/// requests (idle ones close at once). Each connection is served by the
/// service `service_for` makes from its peer's address.
///
/// # Errors
///
/// None yet: accept errors are logged and retried. The `Result` keeps the
/// shape of `axum::serve`, which this replaces.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service_for: impl Fn(SocketAddr) -> S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_at_cap = false;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !warned_at_cap {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        address = ?listener.local_addr().ok(),
                        "connection limit reached: new connections wait until one closes; hint: raise --max-connections (and the open-file limit)"
                    );
                    warned_at_cap = true;
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    if out_of_descriptors(&error) {
                        tracing::warn!(%error, "cannot accept a connection: out of file descriptors; pausing accepts");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            () = &mut shutdown => break,
                        }
                    } else {
                        tracing::debug!(%error, "accept failed");
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if slots.available_permits() > 0 {
            warned_at_cap = false;
        }
        // Responses stream (headers, then body frames): without
        // TCP_NODELAY, Nagle's algorithm holds the body until the client's
        // delayed ACK, adding ~40 ms to some responses.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = service_for(peer);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::trace!(error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_gets_a_share_of_the_descriptors_left() {
        let timeout = DEFAULT_HEADER_TIMEOUT;
        let cases = [
            // (descriptors, listeners, --max-connections, expected cap)
            (20_000, 3, None, 6_581),
            (20_000, 3, Some(100), 100),
            (20_000, 3, Some(1_000_000), 6_581),
            (400, 3, None, 48),
            (100, 3, None, 1),
        ];
        for (descriptors, listeners, given, expected) in cases {
            let limits = ConnectionLimits::for_descriptors(descriptors, listeners, timeout, given);
            assert_eq!(
                limits.max_connections, expected,
                "{descriptors} {listeners} {given:?}"
            );
            assert_eq!(limits.header_timeout, timeout);
        }
    }
}
