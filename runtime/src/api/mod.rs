//! The admin API, on its own listener and behind a bearer token: one
//! module per concept, each with its handlers, wire types and
//! `routes()`, merged here over the shared [`ApiState`]. Handlers read
//! what is live from [`Live`] and change things only through [`Control`].
//!
//! JSON in and out; every error is `{"error":{"code","message"}}`
//! ([`ApiError`], also used by the gateway). The OpenAPI document
//! (`GET /v1/openapi.json`) is generated from the handlers' annotations,
//! so it says what the server does. Only this module (and the CLI client,
//! which reads these types) defines admin wire types.

pub(crate) mod aliases;
pub(crate) mod billing;
mod error;
pub(crate) mod events;
pub(crate) mod extract;
pub(crate) mod functions;
pub(crate) mod invocations;
pub(crate) mod invoke;
pub(crate) mod logs;
mod metrics;
mod openapi_answers;
#[cfg(test)]
mod proptests;
pub(crate) mod triggers;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::control::Control;
use crate::live::Live;

pub(crate) use error::{ApiError, ErrorBody};

/// What the admin handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// Every change goes through it.
    pub(crate) control: Arc<Control>,
    /// What is being served, for reads.
    pub(crate) live: Arc<Live>,
    /// The bearer token every `/v1` call (and `/metrics`) must carry.
    pub(crate) token: Arc<str>,
    /// The database holding the invocation records.
    pub(crate) database: crate::database::Database,
    /// The guests' output lines, for the log endpoints.
    pub(crate) guest_logs: crate::observability::GuestLogStore,
    /// The Prometheus recorder, for `/metrics`.
    pub(crate) metrics: crate::observability::MetricsHandle,
    /// The prices billing reports apply.
    pub(crate) prices: crate::metering::Prices,
    /// The metering writer's handle: reads of records first wait for the
    /// records of invocations that already ended.
    pub(crate) meter: crate::metering::Meter,
    /// Turns true when the server begins to stop: followed logs end then.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// The object storage folder, for the objects sample events describe.
    pub(crate) storage_root: std::path::PathBuf,
    /// The event queue, where asynchronous calls go.
    pub(crate) events: Arc<crate::events::Events>,
}

/// The admin API's router.
pub(crate) fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .merge(functions::routes())
        .merge(aliases::routes())
        .merge(triggers::routes())
        .merge(invoke::routes())
        .merge(invocations::routes())
        .merge(events::routes())
        .merge(billing::routes())
        .merge(logs::routes())
        .merge(metrics::routes())
        .route("/v1/openapi.json", get(openapi_document))
        .fallback(unknown_path)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(v1)
        .fallback(unknown_path)
        .layer(axum::middleware::from_fn(explain_method_not_allowed))
        .layer(axum::middleware::from_fn(require_host))
        .with_state(state)
}

/// The answer to an HTTP/1.1 request without a `Host` header (RFC 9112,
/// section 3.2, says 400), on the gateway and the admin API alike.
pub(crate) fn missing_host() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "an HTTP/1.1 request needs a `Host` header; hint: send `Host: <the address you connect to>` (every HTTP/1.1 client does)",
    )
}

/// Refuses an HTTP/1.1 request that has no `Host` header.
async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == axum::http::Version::HTTP_11
        && request.uri().authority().is_none()
        && !request.headers().contains_key(header::HOST)
    {
        return missing_host().into_response();
    }
    next.run(request).await
}

/// axum answers a known path with the wrong method `405` and no body; the
/// API answers every error with its JSON body, and keeps the `Allow`
/// header that says which methods the path takes.
async fn explain_method_not_allowed(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let allowed = allow
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .unwrap_or("another method");
    let mut explained = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{path}` does not take {method}; hint: it takes {allowed}"),
    )
    .into_response();
    if let Some(allow) = allow {
        explained.headers_mut().insert(header::ALLOW, allow);
    }
    explained
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    let problem = match presented {
        None => {
            "missing `Authorization: Bearer <token>` header; hint: the token is in KUMO_ADMIN_TOKEN or <data-dir>/admin-token"
        }
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => {
            "wrong admin token; hint: use the token the server printed at its first start, or <data-dir>/admin-token"
        }
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", problem).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kumo-admin\""),
    );
    response
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive and may be followed by more than one space (RFC 9110,
/// section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn unknown_path(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no admin endpoint `{} {}`; hint: GET /v1/openapi.json lists them",
            request.method(),
            request.uri().path()
        ),
    )
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process serves.
    pub(crate) status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The server is serving", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document")))]
async fn openapi_document() -> Json<serde_json::Value> {
    let mut document = serde_json::to_value(openapi()).expect("the OpenAPI document serializes");
    openapi_answers::complete(&mut document);
    Json(document)
}

/// The OpenAPI 3 document of this API.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = AdminApiDoc::openapi();
    document.merge(functions::FunctionsApi::openapi());
    document.merge(aliases::AliasesApi::openapi());
    document.merge(triggers::TriggersApi::openapi());
    document.merge(invoke::InvokeApi::openapi());
    document.merge(invocations::InvocationsApiDoc::openapi());
    document.merge(events::EventsApiDoc::openapi());
    document.merge(billing::BillingApiDoc::openapi());
    document.merge(logs::LogsApiDoc::openapi());
    document.merge(metrics::MetricsApiDoc::openapi());
    document
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kumo admin API", description = "Deploy functions, move aliases, manage triggers, read billing, invocation records, guest logs and metrics. Every call but `/healthz` needs `Authorization: Bearer <token>`."),
    paths(healthz, openapi_document),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct AdminApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_as_http_says() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Bearer   abc", Some("abc")),
            ("Bearer ", None),
            ("Bearer", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer_token(value), expected, "{value:?}");
        }
    }
}
