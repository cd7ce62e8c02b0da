//! Test guest that allocates without bound, to exercise the host's memory
//! limit: allocation eventually fails and the instance traps.

use std::hint::black_box;

use kumo_sdk::Request;

/// Size of each allocation: 1 MiB.
const CHUNK_SIZE: usize = 1024 * 1024;

/// Keeps 1 MiB buffers, each filled so its pages are touched, until
/// allocation fails (which aborts the instance).
fn handle(_request: Request) -> &'static str {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xa5; CHUNK_SIZE]);
        black_box(&mut hoard);
    }
}

kumo_sdk::http_handler!(handle);
