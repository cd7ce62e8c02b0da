//! The admin API's view of the event queue: list events by state and
//! replay dead ones.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::events::{EventState, EventSummary, ReplayError};

/// The most events one list answers.
const MAX_LIMIT: u32 = 1000;

/// The event routes, to merge into the admin router (behind its token).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}/replay", post(replay_event))
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// `pending`, `retrying`, `dead` or `done`; every state when absent.
    #[param(pattern = "^(pending|retrying|dead|done)$")]
    pub(crate) state: Option<String>,
    /// At most this many, newest first (default 100, 1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<u32>,
}

/// `GET /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct EventList {
    /// Newest first.
    pub(crate) events: Vec<EventSummary>,
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventList), (status = 400, body = crate::api::ErrorBody)))]
async fn list_events(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(EventState::parse(text).map_err(|message| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{message}; hint: use pending, retrying, dead or done"),
            )
        })?),
    };
    let limit = match query.limit {
        None => 100,
        Some(limit @ 1..=MAX_LIMIT) => limit,
        Some(limit) => {
            return Err(super::billing::bad_parameter(
                "limit",
                &limit.to_string(),
                &format!("give a whole number from 1 to {MAX_LIMIT}"),
            ));
        }
    };
    let Some(events) = state.control.events().await else {
        return Ok(Json(EventList { events: Vec::new() }));
    };
    let listed = crate::events::list(events.database(), wanted, limit)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "cannot list events");
            ApiError::internal()
        })?;
    Ok(Json(EventList { events: listed }))
}

#[utoipa::path(post, path = "/v1/events/{id}/replay", tag = "events",
    params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "Pending again, due now", body = EventSummary),
        (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "The event is not dead", body = crate::api::ErrorBody)))]
async fn replay_event(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<EventSummary>, ApiError> {
    let Some(events) = state.control.events().await else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event `{id}`"),
        ));
    };
    match events.replay(&id).await {
        Ok(summary) => Ok(Json(summary)),
        Err(error @ ReplayError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            error.to_string(),
        )),
        Err(error @ ReplayError::NotDead { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            error.to_string(),
        )),
        Err(ReplayError::Database(error)) => {
            tracing::error!(event = %id, error = %error, "cannot replay an event");
            Err(ApiError::internal())
        }
    }
}

/// The OpenAPI paths of this part, merged into the admin document.
#[derive(OpenApi)]
#[openapi(paths(list_events, replay_event))]
pub(crate) struct EventsApiDoc;
