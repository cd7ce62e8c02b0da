//! The fault suite: what an unlucky operator or a hostile client does to a
//! running Kumo, and what Kumo must do about it. A corrupted compile cache,
//! clients that send slowly or hold connections open, a database and a
//! disk that fail and come back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Kumo, Start, client, example, toml_path};

fn hello_and_echo(extra: &str) -> String {
    format!(
        "[function.hello]\nsource = {}\n\n[function.echo]\nsource = {}\n{extra}\n\n\
         [[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n\n\
         [[trigger.http]]\nroute = \"/echo/...\"\nfunction = \"echo\"\n",
        toml_path(&example("hello")),
        toml_path(&example("echo")),
    )
}

/// The compile cache's entries: wasmtime's files without an extension.
fn cache_entries(data_dir: &Path) -> Vec<PathBuf> {
    let mut entries = Vec::new();
    for compiler in std::fs::read_dir(data_dir.join("cache/modules")).unwrap() {
        for file in std::fs::read_dir(compiler.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none() {
                entries.push(path);
            }
        }
    }
    entries.sort();
    entries
}

/// Flips bits in the middle of an entry's machine code and compresses it
/// again, so it still decompresses and wasmtime would load it as it is.
fn flip_bits_inside(entry: &Path) {
    let compressed = std::fs::read(entry).unwrap();
    let mut code = zstd::decode_all(compressed.as_slice()).unwrap();
    let (start, end) = (code.len() / 4, code.len() * 3 / 4);
    for byte in code[start..end].iter_mut().step_by(3) {
        *byte ^= 0xA5;
    }
    std::fs::write(entry, zstd::encode_all(code.as_slice(), 3).unwrap()).unwrap();
}

#[tokio::test]
async fn a_corrupted_compile_cache_entry_is_removed_and_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(&manifest, hello_and_echo("")).unwrap();
    let data_dir = dir.path().join("data");
    let start = Start {
        manifest: &manifest,
        data_dir: &data_dir,
        extra_args: &[],
        env: &[],
    };
    let kumo = Kumo::start(&start).unwrap();
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert!(kumo.terminate().success());

    let entries = cache_entries(&data_dir);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        flip_bits_inside(entry);
    }
    // Restarted twice: the first start drops both entries and compiles
    // again; the second loads the new entries from the cache.
    for round in 0..2 {
        let kumo = Kumo::start(&start).unwrap();
        for path in ["/hello", "/echo/x"] {
            let answer = client().get(kumo.url(path)).send().await.unwrap();
            assert_eq!(answer.status(), 200, "round {round}: {path}");
        }
        let logs = kumo.logs();
        let complaints = logs.matches("does not match its digest").count();
        assert_eq!(complaints, if round == 0 { 2 } else { 0 }, "{logs}");
        assert!(kumo.terminate().success());
    }
    assert_eq!(cache_entries(&data_dir).len(), 2);
}

/// Sends `bytes` on a new connection to `addr`, then waits (at most
/// `limit`) for the server to answer or close; returns what it sent.
async fn send_and_read(addr: std::net::SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_or_idles_is_cut_off() {
    let kumo = Kumo::up_with_env(&hello_and_echo(""), &[("KUMO_HEADER_TIMEOUT_MS", "300")]);
    // Half a request line, then nothing: closed, on every listener.
    for addr in [kumo.addr, kumo.admin_addr] {
        let answer = send_and_read(addr, b"GET /hel", Duration::from_secs(20)).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // A kept-alive connection that stays idle after its answer is closed.
    let mut stream = TcpStream::connect(kumo.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Everyone else is served.
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_and_other_listeners_serve() {
    let kumo = Kumo::up_with_env(&hello_and_echo(""), &[("KUMO_MAX_CONNECTIONS", "4")]);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(kumo.addr).await.unwrap());
    }
    let mut waiting = TcpStream::connect(kumo.addr).await.unwrap();
    waiting
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(500), waiting.read_to_end(&mut answer)).await;
    assert!(early.is_err(), "answered past the cap: {answer:?}");
    // The admin API has its own connections.
    let health = client()
        .get(format!("http://{}/healthz", kumo.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // One idle connection closes: the waiting one is served.
    drop(idle.pop());
    tokio::time::timeout(Duration::from_secs(20), waiting.read_to_end(&mut answer))
        .await
        .expect("served once a connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_slow_request_body_holds_a_connection_not_the_only_instance() {
    let kumo = Kumo::up(&hello_and_echo(
        "max_instances = 1\nmax_queue = 0\nmax_request_bytes = 1048576",
    ));
    let mut slow = TcpStream::connect(kumo.addr).await.unwrap();
    slow.write_all(
        b"POST /echo/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\nconnection: close\r\n\r\nfirst ten.",
    )
    .await
    .unwrap();
    // The only instance stays free for others while the body trickles in.
    for _ in 0..3 {
        let echo = client()
            .post(kumo.url("/echo/fast"))
            .body("quick")
            .send()
            .await
            .unwrap();
        assert_eq!(echo.status(), 200);
    }
    slow.write_all(b"rest here.").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_length\":20"), "{answer}");
}

/// A small tmpfs of its own, unmounted when dropped: a disk the test can
/// fill. `Err` says why none could be mounted (not root, or no permission
/// in this container).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // Whatever fits of a smaller write, too.
        while file.write_all(&chunk[..512]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// With its disk full, Kumo says so (507 on S3 and the admin API), keeps
/// serving warm functions, keeps every invocation's record until it can
/// store it, and recovers without a restart once space is freed.
#[tokio::test]
async fn a_full_disk_answers_507_keeps_every_record_and_recovers() {
    use crate::storage::{ACCESS_KEY, SECRET_KEY, STORAGE_ENV, s3_calls, storage_endpoint};
    use serde_json::json;

    let disk = match SmallDisk::mount(64) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_answers_507_keeps_every_record_and_recovers: cannot mount a tmpfs here ({why}); run the tests as root on a machine that allows mounts"
            );
            return;
        }
    };
    let manifest = disk.path().join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "{}\n[function.sink]\nsource = {}\n\n[[trigger.storage]]\nbucket = \"inbox\"\nevents = [\"ObjectCreated:*\"]\nfunction = \"sink\"\n",
            hello_and_echo(""),
            toml_path(&crate::harness::test_guest("eventsink")),
        ),
    )
    .unwrap();
    let kumo = Kumo::start(&Start {
        manifest: &manifest,
        data_dir: &disk.path().join("data"),
        extra_args: &[],
        env: &STORAGE_ENV,
    })
    .unwrap();
    let endpoint = storage_endpoint(&kumo, ACCESS_KEY, SECRET_KEY);
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);

    let filler = disk.fill();
    let put = |key: &str| json!([{"op": "put_object", "args": {"Bucket": "inbox", "Key": key, "Body": {"repeat": "x", "times": 65536}}}]);
    let full = s3_calls(&endpoint, put("while-full.txt"));
    assert_eq!(full[0]["error"]["status"], 507, "{full:?}");
    assert_eq!(full[0]["error"]["code"], "XKumoStorageFull", "{full:?}");
    let (status, refused) = crate::admin_api::deploy(
        &kumo,
        "echo2",
        std::fs::read(example("echo")).unwrap(),
        json!({}),
    )
    .await;
    assert_eq!(status, 507, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_storage");
    // Warm functions keep serving.
    for _ in 0..10 {
        let hello = client().get(kumo.url("/hello")).send().await.unwrap();
        assert_eq!(hello.status(), 200);
    }

    std::fs::remove_file(filler).unwrap();
    // Recovered without a restart: writes work again, and every
    // invocation answered meanwhile is billed.
    let (status, deployed) = crate::admin_api::deploy(
        &kumo,
        "echo2",
        std::fs::read(example("echo")).unwrap(),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{deployed}");
    let stored = s3_calls(&endpoint, put("after.txt"));
    assert!(stored[0].get("ok").is_some(), "{stored:?}");
    assert!(
        kumo.wait_for_log_line(&["after.txt"]),
        "the upload's event reaches its function"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let billed = loop {
        let list: serde_json::Value = kumo
            .admin(
                reqwest::Method::GET,
                "/v1/invocations?function=hello&limit=100",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let count = list["invocations"].as_array().unwrap().len();
        if count == 11 || std::time::Instant::now() > deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(billed, 11, "hello's invocations in the records");
    // The object refused while the disk was full was not kept.
    let listed = s3_calls(
        &endpoint,
        json!([{"op": "list_objects_v2", "args": {"Bucket": "inbox"}}]),
    );
    let keys: Vec<&str> = listed[0]["ok"]["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["after.txt"]);
    drop(kumo);
}

/// A `kill -9` under load loses at most the metering writer's last window
/// (it stores every ~100 ms): every request answered more than a second
/// before the kill has its record after the restart, and no record exists
/// for a request that was not answered. The loss is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_under_load_loses_only_the_last_metering_window() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(&manifest, hello_and_echo("")).unwrap();
    let data_dir = dir.path().join("data");
    let kumo = Kumo::start(&Start {
        manifest: &manifest,
        data_dir: &data_dir,
        extra_args: &["--report-lines"],
        env: &[],
    })
    .unwrap();
    let url = kumo.url("/hello");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = client();
                let mut answered = Vec::new();
                while let Ok(response) = client.get(&url).send().await {
                    let id = response.headers()["x-kumo-request-id"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    if response.bytes().await.is_err() {
                        break;
                    }
                    answered.push((id, Instant::now()));
                }
                answered
            })
        })
        .collect();
    // Enough load that many answers are older than the bound below.
    assert!(kumo.wait_for_log_count("REPORT RequestId:", 1500));
    let killed_at = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &kumo.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = kumo.wait();
    let mut answered = Vec::new();
    for worker in workers {
        answered.extend(worker.await.unwrap());
    }

    let database =
        kumo::database::open(&data_dir, &kumo::database::DatabaseLocation::DataDirectory)
            .await
            .unwrap();
    let stored: std::collections::BTreeSet<String> =
        kumo::metering::recent_invocations(&database, None, 1_000_000)
            .await
            .unwrap()
            .into_iter()
            .map(|record| record.request_id.to_string())
            .collect();
    let answered_ids: std::collections::BTreeSet<&str> =
        answered.iter().map(|(id, _)| id.as_str()).collect();
    let phantom: Vec<&String> = stored
        .iter()
        .filter(|id| !answered_ids.contains(id.as_str()))
        .collect();
    let lost: Vec<Duration> = answered
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .map(|(_, at)| killed_at.saturating_duration_since(*at))
        .collect();
    let oldest_lost = lost.iter().max().copied().unwrap_or_default();
    eprintln!(
        "kill -9 under load: {} answered, {} stored, {} lost, the oldest answered {} ms before the kill",
        answered.len(),
        stored.len(),
        lost.len(),
        oldest_lost.as_millis()
    );
    // A request may be answered while its record is still being written:
    // an answer lost at the kill can have a record, never the reverse.
    assert!(phantom.len() <= 8, "records with no answer: {phantom:?}");
    assert!(
        oldest_lost < Duration::from_secs(1),
        "a record answered {} ms before the kill was lost",
        oldest_lost.as_millis()
    );
}
