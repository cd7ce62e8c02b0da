//! Metering end to end: every answered request leaves exactly one record
//! with the right outcome, reports sum the records, REPORT lines are
//! logged (on stderr: these servers run with `--report-lines`; the
//! function log's copy is tested in `metering_api`), peak memory is
//! measured, and SIGTERM under load loses nothing.

use std::collections::BTreeMap;
use std::path::Path;

use kumo::metering::{
    BillingQuery, GroupBy, InvocationRecord, Outcome, Prices, billing_report, recent_invocations,
};

use crate::harness::{Kumo, Start, client, example, test_guest, toml_path};

fn start(dir: &Path, manifest: &str) -> Kumo {
    let manifest_path = dir.join("kumo.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    Kumo::start(&Start {
        manifest: &manifest_path,
        data_dir: &dir.join("data"),
        extra_args: &["--report-lines"],
        env: &[],
    })
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
}

fn function(name: &str, path: &Path, extra: &str) -> String {
    format!(
        "[function.{name}]\nsource = {}\n{extra}\n[[trigger.http]]\nroute = \"/{name}\"\nfunction = \"{name}\"\n",
        toml_path(path)
    )
}

/// Stops kumo with SIGTERM and returns its log.
fn terminate(kumo: Kumo) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &kumo.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, logs) = kumo.wait_with_logs();
    assert!(status.success(), "kumo failed to stop cleanly:\n{logs}");
    logs
}

async fn records(dir: &Path) -> (kumo::database::Database, Vec<InvocationRecord>) {
    let database = kumo::database::open(
        &dir.join("data"),
        &kumo::database::DatabaseLocation::DataDirectory,
    )
    .await
    .unwrap();
    let records = recent_invocations(&database, None, 100_000).await.unwrap();
    (database, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_leaves_one_record_with_its_outcome_and_a_report_line() {
    let dir = tempfile::tempdir().unwrap();
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
    let kumo = start(dir.path(), &manifest);
    let client = client();

    // (path, expected outcome) for the requests answered one by one.
    let mut sent = vec![("/hello", Outcome::Ok); 5];
    sent.extend([("/trap", Outcome::Trap); 2]);
    sent.push(("/forever", Outcome::Timeout));
    let mut expected: BTreeMap<String, Outcome> = BTreeMap::new();
    for (path, outcome) in sent {
        let response = client.get(kumo.url(path)).send().await.unwrap();
        let id = response.headers()["x-kumo-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        response.bytes().await.unwrap();
        expected.insert(id, outcome);
    }
    // Two slow requests for one instance: one is served, the other waits
    // past its queue timeout and is answered 429.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let request = client.get(kumo.url("/busy?sleep_ms=1000")).send();
            tokio::spawn(request)
        })
        .collect();
    let mut statuses = Vec::new();
    for request in slow {
        let response = request.await.unwrap().unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-kumo-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        response.bytes().await.unwrap();
        statuses.push(status);
        expected.insert(
            id,
            if status == 429 {
                Outcome::Rejected
            } else {
                Outcome::Ok
            },
        );
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429]);

    let logs = terminate(kumo);
    let (database, records) = records(dir.path()).await;
    let found: BTreeMap<String, Outcome> = records
        .iter()
        .map(|record| (record.request_id.to_string(), record.outcome))
        .collect();
    assert_eq!(records.len(), expected.len(), "one record per answer");
    assert_eq!(found, expected);

    for record in &records {
        assert!(
            logs.contains(&format!("REPORT RequestId: {}\t", record.request_id)),
            "no REPORT line for {record:?}"
        );
        if record.outcome != Outcome::Rejected {
            assert!(record.billed_ms >= 1, "{record:?}");
        }
    }
    let hello_cold = records
        .iter()
        .find(|record| &*record.function == "hello" && record.cold_start)
        .expect("the first hello was a cold start");
    assert!(hello_cold.init_duration_us.is_some());
    assert_eq!(hello_cold.memory_mb, 64);
    assert!(logs.contains(&format!(
        "REPORT RequestId: {}\tDuration: ",
        hello_cold.request_id
    )));
    let report_line = logs
        .lines()
        .find(|line| line.contains(&*hello_cold.request_id) && line.starts_with("REPORT"))
        .unwrap();
    assert!(
        report_line.contains("\tMemory Size: 64 MB\t"),
        "{report_line}"
    );
    assert!(report_line.contains("\tInit Duration: "), "{report_line}");
    let rejected = records
        .iter()
        .find(|record| record.outcome == Outcome::Rejected)
        .unwrap();
    assert_eq!((rejected.billed_ms, rejected.duration_us), (0, 0));

    // The report's sums are the records' sums.
    let report = billing_report(
        &database,
        &BillingQuery {
            group_by: GroupBy::Function,
            ..BillingQuery::default()
        },
        &Prices::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.total.invocations, records.len() as u64);
    assert_eq!(
        report.total.billed_ms,
        records.iter().map(|record| record.billed_ms).sum::<u64>()
    );
    assert_eq!(
        report.total.mb_ms,
        records
            .iter()
            .map(|record| record.memory_mb * record.billed_ms)
            .sum::<u64>()
    );
    assert_eq!(report.total.errors, 3);
    assert_eq!(report.total.rejected, 1);
    let cold_starts = records.iter().filter(|record| record.cold_start).count() as u64;
    assert_eq!(report.total.cold_starts, cold_starts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_grows_its_memory_reports_that_peak_within_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = start(
        dir.path(),
        &function("grow", &test_guest("memgrow"), "memory_mb = 64"),
    );
    let response = client()
        .get(kumo.url("/grow?pages=160"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let (before, after) = (
        answer["before_pages"].as_u64().unwrap(),
        answer["after_pages"].as_u64().unwrap(),
    );
    assert_eq!(after - before, 160, "{answer}");
    terminate(kumo);
    let (_database, records) = records(dir.path()).await;
    assert_eq!(records.len(), 1);
    let guest_bytes = after * 65_536;
    let peak = records[0].peak_memory_bytes;
    assert!(
        peak.abs_diff(guest_bytes) <= 65_536,
        "peak {peak} bytes, the guest's memory {guest_bytes} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = start(dir.path(), &function("hello", &example("hello"), ""));
    // A new connection per request: a request either reaches the server
    // before it stops accepting, and is answered, or is refused.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = kumo.url("/hello");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                loop {
                    match client.get(&url).send().await {
                        Ok(response) => {
                            let id = response.headers()["x-kumo-request-id"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            if response.bytes().await.is_ok() {
                                answered.push(id);
                            }
                        }
                        Err(_) => return answered,
                    }
                }
            })
        })
        .collect();
    // Let load build up: wait (bounded) for a few hundred answers' REPORT
    // lines.
    assert!(
        kumo.wait_for_log_count("REPORT RequestId:", 300),
        "{}",
        kumo.logs()
    );
    terminate(kumo);
    let mut answered = Vec::new();
    for worker in workers {
        answered.extend(worker.await.unwrap());
    }
    let (_database, records) = records(dir.path()).await;
    let mut stored: Vec<String> = records
        .into_iter()
        .map(|record| record.request_id.to_string())
        .collect();
    answered.sort();
    stored.sort();
    assert!(answered.len() >= 300);
    assert_eq!(stored.len(), answered.len(), "records = answered requests");
    assert_eq!(stored, answered);
}
