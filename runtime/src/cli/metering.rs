//! The metering client verbs: `kumo bill` (a billing report as a table,
//! the API's JSON, or CSV rows) and `kumo logs` (a function's output lines,
//! optionally followed).

use anyhow::Context;
use chrono::SecondsFormat;
use reqwest::Method;

use super::client::{Client, print_table};
use super::{BillArgs, ClientArgs, LogsArgs};
use crate::api::logs::{FollowedLine, LogList};
use crate::metering::{BillingReport, BillingRow, GroupBy};
use crate::observability::LogLine;

pub(super) async fn bill(args: BillArgs) -> anyhow::Result<()> {
    let client = Client::new(&ClientArgs {
        admin: args.admin.clone(),
        output: args.output.clone(),
    })?;
    let mut query = vec![("group_by", args.group_by.clone())];
    for (name, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("function", &args.function),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    let report: BillingReport = client
        .call(client.request(Method::GET, "/v1/billing").query(&query))
        .await
        .context("cannot get the billing report")?;
    match args.output.as_str() {
        "json" => client.print_json(&report),
        "csv" => print!("{}", billing_csv(&report)),
        _ => print_billing_table(&report),
    }
    Ok(())
}

/// The columns of `kumo bill --output csv`, one line per report row.
pub(crate) const BILLING_CSV_HEADER: &str = "function,version,hour,invocations,errors,cold_starts,billed_ms,mb_ms,gb_seconds,cost,p50_duration_ms,p99_duration_ms,percentiles_exact";

/// The report's rows as CSV (numbers at full precision; empty cells for
/// absent values), with [`BILLING_CSV_HEADER`] first.
pub(crate) fn billing_csv(report: &BillingReport) -> String {
    let mut text = String::from(BILLING_CSV_HEADER);
    text.push('\n');
    let optional = |value: Option<f64>| value.map_or_else(String::new, |value| value.to_string());
    for row in &report.rows {
        let cells = [
            crate::metering::csv_field(&row.function),
            row.version
                .map_or_else(String::new, |version| version.to_string()),
            row.hour.map_or_else(String::new, |hour| {
                hour.to_rfc3339_opts(SecondsFormat::Secs, true)
            }),
            row.invocations.to_string(),
            row.errors.to_string(),
            row.cold_starts.to_string(),
            row.billed_ms.to_string(),
            row.mb_ms.to_string(),
            row.gb_seconds.to_string(),
            row.cost.to_string(),
            optional(row.p50_duration_ms),
            optional(row.p99_duration_ms),
            row.percentiles_exact.to_string(),
        ];
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    text
}

fn print_billing_table(report: &BillingReport) {
    let group_column = match report.query.group_by {
        GroupBy::Function => None,
        GroupBy::Version => Some("VERSION"),
        GroupBy::Hour => Some("HOUR"),
    };
    let milliseconds =
        |value: Option<f64>| value.map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}"));
    let group_cell = |row: &BillingRow| match report.query.group_by {
        GroupBy::Function => None,
        GroupBy::Version => Some(row.version.map_or_else(|| "-".into(), |v| v.to_string())),
        GroupBy::Hour => Some(row.hour.map_or_else(
            || "-".into(),
            |hour| hour.to_rfc3339_opts(SecondsFormat::Secs, true),
        )),
    };
    let mut header = vec!["FUNCTION"];
    header.extend(group_column);
    header.extend([
        "INVOCATIONS",
        "ERRORS",
        "COLD",
        "BILLED_MS",
        "GB_S",
        "COST_USD",
        "P50_MS",
        "P99_MS",
    ]);
    let mut rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.function.clone()];
            cells.extend(group_cell(row));
            cells.extend([
                row.invocations.to_string(),
                row.errors.to_string(),
                row.cold_starts.to_string(),
                row.billed_ms.to_string(),
                format!("{:.6}", row.gb_seconds),
                format!("{:.8}", row.cost),
                milliseconds(row.p50_duration_ms),
                milliseconds(row.p99_duration_ms),
            ]);
            cells
        })
        .collect();
    let total = &report.total;
    let mut cells = vec!["TOTAL".to_string()];
    cells.extend(group_column.map(|_| String::new()));
    cells.extend([
        total.invocations.to_string(),
        total.errors.to_string(),
        total.cold_starts.to_string(),
        total.billed_ms.to_string(),
        format!("{:.6}", total.gb_seconds),
        format!("{:.8}", total.gross_cost),
        String::new(),
        String::new(),
    ]);
    rows.push(cells);
    print_table(&header, &rows);
    let prices = &report.prices;
    println!();
    println!(
        "prices: ${} per million invocations, ${} per GB-s; free tier: {} invocations, {} GB-s",
        prices.per_million_invocations,
        prices.per_gb_second,
        prices.free_invocations,
        prices.free_gb_seconds
    );
    println!(
        "charge after the free tier: ${:.8} ({} invocations, {:.6} GB-s; {} rejected, not charged per request)",
        total.charge.total,
        total.charge.charged_invocations,
        total.charge.charged_gb_seconds,
        total.rejected
    );
}

pub(super) async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(since) = &args.since {
        query.push(("since", since.clone()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let path = format!("/v1/functions/{}/logs", args.name);
    if !args.follow {
        let list: LogList = client
            .call(client.request(Method::GET, &path).query(&query))
            .await?;
        if client.json {
            client.print_json(&list);
        } else {
            for line in &list.lines {
                println!("{}", log_text(line));
            }
        }
        return Ok(());
    }
    query.push(("follow", "true".to_string()));
    let mut response = client
        .send(client.request(Method::GET, &path).query(&query))
        .await?;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = response.chunk().await.with_context(|| {
            format!(
                "the log stream from {} broke off; hint: run `kumo logs {} --follow` again",
                client.base, args.name
            )
        })?;
        let Some(chunk) = chunk else {
            // The server stopped (or closed the stream).
            return Ok(());
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.is_empty() {
                continue;
            }
            if client.json {
                println!("{}", String::from_utf8_lossy(line));
                continue;
            }
            match serde_json::from_slice::<FollowedLine>(line) {
                Ok(FollowedLine::Line(line)) => println!("{}", log_text(&line)),
                Ok(FollowedLine::Missed { missed }) => {
                    eprintln!("kumo: missed {missed} line(s): this terminal read too slowly")
                }
                Err(error) => anyhow::bail!(
                    "the server sent a log line this kumo cannot read ({error}); hint: are --admin-url and this kumo the same version?"
                ),
            }
        }
    }
}

/// `TIME  REQUEST_ID  STREAM  TEXT`, tab-separated.
fn log_text(line: &LogLine) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        line.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        if line.request_id.is_empty() {
            "-"
        } else {
            &line.request_id
        },
        line.stream,
        line.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::{BillingQuery, BillingTotals, Prices};

    fn row(function: &str, version: Option<u32>) -> BillingRow {
        BillingRow {
            function: function.into(),
            version,
            hour: None,
            invocations: 3,
            errors: 1,
            outcomes: Default::default(),
            cold_starts: 1,
            billed_ms: 19,
            mb_ms: 4_864,
            gb_seconds: 0.00475,
            cost: 6.791668e-7,
            p50_duration_ms: Some(0.2),
            p99_duration_ms: None,
            percentiles_exact: true,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    #[test]
    fn csv_rows_have_every_column_and_quote_what_needs_it() {
        let report = BillingReport {
            query: BillingQuery::default(),
            prices: Prices::default(),
            rows: vec![row("thumbnail", Some(2)), row("a,\"b\"", None)],
            total: BillingTotals::default(),
        };
        let text = billing_csv(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                BILLING_CSV_HEADER,
                "thumbnail,2,,3,1,1,19,4864,0.00475,0.0000006791668,0.2,,true",
                "\"a,\"\"b\"\"\",,,3,1,1,19,4864,0.00475,0.0000006791668,0.2,,true",
            ]
        );
        let columns = BILLING_CSV_HEADER.split(',').count();
        assert_eq!(lines[1].split(',').count(), columns);
    }
}
