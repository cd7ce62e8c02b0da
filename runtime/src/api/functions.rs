//! Functions and their versions: list, show (with triggers and live
//! instances), deploy a version, delete.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::config::FunctionConfig;
use crate::model::Trigger;
use crate::registry::{Alias, Version};

/// The largest component accepted by a deploy: 100 MiB.
pub(crate) const MAX_COMPONENT_BYTES: usize = 100 << 20;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/functions", get(list_functions))
        .route(
            "/v1/functions/{name}",
            get(show_function).delete(delete_function),
        )
        .route(
            "/v1/functions/{name}/versions",
            post(deploy_version).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + (1 << 20))),
        )
}

/// A function in the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct FunctionSummary {
    /// Its name.
    pub(crate) name: String,
    /// The newest version.
    pub(crate) latest_version: u32,
    /// How many versions it has.
    pub(crate) versions: usize,
    /// Its aliases.
    pub(crate) aliases: Vec<Alias>,
    /// RFC 3339, UTC.
    pub(crate) created_at: String,
}

/// `GET /v1/functions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct FunctionList {
    /// By name.
    pub(crate) functions: Vec<FunctionSummary>,
}

/// Instances of one live version right now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VersionInstances {
    /// The version.
    pub(crate) version: u32,
    /// Warm and waiting.
    pub(crate) idle: u32,
    /// Serving a request.
    pub(crate) busy: u32,
    /// Being created.
    pub(crate) starting: u32,
    /// Requests waiting for an instance.
    pub(crate) queued: u32,
}

/// `GET /v1/functions/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct FunctionDetail {
    /// Its name.
    pub(crate) name: String,
    /// RFC 3339, UTC.
    pub(crate) created_at: String,
    /// Every version, oldest first.
    pub(crate) versions: Vec<Version>,
    /// Its aliases.
    pub(crate) aliases: Vec<Alias>,
    /// Triggers that invoke it.
    pub(crate) triggers: Vec<Trigger>,
    /// Instances of its live versions, newest version first.
    pub(crate) instances: Vec<VersionInstances>,
}

/// The answer to a deploy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Deployment {
    /// The version holding this code and configuration.
    pub(crate) version: Version,
    /// False when an identical version existed (answered 200, not 201).
    pub(crate) created: bool,
}

/// The multipart form of a deploy.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub(crate) struct DeployForm {
    /// The component (`.wasm`), at most 100 MiB.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// The configuration as JSON; omitted keys take their defaults.
    config: Option<FunctionConfig>,
}

/// `DELETE /v1/functions/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct FunctionDeleted {
    /// The deleted function.
    pub(crate) deleted: String,
    /// Triggers deleted with it (with `force=true`).
    pub(crate) triggers_deleted: Vec<Trigger>,
}

/// Query of `DELETE /v1/functions/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Also delete the triggers that point at the function.
    #[serde(default)]
    pub(crate) force: bool,
}

#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = FunctionList), (status = 401, body = crate::api::ErrorBody)))]
async fn list_functions(State(state): State<ApiState>) -> Json<FunctionList> {
    let snapshot = state.live.snapshot();
    let functions = snapshot
        .registry
        .functions
        .values()
        .map(|record| FunctionSummary {
            name: record.name.clone(),
            latest_version: record.latest().unwrap_or(0),
            versions: record.versions.len(),
            aliases: record.aliases.clone(),
            created_at: record.created_at.clone(),
        })
        .collect();
    Json(FunctionList { functions })
}

#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "The function")),
    responses((status = 200, body = FunctionDetail), (status = 404, body = crate::api::ErrorBody)))]
async fn show_function(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionDetail>, ApiError> {
    let snapshot = state.live.snapshot();
    let record = snapshot
        .registry
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::unknown_function(&name))?;
    let triggers = snapshot
        .registry
        .triggers
        .iter()
        .filter(|trigger| trigger.spec.function().function == name)
        .cloned()
        .collect();
    let instances = state
        .live
        .instances(&name)
        .into_iter()
        .map(|(version, counts)| VersionInstances {
            version,
            idle: counts.idle,
            busy: counts.busy,
            starting: counts.starting,
            queued: counts.queued,
        })
        .collect();
    Ok(Json(FunctionDetail {
        name: record.name.clone(),
        created_at: record.created_at.clone(),
        versions: record.versions.clone(),
        aliases: record.aliases.clone(),
        triggers,
        instances,
    }))
}

#[utoipa::path(post, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path, description = "The function (created on its first version)")),
    request_body(content_type = "multipart/form-data", content = DeployForm,
        description = "`component`: the .wasm file; `config`: the configuration as JSON"),
    responses(
        (status = 201, description = "A new version", body = Deployment),
        (status = 200, description = "An identical version existed; it is returned", body = Deployment),
        (status = 400, description = "A bad name, form or configuration", body = crate::api::ErrorBody),
        (status = 413, description = "The component is over 100 MiB", body = crate::api::ErrorBody),
        (status = 422, description = "Not a wasi:http component", body = crate::api::ErrorBody)))]
async fn deploy_version(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Deployment>), ApiError> {
    let DeployParts {
        file_name,
        component: wasm,
        config,
    } = read_deploy_form(form).await?;
    let deployed = state
        .control
        .deploy(&name, &file_name, wasm, config)
        .await?;
    let status = if deployed.created {
        tracing::info!(function = %name, version = deployed.version.version, "deployed a new version");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Deployment {
            version: deployed.version,
            created: deployed.created,
        }),
    ))
}

/// What a deploy's multipart form holds.
#[derive(Debug)]
pub(crate) struct DeployParts {
    /// The `component` part's file name (`component.wasm` when it has none).
    pub(crate) file_name: String,
    /// The component's bytes, at most [`MAX_COMPONENT_BYTES`].
    pub(crate) component: Bytes,
    /// The `config` part, or the defaults.
    pub(crate) config: FunctionConfig,
}

/// Reads a deploy's form: one `component` part, at most one `config` part
/// (JSON), nothing else.
///
/// # Errors
///
/// A 4xx [`ApiError`] (400, 413 or 415) naming what is wrong with the form,
/// with a hint.
pub(crate) async fn read_deploy_form(
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<DeployParts, ApiError> {
    // axum's own rejection is plain text; the API answers JSON.
    let mut form = form.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "invalid_request",
            format!(
                "the body is not a multipart form ({}); hint: send multipart/form-data with the part `component` (the .wasm file) and optionally `config` (JSON)",
                rejection.body_text().to_lowercase()
            ),
        )
    })?;
    let mut component: Option<(String, Bytes)> = None;
    let mut config: Option<FunctionConfig> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return Err(multipart_error(error)),
        };
        let twice = |part: &str| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the form has two `{part}` parts; hint: send each part once"),
            )
        };
        match field.name() {
            Some("component") if component.is_some() => return Err(twice("component")),
            Some("config") if config.is_some() => return Err(twice("config")),
            Some("component") => {
                let file_name = field.file_name().unwrap_or("component.wasm").to_string();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > MAX_COMPONENT_BYTES {
                    return Err(too_large(bytes.len()));
                }
                component = Some((file_name, bytes));
            }
            Some("config") => {
                let text = field.bytes().await.map_err(multipart_error)?;
                config = Some(serde_json::from_slice(&text).map_err(|error| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_config",
                        format!("the `config` part is not a valid configuration: {error}; hint: docs/manifest.md lists the keys"),
                    )
                })?);
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "unexpected form part `{}`; hint: send `component` (the .wasm file) and optionally `config` (JSON)",
                        other.unwrap_or("")
                    ),
                ));
            }
        }
    }
    let Some((file_name, component)) = component else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the form has no `component` part; hint: send the .wasm file as the multipart part `component`",
        ));
    };
    Ok(DeployParts {
        file_name,
        component,
        config: config.unwrap_or_default(),
    })
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(MAX_COMPONENT_BYTES + 1);
    }
    ApiError::new(
        error.status(),
        "invalid_request",
        format!(
            "cannot read the multipart form: {}; hint: send `multipart/form-data` with a `component` part",
            error.body_text().to_lowercase()
        ),
    )
}

fn too_large(bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the component is over the limit of {} MiB (at least {bytes} bytes); hint: build in release mode and strip debug info",
            MAX_COMPONENT_BYTES >> 20
        ),
    )
}

#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "The function"), DeleteQuery),
    responses((status = 200, body = FunctionDeleted),
        (status = 404, body = crate::api::ErrorBody),
        (status = 409, description = "Triggers still point at it", body = crate::api::ErrorBody)))]
async fn delete_function(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Json<FunctionDeleted>, ApiError> {
    let triggers_deleted = state.control.delete_function(&name, query.force).await?;
    tracing::info!(function = %name, "deleted function");
    Ok(Json(FunctionDeleted {
        deleted: name,
        triggers_deleted,
    }))
}

#[derive(OpenApi)]
#[openapi(paths(list_functions, show_function, deploy_version, delete_function))]
pub(super) struct FunctionsApi;
