//! The scope an invocation's log lines are written in: its `tracing` span
//! (the caller says what it holds: function, version, request id, trigger),
//! made the first time the invocation logs something.
//!
//! Made on demand because a span is dear next to a small invocation: one
//! made eagerly for every invocation, and entered on every poll, cost a
//! fifth of the requests per CPU-second of a `hello` function
//! (`bench/compare_builds.sh`), while most invocations log nothing. Every
//! line an invocation does log (guest output, its failure, a denied
//! outbound request, a cut-off response body) is in that one span.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// One invocation's log scope. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct InvocationScope(Option<Arc<Scope>>);

struct Scope {
    request_id: Arc<str>,
    make_span: Box<dyn Fn(&str) -> tracing::Span + Send + Sync>,
    span: OnceLock<tracing::Span>,
}

impl InvocationScope {
    /// The scope of the invocation `request_id`, whose span `make_span`
    /// makes (from the request id) when first needed.
    pub(crate) fn new(
        request_id: Arc<str>,
        make_span: impl Fn(&str) -> tracing::Span + Send + Sync + 'static,
    ) -> Self {
        Self(Some(Arc::new(Scope {
            request_id,
            make_span: Box::new(make_span),
            span: OnceLock::new(),
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
                .get_or_init(|| (scope.make_span)(&scope.request_id))
                .in_scope(log),
            None => log(),
        }
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
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_span_is_made_once_and_only_when_something_is_logged() {
        let made = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&made);
        let scope = InvocationScope::new(Arc::from("r1"), move |request_id| {
            assert_eq!(request_id, "r1");
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
}
