//! Test guest for memory metering: `?pages=N` grows linear memory by exactly
//! N 64 KiB pages with `memory.grow` and answers
//! `{"before_pages":B,"after_pages":A}`, the memory's size before and after,
//! so the host's reported peak can be checked against what the guest saw.

use core::arch::wasm32::{memory_grow, memory_size};

use kumo_sdk::{Request, Response};

/// Grows memory 0 by the requested pages and reports its size.
fn handle(request: Request) -> Response {
    let pages: usize = kumo_sdk::query_param(&request, "pages")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let before = memory_size::<0>();
    if memory_grow::<0>(pages) == usize::MAX {
        return kumo_sdk::text_response(500, "memory.grow failed");
    }
    let after = memory_size::<0>();
    kumo_sdk::json_response(
        200,
        format!(r#"{{"before_pages":{before},"after_pages":{after}}}"#),
    )
}

kumo_sdk::http_handler!(handle);
