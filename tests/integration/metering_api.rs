//! Metering through the admin API and the CLI against a real `kumo up`
//! (its own SQLite in its data directory): `GET /v1/invocations`,
//! `GET /v1/billing`, `kumo bill`, `GET /v1/functions/{name}/logs`,
//! `kumo logs [--follow]`, `GET /metrics`, and their refusals.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Kumo, client, example, test_guest, toml_path};

fn function(name: &str, path: &std::path::Path, extra: &str) -> String {
    format!(
        "[function.{name}]\nsource = {}\n{extra}\n[[trigger.http]]\nroute = \"/{name}\"\nfunction = \"{name}\"\n",
        toml_path(path)
    )
}

/// Sends a GET to the gateway; returns the status and the request id.
async fn get(kumo: &Kumo, path: &str) -> (u16, String) {
    let response = client().get(kumo.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-kumo-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    response.bytes().await.unwrap();
    (status, id)
}

async fn admin_json(kumo: &Kumo, path: &str) -> (u16, Value) {
    let response = kumo.admin(Method::GET, path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn sum(records: &[Value], field: &str) -> u64 {
    records.iter().map(|r| r[field].as_u64().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_kumo_bill_report_exactly_the_invocations_served() {
    let manifest = [
        function("hello", &example("hello"), "memory_mb = 64"),
        function("trap", &test_guest("trap"), ""),
        function("forever", &test_guest("forever"), "timeout_ms = 300"),
        function(
            "busy",
            &test_guest("counter"),
            "max_instances = 1\nmax_queue = 5\nqueue_timeout_ms = 200",
        ),
    ]
    .concat();
    // REPORT lines on stderr tell when the writer stored the records.
    let kumo = Kumo::up_with_env(&manifest, &[("KUMO_REPORT_LINES", "true")]);

    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    for (path, outcome) in [
        ("/hello", "ok"),
        ("/hello", "ok"),
        ("/hello", "ok"),
        ("/trap", "trap"),
        ("/trap", "trap"),
        ("/forever", "timeout"),
    ] {
        let (_, id) = get(&kumo, path).await;
        expected.insert(id, outcome);
    }
    // One instance, two slow requests: one is served, one waits past its
    // queue timeout and is answered 429.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let client = client();
            let url = kumo.url("/busy?sleep_ms=1000");
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                let status = response.status().as_u16();
                let id = response.headers()["x-kumo-request-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                response.bytes().await.unwrap();
                (status, id)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in slow {
        let (status, id) = request.await.unwrap();
        statuses.push(status);
        expected.insert(id, if status == 429 { "rejected" } else { "ok" });
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429]);
    let n = expected.len();
    // The writer prints a batch's REPORT lines after storing it.
    assert!(
        kumo.wait_for_log_count("REPORT RequestId:", n),
        "{}",
        kumo.logs()
    );

    // Exactly N records, with their outcomes.
    let (status, answer) = admin_json(&kumo, "/v1/invocations?limit=1000").await;
    assert_eq!(status, 200, "{answer}");
    let records = answer["invocations"].as_array().unwrap().clone();
    assert_eq!(records.len(), n, "{answer}");
    let found: BTreeMap<String, &str> = records
        .iter()
        .map(|r| {
            (
                r["request_id"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    let (_, hello) = admin_json(&kumo, "/v1/invocations?function=hello&limit=2").await;
    let hello = hello["invocations"].as_array().unwrap();
    assert_eq!(hello.len(), 2);
    assert!(hello.iter().all(|r| r["function"] == "hello"));

    // The report sums the records, whatever the grouping.
    let mut reports = Vec::new();
    for group_by in ["function", "version", "hour"] {
        let (status, report) = admin_json(&kumo, &format!("/v1/billing?group_by={group_by}")).await;
        assert_eq!(status, 200, "{report}");
        let total = &report["total"];
        assert_eq!(total["invocations"], n as u64, "{group_by}: {report}");
        assert_eq!(total["billed_ms"], sum(&records, "billed_ms"), "{group_by}");
        let mb_ms: u64 = records
            .iter()
            .map(|r| r["memory_mb"].as_u64().unwrap() * r["billed_ms"].as_u64().unwrap())
            .sum();
        assert_eq!(total["mb_ms"], mb_ms, "{group_by}");
        let cold = records.iter().filter(|r| r["cold_start"] == true).count();
        assert_eq!(total["cold_starts"], cold as u64, "{group_by}");
        assert_eq!(total["errors"], 3, "two traps and a timeout");
        assert_eq!(total["rejected"], 1);
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(sum(rows, "invocations"), n as u64);
        assert_eq!(sum(rows, "billed_ms"), sum(&records, "billed_ms"));
        assert_eq!(report["prices"]["per_million_invocations"], 0.2);
        assert_eq!(report["prices"]["per_gb_second"], 0.0000166667);
        reports.push(report);
    }
    let by_function = &reports[0];
    let hello_row = by_function["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == "hello")
        .unwrap();
    assert_eq!(hello_row["invocations"], 3);
    assert_eq!(hello_row["outcomes"]["ok"], 3);

    // A time range: everything is before now, nothing after it.
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let later = later.replace('+', "%2B");
    let (_, report) = admin_json(&kumo, &format!("/v1/billing?to={later}")).await;
    assert_eq!(report["total"]["invocations"], n as u64);
    let (_, report) = admin_json(&kumo, &format!("/v1/billing?from={later}")).await;
    assert_eq!(report["total"]["invocations"], 0);
    assert_eq!(report["rows"], Value::Array(vec![]));

    // `kumo bill` prints the API's answer.
    let json = kumo.cli(&["bill", "--output", "json"]);
    assert!(json.status.success(), "{json:#?}");
    let printed: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(&printed, by_function);
    let json = kumo.cli(&["bill", "--group-by", "hour", "-o", "json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap(),
        reports[2]
    );
    let csv = kumo.cli(&["bill", "--output", "csv"]);
    assert!(csv.status.success(), "{csv:#?}");
    let mut lines = csv.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let api_rows = by_function["rows"].as_array().unwrap();
    assert_eq!(csv_rows.len(), api_rows.len());
    for (csv_row, api_row) in csv_rows.iter().zip(api_rows) {
        assert_eq!(csv_row[column("function")], api_row["function"]);
        for field in ["invocations", "errors", "cold_starts", "billed_ms", "mb_ms"] {
            assert_eq!(
                csv_row[column(field)],
                api_row[field].to_string(),
                "{field}"
            );
        }
        for field in ["gb_seconds", "cost"] {
            let value: f64 = csv_row[column(field)].parse().unwrap();
            assert_eq!(value, api_row[field].as_f64().unwrap(), "{field}");
        }
    }
    let table = kumo.cli(&["bill", "--function", "hello"]);
    assert!(table.status.success(), "{table:#?}");
    assert!(table.stdout.contains("hello"), "{}", table.stdout);
    assert!(table.stdout.contains("TOTAL"), "{}", table.stdout);
    assert!(!table.stdout.contains("trap"), "{}", table.stdout);

    // Refusals name the parameter.
    for (path, needle) in [
        ("/v1/billing?group_by=day", "group_by=day"),
        ("/v1/billing?from=yesterday", "from=yesterday"),
        ("/v1/billing?to=2026-13-01T00:00:00Z", "`to="),
        ("/v1/invocations?limit=0", "limit=0"),
    ] {
        let (status, body) = admin_json(&kumo, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
        assert!(message.contains("hint"), "{path}: {message}");
    }
    let refused = kumo.cli(&["bill", "--from", "yesterday"]);
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("from=yesterday"), "{refused:#?}");

    // Every metering endpoint needs the token.
    for path in [
        "/v1/billing",
        "/v1/invocations",
        "/v1/functions/hello/logs",
        "/metrics",
    ] {
        let response = client().get(kumo.admin_url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }

    // Prometheus metrics: the invocation metrics of what was served, and
    // the pool gauges once a maintenance tick ran (bounded wait).
    let names = [
        "kumo_invocations_total{function=\"hello\",outcome=\"ok\"} 3",
        "kumo_invocations_total{function=\"trap\",outcome=\"trap\"} 2",
        "kumo_invocations_total{function=\"busy\",outcome=\"rejected\"} 1",
        "kumo_invocation_duration_seconds_bucket{function=\"hello\"",
        "kumo_cold_starts_total{function=\"hello\"}",
        "kumo_billed_gigabyte_seconds_total{function=\"hello\"}",
        "kumo_instances{function=\"hello\",state=\"idle\"}",
        "kumo_queue_depth{function=\"busy\"}",
        "kumo_metering_dropped_records_total 0",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let response = kumo.admin(Method::GET, "/metrics").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = response.text().await.unwrap();
        if names.iter().all(|name| text.contains(name)) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in names {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert_eq!(exposition_problems(&text), Vec::<String>::new(), "{text}");
}

/// What `promtool check metrics` would object to in Prometheus text: a
/// metric family without `# HELP` or `# TYPE`, or a counter whose name
/// does not end in `_total`.
fn exposition_problems(text: &str) -> Vec<String> {
    let mut helped = std::collections::BTreeSet::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name)) => {
                helped.insert(name.to_owned());
            }
            (Some("#"), Some("TYPE"), Some(name)) => {
                types.insert(name.to_owned(), words.next().unwrap_or("").to_owned());
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                sample
                    .strip_suffix(suffix)
                    .filter(|family| types.get(*family).is_some_and(|kind| kind == "histogram"))
            })
            .unwrap_or(sample);
        if !helped.contains(family) {
            problems.push(format!("{family}: no # HELP"));
        }
        match types.get(family).map(String::as_str) {
            None => problems.push(format!("{family}: no # TYPE")),
            Some("counter") if !family.ends_with("_total") => {
                problems.push(format!("{family}: a counter not named *_total"))
            }
            Some(_) => {}
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn exposition_problems_are_found() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{f=\"x\"} 1\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n";
    assert_eq!(exposition_problems(good), Vec::<String>::new());
    let bad = "# TYPE g gauge\ng 1\n# HELP c C.\n# TYPE c counter\nc 2\nloose 3\n";
    assert_eq!(
        exposition_problems(bad),
        [
            "c: a counter not named *_total",
            "g: no # HELP",
            "loose: no # HELP",
            "loose: no # TYPE"
        ]
    );
}

/// Reads a child's stdout lines on a thread.
fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Waits (bounded) for a line containing `needle`; returns the lines read.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    if seen.iter().any(|line| line.contains(needle)) {
        return true;
    }
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_logs_are_listed_and_followed_with_their_request_ids() {
    let kumo = Kumo::up(&function("envdump", &test_guest("envdump"), ""));
    let (status, first) = get(&kumo, "/envdump").await;
    assert_eq!(status, 200);

    // The function's log shows the invocation's REPORT line too, once the
    // metering writer stored its record (at most 100 ms later).
    let report_prefix = format!("REPORT RequestId: {first}\tDuration: ");
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let (status, answer) = admin_json(&kumo, "/v1/functions/envdump/logs").await;
        assert_eq!(status, 200, "{answer}");
        let has_report = answer["lines"].as_array().unwrap().iter().any(|line| {
            line["stream"] == "report"
                && line["request_id"] == first.as_str()
                && line["text"].as_str().unwrap().starts_with(&report_prefix)
        });
        if has_report || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines = answer["lines"].as_array().unwrap();
    let ours: Vec<(&str, &str)> = lines
        .iter()
        .filter(|line| line["request_id"] == first.as_str())
        .map(|line| {
            (
                line["stream"].as_str().unwrap(),
                line["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        ours.contains(&("stdout", "envdump stdout line")),
        "{answer}"
    );
    assert!(
        ours.contains(&("stderr", "envdump stderr line")),
        "{answer}"
    );
    let report = ours
        .iter()
        .find(|(stream, _)| *stream == "report")
        .unwrap_or_else(|| panic!("no REPORT line in the function's log: {answer}"));
    assert!(report.1.starts_with(&report_prefix), "{report:?}");
    assert!(report.1.contains("\tMax Memory Used: "), "{report:?}");
    // REPORT lines are in the function's log, not the server's, unless
    // it runs with --report-lines.
    assert!(
        !kumo.logs().contains("REPORT RequestId:"),
        "{}",
        kumo.logs()
    );
    let (_, later) = admin_json(
        &kumo,
        "/v1/functions/envdump/logs?since=2026-01-01T00:00:00Z&limit=1",
    )
    .await;
    assert_eq!(later["lines"].as_array().unwrap().len(), 1, "{later}");

    let printed = kumo.cli(&["logs", "envdump", "--since", "10m"]);
    assert!(printed.status.success(), "{printed:#?}");
    assert!(
        printed
            .stdout
            .lines()
            .any(|line| line.contains(&first) && line.contains("envdump stdout line")),
        "{}",
        printed.stdout
    );

    // Refusals.
    let (status, body) = admin_json(&kumo, "/v1/functions/nosuch/logs").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = admin_json(&kumo, "/v1/functions/envdump/logs?since=soon").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("since=soon")
    );
    let missing = kumo.cli(&["logs", "nosuch"]);
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("no function `nosuch`"),
        "{missing:#?}"
    );

    // `--follow` prints the stored lines, then a line produced after it
    // started.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["logs", "envdump", "--follow"])
        .env("KUMO_SERVER", kumo.admin_base())
        .env("KUMO_ADMIN_TOKEN", kumo.token())
        .env("KUMO_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(follower.stdout.take().unwrap());
    let mut seen = Vec::new();
    // The stored line arrives once the follower is subscribed.
    assert!(wait_for_line(&lines, &first, &mut seen), "{seen:?}");
    let (_, second) = get(&kumo, "/envdump").await;
    assert!(wait_for_line(&lines, &second, &mut seen), "{seen:?}");
    // Its REPORT line follows once the writer stored its record.
    let second_report = format!("REPORT RequestId: {second}\t");
    assert!(wait_for_line(&lines, &second_report, &mut seen), "{seen:?}");
    let new_lines: Vec<&String> = seen.iter().filter(|line| line.contains(&second)).collect();
    assert!(
        new_lines
            .iter()
            .any(|line| line.contains("envdump stdout line")),
        "{new_lines:?}"
    );
    assert!(
        new_lines
            .iter()
            .any(|line| line.contains("\treport\tREPORT RequestId: ")),
        "{new_lines:?}"
    );

    // Stopping the server ends the stream: kumo exits cleanly (no wait
    // for the grace period), and so does the follower.
    assert!(kumo.terminate().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            let _ = follower.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|status| status.success()),
        "the follower did not end with the server: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_and_the_free_tier_come_from_the_configuration() {
    let kumo = Kumo::up_with_env(
        &function("hello", &example("hello"), "memory_mb = 128"),
        &[
            ("KUMO_PRICE_PER_MILLION_INVOCATIONS", "2.5"),
            ("KUMO_PRICE_PER_GB_SECOND", "0.001"),
            ("KUMO_FREE_INVOCATIONS", "1"),
            ("KUMO_REPORT_LINES", "true"),
        ],
    );
    for _ in 0..3 {
        assert_eq!(get(&kumo, "/hello").await.0, 200);
    }
    assert!(kumo.wait_for_log_count("REPORT RequestId:", 3));
    let (status, report) = admin_json(&kumo, "/v1/billing").await;
    assert_eq!(status, 200, "{report}");
    let prices = &report["prices"];
    assert_eq!(prices["per_million_invocations"], 2.5);
    assert_eq!(prices["per_gb_second"], 0.001);
    assert_eq!(prices["free_invocations"], 1);
    assert_eq!(prices["free_gb_seconds"], 0.0);
    let total = &report["total"];
    assert_eq!(total["invocations"], 3);
    let charge = &total["charge"];
    assert_eq!(charge["charged_invocations"], 2, "{report}");
    let gb_seconds = total["gb_seconds"].as_f64().unwrap();
    let expected = 2.0 * 2.5 / 1e6 + gb_seconds * 0.001;
    let charged = charge["total"].as_f64().unwrap();
    assert!(
        (charged - expected).abs() < 1e-15,
        "{charged} vs {expected}"
    );

    // A negative price is refused before anything starts.
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["server", "--price-per-gb-second=-1", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--price-per-gb-second"), "{stderr}");
    assert!(stderr.contains("zero or more"), "{stderr}");
}

/// A function deleted and created again under the same name starts with an
/// empty log: neither its predecessor's output nor its REPORT lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_created_again_does_not_show_its_predecessors_log() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let component = std::fs::read(test_guest("envdump")).unwrap();
    let (status, body) =
        crate::admin_api::deploy(&kumo, "dump", component.clone(), serde_json::json!({})).await;
    assert_eq!(status, 201, "{body}");
    let invoked = kumo.cli(&["invoke", "dump"]);
    assert!(invoked.status.success(), "{invoked:#?}");
    let (_, before) = admin_json(&kumo, "/v1/functions/dump/logs").await;
    let streams = |answer: &serde_json::Value| -> Vec<String> {
        answer["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["stream"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(streams(&before).contains(&"stdout".to_owned()), "{before}");
    assert!(streams(&before).contains(&"report".to_owned()), "{before}");

    let deleted = kumo.cli(&["functions", "delete", "dump", "--force"]);
    assert!(deleted.status.success(), "{deleted:#?}");
    let (status, body) =
        crate::admin_api::deploy(&kumo, "dump", component, serde_json::json!({})).await;
    assert_eq!(status, 201, "{body}");
    let (status, after) = admin_json(&kumo, "/v1/functions/dump/logs").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(streams(&after), Vec::<String>::new(), "{after}");
}
