//! Versions in motion: an alias moved under load, a server killed and
//! restarted on the same data directory, and `kumo dev` redeploying a
//! changed component.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::{call, deploy};
use crate::harness::{Kumo, Start, client, example, test_guest, toml_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_an_alias_under_load_answers_every_request_from_version_1_or_2() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let envdump = std::fs::read(test_guest("envdump")).unwrap();
    for version in ["1", "2"] {
        let config = json!({"env": {"APP_VERSION": version}});
        assert_eq!(deploy(&kumo, "app", envdump.clone(), config).await.0, 201);
    }
    call(
        &kumo,
        Method::PUT,
        "/v1/functions/app/aliases/live",
        Some(json!({"version": 1})),
    )
    .await;
    let (status, _) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/app", "function": "app:live"})),
    )
    .await;
    assert_eq!(status, 201);

    // Four request loops; each records (started after the move finished,
    // status, version seen).
    let moved = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let url = kumo.url("/app");
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (moved, stop, url) = (moved.clone(), stop.clone(), url.clone());
        let answered = answered.clone();
        loops.push(tokio::spawn(async move {
            let client = client();
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let after_move = moved.load(Ordering::SeqCst);
                let response = client.get(&url).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let version = body["APP_VERSION"].as_str().unwrap_or("?").to_string();
                seen.push((after_move, status, version));
                answered.fetch_add(1, Ordering::SeqCst);
            }
            seen
        }));
    }
    // Let version 1 answer 100 requests, move the alias, let version 2
    // answer 100 more.
    wait_until_answered(&answered, 100).await;
    let (status, _) = call(
        &kumo,
        Method::PUT,
        "/v1/functions/app/aliases/live",
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, 200);
    moved.store(true, Ordering::SeqCst);
    let so_far = answered.load(Ordering::SeqCst);
    wait_until_answered(&answered, so_far + 100).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for handle in loops {
        all.extend(handle.await.unwrap());
    }
    let before: Vec<_> = all.iter().filter(|(after, _, _)| !after).collect();
    let after: Vec<_> = all.iter().filter(|(after, _, _)| *after).collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{} before, {} after",
        before.len(),
        after.len()
    );
    for (after_move, status, version) in &all {
        assert_eq!(*status, 200, "every request is answered");
        assert!(version == "1" || version == "2", "answered by {version}");
        if *after_move {
            assert_eq!(
                version, "2",
                "a request started after the move runs on version 2"
            );
        }
    }
    assert!(before.iter().any(|(_, _, version)| version == "1"));
    println!(
        "alias move under load: {} requests before, {} after",
        before.len(),
        after.len()
    );
}

async fn wait_until_answered(answered: &AtomicUsize, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the request loops stalled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_killed_server_restarts_with_every_function_version_alias_and_route() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let kumo = Kumo::server(&data_dir);
    let hello = std::fs::read(example("hello")).unwrap();
    let echo = std::fs::read(example("echo")).unwrap();
    assert_eq!(
        deploy(&kumo, "hello", hello.clone(), json!({})).await.0,
        201
    );
    assert_eq!(
        deploy(&kumo, "hello", hello, json!({"memory_mb": 64}))
            .await
            .0,
        201
    );
    assert_eq!(deploy(&kumo, "echo", echo, json!({})).await.0, 201);
    call(
        &kumo,
        Method::PUT,
        "/v1/functions/hello/aliases/live",
        Some(json!({"version": 1})),
    )
    .await;
    for (route, function) in [
        ("/hello", "hello:live"),
        ("/v2", "hello:2"),
        ("/echo/...", "echo"),
    ] {
        let body = json!({"kind": "http", "route": route, "function": function});
        assert_eq!(
            call(&kumo, Method::POST, "/v1/triggers", Some(body))
                .await
                .0,
            201
        );
    }
    let (_, functions_before) = call(&kumo, Method::GET, "/v1/functions", None).await;
    let (_, triggers_before) = call(&kumo, Method::GET, "/v1/triggers", None).await;
    let token = kumo.token().to_string();

    // SIGKILL: no graceful anything.
    drop(kumo);

    let kumo = Kumo::server(&data_dir);
    assert_eq!(kumo.token(), token, "the token survives");
    let (_, functions_after) = call(&kumo, Method::GET, "/v1/functions", None).await;
    let (_, triggers_after) = call(&kumo, Method::GET, "/v1/triggers", None).await;
    assert_eq!(functions_before, functions_after);
    assert_eq!(triggers_before, triggers_after);
    for (path, expected) in [("/hello", "Hello from Kumo"), ("/v2", "Hello from Kumo")] {
        let response = client().get(kumo.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), expected);
    }
    let echoed = client()
        .post(kumo.url("/echo/a"))
        .body("still here")
        .send()
        .await
        .unwrap();
    assert!(echoed.text().await.unwrap().contains(r#""body_length":10"#));
    // Every version came back from the compile cache, none was recompiled.
    let logs = kumo.logs();
    assert!(
        logs.contains("loaded function from the compile cache"),
        "{logs}"
    );
    assert!(!logs.contains("compiled function"), "{logs}");
}

#[tokio::test]
async fn kumo_dev_serves_a_changed_component_as_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("app.wasm");
    std::fs::copy(example("hello"), &component).unwrap();
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "[function.app]\nsource = {}\n[[trigger.http]]\nroute = \"/app\"\nfunction = \"app\"\n",
            toml_path(&component)
        ),
    )
    .unwrap();
    let kumo = Kumo::start_verb(
        "dev",
        &Start {
            manifest: &manifest,
            data_dir: &dir.path().join("data"),
            extra_args: &[],
            env: &[],
        },
    )
    .unwrap_or_else(|exited| panic!("kumo dev did not start: {exited:#?}"));
    let before = client()
        .post(kumo.url("/app"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(before.text().await.unwrap(), "Hello from Kumo");

    // A broken file is reported and the previous version keeps serving.
    replace(&component, b"not a component");
    assert!(
        kumo.wait_for_stdout("app: not deployed, still serving the previous version"),
        "{}",
        kumo.stdout()
    );
    let still = client()
        .post(kumo.url("/app"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(still.text().await.unwrap(), "Hello from Kumo");

    // The echo component written over it becomes version 2.
    replace(&component, &std::fs::read(example("echo")).unwrap());
    assert!(
        kumo.wait_for_stdout("app redeployed as version 2"),
        "{}",
        kumo.stdout()
    );
    let after = client()
        .post(kumo.url("/app"))
        .body("changed")
        .send()
        .await
        .unwrap();
    assert!(after.text().await.unwrap().contains(r#""body_length":7"#));
}

/// Writes a file the way a build does: a new file renamed over the old.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}
