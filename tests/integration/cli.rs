//! The `kumo` client verbs run as processes against a real `kumo server`.

use serde_json::Value;

use crate::harness::{Kumo, client, example, toml_path};

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
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args(["triggers", "list", "--server", "http://127.0.0.1:9"])
        .env("KUMO_ADMIN_TOKEN", "x")
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("cannot reach the kumo server at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
