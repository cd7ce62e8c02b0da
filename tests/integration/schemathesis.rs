//! The admin API against its own OpenAPI document: schemathesis (installed
//! with pip when missing, pinned) generates requests from
//! `/v1/openapi.json` and runs every one of its checks (the default: no
//! 5xx, documented statuses, content types and headers, response schemas,
//! schema-invalid data refused, schema-valid data accepted, auth enforced,
//! deleted resources gone, ...) against a server serving the examples, with
//! the admin token. Any failure fails the test, with schemathesis's report.
//!
//! What it cannot judge is set out, with reasons, in `schemathesis.toml`
//! beside this file: the statuses of data that is valid to JSON Schema but
//! not to Kumo (a component that is no wasi:http component, a cron
//! expression), and invoking, whose answer is the function's own. No
//! operation is excluded: the deletes run too, so an example may be
//! deleted mid-run and later calls then get 404s, which are documented.
//!
//! `KUMO_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default
//! 10) and `KUMO_SCHEMATHESIS_SEED` the seed (default fixed, so a failure
//! reproduces); `bench/fuzz.sh` runs it longer.

use std::process::{Command, Stdio};

use crate::harness::{self, Kumo};

/// The schemathesis release the suite is written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

fn ensure_schemathesis() {
    let wanted = SCHEMATHESIS.trim_start_matches("schemathesis==");
    harness::ensure_python_package(
        &format!("import importlib.metadata as m; assert m.version('schemathesis') == '{wanted}'"),
        SCHEMATHESIS,
    );
}

fn examples_manifest() -> String {
    let path = |name: &str| harness::toml_path(&harness::example(name));
    format!(
        r#"[app]
name = "schemathesis"

[function.hello]
source = {hello}

[function.echo]
source = {echo}

[function.plain]
source = {plain}

[function.thumbnail]
source = {thumbnail}
memory_mb = 256
files = [{{ bucket = "photos", path = "/in" }}, {{ bucket = "thumbnails", path = "/out", read_only = false }}]

[[trigger.http]]
route = "/hello"
function = "hello"

[[trigger.http]]
route = "/echo/..."
function = "echo"

[[trigger.storage]]
bucket = "photos"
events = ["ObjectCreated:*"]
prefix = "in/"
suffix = ".png"
function = "thumbnail"

[[trigger.timer]]
cron = "0 0 1 1 *"
function = "hello"
"#,
        hello = path("hello"),
        echo = path("echo"),
        plain = path("plain"),
        thumbnail = path("thumbnail"),
    )
}

#[test]
fn the_admin_api_does_what_its_openapi_document_says() {
    ensure_schemathesis();
    let kumo = Kumo::up(&examples_manifest());
    let examples = std::env::var("KUMO_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".into());
    let seed = std::env::var("KUMO_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261206".into());
    let config = harness::repo_root().join("tests/integration/schemathesis.toml");
    let report = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(kumo.admin_url("/v1/openapi.json"))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", kumo.token()),
        ])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "10"])
        .args(["--no-color", "--report-dir"])
        .arg(report.path())
        .current_dir(report.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems (reproduce with KUMO_SCHEMATHESIS_SEED={seed}):\n{stdout}\n{}\n--- kumo's log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        kumo.logs()
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.contains("generated"))
        .unwrap_or("");
    eprintln!("schemathesis: {}", summary.trim());
}
