//! The function gateway: the HTTP trigger. Every request is matched
//! against the live route table and handed, with its method, path, query,
//! headers and body unchanged, to the pool of the function version the
//! route resolves to; the function's response streams back. Every answer
//! carries `x-kumo-request-id`. A request asking for an asynchronous call
//! (`X-Kumo-Invocation-Type: Event` and the peers' spellings) is queued
//! instead and answered `202 Accepted` (`api::invocations`). Nothing here
//! reads or changes the registry.
//!
//! A request's body starts arriving before any instance is taken: the
//! gateway waits (up to [`BODY_WAIT`]) for a body of declared length to
//! arrive whole, or its first [`BODY_PREFETCH_BYTES`] when it is longer, so
//! a client that sends its body slowly holds a connection, never an
//! instance other callers need. A body of unknown length (chunked) is
//! awaited only until its first bytes: it may be a stream the function
//! answers piece by piece, so the rest reaches the guest as it comes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::api::ApiError;
use crate::events::Events;
use crate::live::Live;
use crate::metering::TriggerKind;
use crate::request_id::REQUEST_ID_HEADER_NAME;

/// The gateway as a hyper service: every request goes through the live
/// route table; asynchronous calls go to `events`' queue. Served straight
/// by `connections::serve`, without an axum router in front: it would only
/// route every request to [`handle`], at a cost on every request.
#[derive(Clone)]
pub(crate) struct Gateway {
    live: Arc<Live>,
    events: Arc<Events>,
}

impl Gateway {
    pub(crate) fn new(live: Arc<Live>, events: Arc<Events>) -> Self {
        Self { live, events }
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Gateway {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let Gateway { live, events } = self.clone();
        Box::pin(async move { Ok(handle(&live, &events, request.map(Body::new)).await) })
    }
}

async fn handle(live: &Live, events: &Events, mut request: Request) -> Response {
    let request_id: Arc<str> = crate::request_id::next();
    let mut response = match live.route(request.uri().path()) {
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no route matches `{}`; hint: `kumo up` lists the routes when it starts",
                request.uri().path()
            ),
        )
        .into_response(),
        Some(Err(error)) => ApiError::from(error).into_response(),
        Some(Ok(pool)) => 'invoke: {
            // wasi:http needs an authority, from the URI (HTTP/2) or the
            // host header; HTTP/1.0 clients may send neither, HTTP/1.1
            // clients must send the header (RFC 9112, section 3.2).
            if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST)
            {
                if request.version() == axum::http::Version::HTTP_11 {
                    break 'invoke crate::api::missing_host().into_response();
                }
                request
                    .headers_mut()
                    .insert(header::HOST, HeaderValue::from_static("localhost"));
            }
            match crate::api::invocations::requested_invocation_type(request.headers()) {
                Err(error) => break 'invoke error.into_response(),
                Ok(kumo_protocol::header::InvocationType::Async) => {
                    break 'invoke queue_async(live, events, request).await;
                }
                Ok(kumo_protocol::header::InvocationType::Sync) => {}
            }
            let request = match prefetch_body(request).await {
                Ok(request) => request,
                Err(refusal) => break 'invoke refusal.into_response(),
            };
            match pool
                .invoke(request, request_id.clone(), TriggerKind::Http)
                .await
            {
                Ok(response) => response.map(Body::new),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER_NAME, value);
    }
    response
}

/// Queues an asynchronous call of the function the request's path routes
/// to (its target, re-resolved at every attempt).
async fn queue_async(live: &Live, events: &Events, request: Request) -> Response {
    let snapshot = live.snapshot();
    let Some(target) = snapshot.route_target(request.uri().path()).cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route matches `{}`", request.uri().path()),
        )
        .into_response();
    };
    crate::api::invocations::accept_async(events, &snapshot, &target, request).await
}

/// The most of a request body of declared length read before an instance
/// is taken.
pub(crate) const BODY_PREFETCH_BYTES: usize = 64 * 1024;

/// How long the gateway waits for that much of a body (or all of it).
pub(crate) const BODY_WAIT: Duration = Duration::from_secs(30);

/// Reads the start of `request`'s body: with a `content-length`, all of
/// it or its first [`BODY_PREFETCH_BYTES`]; without, its first bytes. The
/// rest still streams. A body that fails to read is handed on failing, so
/// the invocation is refused as the client's error and metered like any
/// other.
///
/// # Errors
///
/// `408` when that much did not arrive within [`BODY_WAIT`].
async fn prefetch_body(request: Request) -> Result<Request, ApiError> {
    if request.body().is_end_stream() {
        return Ok(request);
    }
    let wanted = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok())
        .map_or(1, |length| {
            usize::try_from(length).map_or(BODY_PREFETCH_BYTES, |length| {
                length.clamp(1, BODY_PREFETCH_BYTES)
            })
        });
    let (parts, mut body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + BODY_WAIT;
    let mut prefix = BytesMut::new();
    let mut prefetched = Prefetched::default();
    loop {
        if prefix.len() >= wanted {
            prefetched.rest = Some(body);
            break;
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} s; hint: send the body right after the headers",
                        BODY_WAIT.as_secs()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                prefetched.failed = Some(error);
                break;
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => prefix.extend_from_slice(&data),
                Err(frame) => {
                    prefetched.trailers = frame.into_trailers().ok();
                    break;
                }
            },
        }
    }
    let prefix = prefix.freeze();
    if prefetched.rest.is_none() && prefetched.failed.is_none() && prefetched.trailers.is_none() {
        return Ok(Request::from_parts(parts, Body::from(prefix)));
    }
    prefetched.prefix = (!prefix.is_empty()).then_some(prefix);
    Ok(Request::from_parts(parts, Body::new(prefetched)))
}

/// A body whose start was read already: the bytes read, then what came
/// after them (the rest of the stream, the trailers, or the read error).
#[derive(Default)]
struct Prefetched {
    prefix: Option<Bytes>,
    rest: Option<Body>,
    trailers: Option<axum::http::HeaderMap>,
    failed: Option<axum::Error>,
}

impl http_body::Body for Prefetched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if let Some(rest) = self.rest.as_mut() {
            return Pin::new(rest).poll_frame(cx);
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.failed.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |prefix| prefix.len() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |rest| rest.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(prefix + rest.lower());
        if let Some(upper) = rest.upper() {
            hint.set_upper(prefix + upper);
        }
        hint
    }
}
