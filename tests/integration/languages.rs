//! Functions in Python and JavaScript: the SDKs' own tests, the examples
//! built with componentize-py and componentize-js and invoked over HTTP
//! and by uploads, `kumo new` projects in all three languages served by
//! `kumo up --build`, and build errors shown as the tools print them.
//!
//! The toolchains are installed when missing (componentize-py with pip,
//! componentize-js with `npm ci` from `sdk/js/package-lock.json`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{self, Kumo, Start};
use crate::storage::{self, STORAGE_ENV, storage_endpoint};

/// How long an uploaded file may take to come out as a written object
/// (one event delivery, a cold start of a large component on a busy machine).
const EVENT_DEADLINE: Duration = Duration::from_secs(120);

/// How long a rebuild under `kumo dev` may take.
const REBUILD_DEADLINE: Duration = Duration::from_secs(300);

/// Held by each test that builds and compiles Python or JavaScript
/// components (tens of seconds of both cores each): one at a time, so the
/// rest of the suite, running beside them, keeps a core.
static ONE_HEAVY_TEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The SDKs' pure parts (answers, errors, events, logging), tested on the
/// host's Python and Node.js.
#[test]
fn the_python_and_javascript_sdks_pass_their_own_tests() {
    let root = harness::repo_root();
    let (ok, text) = run(Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(root.join("sdk/python")));
    assert!(ok, "the Python SDK's tests failed:\n{text}");
    assert!(text.contains("OK"), "{text}");
    let (ok, text) = run(Command::new("node")
        .args([
            "--import",
            "./test/register.mjs",
            "--test",
            "test/kumo.test.mjs",
        ])
        .current_dir(root.join("sdk/js")));
    assert!(ok, "the JavaScript SDK's tests failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}

/// `kumo up --build -f examples/languages.toml`: builds the four
/// components (about 10 to 30 s each) and compiles them (about as long
/// again in a debug build), so one test does everything with them.
fn serve_language_examples() -> (Kumo, tempfile::TempDir) {
    harness::ensure_componentize_py();
    harness::ensure_js_toolchain();
    let dir = tempfile::tempdir().unwrap();
    let manifest = harness::repo_root().join("examples/languages.toml");
    let kumo = Kumo::start_building(
        "up",
        &Start {
            manifest: &manifest,
            data_dir: &dir.path().join("data"),
            extra_args: &["--build"],
            env: &STORAGE_ENV,
        },
    )
    .unwrap_or_else(|exited| {
        panic!("kumo up --build of the language examples failed: {exited:#?}")
    });
    (kumo, dir)
}

async fn get(kumo: &Kumo, path: &str) -> (u16, String) {
    let response = harness::client().get(kumo.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(kumo: &Kumo, path: &str, body: &str) -> (u16, String) {
    let response = harness::client()
        .post(kumo.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls a bucket until `key` is there, and returns its text.
fn wait_for_object(endpoint: &storage::Endpoint, bucket: &str, key: &str) -> String {
    let deadline = Instant::now() + EVENT_DEADLINE;
    loop {
        let result = storage::s3_calls(
            endpoint,
            json!([{ "op": "get_object", "args": { "Bucket": bucket, "Key": key } }]),
        )
        .remove(0);
        if let Some(text) = result["ok"]["Body"]["text"].as_str() {
            return text.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{bucket}/{key} was not written within {EVENT_DEADLINE:?}: {result}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

const SALES_CSV: &str = "region,units,price\nnorth,3,2.5\nsouth,5,4\neast,2,10\n";

/// The examples, over HTTP and through uploads; and a raised Python
/// exception or a thrown JavaScript error: a 500 whose body says nothing,
/// with the traceback or stack in `kumo logs`.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_and_javascript_examples_answer_http_uploads_and_failures() {
    let _heavy = ONE_HEAVY_TEST.lock().await;
    let (kumo, _dir) = serve_language_examples();

    // Plain HTTP, twice each: the second request reuses the warm instance.
    for _ in 0..2 {
        assert_eq!(
            get(&kumo, "/python-hello").await,
            (200, "Hello from Kumo in Python\n".into())
        );
        assert_eq!(
            get(&kumo, "/js-hello/x?name=Ada").await,
            (200, "Hello from Ada in JavaScript\n".into())
        );
    }

    let (status, body) = post(&kumo, "/csv-summary", SALES_CSV).await;
    assert_eq!(status, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["rows"], 3);
    assert_eq!(summary["columns"], json!(["region", "units", "price"]));
    assert_eq!(summary["numeric"]["units"]["sum"], 10.0);
    assert_eq!(summary["numeric"]["price"]["max"], 10.0);
    assert!(summary["numeric"].get("region").is_none(), "{summary}");

    let (status, body) = post(
        &kumo,
        "/md-to-html",
        "# Title\n\nSome *stress* and `code`.\n\n- one\n- two\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<h1>Title</h1>"), "{body}");
    assert!(
        body.contains("<p>Some <em>stress</em> and <code>code</code>.</p>"),
        "{body}"
    );
    assert!(body.contains("<ul><li>one</li><li>two</li></ul>"), "{body}");
    assert_eq!(get(&kumo, "/md-to-html").await.0, 405);

    // Uploads: a CSV becomes a JSON summary (OSS event), a Markdown note an
    // HTML page (S3 event), each written through a `files` mount.
    let endpoint = storage_endpoint(&kumo, storage::ACCESS_KEY, storage::SECRET_KEY);
    storage::s3_ok(
        &endpoint,
        "put_object",
        json!({ "Bucket": "csv-uploads", "Key": "2026/sales.csv", "Body": { "text": SALES_CSV } }),
    );
    storage::s3_ok(
        &endpoint,
        "put_object",
        json!({ "Bucket": "notes", "Key": "my notes/today.md", "Body": { "text": "# Today\n\n**Ship** it.\n" } }),
    );
    let written: Value = serde_json::from_str(&wait_for_object(
        &endpoint,
        "csv-summaries",
        "2026/sales.json",
    ))
    .unwrap();
    assert_eq!(written["source"], "csv-uploads/2026/sales.csv");
    assert_eq!(written["rows"], 3);
    assert_eq!(written["numeric"]["units"]["mean"], 3.333333);
    let page = wait_for_object(&endpoint, "site", "my notes/today.html");
    assert!(page.contains("<title>Today</title>"), "{page}");
    assert!(page.contains("<p><strong>Ship</strong> it.</p>"), "{page}");

    let cases = [
        (
            "python-hello",
            "/python-hello/fail",
            [
                "Traceback (most recent call last)",
                "RuntimeError: python-hello was asked to fail",
                "app.py",
            ],
        ),
        (
            "js-hello",
            "/js-hello/fail",
            [
                "threw Error: js-hello was asked to fail",
                "js-hello was asked to fail",
                "app.js",
            ],
        ),
    ];
    for (function, path, in_logs) in cases {
        let (status, body) = get(&kumo, path).await;
        assert_eq!(
            (status, body.as_str()),
            (500, "internal server error\n"),
            "{function}"
        );
        // The instance survives its handler's failure and serves again.
        assert_eq!(
            get(&kumo, &format!("/{function}")).await.0,
            200,
            "{function}"
        );
        let printed = kumo.cli(&["logs", function]);
        assert!(printed.status.success(), "{printed:#?}");
        for needle in in_logs {
            assert!(
                printed.stdout.contains(needle),
                "{function}: no `{needle}` in its logs:\n{}",
                printed.stdout
            );
        }
    }
}

/// `kumo new NAME --lang LANG` in `parent`, then `kumo up --build` on the
/// project's manifest.
fn new_project(parent: &Path, name: &str, lang: &str) -> PathBuf {
    let (ok, text) = run(Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["new", name, "--lang", lang])
        .current_dir(parent));
    assert!(ok, "kumo new {name} --lang {lang} failed:\n{text}");
    assert!(text.contains(&format!("wrote {name}")), "{text}");
    parent.join(name)
}

fn up_building(project: &Path, verb: &str) -> Result<Kumo, harness::Exited> {
    Kumo::start_building(
        verb,
        &Start {
            manifest: &project.join("kumo.toml"),
            data_dir: &project.join(".kumo"),
            extra_args: &["--build"],
            env: &[],
        },
    )
}

async fn a_new_project_answers_over_http(lang: &str, expected: &str) {
    let _heavy = ONE_HEAVY_TEST.lock().await;
    match lang {
        "python" => harness::ensure_componentize_py(),
        "rust" => {
            // The wasm target, as for the examples.
            let _ = harness::example("hello");
        }
        _ => {}
    }
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "hi", lang);
    let kumo = up_building(&project, "up").unwrap_or_else(|exited| {
        panic!("kumo up --build of a new {lang} project failed: {exited:#?}")
    });
    let (status, body) = get(&kumo, "/hi?name=Kumo").await;
    assert_eq!((status, body.as_str()), (200, expected), "{lang}");

    // A second `kumo new` of the same name refuses, and changes nothing.
    let before = std::fs::read_to_string(project.join("kumo.toml")).unwrap();
    let (ok, text) = run(Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["new", "hi", "--lang", lang])
        .current_dir(parent.path()));
    assert!(
        !ok && text.contains("hi already exists") && text.contains("hint:"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("kumo.toml")).unwrap(),
        before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kumo_new_python_then_up_build_answers_over_http() {
    a_new_project_answers_over_http("python", "Hello, Kumo, from hi in Python!\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kumo_new_js_then_up_build_answers_over_http() {
    a_new_project_answers_over_http("js", "Hello, Kumo, from hi in JavaScript!\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kumo_new_rust_then_up_build_answers_over_http() {
    a_new_project_answers_over_http("rust", "Hello, Kumo, from hi in Rust!\n").await;
}

/// A Python syntax error under `kumo dev --build`: the tool's own message
/// is printed, the previous version keeps serving, and the fix is
/// deployed.
#[tokio::test(flavor = "multi_thread")]
async fn under_kumo_dev_a_python_syntax_error_is_shown_and_the_previous_version_keeps_serving() {
    let _heavy = ONE_HEAVY_TEST.lock().await;
    harness::ensure_componentize_py();
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "hi", "python");
    let kumo = up_building(&project, "dev")
        .unwrap_or_else(|exited| panic!("kumo dev --build failed: {exited:#?}"));
    assert!(
        kumo.wait_for_stdout("kumo dev: watching"),
        "{}",
        kumo.stdout()
    );
    let greeting = "Hello, Kumo, from hi in Python!\n";
    assert_eq!(get(&kumo, "/hi?name=Kumo").await, (200, greeting.into()));

    let app = project.join("app.py");
    let source = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        source.replace(
            "def handle(request: kumo.Request):",
            "def handle(request: kumo.Request)",
        ),
    )
    .unwrap();
    assert!(
        kumo.wait_for_stdout_within(
            "build failed, still serving the previous versions",
            REBUILD_DEADLINE
        ),
        "{}",
        kumo.stdout()
    );
    let printed = format!("{}{}", kumo.stdout(), kumo.logs());
    assert!(
        printed.contains("SyntaxError"),
        "componentize-py's error is not shown:\n{printed}"
    );
    assert!(printed.contains("app.py"), "{printed}");
    assert_eq!(get(&kumo, "/hi?name=Kumo").await, (200, greeting.into()));

    std::fs::write(&app, source.replace("Hello, {name}", "Welcome, {name}")).unwrap();
    assert!(
        kumo.wait_for_stdout_within("kumo dev: hi redeployed as version 2", REBUILD_DEADLINE),
        "{}",
        kumo.stdout()
    );
    assert_eq!(
        get(&kumo, "/hi?name=Kumo").await,
        (200, "Welcome, Kumo, from hi in Python!\n".into())
    );
}

/// A missing JavaScript import under `kumo up --build`: componentize-js's
/// message is shown and kumo does not start.
#[test]
fn a_missing_javascript_import_fails_the_build_with_the_tools_message() {
    let _heavy = ONE_HEAVY_TEST.blocking_lock();
    let parent = tempfile::tempdir().unwrap();
    let project = new_project(parent.path(), "hi", "js");
    let app = project.join("app.js");
    let source = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        format!("import {{ shout }} from \"./missing.js\";\n{source}"),
    )
    .unwrap();
    let exited = match up_building(&project, "up") {
        Ok(_) => panic!("kumo served a project whose build fails"),
        Err(exited) => exited,
    };
    assert!(!exited.status.success());
    let printed = format!("{}{}", exited.stdout, exited.stderr);
    assert!(
        printed.contains("missing.js"),
        "componentize-js's error is not shown:\n{printed}"
    );
    assert!(printed.contains("the build of hi failed"), "{printed}");
}
