//! The admin API's `GET /metrics`: the Prometheus text of
//! [`crate::observability::metrics`].

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;

use super::ApiState;

/// The metrics route, merged into the admin router (behind its token, like
/// every route but `/healthz`).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

#[derive(OpenApi)]
#[openapi(paths(metrics))]
pub(crate) struct MetricsApiDoc;

#[utoipa::path(get, path = "/metrics", tag = "metering",
    responses(
        (status = 200, description = "Prometheus text format (needs the admin token like every call but `/healthz`)", content_type = "text/plain", body = String),
        (status = 401, body = super::ErrorBody)))]
async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}
