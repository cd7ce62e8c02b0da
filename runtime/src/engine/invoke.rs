//! One invocation: an instance's `Store`, the request handed to the guest's
//! `wasi:http/incoming-handler`, the response streamed back under the
//! function's limits, and a guest failure turned into an [`InvokeError`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use tokio::time::Instant;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

use super::body::{
    LimitedRequestBody, RequestTally, ResponseBody, declared_length, drain_in_background,
};
use super::instance::{
    FunctionLog, GuestLog, GuestLogSink, InstanceState, LogSource, PanicCapture, PeakMemory,
};
use super::outbound::{OutboundPolicy, OutboundRule};
use super::scope::{CurrentInvocation, InvocationScope};

/// Per-function limits and environment, fixed when the function is compiled.
#[derive(Debug, Clone)]
pub(crate) struct FunctionSettings {
    /// Memory limit per instance, in MiB.
    pub(crate) memory_mb: u64,
    /// Wall-clock limit for one invocation, response body included.
    pub(crate) timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub(crate) max_request_bytes: u64,
    /// Largest response body sent, in bytes.
    pub(crate) max_response_bytes: u64,
    /// The only environment variables the guest sees.
    pub(crate) env: Vec<(String, String)>,
    /// Where the guest may send HTTP requests; empty means nowhere.
    pub(crate) allowed_outbound_hosts: Arc<[OutboundRule]>,
    /// Host folders the guest sees (WASI preopens); empty means no file
    /// system at all.
    pub(crate) mounts: Vec<DirMount>,
}

/// A host folder preopened into every instance of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirMount {
    /// The folder on the host.
    pub(crate) host_path: std::path::PathBuf,
    /// Where the guest sees it, such as `/data`.
    pub(crate) guest_path: String,
    /// Whether the guest may create, change and delete files in it.
    pub(crate) writable: bool,
}

/// A compiled, pre-linked function. Instances of it are made with
/// [`Function::new_instance`] (or [`Function::prewarm`]) and requests run
/// with [`Function::invoke`]. Cheap to share behind an `Arc`.
pub(crate) struct Function {
    name: Arc<str>,
    pre: ProxyPre<InstanceState>,
    settings: FunctionSettings,
    log: Arc<FunctionLog>,
}

/// One instance of a function: a wasmtime `Store` and, once instantiated,
/// the component's exports. An instance serves one request at a time; a
/// pool may hand it request after request.
pub(crate) struct Instance {
    store: Store<InstanceState>,
    /// `None` until the first request (or a pre-warm) instantiates it.
    proxy: Option<Proxy>,
}

impl Instance {
    /// Whether the component has been instantiated (a warm instance).
    pub(crate) fn is_instantiated(&self) -> bool {
        self.proxy.is_some()
    }
}

/// Why an invocation did not produce a response. The variants are what a
/// caller branches on (to pick a status, to meter an outcome).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum InvokeError {
    /// The request body is larger than `max_request_bytes`.
    #[error(
        "request body is larger than the function's limit of {limit} bytes; \
         hint: send less, or raise `max_request_bytes`"
    )]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request cannot be expressed as a `wasi:http` request (for
    /// example a `host` header that is not ASCII).
    #[error(
        "the request cannot be handed to the function: {message}; hint: send ASCII header values and a valid host"
    )]
    BadRequest {
        /// What is wrong with it.
        message: String,
    },
    /// The request body could not be read from the client: its chunked
    /// encoding is malformed, or the connection ended mid-body.
    #[error(
        "the request body could not be read: it is malformed or ended early; \
         hint: send a complete body, with a valid `content-length` or chunked encoding"
    )]
    UnreadableBody,
    /// The guest trapped (panic, `unreachable`, stack overflow, ...).
    #[error("the function trapped: {message}")]
    Trap {
        /// What kind of trap, without host internals.
        message: String,
    },
    /// The guest did not finish within `timeout_ms`.
    #[error("the function did not finish within its timeout of {} ms; hint: raise `timeout_ms` or make it faster", .timeout.as_millis())]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
    },
    /// The guest tried to grow its memory past `memory_mb`.
    #[error(
        "the function exceeded its memory limit of {limit_mb} MiB; hint: raise `memory_mb` or use less memory"
    )]
    OutOfMemory {
        /// The configured limit.
        limit_mb: u64,
    },
    /// The guest declared a response larger than `max_response_bytes`.
    #[error(
        "the function's response is larger than its limit of {limit} bytes; \
         hint: send less, or raise `max_response_bytes`"
    )]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The guest answered with a `wasi:http` error code instead of a response.
    #[error("the function failed: {message}")]
    FunctionFailed {
        /// The error code the guest sent.
        message: String,
    },
    /// The guest returned without ever sending a response.
    #[error("the function returned without sending a response")]
    NoResponse,
    /// The host could not create an instance: the pooling allocator has
    /// no slot left, or the OS refused the memory or stack. Not the
    /// guest's doing; a later attempt may succeed.
    #[error("the host could not create an instance right now; hint: retry shortly")]
    InstanceUnavailable,
    /// The host stopped the guest after answering the caller (its request
    /// or response passed a limit mid-stream).
    #[error("the invocation was stopped by the host")]
    Cancelled,
    /// Something went wrong on the host's side; details are in the log.
    #[error("internal error while invoking the function")]
    Internal,
}

/// How an invocation ended, handed to the `on_exit` callback of
/// [`Function::invoke`] exactly once, when the guest stopped running (which
/// may be before or after the caller finished reading the response body;
/// the body's own count comes from [`ResponseBody::when_done`]).
pub(crate) struct InvocationEnd {
    /// `Ok` when the guest's handler returned normally.
    pub(crate) result: Result<(), InvokeError>,
    /// The instance, when it is healthy and may serve again; `None` when it
    /// trapped, timed out, ran out of memory or was stopped.
    pub(crate) instance: Option<Instance>,
    /// How long instantiation took, on a cold start.
    pub(crate) init: Option<Duration>,
    /// How long the guest ran for this request, instantiation excluded
    /// (from the start of its run to its exit, streaming included); zero
    /// when it never started (the request was refused first).
    pub(crate) duration: Duration,
    /// The instance's linear memory at its highest so far, in bytes. Linear
    /// memory never shrinks, so for a reused instance this is its peak over
    /// every request it served, as a process's max RSS would be.
    pub(crate) peak_memory_bytes: u64,
    /// Request body bytes the guest read.
    pub(crate) request_bytes: u64,
}

/// Calls `on_exit` exactly once: with the real end, or, if the guest's
/// task is dropped first (aborted), with [`InvokeError::Cancelled`]. It
/// measures what every end reports (duration, peak memory, bytes read).
struct ExitGuard {
    on_exit: Option<Box<dyn FnOnce(InvocationEnd) + Send>>,
    peak: PeakMemory,
    request: Option<Arc<RequestTally>>,
    /// When the guest's run began; `None` until then.
    started: Option<Instant>,
    init: Option<Duration>,
}

impl ExitGuard {
    fn finish(mut self, result: Result<(), InvokeError>, instance: Option<Instance>) {
        self.call(result, instance);
    }

    fn call(&mut self, result: Result<(), InvokeError>, instance: Option<Instance>) {
        let Some(on_exit) = self.on_exit.take() else {
            return;
        };
        let ran = self
            .started
            .map_or(Duration::ZERO, |started| started.elapsed());
        on_exit(InvocationEnd {
            result,
            instance,
            init: self.init,
            duration: ran.saturating_sub(self.init.unwrap_or_default()),
            peak_memory_bytes: self.peak.bytes() as u64,
            request_bytes: self
                .request
                .as_ref()
                .map_or(0, |tally| tally.bytes_read.load(Ordering::Relaxed)),
        });
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.call(Err(InvokeError::Cancelled), None);
    }
}

impl Function {
    pub(super) fn new(
        name: Arc<str>,
        pre: ProxyPre<InstanceState>,
        settings: FunctionSettings,
        log_sink: Option<GuestLogSink>,
    ) -> Self {
        Self {
            log: Arc::new(FunctionLog::new(name.clone(), log_sink)),
            name,
            pre,
            settings,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The function's name, shared (for records that outlive a request).
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn settings(&self) -> &FunctionSettings {
        &self.settings
    }

    /// The log scope of one invocation of this function, `request_id`;
    /// `make_span` makes its span (from the function's name and the request
    /// id) the first time it logs.
    pub(crate) fn invocation_scope(
        &self,
        request_id: Arc<str>,
        make_span: impl Fn(&str, &str) -> tracing::Span + Send + Sync + 'static,
    ) -> InvocationScope {
        InvocationScope::new(Arc::clone(&self.log), request_id, make_span)
    }

    /// A new instance: its `Store` is ready; the component itself is
    /// instantiated by the first request (that request is a cold start).
    pub(crate) fn new_instance(&self) -> Instance {
        let current = CurrentInvocation::default();
        let panic = PanicCapture::new(Arc::clone(&self.log));
        let mut wasi = WasiCtx::builder();
        wasi.envs(&self.settings.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(GuestLog {
                log: Arc::clone(&self.log),
                current: current.clone(),
                source: LogSource::Stdout,
                panic: None,
            })
            .stderr(GuestLog {
                log: Arc::clone(&self.log),
                current: current.clone(),
                source: LogSource::Stderr,
                panic: Some(panic.clone()),
            });
        for mount in &self.settings.mounts {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            // The folder was there at start; if it vanished since, the
            // guest finds the mount missing and its file calls fail.
            if let Err(error) = wasi.preopened_dir(&mount.host_path, &mount.guest_path, perms) {
                tracing::error!(
                    function = %self.name,
                    host_path = %mount.host_path.display(),
                    guest_path = %mount.guest_path,
                    %error,
                    "cannot mount a folder into a new instance; it starts without it"
                );
            }
        }
        let outbound = OutboundPolicy {
            rules: self.settings.allowed_outbound_hosts.clone(),
            current: current.clone(),
        };
        let memory_limit = usize::try_from(self.settings.memory_mb << 20).unwrap_or(usize::MAX);
        let mut store = Store::new(
            self.pre.engine(),
            InstanceState::new(current, wasi.build(), outbound, memory_limit, panic),
        );
        store.limiter(|state| &mut state.memory);
        // Yield to the executor at every epoch tick: a guest spinning on the
        // CPU then shares its thread, and the timeout can fire. tokio's
        // `yield_now` puts the task at the back of the run queue; a plain
        // self-wake would land in the LIFO slot and starve other requests.
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Instance { store, proxy: None }
    }

    /// Creates and instantiates an instance ahead of any request.
    ///
    /// # Errors
    ///
    /// [`InvokeError::OutOfMemory`] when the component's initial memory is
    /// over `memory_mb`, [`InvokeError::InstanceUnavailable`] when the host
    /// cannot create an instance, [`InvokeError::Trap`] when its start traps.
    pub(crate) async fn prewarm(&self) -> Result<Instance, InvokeError> {
        let mut instance = self.new_instance();
        instance.store.set_epoch_deadline(1);
        let deadline = Instant::now() + self.settings.timeout;
        let result = tokio::time::timeout_at(deadline, async {
            instance.proxy = Some(self.pre.instantiate_async(&mut instance.store).await?);
            Ok(())
        })
        .await;
        // A panic in the component's start is no invocation's failure: its
        // report goes to the log as the guest wrote it.
        instance.store.data().panic.release();
        match classify_exit(
            result,
            instance.store.data(),
            (self.settings.timeout, self.settings.memory_mb),
            Phase::Instantiating,
        ) {
            GuestExit::Completed => Ok(instance),
            GuestExit::Failed(error) => Err(error),
        }
    }

    /// Runs one request on `instance` (a fresh one from
    /// [`Function::new_instance`], or a warm one that served before).
    ///
    /// The response's status and headers are returned as soon as the guest
    /// sends them; its body streams while the guest writes it, limited to
    /// `max_response_bytes` and to what is left of the timeout. `on_exit`
    /// is called exactly once when the guest is done, with the instance if
    /// it may serve again.
    ///
    /// Every failure is reported in `scope`
    /// ([`InvocationScope::report_failure`], the first one counts): the
    /// error returned, the guest's own failure (a trap, with the panic's
    /// message when a Rust guest panicked; a timeout; its memory limit),
    /// also after the answer, and a response body cut off at
    /// `max_response_bytes`.
    ///
    /// # Errors
    ///
    /// An [`InvokeError`] when the request is too large, or the guest traps,
    /// times out, runs out of memory, declares a too-large response, fails,
    /// or never answers.
    pub(crate) async fn invoke<B>(
        &self,
        mut instance: Instance,
        request: http::Request<B>,
        scope: InvocationScope,
        on_exit: impl FnOnce(InvocationEnd) + Send + 'static,
    ) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let mut exit = ExitGuard {
            on_exit: Some(Box::new(on_exit)),
            peak: instance.store.data().memory.peak.clone(),
            request: None,
            started: None,
            init: None,
        };
        let request_limit = self.settings.max_request_bytes;
        if declared_length(request.headers()).is_some_and(|length| length > request_limit) {
            // A client that asked for `100-continue` waits for this answer
            // and sends nothing; any other is already sending the body.
            if !request.headers().contains_key(http::header::EXPECT) {
                drain_in_background(request.into_body());
            }
            let error = InvokeError::PayloadTooLarge {
                limit: request_limit,
            };
            // The instance never ran: it is as good as it was.
            exit.finish(Err(error.clone()), Some(instance));
            return failed(&scope, error);
        }
        let request_tally = Arc::new(RequestTally::default());
        exit.request = Some(request_tally.clone());
        let request =
            request.map(|body| LimitedRequestBody::new(body, request_limit, request_tally.clone()));

        let deadline = Instant::now() + self.settings.timeout;
        instance.store.data().current.set(scope.clone());
        instance.store.set_epoch_deadline(1);
        let (sender, receiver) = oneshot::channel();
        let (incoming, outparam) = {
            let mut http = instance.store.data_mut().http();
            let incoming = http.new_incoming_request(Scheme::Http, request);
            let outparam = http.new_response_outparam(sender);
            match (incoming, outparam) {
                (Ok(incoming), Ok(outparam)) => (incoming, outparam),
                // Only the request can make these fail (wasmtime checks the
                // authority and headers): the caller's mistake.
                (Err(error), _) | (_, Err(error)) => {
                    let error = InvokeError::BadRequest {
                        message: format!("{error:#}"),
                    };
                    exit.finish(Err(error.clone()), None);
                    return failed(&scope, error);
                }
            }
        };

        let pre = self.pre.clone();
        let settings = (self.settings.timeout, self.settings.memory_mb);
        // Tells the response body whether the guest finished normally: a
        // body that ends because the guest was stopped (timeout, trap) must
        // end with an error, not look complete.
        let (finished_sender, finished) = oneshot::channel::<bool>();
        // The guest's failure is logged in the invocation's scope, also
        // when its run continues in its own task.
        let guest_scope = scope.clone();
        let mut guest_run = Box::pin(async move {
            let mut exit = exit;
            exit.started = Some(Instant::now());
            let mut phase = Phase::Instantiating;
            let result = tokio::time::timeout_at(deadline, async {
                if instance.proxy.is_none() {
                    let started = Instant::now();
                    instance.proxy = Some(pre.instantiate_async(&mut instance.store).await?);
                    exit.init = Some(started.elapsed());
                }
                phase = Phase::Handling;
                let proxy = instance.proxy.as_ref().expect("instantiated just above");
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut instance.store, incoming, outparam)
                    .await
            })
            .await;
            let exit_kind = classify_exit(result, instance.store.data(), settings, phase);
            let _ = finished_sender.send(matches!(exit_kind, GuestExit::Completed));
            let panic = &instance.store.data().panic;
            match &exit_kind {
                GuestExit::Completed => {
                    panic.release();
                    exit.finish(Ok(()), Some(instance));
                }
                GuestExit::Failed(error) => {
                    // A Rust guest's panic ends in a trap: its message says
                    // why, in the log only (the caller's answer keeps the
                    // guest's internals out).
                    let panicked = match error {
                        InvokeError::Trap { .. } => panic.take_message(),
                        _ => None,
                    };
                    panic.release();
                    match panicked {
                        Some(message) => guest_scope.report_failure(&InvokeError::Trap { message }),
                        None => guest_scope.report_failure(error),
                    }
                    exit.finish(Err(error.clone()), None);
                }
            }
            exit_kind
        });

        // Run the guest right here until it answers or finishes: a small
        // handler usually does both in one go, so no task is spawned and
        // no other thread is woken. A guest still running (streaming its
        // body, waiting on I/O) continues in its own task once it answers.
        let mut receiver = receiver;
        let (answer, guest) = tokio::select! {
            biased;
            exit = &mut guest_run => (receiver.await, GuestTask::Exited(exit)),
            answer = &mut receiver => (answer, GuestTask::Running(tokio::spawn(guest_run))),
        };
        if request_tally.overflowed.load(Ordering::Relaxed) {
            // Whatever the guest did after its body read was cut off (an
            // error answer, a trap), the caller's request was at fault.
            guest.abort();
            return failed(
                &scope,
                InvokeError::PayloadTooLarge {
                    limit: request_limit,
                },
            );
        }
        if request_tally.unreadable.load(Ordering::Relaxed) {
            // The guest saw its body read fail; whatever it answered (an
            // error, a trap) is about the caller's request, not the guest.
            guest.abort();
            return failed(&scope, InvokeError::UnreadableBody);
        }
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                return failed(
                    &scope,
                    InvokeError::FunctionFailed {
                        message: format!("{code:?}"),
                    },
                );
            }
            // The guest dropped the outparam (it stopped) without answering:
            // its exit says why.
            Err(_) => {
                let error = match guest.exit().await {
                    Ok(GuestExit::Failed(error)) => error,
                    Ok(GuestExit::Completed) => InvokeError::NoResponse,
                    Err(join_error) => {
                        scope.in_scope(
                            || tracing::error!(error = %join_error, "the guest task failed"),
                        );
                        InvokeError::Internal
                    }
                };
                return failed(&scope, error);
            }
        };

        let response_limit = self.settings.max_response_bytes;
        if declared_length(response.headers()).is_some_and(|length| length > response_limit) {
            guest.abort();
            return failed(
                &scope,
                InvokeError::ResponseTooLarge {
                    limit: response_limit,
                },
            );
        }
        let guest = guest.abort_handle();
        Ok(response.map(|body| ResponseBody::new(body, finished, response_limit, scope, guest)))
    }
}

/// Reports `error` as the invocation's failure and returns it.
fn failed<T>(scope: &InvocationScope, error: InvokeError) -> Result<T, InvokeError> {
    scope.report_failure(&error);
    Err(error)
}

/// How the guest's task ended, as seen after it stopped.
enum GuestExit {
    Completed,
    Failed(InvokeError),
}

/// The guest's run: already over, or still going in its own task.
enum GuestTask {
    Exited(GuestExit),
    Running(tokio::task::JoinHandle<GuestExit>),
}

impl GuestTask {
    fn abort(&self) {
        if let GuestTask::Running(task) = self {
            task.abort();
        }
    }

    async fn exit(self) -> Result<GuestExit, tokio::task::JoinError> {
        match self {
            GuestTask::Exited(exit) => Ok(exit),
            GuestTask::Running(task) => task.await,
        }
    }

    fn abort_handle(&self) -> Option<tokio::task::AbortHandle> {
        match self {
            GuestTask::Exited(_) => None,
            GuestTask::Running(task) => Some(task.abort_handle()),
        }
    }
}

/// Where a guest's run was when it ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiating,
    Handling,
}

fn classify_exit(
    result: Result<wasmtime::Result<()>, tokio::time::error::Elapsed>,
    state: &InstanceState,
    (timeout, memory_mb): (Duration, u64),
    phase: Phase,
) -> GuestExit {
    let error = match result {
        Err(_elapsed) => return GuestExit::Failed(InvokeError::Timeout { timeout }),
        Ok(Ok(())) => return GuestExit::Completed,
        Ok(Err(error)) => error,
    };
    if state.memory.limit_hit {
        return GuestExit::Failed(InvokeError::OutOfMemory {
            limit_mb: memory_mb,
        });
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        let message = match trap {
            Trap::StackOverflow => "stack overflow (unbounded recursion?)".to_string(),
            Trap::UnreachableCodeReached => {
                "wasm `unreachable` executed (a panic or abort in the guest)".to_string()
            }
            other => other
                .to_string()
                .trim_start_matches("wasm trap: ")
                .to_string(),
        };
        return GuestExit::Failed(InvokeError::Trap { message });
    }
    if error
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return GuestExit::Failed(InvokeError::InstanceUnavailable);
    }
    // Instantiating a validated component fails, short of a trap in its
    // start function or the memory limit, only when the host cannot
    // provide the instance (address space for its memory or stack, an OS
    // limit): not the guest's fault, and the OS error stays in the log.
    if phase == Phase::Instantiating {
        tracing::warn!(error = %format!("{error:#}"), "the host could not create an instance");
        return GuestExit::Failed(InvokeError::InstanceUnavailable);
    }
    // A host function refused the guest (a bad resource handle, a WASI
    // misuse): the guest is at fault, so it is a trap; the details stay in
    // the log.
    tracing::debug!(error = %format!("{error:#}"), "a host call refused the guest");
    GuestExit::Failed(InvokeError::Trap {
        message: format!("{}", error.root_cause()),
    })
}
