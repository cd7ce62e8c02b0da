//! Test guest that answers a 64 MiB body of `x`, written in 64 KiB chunks
//! straight to the `wasi:http` output stream (never buffered whole).
//!
//! A path ending in `/slow` writes one chunk every 100 ms. A path ending
//! in `/declared` sends `content-length: 67108864` up front; any other path
//! sends no length, so the host streams the body.
//!
//! The SDK's handler buffers whole bodies, so this guest implements the raw
//! `wasi:http/incoming-handler` export itself through the SDK's `wasip2`
//! re-export.

use kumo_sdk::wasip2;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// Total body size: 64 MiB.
const BODY_SIZE: usize = 64 * 1024 * 1024;

/// Size of each write: 64 KiB.
const CHUNK_SIZE: usize = 64 * 1024;

/// The component's `wasi:http/incoming-handler` implementation.
struct HugeBodyHandler;

impl Guest for HugeBodyHandler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = path_with_query.split('?').next().unwrap_or_default();
        let declares_length = path.ends_with("/declared");
        // `/slow`: one chunk every 100 ms, so a timeout stops it mid-body.
        let slow = path.ends_with("/slow");
        drop(request);

        let mut header_entries = vec![("content-type".to_owned(), b"text/plain".to_vec())];
        if declares_length {
            header_entries.push((
                "content-length".to_owned(),
                BODY_SIZE.to_string().into_bytes(),
            ));
        }
        let headers = Fields::from_list(&header_entries).expect("response headers are valid");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(200)
            .expect("200 is a valid status");
        let body = response.body().expect("response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("body stream is taken once");
        let chunk = vec![b'x'; CHUNK_SIZE];
        for _ in 0..BODY_SIZE / CHUNK_SIZE {
            if slow {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if let Err(message) = write_chunk(&stream, &chunk) {
                // Dropping the body unfinished tells the host it is incomplete.
                kumo_sdk::log::error(&format!("hugebody: stopped writing: {message}"));
                return;
            }
        }
        drop(stream);
        if let Err(error_code) = OutgoingBody::finish(body, None) {
            kumo_sdk::error!("hugebody: failed to finish body: {error_code:?}");
        }
    }
}

/// Writes `chunk` as far as `check-write` permits at a time, waiting for
/// capacity when none is left, then flushes and waits for the flush.
fn write_chunk(stream: &OutputStream, chunk: &[u8]) -> Result<(), String> {
    let mut remaining = chunk;
    while !remaining.is_empty() {
        let permitted = stream.check_write().map_err(describe_stream_error)?;
        if permitted == 0 {
            stream.subscribe().block();
            continue;
        }
        let length = remaining
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream
            .write(&remaining[..length])
            .map_err(describe_stream_error)?;
        remaining = &remaining[length..];
    }
    stream.blocking_flush().map_err(describe_stream_error)
}

/// Describes a stream error for the log.
fn describe_stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".to_owned(),
        StreamError::LastOperationFailed(error) => error.to_debug_string(),
    }
}

wasip2::http::proxy::export!(HugeBodyHandler);
