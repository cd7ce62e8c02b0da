//! The admin API: deploy versions, move aliases, manage triggers, invoke
//! for a test, read billing, records, guest logs and metrics (handlers in
//! [`super::billing`], [`super::logs`], [`super::metrics`]), on its own
//! listener and behind a bearer token.
//!
//! JSON in and out; every error is `{"error":{"code","message"}}`. The
//! OpenAPI document (`GET /v1/openapi.json`) is generated from these
//! handlers' annotations, so it says what the server does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::ApiError;
use crate::live::Live;
use crate::registry::{
    Alias, FunctionConfig, Target, Trigger, TriggerSpec, Version, WeightedVersion,
};
use crate::triggers::http::REQUEST_ID_HEADER;

/// The largest component accepted by a deploy: 100 MiB.
pub const MAX_COMPONENT_BYTES: usize = 100 << 20;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The live functions and the registry.
    pub live: Arc<Live>,
    /// The bearer token every `/v1` call (and `/metrics`) must carry.
    pub token: Arc<str>,
    /// The database holding the invocation records.
    pub database: crate::database::Database,
    /// The guests' output lines.
    pub guest_logs: crate::observability::GuestLogStore,
    /// The Prometheus recorder's handle.
    pub metrics: crate::observability::metrics::MetricsHandle,
    /// The prices billing reports apply.
    pub prices: crate::metering::Prices,
    /// Turns true when the server begins to stop: followed logs end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The admin API's router.
pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/v1/functions", get(list_functions))
        .route(
            "/v1/functions/{name}",
            get(show_function).delete(delete_function),
        )
        .route(
            "/v1/functions/{name}/versions",
            post(deploy_version).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + (1 << 20))),
        )
        .route(
            "/v1/functions/{name}/aliases/{alias}",
            put(set_alias).delete(delete_alias),
        )
        .route(
            "/v1/functions/{name}/invoke",
            post(invoke).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/triggers", get(list_triggers).post(create_trigger))
        .route("/v1/triggers/{id}", delete(delete_trigger))
        .route("/v1/openapi.json", get(openapi_document))
        .merge(super::events::routes())
        .merge(super::billing::routes())
        .merge(super::logs::routes())
        .merge(super::metrics::routes())
        .fallback(unknown_path)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(v1)
        .fallback(unknown_path)
        .with_state(state)
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
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

/// JSON bodies whose rejections are answered in Kumo's error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "invalid_request",
                format!(
                    "{}; hint: send a JSON body with `content-type: application/json`, see GET /v1/openapi.json",
                    rejection.body_text().to_lowercase()
                ),
            )),
        }
    }
}

pub(super) fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text().to_lowercase(),
    )
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves.
    pub status: &'static str,
}

/// A function in the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionSummary {
    /// Its name.
    pub name: String,
    /// The newest version.
    pub latest_version: u32,
    /// How many versions it has.
    pub versions: usize,
    /// Its aliases.
    pub aliases: Vec<Alias>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `GET /v1/functions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    /// By name.
    pub functions: Vec<FunctionSummary>,
}

/// Instances of one live version right now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionInstances {
    /// The version.
    pub version: u32,
    /// Warm and waiting.
    pub idle: u32,
    /// Serving a request.
    pub busy: u32,
    /// Being created.
    pub starting: u32,
    /// Requests waiting for an instance.
    pub queued: u32,
}

/// `GET /v1/functions/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionDetail {
    /// Its name.
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
    /// Its aliases.
    pub aliases: Vec<Alias>,
    /// Triggers that invoke it.
    pub triggers: Vec<Trigger>,
    /// Instances of its live versions, newest version first.
    pub instances: Vec<VersionInstances>,
}

/// The answer to a deploy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    /// The version holding this code and configuration.
    pub version: Version,
    /// False when an identical version existed (answered 200, not 201).
    pub created: bool,
}

/// The multipart form of a deploy.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeployForm {
    /// The component (`.wasm`), at most 100 MiB.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// The configuration as JSON; omitted keys take their defaults.
    config: Option<FunctionConfig>,
}

/// `DELETE /v1/functions/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionDeleted {
    /// The deleted function.
    pub deleted: String,
    /// Triggers deleted with it (with `force=true`).
    pub triggers_deleted: Vec<Trigger>,
}

/// `PUT /v1/functions/{name}/aliases/{alias}`: either `version`, or
/// `versions` with weights adding up to 100.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasUpdate {
    /// One version (all traffic).
    pub version: Option<u32>,
    /// Two versions with weights, such as 90 and 10.
    pub versions: Option<Vec<WeightedVersion>>,
}

/// `GET /v1/triggers`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerList {
    /// Oldest first.
    pub triggers: Vec<Trigger>,
}

/// Query of `DELETE /v1/functions/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// Also delete the triggers that point at the function.
    #[serde(default)]
    pub force: bool,
}

/// Query of `POST /v1/functions/{name}/invoke`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct InvokeQuery {
    /// A version number or an alias; the newest version when absent.
    pub qualifier: Option<String>,
    /// The path the function sees (default `/`).
    pub path: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The server is serving", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = FunctionList), (status = 401, body = super::ErrorBody)))]
async fn list_functions(State(state): State<AdminState>) -> Json<FunctionList> {
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
    responses((status = 200, body = FunctionDetail), (status = 404, body = super::ErrorBody)))]
async fn show_function(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionDetail>, ApiError> {
    let snapshot = state.live.snapshot();
    let record = snapshot
        .registry
        .functions
        .get(&name)
        .ok_or_else(|| unknown_function(&name))?;
    let triggers = snapshot
        .registry
        .triggers
        .iter()
        .filter(|trigger| Target::parse(trigger.spec.function()).is_ok_and(|t| t.function == name))
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

pub(super) fn unknown_function(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no function `{name}`; hint: `kumo functions list` shows what is deployed"),
    )
}

#[utoipa::path(post, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path, description = "The function (created on its first version)")),
    request_body(content_type = "multipart/form-data", content = DeployForm,
        description = "`component`: the .wasm file; `config`: the configuration as JSON"),
    responses(
        (status = 201, description = "A new version", body = Deployment),
        (status = 200, description = "An identical version existed; it is returned", body = Deployment),
        (status = 400, description = "A bad name, form or configuration", body = super::ErrorBody),
        (status = 413, description = "The component is over 100 MiB", body = super::ErrorBody),
        (status = 422, description = "Not a wasi:http component", body = super::ErrorBody)))]
async fn deploy_version(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Deployment>), ApiError> {
    let mut component: Option<(String, Bytes)> = None;
    let mut config = FunctionConfig::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return Err(multipart_error(error)),
        };
        match field.name() {
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
                config = serde_json::from_slice(&text).map_err(|error| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_config",
                        format!("the `config` part is not a valid configuration: {error}; hint: docs/manifest.md lists the keys"),
                    )
                })?;
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
    let Some((file_name, wasm)) = component else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the form has no `component` part; hint: send the .wasm file as the multipart part `component`",
        ));
    };
    let deployed = state.live.deploy(&name, &file_name, wasm, config).await?;
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
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "Triggers still point at it", body = super::ErrorBody)))]
async fn delete_function(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<FunctionDeleted>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let triggers_deleted = state
        .live
        .registry()
        .delete_function(&name, query.force)
        .await?;
    state.live.reload().await?;
    tracing::info!(function = %name, "deleted function");
    Ok(Json(FunctionDeleted {
        deleted: name,
        triggers_deleted,
    }))
}

#[utoipa::path(put, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases",
    params(("name" = String, Path, description = "The function"), ("alias" = String, Path, description = "The alias")),
    request_body = AliasUpdate,
    responses((status = 200, body = Alias),
        (status = 400, description = "A bad name or weights", body = super::ErrorBody),
        (status = 404, description = "No such function or version", body = super::ErrorBody)))]
async fn set_alias(
    State(state): State<AdminState>,
    Path((name, alias)): Path<(String, String)>,
    ApiJson(update): ApiJson<AliasUpdate>,
) -> Result<Json<Alias>, ApiError> {
    let versions = match (update.version, update.versions) {
        (Some(version), None) => vec![WeightedVersion {
            version,
            weight: crate::registry::TOTAL_WEIGHT,
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
    let alias = state
        .live
        .registry()
        .set_alias(&name, &alias, &versions)
        .await?;
    state.live.reload().await?;
    tracing::info!(function = %name, alias = %alias.name, versions = ?alias.versions, "moved alias");
    Ok(Json(alias))
}

#[utoipa::path(delete, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases",
    params(("name" = String, Path, description = "The function"), ("alias" = String, Path, description = "The alias")),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "A trigger targets it", body = super::ErrorBody)))]
async fn delete_alias(
    State(state): State<AdminState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.live.registry().delete_alias(&name, &alias).await?;
    state.live.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList)))]
async fn list_triggers(State(state): State<AdminState>) -> Json<TriggerList> {
    Json(TriggerList {
        triggers: state.live.snapshot().registry.triggers.clone(),
    })
}

#[utoipa::path(post, path = "/v1/triggers", tag = "triggers",
    request_body = TriggerSpec,
    responses((status = 201, body = Trigger),
        (status = 400, description = "A bad route or target", body = super::ErrorBody),
        (status = 404, description = "The target does not exist", body = super::ErrorBody),
        (status = 409, description = "The route is taken", body = super::ErrorBody)))]
async fn create_trigger(
    State(state): State<AdminState>,
    ApiJson(spec): ApiJson<TriggerSpec>,
) -> Result<(StatusCode, Json<Trigger>), ApiError> {
    let trigger = state.live.registry().create_trigger(spec).await?;
    state.live.reload().await?;
    Ok((StatusCode::CREATED, Json(trigger)))
}

#[utoipa::path(delete, path = "/v1/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, description = "The trigger's id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorBody)))]
async fn delete_trigger(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.live.registry().delete_trigger(&id).await?;
    state.live.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path, description = "The function"), InvokeQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "Passed to the function as the body of `POST {path}`, with the request's headers"),
    responses(
        (status = 200, description = "The function's own response (any status, headers and body), with `x-kumo-request-id`"),
        (status = 404, body = super::ErrorBody),
        (status = 429, description = "Overloaded", body = super::ErrorBody)))]
async fn invoke(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<InvokeQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let text = match &query.qualifier {
        Some(qualifier) => format!("{name}:{qualifier}"),
        None => name.clone(),
    };
    let target = Target::parse(&text)?;
    if !state.live.snapshot().registry.functions.contains_key(&name) {
        return Err(unknown_function(&name));
    }
    let pool = state.live.resolve(&target).await?;
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

#[utoipa::path(get, path = "/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document")))]
async fn openapi_document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// The OpenAPI 3 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = AdminApiDoc::openapi();
    document.merge(super::events::EventsApiDoc::openapi());
    document.merge(super::billing::BillingApiDoc::openapi());
    document.merge(super::logs::LogsApiDoc::openapi());
    document.merge(super::metrics::MetricsApiDoc::openapi());
    document
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kumo admin API", description = "Deploy functions, move aliases, manage triggers, read billing, invocation records, guest logs and metrics. Every call but `/healthz` needs `Authorization: Bearer <token>`."),
    paths(healthz, list_functions, show_function, deploy_version, delete_function, set_alias,
        delete_alias, list_triggers, create_trigger, delete_trigger, invoke, openapi_document),
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
