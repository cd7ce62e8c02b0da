//! Aliases and versions as route targets: written in the manifest, set with
//! `kumo triggers create/update/delete`, and kept by a later plain deploy
//! that names only the function.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::call;
use crate::harness::{Exited, Kumo, Start, client, test_guest, toml_path};

/// A manifest of one function `app` (the `envdump` guest, answering its
/// `APP_VERSION`), and `routes` as `(route, target)`.
fn manifest(app_version: u32, routes: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[function.app]\nsource = {}\nenv = {{ APP_VERSION = \"{app_version}\" }}\n",
        toml_path(&test_guest("envdump"))
    );
    for (route, target) in routes {
        text.push_str(&format!(
            "\n[[trigger.http]]\nroute = \"{route}\"\nfunction = \"{target}\"\n"
        ));
    }
    text
}

/// Writes `text` to `path` and runs `kumo deploy -f path`; it must succeed.
fn deploy(kumo: &Kumo, path: &Path, text: &str) -> Exited {
    std::fs::write(path, text).unwrap();
    let deployed = kumo.cli(&["deploy", "-f", &path.display().to_string()]);
    assert!(deployed.status.success(), "{deployed:#?}");
    deployed
}

/// The `APP_VERSION` of the version that answered `path`, or the status.
async fn served_by(kumo: &Kumo, path: &str) -> String {
    let response = client().get(kumo.url(path)).send().await.unwrap();
    let status = response.status();
    if status != 200 {
        return format!("HTTP {}", status.as_u16());
    }
    let body: Value = response.json().await.unwrap();
    body["APP_VERSION"].as_str().unwrap_or("?").to_string()
}

/// A server with versions 1, 2 and 3 of `app` (each answering its number),
/// `app:live` on version 1, and the manifest's path.
async fn three_versions_and_an_alias(dir: &Path) -> (Kumo, std::path::PathBuf) {
    let kumo = Kumo::server(&dir.join("data"));
    let path = dir.join("kumo.toml");
    for version in 1..=3 {
        let deployed = deploy(&kumo, &path, &manifest(version, &[]));
        assert!(
            deployed
                .stdout
                .contains(&format!("app: deployed version {version}")),
            "{}",
            deployed.stdout
        );
    }
    let alias = kumo.cli(&["alias", "set", "app", "live", "1"]);
    assert!(alias.status.success(), "{alias:#?}");
    (kumo, path)
}

#[tokio::test]
async fn manifest_routes_to_an_alias_or_a_version_serve_that_version() {
    let dir = tempfile::tempdir().unwrap();
    let (kumo, path) = three_versions_and_an_alias(dir.path()).await;
    let routes = [
        ("/app", "app:live"),
        ("/pinned", "app:2"),
        ("/newest", "app"),
    ];
    let deployed = deploy(&kumo, &path, &manifest(3, &routes));
    for line in [
        "app: unchanged (version 3)",
        "route /app -> app:live: created",
        "route /pinned -> app:2: created",
        "route /newest -> app: created",
    ] {
        assert!(deployed.stdout.contains(line), "{}", deployed.stdout);
    }
    for (path, version) in [("/app", "1"), ("/pinned", "2"), ("/newest", "3")] {
        assert_eq!(served_by(&kumo, path).await, version, "{path}");
    }

    // `kumo up` applies the same manifest (through control, not the API)
    // on the same data directory: nothing to change, same answers.
    let data_dir = kumo.data_dir().to_path_buf();
    drop(kumo);
    let kumo = Kumo::start(&Start {
        manifest: &path,
        data_dir: &data_dir,
        extra_args: &[],
        env: &[],
    })
    .unwrap_or_else(|exited| panic!("kumo up did not start: {exited:#?}"));
    assert!(
        !kumo.stdout().contains("kumo: route"),
        "nothing changed, nothing to say:\n{}",
        kumo.stdout()
    );
    for (path, version) in [("/app", "1"), ("/pinned", "2"), ("/newest", "3")] {
        assert_eq!(served_by(&kumo, path).await, version, "{path}");
    }

    // A target naming an alias the registry does not have is refused by
    // the deploy, naming the manifest, the route and the alias.
    std::fs::write(&path, manifest(3, &[("/beta", "app:beta")])).unwrap();
    let refused = kumo.cli(&["deploy", "-f", &path.display().to_string()]);
    assert!(!refused.status.success(), "{refused:#?}");
    for words in [
        "kumo.toml: route /beta -> app:beta",
        "function `app` has no alias `beta`",
        "hint: create it with `kumo alias set app beta VERSION`",
    ] {
        assert!(refused.stderr.contains(words), "{}", refused.stderr);
    }
}

#[tokio::test]
async fn triggers_create_update_and_delete_routes_by_route_or_id() {
    let dir = tempfile::tempdir().unwrap();
    let (kumo, _) = three_versions_and_an_alias(dir.path()).await;

    let created = kumo.cli(&[
        "triggers",
        "create",
        "--route",
        "/greet/...",
        "--function",
        "app:live",
    ]);
    assert!(created.status.success(), "{created:#?}");
    assert!(
        created
            .stdout
            .starts_with("route /greet/... -> app:live: created (trg_"),
        "{}",
        created.stdout
    );
    assert_eq!(served_by(&kumo, "/greet/ada").await, "1");

    // The route is taken: the answer points at the verb that moves it.
    let again = kumo.cli(&[
        "triggers",
        "create",
        "--route",
        "/greet/...",
        "--function",
        "app",
    ]);
    assert!(!again.status.success());
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    assert!(
        again.stderr.contains(
            "hint: point it elsewhere with `kumo triggers update /greet/... --function TARGET`"
        ),
        "{}",
        again.stderr
    );

    let id = |kumo: &Kumo| {
        let list = kumo.cli(&["triggers", "list", "-o", "json"]);
        let list: Value = serde_json::from_str(&list.stdout).unwrap();
        assert_eq!(list["triggers"].as_array().unwrap().len(), 1, "{list}");
        list["triggers"][0]["id"].as_str().unwrap().to_string()
    };
    let first_id = id(&kumo);

    // Moved in place by route: same id, the new version answers at once.
    let moved = kumo.cli(&["triggers", "update", "/greet/...", "--function", "app:2"]);
    assert!(moved.status.success(), "{moved:#?}");
    assert_eq!(
        moved.stdout.trim(),
        "route /greet/... -> app:2: retargeted (was app:live)"
    );
    assert_eq!(served_by(&kumo, "/greet/ada").await, "2");
    assert_eq!(id(&kumo), first_id);

    // And by id, back to the newest version.
    let by_id = kumo.cli(&["triggers", "update", &first_id, "--function", "app"]);
    assert!(by_id.status.success(), "{by_id:#?}");
    assert_eq!(
        by_id.stdout.trim(),
        "route /greet/... -> app: retargeted (was app:2)"
    );
    assert_eq!(served_by(&kumo, "/greet/ada").await, "3");

    // Mistakes: one line each, naming the value.
    let cases: &[(&[&str], &str)] = &[
        (
            &["triggers", "update", "/nope", "--function", "app"],
            "no trigger has the route `/nope`; hint:",
        ),
        (
            &["triggers", "update", "greet", "--function", "app"],
            "`greet` is neither a route nor a trigger id",
        ),
        (
            &["triggers", "update", "/greet/...", "--function", "app:9"],
            "function `app` has no version 9",
        ),
        (
            &[
                "triggers",
                "create",
                "--route",
                "/x",
                "--function",
                "app:Live",
            ],
            "invalid target `app:Live`",
        ),
        (
            &["triggers", "create", "--route", "x", "--function", "app"],
            "invalid route `x`",
        ),
        (&["triggers", "delete", "trg_0"], "no trigger `trg_0`"),
    ];
    for (args, words) in cases {
        let failed = kumo.cli(args);
        assert!(!failed.status.success(), "{args:?}: {failed:#?}");
        assert!(failed.stderr.contains(words), "{args:?}: {}", failed.stderr);
    }

    // The API refuses to turn a route into another kind of trigger.
    let (status, answer) = call(
        &kumo,
        Method::PUT,
        &format!("/v1/triggers/{first_id}"),
        Some(json!({"kind": "timer", "cron": "* * * * *", "function": "app"})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is of kind `http`, the new settings are of kind `timer`"),
        "{answer}"
    );

    let deleted = kumo.cli(&["triggers", "delete", "/greet/..."]);
    assert!(deleted.status.success(), "{deleted:#?}");
    assert_eq!(
        deleted.stdout.trim(),
        format!("route /greet/... -> app: deleted ({first_id})")
    );
    assert_eq!(served_by(&kumo, "/greet/ada").await, "HTTP 404");
}

#[tokio::test]
async fn a_plain_deploy_keeps_a_route_moved_to_an_alias_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (kumo, path) = three_versions_and_an_alias(dir.path()).await;
    let plain = manifest(3, &[("/greet/...", "app")]);
    deploy(&kumo, &path, &plain);
    assert_eq!(served_by(&kumo, "/greet/ada").await, "3");

    // A canary through the API, and a route the manifest does not have.
    let moved = kumo.cli(&["triggers", "update", "/greet/...", "--function", "app:live"]);
    assert!(moved.status.success(), "{moved:#?}");
    let extra = kumo.cli(&[
        "triggers",
        "create",
        "--route",
        "/extra",
        "--function",
        "app:2",
    ]);
    assert!(extra.status.success(), "{extra:#?}");

    let kept = "route /greet/... -> app:live (kept: points at an alias of app; write function = \"app:live\" in kumo.toml to make it explicit)";
    let left = "route /extra -> app:2: not in kumo.toml, left as is (`kumo triggers delete /extra` removes it)";
    let again = deploy(&kumo, &path, &plain);
    assert!(again.stdout.contains(kept), "{}", again.stdout);
    assert!(again.stdout.contains(left), "{}", again.stdout);
    assert_eq!(
        served_by(&kumo, "/greet/ada").await,
        "1",
        "the canary stays"
    );
    assert_eq!(served_by(&kumo, "/extra").await, "2");

    // `kumo up -f` on the same data directory decides and says the same.
    let data_dir = kumo.data_dir().to_path_buf();
    drop(kumo);
    let kumo = Kumo::start(&Start {
        manifest: &path,
        data_dir: &data_dir,
        extra_args: &[],
        env: &[],
    })
    .unwrap_or_else(|exited| panic!("kumo up did not start: {exited:#?}"));
    let stdout = kumo.stdout();
    assert!(stdout.contains(&format!("kumo: {kept}")), "{stdout}");
    assert!(stdout.contains(&format!("kumo: {left}")), "{stdout}");
    assert_eq!(served_by(&kumo, "/greet/ada").await, "1");

    // The same, for scripts.
    let as_json = kumo.cli(&["deploy", "-f", &path.display().to_string(), "-o", "json"]);
    assert!(as_json.status.success(), "{as_json:#?}");
    let report: Value = serde_json::from_str(&as_json.stdout).unwrap();
    let statuses: Vec<&str> = report["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trigger| trigger["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["kept", "not_in_manifest"]);

    // Written explicitly, the manifest moves it on.
    std::fs::write(&path, manifest(3, &[("/greet/...", "app:2")])).unwrap();
    let retargeted = kumo.cli(&["deploy", "-f", &path.display().to_string()]);
    assert!(retargeted.status.success(), "{retargeted:#?}");
    assert!(
        retargeted
            .stdout
            .contains("route /greet/... -> app:2: retargeted (was app:live)"),
        "{}",
        retargeted.stdout
    );
    assert_eq!(served_by(&kumo, "/greet/ada").await, "2");
}
