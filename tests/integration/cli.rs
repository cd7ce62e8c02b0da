//! The `kumo` client verbs run as processes against a real `kumo server`.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::{Exited, Kumo, client, example, free_port_base, test_guest, toml_path};
use crate::storage::{ACCESS_KEY, SECRET_KEY, STORAGE_ENV, md5_hex, s3_ok, storage_endpoint};

fn manifest(memory_mb: u64) -> String {
    format!(
        "[function.hello]\nsource = {}\nmemory_mb = {memory_mb}\n\n[function.echo]\nsource = {}\n\n\
         [[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n\n\
         [[trigger.http]]\nroute = \"/echo/...\"\nfunction = \"echo\"\n\n\
         [[trigger.timer]]\nname = \"yearly\"\ncron = \"0 0 0 1 1 *\"\nfunction = \"echo\"\n",
        toml_path(&example("hello")),
        toml_path(&example("echo")),
    )
}

#[tokio::test]
async fn deploy_reports_new_and_unchanged_functions_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let path = dir.path().join("kumo.toml");
    std::fs::write(&path, manifest(128)).unwrap();
    let path = path.display().to_string();

    let first = kumo.cli(&["deploy", "-f", &path]);
    assert!(first.status.success(), "{first:#?}");
    assert!(
        first.stdout.contains("hello: deployed version 1"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("echo: deployed version 1"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("route /hello -> hello: created"),
        "{}",
        first.stdout
    );
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.text().await.unwrap(), "Hello from Kumo");

    let second = kumo.cli(&["deploy", "-f", &path]);
    assert!(second.status.success(), "{second:#?}");
    assert!(
        second.stdout.contains("hello: unchanged (version 1)"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("route /hello -> hello: unchanged"),
        "{}",
        second.stdout
    );

    std::fs::write(&path, manifest(256)).unwrap();
    let third = kumo.cli(&["deploy", "-f", &path, "--output", "json"]);
    assert!(third.status.success(), "{third:#?}");
    let report: Value = serde_json::from_str(&third.stdout).unwrap();
    let statuses: Vec<(String, String)> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("echo".into(), "unchanged".into()),
            ("hello".into(), "deployed".into())
        ]
    );
}

#[tokio::test]
async fn functions_alias_invoke_and_triggers_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let path = dir.path().join("kumo.toml");
    std::fs::write(&path, manifest(128)).unwrap();
    let path_text = path.display().to_string();
    assert!(kumo.cli(&["deploy", "-f", &path_text]).status.success());
    std::fs::write(&path, manifest(256)).unwrap();
    assert!(kumo.cli(&["deploy", "-f", &path_text]).status.success());

    let list = kumo.cli(&["functions", "list"]);
    assert!(list.status.success(), "{list:#?}");
    let header = list.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("LATEST"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("hello") && l.contains(" 2 ")),
        "{}",
        list.stdout
    );
    let json = kumo.cli(&["functions", "list", "-o", "json"]);
    let parsed: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["functions"][1]["name"], "hello");

    let alias = kumo.cli(&["alias", "set", "hello", "live", "1", "--weight", "2=10"]);
    assert!(alias.status.success(), "{alias:#?}");
    assert_eq!(alias.stdout.trim(), "hello:live -> 1 (90%), 2 (10%)");
    let show = kumo.cli(&["functions", "show", "hello"]);
    assert!(show.status.success(), "{show:#?}");
    assert!(show.stdout.contains("VERSION"), "{}", show.stdout);
    // Each version says what changed from the one before: the second
    // deploy changed only memory_mb.
    let version_row = |number: &str| {
        show.stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(number))
            .unwrap_or_else(|| panic!("no row for version {number}:\n{}", show.stdout))
    };
    assert!(
        version_row("1").ends_with("first version"),
        "{}",
        show.stdout
    );
    assert!(
        version_row("2").ends_with("memory_mb 128 -> 256"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("live -> 1 (90%), 2 (10%)"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("http /hello -> hello"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("version 2: 0 idle, 0 busy"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("version 1: 0 idle"), "{}", show.stdout);
    let bad_weight = kumo.cli(&["alias", "set", "hello", "live", "1", "--weight", "ten"]);
    assert!(!bad_weight.status.success());
    assert!(
        bad_weight.stderr.contains("is not VERSION=N"),
        "{}",
        bad_weight.stderr
    );
    let missing_version = kumo.cli(&["alias", "set", "hello", "live", "9"]);
    assert!(!missing_version.status.success());
    assert_eq!(
        missing_version.stderr.lines().count(),
        1,
        "{}",
        missing_version.stderr
    );
    assert!(
        missing_version.stderr.contains("has no version 9;"),
        "{}",
        missing_version.stderr
    );
    assert!(
        missing_version.stderr.contains("(HTTP 404, not_found)"),
        "{}",
        missing_version.stderr
    );

    let invoked = kumo.cli(&[
        "invoke",
        "echo",
        "--data",
        "hello body",
        "--header",
        "x-from: cli",
    ]);
    assert!(invoked.status.success(), "{invoked:#?}");
    assert!(
        invoked.stdout.contains(r#""body_length":10"#),
        "{}",
        invoked.stdout
    );
    assert!(invoked.stdout.contains("x-from"), "{}", invoked.stdout);
    let data_file = dir.path().join("body.txt");
    std::fs::write(&data_file, "from a file").unwrap();
    let from_file = kumo.cli(&[
        "invoke",
        "echo",
        "--data-file",
        &data_file.display().to_string(),
        "-o",
        "json",
    ]);
    let answer: Value = serde_json::from_str(&from_file.stdout).unwrap();
    assert_eq!(answer["status"], 200);
    assert!(
        answer["body"]
            .as_str()
            .unwrap()
            .contains(r#""body_length":11"#)
    );
    let old = kumo.cli(&["invoke", "hello:1"]);
    assert_eq!(old.stdout, "Hello from Kumo\n");
    let unknown = kumo.cli(&["invoke", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        unknown.stderr.contains("no function `nope`"),
        "{}",
        unknown.stderr
    );

    let canary = kumo.cli(&["alias", "set", "hello", "canary", "2", "-o", "json"]);
    let canary: Value = serde_json::from_str(&canary.stdout).unwrap();
    assert_eq!(canary["versions"][0]["version"], 2);
    let deleted = kumo.cli(&["alias", "delete", "hello", "canary"]);
    assert!(deleted.status.success(), "{deleted:#?}");
    assert_eq!(deleted.stdout.trim(), "deleted alias hello:canary");

    let triggers = kumo.cli(&["triggers", "list"]);
    assert!(triggers.status.success());
    assert!(
        triggers
            .stdout
            .lines()
            .any(|l| l.contains("http") && l.contains("/echo/...") && l.ends_with("echo")),
        "{}",
        triggers.stdout
    );

    let refused = kumo.cli(&["functions", "delete", "hello"]);
    assert!(!refused.status.success());
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("still the target of 1 trigger"),
        "{}",
        refused.stderr
    );
    let forced = kumo.cli(&["functions", "delete", "hello", "--force"]);
    assert!(forced.status.success(), "{forced:#?}");
    assert!(
        forced
            .stdout
            .contains("deleted function hello (and 1 trigger(s))")
    );
    assert_eq!(
        client()
            .get(kumo.url("/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn client_errors_are_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let wrong_token = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["functions", "list"])
        .env("KUMO_SERVER", kumo.admin_base())
        .env("KUMO_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!wrong_token.status.success());
    let stderr = String::from_utf8_lossy(&wrong_token.stderr);
    assert!(stderr.starts_with("error: wrong admin token"), "{stderr}");
    // The token is found in the data directory when the variable is unset.
    let from_data_dir = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["functions", "list", "--data-dir"])
        .arg(kumo.data_dir())
        .env("KUMO_SERVER", kumo.admin_base())
        .env_remove("KUMO_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(from_data_dir.status.success(), "{from_data_dir:#?}");
    // `--server` is the older name of `--admin-url`.
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["triggers", "list", "--server", "http://127.0.0.1:9"])
        .env("KUMO_ADMIN_TOKEN", "x")
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("no kumo server is running at http://127.0.0.1:9;"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Runs `kumo ARGS` in `folder` the way a person types it there: no
/// `KUMO_*` variable but those in `env`.
fn kumo_in(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Exited {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kumo"));
    command.args(args).current_dir(folder).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("KUMO_") {
            command.env_remove(name);
        }
    }
    command.env("KUMO_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the kumo binary runs");
    Exited {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn two_servers_run_side_by_side_with_port_base_and_clients_find_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (first_folder, second_folder) = (dir.path().join("first"), dir.path().join("second"));
    let (first_base, second_base) = (free_port_base(), free_port_base());
    let first = Kumo::server_on_port_base(&first_folder.join(".kumo"), first_base);
    let second = Kumo::server_on_port_base(&second_folder.join(".kumo"), second_base);
    for (kumo, base) in [(&first, first_base), (&second, second_base)] {
        assert_eq!(kumo.addr.port(), base);
        assert_eq!(kumo.admin_addr.port(), base + 1);
        let storage = format!("kumo: storage http://127.0.0.1:{} ", base + 2);
        assert!(kumo.stdout().contains(&storage), "{}", kumo.stdout());
    }
    // In each folder a client verb reaches that folder's server with
    // neither --admin-url nor a token given: both are in ./.kumo.
    std::fs::write(second_folder.join("kumo.toml"), manifest(128)).unwrap();
    let deployed = kumo_in(&second_folder, &["deploy"], &[]);
    assert!(deployed.status.success(), "{deployed:#?}");
    let second_list = kumo_in(&second_folder, &["functions", "list"], &[]);
    assert!(second_list.status.success(), "{second_list:#?}");
    assert!(
        second_list.stdout.lines().any(|l| l.starts_with("hello")),
        "{}",
        second_list.stdout
    );
    let first_list = kumo_in(&first_folder, &["functions", "list"], &[]);
    assert!(first_list.status.success(), "{first_list:#?}");
    assert_eq!(
        first_list.stdout.lines().count(),
        1,
        "{}",
        first_list.stdout
    );
}

#[test]
fn every_taken_port_is_named_in_one_error_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_base();
    let _gateway = std::net::TcpListener::bind(("127.0.0.1", base)).unwrap();
    let _storage = std::net::TcpListener::bind(("127.0.0.1", base + 2)).unwrap();
    // The manifest does not exist either: the ports are checked first.
    let base_text = base.to_string();
    let exited = kumo_in(
        dir.path(),
        &["up", "-f", "missing.toml", "--port-base", &base_text],
        &[],
    );
    assert!(!exited.status.success(), "{exited:#?}");
    let stderr = &exited.stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{base} (the gateway, --listen: in use)")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:{} (storage, --storage-listen: in use)",
            base + 2
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("127.0.0.1:{}", base + 1)),
        "{stderr}"
    );
    assert!(stderr.contains("another --port-base"), "{stderr}");
    assert!(!stderr.contains("manifest"), "{stderr}");
    assert!(
        !dir.path().join(".kumo").exists(),
        "the data directory was created before the ports were checked"
    );
}

#[test]
fn with_no_server_running_the_client_says_so_before_asking_for_a_token() {
    // Nothing listens on a free port; the folder has no .kumo (no token).
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port_base());
    let exited = kumo_in(dir.path(), &["functions", "list", "--admin-url", &url], &[]);
    assert!(!exited.status.success(), "{exited:#?}");
    assert_eq!(exited.stdout, "");
    assert_eq!(exited.stderr.lines().count(), 1, "{}", exited.stderr);
    assert!(
        exited
            .stderr
            .starts_with(&format!("error: no kumo server is running at {url};")),
        "{}",
        exited.stderr
    );
    assert!(exited.stderr.contains("kumo up"), "{}", exited.stderr);
    assert!(!exited.stderr.contains("token"), "{}", exited.stderr);

    // Without --admin-url, the address a server wrote into ./.kumo is
    // tried, and the message says where it came from.
    let data_dir = dir.path().join(".kumo");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("admin-url"), format!("{url}\n")).unwrap();
    let exited = kumo_in(dir.path(), &["triggers", "list"], &[]);
    assert!(!exited.status.success(), "{exited:#?}");
    let url_file = std::fs::canonicalize(&data_dir).unwrap().join("admin-url");
    assert!(
        exited.stderr.starts_with(&format!(
            "error: no kumo server is running at {url} (the address in {}",
            url_file.display()
        )),
        "{}",
        exited.stderr
    );
}

#[tokio::test]
async fn a_refused_token_is_named_with_the_server_it_was_sent_to() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let server = kumo.admin_base();
    // Another project's folder, with its own .kumo and its own token.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join(".kumo")).unwrap();
    std::fs::write(other.join(".kumo/admin-token"), "kumo_someone_elses\n").unwrap();
    let token_file = std::fs::canonicalize(&other)
        .unwrap()
        .join(".kumo/admin-token");
    let from_file = kumo_in(&other, &["functions", "list", "--admin-url", &server], &[]);
    assert!(!from_file.status.success(), "{from_file:#?}");
    assert_eq!(from_file.stderr.lines().count(), 1, "{}", from_file.stderr);
    assert!(
        from_file.stderr.starts_with(&format!(
            "error: wrong admin token: the kumo server at {server} refused the token read from {};",
            token_file.display()
        )),
        "{}",
        from_file.stderr
    );
    let from_env = kumo_in(
        &other,
        &["functions", "list", "--admin-url", &server],
        &[("KUMO_ADMIN_TOKEN", "wrong")],
    );
    assert!(
        from_env.stderr.starts_with(&format!(
            "error: wrong admin token: the kumo server at {server} refused the token in KUMO_ADMIN_TOKEN;"
        )),
        "{}",
        from_env.stderr
    );
    // No token anywhere: said once the server answered.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = kumo_in(&empty, &["functions", "list", "--admin-url", &server], &[]);
    let expected_path = std::fs::canonicalize(&empty)
        .unwrap()
        .join(".kumo/admin-token");
    assert!(
        missing.stderr.starts_with(&format!(
            "error: no admin token: KUMO_ADMIN_TOKEN is not set and {} does not exist;",
            expected_path.display()
        )),
        "{}",
        missing.stderr
    );
}

#[test]
fn an_invoke_error_is_one_line_on_stderr_and_nothing_on_stdout() {
    let kumo = Kumo::up(&format!(
        "[function.sink]\nsource = {}\n",
        toml_path(&test_guest("eventsink"))
    ));
    // Kumo's own error (an unknown function), as text and as JSON.
    for args in [&["invoke", "nope"][..], &["invoke", "nope", "-o", "json"]] {
        let unknown = kumo.cli(args);
        assert!(!unknown.status.success(), "{unknown:#?}");
        assert_eq!(unknown.stdout, "", "{args:?}");
        assert_eq!(unknown.stderr.lines().count(), 1, "{}", unknown.stderr);
        assert!(
            unknown.stderr.contains("no function `nope`"),
            "{}",
            unknown.stderr
        );
    }
    // The function's own non-2xx answer: eventsink answers 400 to a
    // request that is no event.
    let refused = kumo.cli(&["invoke", "sink", "--data", "not an event"]);
    assert!(!refused.status.success(), "{refused:#?}");
    assert_eq!(refused.stdout, "");
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the function answered HTTP 400"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("not an event"),
        "{}",
        refused.stderr
    );
}

/// What the `eventsink` guest logged about each event it received, past
/// its id (which differs per event): attempt, hops, type, subject and the
/// document's summary.
fn sink_receipts(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|line| {
            let rest = &line[line.find("eventsink id=")?..];
            let rest = &rest[rest.find(" attempt=")? + 1..];
            // The host appends its own fields after the guest's message.
            Some(
                rest.split_once(" stream=")
                    .map_or(rest, |(seen, _)| seen)
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn invoke_event_sends_what_an_upload_sends() {
    let manifest = format!(
        "[function.sink]\nsource = {}\n\n[[trigger.storage]]\nname = \"thumbs\"\nbucket = \"photos\"\n\
         events = [\"ObjectCreated:*\"]\nprefix = \"in/\"\nformat = \"s3\"\nfunction = \"sink\"\n",
        toml_path(&test_guest("eventsink"))
    );
    let kumo = Kumo::up_with_env(&manifest, &STORAGE_ENV);
    let s3 = storage_endpoint(&kumo, ACCESS_KEY, SECRET_KEY);
    s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "photos", "Key": "in/cat.png", "Body": {"text": "meow"}}),
    );
    assert!(
        kumo.wait_for_log_count("eventsink id=", 1),
        "the upload's event did not arrive:\n{}",
        kumo.logs()
    );
    let sample = kumo.cli(&[
        "invoke",
        "sink",
        "--event",
        "s3-put",
        "--bucket",
        "photos",
        "--key",
        "in/cat.png",
    ]);
    assert!(sample.status.success(), "{sample:#?}");
    assert_eq!(sample.stdout, "ok\n");
    assert!(
        kumo.wait_for_log_count("eventsink id=", 2),
        "the sample event did not arrive:\n{}",
        kumo.logs()
    );
    let receipts = sink_receipts(&kumo.logs());
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    let expected = format!(
        "attempt=1 hops=0 type=kumo.storage.ObjectCreated:PutObject subject=in/cat.png summary=ObjectCreated:Put:photos/in/cat.png:4:{}",
        md5_hex(b"meow")
    );
    assert_eq!(receipts[0], expected, "the upload");
    assert_eq!(receipts[1], expected, "the sample");

    // A timer event, from a function without a timer trigger: named
    // `sample`, with no payload.
    let timer = kumo.cli(&["invoke", "sink", "--event", "timer"]);
    assert!(timer.status.success(), "{timer:#?}");
    assert!(
        kumo.wait_for_log_count("eventsink id=", 3),
        "the timer event did not arrive:\n{}",
        kumo.logs()
    );
    let receipts = sink_receipts(&kumo.logs());
    assert!(
        receipts[2]
            .starts_with("attempt=1 hops=0 type=kumo.timer subject=sample summary=timer:sample:"),
        "{receipts:?}"
    );
    // A file event names a watched folder, and sink watches none.
    let file = kumo.cli(&["invoke", "sink", "--event", "file"]);
    assert!(!file.status.success(), "{file:#?}");
    assert_eq!(file.stdout, "");
    assert!(
        file.stderr.contains("function `sink` has no watch trigger"),
        "{}",
        file.stderr
    );
}
