//! Misbehaving guests are answered with the right status and code, and the
//! same server keeps serving `/hello` right after each one.

use std::time::{Duration, Instant};

use crate::harness::{Kumo, client, example, read_body_outcome, test_guest, toml_path};

const FOREVER_TIMEOUT_MS: u64 = 1500;

fn bad_guests_manifest() -> String {
    let mut manifest = format!(
        "[function.hello]\nsource = {}\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
        toml_path(&example("hello"))
    );
    for (name, extra) in [
        ("trap", String::new()),
        ("forever", format!("timeout_ms = {FOREVER_TIMEOUT_MS}")),
        ("membomb", "memory_mb = 32".to_string()),
        ("recurse", String::new()),
        ("hugebody", String::new()),
        ("slowbody", "timeout_ms = 500".to_string()),
    ] {
        let guest = if name == "slowbody" { "hugebody" } else { name };
        manifest.push_str(&format!(
            "[function.{name}]\nsource = {}\n{extra}\n[[trigger.http]]\nroute = \"/{name}/...\"\nfunction = \"{name}\"\n",
            toml_path(&test_guest(guest))
        ));
    }
    manifest
}

async fn assert_hello_still_answers(kumo: &Kumo) {
    let response = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello from Kumo");
}

async fn error_of(kumo: &Kumo, path: &str) -> (u16, String, String) {
    let response = client().get(kumo.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("x-kumo-request-id"));
    let json: serde_json::Value = response.json().await.unwrap();
    (
        status,
        json["error"]["code"].as_str().unwrap().to_string(),
        json["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_guest_gets_its_status_and_code_and_hello_keeps_answering() {
    let kumo = Kumo::up(&bad_guests_manifest());

    let (status, code, message) = error_of(&kumo, "/trap").await;
    assert_eq!((status, code.as_str()), (500, "trap"), "{message}");
    assert!(kumo.wait_for_log_line(&["trap guest: deliberate panic", "function=trap"]));
    assert_hello_still_answers(&kumo).await;

    let started = Instant::now();
    let (status, code, message) = error_of(&kumo, "/forever").await;
    let elapsed = started.elapsed();
    assert_eq!((status, code.as_str()), (504, "timeout"), "{message}");
    assert!(
        message.contains(&FOREVER_TIMEOUT_MS.to_string()),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_millis(FOREVER_TIMEOUT_MS)
            && elapsed < Duration::from_millis(FOREVER_TIMEOUT_MS + 1000),
        "the loop was stopped after {elapsed:?}, timeout {FOREVER_TIMEOUT_MS} ms"
    );
    assert_hello_still_answers(&kumo).await;

    let (status, code, message) = error_of(&kumo, "/membomb").await;
    assert_eq!((status, code.as_str()), (500, "out_of_memory"), "{message}");
    assert!(message.contains("32 MiB"), "{message}");
    assert_hello_still_answers(&kumo).await;

    let (status, code, message) = error_of(&kumo, "/recurse").await;
    assert_eq!((status, code.as_str()), (500, "trap"), "{message}");
    assert_hello_still_answers(&kumo).await;

    // A declared length over the limit is refused before anything is sent.
    let (status, code, message) = error_of(&kumo, "/hugebody/declared").await;
    assert_eq!(
        (status, code.as_str()),
        (500, "response_too_large"),
        "{message}"
    );
    assert_hello_still_answers(&kumo).await;

    // A streamed body is cut off at the limit: the client sees a broken
    // stream, never more than the limit.
    let response = client()
        .get(kumo.url("/hugebody/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (received, outcome) = read_body_outcome(response).await;
    assert!(
        outcome.is_err(),
        "the stream must end in an error, not look complete"
    );
    assert!(
        received <= 6 << 20,
        "received {received} bytes, over the 6 MiB limit"
    );
    assert!(kumo.wait_for_log_line(&[
        "the function's response is larger than its limit of",
        "function=hugebody"
    ]));
    assert_hello_still_answers(&kumo).await;

    // A guest stopped by its timeout after it started its body: the body
    // ends in an error, so the client cannot mistake it for complete.
    let response = client()
        .get(kumo.url("/slowbody/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, outcome) = read_body_outcome(response).await;
    assert!(
        outcome.is_err(),
        "a timed-out stream must not look complete"
    );
    assert!(kumo.wait_for_log_line(&[
        "did not finish within its timeout of 500 ms",
        "function=slowbody"
    ]));
    assert_hello_still_answers(&kumo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_guest_does_not_block_other_requests() {
    let kumo = Kumo::up(&bad_guests_manifest());
    // Two spinning guests: as many as this machine has cores.
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let url = kumo.url("/forever");
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    assert!(
        kumo.wait_for_log_count("forever: spinning", 2),
        "the spinners did not start:\n{}",
        kumo.logs()
    );
    for _ in 0..20 {
        assert_hello_still_answers(&kumo).await;
    }
    assert!(
        spinners.iter().any(|spinner| !spinner.is_finished()),
        "the spinners timed out before 20 hello requests were answered: they were starved"
    );
    for spinner in spinners {
        assert_eq!(spinner.await.unwrap(), 504);
    }
}
