//! Test guest for memory metering: `?pages=N` grows linear memory by exactly
//! N 64 KiB pages with `memory.grow` and answers
//! `{"before_pages":B,"after_pages":A}`, the memory's size before and after,
//! so the host's reported peak can be checked against what the guest saw.

use core::arch::wasm32::{memory_grow, memory_size};

use kumo_sdk::{Json, Request};
use serde::Serialize;

/// The answer: the memory's size in pages.
#[derive(Serialize)]
struct Pages {
    /// Before growing.
    before_pages: usize,
    /// After growing.
    after_pages: usize,
}

/// Grows memory 0 by the requested pages and reports its size; a 500 when
/// it cannot grow.
fn handle(request: Request) -> Result<Json<Pages>, &'static str> {
    let pages: usize = kumo_sdk::query_param(&request, "pages")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let before = memory_size::<0>();
    if memory_grow::<0>(pages) == usize::MAX {
        return Err("memory.grow failed");
    }
    let after = memory_size::<0>();
    Ok(Json(Pages {
        before_pages: before,
        after_pages: after,
    }))
}

kumo_sdk::http_handler!(handle);
