//! A direct invocation of a function (any version or alias) through the
//! admin API, for a test or a script: with a request of the caller's, or
//! with a sample event, built and sent exactly as event delivery sends a
//! real one (`kumo invoke --event`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, ApiState};
use crate::events::document::{self, EventDocument, FileChange};
use crate::model::{ObjectChange, ObjectEventFormat, Target, TriggerSpec};
use crate::request_id::REQUEST_ID_HEADER_NAME;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/functions/{name}/invoke",
            post(invoke).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/functions/{name}/sample-event", post(sample_event))
}

/// Query of `POST /v1/functions/{name}/invoke`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InvokeQuery {
    /// A version number or an alias; the newest version when absent.
    #[param(pattern = "^([1-9][0-9]{0,9}|[a-z][a-z0-9_-]{0,63})$")]
    pub(crate) qualifier: Option<String>,
    /// The path the function sees (default `/`).
    #[param(pattern = "^/")]
    pub(crate) path: Option<String>,
}

#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path, description = "The function"), InvokeQuery),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream",
        description = "Passed to the function as the body of `POST {path}`, with the request's headers"),
    responses(
        (status = 200, description = "The function's own response (any status, headers and body), with `x-kumo-request-id`"),
        (status = 202, description = "Queued: the request asked for an asynchronous call (`X-Kumo-Invocation-Type: Event`, `X-Fc-Invocation-Type: Async` or `X-Amz-Invocation-Type: Event`)", body = super::invocations::AsyncAccepted),
        (status = 404, body = crate::api::ErrorBody),
        (status = 429, description = "Overloaded", body = crate::api::ErrorBody)))]
async fn invoke(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<InvokeQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let target = deployed_target(&state, &name, query.qualifier.as_deref())?;
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
    if super::invocations::requested_invocation_type(forwarded.headers())?
        == kumo_protocol::header::InvocationType::Async
    {
        let snapshot = state.live.snapshot();
        return Ok(
            super::invocations::accept_async(&state.events, &snapshot, &target, forwarded).await,
        );
    }
    invoke_once(&state, &target, forwarded).await
}

/// `name` with its qualifier as a target, when `name` is deployed.
fn deployed_target(
    state: &ApiState,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Target, ApiError> {
    let text = match qualifier {
        Some(qualifier) => format!("{name}:{qualifier}"),
        None => name.to_string(),
    };
    let target = Target::parse(&text)?;
    if !state.live.snapshot().registry.functions.contains_key(name) {
        return Err(ApiError::unknown_function(name));
    }
    Ok(target)
}

/// Runs `request` once on the target's pool; the function's response (or
/// Kumo's error), with its request id.
async fn invoke_once<B>(
    state: &ApiState,
    target: &Target,
    request: http::Request<B>,
) -> Result<Response, ApiError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
{
    let pool = state.control.pool_for_invoke(target).await?;
    let request_id: Arc<str> = crate::request_id::next();
    let mut response = match pool
        .invoke(
            request,
            request_id.clone(),
            crate::metering::TriggerKind::Invoke,
        )
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(error) => ApiError::from(error).into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER_NAME, value);
    }
    Ok(response)
}

/// A sample event's kind: what happened, and for an object, the shape of
/// its document (a storage trigger's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SampleEventKind {
    /// An object uploaded, in Function Compute's OSS shape.
    OssPut,
    /// An object uploaded, in Amazon S3's shape.
    S3Put,
    /// An object uploaded, as a structured CloudEvent.
    CloudeventsPut,
    /// A timer trigger firing.
    Timer,
    /// A file written into a watched folder.
    File,
}

/// Body of `POST /v1/functions/{name}/sample-event`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SampleEventRequest {
    /// What happened.
    pub(crate) kind: SampleEventKind,
    /// The object's bucket (object events only); default: the bucket of
    /// the function's storage trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bucket: Option<String>,
    /// The object's key, or for `file` the file's path in the watched
    /// folder; default: `example` between the storage trigger's prefix
    /// and suffix (`.txt` without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
}

/// Query of `POST /v1/functions/{name}/sample-event`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SampleEventQuery {
    /// A version number or an alias; the newest version when absent.
    #[param(pattern = "^([1-9][0-9]{0,9}|[a-z][a-z0-9_-]{0,63})$")]
    pub(crate) qualifier: Option<String>,
}

/// The MD5 of no bytes: the eTag of an empty object, which a sample event
/// describes when its object does not exist.
const EMPTY_OBJECT_ETAG: &str = "d41d8cd98f00b204e9800998ecf8427e";

#[utoipa::path(post, path = "/v1/functions/{name}/sample-event", tag = "functions",
    params(("name" = String, Path, description = "The function"), SampleEventQuery),
    request_body = SampleEventRequest,
    responses(
        (status = 200, description = "The function's own response (any status, headers and body), with `x-kumo-request-id`"),
        (status = 400, description = "A bucket, key or path that is not valid, or no trigger to take a default from", body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody),
        (status = 429, description = "Overloaded", body = crate::api::ErrorBody)))]
async fn sample_event(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<SampleEventQuery>,
    ApiJson(sample): ApiJson<SampleEventRequest>,
) -> Result<Response, ApiError> {
    let target = deployed_target(&state, &name, query.qualifier.as_deref())?;
    let triggers: Vec<TriggerSpec> = state
        .live
        .snapshot()
        .registry
        .triggers
        .iter()
        .filter(|trigger| trigger.spec.function().function == name)
        .map(|trigger| trigger.spec.clone())
        .collect();
    let id = crate::events::queue::new_event_id();
    let object = |format| object_document(&state, &name, &triggers, &sample, format, &id);
    let document = match sample.kind {
        SampleEventKind::OssPut => object(ObjectEventFormat::Oss).await?,
        SampleEventKind::S3Put => object(ObjectEventFormat::S3).await?,
        SampleEventKind::CloudeventsPut => object(ObjectEventFormat::Cloudevents).await?,
        SampleEventKind::Timer => timer_document(&triggers, &sample)?,
        SampleEventKind::File => file_document(&name, &triggers, &sample)?,
    };
    let request = crate::events::delivery::first_attempt_request(id, target.clone(), document)
        .map_err(|error| {
            invalid(format!(
                "the sample event cannot be sent as headers: {error}; hint: use a key of printable characters"
            ))
        })?;
    invoke_once(&state, &target, request).await
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// An upload of `bucket/key` as a storage trigger would see it: the
/// object's real size and eTag when it exists (an empty object's when not),
/// the function's storage trigger's name.
async fn object_document(
    state: &ApiState,
    function: &str,
    triggers: &[TriggerSpec],
    sample: &SampleEventRequest,
    format: ObjectEventFormat,
    event_id: &str,
) -> Result<EventDocument, ApiError> {
    let storage_triggers = || {
        triggers.iter().filter_map(|spec| match spec {
            TriggerSpec::Storage(trigger) => Some(trigger),
            _ => None,
        })
    };
    let trigger = match &sample.bucket {
        Some(bucket) => storage_triggers().find(|trigger| &trigger.bucket == bucket),
        None => storage_triggers().next(),
    };
    let bucket = match (&sample.bucket, trigger) {
        (Some(bucket), _) => bucket.clone(),
        (None, Some(trigger)) => trigger.bucket.clone(),
        (None, None) => {
            return Err(invalid(format!(
                "function `{function}` has no storage trigger to take a bucket from; hint: name one with `bucket` (`kumo invoke --bucket`)"
            )));
        }
    };
    let key = sample
        .key
        .clone()
        .unwrap_or_else(|| example_key(trigger.map(|t| (t.prefix.as_str(), t.suffix.as_str()))));
    crate::storage::check_bucket_name(&bucket).map_err(|error| invalid(error.to_string()))?;
    crate::storage::check_object_key(&key).map_err(|error| invalid(error.to_string()))?;
    let root = state.storage_root.clone();
    let (stat_bucket, stat_key) = (bucket.clone(), key.clone());
    let found = tokio::task::spawn_blocking(move || {
        crate::storage::object_size_and_etag(&root, &stat_bucket, &stat_key)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|error| {
        tracing::error!(
            error = format!("{error:#}"),
            "cannot read the object a sample event describes"
        );
        ApiError::internal()
    })?;
    let (size, etag) = found.unwrap_or_else(|| (0, EMPTY_OBJECT_ETAG.to_string()));
    let change = ObjectChange {
        bucket,
        key,
        size,
        etag,
        event_name: "ObjectCreated:PutObject".to_string(),
        time: Utc::now(),
        source_ip: Some("127.0.0.1".to_string()),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let trigger_name = trigger.map_or("sample", |trigger| trigger.name.as_str());
    Ok(document::object_event(
        &change,
        trigger_name,
        format,
        event_id,
    ))
}

/// `example` between a storage trigger's prefix and suffix (`.txt`
/// without a suffix), so the sample matches the trigger's filter.
fn example_key(filter: Option<(&str, &str)>) -> String {
    let (prefix, suffix) = filter.unwrap_or(("", ""));
    let suffix = if suffix.is_empty() { ".txt" } else { suffix };
    format!("{prefix}example{suffix}")
}

/// The function's timer trigger firing now (its name and payload; `sample`
/// and no payload without one).
fn timer_document(
    triggers: &[TriggerSpec],
    sample: &SampleEventRequest,
) -> Result<EventDocument, ApiError> {
    if sample.bucket.is_some() || sample.key.is_some() {
        return Err(invalid(
            "a timer event has no bucket or key; hint: leave out --bucket and --key".to_string(),
        ));
    }
    let trigger = triggers.iter().find_map(|spec| match spec {
        TriggerSpec::Timer(trigger) => Some(trigger),
        _ => None,
    });
    // A timer fires on a whole second.
    let now = Utc::now();
    let scheduled = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    Ok(match trigger {
        Some(trigger) => document::timer_event(&trigger.name, scheduled, &trigger.payload),
        None => document::timer_event("sample", scheduled, ""),
    })
}

/// A file in the function's watched folder (its real size and time when
/// it is there).
fn file_document(
    function: &str,
    triggers: &[TriggerSpec],
    sample: &SampleEventRequest,
) -> Result<EventDocument, ApiError> {
    if sample.bucket.is_some() {
        return Err(invalid(
            "a file event has no bucket; hint: give the file's path in the watched folder with --key".to_string(),
        ));
    }
    let Some(trigger) = triggers.iter().find_map(|spec| match spec {
        TriggerSpec::Watch(trigger) => Some(trigger),
        _ => None,
    }) else {
        return Err(invalid(format!(
            "function `{function}` has no watch trigger, and a file event names the watched folder; hint: add a [[trigger.watch]] for it"
        )));
    };
    let path = sample.key.clone().unwrap_or_else(|| example_key(None));
    let relative = std::path::Path::new(&path);
    let inside = !path.is_empty()
        && relative
            .components()
            .all(|part| matches!(part, std::path::Component::Normal(_)));
    if !inside {
        return Err(invalid(format!(
            "file path `{path}` is not inside the watched folder; hint: give a path relative to it, without `..`, such as `notes.txt`"
        )));
    }
    // The folder as the watcher names it: canonical.
    let folder = std::fs::canonicalize(&trigger.path).unwrap_or_else(|_| trigger.path.clone());
    let now = Utc::now();
    let (size, modified) = match std::fs::metadata(folder.join(relative)) {
        Ok(metadata) if metadata.is_file() => (
            metadata.len(),
            metadata
                .modified()
                .map_or(now, chrono::DateTime::<Utc>::from),
        ),
        _ => (0, now),
    };
    let file = FileChange {
        folder: folder.display().to_string(),
        path: path.replace('\\', "/"),
        size,
        modified,
        time: now,
    };
    Ok(document::file_event(&trigger.name, &file))
}

#[derive(OpenApi)]
#[openapi(paths(invoke, sample_event))]
pub(super) struct InvokeApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_keys_pass_the_storage_triggers_filter() {
        let cases = [
            (None, "example.txt"),
            (Some(("", "")), "example.txt"),
            (Some(("in/", "")), "in/example.txt"),
            (Some(("in/", ".png")), "in/example.png"),
            (Some(("", ".jpg")), "example.jpg"),
        ];
        for (filter, expected) in cases {
            assert_eq!(example_key(filter), expected, "{filter:?}");
        }
    }

    #[test]
    fn sample_event_kinds_have_the_names_the_cli_and_the_api_take() {
        use clap::ValueEnum;
        for kind in SampleEventKind::value_variants() {
            let cli_name = kind.to_possible_value().unwrap().get_name().to_string();
            let api_name = serde_json::to_value(kind).unwrap();
            assert_eq!(api_name, serde_json::Value::String(cli_name));
        }
        let names: Vec<String> = SampleEventKind::value_variants()
            .iter()
            .map(|kind| kind.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(
            names,
            ["oss-put", "s3-put", "cloudevents-put", "timer", "file"]
        );
    }
}
