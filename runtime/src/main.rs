//! The `kumo` binary: see [`kumo::cli`].

fn main() -> std::process::ExitCode {
    kumo::cli::run()
}
