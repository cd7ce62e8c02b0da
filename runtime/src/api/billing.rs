//! The admin API's billing endpoints: billing reports (`GET /v1/billing`)
//! and the recent invocation records (`GET /v1/invocations`).
//!
//! Query parameters are read as text and parsed here, so that a bad one is
//! answered `400 invalid_request` with its name, its value and a hint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::ApiError;
use super::ApiState;
use super::extract::ApiQuery;
use crate::metering::{
    BillingQuery, BillingReport, GroupBy, InvocationRecord, billing_report, recent_invocations,
};

/// Records `GET /v1/invocations` answers when no `limit` is given.
pub const DEFAULT_INVOCATION_LIMIT: u32 = 100;
/// The most records one `GET /v1/invocations` answers.
pub const MAX_INVOCATION_LIMIT: u32 = 10_000;
/// Query of `GET /v1/billing`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BillingParams {
    /// Invocations that started at or after this time (RFC 3339, such as
    /// `2026-11-01T00:00:00Z`); from the beginning when absent.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Invocations that started before this time (RFC 3339); until now when
    /// absent.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only this function.
    pub function: Option<String>,
    /// `function` (default), `version` or `hour`.
    #[param(pattern = "^(function|version|hour)?$")]
    pub group_by: Option<String>,
}

/// Query of `GET /v1/invocations`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvocationsParams {
    /// Only this function.
    pub function: Option<String>,
    /// At most this many records, newest first (default 100, at most
    /// 10,000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
}

/// `GET /v1/invocations`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvocationList {
    /// Newest first.
    pub invocations: Vec<InvocationRecord>,
}

/// The billing routes, merged into the admin router (behind its token).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/billing", get(billing))
        .route("/v1/invocations", get(invocations))
}

#[derive(OpenApi)]
#[openapi(paths(billing, invocations))]
pub(crate) struct BillingApiDoc;

pub(super) fn bad_parameter(name: &str, value: &str, hint: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("bad query parameter `{name}={value}`; hint: {hint}"),
    )
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            bad_parameter(
                name,
                value,
                &format!(
                    "{error}; give an RFC 3339 time such as `2026-11-01T00:00:00Z` or `2026-11-01T09:00:00+09:00`"
                ),
            )
        })
}

/// The billing query a `GET /v1/billing` asks for.
///
/// # Errors
///
/// A `400` naming the parameter that is not an RFC 3339 time or a known
/// grouping, or `from` after `to`.
pub fn billing_query(params: BillingParams) -> Result<BillingQuery, ApiError> {
    let from = params
        .from
        .as_deref()
        .map(|value| parse_time("from", value))
        .transpose()?;
    let to = params
        .to
        .as_deref()
        .map(|value| parse_time("to", value))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "bad time range: `from` ({}) is after `to` ({}); hint: the range is [from, to)",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ));
    }
    let group_by = match params.group_by.as_deref() {
        None | Some("") => GroupBy::default(),
        Some(value) => value
            .parse::<GroupBy>()
            .map_err(|_| bad_parameter("group_by", value, "use function, version or hour"))?,
    };
    Ok(BillingQuery {
        from,
        to,
        function: params.function.filter(|name| !name.is_empty()),
        group_by,
    })
}

pub(super) fn parse_limit<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    value: Option<&str>,
    default: T,
    max: T,
    min: T,
) -> Result<T, ApiError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.parse::<T>() {
        Ok(limit) if limit >= min && limit <= max => Ok(limit),
        _ => Err(bad_parameter(
            "limit",
            value,
            &format!("give a whole number from {min} to {max}"),
        )),
    }
}

/// How long a read of invocation records waits for the records of the
/// invocations that ended before it (the writer stores every ~100 ms; a
/// slow disk can take longer, and then the read goes on without them).
pub(crate) const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[utoipa::path(get, path = "/v1/billing", tag = "metering", params(BillingParams),
    responses(
        (status = 200, description = "The report: one row per group, totals with the free tier applied, and the prices used", body = BillingReport),
        (status = 400, description = "A bad `from`, `to` or `group_by`", body = super::ErrorBody)))]
async fn billing(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<BillingParams>,
) -> Result<Json<BillingReport>, ApiError> {
    let query = billing_query(params)?;
    state.meter.settled(SETTLE_WAIT).await;
    let report = billing_report(&state.database, &query, &state.prices)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "cannot build a billing report");
            ApiError::internal()
        })?;
    Ok(Json(report))
}

#[utoipa::path(get, path = "/v1/invocations", tag = "metering", params(InvocationsParams),
    responses(
        (status = 200, description = "The most recent records not yet rolled up, newest first", body = InvocationList),
        (status = 400, description = "A bad `limit`", body = super::ErrorBody)))]
async fn invocations(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<InvocationsParams>,
) -> Result<Json<InvocationList>, ApiError> {
    let limit = parse_limit(
        params.limit.as_deref(),
        DEFAULT_INVOCATION_LIMIT,
        MAX_INVOCATION_LIMIT,
        1,
    )?;
    let function = params.function.as_deref().filter(|name| !name.is_empty());
    state.meter.settled(SETTLE_WAIT).await;
    let invocations = recent_invocations(&state.database, function, limit)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "cannot read invocation records");
            ApiError::internal()
        })?;
    Ok(Json(InvocationList { invocations }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_parameters_are_checked_and_named() {
        let params = |from: Option<&str>, to: Option<&str>, group_by: Option<&str>| BillingParams {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            function: None,
            group_by: group_by.map(str::to_string),
        };
        // (params, the parameter a 400 names, or the grouping)
        let cases = [
            (params(None, None, None), Ok(GroupBy::Function)),
            (params(None, None, Some("hour")), Ok(GroupBy::Hour)),
            (params(None, None, Some("version")), Ok(GroupBy::Version)),
            (
                params(
                    Some("2026-11-01T00:00:00Z"),
                    Some("2026-11-01T00:00:00Z"),
                    None,
                ),
                Ok(GroupBy::Function),
            ),
            (params(None, None, Some("day")), Err("`group_by=day`")),
            (
                params(Some("yesterday"), None, None),
                Err("`from=yesterday`"),
            ),
            (
                params(None, Some("2026-13-01T00:00:00Z"), None),
                Err("`to="),
            ),
            (
                params(
                    Some("2026-11-02T00:00:00Z"),
                    Some("2026-11-01T00:00:00Z"),
                    None,
                ),
                Err("`from` (2026-11-02"),
            ),
        ];
        for (params, expected) in cases {
            let described = format!("{params:?}");
            match (billing_query(params), expected) {
                (Ok(query), Ok(group_by)) => assert_eq!(query.group_by, group_by, "{described}"),
                (Err(error), Err(needle)) => {
                    assert_eq!(error.status, StatusCode::BAD_REQUEST, "{described}");
                    assert!(
                        error.message.contains(needle),
                        "{described}: {}",
                        error.message
                    );
                }
                (result, expected) => panic!("{described}: {result:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn limits_are_bounded() {
        let cases = [
            (None, Ok(100)),
            (Some("1"), Ok(1)),
            (Some("10000"), Ok(10_000)),
            (Some("0"), Err(())),
            (Some("10001"), Err(())),
            (Some("-1"), Err(())),
            (Some("many"), Err(())),
        ];
        for (value, expected) in cases {
            let limit = parse_limit(value, 100u32, 10_000, 1).map_err(|_| ());
            assert_eq!(limit, expected, "{value:?}");
        }
    }
}
