//! Serving the bundled examples: routing, pass-through, request ids, limits,
//! environment, guest logs and outbound HTTP.

use crate::harness::{Kumo, client, example, test_guest, toml_path};

fn examples_manifest() -> String {
    format!(
        r#"
[function.hello]
source = {hello}

[function.echo]
source = {echo}
max_request_bytes = 1048576

[function.plain]
source = {plain}

[[trigger.http]]
route = "/hello"
function = "hello"

[[trigger.http]]
route = "/echo/..."
function = "echo"

[[trigger.http]]
route = "/echo/plain/..."
function = "plain"

[[trigger.http]]
route = "/..."
function = "plain"
"#,
        hello = toml_path(&example("hello")),
        echo = toml_path(&example("echo")),
        plain = toml_path(&example("plain")),
    )
}

#[tokio::test]
async fn hello_answers_and_every_response_has_a_request_id() {
    let kumo = Kumo::up(&examples_manifest());
    let response = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first_id = response.headers()["x-kumo-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.text().await.unwrap(), "Hello from Kumo");

    let again = client().get(kumo.url("/hello")).send().await.unwrap();
    let second_id = again.headers()["x-kumo-request-id"].to_str().unwrap();
    assert_ne!(first_id, second_id, "each invocation gets its own id");
    assert_eq!(first_id.len(), 32);
    assert!(
        kumo.stdout().contains("  /hello -> hello"),
        "{}",
        kumo.stdout()
    );
}

#[tokio::test]
async fn echo_sees_method_path_query_headers_and_body() {
    let kumo = Kumo::up(&examples_manifest());
    let response = client()
        .put(kumo.url("/echo/items/7?color=blue&size=2"))
        .header("x-custom", "forty two")
        .body(vec![b'z'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["path"], "/echo/items/7");
    assert_eq!(json["query"], "color=blue&size=2");
    assert_eq!(json["headers"]["x-custom"], "forty two");
    assert_eq!(json["body_length"], 1000);
}

#[tokio::test]
async fn a_plain_wasip2_component_runs_unchanged() {
    let kumo = Kumo::up(&examples_manifest());
    let response = client()
        .get(kumo.url("/anything/at/all?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "Hello from a plain wasi:http component at /anything/at/all?x=1"
    );
}

#[tokio::test]
async fn the_longest_route_wins() {
    let kumo = Kumo::up(&examples_manifest());
    // (path, expected function: "echo" answers JSON, "plain" answers text)
    let cases = [
        ("/echo", "echo"),
        ("/echo/a/b", "echo"),
        ("/echo/plain", "plain"),
        ("/echo/plain/deeper", "plain"),
        ("/echoes", "plain"),
        ("/hello/extra", "plain"),
    ];
    for (path, function) in cases {
        let body = client()
            .get(kumo.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let served_by = if body.starts_with('{') {
            "echo"
        } else {
            "plain"
        };
        assert_eq!(served_by, function, "path {path} answered {body}");
    }
}

#[tokio::test]
async fn the_gateway_speaks_http2_without_tls() {
    let kumo = Kumo::up(&examples_manifest());
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-kumo-request-id"));
    assert_eq!(response.text().await.unwrap(), "Hello from Kumo");

    let echoed: serde_json::Value = h2
        .post(kumo.url("/echo/over/h2?x=1"))
        .body(vec![b'q'; 2048])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo/over/h2");
    assert_eq!(echoed["body_length"], 2048);
}

#[tokio::test]
async fn no_route_is_a_json_404_with_a_request_id() {
    let manifest = format!(
        "[function.hello]\nsource = {}\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
        toml_path(&example("hello"))
    );
    let kumo = Kumo::up(&manifest);
    let response = client().get(kumo.url("/missing?q=1")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-kumo-request-id"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`/missing`")
    );
}

#[tokio::test]
async fn an_oversized_request_is_413_with_or_without_a_length() {
    let kumo = Kumo::up(&examples_manifest());
    // Declared length over echo's 1 MiB limit: refused before the guest
    // runs (and before the body is read, so a raw client sends it).
    let (status, body) = raw_post(kumo.addr, "/echo/big", 2 << 20, Framing::Length).await;
    assert_eq!(status, 413);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576")
    );

    // Chunked, no length: cut off while the guest reads it.
    let (status, body) = raw_post(kumo.addr, "/echo/big", 2 << 20, Framing::Chunked).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");

    // Under the limit, chunked: passes.
    let (status, body) = raw_post(kumo.addr, "/echo/small", 64 << 10, Framing::Chunked).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"body_length\":65536"), "{body}");
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
}

enum Framing {
    Length,
    Chunked,
}

/// Sends a POST of `total` bytes by hand and returns the status and body.
/// (The server may answer and close before the upload ends; HTTP clients
/// that stop at the broken pipe never show that answer.)
async fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    total: usize,
    framing: Framing,
) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let framing_header = match framing {
        Framing::Length => format!("content-length: {total}"),
        Framing::Chunked => "transfer-encoding: chunked".to_string(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\n{framing_header}\r\nconnection: close\r\n\r\n"
    );
    let writing = tokio::spawn(async move {
        // The write half stays open until the answer is read: a client that
        // half-closes makes the server drop the request.
        let result = write_body(&mut writer, head, total, framing).await;
        (writer, result)
    });
    let mut answer = Vec::new();
    // A write error is expected when the server answers early; only the
    // answer matters.
    let _ = reader.read_to_end(&mut answer).await;
    let _ = writing.await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn write_body(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    head: String,
    total: usize,
    framing: Framing,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 16 << 10];
        let mut sent = 0;
        while sent < total {
            match framing {
                Framing::Length => writer.write_all(&chunk).await?,
                Framing::Chunked => {
                    writer
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    writer.write_all(&chunk).await?;
                    writer.write_all(b"\r\n").await?;
                }
            }
            sent += chunk.len();
        }
        if let Framing::Chunked = framing {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_request_wasi_http_cannot_express_is_a_400_and_hello_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kumo = Kumo::up(&examples_manifest());
    let mut stream = tokio::net::TcpStream::connect(kumo.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: \xff\xfe\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
}

/// A body the client botches (here a chunk size that is not hex) is the
/// client's 400, metered as `rejected`, with no host detail in the answer,
/// even with backtraces enabled.
#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_400_not_the_functions_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kumo = Kumo::up_with_env(&examples_manifest(), &[("RUST_BACKTRACE", "1")]);
    let mut stream = tokio::net::TcpStream::connect(kumo.addr).await.unwrap();
    stream
        .write_all(
            b"POST /echo/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
              connection: close\r\n\r\n5\r\nhello\r\nzz\r\nnot hex\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"unreadable_body\""), "{answer}");
    assert!(answer.len() < 1024, "{} bytes: {answer}", answer.len());
    for host_detail in ["backtrace", ".rs:", "wasmtime", "hyper"] {
        assert!(!answer.contains(host_detail), "{host_detail}: {answer}");
    }
    let echo = client()
        .post(kumo.url("/echo/ok"))
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    let invocations: serde_json::Value = kumo
        .admin(reqwest::Method::GET, "/v1/invocations?function=echo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut outcomes: Vec<&str> = invocations["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["ok", "rejected"], "{invocations}");
}

/// RFC 9112 (section 3.2): an HTTP/1.1 request without `Host` is a 400, on
/// the gateway and the admin API; HTTP/1.0 needs none.
#[tokio::test]
async fn an_http_1_1_request_without_host_is_a_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kumo = Kumo::up(&examples_manifest());
    let send = |addr: std::net::SocketAddr, request: &'static [u8]| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    for addr in [kumo.addr, kumo.admin_addr] {
        let path: &'static [u8] = if addr == kumo.addr {
            b"GET /hello HTTP/1.1\r\nconnection: close\r\n\r\n"
        } else {
            b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n"
        };
        let answer = send(addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("needs a `Host` header"), "{answer}");
    }
    let old = send(kumo.addr, b"GET /hello HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.0 200"), "{old}");
    assert!(old.ends_with("Hello from Kumo"), "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sees_only_its_env_and_its_output_is_logged_with_the_request_id() {
    let manifest = format!(
        "[function.envdump]\nsource = {}\nenv = {{ GREETING = \"hi\", LEVEL = \"3\" }}\n\
         [[trigger.http]]\nroute = \"/env\"\nfunction = \"envdump\"\n",
        toml_path(&test_guest("envdump"))
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("kumo.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let kumo = Kumo::start(&crate::harness::Start {
        manifest: &manifest_path,
        data_dir: &dir.path().join("data"),
        extra_args: &[],
        env: &[("KUMO_TEST_HOST_SECRET", "must-not-leak")],
    })
    .unwrap();
    let response = client().get(kumo.url("/env")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-kumo-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let env: serde_json::Value = response.json().await.unwrap();
    assert_eq!(env, serde_json::json!({"GREETING": "hi", "LEVEL": "3"}));

    for line in ["envdump stdout line", "envdump stderr line"] {
        assert!(
            kumo.wait_for_log_line(&[line, "function=envdump", &request_id]),
            "no log line {line:?} with the function and request id:\n{}",
            kumo.logs()
        );
    }
}

#[tokio::test]
async fn outbound_http_is_denied_unless_allowed() {
    // A local upstream for the guest to call.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        let app =
            axum::Router::new().route("/data", axum::routing::get(|| async { "upstream ok" }));
        axum::serve(upstream, app).await.unwrap();
    });

    let manifest = format!(
        r#"
[function.denied]
source = {guest}

[function.allowed]
source = {guest}
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]

[[trigger.http]]
route = "/denied"
function = "denied"

[[trigger.http]]
route = "/allowed"
function = "allowed"
"#,
        guest = toml_path(&test_guest("outbound")),
        port = upstream_addr.port(),
    );
    let kumo = Kumo::up(&manifest);
    let target = format!("http://{upstream_addr}/data");

    let denied = client()
        .get(kumo.url(&format!("/denied?url={target}")))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 502);
    let body = denied.text().await.unwrap();
    assert!(body.contains("HttpRequestDenied"), "{body}");

    let allowed = client()
        .get(kumo.url(&format!("/allowed?url={target}")))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.text().await.unwrap(), "upstream ok");
}
