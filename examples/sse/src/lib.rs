//! Kumo example: server-sent events. The function answers
//! `text/event-stream` at once and then writes one event at a time, with a
//! pause between them; Kumo streams each event to the client as it is
//! written (try `curl -N http://127.0.0.1:3000/sse`). Written against the
//! plain `wasip2` crate: the response body is a stream the guest writes
//! and flushes piece by piece.
//!
//! `?count=N` sets how many events (default 5, at most 100) and
//! `?interval_ms=M` the pause (default 500, at most 10000).

use std::time::Duration;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The component's `wasi:http/incoming-handler` implementation.
struct Sse;

/// The number after `name=` in the query, clamped to `max`.
fn query_number(path: &str, name: &str, default: u64, max: u64) -> u64 {
    path.split_once('?')
        .and_then(|(_, query)| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.parse().ok()).flatten()
            })
        })
        .unwrap_or(default)
        .min(max)
}

impl Guest for Sse {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let count = query_number(&path, "count", 5, 100);
        let interval = Duration::from_millis(query_number(&path, "interval_ms", 500, 10_000));
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/event-stream".to_vec()),
            ("cache-control".to_owned(), b"no-cache".to_vec()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("body stream is taken once");
        for number in 1..=count {
            if number > 1 {
                std::thread::sleep(interval);
            }
            let event = format!(
                "id: {number}\nevent: tick\ndata: {{\"tick\":{number},\"of\":{count}}}\n\n"
            );
            if stream.blocking_write_and_flush(event.as_bytes()).is_err() {
                // The client went away.
                return;
            }
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Sse);
