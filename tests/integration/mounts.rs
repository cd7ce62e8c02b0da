//! Host-folder `files` mounts (`dir = "./inbox"`): relative to the
//! manifest, read-only by default, and confined to the folder (`..` and
//! symbolic links pointing out are refused); and the `wordcount` example
//! run from `examples/kumo.toml`, from a file dropped into its inbox to its
//! counts in the bucket.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Kumo, Start, client, example, test_guest, toml_path};

/// GET or PUT through the `files` guest: the status and the body.
async fn file_call(kumo: &Kumo, method: reqwest::Method, query: &str, body: &str) -> (u16, String) {
    let response = client()
        .request(method, kumo.url(&format!("/files?{query}")))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn start(dir: &Path, manifest: &str) -> Kumo {
    let path = dir.join("kumo.toml");
    std::fs::write(&path, manifest).unwrap();
    Kumo::start(&Start {
        manifest: &path,
        data_dir: &dir.join("data"),
        extra_args: &[],
        env: &[],
    })
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
}

#[tokio::test]
async fn a_folder_mount_is_read_only_and_confined_to_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(inbox.join("inside.txt"), "inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "the secret").unwrap();
    // Three ways out: a relative link, an absolute one, a linked folder.
    std::os::unix::fs::symlink("../outside/secret.txt", inbox.join("relative-link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), inbox.join("absolute-link")).unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("folder-link")).unwrap();
    let kumo = start(
        dir.path(),
        &format!(
            "[function.files]\nsource = {}\n\
             files = [{{ dir = \"./inbox\", path = \"/inbox\" }}, {{ dir = \"out\", path = \"/out\", read_only = false }}]\n\
             [[trigger.http]]\nroute = \"/files\"\nfunction = \"files\"\n",
            toml_path(&test_guest("files"))
        ),
    );
    let get = reqwest::Method::GET;
    assert_eq!(
        file_call(&kumo, get.clone(), "path=/inbox/inside.txt", "").await,
        (200, "inside".to_string())
    );
    let (status, listing) = file_call(&kumo, get.clone(), "list=/inbox", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        listing,
        "absolute-link\nfolder-link\ninside.txt\nrelative-link"
    );
    for escape in [
        "path=/inbox/relative-link",
        "path=/inbox/absolute-link",
        "path=/inbox/folder-link/secret.txt",
        "path=/inbox/../outside/secret.txt",
        "path=/inbox/%2E%2E/outside/secret.txt",
    ] {
        let (status, body) = file_call(&kumo, get.clone(), escape, "").await;
        assert_eq!(status, 500, "{escape}: {body}");
        assert!(!body.contains("the secret"), "{escape}: {body}");
    }
    // Read-only unless asked: no write into the inbox.
    let (status, body) = file_call(&kumo, reqwest::Method::PUT, "path=/inbox/new.txt", "x").await;
    assert_eq!(status, 500, "{body}");
    assert!(!inbox.join("new.txt").exists());
    // A read-write folder (created, as it was missing) takes writes.
    let (status, body) = file_call(&kumo, reqwest::Method::PUT, "path=/out/a.txt", "written").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap(),
        "written"
    );
}

#[tokio::test]
async fn the_admin_api_refuses_a_relative_folder_mount() {
    let dir = tempfile::tempdir().unwrap();
    let kumo = start(dir.path(), "");
    let wasm = std::fs::read(test_guest("files")).unwrap();
    let config = r#"{"files":[{"dir":"inbox","path":"/inbox"}]}"#;
    let form = reqwest::multipart::Form::new()
        .part("component", reqwest::multipart::Part::bytes(wasm))
        .text("config", config);
    let response = kumo
        .admin(reqwest::Method::POST, "/v1/functions/files/versions")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("folder `inbox` is relative"), "{message}");
    assert!(message.contains("absolute path on the server"), "{message}");
}

#[tokio::test]
async fn wordcount_counts_a_file_dropped_into_the_inbox_of_examples_kumo_toml() {
    let dir = tempfile::tempdir().unwrap();
    // examples/kumo.toml as it is, its components taken from where this
    // test run built them.
    let examples = example("wordcount")
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let manifest = std::fs::read_to_string(crate::harness::repo_root().join("examples/kumo.toml"))
        .unwrap()
        .replace(
            "source = \"target/wasm32-wasip2/release/",
            &format!("source = \"{examples}/"),
        );
    assert!(
        manifest.contains("[function.wordcount]") && !manifest.contains("# [function.wordcount]"),
        "wordcount is enabled in examples/kumo.toml"
    );
    let kumo = start(dir.path(), &manifest);
    let text = "The cat and the hat.\nA cat sat.\n";
    std::fs::write(dir.path().join("inbox/notes.txt"), text).unwrap();
    let counts = dir.path().join("data/storage/counts/notes.txt.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let document: Value = loop {
        if let Some(document) = std::fs::read(&counts)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            break document;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no counts for notes.txt; logs:\n{}",
            kumo.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(document["file"], "notes.txt");
    assert_eq!(document["lines"], 2);
    assert_eq!(document["words"], 8);
    assert_eq!(document["top"][0]["word"], "cat");
    assert_eq!(document["top"][0]["count"], 2);
}
