//! [`ApiError`]: a status, a stable machine-readable code and a message,
//! answered as `{"error":{"code","message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::control::ControlError;
use crate::engine::InvokeError;
use crate::live::ResolveError;
use crate::model::Invalid;
use crate::pool::PoolError;

/// An error answered by Kumo itself (not by a function).
///
/// The message is written for the caller: lowercase, naming the offending
/// value, with a hint. A 5xx never carries host internals; those go to the
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// A stable code such as `not_found` or `timeout`.
    pub(crate) code: &'static str,
    /// A human-readable message.
    pub(crate) message: String,
    /// Seconds for a `Retry-After` header (with 429 and 503).
    pub(crate) retry_after_s: Option<u64>,
}

/// The JSON body of every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable code such as `not_found` or `timeout`.
    pub(crate) code: String,
    /// A human-readable message, with a hint.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The JSON body.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        })
        .expect("serialising two strings cannot fail")
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        let (status, code, retry_after_s) = match &error {
            PoolError::Overloaded { retry_after, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                Some(retry_after.as_secs().max(1)),
            ),
            PoolError::NoCapacity => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity", Some(1)),
            PoolError::Invoke(error) => {
                let (status, code) = invoke_status(error);
                (status, code, None)
            }
        };
        Self {
            retry_after_s,
            ..Self::new(status, code, error.to_string())
        }
    }
}

/// The status and code of an invocation that failed in the engine.
fn invoke_status(error: &InvokeError) -> (StatusCode, &'static str) {
    match error {
        InvokeError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        InvokeError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
        InvokeError::UnreadableBody => (StatusCode::BAD_REQUEST, "unreadable_body"),
        InvokeError::Trap { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
        InvokeError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        InvokeError::OutOfMemory { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "out_of_memory"),
        InvokeError::ResponseTooLarge { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "response_too_large")
        }
        InvokeError::FunctionFailed { .. } => (StatusCode::BAD_GATEWAY, "function_error"),
        InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "no_response"),
        // The pool turns this one into `PoolError::NoCapacity`.
        InvokeError::InstanceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
        InvokeError::Cancelled | InvokeError::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::NotFound(message) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{message}; hint: `kumo functions list` shows what is deployed"),
            ),
            ResolveError::Unavailable(_) => Self {
                retry_after_s: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    error.to_string(),
                )
            },
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::NotFound(message) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ControlError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            ControlError::Invalid(message) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            ControlError::Config { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_config", error.to_string())
            }
            ControlError::Compile(error) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_component",
                error.to_string(),
            ),
            ControlError::Storage(error) if error.is_disk_full() => {
                tracing::error!(error = %error, "registry storage failed: the disk is full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the disk holding Kumo's data directory is full; nothing was changed. \
                     hint: free space in its file system, then retry",
                )
            }
            ControlError::Storage(error) if error.is_unreachable() => {
                tracing::error!(error = %error, "registry storage failed: the database is unreachable");
                Self {
                    retry_after_s: Some(5),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "the database cannot be reached; nothing was changed, and deployed \
                         functions keep serving. hint: check that the database is up, then retry",
                    )
                }
            }
            ControlError::Storage(error) => {
                tracing::error!(error = %error, "registry storage failed");
                Self::internal()
            }
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(Invalid(message): Invalid) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl ApiError {
    /// A 500 that says nothing of the host's internals (they are logged).
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; hint: the server log has the details",
        )
    }

    /// A 404 for a function that is not deployed.
    pub(crate) fn unknown_function(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no function `{name}`; hint: `kumo functions list` shows what is deployed"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pool_errors_map_to_status_code_and_retry_after() {
        let invoke = |error| PoolError::Invoke(error);
        let cases = [
            (
                invoke(InvokeError::PayloadTooLarge { limit: 1 }),
                413,
                "payload_too_large",
                None,
            ),
            (
                invoke(InvokeError::BadRequest {
                    message: "x".into(),
                }),
                400,
                "bad_request",
                None,
            ),
            (
                invoke(InvokeError::UnreadableBody),
                400,
                "unreadable_body",
                None,
            ),
            (
                invoke(InvokeError::Trap {
                    message: "x".into(),
                }),
                500,
                "trap",
                None,
            ),
            (
                invoke(InvokeError::Timeout {
                    timeout: Duration::from_millis(5),
                }),
                504,
                "timeout",
                None,
            ),
            (
                invoke(InvokeError::OutOfMemory { limit_mb: 1 }),
                500,
                "out_of_memory",
                None,
            ),
            (
                invoke(InvokeError::ResponseTooLarge { limit: 1 }),
                500,
                "response_too_large",
                None,
            ),
            (
                invoke(InvokeError::FunctionFailed {
                    message: "x".into(),
                }),
                502,
                "function_error",
                None,
            ),
            (invoke(InvokeError::NoResponse), 502, "no_response", None),
            (
                PoolError::Overloaded {
                    function: "f".into(),
                    max_instances: 2,
                    waited: None,
                    retry_after: Duration::from_secs(1),
                },
                429,
                "overloaded",
                Some(1),
            ),
            (PoolError::NoCapacity, 503, "no_capacity", Some(1)),
            (
                PoolError::from(InvokeError::InstanceUnavailable),
                503,
                "no_capacity",
                Some(1),
            ),
            (invoke(InvokeError::Cancelled), 500, "internal", None),
            (invoke(InvokeError::Internal), 500, "internal", None),
        ];
        for (error, status, code, retry_after_s) in cases {
            let api = ApiError::from(error);
            assert_eq!(
                (api.status.as_u16(), api.code, api.retry_after_s),
                (status, code, retry_after_s)
            );
        }
    }

    #[test]
    fn the_body_is_the_documented_envelope() {
        let error = ApiError::new(StatusCode::NOT_FOUND, "not_found", "no route for `/x`");
        let json: serde_json::Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "no route for `/x`"}})
        );
    }
}
