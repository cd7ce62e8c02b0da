//! Test guest: a `wasi:cli` command component. It exports `wasi:cli/run`
//! and no `wasi:http/incoming-handler`, so Kumo must refuse to deploy it.

fn main() {
    println!("a command, not an HTTP handler");
}
