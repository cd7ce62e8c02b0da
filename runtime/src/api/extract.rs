//! Extractors whose rejections are answered in Kumo's error shape
//! (`{"error":{"code","message"}}`) instead of axum's plain text.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::ApiError;

/// JSON bodies whose rejections are answered in Kumo's error shape.
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = lowercase_first(&rejection.body_text());
                let message = if text.contains("hint:") {
                    text
                } else {
                    format!(
                        "{text}; hint: send a JSON body with `content-type: application/json`, see GET /v1/openapi.json"
                    )
                };
                Err(ApiError::new(
                    rejection.status(),
                    "invalid_request",
                    message,
                ))
            }
        }
    }
}

/// A query string whose rejections are answered in Kumo's error shape.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

/// Kumo's messages start in lowercase; axum's start with a capital.
/// Only the first letter changes: the rest names values as they were sent.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A query string that does not parse, answered 400.
pub(crate) fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text().to_lowercase(),
    )
}
