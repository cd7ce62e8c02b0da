//! What a handler may return: anything [`IntoResponse`], as in axum.
//!
//! Text is `text/plain; charset=utf-8`, bytes are
//! `application/octet-stream`, [`Json`] is `application/json`; a
//! [`StatusCode`] in front sets the status, an array of headers adds
//! headers. A `Result` answers its `Ok` value, or for an `Err` a response
//! made from the error: an [`Error`] answers its own status and message,
//! an [`EventError`] is a 400, and any other error (anything
//! `Into<Box<dyn std::error::Error>>`: `std` errors, `String`, `&str`,
//! `anyhow::Error`) is a 500 with the error's message. Errors are logged:
//! 5xx at `error`, others at `warn`. Nothing here panics: a value that
//! cannot be serialized as JSON answers 500.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;

use crate::Response;
use crate::event::EventError;

/// `content-type` of text answers.
const TEXT: &str = "text/plain; charset=utf-8";
/// `content-type` of byte answers.
const OCTET_STREAM: &str = "application/octet-stream";
/// `content-type` of [`Json`] answers.
const JSON: &str = "application/json";

/// A value a handler can answer with.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

/// A JSON answer of any `Serialize` value, with
/// `content-type: application/json`.
///
/// ```
/// use kumo_sdk::{IntoResponse, Json, StatusCode};
///
/// #[derive(serde::Serialize)]
/// struct Created { id: u32 }
///
/// let response = (StatusCode::CREATED, Json(Created { id: 7 })).into_response();
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.body(), br#"{"id":7}"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// An error that answers with a chosen status and its message as text.
///
/// ```
/// use kumo_sdk::{Error, Request, StatusCode};
///
/// fn handle(request: Request) -> Result<String, Error> {
///     let name = kumo_sdk::query_param(&request, "name")
///         .ok_or_else(|| Error::new(StatusCode::BAD_REQUEST, "pass ?name="))?;
///     Ok(format!("hello {name}"))
/// }
/// # let request = kumo_sdk::http::Request::new(Vec::new());
/// # assert_eq!(kumo_sdk::IntoResponse::into_response(handle(request)).status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    /// An error answering `status` with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message it answers with.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A request that is not the event it should be is the client's fault.
impl From<EventError> for Error {
    fn from(error: EventError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            crate::log::error(&format!(
                "handler failed: {}: {}",
                self.status, self.message
            ));
        } else {
            crate::log::warn(&format!(
                "handler failed: {}: {}",
                self.status, self.message
            ));
        }
        (self.status, self.message).into_response()
    }
}

impl<T, E> IntoResponse for Result<T, E>
where
    T: IntoResponse,
    E: Into<Box<dyn std::error::Error>>,
{
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(error) => error_of(error.into()).into_response(),
        }
    }
}

/// The [`Error`] a handler's error answers with.
fn error_of(error: Box<dyn std::error::Error>) -> Error {
    let error = match error.downcast::<Error>() {
        Ok(error) => return *error,
        Err(other) => other,
    };
    match error.downcast::<EventError>() {
        Ok(error) => Error::from(*error),
        Err(other) => Error::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn with_content_type(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl<B: Into<Vec<u8>>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

/// `200` with no body.
impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Vec::new())
    }
}

/// The status with no body.
impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        (self, ()).into_response()
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        with_content_type(TEXT, self.as_bytes().to_vec())
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_content_type(TEXT, self.into_bytes())
    }
}

impl IntoResponse for Cow<'static, str> {
    fn into_response(self) -> Response {
        self.into_owned().into_response()
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_content_type(OCTET_STREAM, self)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        self.to_vec().into_response()
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => with_content_type(JSON, body),
            Err(error) => Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot serialize the answer as JSON: {error}"),
            )
            .into_response(),
        }
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let (status, value) = self;
        let mut response = value.into_response();
        *response.status_mut() = status;
        response
    }
}

/// The headers replace those of the same name.
impl<T: IntoResponse, const N: usize> IntoResponse for ([(HeaderName, HeaderValue); N], T) {
    fn into_response(self) -> Response {
        let (headers, value) = self;
        let mut response = value.into_response();
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl<T: IntoResponse, const N: usize> IntoResponse
    for (StatusCode, [(HeaderName, HeaderValue); N], T)
{
    fn into_response(self) -> Response {
        let (status, headers, value) = self;
        (status, (headers, value)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// (what the handler returned, status, content-type, body)
    type Case = (Response, u16, Option<&'static str>, &'static [u8]);

    fn io_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn answers_have_the_status_content_type_and_body_of_their_value() {
        let mut unserializable = BTreeMap::new();
        unserializable.insert((1, 2), "a map with tuple keys is no JSON object");
        let cases: Vec<Case> = vec![
            ("hello".into_response(), 200, Some(TEXT), b"hello"),
            (String::from("hé").into_response(), 200, Some(TEXT), "hé".as_bytes()),
            (Cow::Borrowed("c").into_response(), 200, Some(TEXT), b"c"),
            (vec![0u8, 1].into_response(), 200, Some(OCTET_STREAM), &[0, 1]),
            ((&b"raw"[..]).into_response(), 200, Some(OCTET_STREAM), b"raw"),
            (().into_response(), 200, None, b""),
            (StatusCode::NO_CONTENT.into_response(), 204, None, b""),
            (
                (StatusCode::NOT_FOUND, "not found").into_response(),
                404,
                Some(TEXT),
                b"not found",
            ),
            (
                Json(serde_json::json!({"ok": true})).into_response(),
                200,
                Some(JSON),
                br#"{"ok":true}"#,
            ),
            (
                (StatusCode::CREATED, Json(vec![1, 2])).into_response(),
                201,
                Some(JSON),
                b"[1,2]",
            ),
            (
                Json(unserializable).into_response(),
                500,
                Some(TEXT),
                b"cannot serialize the answer as JSON: key must be a string",
            ),
            (
                (
                    StatusCode::ACCEPTED,
                    [(CONTENT_TYPE, HeaderValue::from_static("text/csv"))],
                    "a,b",
                )
                    .into_response(),
                202,
                Some("text/csv"),
                b"a,b",
            ),
            (
                http::Response::new("plain").into_response(),
                200,
                None,
                b"plain",
            ),
            (
                Ok::<_, String>((StatusCode::OK, "fine")).into_response(),
                200,
                Some(TEXT),
                b"fine",
            ),
            (
                Err::<&str, _>("went wrong").into_response(),
                500,
                Some(TEXT),
                b"went wrong",
            ),
            (
                Err::<&str, _>(io_error()).into_response(),
                500,
                Some(TEXT),
                b"no such file",
            ),
            (
                Err::<&str, Box<dyn std::error::Error>>(Box::new(io_error())).into_response(),
                500,
                Some(TEXT),
                b"no such file",
            ),
            (
                Err::<&str, _>(Error::new(StatusCode::CONFLICT, "taken")).into_response(),
                409,
                Some(TEXT),
                b"taken",
            ),
            (
                Error::new(StatusCode::BAD_GATEWAY, "upstream").into_response(),
                502,
                Some(TEXT),
                b"upstream",
            ),
            (
                Err::<&str, Box<dyn std::error::Error>>(Box::new(Error::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "boxed keeps its status",
                )))
                .into_response(),
                422,
                Some(TEXT),
                b"boxed keeps its status",
            ),
            (
                Err::<&str, _>(EventError::UnknownType("x".into())).into_response(),
                400,
                Some(TEXT),
                b"unknown event type `x`; hint: Kumo sends kumo.storage.*, kumo.timer and kumo.file.created",
            ),
        ];
        for (index, (response, status, content_type, body)) in cases.into_iter().enumerate() {
            assert_eq!(response.status(), status, "case {index}");
            assert_eq!(
                response
                    .headers()
                    .get(CONTENT_TYPE)
                    .map(|value| value.to_str().unwrap()),
                content_type,
                "case {index}"
            );
            assert_eq!(
                String::from_utf8_lossy(response.body()),
                String::from_utf8_lossy(body),
                "case {index}"
            );
        }
    }

    #[test]
    fn errors_keep_status_and_message() {
        let error = Error::new(StatusCode::FORBIDDEN, "no");
        assert_eq!(
            (error.status(), error.message()),
            (StatusCode::FORBIDDEN, "no")
        );
        assert_eq!(error.to_string(), "no");
        let from_event = Error::from(EventError::NotAnEvent("ce-id"));
        assert_eq!(from_event.status(), StatusCode::BAD_REQUEST);
        assert!(
            from_event.message().contains("`ce-id`"),
            "{}",
            from_event.message()
        );
    }
}
