//! The admin API over HTTP against a real `kumo server`: every endpoint,
//! and every bad input refused with the right status without changing the
//! registry.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Kumo, client, example, test_guest};

/// Deploys `wasm` as a version of `function` with `config`; returns the
/// status and the JSON answer.
pub async fn deploy(kumo: &Kumo, function: &str, wasm: Vec<u8>, config: Value) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name(format!("{function}.wasm")),
        )
        .part("config", reqwest::multipart::Part::text(config.to_string()));
    let response = kumo
        .admin(Method::POST, &format!("/v1/functions/{function}/versions"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Sends a JSON admin call; returns the status and the JSON answer (Null
/// for an empty body).
pub async fn call(kumo: &Kumo, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = kumo.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

fn error_code(value: &Value) -> &str {
    value["error"]["code"].as_str().unwrap_or("")
}

fn error_message(value: &Value) -> &str {
    value["error"]["message"].as_str().unwrap_or("")
}

fn wasm(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn healthz_is_open_and_every_v1_call_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let health = client()
        .get(kumo.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    for path in ["/v1/functions", "/v1/triggers", "/v1/openapi.json"] {
        let missing = client().get(kumo.admin_url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path}");
        assert_eq!(
            missing.headers()["www-authenticate"],
            "Bearer realm=\"kumo-admin\""
        );
        let body: Value = missing.json().await.unwrap();
        assert_eq!(error_code(&body), "unauthorized");
        assert!(error_message(&body).contains("missing"), "{body}");
        let wrong = client()
            .get(kumo.admin_url(path))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        assert!(error_message(&wrong.json().await.unwrap()).contains("wrong admin token"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(kumo.data_dir().join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(kumo.stdout().contains("generated an admin token"));
    let (status, body) = call(&kumo, Method::GET, "/v1/nothing", None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));

    // A known path with the wrong method: 405 with the JSON error body and
    // the methods it takes.
    let wrong_method = kumo
        .admin(Method::PUT, "/v1/functions")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(error_code(&body), "method_not_allowed", "{body}");
    assert!(error_message(&body).contains("PUT"), "{body}");

    // HTTP auth schemes are case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer "] {
        let answer = client()
            .get(kumo.admin_url("/v1/functions"))
            .header("authorization", format!("{scheme} {}", kumo.token()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{scheme:?}");
    }
}

#[tokio::test]
async fn an_event_list_limit_outside_1_to_1000_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    for (limit, expected) in [("0", 400), ("1001", 400), ("1", 200), ("1000", 200)] {
        let (status, body) = call(
            &kumo,
            Method::GET,
            &format!("/v1/events?limit={limit}"),
            None,
        )
        .await;
        assert_eq!(status, expected, "limit={limit}: {body}");
        if expected == 400 {
            assert!(
                error_message(&body).contains("from 1 to 1000"),
                "limit={limit}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn deploy_list_show_route_invoke_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));

    let (status, first) = deploy(&kumo, "hello", wasm(example("hello")), json!({})).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["version"]["version"], 1);
    assert_eq!(first["created"], true);
    assert_eq!(first["version"]["config"]["memory_mb"], 128);
    let (status, again) = deploy(&kumo, "hello", wasm(example("hello")), json!({})).await;
    assert_eq!(
        (status, &again["version"]["version"], &again["created"]),
        (200, &json!(1), &json!(false))
    );
    let (status, second) = deploy(
        &kumo,
        "hello",
        wasm(example("hello")),
        json!({"memory_mb": 256}),
    )
    .await;
    assert_eq!((status, &second["version"]["version"]), (201, &json!(2)));
    let (status, _) = deploy(&kumo, "echo", wasm(example("echo")), json!({})).await;
    assert_eq!(status, 201);

    let (status, list) = call(&kumo, Method::GET, "/v1/functions", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "hello"]);
    assert_eq!(list["functions"][1]["latest_version"], 2);
    assert_eq!(list["functions"][1]["versions"], 2);

    let (status, trigger) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/hello", "function": "hello"})),
    )
    .await;
    assert_eq!(status, 201, "{trigger}");
    let trigger_id = trigger["id"].as_str().unwrap().to_string();
    let (status, _) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/echo/...", "function": "echo:1"})),
    )
    .await;
    assert_eq!(status, 201);
    // An event trigger through the API: a storage trigger on a bucket
    // nobody created yet creates the bucket; its name defaults by kind.
    let (status, storage) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "storage", "bucket": "fresh-bucket", "events": ["ObjectCreated:*"], "function": "echo"})),
    )
    .await;
    assert_eq!(status, 201, "{storage}");
    assert_eq!(storage["name"], "storage-1");
    assert!(kumo.data_dir().join("storage/fresh-bucket").is_dir());
    let (status, bad) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "timer", "cron": "every day", "function": "echo"})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(error_message(&bad).contains("every day"), "{bad}");
    let (_, triggers) = call(&kumo, Method::GET, "/v1/triggers", None).await;
    assert_eq!(triggers["triggers"].as_array().unwrap().len(), 3);

    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "Hello from Kumo");
    let echoed = client()
        .post(kumo.url("/echo/x"))
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200);
    assert!(echoed.text().await.unwrap().contains(r#""body_length":4"#));

    let (status, detail) = call(&kumo, Method::GET, "/v1/functions/hello", None).await;
    assert_eq!(status, 200);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    assert_eq!(detail["triggers"][0]["route"], "/hello");
    assert_eq!(detail["instances"][0]["version"], 2);
    assert_eq!(detail["instances"][0]["idle"], 1, "{detail}");

    // A test invocation through the admin API, body and headers passed on.
    let invoked = kumo
        .admin(Method::POST, "/v1/functions/echo/invoke?path=/test%3Fa=1")
        .header("x-test", "yes")
        .body("from the api")
        .send()
        .await
        .unwrap();
    assert_eq!(invoked.status(), 200);
    assert!(invoked.headers().contains_key("x-kumo-request-id"));
    let text = invoked.text().await.unwrap();
    assert!(text.contains(r#""body_length":12"#), "{text}");
    assert!(
        text.contains(r#""path":"/test""#) && text.contains(r#""query":"a=1""#),
        "{text}"
    );
    assert!(text.contains("x-test"), "{text}");
    assert!(
        !text.to_lowercase().contains("authorization"),
        "the token must not reach the guest: {text}"
    );
    // An old version is invocable by number.
    let old = kumo
        .admin(Method::POST, "/v1/functions/hello/invoke?qualifier=1")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    let (status, body) = call(
        &kumo,
        Method::POST,
        "/v1/functions/hello/invoke?qualifier=7",
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (status, body) = call(&kumo, Method::POST, "/v1/functions/nope/invoke", None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));

    // Deleting a trigger takes its route away at once.
    let echo_trigger = triggers["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["route"] == "/echo/...")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        &kumo,
        Method::DELETE,
        &format!("/v1/triggers/{echo_trigger}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        client()
            .post(kumo.url("/echo/x"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Deleting a function a trigger points at needs force.
    let (status, body) = call(&kumo, Method::DELETE, "/v1/functions/hello", None).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    assert!(error_message(&body).contains(&trigger_id), "{body}");
    let (status, body) = call(
        &kumo,
        Method::DELETE,
        "/v1/functions/hello?force=true",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["triggers_deleted"][0]["id"], trigger_id.as_str());
    assert_eq!(
        client()
            .get(kumo.url("/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (status, _) = call(&kumo, Method::GET, "/v1/functions/hello", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &kumo,
        Method::DELETE,
        &format!("/v1/triggers/{trigger_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&kumo, Method::DELETE, "/v1/functions/hello", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn aliases_point_at_versions_and_split_traffic_by_weight() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    for version in ["1", "2"] {
        let (status, _) = deploy(
            &kumo,
            "app",
            wasm(test_guest("envdump")),
            json!({"env": {"APP_VERSION": version}}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, alias) = call(
        &kumo,
        Method::PUT,
        "/v1/functions/app/aliases/live",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{alias}");
    assert_eq!(alias["versions"], json!([{"version": 1, "weight": 100}]));
    let (status, _) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/live", "function": "app:live"})),
    )
    .await;
    assert_eq!(status, 201);
    let seen = |body: Value| body["APP_VERSION"].as_str().unwrap().to_string();
    let body: Value = client()
        .get(kumo.url("/live"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen(body), "1");

    let (status, _) = call(
        &kumo,
        Method::PUT,
        "/v1/functions/app/aliases/live",
        Some(json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]})),
    )
    .await;
    assert_eq!(status, 200);
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let body: Value = client()
            .get(kumo.url("/live"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        *counts.entry(seen(body)).or_insert(0) += 1;
    }
    // 50/50 over 200 requests: each side well inside 50..150 unless the
    // split is broken (the chance of a fair split landing outside is ~1e-12).
    assert!(counts["1"] > 50 && counts["2"] > 50, "{counts:?}");

    // Bad alias input changes nothing.
    let cases = [
        (json!({"version": 9}), "live", 404, "not_found"),
        (
            json!({"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 20}]}),
            "live",
            400,
            "invalid_request",
        ),
        (
            json!({"version": 1, "versions": []}),
            "live",
            400,
            "invalid_request",
        ),
        (json!({"version": 1}), "Live!", 400, "invalid_request"),
        (json!({"verison": 1}), "live", 422, "invalid_request"),
    ];
    for (body, alias, status, code) in cases {
        let (got, answer) = call(
            &kumo,
            Method::PUT,
            &format!("/v1/functions/app/aliases/{alias}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{body}: {answer}"
        );
    }
    let (status, _) = call(
        &kumo,
        Method::PUT,
        "/v1/functions/nope/aliases/live",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, detail) = call(&kumo, Method::GET, "/v1/functions/app", None).await;
    assert_eq!(
        detail["aliases"][0]["versions"].as_array().unwrap().len(),
        2
    );

    // An alias a trigger uses cannot be deleted; an unused one can.
    let (status, _) = call(
        &kumo,
        Method::DELETE,
        "/v1/functions/app/aliases/live",
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = call(
        &kumo,
        Method::PUT,
        "/v1/functions/app/aliases/canary",
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &kumo,
        Method::DELETE,
        "/v1/functions/app/aliases/canary",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &kumo,
        Method::DELETE,
        "/v1/functions/app/aliases/canary",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_deploys_and_bad_triggers_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let hello = wasm(example("hello"));
    // (function, component, config, status, code, words of the message)
    type Case = (
        &'static str,
        Vec<u8>,
        Value,
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "broken",
            b"this is not wasm".to_vec(),
            json!({}),
            422,
            "invalid_component",
            "not a WebAssembly file",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0".to_vec(),
            json!({}),
            422,
            "invalid_component",
            "core WebAssembly module",
        ),
        (
            "truncated",
            hello[..hello.len() / 2].to_vec(),
            json!({}),
            422,
            "invalid_component",
            "not a valid component",
        ),
        (
            "command",
            wasm(test_guest("clionly")),
            json!({}),
            422,
            "invalid_component",
            "wasi:http/incoming-handler",
        ),
        (
            "Bad_Name",
            hello.clone(),
            json!({}),
            400,
            "invalid_request",
            "invalid function name `Bad_Name`",
        ),
        (
            "hello",
            hello.clone(),
            json!({"memory_mb": 0}),
            400,
            "invalid_config",
            "`memory_mb` is 0",
        ),
        (
            "hello",
            hello.clone(),
            json!({"env": {"GREETING": "cut\u{0}short"}}),
            400,
            "invalid_config",
            "has a NUL character in its value",
        ),
        (
            "hello",
            hello.clone(),
            json!({"memroy_mb": 64}),
            400,
            "invalid_config",
            "unknown field `memroy_mb`",
        ),
    ];
    for (function, bytes, config, status, code, needle) in cases {
        let (got, body) = deploy(&kumo, function, bytes, config).await;
        assert_eq!(
            (got, error_code(&body)),
            (status, code),
            "{function}: {body}"
        );
        assert!(error_message(&body).contains(needle), "{function}: {body}");
        assert!(error_message(&body).contains("hint"), "{function}: {body}");
    }

    // A form without the component, and one too large.
    let response = kumo
        .admin(Method::POST, "/v1/functions/hello/versions")
        .multipart(reqwest::multipart::Form::new().text("config", "{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // A part sent twice is refused, not "the last one wins".
    for twice in ["component", "config"] {
        let mut form = reqwest::multipart::Form::new()
            .part("component", reqwest::multipart::Part::bytes(hello.clone()))
            .text("config", "{}");
        form = match twice {
            "component" => form.part("component", reqwest::multipart::Part::bytes(hello.clone())),
            _ => form.text("config", r#"{"memory_mb": 256}"#),
        };
        let response = kumo
            .admin(Method::POST, "/v1/functions/hello/versions")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{twice}");
        let body: Value = response.json().await.unwrap();
        assert!(
            error_message(&body).contains(&format!("two `{twice}` parts")),
            "{body}"
        );
    }
    // No multipart body at all: the API's JSON error, not axum's text.
    let response = kumo
        .admin(Method::POST, "/v1/functions/hello/versions")
        .body("just bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_request", "{body}");
    assert!(
        error_message(&body).contains("not a multipart form"),
        "{body}"
    );

    let huge = vec![0u8; (100 << 20) + 4096];
    let (status, body) = deploy(&kumo, "huge", huge, json!({})).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "payload_too_large"),
        "{body}"
    );

    // Triggers.
    let trigger_cases = [
        (
            json!({"kind": "http", "route": "/x", "function": "ghost"}),
            404,
            "no function `ghost`",
        ),
        // Routes and targets are typed in the body: a malformed one is
        // refused before anything is looked up.
        (
            json!({"kind": "http", "route": "x", "function": "ghost"}),
            422,
            "invalid route `x`: a route must start with `/`",
        ),
        (
            json!({"kind": "http", "route": "/x", "function": "ghost:"}),
            422,
            "neither a version number nor an alias",
        ),
        (
            json!({"kind": "smtp", "route": "/x", "function": "ghost"}),
            422,
            "unknown variant",
        ),
    ];
    for (body, status, needle) in trigger_cases {
        let (got, answer) = call(&kumo, Method::POST, "/v1/triggers", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(error_message(&answer).contains(needle), "{body}: {answer}");
    }
    let malformed = kumo
        .admin(Method::POST, "/v1/triggers")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_request");

    // Nothing was stored.
    let (_, list) = call(&kumo, Method::GET, "/v1/functions", None).await;
    assert_eq!(list["functions"], json!([]));
    let (_, triggers) = call(&kumo, Method::GET, "/v1/triggers", None).await;
    assert_eq!(triggers["triggers"], json!([]));
    let stored = std::fs::read_dir(kumo.data_dir().join("artifacts"))
        .unwrap()
        .count();
    assert_eq!(stored, 0);

    // With a function deployed: a bad route and a taken route.
    assert_eq!(deploy(&kumo, "hello", hello, json!({})).await.0, 201);
    let (status, body) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "hello", "function": "hello"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_request"),
        "{body}"
    );
    assert_eq!(
        error_message(&body).matches("hint:").count(),
        1,
        "one hint, the route's: {body}"
    );
    let (status, _) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/hello", "function": "hello"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/hello", "function": "hello:1"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    let (status, body) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/v", "function": "hello:5"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (status, body) = call(
        &kumo,
        Method::POST,
        "/v1/triggers",
        Some(json!({"kind": "http", "route": "/v", "function": "hello:live"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_docs_api_md_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = Kumo::server(&dir.path().join("data"));
    let (status, document) = call(&kumo, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let expected = [
        "DELETE /v1/functions/{name}",
        "DELETE /v1/functions/{name}/aliases/{alias}",
        "DELETE /v1/triggers/{id}",
        "GET /healthz",
        "GET /metrics",
        "GET /v1/billing",
        "GET /v1/functions",
        "GET /v1/functions/{name}",
        "GET /v1/functions/{name}/logs",
        "GET /v1/invocations",
        "GET /v1/openapi.json",
        "GET /v1/triggers",
        "POST /v1/functions/{name}/invoke",
        "POST /v1/functions/{name}/versions",
        "POST /v1/triggers",
        "PUT /v1/functions/{name}/aliases/{alias}",
        "GET /v1/events",
        "POST /v1/events/{id}/replay",
    ];
    for operation in expected {
        assert!(
            operations.iter().any(|o| o == operation),
            "{operation} missing from {operations:?}"
        );
    }
    // docs/api.md documents exactly the operations the server has.
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md"),
    )
    .unwrap();
    let documented: Vec<String> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|line| line.strip_suffix('`'))
        .map(str::to_string)
        .collect();
    let mut documented_sorted = documented.clone();
    documented_sorted.sort();
    assert_eq!(
        documented_sorted, operations,
        "docs/api.md headings vs the OpenAPI document"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
