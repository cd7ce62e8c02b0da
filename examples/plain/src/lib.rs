//! A standard `wasi:http` component written against the `wasip2` crate only,
//! the way components for Spin or `wasmtime serve` are written. Kumo runs it
//! unchanged.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The component's `wasi:http/incoming-handler` implementation.
struct PlainHandler;

impl Guest for PlainHandler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let body = format!("Hello from a plain wasi:http component at {path_with_query}");

        let headers = Fields::from_list(&[(
            "content-type".to_owned(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(200)
            .expect("200 is a valid status");
        let response_body = response.body().expect("response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = response_body.write().expect("body stream is taken once");
        for chunk in body.as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .expect("write response body");
        }
        drop(stream);
        OutgoingBody::finish(response_body, None).expect("finish response body");
    }
}

wasip2::http::proxy::export!(PlainHandler);
