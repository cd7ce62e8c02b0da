//! A function's page: its versions, aliases (moved from the page),
//! triggers, instances, recent invocations and its log, followed live by
//! the script through `GET /console/functions/{name}/log` (the admin
//! API's follow stream, behind the session instead of the bearer token).

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, ConsoleError, Section, page, redirect_with_notice};
use super::overview::{alias_targets, count_cells};
use super::session::Notice;
use super::{ConsoleState, SignedIn};
use crate::api::ApiError;
use crate::api::extract::ApiQuery;
use crate::api::logs::{LogList, LogsParams, function_logs};
use crate::metering::{InvocationRecord, recent_invocations};
use crate::observability::LogLine;
use crate::registry::{FunctionRecord, TOTAL_WEIGHT, WeightedVersion};

/// Invocations the page lists.
const RECENT_INVOCATIONS: u32 = 25;

/// Log lines the page shows (and the followed log starts with).
const LOG_LINES: &str = "100";

/// `GET /console/functions/{name}`.
pub(crate) async fn function_page(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let snapshot = state.api.live.snapshot();
    let function = snapshot
        .registry
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::unknown_function(&name))?;
    state
        .api
        .meter
        .settled(crate::api::billing::SETTLE_WAIT)
        .await;
    let invocations = recent_invocations(&state.api.database, Some(&name), RECENT_INVOCATIONS)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "console: cannot read invocation records");
            ApiError::internal()
        })?;
    let log = stored_log(&state, &name).await?;
    let triggers: Vec<_> = snapshot
        .registry
        .triggers
        .iter()
        .filter(|trigger| trigger.spec.function().function == name)
        .collect();
    let instances = state.api.live.instances(&name);
    let encoded = layout::encode(&name);
    let content = html! {
        (versions(function))
        (aliases(function, &session.csrf_token, &encoded))
        section aria-labelledby="triggers-heading" {
            h2 #triggers-heading { "Triggers" }
            @if triggers.is_empty() {
                p { "No trigger invokes it; " code { "kumo invoke " (name) } " still does." }
            } @else {
                div.table-scroll role="region" aria-labelledby="triggers-heading" tabindex="0" {
                    table {
                        thead { tr { th scope="col" { "Kind" } th scope="col" { "What" } th scope="col" { "Target" } th scope="col" { "Id" } } }
                        tbody {
                            @for trigger in &triggers {
                                tr {
                                    td { (trigger.spec.kind()) }
                                    td { code { (trigger.spec.describe()) } }
                                    td { code { (trigger.spec.function().to_string()) } }
                                    td { code { (trigger.id) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="instances-heading" {
            h2 #instances-heading { "Instances" }
            @if instances.is_empty() {
                p { "No version of it is live." }
            } @else {
                div.table-scroll role="region" aria-labelledby="instances-heading" tabindex="0" {
                    table data-live-instances="/console/live/instances" {
                        caption { "Right now; refreshed every few seconds." }
                        thead { tr { th scope="col" { "Version" } th scope="col" { "Idle" } th scope="col" { "Busy" } th scope="col" { "Starting" } th scope="col" { "Queued" } } }
                        tbody {
                            @for (version, counts) in &instances {
                                tr {
                                    th scope="row" { (version) }
                                    (count_cells(&format!("{name}@{version}"), counts))
                                }
                            }
                        }
                    }
                }
            }
        }
        (invocation_table(&invocations))
        section aria-labelledby="log-heading" {
            h2 #log-heading { "Log" }
            p.hint { "Guest output and each invocation's REPORT line; new lines appear as they are written." }
            pre.log #log role="log" aria-labelledby="log-heading" tabindex="0"
                data-follow={ "/console/functions/" (encoded) "/log" } {
                @for line in &log { (log_line(line)) "\n" }
            }
        }
    };
    Ok(page(
        &state,
        &session,
        Section::Functions,
        &format!("Function {name}"),
        content,
    ))
}

fn versions(function: &FunctionRecord) -> Markup {
    html! {
        section aria-labelledby="versions-heading" {
            h2 #versions-heading { "Versions" }
            div.table-scroll role="region" aria-labelledby="versions-heading" tabindex="0" {
                table {
                    thead {
                        tr {
                            th scope="col" { "Version" }
                            th scope="col" { "Code (sha256)" }
                            th scope="col" { "Size" }
                            th scope="col" { "Memory" }
                            th scope="col" { "Timeout" }
                            th scope="col" { "Created" }
                            th scope="col" { "Configuration" }
                        }
                    }
                    tbody {
                        @for version in function.versions.iter().rev() {
                            tr {
                                th scope="row" { (version.version) }
                                td { code title=(version.sha256) { (version.sha256.get(..12).unwrap_or(&version.sha256)) } }
                                td.number { (layout::bytes(version.wasm_bytes)) }
                                td.number { (version.config.memory_mb) " MB" }
                                td.number { (version.config.timeout_ms) " ms" }
                                td { (layout::stored_time(&version.created_at)) }
                                td {
                                    details {
                                        summary { "Show" span.visually-hidden { " the configuration of version " (version.version) } }
                                        pre { (serde_json::to_string_pretty(&version.config).unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn aliases(function: &FunctionRecord, csrf: &str, encoded: &str) -> Markup {
    let versions: Vec<u32> = function.versions.iter().rev().map(|v| v.version).collect();
    // The form starts from the first alias as it is.
    let current = function
        .aliases
        .first()
        .and_then(|alias| alias.versions.first())
        .map(|target| target.version);
    html! {
        section aria-labelledby="aliases-heading" {
            h2 #aliases-heading { "Aliases" }
            @if function.aliases.is_empty() {
                p { "No aliases yet." }
            } @else {
                div.table-scroll role="region" aria-labelledby="aliases-heading" tabindex="0" {
                    table #alias-table {
                        thead { tr { th scope="col" { "Alias" } th scope="col" { "Version (weight)" } th scope="col" { "Moved" } } }
                        tbody {
                            @for alias in &function.aliases {
                                tr {
                                    th scope="row" { (alias.name) }
                                    td { (alias_targets(alias)) }
                                    td { (layout::stored_time(&alias.updated_at)) }
                                }
                            }
                        }
                    }
                }
            }
            form.stacked method="post" action={ "/console/functions/" (encoded) "/aliases" } {
                h3 { "Move an alias, or split its traffic" }
                input type="hidden" name="csrf" value=(csrf);
                div.field {
                    label for="alias-name" { "Alias" }
                    input #alias-name name="alias" required list="alias-names" autocomplete="off"
                        value=[function.aliases.first().map(|alias| alias.name.as_str())];
                    datalist #alias-names {
                        @for alias in &function.aliases { option value=(alias.name) {} }
                    }
                }
                div.field {
                    label for="alias-version" { "Version" }
                    select #alias-version name="version" {
                        @for version in &versions { option value=(version) selected[Some(*version) == current] { (version) } }
                    }
                }
                div.field {
                    label for="alias-second" { "Second version (optional)" }
                    select #alias-second name="second_version" aria-describedby="alias-second-hint" {
                        option value="" { "none" }
                        @for version in &versions { option value=(version) { (version) } }
                    }
                    p.hint #alias-second-hint { "Send part of the traffic to a second version (a canary)." }
                }
                div.field {
                    label for="alias-weight" { "Second version's share (%)" }
                    input #alias-weight name="second_weight" type="number" min="1" max="99" value="10" inputmode="numeric";
                }
                button type="submit" { "Move alias" }
            }
        }
    }
}

fn invocation_table(invocations: &[InvocationRecord]) -> Markup {
    html! {
        section aria-labelledby="invocations-heading" {
            h2 #invocations-heading { "Recent invocations" }
            @if invocations.is_empty() {
                p { "None yet." }
            } @else {
                div.table-scroll role="region" aria-labelledby="invocations-heading" tabindex="0" {
                    table #invocations {
                        caption { "Newest first." }
                        thead {
                            tr {
                                th scope="col" { "Started" }
                                th scope="col" { "Version" }
                                th scope="col" { "Trigger" }
                                th scope="col" { "Outcome" }
                                th scope="col" { "Duration" }
                                th scope="col" { "Billed" }
                                th scope="col" { "Peak memory" }
                                th scope="col" { "Cold start" }
                                th scope="col" { "Request id" }
                            }
                        }
                        tbody {
                            @for record in invocations {
                                tr {
                                    td { (layout::time(record.started_at)) }
                                    td.number { (record.version) }
                                    td { (record.trigger.as_str()) }
                                    td { span class={ "outcome outcome-" (record.outcome.as_str()) } { (record.outcome.as_str()) } }
                                    td.number { (layout::millis(record.duration_us)) }
                                    td.number { (record.billed_ms) " ms" }
                                    td.number { (record.peak_memory_mb()) " MB" }
                                    td { @if record.cold_start { "yes" } @else { "no" } }
                                    td { code { (record.request_id) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One log line as the page and the script write it.
fn log_line(line: &LogLine) -> String {
    format!(
        "{} {:<7} {}",
        line.time.format("%H:%M:%S%.3f"),
        line.stream.as_str(),
        line.text
    )
}

/// The log's last lines, read through the admin API's handler.
async fn stored_log(state: &ConsoleState, name: &str) -> Result<Vec<LogLine>, ConsoleError> {
    let params = LogsParams {
        since: None,
        limit: Some(LOG_LINES.to_string()),
        follow: None,
    };
    let response = function_logs(
        State(state.api.clone()),
        Path(name.to_string()),
        ApiQuery(params),
    )
    .await?;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|error| {
            tracing::error!(%error, "console: cannot read a function's log");
            ApiError::internal()
        })?;
    let list: LogList = serde_json::from_slice(&body).map_err(|error| {
        tracing::error!(%error, "console: cannot read a function's log");
        ApiError::internal()
    })?;
    Ok(list.lines)
}

/// `GET /console/functions/{name}/log`: the admin API's followed log
/// (newline-delimited JSON: the last lines, then new ones as they come).
pub(crate) async fn follow_log(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    let params = LogsParams {
        since: None,
        limit: Some(LOG_LINES.to_string()),
        follow: Some("true".to_string()),
    };
    Ok(function_logs(State(state.api.clone()), Path(name), ApiQuery(params)).await?)
}

/// The alias form.
#[derive(Deserialize)]
pub(crate) struct AliasForm {
    csrf: Option<String>,
    alias: String,
    version: String,
    #[serde(default)]
    second_version: String,
    #[serde(default)]
    second_weight: String,
}

/// The versions an alias form asks for: one with all the traffic, or two
/// with the second's share.
fn weighted_versions(form: &AliasForm) -> Result<Vec<WeightedVersion>, String> {
    let number = |field: &str, text: &str| {
        text.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{text}` is not a {field}; hint: choose a version from the list"))
    };
    let first = number("version", &form.version)?;
    if form.second_version.trim().is_empty() {
        return Ok(vec![WeightedVersion {
            version: first,
            weight: TOTAL_WEIGHT,
        }]);
    }
    let second = number("version", &form.second_version)?;
    let share = form
        .second_weight
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|share| (1..TOTAL_WEIGHT).contains(share))
        .ok_or_else(|| {
            format!(
                "the second version's share `{}` is not a whole number from 1 to 99",
                form.second_weight
            )
        })?;
    Ok(vec![
        WeightedVersion {
            version: first,
            weight: TOTAL_WEIGHT - share,
        },
        WeightedVersion {
            version: second,
            weight: share,
        },
    ])
}

/// `POST /console/functions/{name}/aliases`: moves (or creates) an alias
/// through control, as `PUT /v1/functions/{name}/aliases/{alias}` does.
pub(crate) async fn set_alias(
    State(state): State<ConsoleState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(name): Path<String>,
    form: Result<Form<AliasForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form.map_err(|rejection| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the alias form is incomplete ({}); hint: use the form on the function's page",
                rejection.body_text().to_lowercase()
            ),
        )
    })?;
    signed_in.check_csrf(form.csrf.as_deref())?;
    let back = format!("/console/functions/{}", layout::encode(&name));
    let alias = form.alias.trim();
    let result = match weighted_versions(&form) {
        Err(problem) => Err(problem),
        Ok(versions) => state
            .api
            .control
            .set_alias(&name, alias, &versions)
            .await
            .map_err(|error| ApiError::from(error).message),
    };
    let notice = match result {
        Ok(moved) => {
            tracing::info!(function = %name, alias = %moved.name, versions = ?moved.versions, "console: moved alias");
            Notice {
                is_error: false,
                text: format!(
                    "Alias {} of {name} now routes to version {}.",
                    moved.name,
                    alias_targets(&moved)
                ),
            }
        }
        Err(problem) => Notice {
            is_error: true,
            text: format!("Alias {alias} was not moved: {problem}"),
        },
    };
    Ok(redirect_with_notice(&state, &signed_in.0, &back, notice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_form_becomes_weighted_versions() {
        let form = |version: &str, second: &str, weight: &str| AliasForm {
            csrf: None,
            alias: "live".into(),
            version: version.into(),
            second_version: second.into(),
            second_weight: weight.into(),
        };
        let pairs = |versions: Vec<WeightedVersion>| {
            versions
                .into_iter()
                .map(|v| (v.version, v.weight))
                .collect::<Vec<_>>()
        };
        type Expected = Result<Vec<(u32, u32)>, &'static str>;
        let cases: [(AliasForm, Expected); 6] = [
            (form("2", "", "10"), Ok(vec![(2, 100)])),
            (form("1", "2", "10"), Ok(vec![(1, 90), (2, 10)])),
            (form("1", "2", "99"), Ok(vec![(1, 1), (2, 99)])),
            (form("1", "2", "100"), Err("`100` is not a whole number")),
            (form("1", "2", ""), Err("share ``")),
            (form("two", "", ""), Err("`two` is not a version")),
        ];
        for (form, expected) in cases {
            match (weighted_versions(&form).map(pairs), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
                (got, want) => panic!("{got:?}, expected {want:?}"),
            }
        }
    }
}
