//! Three `kumo server` processes on one PostgreSQL database (issue 14):
//! changes made through one node are served by the others, one bill
//! counts every node, a timer fires once per tick however many nodes run
//! it, and uploads survive a node killed with SIGKILL.
//!
//! The database comes from `KUMO_TEST_POSTGRES_URL` (`.ci/run` sets it):
//! each test creates a database of its own and drops it. Without the
//! variable the tests print that they were skipped and why.
//!
//! The times changes take to reach the other nodes are printed, not
//! asserted (each node compiles a new version itself, which a loaded CI
//! machine makes slow): `bench/cluster.sh` measures them on a release
//! build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kumo::database::DatabaseLocation;
use kumo::database::scratch::ScratchPostgres;
use kumo::events::{EventState, list_events};
use serde_json::{Value, json};

use crate::harness::{Kumo, Start, client, example, test_guest, toml_path, wait_for};
use crate::storage::{ACCESS_KEY, SECRET_KEY, STORAGE_ENV, s3_calls, storage_endpoint};

/// The admin token every node is given (a cluster shares one).
const TOKEN: &str = "cluster-test-token";

/// Nodes on one scratch database, with one shared storage folder; the
/// nodes are killed and the database dropped when it is dropped (a failed
/// test too).
struct Cluster {
    scratch: Option<ScratchPostgres>,
    dir: tempfile::TempDir,
    nodes: Vec<Kumo>,
}

impl Cluster {
    /// `count` nodes, or `None` when the tests have no PostgreSQL.
    async fn start(test: &str, count: usize) -> Option<Cluster> {
        let scratch = ScratchPostgres::create(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            scratch: Some(scratch),
            dir,
            nodes: Vec::new(),
        };
        for index in 0..count {
            let node = cluster.start_node(index);
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    fn start_node(&self, index: usize) -> Kumo {
        let data_dir = self.dir.path().join(format!("node-{index}"));
        let storage = self.dir.path().join("shared-storage");
        let name = format!("node-{index}");
        let args = [
            "--database",
            self.url(),
            "--admin-token",
            TOKEN,
            "--storage-dir",
            storage.to_str().unwrap(),
            "--node-name",
            name.as_str(),
        ];
        Kumo::start_verb(
            "server",
            &Start {
                manifest: Path::new(""),
                data_dir: &data_dir,
                extra_args: &args,
                env: &STORAGE_ENV,
            },
        )
        .unwrap_or_else(|exited| panic!("node {index} did not start: {exited:#?}"))
    }

    /// Writes a manifest into the cluster's folder.
    fn manifest(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs a client verb through node `index`, which must succeed.
    fn cli(&self, index: usize, args: &[&str]) -> String {
        let exited = self.nodes[index].cli(args);
        assert!(
            exited.status.success(),
            "{args:?} through node {index}: {exited:#?}"
        );
        exited.stdout
    }

    /// The database the nodes share, opened beside them.
    async fn database(&self) -> kumo::database::Database {
        let location = DatabaseLocation::Postgres(self.url().to_string());
        kumo::database::open(self.dir.path(), &location)
            .await
            .unwrap()
    }

    fn url(&self) -> &str {
        &self.scratch.as_ref().expect("the database lives").url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if let Some(scratch) = self.scratch.take() {
            // Dropped outside the test's runtime, which may be unwinding.
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(scratch.drop_database());
            })
            .join()
            .unwrap();
        }
    }
}

/// Sends SIGKILL: no graceful anything, leases and all left behind.
fn kill(node: &Kumo) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// GETs `path` on a node's gateway: (status, body).
async fn get(node: &Kumo, path: &str) -> (u16, String) {
    match client().get(node.url(path)).send().await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// Polls every node in `nodes` until `path` answers 200 with a body for
/// which `wanted` holds; returns how long the slowest took, and counts
/// every 200 answer in `answered`.
async fn until_all_serve(
    nodes: &[&Kumo],
    path: &str,
    wanted: impl Fn(&str) -> bool,
    answered: &mut u64,
) -> Duration {
    let started = Instant::now();
    for node in nodes {
        loop {
            let (status, body) = get(node, path).await;
            if status == 200 {
                *answered += 1;
            }
            if status == 200 && wanted(&body) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path} not served as wanted by {} after 60 s: {status} {body}\n{}",
                node.admin_base(),
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

/// `timer:<name>:<time>:<payload>` summaries of the `eventsink` lines in
/// a node's log: the scheduled times of the ticks it delivered.
fn ticks_in(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|line| {
            let rest = &line[line.find("summary=timer:tick:")? + "summary=timer:tick:".len()..];
            let (time, _payload) = rest.split_once(":sweep")?;
            Some(time.to_string())
        })
        .collect()
}

/// How often each scheduled time was delivered, over every node's log.
fn tick_counts(nodes: &[Kumo]) -> BTreeMap<chrono::DateTime<chrono::Utc>, usize> {
    let mut counts = BTreeMap::new();
    for node in nodes {
        for time in ticks_in(&node.logs()) {
            *counts.entry(time.parse().unwrap()).or_insert(0) += 1;
        }
    }
    counts
}

/// The longest run of consecutive seconds in `counts`.
fn longest_run(counts: &BTreeMap<chrono::DateTime<chrono::Utc>, usize>) -> usize {
    let (mut longest, mut run) = (0, 0);
    let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
    for time in counts.keys() {
        run = match previous {
            Some(previous) if *time - previous == chrono::TimeDelta::seconds(1) => run + 1,
            _ => 1,
        };
        longest = longest.max(run);
        previous = Some(*time);
    }
    longest
}

#[tokio::test]
async fn three_nodes_share_deploys_aliases_bills_and_one_timer() {
    let Some(cluster) =
        Cluster::start("three_nodes_share_deploys_aliases_bills_and_one_timer", 3).await
    else {
        return;
    };
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let mut answered = 0;

    // A deploy, an alias and a route made through A are served by B and C.
    let hello = cluster.manifest(
        "greet-1.toml",
        &format!(
            "[function.greet]\nsource = {}\n",
            toml_path(&example("hello"))
        ),
    );
    cluster.cli(0, &["deploy", "-f", hello.to_str().unwrap()]);
    cluster.cli(0, &["alias", "set", "greet", "live", "1"]);
    cluster.cli(
        0,
        &[
            "triggers",
            "create",
            "--route",
            "/greet",
            "--function",
            "greet:live",
        ],
    );
    let deployed = until_all_serve(
        &[b, c],
        "/greet",
        |body| body == "Hello from Kumo",
        &mut answered,
    )
    .await;
    println!("cluster: a deploy made through A was served by B and C after {deployed:?}");

    // Version 2 is other code; moving the alias through A moves B and C.
    let echo = cluster.manifest(
        "greet-2.toml",
        &format!(
            "[function.greet]\nsource = {}\n",
            toml_path(&example("echo"))
        ),
    );
    cluster.cli(0, &["deploy", "-f", echo.to_str().unwrap()]);
    // B and C load (and compile) version 2 before the alias moves, so the
    // move's time is the move's alone.
    for node in [b, c] {
        wait_for(Duration::from_secs(60), "version 2 loaded", || async {
            let detail: Value = node
                .admin(reqwest::Method::GET, "/v1/functions/greet")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (detail["versions"].as_array()?.len() == 2).then_some(())
        })
        .await;
    }
    let (status, body) = get(b, "/greet").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello from Kumo"),
        "a new version does not move the alias"
    );
    answered += 1;
    cluster.cli(0, &["alias", "set", "greet", "live", "2"]);
    let moved = until_all_serve(
        &[a, b, c],
        "/greet",
        |body| body.contains("\"method\""),
        &mut answered,
    )
    .await;
    println!("cluster: an alias moved through A was served by A, B and C after {moved:?}");

    // One bill, through any node, counts what every node answered.
    for index in 0..3 {
        for _ in 0..3 {
            let (status, _) = get(&cluster.nodes[index], "/greet").await;
            assert_eq!(status, 200);
            answered += 1;
        }
    }
    for index in 0..3 {
        let counted = wait_for(
            Duration::from_secs(30),
            "every node's invocations in the bill",
            || async {
                let bill: Value =
                    serde_json::from_str(&cluster.cli(index, &["bill", "-o", "json"])).unwrap();
                let greet = bill["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|row| row["function"] == "greet")
                    .map_or(0, |row| row["invocations"].as_u64().unwrap());
                (greet >= answered).then_some(greet)
            },
        )
        .await;
        assert_eq!(counted, answered, "the bill through node {index}");
    }

    // /metrics stays per node, each series labelled with its node.
    let metrics = b
        .admin(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let invocations = metrics
        .lines()
        .find(|line| line.starts_with("kumo_invocations_total{") && line.contains("greet"))
        .unwrap_or_else(|| panic!("no greet invocations in B's metrics:\n{metrics}"));
    assert!(invocations.contains("node=\"node-1\""), "{invocations}");

    // A one-second timer: every node runs it, each tick is delivered once.
    let timer = cluster.manifest(
        "timer.toml",
        &format!(
            "[function.sink]\nsource = {}\n\n[[trigger.timer]]\nname = \"tick\"\n\
             cron = \"* * * * * *\"\nfunction = \"sink\"\npayload = \"sweep\"\n",
            toml_path(&test_guest("eventsink"))
        ),
    );
    cluster.cli(0, &["deploy", "-f", timer.to_str().unwrap()]);
    let counts = wait_for(Duration::from_secs(60), "ten consecutive ticks", || async {
        let counts = tick_counts(&cluster.nodes);
        (longest_run(&counts) >= 10).then_some(counts)
    })
    .await;
    let twice: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks delivered more than once: {twice:?}"
    );

    // Kill a node: the others keep firing, still once per tick.
    kill(a);
    let killed_at = chrono::Utc::now();
    let after = wait_for(Duration::from_secs(60), "a tick after the kill", || async {
        let counts = tick_counts(&cluster.nodes);
        let later = counts
            .range(killed_at + chrono::TimeDelta::seconds(2)..)
            .count();
        (later >= 2).then_some(counts)
    })
    .await;
    let twice: Vec<_> = after.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks delivered more than once: {twice:?}"
    );
    println!(
        "cluster: {} ticks delivered once each, {} of them after a node was killed",
        after.len(),
        after.range(killed_at..).count()
    );
}

#[tokio::test]
async fn uploads_through_any_node_are_delivered_when_a_node_is_killed() {
    const OBJECTS: usize = 1000;
    let Some(cluster) = Cluster::start(
        "uploads_through_any_node_are_delivered_when_a_node_is_killed",
        3,
    )
    .await
    else {
        return;
    };
    let sink = cluster.manifest(
        "sink.toml",
        &format!(
            "[function.sink]\nsource = {}\nenv = {{ SLEEP_MS = \"100\" }}\n\n\
             [[trigger.storage]]\nname = \"uploads\"\nbucket = \"photos\"\n\
             events = [\"ObjectCreated:*\"]\nfunction = \"sink\"\nretry_base_ms = 100\n",
            toml_path(&test_guest("eventsink"))
        ),
    );
    cluster.cli(0, &["deploy", "-f", sink.to_str().unwrap()]);
    // Every node has the trigger before anything is uploaded.
    let trigger_everywhere = |node: &Kumo| {
        let exited = node.cli(&["triggers", "list", "-o", "json"]);
        exited.stdout.contains("photos")
    };
    wait_for(
        Duration::from_secs(30),
        "the trigger on every node",
        || async { cluster.nodes.iter().all(trigger_everywhere).then_some(()) },
    )
    .await;
    let put = |index: usize| json!({"op": "put_object", "args": {"Bucket": "photos", "Key": format!("k/{index:04}"), "Body": {"text": "x"}}});
    let half = OBJECTS / 2;
    let first: Vec<Value> = (0..half).map(put).collect();
    let second: Vec<Value> = (half..OBJECTS).map(put).collect();
    for result in s3_calls(
        &storage_endpoint(&cluster.nodes[2], ACCESS_KEY, SECRET_KEY),
        Value::Array(first),
    ) {
        assert!(result.get("ok").is_some(), "{result}");
    }
    // The first half went through the third node, whose own uploads wake
    // it to deliver; halfway, while it delivers, it is killed.
    assert!(
        cluster.nodes[2].wait_for_log_count("eventsink id=", 10),
        "node 2 delivers events:\n{}",
        cluster.nodes[2].logs()
    );
    kill(&cluster.nodes[2]);
    for result in s3_calls(
        &storage_endpoint(&cluster.nodes[1], ACCESS_KEY, SECRET_KEY),
        Value::Array(second),
    ) {
        assert!(result.get("ok").is_some(), "{result}");
    }
    let database = cluster.database().await;
    wait_for(
        Duration::from_secs(120),
        "every event delivered",
        || async {
            let done = list_events(&database, Some(EventState::Done), 10_000)
                .await
                .unwrap();
            (done.len() == OBJECTS).then_some(())
        },
    )
    .await;
    database.close().await;
    // Every object reached the function at least once; a delivery cut off
    // by the kill is delivered again by another node.
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for node in &cluster.nodes {
        for line in node.logs().lines() {
            if let Some(at) = line.find("summary=ObjectCreated:PutObject:photos/") {
                let key = &line[at + "summary=ObjectCreated:PutObject:photos/".len()..];
                let key = key.split(':').next().unwrap().to_string();
                *deliveries.entry(key).or_insert(0) += 1;
            }
        }
    }
    let missing: Vec<String> = (0..OBJECTS)
        .map(|index| format!("k/{index:04}"))
        .filter(|key| !deliveries.contains_key(key))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let duplicates = deliveries.values().filter(|count| **count > 1).count();
    println!(
        "cluster: {OBJECTS} uploads through two nodes, the third killed halfway: \
         every object delivered, {duplicates} of them more than once"
    );
}

#[test]
fn a_database_that_cannot_be_reached_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://kumo:secret@127.0.0.1:1/kumo";
    let exited = Kumo::start_verb(
        "server",
        &Start {
            manifest: Path::new(""),
            data_dir: &dir.path().join("data"),
            extra_args: &["--database", url],
            env: &[],
        },
    )
    .map(|_| ())
    .expect_err("kumo started without its database");
    let errors: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", exited.stderr);
    assert!(
        errors[0].starts_with(
            "error: cannot connect to the database postgres://kumo:***@127.0.0.1:1/kumo: "
        ) && errors[0].contains("hint:"),
        "{}",
        errors[0]
    );
    assert!(!exited.stderr.contains("secret"), "the password is shown");
}

/// A TCP proxy in front of PostgreSQL that a test cuts (every connection
/// dropped, new ones refused) and restores: the database going away and
/// coming back, without stopping the shared server.
struct Proxy {
    address: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            address: listener.local_addr().unwrap(),
            up: Default::default(),
            connections: Default::default(),
        };
        proxy.up.store(true, Ordering::SeqCst);
        let (up, connections) = (proxy.up.clone(), proxy.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().unwrap().push(task);
            }
        });
        proxy
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_database_a_node_serves_refuses_writes_with_503_and_recovers() {
    let Some(scratch) = ScratchPostgres::create(
        "without_its_database_a_node_serves_refuses_writes_with_503_and_recovers",
    )
    .await
    else {
        return;
    };
    let mut url = url::Url::parse(&scratch.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.address.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Kumo::start_verb(
        "server",
        &Start {
            manifest: Path::new(""),
            data_dir: &dir.path().join("data"),
            extra_args: &["--database", url.as_str()],
            env: &[],
        },
    )
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"));
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "[function.hello]\nsource = {}\n\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
            toml_path(&example("hello"))
        ),
    )
    .unwrap();
    let deployed = node.cli(&["deploy", "-f", manifest.to_str().unwrap()]);
    assert!(deployed.status.success(), "{deployed:#?}");
    assert_eq!(get(&node, "/hello").await, (200, "Hello from Kumo".into()));

    proxy.cut();
    // Warm functions keep serving; a write answers 503 with a hint.
    assert_eq!(get(&node, "/hello").await, (200, "Hello from Kumo".into()));
    let alias = || {
        node.admin(reqwest::Method::PUT, "/v1/functions/hello/aliases/live")
            .json(&json!({"version": 1}))
            .send()
    };
    let refused = alias().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("hint:"),
        "{body}"
    );
    assert_eq!(get(&node, "/hello").await, (200, "Hello from Kumo".into()));

    // Back: the same node takes writes again, no restart.
    proxy.restore();
    wait_for(
        Duration::from_secs(60),
        "a write after the database came back",
        || async {
            let answer = alias().await.ok()?;
            (answer.status().as_u16() == 200).then_some(())
        },
    )
    .await;
    drop(node);
    scratch.drop_database().await;
}
