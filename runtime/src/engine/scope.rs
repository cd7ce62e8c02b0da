//! The scope an invocation's log lines are written in: its `tracing` span
//! (the caller says what it holds: function, version, request id, trigger),
//! made the first time the invocation logs something, and its one failure
//! line ([`InvocationScope::report_failure`]).
//!
//! Made on demand because a span is dear next to a small invocation: one
//! made eagerly for every invocation, and entered on every poll, cost a
//! fifth of the requests per CPU-second of a `hello` function
//! (`bench/compare_builds.sh`), while most invocations log nothing. Every
//! line an invocation does log (guest output, its failure, a denied
//! outbound request) is in that one span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::instance::FunctionLog;

/// One invocation's log scope. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct InvocationScope(Option<Arc<Scope>>);

/// Makes an invocation's span from its function's name and its request id.
type MakeSpan = dyn Fn(&str, &str) -> tracing::Span + Send + Sync;

struct Scope {
    log: Arc<FunctionLog>,
    request_id: Arc<str>,
    make_span: Box<MakeSpan>,
    span: OnceLock<tracing::Span>,
    /// Set by the first failure reported: later ones are consequences.
    failed: AtomicBool,
}

impl InvocationScope {
    /// The scope of the invocation `request_id` of the function whose log
    /// is `log`; `make_span` makes its span (from the function's name and
    /// the request id) when first needed.
    pub(super) fn new(
        log: Arc<FunctionLog>,
        request_id: Arc<str>,
        make_span: impl Fn(&str, &str) -> tracing::Span + Send + Sync + 'static,
    ) -> Self {
        Self(Some(Arc::new(Scope {
            log,
            request_id,
            make_span: Box::new(make_span),
            span: OnceLock::new(),
            failed: AtomicBool::new(false),
        })))
    }

    /// The request id; empty outside an invocation (a pre-warm).
    pub(crate) fn request_id(&self) -> Arc<str> {
        self.0
            .as_ref()
            .map_or_else(|| Arc::from(""), |scope| Arc::clone(&scope.request_id))
    }

    /// Runs `log` in the invocation's span (outside an invocation, in the
    /// current span).
    pub(crate) fn in_scope<R>(&self, log: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(scope) => scope
                .span
                .get_or_init(|| (scope.make_span)(&scope.log.function, &scope.request_id))
                .in_scope(log),
            None => log(),
        }
    }

    /// Reports why the invocation failed: one line in its function's log
    /// (source `failure`) and one `warn` event in its span. Only the first
    /// report of an invocation counts: what fails after it (the caller's
    /// error after the guest's trap, a guest stopped because its body was
    /// cut off) follows from it. Outside an invocation (a pre-warm) the
    /// failure is only logged.
    ///
    /// Called only when something failed: a successful invocation formats
    /// and allocates nothing here.
    pub(crate) fn report_failure(&self, failure: &dyn std::fmt::Display) {
        let text = failure.to_string();
        if let Some(scope) = &self.0 {
            if scope.failed.swap(true, Ordering::Relaxed) {
                return;
            }
            scope.log.write_failure(&scope.request_id, &text);
        }
        self.in_scope(|| tracing::warn!(error = %text, "the invocation failed"));
    }
}

/// The invocation an instance is serving now, shared by its stdout, its
/// stderr and its outbound hook. An instance serves many invocations over
/// its life when it is reused.
#[derive(Clone, Default)]
pub(super) struct CurrentInvocation(Arc<Mutex<InvocationScope>>);

impl CurrentInvocation {
    pub(super) fn set(&self, scope: InvocationScope) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = scope;
    }

    pub(super) fn get(&self) -> InvocationScope {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    use super::super::instance::GuestLogSink;

    fn log(sink: Option<GuestLogSink>) -> Arc<FunctionLog> {
        Arc::new(FunctionLog::new(Arc::from("f"), sink))
    }

    #[test]
    fn the_span_is_made_once_and_only_when_something_is_logged() {
        let made = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&made);
        let scope =
            InvocationScope::new(log(None), Arc::from("r1"), move |function, request_id| {
                assert_eq!((function, request_id), ("f", "r1"));
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::Span::none()
            });
        let current = CurrentInvocation::default();
        current.set(scope.clone());
        assert_eq!(&*current.get().request_id(), "r1");
        assert_eq!(made.load(Ordering::Relaxed), 0, "nothing logged yet");
        assert_eq!(scope.in_scope(|| 7), 7);
        current.get().in_scope(|| ());
        assert_eq!(made.load(Ordering::Relaxed), 1);
        assert_eq!(&*InvocationScope::default().request_id(), "");
    }

    #[test]
    fn an_invocation_reports_one_failure_the_first() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let sink = GuestLogSink::new(move |function, request_id, source, level, text| {
            seen.lock().unwrap().push(format!(
                "{function} {request_id} {} {level} {text}",
                source.as_str()
            ));
        });
        let scope = InvocationScope::new(log(Some(sink)), Arc::from("r1"), |_, _| {
            tracing::Span::none()
        });
        scope.report_failure(&"the function trapped: boom");
        scope
            .clone()
            .report_failure(&"the invocation was stopped by the host");
        InvocationScope::default().report_failure(&"not an invocation");
        assert_eq!(
            *lines.lock().unwrap(),
            ["f r1 failure ERROR the function trapped: boom"]
        );
    }
}
