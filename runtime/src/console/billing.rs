//! The billing page: GB-seconds and invocations per function and per day
//! or hour, as charts drawn on the server and as a table, with the prices
//! in force and the totals the free tier applies to; the same rows as a
//! CSV download.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use maud::html;
use serde::Deserialize;

use super::chart::{Series, stacked_bars};
use super::layout::{self, ConsoleError, Section, page};
use super::overview::start_of_day;
use super::{ConsoleState, SignedIn};
use crate::api::ApiError;
use crate::metering::{BillingQuery, BillingReport, GroupBy, billing_report};

/// Query of the billing page and its CSV: `days` (1, 7 or 30) and `by`
/// (`day` or `hour`).
#[derive(Deserialize, Default)]
pub(crate) struct BillingPageQuery {
    days: Option<String>,
    by: Option<String>,
}

/// Days the page offers.
const DAY_CHOICES: [u32; 3] = [1, 7, 30];

/// The period of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Hour,
}

impl Period {
    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Hour => "hour",
        }
    }

    fn step(self) -> TimeDelta {
        match self {
            Period::Day => TimeDelta::days(1),
            Period::Hour => TimeDelta::hours(1),
        }
    }

    /// The start of the period holding `at`.
    fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Day => start_of_day(at),
            Period::Hour => at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at),
        }
    }

    /// How a period is labelled.
    fn label(self, start: DateTime<Utc>) -> String {
        match self {
            Period::Day => start.format("%Y-%m-%d").to_string(),
            Period::Hour => start.format("%m-%d %H:00").to_string(),
        }
    }
}

/// What one function used in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Usage {
    invocations: u64,
    errors: u64,
    gb_seconds: f64,
    cost: f64,
}

/// Each function's use per period start.
type UsageByPeriod = BTreeMap<(DateTime<Utc>, String), Usage>;

/// A report cut into periods: every period of the range (oldest first)
/// and each function's use in it.
struct Table {
    period: Period,
    days: u32,
    periods: Vec<DateTime<Utc>>,
    functions: Vec<String>,
    usage: UsageByPeriod,
    report: BillingReport,
}

fn parse_query(query: &BillingPageQuery) -> Result<(u32, Period), ConsoleError> {
    let days = match query.days.as_deref() {
        None | Some("") => 7,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|days| DAY_CHOICES.contains(days))
            .ok_or_else(|| {
                ConsoleError::new(
                    StatusCode::BAD_REQUEST,
                    format!("`days={text}` is not offered; hint: use 1, 7 or 30"),
                )
            })?,
    };
    let period = match query.by.as_deref() {
        None | Some("") | Some("day") => Period::Day,
        Some("hour") => Period::Hour,
        Some(other) => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("`by={other}` is not a period; hint: use day or hour"),
            ));
        }
    };
    Ok((days, period))
}

/// The periods from `days` ago (whole periods) up to the one holding
/// `now`.
fn periods(period: Period, days: u32, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let last = period.start_of(now);
    let count = match period {
        Period::Day => days,
        Period::Hour => days * 24,
    };
    (0..count)
        .rev()
        .map(|back| last - period.step() * back as i32)
        .collect()
}

/// Sums hourly rows into `period`s.
fn cut(report: &BillingReport, period: Period) -> (Vec<String>, UsageByPeriod) {
    let mut usage = UsageByPeriod::new();
    let mut functions: Vec<String> = Vec::new();
    for row in &report.rows {
        let Some(hour) = row.hour else { continue };
        if !functions.contains(&row.function) {
            functions.push(row.function.clone());
        }
        let entry = usage
            .entry((period.start_of(hour), row.function.clone()))
            .or_default();
        entry.invocations += row.invocations;
        entry.errors += row.errors;
        entry.gb_seconds += row.gb_seconds;
        entry.cost += row.cost;
    }
    functions.sort();
    (functions, usage)
}

async fn table(state: &ConsoleState, query: &BillingPageQuery) -> Result<Table, ConsoleError> {
    let (days, period) = parse_query(query)?;
    let periods = periods(period, days, Utc::now());
    state
        .api
        .meter
        .settled(crate::api::billing::SETTLE_WAIT)
        .await;
    let billing_query = BillingQuery {
        from: periods.first().copied(),
        group_by: GroupBy::Hour,
        ..BillingQuery::default()
    };
    let report = billing_report(&state.api.database, &billing_query, &state.api.prices)
        .await
        .map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "console: cannot build a billing report");
            ApiError::internal()
        })?;
    let (functions, usage) = cut(&report, period);
    Ok(Table {
        period,
        days,
        periods,
        functions,
        usage,
        report,
    })
}

/// `GET /console/billing?days=7&by=day`.
pub(crate) async fn billing_page(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Query(query): Query<BillingPageQuery>,
) -> Result<Response, ConsoleError> {
    let table = table(&state, &query).await?;
    let labels: Vec<String> = table
        .periods
        .iter()
        .map(|start| table.period.label(*start))
        .collect();
    let series_of = |figure: fn(&Usage) -> f64| series(&table, figure);
    let per = table.period.as_str();
    let prices = &table.report.prices;
    let total = &table.report.total;
    let csv_href = format!("/console/billing.csv?days={}&by={per}", table.days);
    let content = html! {
        form.filters method="get" action="/console/billing" {
            div.field {
                label for="billing-days" { "Range" }
                select #billing-days name="days" {
                    @for days in DAY_CHOICES {
                        option value=(days) selected[days == table.days] {
                            "Last " (days) @if days == 1 { " day" } @else { " days" }
                        }
                    }
                }
            }
            div.field {
                label for="billing-by" { "Per" }
                select #billing-by name="by" {
                    option value="day" selected[table.period == Period::Day] { "day" }
                    option value="hour" selected[table.period == Period::Hour] { "hour" }
                }
            }
            button type="submit" { "Show" }
            a.button href=(csv_href) download { "Download CSV" }
        }
        section aria-labelledby="totals-heading" {
            h2 #totals-heading { "Totals" }
            dl.facts {
                div { dt { "Invocations" } dd #total-invocations { (total.invocations) } }
                div { dt { "Errors" } dd { (total.errors) } }
                div { dt { "GB-seconds" } dd { (format!("{:.6}", total.gb_seconds)) } }
                div { dt { "Charge" } dd { (layout::dollars(total.charge.total)) } }
            }
            h3 { "Prices in force" }
            dl.facts {
                div { dt { "Per million invocations" } dd { (layout::dollars(prices.per_million_invocations)) } }
                div { dt { "Per GB-second" } dd { (format!("${:.10}", prices.per_gb_second)) } }
                div { dt { "Free invocations" } dd { (prices.free_invocations) } }
                div { dt { "Free GB-seconds" } dd { (prices.free_gb_seconds) } }
            }
        }
        @if table.functions.is_empty() {
            p { "No invocations in this range." }
        } @else {
            section aria-labelledby="charts-heading" {
                h2 #charts-heading { "Per " (per) }
                div.charts {
                    (stacked_bars("chart-gbs", &format!("GB-seconds per {per} and function"), &labels, &series_of(|usage| usage.gb_seconds), |value| format!("{value:.4}")))
                    (stacked_bars("chart-invocations", &format!("Invocations per {per} and function"), &labels, &series_of(|usage| usage.invocations as f64), |value| format!("{value:.0}")))
                }
            }
            section aria-labelledby="rows-heading" {
                h2 #rows-heading { "Table" }
                div.table-scroll role="region" aria-labelledby="rows-heading" tabindex="0" {
                    table #billing-rows {
                        caption { "Cost before the free tier, which applies to the totals." }
                        thead {
                            tr {
                                th scope="col" { (if table.period == Period::Day { "Day (UTC)" } else { "Hour (UTC)" }) }
                                th scope="col" { "Function" }
                                th scope="col" { "Invocations" }
                                th scope="col" { "Errors" }
                                th scope="col" { "GB-seconds" }
                                th scope="col" { "Cost" }
                            }
                        }
                        tbody {
                            @for ((start, function), usage) in table.usage.iter().rev() {
                                tr {
                                    td { (table.period.label(*start)) }
                                    th scope="row" { a href={ "/console/functions/" (layout::encode(function)) } { (function) } }
                                    td.number { (usage.invocations) }
                                    td.number { (usage.errors) }
                                    td.number { (format!("{:.6}", usage.gb_seconds)) }
                                    td.number { (layout::dollars(usage.cost)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&state, &session, Section::Billing, "Billing", content))
}

/// One chart series per function: `figure` of its use in each period.
fn series(table: &Table, figure: fn(&Usage) -> f64) -> Vec<Series<'_>> {
    table
        .functions
        .iter()
        .map(|function| Series {
            name: function,
            values: table
                .periods
                .iter()
                .map(|start| {
                    table
                        .usage
                        .get(&(*start, function.clone()))
                        .map_or(0.0, figure)
                })
                .collect(),
        })
        .collect()
}

/// `GET /console/billing.csv?days=7&by=day`: the table's rows.
pub(crate) async fn billing_csv(
    State(state): State<ConsoleState>,
    Query(query): Query<BillingPageQuery>,
) -> Result<Response, ConsoleError> {
    let table = table(&state, &query).await?;
    let text = csv(&table);
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let file = format!(
        "attachment; filename=\"kumo-billing-{}d-per-{}.csv\"",
        table.days,
        table.period.as_str()
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&file).expect("a plain file name"),
    );
    Ok(response)
}

fn csv(table: &Table) -> String {
    let mut out = format!(
        "{}_start_utc,function,invocations,errors,gb_seconds,cost_usd\n",
        table.period.as_str()
    );
    for ((start, function), usage) in &table.usage {
        out.push_str(&format!(
            "{},{},{},{},{:.6},{:.8}\n",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            csv_field(function),
            usage.invocations,
            usage.errors,
            usage.gb_seconds,
            usage.cost
        ));
    }
    out
}

use crate::metering::csv_field;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::{BillingRow, BillingTotals, OutcomeCounts, Prices};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn row(function: &str, hour: &str, invocations: u64) -> BillingRow {
        BillingRow {
            function: function.into(),
            version: None,
            hour: Some(at(hour)),
            invocations,
            errors: 1,
            outcomes: OutcomeCounts::default(),
            cold_starts: 0,
            billed_ms: 0,
            mb_ms: 0,
            gb_seconds: 0.5,
            cost: 0.25,
            p50_duration_ms: None,
            p99_duration_ms: None,
            percentiles_exact: true,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn report(rows: Vec<BillingRow>) -> BillingReport {
        BillingReport {
            query: BillingQuery::default(),
            prices: Prices::default(),
            rows,
            total: BillingTotals::default(),
        }
    }

    #[test]
    fn hours_are_summed_into_days() {
        let report = report(vec![
            row("hello", "2026-12-01T09:00:00Z", 2),
            row("hello", "2026-12-01T23:00:00Z", 3),
            row("echo", "2026-12-02T00:00:00Z", 4),
        ]);
        let (functions, usage) = cut(&report, Period::Day);
        assert_eq!(functions, ["echo", "hello"]);
        let hello = usage[&(at("2026-12-01T00:00:00Z"), "hello".to_string())];
        assert_eq!((hello.invocations, hello.errors), (5, 2));
        assert_eq!((hello.gb_seconds, hello.cost), (1.0, 0.5));
        assert_eq!(usage.len(), 2);
        let (_, by_hour) = cut(&report, Period::Hour);
        assert_eq!(by_hour.len(), 3);
    }

    #[test]
    fn a_range_is_whole_periods_ending_with_the_current_one() {
        let now = at("2026-12-06T18:42:00Z");
        let days = periods(Period::Day, 7, now);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0], at("2026-11-30T00:00:00Z"));
        assert_eq!(days[6], at("2026-12-06T00:00:00Z"));
        let hours = periods(Period::Hour, 1, now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0], at("2026-12-05T19:00:00Z"));
        assert_eq!(hours[23], at("2026-12-06T18:00:00Z"));
    }

    #[test]
    fn only_offered_ranges_and_periods_are_taken() {
        let query = |days: Option<&str>, by: Option<&str>| BillingPageQuery {
            days: days.map(str::to_string),
            by: by.map(str::to_string),
        };
        let cases = [
            (query(None, None), Some((7, Period::Day))),
            (query(Some("30"), Some("hour")), Some((30, Period::Hour))),
            (query(Some("1"), Some("day")), Some((1, Period::Day))),
            (query(Some("365"), None), None),
            (query(Some("-1"), None), None),
            (query(None, Some("week")), None),
        ];
        for (query, expected) in cases {
            let parsed = parse_query(&query).ok();
            assert_eq!(parsed, expected);
        }
    }

    #[test]
    fn the_csv_has_a_header_and_one_line_per_row() {
        let report = report(vec![row("hello", "2026-12-01T09:00:00Z", 2)]);
        let (functions, usage) = cut(&report, Period::Day);
        let table = Table {
            period: Period::Day,
            days: 7,
            periods: Vec::new(),
            functions,
            usage,
            report,
        };
        assert_eq!(
            csv(&table),
            "day_start_utc,function,invocations,errors,gb_seconds,cost_usd\n\
             2026-12-01T00:00:00Z,hello,2,1,0.500000,0.25000000\n"
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
