//! The function gateway: the HTTP trigger. Every request is matched
//! against the live route table and handed, with its method, path, query,
//! headers and body unchanged, to the pool of the function version the
//! route resolves to; the function's response streams back. Every answer
//! carries `x-kumo-request-id`. A request asking for an asynchronous call
//! (`X-Kumo-Invocation-Type: Event` and the peers' spellings) is queued
//! instead and answered `202 Accepted` (`api::invocations`). Nothing here
//! reads or changes the registry.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::events::Events;
use crate::live::Live;
use crate::metering::TriggerKind;
use crate::request_id::REQUEST_ID_HEADER;

/// The gateway's axum router: every request goes through the live route
/// table; asynchronous calls go to `events`' queue.
pub(crate) fn router(live: Arc<Live>, events: Arc<Events>) -> Router {
    Router::new().fallback(handle).with_state((live, events))
}

async fn handle(
    State((live, events)): State<(Arc<Live>, Arc<Events>)>,
    mut request: Request,
) -> Response {
    let request_id: Arc<str> = crate::request_id::next();
    let mut response = match live.route(request.uri().path()) {
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no route matches `{}`; hint: `kumo up` lists the routes when it starts",
                request.uri().path()
            ),
        )
        .into_response(),
        Some(Err(error)) => ApiError::from(error).into_response(),
        Some(Ok(pool)) => 'invoke: {
            // wasi:http needs an authority, from the URI (HTTP/2) or the
            // host header; HTTP/1.0 clients may send neither, HTTP/1.1
            // clients must send the header (RFC 9112, section 3.2).
            if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST)
            {
                if request.version() == axum::http::Version::HTTP_11 {
                    break 'invoke crate::api::missing_host().into_response();
                }
                request
                    .headers_mut()
                    .insert(header::HOST, HeaderValue::from_static("localhost"));
            }
            match crate::api::invocations::requested_invocation_type(request.headers()) {
                Err(error) => break 'invoke error.into_response(),
                Ok(kumo_protocol::header::InvocationType::Async) => {
                    break 'invoke queue_async(&live, &events, request).await;
                }
                Ok(kumo_protocol::header::InvocationType::Sync) => {}
            }
            match pool
                .invoke(request, request_id.clone(), TriggerKind::Http)
                .await
            {
                Ok(response) => response.map(Body::new),
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Queues an asynchronous call of the function the request's path routes
/// to (its target, re-resolved at every attempt).
async fn queue_async(live: &Live, events: &Events, request: Request) -> Response {
    let snapshot = live.snapshot();
    let Some(target) = snapshot.route_target(request.uri().path()).cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route matches `{}`", request.uri().path()),
        )
        .into_response();
    };
    crate::api::invocations::accept_async(events, &snapshot, &target, request).await
}
