//! The `kumo` binary: see [`kumo::cli`].

/// mimalloc instead of the system allocator: allocation and release were a
/// fifth of the instructions of a request with glibc's (docs/scaling.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kumo::cli::run()
}
