//! Aliases: a movable name for one version of a function, or two with
//! traffic weights.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::extract::ApiJson;
use super::{ApiError, ApiState};
use crate::registry::{Alias, TOTAL_WEIGHT, WeightedVersion};

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route(
        "/v1/functions/{name}/aliases/{alias}",
        put(set_alias).delete(delete_alias),
    )
}

/// `PUT /v1/functions/{name}/aliases/{alias}`: either `version`, or
/// `versions` with weights adding up to 100.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AliasUpdate {
    /// One version (all traffic).
    pub(crate) version: Option<u32>,
    /// Two versions with weights, such as 90 and 10.
    pub(crate) versions: Option<Vec<WeightedVersion>>,
}

#[utoipa::path(put, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases",
    params(("name" = String, Path, description = "The function"), ("alias" = String, Path, description = "The alias")),
    request_body = AliasUpdate,
    responses((status = 200, body = Alias),
        (status = 400, description = "A bad name or weights", body = crate::api::ErrorBody),
        (status = 404, description = "No such function or version", body = crate::api::ErrorBody)))]
async fn set_alias(
    State(state): State<ApiState>,
    Path((name, alias)): Path<(String, String)>,
    ApiJson(update): ApiJson<AliasUpdate>,
) -> Result<Json<Alias>, ApiError> {
    let versions = match (update.version, update.versions) {
        (Some(version), None) => vec![WeightedVersion {
            version,
            weight: TOTAL_WEIGHT,
        }],
        (None, Some(versions)) => versions,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give either `version` or `versions`; hint: {\"version\": 2} or {\"versions\": [{\"version\": 1, \"weight\": 90}, {\"version\": 2, \"weight\": 10}]}",
            ));
        }
    };
    let alias = state.control.set_alias(&name, &alias, &versions).await?;
    tracing::info!(function = %name, alias = %alias.name, versions = ?alias.versions, "moved alias");
    Ok(Json(alias))
}

#[utoipa::path(delete, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases",
    params(("name" = String, Path, description = "The function"), ("alias" = String, Path, description = "The alias")),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "A trigger targets it", body = crate::api::ErrorBody)))]
async fn delete_alias(
    State(state): State<ApiState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.control.delete_alias(&name, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(OpenApi)]
#[openapi(paths(set_alias, delete_alias))]
pub(super) struct AliasesApi;
