//! Asynchronous invocations on the admin API and the gateway: a call that
//! asks for it (`X-Kumo-Invocation-Type: Event`, or the peers'
//! `X-Fc-Invocation-Type: Async` and `X-Amz-Invocation-Type: Event`) is
//! queued ([`accept_async`]) and answered `202 Accepted` at once with its
//! invocation id; `GET /v1/invocations/{id}` tells where it is.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use kumo_protocol::header::{self, InvocationType};

use super::{ApiError, ApiState};
use crate::events::Events;
use crate::events::invocation::{self, EnqueueError};
use crate::events::{CallStatus, InvocationStatus};
use crate::live::Snapshot;
use crate::model::Target;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/v1/invocations/{id}", get(show_invocation))
}

/// The answer to a queued call (`202 Accepted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct AsyncAccepted {
    /// The invocation id (also in `x-kumo-invocation-id`).
    pub(crate) invocation_id: String,
    /// `queued`.
    pub(crate) status: CallStatus,
    /// Where the admin API tells its status.
    pub(crate) status_path: String,
}

/// The invocation type a request's headers ask for: the three spellings,
/// the default synchronous.
///
/// # Errors
///
/// A 400 naming a header with a value it does not take.
pub(crate) fn requested_invocation_type(
    headers: &http::HeaderMap,
) -> Result<InvocationType, ApiError> {
    let mut asked = InvocationType::Sync;
    for (name, value) in headers {
        // Most values are visible ASCII: borrowed as they are, unchecked
        // for UTF-8 sequences.
        let text = match value.to_str() {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value.as_bytes()),
        };
        match header::invocation_type(name.as_str(), &text) {
            None => {}
            Some(Ok(InvocationType::Async)) => asked = InvocationType::Async,
            Some(Ok(InvocationType::Sync)) => {}
            Some(Err(accepted)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "`{name}: {text}` is no invocation type; hint: `{name}` takes {accepted}"
                    ),
                ));
            }
        }
    }
    Ok(asked)
}

/// Queues `request` as an asynchronous call of `target` (resolved in
/// `snapshot`) and answers `202 Accepted` with its id, or the error: 404
/// for a target that does not exist, 413 for a body past the function's
/// asynchronous limit, 429 with `Retry-After` when the function already
/// has `max_queued` calls waiting.
pub(crate) async fn accept_async(
    events: &Events,
    snapshot: &Snapshot,
    target: &Target,
    request: http::Request<Body>,
) -> Response {
    let policy = match snapshot.async_policy(target) {
        Ok(policy) => policy,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(policy.max_body_bytes).unwrap_or(usize::MAX);
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than {} bytes, the most an asynchronous call of `{target}` queues; hint: send less, or call it synchronously",
                    policy.max_body_bytes
                ),
            )
            .into_response();
        }
        Err(error) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the request body broke off: {error}"),
            )
            .into_response();
        }
    };
    match invocation::enqueue(events, target, &policy, &parts, body).await {
        Ok(id) => {
            let accepted = AsyncAccepted {
                status_path: format!("/v1/invocations/{id}"),
                invocation_id: id.clone(),
                status: CallStatus::Queued,
            };
            let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(header::INVOCATION_ID, value);
            }
            response
        }
        Err(error @ EnqueueError::Full { .. }) => ApiError {
            retry_after_s: Some(invocation::FULL_RETRY_AFTER.as_secs().max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_queued",
                error.to_string(),
            )
        }
        .into_response(),
        Err(EnqueueError::Database(error)) => {
            tracing::error!(%error, function = %target, "cannot queue an asynchronous call");
            ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the call could not be queued; hint: retry it",
                )
            }
            .into_response()
        }
    }
}

#[utoipa::path(get, path = "/v1/invocations/{id}", tag = "invocations",
    params(("id" = String, Path, description = "The invocation id a queued call was answered with")),
    responses((status = 200, body = InvocationStatus), (status = 404, body = crate::api::ErrorBody)))]
async fn show_invocation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<InvocationStatus>, ApiError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    match invocation::status(&state.database, &id, now_ms).await {
        Ok(Some(status)) => Ok(Json(status)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no asynchronous invocation `{id}`; hint: ids come from a 202 answer's `x-kumo-invocation-id`, and a succeeded one is kept for an hour"
            ),
        )),
        Err(error) => {
            tracing::error!(%error, "cannot read an invocation's status");
            Err(ApiError::internal())
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(show_invocation),
    components(schemas(InvocationStatus, CallStatus, AsyncAccepted))
)]
pub(crate) struct InvocationsApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocation_type_comes_from_any_spelling() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            map
        };
        // (the request's headers, the invocation type they ask for; `None`
        // for a refusal)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<InvocationType>);
        let cases: &[Case<'_>] = &[
            (&[], Some(InvocationType::Sync)),
            (
                &[("x-kumo-invocation-type", "Event")],
                Some(InvocationType::Async),
            ),
            (
                &[("X-Fc-Invocation-Type", "Async")],
                Some(InvocationType::Async),
            ),
            (
                &[("X-Amz-Invocation-Type", "Event")],
                Some(InvocationType::Async),
            ),
            (
                &[("X-Amz-Invocation-Type", "RequestResponse")],
                Some(InvocationType::Sync),
            ),
            (&[("X-Kumo-Invocation-Type", "Later")], None),
        ];
        for (pairs, expected) in cases {
            let asked = requested_invocation_type(&headers(pairs)).ok();
            assert_eq!(asked, *expected, "{pairs:?}");
        }
        let error =
            requested_invocation_type(&headers(&[("x-fc-invocation-type", "Event")])).unwrap_err();
        assert!(
            error.to_json().contains("takes Async or Sync"),
            "{}",
            error.to_json()
        );
    }
}
