//! The overview: every function with its current version, aliases, the
//! last hour's invocations, errors and durations, today's GB-seconds; the
//! process's uptime and instance counts (refreshed live by the script).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};

use super::layout::{self, ConsoleError, Section, page};
use super::{ConsoleState, SignedIn};
use crate::api::ApiError;
use crate::metering::{BillingQuery, BillingRow, billing_report};
use crate::pool::SlotCounts;
use crate::registry::Alias;

/// `GET /console/`.
pub(crate) async fn overview(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
) -> Result<Response, ConsoleError> {
    let now = Utc::now();
    let last_hour = rows_by_function(&state, now - TimeDelta::hours(1)).await?;
    let today = rows_by_function(&state, start_of_day(now)).await?;
    let snapshot = state.api.live.snapshot();
    let mut total = SlotCounts::default();
    let functions: Vec<Markup> = snapshot
        .registry
        .functions
        .values()
        .map(|function| {
            let name = function.name.as_str();
            let counts = instance_total(&state, name);
            add(&mut total, &counts);
            let hour = last_hour.get(name);
            let gb_seconds = today.get(name).map_or(0.0, |row| row.gb_seconds);
            html! {
                tr {
                    th scope="row" {
                        a href={ "/console/functions/" (layout::encode(name)) } { (name) }
                    }
                    td.number { (function.latest().unwrap_or(0)) }
                    td { (aliases(&function.aliases)) }
                    td.number { (hour.map_or(0, |row| row.invocations)) }
                    td.number { (hour.map_or(0, |row| row.errors)) }
                    td.number { (duration(hour.and_then(|row| row.p50_duration_ms))) }
                    td.number { (duration(hour.and_then(|row| row.p99_duration_ms))) }
                    td.number { (format!("{gb_seconds:.6}")) }
                    (count_cells(name, &counts))
                }
            }
        })
        .collect();
    let content = html! {
        section aria-labelledby="process-heading" {
            h2 #process-heading { "This server" }
            dl.facts {
                div { dt { "Uptime" } dd { (layout::uptime(state.started.elapsed())) } }
                div { dt { "Functions" } dd { (functions.len()) } }
                div { dt { "Instances" } dd { (instance_summary(&total)) } }
            }
        }
        section aria-labelledby="functions-heading" {
            h2 #functions-heading { "Functions" }
            @if functions.is_empty() {
                p { "Nothing is deployed yet: " code { "kumo up" } " or " code { "kumo deploy" } " adds functions." }
            } @else {
                div.table-scroll role="region" aria-labelledby="functions-heading" tabindex="0" {
                    table data-live-instances="/console/live/instances" {
                        caption { "Invocations, errors and durations of the last hour; GB-seconds since midnight UTC; instances now." }
                        thead {
                            tr {
                                th scope="col" { "Function" }
                                th scope="col" { "Version" }
                                th scope="col" { "Aliases" }
                                th scope="col" { "Invocations" }
                                th scope="col" { "Errors" }
                                th scope="col" { "p50" }
                                th scope="col" { "p99" }
                                th scope="col" { "GB-s today" }
                                th scope="col" { "Idle" }
                                th scope="col" { "Busy" }
                                th scope="col" { "Starting" }
                                th scope="col" { "Queued" }
                            }
                        }
                        tbody {
                            @for row in &functions { (row) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &state,
        &session,
        Section::Overview,
        "Overview",
        content,
    ))
}

/// `GET /console/live/instances`: every instance count the pages show, by
/// the key of its cell (`name:idle` summed over versions,
/// `name@version:idle` for one version, `*:idle` for the whole server).
pub(crate) async fn instance_counts(
    State(state): State<ConsoleState>,
) -> Json<BTreeMap<String, u32>> {
    let snapshot = state.api.live.snapshot();
    let mut counts = BTreeMap::new();
    let mut everything = SlotCounts::default();
    for name in snapshot.registry.functions.keys() {
        let mut total = SlotCounts::default();
        for (version, version_counts) in state.api.live.instances(name) {
            add(&mut total, &version_counts);
            for (kind, count) in kinds(&version_counts) {
                counts.insert(format!("{name}@{version}:{kind}"), count);
            }
        }
        for (kind, count) in kinds(&total) {
            counts.insert(format!("{name}:{kind}"), count);
        }
        add(&mut everything, &total);
    }
    for (kind, count) in kinds(&everything) {
        counts.insert(format!("*:{kind}"), count);
    }
    Json(counts)
}

/// The cells of instance counts, keyed for the script that refreshes them.
pub(crate) fn count_cells(key: &str, counts: &SlotCounts) -> Markup {
    html! {
        @for (kind, count) in kinds(counts) {
            td.number data-count={ (key) ":" (kind) } { (count) }
        }
    }
}

fn kinds(counts: &SlotCounts) -> [(&'static str, u32); 4] {
    [
        ("idle", counts.idle),
        ("busy", counts.busy),
        ("starting", counts.starting),
        ("queued", counts.queued),
    ]
}

fn add(total: &mut SlotCounts, counts: &SlotCounts) {
    total.idle += counts.idle;
    total.busy += counts.busy;
    total.starting += counts.starting;
    total.queued += counts.queued;
}

fn instance_total(state: &ConsoleState, function: &str) -> SlotCounts {
    let mut total = SlotCounts::default();
    for (_, counts) in state.api.live.instances(function) {
        add(&mut total, &counts);
    }
    total
}

/// The server's instances, each count keyed `*:<kind>` for the script.
fn instance_summary(total: &SlotCounts) -> Markup {
    html! {
        @for (index, (kind, count)) in kinds(total).into_iter().enumerate() {
            @if index > 0 { ", " }
            span data-count={ "*:" (kind) } { (count) } " " (kind)
        }
    }
}

/// Aliases as `live → 2` or `live → 1 (90%), 2 (10%)`.
pub(crate) fn aliases(aliases: &[Alias]) -> Markup {
    html! {
        @if aliases.is_empty() {
            span.muted { "none" }
        }
        @for (index, alias) in aliases.iter().enumerate() {
            @if index > 0 { ", " }
            (alias.name) " → " (alias_targets(alias))
        }
    }
}

/// An alias's versions: `2`, or `1 (90%), 2 (10%)`.
pub(crate) fn alias_targets(alias: &Alias) -> String {
    match alias.versions.as_slice() {
        [one] => one.version.to_string(),
        many => many
            .iter()
            .map(|target| format!("{} ({}%)", target.version, target.weight))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn duration(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".to_string(), |ms| format!("{ms:.2} ms"))
}

/// Midnight UTC of `now`'s day.
pub(crate) fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The billing report from `from` until now, one row per function.
async fn rows_by_function(
    state: &ConsoleState,
    from: DateTime<Utc>,
) -> Result<BTreeMap<String, BillingRow>, ConsoleError> {
    state
        .api
        .meter
        .settled(crate::api::billing::SETTLE_WAIT)
        .await;
    let query = BillingQuery {
        from: Some(from),
        ..BillingQuery::default()
    };
    let report = billing_report(&state.api.database, &query, &state.api.prices)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "console: cannot build a billing report");
            ApiError::internal()
        })?;
    Ok(report
        .rows
        .into_iter()
        .map(|row| (row.function.clone(), row))
        .collect())
}
