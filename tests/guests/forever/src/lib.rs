//! Test guest that burns CPU forever without answering, to exercise the
//! host's request time limit (epoch or fuel interruption).

use std::hint::black_box;

use kumo_sdk::Request;

/// Spins forever; the counter goes through `black_box` each iteration so the
/// optimizer cannot delete the loop.
fn handle(_request: Request) -> &'static str {
    kumo_sdk::info!("forever: spinning");
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

kumo_sdk::http_handler!(handle);
