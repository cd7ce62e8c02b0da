//! Test guest for streaming both ways, written against `wasip2` directly:
//! it answers at once (`200`, `text/plain`), then reads its request body as
//! it arrives and writes each piece back, upper-cased, flushing it before
//! reading on; at the end of the body it writes `done\n`. So a client sees
//! its first piece come back before it sends the second: the order of the
//! two streams proves both are streamed, with no clock involved.
//!
//! `GET /?count=N&bytes=B` instead answers N chunks of B bytes (`x`), for
//! large responses; and `POST /count` reads the whole body and answers how
//! many bytes it got, for large uploads.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

/// The component's `wasi:http/incoming-handler` implementation.
struct Chunks;

fn query_number(path: &str, name: &str) -> Option<u64> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

impl Guest for Chunks {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let headers = Fields::from_list(&[(
            "content-type".to_owned(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        let response_body = response.body().expect("response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let output = response_body.write().expect("body stream is taken once");

        if let Some(count) = query_number(&path, "count") {
            let bytes = query_number(&path, "bytes").unwrap_or(1024);
            let chunk = vec![b'x'; usize::try_from(bytes).unwrap_or(1024)];
            for _ in 0..count {
                for piece in chunk.chunks(4096) {
                    output
                        .blocking_write_and_flush(piece)
                        .expect("write response body");
                }
            }
        } else {
            let body = request.consume().expect("request body is taken once");
            let input = body.stream().expect("request stream is taken once");
            let counting = path.starts_with("/count");
            let mut total: u64 = 0;
            loop {
                match input.blocking_read(64 * 1024) {
                    Ok(piece) if counting => total += piece.len() as u64,
                    Ok(piece) => {
                        let upper = piece.to_ascii_uppercase();
                        for part in upper.chunks(4096) {
                            output
                                .blocking_write_and_flush(part)
                                .expect("write response body");
                        }
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(error)) => {
                        panic!("reading the request failed: {}", error.to_debug_string())
                    }
                }
            }
            let end = if counting {
                format!("{total}\n")
            } else {
                "done\n".to_owned()
            };
            output
                .blocking_write_and_flush(end.as_bytes())
                .expect("write response body");
        }
        drop(output);
        OutgoingBody::finish(response_body, None).expect("finish response body");
    }
}

wasip2::http::proxy::export!(Chunks);
