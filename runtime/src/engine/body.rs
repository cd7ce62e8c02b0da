//! Request and response bodies under a function's limits: the request body
//! is cut off past `max_request_bytes` (and the rest drained so the
//! connection closes cleanly), the response body past `max_response_bytes`,
//! and a response whose guest was stopped ends with an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::scope::InvocationScope;

/// The most of an oversized request body read and thrown away, and for how
/// long, so the connection closes cleanly after a 413 (nginx's "lingering
/// close"): closing on unread data makes the kernel reset the connection,
/// and the client may then never see the 413.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

pub(super) fn drain_in_background<B>(body: B)
where
    B: Body<Data = Bytes> + Send + 'static,
{
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        let deadline = Instant::now() + DRAIN_MAX_TIME;
        let mut drained = 0u64;
        while drained < DRAIN_MAX_BYTES {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    drained += frame.data_ref().map_or(0, |data| data.len() as u64);
                }
                _ => break,
            }
        }
    });
}

/// What became of a request body, shared between the body (which the
/// guest reads) and the invocation.
#[derive(Default)]
pub(super) struct RequestTally {
    /// Set when the body passed its limit.
    pub(super) overflowed: AtomicBool,
    /// Set when the client's body could not be read (a malformed chunked
    /// encoding, a connection closed mid-body): the caller's fault.
    pub(super) unreadable: AtomicBool,
    /// Body bytes handed to the guest so far.
    pub(super) bytes_read: AtomicU64,
}

/// A request body that fails once more than `limit` bytes arrived, flags
/// it, and drains the rest in the background.
pub(super) struct LimitedRequestBody<B> {
    inner: Option<Pin<Box<B>>>,
    seen: u64,
    limit: u64,
    tally: Arc<RequestTally>,
}

impl<B> LimitedRequestBody<B> {
    /// Limits `body` to `limit` bytes; `tally` counts what the guest reads
    /// and is flagged when the body passes the limit.
    pub(super) fn new(body: B, limit: u64, tally: Arc<RequestTally>) -> Self {
        Self {
            inner: Some(Box::pin(body)),
            seen: 0,
            limit,
            tally,
        }
    }
}

impl<B> Body for LimitedRequestBody<B>
where
    B: Body<Data = Bytes> + Send + 'static,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let too_large = wasmtime_wasi_http::Error::HttpRequestBodySize(Some(this.limit));
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(too_large)));
        };
        match inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.tally.overflowed.store(true, Ordering::Relaxed);
                        if let Some(rest) = this.inner.take() {
                            drain_in_background(rest);
                        }
                        return Poll::Ready(Some(Err(too_large)));
                    }
                    this.tally
                        .bytes_read
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => {
                this.tally.unreadable.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpProtocolError)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, |inner| inner.size_hint())
    }
}

/// The `content-length` a message declares, if any and if valid.
pub(super) fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A response body streaming from the guest, cut off (and the guest
/// stopped) when it passes `max_response_bytes`.
///
/// Frames the guest had already written when its headers arrived are taken
/// up front: when that is the whole body (the common case for small
/// answers), the body has an exact size and goes out in the same write as
/// the headers instead of as separate TCP segments.
pub(crate) struct ResponseBody {
    ready: std::collections::VecDeque<Result<Frame<Bytes>, ResponseBodyError>>,
    /// `None` once the guest's stream has ended (or failed).
    inner: Option<HyperOutgoingBody>,
    /// Whether the guest finished normally; checked when its stream ends.
    finished: Option<oneshot::Receiver<bool>>,
    remaining: u64,
    limit: u64,
    /// Where a cut-off is reported (the server's connection task polls the
    /// body, outside the invocation's own future).
    scope: InvocationScope,
    /// Stops the guest if it is still writing when the body is cut off.
    guest: Option<tokio::task::AbortHandle>,
    /// Body bytes handed to the caller so far.
    sent: u64,
    /// Called with `sent` when the body is dropped (see [`ResponseBody::when_done`]).
    on_done: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
}

/// Why a response body stream ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseBodyError {
    /// The body passed `max_response_bytes`.
    #[error("the function's response passed its limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The guest's body stream failed.
    #[error("the function's response stream failed: {0}")]
    Guest(wasmtime_wasi_http::Error),
    /// The guest was stopped (timeout, trap) before it finished its body.
    #[error("the function stopped before finishing its response")]
    Stopped,
}

impl ResponseBody {
    /// The guest's body, limited to `limit` bytes, taking at once the frames
    /// already written. `finished` tells whether the guest ended normally.
    pub(super) fn new(
        body: HyperOutgoingBody,
        finished: oneshot::Receiver<bool>,
        limit: u64,
        scope: InvocationScope,
        guest: Option<tokio::task::AbortHandle>,
    ) -> Self {
        let mut body = Self {
            ready: std::collections::VecDeque::new(),
            inner: Some(body),
            finished: Some(finished),
            remaining: limit,
            limit,
            scope,
            guest,
            sent: 0,
            on_done: None,
        };
        body.take_ready_frames();
        body
    }

    /// Calls `done` once with the number of body bytes handed to the caller
    /// (the server, which writes them to the client), when the body is
    /// finished or dropped: complete, cut off, or abandoned by a client
    /// that went away. A second call replaces the first callback.
    pub(crate) fn when_done(&mut self, done: impl FnOnce(u64) + Send + Sync + 'static) {
        self.on_done = Some(Box::new(done));
    }

    /// Moves the frames available right now into `ready`, without waiting.
    fn take_ready_frames(&mut self) {
        let mut context = Context::from_waker(std::task::Waker::noop());
        while let Some(inner) = self.inner.as_mut() {
            match Pin::new(inner).poll_frame(&mut context) {
                Poll::Ready(Some(frame)) => {
                    let frame = self.check(frame);
                    let failed = frame.is_err();
                    self.ready.push_back(frame);
                    if failed {
                        self.inner = None;
                    }
                }
                Poll::Ready(None) => match self.poll_guest_finished(&mut context) {
                    Poll::Ready(None) => self.inner = None,
                    Poll::Ready(Some(error)) => {
                        self.inner = None;
                        self.ready.push_back(Err(error));
                    }
                    Poll::Pending => break,
                },
                Poll::Pending => break,
            }
        }
    }

    /// After the guest's stream ended: `None` if the guest finished
    /// normally, the error to end the body with if it was stopped.
    fn poll_guest_finished(&mut self, cx: &mut Context<'_>) -> Poll<Option<ResponseBodyError>> {
        let Some(finished) = self.finished.as_mut() else {
            return Poll::Ready(None);
        };
        let completed = match Pin::new(finished).poll(cx) {
            Poll::Ready(Ok(completed)) => completed,
            // The guest's run was dropped (aborted) without a verdict.
            Poll::Ready(Err(_)) => false,
            Poll::Pending => return Poll::Pending,
        };
        self.finished = None;
        Poll::Ready((!completed).then_some(ResponseBodyError::Stopped))
    }

    /// Applies the size limit to one frame from the guest.
    fn check(
        &mut self,
        frame: Result<Frame<Bytes>, wasmtime_wasi_http::Error>,
    ) -> Result<Frame<Bytes>, ResponseBodyError> {
        let frame = frame.map_err(ResponseBodyError::Guest)?;
        if let Some(data) = frame.data_ref() {
            let length = data.len() as u64;
            if length > self.remaining {
                if let Some(guest) = &self.guest {
                    guest.abort();
                }
                self.scope
                    .report_failure(&super::InvokeError::ResponseTooLarge { limit: self.limit });
                self.remaining = 0;
                return Err(ResponseBodyError::TooLarge { limit: self.limit });
            }
            self.remaining -= length;
        }
        Ok(frame)
    }
}

impl ResponseBody {
    fn count_sent(&mut self, frame: &Result<Frame<Bytes>, ResponseBodyError>) {
        if let Some(data) = frame.as_ref().ok().and_then(Frame::data_ref) {
            self.sent += data.len() as u64;
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(done) = self.on_done.take() {
            done(self.sent);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        let this = &mut *self;
        this.poll_next_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty()
            && self
                .inner
                .as_ref()
                .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ready: u64 = self
            .ready
            .iter()
            .filter_map(|frame| frame.as_ref().ok()?.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        match &self.inner {
            None => SizeHint::with_exact(ready),
            Some(inner) => {
                let inner = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + ready);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + ready);
                }
                hint
            }
        }
    }
}

impl ResponseBody {
    fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        let this = self;
        if let Some(frame) = this.ready.pop_front() {
            this.count_sent(&frame);
            return Poll::Ready(Some(frame));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                let frame = this.check(frame);
                if frame.is_err() {
                    this.inner = None;
                }
                this.count_sent(&frame);
                Poll::Ready(Some(frame))
            }
            Poll::Ready(None) => match this.poll_guest_finished(cx) {
                Poll::Ready(error) => {
                    this.inner = None;
                    Poll::Ready(error.map(Err))
                }
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}
