//! Triggers: HTTP routes and storage, watch and timer triggers, listed,
//! created, updated in place (another target, route or settings) and
//! deleted.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::extract::ApiJson;
use super::{ApiError, ApiState};
use crate::model::{Trigger, TriggerSpec};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/triggers", get(list_triggers).post(create_trigger))
        .route(
            "/v1/triggers/{id}",
            delete(delete_trigger).put(update_trigger),
        )
}

/// `GET /v1/triggers`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TriggerList {
    /// Oldest first.
    pub(crate) triggers: Vec<Trigger>,
}

#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList)))]
async fn list_triggers(State(state): State<ApiState>) -> Json<TriggerList> {
    Json(TriggerList {
        triggers: state.live.snapshot().registry.triggers.clone(),
    })
}

#[utoipa::path(post, path = "/v1/triggers", tag = "triggers",
    request_body = TriggerSpec,
    responses((status = 201, body = Trigger),
        (status = 400, description = "Event-trigger settings out of range", body = crate::api::ErrorBody),
        (status = 422, description = "A malformed route or target, an unknown kind or key", body = crate::api::ErrorBody),
        (status = 404, description = "The target does not exist", body = crate::api::ErrorBody),
        (status = 409, description = "The route is taken", body = crate::api::ErrorBody)))]
async fn create_trigger(
    State(state): State<ApiState>,
    ApiJson(spec): ApiJson<TriggerSpec>,
) -> Result<(StatusCode, Json<Trigger>), ApiError> {
    let trigger = state.control.create_trigger(spec).await?;
    Ok((StatusCode::CREATED, Json(trigger)))
}

#[utoipa::path(put, path = "/v1/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, description = "The trigger's id")),
    request_body = TriggerSpec,
    responses((status = 200, body = Trigger),
        (status = 400, description = "Another kind, or event-trigger settings out of range", body = crate::api::ErrorBody),
        (status = 422, description = "A malformed route or target, an unknown kind or key", body = crate::api::ErrorBody),
        (status = 404, description = "No such trigger, or the target does not exist", body = crate::api::ErrorBody),
        (status = 409, description = "The route or name is another trigger's", body = crate::api::ErrorBody)))]
async fn update_trigger(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<TriggerSpec>,
) -> Result<Json<Trigger>, ApiError> {
    Ok(Json(state.control.update_trigger(&id, spec).await?))
}

#[utoipa::path(delete, path = "/v1/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, description = "The trigger's id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::api::ErrorBody)))]
async fn delete_trigger(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.control.delete_trigger(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(OpenApi)]
#[openapi(paths(list_triggers, create_trigger, update_trigger, delete_trigger))]
pub(super) struct TriggersApi;
