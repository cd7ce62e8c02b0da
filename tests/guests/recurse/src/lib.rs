//! Test guest that recurses without bound, so the wasm stack overflows and
//! the instance traps.

use std::hint::black_box;

use kumo_sdk::Request;

/// Recurses (not a tail call) with a 256-byte stack buffer per frame. The
/// exit condition hides behind `black_box`, so it is never taken but the
/// compiler cannot prove that.
fn deep(depth: u64) -> u64 {
    let buffer = black_box([depth as u8; 256]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    deep(depth + 1).wrapping_add(u64::from(buffer[0]))
}

/// Never answers: the recursion overflows the stack first.
fn handle(_request: Request) -> String {
    let depth = deep(0);
    format!("recursion returned at depth {depth}")
}

kumo_sdk::http_handler!(handle);
