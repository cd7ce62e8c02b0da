//! A direct invocation of a function (any version or alias) through the
//! admin API, for a test or a script.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::model::Target;
use crate::request_id::REQUEST_ID_HEADER;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route(
        "/v1/functions/{name}/invoke",
        post(invoke).layer(DefaultBodyLimit::disable()),
    )
}

/// Query of `POST /v1/functions/{name}/invoke`.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct InvokeQuery {
    /// A version number or an alias; the newest version when absent.
    pub(crate) qualifier: Option<String>,
    /// The path the function sees (default `/`).
    pub(crate) path: Option<String>,
}

#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path, description = "The function"), InvokeQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "Passed to the function as the body of `POST {path}`, with the request's headers"),
    responses(
        (status = 200, description = "The function's own response (any status, headers and body), with `x-kumo-request-id`"),
        (status = 404, body = crate::api::ErrorBody),
        (status = 429, description = "Overloaded", body = crate::api::ErrorBody)))]
async fn invoke(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<InvokeQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let text = match &query.qualifier {
        Some(qualifier) => format!("{name}:{qualifier}"),
        None => name.clone(),
    };
    let target = Target::parse(&text)?;
    if !state.live.snapshot().registry.functions.contains_key(&name) {
        return Err(ApiError::unknown_function(&name));
    }
    let pool = state.control.pool_for_invoke(&target).await?;
    let path = query.path.unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("path `{path}` must start with `/`"),
        ));
    }
    let (parts, body) = request.into_parts();
    let mut builder = http::Request::builder().method(http::Method::POST).uri(
        http::Uri::builder()
            .scheme("http")
            .authority("localhost")
            .path_and_query(path.as_str())
            .build()
            .map_err(|error| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("path `{path}` is not a valid URI path: {error}"),
                )
            })?,
    );
    for (key, value) in &parts.headers {
        if key != header::AUTHORIZATION && key != header::HOST {
            builder = builder.header(key, value);
        }
    }
    let forwarded = builder.body(body).map_err(|_| ApiError::internal())?;
    let request_id: Arc<str> = crate::request_id::next();
    let mut response = match pool
        .invoke(
            forwarded,
            request_id.clone(),
            crate::metering::TriggerKind::Invoke,
        )
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(error) => ApiError::from(error).into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[derive(OpenApi)]
#[openapi(paths(invoke))]
pub(super) struct InvokeApi;
