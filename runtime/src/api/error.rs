//! [`ApiError`]: a status, a stable machine-readable code and a message,
//! answered as `{"error":{"code","message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::control::ControlError;
use crate::engine::InvokeError;
use crate::live::ResolveError;
use crate::model::Invalid;

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

impl From<InvokeError> for ApiError {
    fn from(error: InvokeError) -> Self {
        let (status, code) = match &error {
            InvokeError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            InvokeError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            InvokeError::Trap { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
            InvokeError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            InvokeError::OutOfMemory { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "out_of_memory"),
            InvokeError::ResponseTooLarge { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "response_too_large")
            }
            InvokeError::FunctionFailed { .. } => (StatusCode::BAD_GATEWAY, "function_error"),
            InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "no_response"),
            InvokeError::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            InvokeError::NoCapacity => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            InvokeError::Cancelled | InvokeError::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let retry_after_s = match &error {
            InvokeError::Overloaded { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            InvokeError::NoCapacity => Some(1),
            _ => None,
        };
        Self {
            retry_after_s,
            ..Self::new(status, code, error.to_string())
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
    fn invoke_errors_map_to_status_and_code() {
        let cases = [
            (
                InvokeError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (
                InvokeError::Trap {
                    message: "x".into(),
                },
                500,
                "trap",
            ),
            (
                InvokeError::Timeout {
                    timeout: Duration::from_millis(5),
                },
                504,
                "timeout",
            ),
            (
                InvokeError::OutOfMemory { limit_mb: 1 },
                500,
                "out_of_memory",
            ),
            (
                InvokeError::ResponseTooLarge { limit: 1 },
                500,
                "response_too_large",
            ),
            (
                InvokeError::FunctionFailed {
                    message: "x".into(),
                },
                502,
                "function_error",
            ),
            (InvokeError::NoResponse, 502, "no_response"),
            (
                InvokeError::Overloaded {
                    function: "f".into(),
                    max_instances: 2,
                    waited: None,
                    retry_after: Duration::from_secs(1),
                },
                429,
                "overloaded",
            ),
            (InvokeError::NoCapacity, 503, "no_capacity"),
            (InvokeError::Cancelled, 500, "internal"),
            (InvokeError::Internal, 500, "internal"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
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
