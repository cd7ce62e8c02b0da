//! Turning a `.wasm` file into a [`Function`]: validate, compile (or load
//! from the compilation cache), link, and check the export.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::Engine;
use super::invoke::{Function, FunctionSettings};

/// Where a function's code comes from, for compiling and for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ComponentSource<'a> {
    /// The function's name.
    pub(crate) function: &'a str,
    /// The file the bytes came from.
    pub(crate) path: &'a Path,
}

/// Why a component was refused. Every message names the function and the
/// file and ends with a hint.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompileError {
    /// The file could not be read.
    #[error(
        "function `{function}`: cannot read source `{path}`: {error}; hint: check the path \
         (relative paths are relative to the manifest), or build the function first (`kumo up --build`)"
    )]
    Unreadable {
        function: String,
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The file does not start with the wasm magic bytes.
    #[error(
        "function `{function}`: `{path}` is not a WebAssembly file (it does not start with `\\0asm`); \
         hint: point `source` at the .wasm file your build writes"
    )]
    NotWasm {
        function: String,
        /// The file.
        path: String,
    },
    /// A core module instead of a component.
    #[error(
        "function `{function}`: `{path}` is a core WebAssembly module, not a component; \
         hint: build for the `wasm32-wasip2` target, or wrap the module with `wasm-tools component new`"
    )]
    CoreModule {
        function: String,
        /// The file.
        path: String,
    },
    /// The bytes are not a valid component, or wasmtime cannot compile it.
    #[error(
        "function `{function}`: `{path}` is not a valid component: {reason}; hint: rebuild it \
         (a truncated or hand-edited file fails this way), and check it with `wasm-tools validate`"
    )]
    Invalid {
        function: String,
        /// The file.
        path: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The component imports something Kumo does not provide.
    #[error(
        "function `{function}`: `{path}` cannot be linked: {reason}; hint: Kumo provides the \
         imports of the `wasi:http/proxy` world (WASI 0.2) and nothing else"
    )]
    UnsupportedImport {
        function: String,
        /// The file.
        path: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The component does not export the HTTP handler.
    #[error(
        "function `{function}`: `{path}` does not export `wasi:http/incoming-handler`; hint: Kumo \
         serves components of the `wasi:http/proxy` world (built with kumo-sdk, `wasip2`, `wstd`, \
         or any toolchain targeting that world)"
    )]
    NotHttpHandler {
        function: String,
        /// The file.
        path: String,
    },
}

/// What compiling one function did, for logs and start-up reports.
#[derive(Debug, Clone)]
pub(crate) struct CompileReport {
    /// Hex sha256 of the wasm bytes.
    pub(crate) sha256: String,
    /// Size of the wasm file.
    pub(crate) wasm_bytes: usize,
    /// Whether the compiled code came from the on-disk cache.
    pub(crate) from_cache: bool,
    /// Time spent in validation, compilation (or cache load) and linking.
    pub(crate) elapsed: Duration,
}

/// The wasm binary header: magic, then a version/layer word.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl Engine {
    /// Reads, validates and compiles a function's component.
    ///
    /// CPU-heavy on a cache miss: call it from a blocking context.
    ///
    /// # Errors
    ///
    /// A [`CompileError`] naming the function and the file when the file is
    /// missing, not wasm, a core module, an invalid component, imports more
    /// than the `wasi:http/proxy` world, or does not export
    /// `wasi:http/incoming-handler`.
    pub(crate) fn compile_file(
        &self,
        source: ComponentSource<'_>,
        settings: FunctionSettings,
    ) -> Result<(Function, CompileReport), CompileError> {
        let path_text = source.path.display().to_string();
        let bytes = std::fs::read(source.path).map_err(|error| CompileError::Unreadable {
            function: source.function.to_string(),
            path: path_text.clone(),
            error,
        })?;
        self.compile_bytes(source, &bytes, settings)
    }

    /// Validates and compiles a component already in memory; see
    /// [`Engine::compile_file`].
    ///
    /// # Errors
    ///
    /// As for [`Engine::compile_file`], minus the read error.
    pub(crate) fn compile_bytes(
        &self,
        source: ComponentSource<'_>,
        bytes: &[u8],
        settings: FunctionSettings,
    ) -> Result<(Function, CompileReport), CompileError> {
        let started = Instant::now();
        let function = source.function.to_string();
        let path = source.path.display().to_string();
        if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
            return Err(CompileError::NotWasm { function, path });
        }
        if bytes[4..8] == CORE_MODULE_VERSION {
            return Err(CompileError::CoreModule { function, path });
        }
        let sha256 = hex::encode(Sha256::digest(bytes));

        let hits_before = self.cache_hits();
        // Machine code from disk runs only if it is what Kumo wrote.
        self.inner.cache_guard.remove_bad_entries();
        let component =
            Component::new(&self.inner.wasmtime, bytes).map_err(|error| CompileError::Invalid {
                function: function.clone(),
                path: path.clone(),
                reason: format!("{error:#}"),
            })?;
        let from_cache = self.cache_hits() > hits_before;
        self.inner.cache_guard.record_new_entries();

        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|error| CompileError::UnsupportedImport {
                function: function.clone(),
                path: path.clone(),
                reason: format!("{error:#}"),
            })?;
        let pre = ProxyPre::new(instance_pre).map_err(|_| CompileError::NotHttpHandler {
            function: function.clone(),
            path: path.clone(),
        })?;

        let report = CompileReport {
            sha256,
            wasm_bytes: bytes.len(),
            from_cache,
            elapsed: started.elapsed(),
        };
        let function = Function::new(
            Arc::from(source.function),
            pre,
            settings,
            self.inner.guest_log_sink.clone(),
        );
        Ok((function, report))
    }
}
