//! A failed invocation says why, once: one `failure` line in its function's
//! log (`GET /v1/functions/{name}/logs`, `kumo logs`) with a Rust guest's
//! panic message in it instead of on split stderr lines, one WARN line in
//! the server's log that `KUMO_LOG=warn` still shows with the function,
//! version and request id, and a `Status:` at the end of its REPORT line.
//! The caller's answer keeps the panic message out.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Kumo, client, example, test_guest, toml_path};

const FOREVER_TIMEOUT_MS: u64 = 300;
const SMALL_MAX_REQUEST_BYTES: u64 = 16;

fn function(name: &str, path: &std::path::Path, extra: &str) -> String {
    format!(
        "[function.{name}]\nsource = {}\n{extra}\n[[trigger.http]]\nroute = \"/{name}\"\nfunction = \"{name}\"\n",
        toml_path(path)
    )
}

/// The lines of `function`'s log (`GET /v1/functions/{name}/logs`).
async fn function_log(kumo: &Kumo, function: &str) -> Vec<Value> {
    let response = kumo
        .admin(Method::GET, &format!("/v1/functions/{function}/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answer: Value = response.json().await.unwrap();
    answer["lines"].as_array_mut().unwrap().split_off(0)
}

/// The lines of `function`'s log, once the REPORT line of `request_id` is
/// among them (the metering writer stores it within about 100 ms).
async fn log_with_report(kumo: &Kumo, function: &str, request_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = function_log(kumo, function).await;
        let reported = lines
            .iter()
            .any(|line| line["stream"] == "report" && line["request_id"] == request_id);
        if reported {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no REPORT line for {request_id} in {function}'s log: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The texts of `request_id`'s lines of `stream`.
fn texts<'a>(lines: &'a [Value], request_id: &str, stream: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|line| line["request_id"] == request_id && line["stream"] == stream)
        .map(|line| line["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_invocation_has_one_failure_line_a_warn_line_and_a_report_status() {
    let manifest = [
        function("trap", &test_guest("trap"), ""),
        function(
            "forever",
            &test_guest("forever"),
            &format!("timeout_ms = {FOREVER_TIMEOUT_MS}"),
        ),
        function("membomb", &test_guest("membomb"), "memory_mb = 32"),
        function(
            "small",
            &example("hello"),
            &format!("max_request_bytes = {SMALL_MAX_REQUEST_BYTES}"),
        ),
    ]
    .concat();
    let kumo = Kumo::up_with_env(&manifest, &[("KUMO_LOG", "warn")]);

    // (function, status, what its failure line says, how its REPORT line
    // ends); each is sent a 100-byte body.
    let cases = [
        (
            "trap",
            500,
            "the function trapped: panicked at ".to_string(),
            "\tStatus: error\tError Type: Runtime.ExitError",
        ),
        (
            "forever",
            504,
            format!("did not finish within its timeout of {FOREVER_TIMEOUT_MS} ms"),
            "\tStatus: timeout",
        ),
        (
            "membomb",
            500,
            "exceeded its memory limit of 32 MiB".to_string(),
            "\tStatus: error\tError Type: Runtime.OutOfMemory",
        ),
        (
            "small",
            413,
            format!("larger than the function's limit of {SMALL_MAX_REQUEST_BYTES} bytes"),
            "\tStatus: rejected",
        ),
    ];
    for (name, status, failure, report_end) in cases {
        let response = client()
            .post(kumo.url(&format!("/{name}")))
            .body(vec![b'x'; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let request_id = response.headers()["x-kumo-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("panicked") && !body.contains("deliberate panic"),
            "the answer of {name} shows the guest's panic: {body}"
        );

        let lines = log_with_report(&kumo, name, &request_id).await;
        let failures = texts(&lines, &request_id, "failure");
        assert_eq!(failures.len(), 1, "{name}: {lines:#?}");
        assert!(failures[0].contains(&failure), "{name}: {}", failures[0]);
        let reports = texts(&lines, &request_id, "report");
        assert!(
            reports.len() == 1 && reports[0].ends_with(report_end),
            "{name}: {reports:?}"
        );

        // The server's log has it at WARN, with the invocation's fields,
        // although KUMO_LOG=warn hides every INFO line.
        let request_field = format!("request_id={request_id}");
        let function_field = format!("function={name}");
        assert!(
            kumo.wait_for_log_line(&[
                "WARN",
                "the invocation failed",
                &failure,
                &function_field,
                "version=1",
                &request_field,
            ]),
            "no WARN line for {name}:\n{}",
            kumo.logs()
        );
    }

    // The panic is one line, the failure line, not split over stderr
    // lines, and only in the logs.
    let lines = function_log(&kumo, "trap").await;
    let panic_lines: Vec<&Value> = lines
        .iter()
        .filter(|line| line["text"].as_str().unwrap().contains("panicked"))
        .collect();
    assert_eq!(panic_lines.len(), 1, "{panic_lines:#?}");
    assert_eq!(panic_lines[0]["stream"], "failure");
    assert!(
        panic_lines[0]["text"]
            .as_str()
            .unwrap()
            .ends_with(": trap guest: deliberate panic"),
        "{}",
        panic_lines[0]
    );
    let server_log = kumo.logs();
    assert_eq!(
        server_log.matches("trap guest: deliberate panic").count(),
        1,
        "{server_log}"
    );
    let printed = kumo.cli(&["logs", "trap"]);
    assert!(printed.status.success(), "{printed:#?}");
    let failure_lines: Vec<&str> = printed
        .stdout
        .lines()
        .filter(|line| line.contains("\tfailure\t"))
        .collect();
    assert!(
        failure_lines.len() == 1 && failure_lines[0].ends_with(": trap guest: deliberate panic"),
        "{}",
        printed.stdout
    );
}
