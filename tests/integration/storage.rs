//! Object storage with a real S3 client: boto3 (Python), driven through
//! `s3_client.py`, against the real `kumo` binary, and against
//! `kumo::storage::serve` in-process where the change hook is observed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{self, Kumo, Start};

/// The storage access key the tests give kumo (`KUMO_STORAGE_ACCESS_KEY`).
pub const ACCESS_KEY: &str = "KUMOTESTACCESSKEY";
/// The storage secret key the tests give kumo (`KUMO_STORAGE_SECRET_KEY`).
pub const SECRET_KEY: &str = "kumo-test-secret-key";

/// The environment that gives kumo the tests' storage credentials.
pub const STORAGE_ENV: [(&str, &str); 2] = [
    ("KUMO_STORAGE_ACCESS_KEY", ACCESS_KEY),
    ("KUMO_STORAGE_SECRET_KEY", SECRET_KEY),
];

/// Where an S3 endpoint is and how to sign for it.
pub struct Endpoint {
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Endpoint {
    fn with_secret(&self, secret_key: &str) -> Endpoint {
        Endpoint {
            url: self.url.clone(),
            access_key: self.access_key.clone(),
            secret_key: secret_key.to_string(),
        }
    }
}

/// Runs S3 calls with boto3, in order, and returns one result per call:
/// `{"ok": response, "status": n}` or `{"error": {"code", "status", "message"}}`.
pub fn s3_calls(endpoint: &Endpoint, calls: Value) -> Vec<Value> {
    crate::harness::ensure_boto3();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/integration/s3_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs; hint: install Python 3");
    let request = json!({
        "endpoint": endpoint.url,
        "access_key": endpoint.access_key,
        "secret_key": endpoint.secret_key,
        "calls": calls,
    });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.to_string().as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the boto3 driver failed (is boto3 installed? `pip install boto3`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), request["calls"].as_array().unwrap().len());
    results
}

/// One call that must succeed; returns its response.
pub fn s3_ok(endpoint: &Endpoint, op: &str, args: Value) -> Value {
    let mut results = s3_calls(endpoint, json!([{ "op": op, "args": args }]));
    let result = results.remove(0);
    assert!(result.get("ok").is_some(), "{op} {args} failed: {result}");
    result["ok"].clone()
}

/// One call that must fail; returns `(code, status)`.
pub fn s3_err(endpoint: &Endpoint, op: &str, args: Value) -> (String, u64) {
    let result = s3_calls(endpoint, json!([{ "op": op, "args": args }])).remove(0);
    let error = result
        .get("error")
        .unwrap_or_else(|| panic!("{op} {args} should fail but answered {result}"));
    (
        error["code"].as_str().unwrap_or_default().to_string(),
        error["status"].as_u64().unwrap_or_default(),
    )
}

/// An MD5 in lower-case hex, as S3 eTags carry it.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(bytes))
}

/// The storage endpoint a running kumo printed.
pub fn storage_endpoint(kumo: &Kumo, access_key: &str, secret_key: &str) -> Endpoint {
    let stdout = kumo.stdout();
    let address = stdout
        .lines()
        .find_map(|line| line.strip_prefix("kumo: storage http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("kumo printed no storage address:\n{stdout}"));
    Endpoint {
        url: format!("http://{address}"),
        access_key: access_key.to_string(),
        secret_key: secret_key.to_string(),
    }
}

fn up_with_storage(manifest: &str, extra_args: &[&str]) -> (Kumo, Endpoint, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("kumo.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let kumo = Kumo::start(&Start {
        manifest: &manifest_path,
        data_dir: &dir.path().join("data"),
        extra_args,
        env: &STORAGE_ENV,
    })
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"));
    let endpoint = storage_endpoint(&kumo, ACCESS_KEY, SECRET_KEY);
    (kumo, endpoint, dir)
}

const NO_FUNCTIONS: &str = "[app]\nname = \"storage\"\n";

#[test]
fn objects_round_trip_with_metadata_ranges_and_deletes() {
    let (_kumo, s3, _dir) = up_with_storage(NO_FUNCTIONS, &[]);
    s3_ok(&s3, "create_bucket", json!({"Bucket": "photos"}));
    assert_eq!(
        s3_err(&s3, "create_bucket", json!({"Bucket": "photos"})),
        ("BucketAlreadyOwnedByYou".to_string(), 409)
    );
    let buckets = s3_ok(&s3, "list_buckets", json!({}));
    assert_eq!(buckets["Buckets"][0]["Name"], "photos");

    let body = "0123456789abcdef";
    let put = s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "photos", "Key": "in/a b+ü.txt", "Body": {"text": body},
               "ContentType": "text/plain", "Metadata": {"owner": "ann"}}),
    );
    let md5 = md5_hex(body.as_bytes());
    assert_eq!(put["ETag"], format!("\"{md5}\""));

    let head = s3_ok(
        &s3,
        "head_object",
        json!({"Bucket": "photos", "Key": "in/a b+ü.txt"}),
    );
    assert_eq!(head["ETag"], format!("\"{md5}\""));
    assert_eq!(head["ContentLength"], 16);
    assert_eq!(head["ContentType"], "text/plain");
    assert_eq!(head["Metadata"]["owner"], "ann");

    let get = s3_ok(
        &s3,
        "get_object",
        json!({"Bucket": "photos", "Key": "in/a b+ü.txt"}),
    );
    assert_eq!(get["Body"]["text"], body);
    assert_eq!(get["Metadata"]["owner"], "ann");

    for (range, expected) in [
        ("bytes=2-5", "2345"),
        ("bytes=-3", "def"),
        ("bytes=14-", "ef"),
        ("bytes=10-99", "abcdef"),
    ] {
        let get = s3_ok(
            &s3,
            "get_object",
            json!({"Bucket": "photos", "Key": "in/a b+ü.txt", "Range": range}),
        );
        assert_eq!(get["Body"]["text"], expected, "{range}");
        assert!(
            get["ContentRange"].as_str().unwrap().ends_with("/16"),
            "{get}"
        );
    }
    assert_eq!(
        s3_err(
            &s3,
            "get_object",
            json!({"Bucket": "photos", "Key": "in/a b+ü.txt", "Range": "bytes=16-20"})
        ),
        ("InvalidRange".to_string(), 416)
    );
    // A Range that does not parse is ignored, as S3 does: the whole object,
    // with its headers.
    for range in ["bytes=9-0", "lines=1-2", "bytes=abc"] {
        let get = s3_ok(
            &s3,
            "get_object",
            json!({"Bucket": "photos", "Key": "in/a b+ü.txt", "Range": range}),
        );
        assert_eq!(get["Body"]["text"], body, "{range}");
        assert_eq!(get["Metadata"]["owner"], "ann", "{range}");
        assert_eq!(get["ContentLength"], 16, "{range}");
        assert!(get.get("ContentRange").is_none(), "{range}: {get}");
    }

    s3_ok(
        &s3,
        "delete_object",
        json!({"Bucket": "photos", "Key": "in/a b+ü.txt"}),
    );
    assert_eq!(
        s3_err(
            &s3,
            "get_object",
            json!({"Bucket": "photos", "Key": "in/a b+ü.txt"})
        ),
        ("NoSuchKey".to_string(), 404)
    );
    // Deleting what is not there is not an error in S3.
    s3_ok(
        &s3,
        "delete_object",
        json!({"Bucket": "photos", "Key": "in/a b+ü.txt"}),
    );
    assert_eq!(
        s3_err(
            &s3,
            "put_object",
            json!({"Bucket": "nobucket", "Key": "k", "Body": {"text": "x"}})
        ),
        ("NoSuchBucket".to_string(), 404)
    );
}

#[test]
fn listings_honour_prefix_delimiter_and_continuation() {
    let (_kumo, s3, _dir) = up_with_storage(NO_FUNCTIONS, &[]);
    s3_ok(&s3, "create_bucket", json!({"Bucket": "docs"}));
    let keys = [
        "a.txt",
        "in/1.png",
        "in/2.png",
        "in/sub/3.png",
        "out/x",
        "z%+ .txt",
    ];
    let calls: Vec<Value> = keys
        .iter()
        .map(|key| json!({"op": "put_object", "args": {"Bucket": "docs", "Key": key, "Body": {"text": key}}}))
        .collect();
    for result in s3_calls(&s3, Value::Array(calls)) {
        assert!(result.get("ok").is_some(), "{result}");
    }

    let names = |listing: &Value| -> (Vec<String>, Vec<String>) {
        let field = |list: &str, key: &str| {
            listing[list]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| item[key].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        (field("Contents", "Key"), field("CommonPrefixes", "Prefix"))
    };
    let all = s3_ok(&s3, "list_objects_v2", json!({"Bucket": "docs"}));
    assert_eq!(names(&all).0, keys);
    assert_eq!(all["KeyCount"], 6);
    assert_eq!(all["Contents"][0]["Size"], 5);

    let top = s3_ok(
        &s3,
        "list_objects_v2",
        json!({"Bucket": "docs", "Delimiter": "/"}),
    );
    assert_eq!(
        names(&top),
        (
            vec!["a.txt".into(), "z%+ .txt".into()],
            vec!["in/".into(), "out/".into()]
        )
    );

    let inside = s3_ok(
        &s3,
        "list_objects_v2",
        json!({"Bucket": "docs", "Prefix": "in/", "Delimiter": "/"}),
    );
    assert_eq!(
        names(&inside),
        (
            vec!["in/1.png".into(), "in/2.png".into()],
            vec!["in/sub/".into()]
        )
    );

    // Page through two at a time.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut args = json!({"Bucket": "docs", "MaxKeys": 2});
        if let Some(token) = &token {
            args["ContinuationToken"] = json!(token);
        }
        let page = s3_ok(&s3, "list_objects_v2", args);
        let (page_keys, _) = names(&page);
        assert!(page_keys.len() <= 2);
        seen.extend(page_keys);
        if page["IsTruncated"] == json!(true) {
            token = Some(page["NextContinuationToken"].as_str().unwrap().to_string());
        } else {
            break;
        }
    }
    assert_eq!(seen, keys);
    assert_eq!(
        s3_err(
            &s3,
            "list_objects_v2",
            json!({"Bucket": "docs", "ContinuationToken": "forged"})
        ),
        ("InvalidArgument".to_string(), 400)
    );
    // S3 refuses a negative max-keys (it is not an empty listing).
    assert_eq!(
        s3_err(
            &s3,
            "list_objects_v2",
            json!({"Bucket": "docs", "MaxKeys": -1})
        ),
        ("InvalidArgument".to_string(), 400)
    );
}

#[test]
fn multipart_uploads_join_parts_and_check_them() {
    let (_kumo, s3, dir) = up_with_storage(NO_FUNCTIONS, &[]);
    s3_ok(&s3, "create_bucket", json!({"Bucket": "big"}));
    let part_one = dir.path().join("part1");
    let part_two = dir.path().join("part2");
    std::fs::write(&part_one, vec![b'a'; 5 << 20]).unwrap();
    std::fs::write(&part_two, vec![b'b'; (1 << 20) + 7]).unwrap();

    let created = s3_ok(
        &s3,
        "create_multipart_upload",
        json!({"Bucket": "big", "Key": "video.bin", "ContentType": "video/mp4"}),
    );
    let upload_id = created["UploadId"].as_str().unwrap().to_string();
    let results = s3_calls(
        &s3,
        json!([
            {"op": "upload_part", "args": {"Bucket": "big", "Key": "video.bin", "UploadId": upload_id, "PartNumber": 1, "Body": {"file": part_one}}},
            {"op": "upload_part", "args": {"Bucket": "big", "Key": "video.bin", "UploadId": upload_id, "PartNumber": 2, "Body": {"file": part_two}}},
        ]),
    );
    let etags: Vec<String> = results
        .iter()
        .map(|result| {
            result["ok"]["ETag"]
                .as_str()
                .unwrap_or_else(|| panic!("{result}"))
                .to_string()
        })
        .collect();
    let parts = json!([{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}]);
    let completed = s3_ok(
        &s3,
        "complete_multipart_upload",
        json!({"Bucket": "big", "Key": "video.bin", "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}),
    );
    let mut whole = vec![b'a'; 5 << 20];
    whole.extend(vec![b'b'; (1 << 20) + 7]);
    let md5 = md5_hex(&whole);
    assert_eq!(
        completed["ETag"],
        format!("\"{md5}\""),
        "multipart eTag is the whole object's MD5"
    );
    let get = s3_ok(
        &s3,
        "get_object",
        json!({"Bucket": "big", "Key": "video.bin"}),
    );
    assert_eq!(get["Body"]["md5"], md5);
    assert_eq!(get["Body"]["length"], whole.len());
    assert_eq!(get["ContentType"], "video/mp4");
    assert_eq!(
        s3_err(
            &s3,
            "upload_part",
            json!({"Bucket": "big", "Key": "video.bin", "UploadId": upload_id, "PartNumber": 3, "Body": {"text": "late"}})
        ),
        ("NoSuchUpload".to_string(), 404),
        "a completed upload is gone"
    );

    // Parts below 5 MiB (but the last), wrong eTags and aborts.
    let upload_id = s3_ok(
        &s3,
        "create_multipart_upload",
        json!({"Bucket": "big", "Key": "small"}),
    )["UploadId"]
        .as_str()
        .unwrap()
        .to_string();
    let small: Vec<String> = s3_calls(
        &s3,
        json!([
            {"op": "upload_part", "args": {"Bucket": "big", "Key": "small", "UploadId": upload_id, "PartNumber": 1, "Body": {"text": "one"}}},
            {"op": "upload_part", "args": {"Bucket": "big", "Key": "small", "UploadId": upload_id, "PartNumber": 2, "Body": {"text": "two"}}},
        ]),
    )
    .iter()
    .map(|result| result["ok"]["ETag"].as_str().unwrap().to_string())
    .collect();
    let complete = |parts: Value| {
        s3_err(
            &s3,
            "complete_multipart_upload",
            json!({"Bucket": "big", "Key": "small", "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}),
        )
    };
    assert_eq!(
        complete(json!([{"PartNumber": 1, "ETag": small[0]}, {"PartNumber": 2, "ETag": small[1]}])),
        ("EntityTooSmall".to_string(), 400)
    );
    assert_eq!(
        complete(json!([{"PartNumber": 1, "ETag": small[1]}])),
        ("InvalidPart".to_string(), 400)
    );
    assert_eq!(
        complete(json!([{"PartNumber": 2, "ETag": small[1]}, {"PartNumber": 1, "ETag": small[0]}])),
        ("InvalidPartOrder".to_string(), 400)
    );
    s3_ok(
        &s3,
        "abort_multipart_upload",
        json!({"Bucket": "big", "Key": "small", "UploadId": upload_id}),
    );
    assert_eq!(
        complete(json!([{"PartNumber": 2, "ETag": small[1]}])),
        ("NoSuchUpload".to_string(), 404)
    );
    assert_eq!(
        s3_err(&s3, "head_object", json!({"Bucket": "big", "Key": "small"})).1,
        404
    );
}

#[test]
fn bad_signatures_names_and_sizes_are_refused() {
    let (kumo, s3, dir) = up_with_storage(NO_FUNCTIONS, &["--storage-max-object-bytes", "1000"]);
    s3_ok(&s3, "create_bucket", json!({"Bucket": "guarded"}));

    let forged = s3.with_secret("not-the-secret");
    assert_eq!(s3_err(&forged, "list_buckets", json!({})).1, 403);
    assert_eq!(
        s3_err(
            &forged,
            "put_object",
            json!({"Bucket": "guarded", "Key": "x", "Body": {"text": "x"}})
        )
        .1,
        403
    );
    let stranger = Endpoint {
        url: s3.url.clone(),
        access_key: "SOMEONEELSE".into(),
        secret_key: SECRET_KEY.into(),
    };
    assert_eq!(s3_err(&stranger, "list_buckets", json!({})).1, 403);

    for key in [
        "a/../../escape",
        "../up",
        "a/./b",
        "a//b",
        "/abs",
        "back\\slash",
        "nul\0char",
        "folder/",
    ] {
        let (code, status) = s3_err(
            &s3,
            "put_object",
            json!({"Bucket": "guarded", "Key": key, "Body": {"text": "x"}}),
        );
        assert_eq!(status, 400, "{key:?}: {code}");
        assert!(
            ["InvalidArgument", "InvalidURI", "InvalidRequest"].contains(&code.as_str()),
            "{key:?}: {code}"
        );
    }
    let listing = s3_ok(&s3, "list_objects_v2", json!({"Bucket": "guarded"}));
    assert!(
        listing.get("Contents").is_none() || listing["Contents"] == json!([]),
        "{listing}"
    );

    for bucket in ["UPPER", "ab", "has_underscore", "192.168.0.1"] {
        let (code, status) = s3_err(&s3, "create_bucket", json!({"Bucket": bucket}));
        assert_eq!(
            (code.as_str(), status),
            ("InvalidBucketName", 400),
            "{bucket}"
        );
    }

    s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "guarded", "Key": "fits", "Body": {"repeat": "x", "times": 1000}}),
    );
    assert_eq!(
        s3_err(
            &s3,
            "put_object",
            json!({"Bucket": "guarded", "Key": "too-big", "Body": {"repeat": "x", "times": 1001}})
        ),
        ("EntityTooLarge".to_string(), 400)
    );
    assert_eq!(
        s3_err(
            &s3,
            "head_object",
            json!({"Bucket": "guarded", "Key": "too-big"})
        )
        .1,
        404
    );
    let upload_id = s3_ok(
        &s3,
        "create_multipart_upload",
        json!({"Bucket": "guarded", "Key": "too-big"}),
    )["UploadId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s3_err(
            &s3,
            "upload_part",
            json!({"Bucket": "guarded", "Key": "too-big", "UploadId": upload_id, "PartNumber": 1, "Body": {"repeat": "x", "times": 1001}})
        ),
        ("EntityTooLarge".to_string(), 400)
    );
    // Nothing of the refused uploads is left behind.
    let temp = dir.path().join("data/storage/.tmp");
    let left: Vec<_> = std::fs::read_dir(&temp).unwrap().collect();
    assert!(
        left.is_empty(),
        "temp files left in {}: {left:?}",
        temp.display()
    );
    let parts = dir.path().join("data/storage/.uploads").join(&upload_id);
    assert_eq!(
        std::fs::read_dir(&parts).unwrap().count(),
        1,
        "only upload.json"
    );
    drop(kumo);
}

/// Generated credentials are written once (0600) and printed once.
#[test]
fn credentials_are_generated_on_first_start_and_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(&manifest, NO_FUNCTIONS).unwrap();
    let data_dir = dir.path().join("data");
    let start = || {
        Kumo::start(&Start {
            manifest: &manifest,
            data_dir: &data_dir,
            extra_args: &[],
            env: &[],
        })
        .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
    };
    let first = start();
    let stdout = first.stdout();
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
            .trim()
            .to_string()
    };
    let (access_key, secret_key) = (value("access key:"), value("secret key:"));
    let s3 = storage_endpoint(&first, &access_key, &secret_key);
    s3_ok(&s3, "create_bucket", json!({"Bucket": "kept"}));
    first.terminate();

    let second = start();
    assert!(
        !second.stdout().contains(&secret_key),
        "the secret is printed only once"
    );
    let s3 = storage_endpoint(&second, &access_key, &secret_key);
    let buckets = s3_ok(&s3, "list_buckets", json!({}));
    assert_eq!(buckets["Buckets"][0]["Name"], "kept");
}

/// The change hook, in-process: called with the right fields before the
/// answer, and a failing hook fails the call with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_hook_sees_every_commit_and_can_refuse() {
    use kumo::model::ObjectChange;
    use kumo::storage::{ChangeHook, StorageCredentials, StorageOptions};

    let dir = tempfile::tempdir().unwrap();
    let changes: Arc<Mutex<Vec<ObjectChange>>> = Arc::default();
    let fail_keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook: ChangeHook = {
        let changes = changes.clone();
        let fail_keys = fail_keys.clone();
        Arc::new(move |change: ObjectChange| {
            let changes = changes.clone();
            let refuse = fail_keys.lock().unwrap().contains(&change.key);
            Box::pin(async move {
                if refuse {
                    anyhow::bail!("the queue is full");
                }
                changes.lock().unwrap().push(change);
                Ok(())
            })
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kumo::storage::serve(
        listener,
        StorageOptions {
            root: dir.path().join("storage"),
            credentials: StorageCredentials {
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
            },
            max_object_bytes: 10 << 20,
        },
        hook,
        kumo::connections::ConnectionLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let s3 = Endpoint {
        url: format!("http://{address}"),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
    };
    fail_keys.lock().unwrap().push("refused.png".into());
    let results = tokio::task::spawn_blocking(move || {
        let results = s3_calls(
            &s3,
            json!([
                {"op": "create_bucket", "args": {"Bucket": "photos"}},
                {"op": "put_object", "args": {"Bucket": "photos", "Key": "in/a.png", "Body": {"text": "png bytes"}}},
                {"op": "delete_object", "args": {"Bucket": "photos", "Key": "in/a.png"}},
                {"op": "delete_object", "args": {"Bucket": "photos", "Key": "never-there"}},
                {"op": "put_object", "args": {"Bucket": "photos", "Key": "refused.png", "Body": {"text": "x"}}},
                {"op": "put_object", "args": {"Bucket": "photos", "Key": "b/1", "Body": {"text": "1"}}},
                {"op": "put_object", "args": {"Bucket": "photos", "Key": "b/2", "Body": {"text": "22"}}},
                {"op": "delete_objects", "args": {"Bucket": "photos", "Delete": {"Objects": [
                    {"Key": "b/1"}, {"Key": "b/2"}, {"Key": "b/../escape"}, {"Key": "not-there"}]}}},
            ]),
        );
        (results, md5_hex(b"png bytes"))
    })
    .await
    .unwrap();
    let (results, md5) = results;
    assert!(
        results[..4]
            .iter()
            .chain(&results[5..])
            .all(|result| result.get("ok").is_some()),
        "{results:?}"
    );
    assert_eq!(
        results[4]["error"]["code"], "ServiceUnavailable",
        "{:?}",
        results[4]
    );
    assert_eq!(results[4]["error"]["status"], 503);
    // Refused, so not kept: no object is left without its event.
    assert!(!dir.path().join("storage/photos/refused.png").exists());

    let batch = &results[7]["ok"];
    let deleted: Vec<&str> = batch["Deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["Key"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["b/1", "b/2", "not-there"], "{batch}");
    assert_eq!(batch["Errors"][0]["Key"], "b/../escape", "{batch}");
    assert_eq!(batch["Errors"][0]["Code"], "InvalidArgument", "{batch}");

    let changes = changes.lock().unwrap().clone();
    let removed: Vec<(&str, &str)> = changes[4..]
        .iter()
        .map(|change| (change.key.as_str(), change.event_name.as_str()))
        .collect();
    assert_eq!(
        removed,
        [
            ("b/1", "ObjectRemoved:DeleteObjects"),
            ("b/2", "ObjectRemoved:DeleteObjects")
        ]
    );
    let changes = &changes[..2];
    assert_eq!(
        (
            changes[0].bucket.as_str(),
            changes[0].key.as_str(),
            changes[0].size,
            changes[0].etag.as_str()
        ),
        ("photos", "in/a.png", 9, md5.as_str())
    );
    assert_eq!(changes[0].event_name, "ObjectCreated:PutObject");
    assert_eq!(changes[0].source_ip.as_deref(), Some("127.0.0.1"));
    assert!(!changes[0].request_id.is_empty());
    assert_eq!(
        (
            changes[1].key.as_str(),
            changes[1].size,
            changes[1].event_name.as_str()
        ),
        ("in/a.png", 0, "ObjectRemoved:DeleteObject")
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A function reads an uploaded object through its read-only mount, cannot
/// write there, and writes through a read-write mount what S3 then serves.
#[test]
fn functions_see_buckets_through_their_files_mounts() {
    let wasm = harness::toml_path(&harness::test_guest("files"));
    let manifest = format!(
        r#"
[function.files]
source = {wasm}
files = [
  {{ bucket = "photos", path = "/in" }},
  {{ bucket = "thumbs", path = "/out", read_only = false }},
]

[[trigger.http]]
route = "/files"
function = "files"
"#
    );
    let (kumo, s3, _dir) = up_with_storage(&manifest, &[]);
    // The mounts created both buckets.
    let buckets = s3_ok(&s3, "list_buckets", json!({}));
    assert_eq!(buckets["Buckets"].as_array().unwrap().len(), 2, "{buckets}");
    s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "photos", "Key": "in/hello.txt", "Body": {"text": "hello from s3"}}),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = harness::client();
    let call = |method: reqwest::Method, query: &str, body: &'static str| {
        let request = client
            .request(method, kumo.url(&format!("/files?{query}")))
            .body(body);
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    assert_eq!(
        call(reqwest::Method::GET, "path=/in/in/hello.txt", ""),
        (200, "hello from s3".to_string())
    );
    assert_eq!(
        call(reqwest::Method::GET, "list=/in", ""),
        (200, "in".to_string()),
        "no sidecars in the mount"
    );
    let (status, text) = call(reqwest::Method::PUT, "path=/in/in/hello.txt", "overwritten");
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("cannot write"), "{text}");
    let (status, text) = call(reqwest::Method::GET, "path=/etc/passwd", "");
    assert_eq!(status, 500, "{text}");

    assert_eq!(
        call(
            reqwest::Method::PUT,
            "path=/out/thumbs/made.txt",
            "made by a function"
        ),
        (200, "written".to_string())
    );
    let get = s3_ok(
        &s3,
        "get_object",
        json!({"Bucket": "thumbs", "Key": "thumbs/made.txt"}),
    );
    assert_eq!(get["Body"]["text"], "made by a function");
    assert_eq!(
        get["ETag"],
        format!("\"{}\"", md5_hex(b"made by a function"))
    );
    let original = s3_ok(
        &s3,
        "get_object",
        json!({"Bucket": "photos", "Key": "in/hello.txt"}),
    );
    assert_eq!(original["Body"]["text"], "hello from s3");
}

/// Writes a `width` x `height` RGB PNG (a gradient) with Python's standard
/// library: the test crate has no image encoder.
fn write_png(path: &Path, width: u32, height: u32) {
    let script = r#"
import struct, sys, zlib
path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width)) for y in range(height))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(path, "wb").write(png)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(width.to_string())
        .arg(height.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Width and height from a PNG's IHDR chunk, given the file's first bytes
/// as hex.
fn png_size(head_hex: &str) -> (u32, u32) {
    let head = hex::decode(head_hex).unwrap();
    assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let number = |at: usize| u32::from_be_bytes(head[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

/// The `thumbnail` example, invoked as storage triggers will: an image is
/// uploaded with S3, the function gets the OSS event, reads the image from
/// its read-only mount and writes a 128-pixel-wide thumbnail to another
/// bucket, which S3 then serves.
#[test]
fn the_thumbnail_example_writes_a_128_pixel_wide_thumbnail() {
    let wasm = harness::toml_path(&harness::example("thumbnail"));
    let manifest = format!(
        r#"
[function.thumbnail]
source = {wasm}
memory_mb = 256
files = [
  {{ bucket = "photos", path = "/in" }},
  {{ bucket = "thumbnails", path = "/out", read_only = false }},
]

[[trigger.http]]
route = "/thumbnail"
function = "thumbnail"
"#
    );
    let (kumo, s3, dir) = up_with_storage(&manifest, &[]);
    let image = dir.path().join("cat.png");
    write_png(&image, 300, 150);
    s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "photos", "Key": "in/cat.png", "Body": {"file": image}, "ContentType": "image/png"}),
    );
    let event = |key: &str, event_name: &str| {
        json!({"events": [{
            "eventName": event_name, "eventSource": "acs:oss", "eventTime": "2026-11-23T06:45:43.000Z",
            "eventVersion": "1.0", "region": "local",
            "oss": {"bucket": {"name": "photos", "arn": "acs:oss:local:kumo:photos", "ownerIdentity": "kumo"},
                    "object": {"key": key, "size": 1, "deltaSize": 1, "eTag": "00"},
                    "ossSchemaVersion": "1.0", "ruleId": "thumbnails"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"requestId": "test"}, "userIdentity": {"principalId": "kumo"}}]})
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = harness::client();
    let post = |body: String| {
        let request = client
            .post(kumo.url("/thumbnail"))
            .header("content-type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-type", "ObjectCreated:PutObject")
            .body(body);
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };

    let (status, body) = post(event("in/cat.png", "ObjectCreated:PutObject").to_string());
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["thumbnails"],
        json!([{"key": "thumbs/in/cat.png", "width": 128, "height": 64}])
    );
    let thumbnail = s3_ok(
        &s3,
        "get_object",
        json!({"Bucket": "thumbnails", "Key": "thumbs/in/cat.png"}),
    );
    assert_eq!(
        png_size(thumbnail["Body"]["head_hex"].as_str().unwrap()),
        (128, 64)
    );
    let listing = s3_ok(&s3, "list_objects_v2", json!({"Bucket": "thumbnails"}));
    assert_eq!(listing["KeyCount"], 1, "no partial files left: {listing}");

    // Not an image, a removal, a missing object, not an event.
    let (status, body) = post(event("in/notes.txt", "ObjectCreated:PutObject").to_string());
    assert_eq!((status, body.as_str()), (200, r#"{"thumbnails":[]}"#));
    let (status, body) = post(event("in/cat.png", "ObjectRemoved:DeleteObject").to_string());
    assert_eq!((status, body.as_str()), (200, r#"{"thumbnails":[]}"#));
    let (status, body) = post(event("in/missing.png", "ObjectCreated:PutObject").to_string());
    assert_eq!(status, 500, "a missing object asks for a retry: {body}");
    let (status, _) = post("not json".to_string());
    assert_eq!(status, 400);
}

/// The `thumbnail` example end to end, as `examples/kumo.toml` wires it: a
/// PNG uploaded with boto3 under `in/` of `photos` makes the storage
/// trigger invoke the function, which writes a 128-pixel-wide thumbnail
/// that boto3 then finds in `thumbnails`. Nothing but S3 calls drives it.
#[test]
fn an_uploaded_png_gets_a_thumbnail_through_the_storage_trigger() {
    let wasm = harness::toml_path(&harness::example("thumbnail"));
    let manifest = format!(
        r#"
[function.thumbnail]
source = {wasm}
memory_mb = 256
timeout_ms = 10000
files = [
  {{ bucket = "photos", path = "/in" }},
  {{ bucket = "thumbnails", path = "/out", read_only = false }},
]

[[trigger.storage]]
bucket = "photos"
events = ["ObjectCreated:*"]
prefix = "in/"
suffix = ".png"
function = "thumbnail"

[[trigger.storage]]
bucket = "photos"
events = ["ObjectCreated:*"]
prefix = "in/"
suffix = ".jpg"
function = "thumbnail"
"#
    );
    let (kumo, s3, dir) = up_with_storage(&manifest, &[]);
    let image = dir.path().join("cat.png");
    write_png(&image, 300, 150);
    s3_ok(
        &s3,
        "put_object",
        json!({"Bucket": "photos", "Key": "in/cat.png", "Body": {"file": image}, "ContentType": "image/png"}),
    );
    // Bounded polling with the S3 client until the thumbnail exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let thumbnail = loop {
        let result = s3_calls(
            &s3,
            json!([{"op": "get_object", "args": {"Bucket": "thumbnails", "Key": "thumbs/in/cat.png"}}]),
        )
        .remove(0);
        if let Some(object) = result.get("ok") {
            break object.clone();
        }
        assert_eq!(result["error"]["code"], "NoSuchKey", "{result}");
        assert!(
            std::time::Instant::now() < deadline,
            "no thumbnail after 60 s; kumo logs:\n{}",
            kumo.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (width, height) = png_size(thumbnail["Body"]["head_hex"].as_str().unwrap());
    assert_eq!(width, 128, "the thumbnail is 128 pixels wide");
    assert_eq!(height, 64, "and keeps the 2:1 aspect ratio");
    let listing = s3_ok(&s3, "list_objects_v2", json!({"Bucket": "thumbnails"}));
    assert_eq!(listing["KeyCount"], 1, "only the thumbnail: {listing}");
}
