//! Event triggers end to end: the real `kumo` binary delivers queued
//! events to the `eventsink` test guest. Outcomes and delays are read from
//! the server's own records (the queue in `<data-dir>/kumo.db`), opened by
//! the test beside the server.
//!
//! Object-storage events come from real uploads with boto3 (through
//! `storage::s3_calls`) to the server's S3 endpoint; one test also enqueues
//! changes itself through `kumo::events::Events::on_object_change` on the
//! same database, for a trigger whose function does not exist.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kumo::database::Database;
use kumo::events::{EventState, EventSummary, Events, ObjectChange, list_attempts, list_events};
use kumo::model::{ObjectEventFormat, StorageTrigger, Target};

use serde_json::{Value, json};

use crate::harness::{Kumo, Start, test_guest, toml_path, wait_for};
use crate::storage::{ACCESS_KEY, SECRET_KEY, STORAGE_ENV, md5_hex, s3_calls, storage_endpoint};

/// A manifest folder and data directory that outlive server restarts.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The watched folder, made here: Kumo never creates one.
    fn inbox(&self) -> PathBuf {
        let inbox = self.dir.path().join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        inbox
    }

    /// Writes the manifest: the `eventsink` guest with `env` and `extra`
    /// keys, and `triggers`.
    fn start(&self, function_keys: &str, triggers: &str) -> Kumo {
        let manifest = self.dir.path().join("kumo.toml");
        std::fs::write(
            &manifest,
            format!(
                "[function.sink]\nsource = {}\n{function_keys}\n{triggers}\n",
                toml_path(&test_guest("eventsink"))
            ),
        )
        .unwrap();
        Kumo::start(&Start {
            manifest: &manifest,
            data_dir: &self.data_dir(),
            extra_args: &[],
            env: &STORAGE_ENV,
        })
        .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
    }

    async fn database(&self) -> Database {
        kumo::database::open(
            &self.data_dir(),
            &kumo::database::DatabaseLocation::DataDirectory,
        )
        .await
        .unwrap()
    }
}

async fn events_in(database: &Database, state: EventState) -> Vec<EventSummary> {
    list_events(database, Some(state), 10_000).await.unwrap()
}

/// The `eventsink` log lines, as (id, attempt, summary).
fn sink_lines(logs: &str) -> Vec<(String, u32, String)> {
    logs.lines()
        .filter_map(|line| {
            let rest = &line[line.find("eventsink id=")? + "eventsink id=".len()..];
            let (id, rest) = rest.split_once(" attempt=")?;
            let (attempt, rest) = rest.split_once(' ')?;
            // The host appends its own fields after the guest's message.
            let summary = rest.split_once("summary=")?.1;
            let summary = summary.rsplit_once(" stream=").map_or(summary, |(s, _)| s);
            Some((id.to_string(), attempt.parse().ok()?, summary.to_string()))
        })
        .collect()
}

/// An MD5 in lower-case hex (of "foo").
const ETAG: &str = "acbd18db4cc2f85cedef654fccc4a4d8";

/// The `eventsink` lines of a running server, once it logged at least
/// `count` (the queue can record an attempt before its log line arrives).
fn sink_lines_of(kumo: &Kumo, count: usize) -> Vec<(String, u32, String)> {
    assert!(
        kumo.wait_for_log_count("eventsink id=", count),
        "expected {count} eventsink lines:\n{}",
        kumo.logs()
    );
    sink_lines(&kumo.logs())
}

fn object_change(bucket: &str, key: &str, size: u64) -> ObjectChange {
    ObjectChange {
        bucket: bucket.into(),
        key: key.into(),
        size,
        etag: ETAG.into(),
        event_name: "ObjectCreated:PutObject".into(),
        time: chrono::Utc::now(),
        source_ip: Some("127.0.0.1".into()),
        request_id: "test".into(),
    }
}

fn storage_trigger(name: &str, prefix: &str, format: ObjectEventFormat) -> StorageTrigger {
    let mut trigger: StorageTrigger = toml::from_str(&format!(
        "name = \"{name}\"\nbucket = \"photos\"\nevents = [\"ObjectCreated:*\"]\nprefix = \"{prefix}\"\nfunction = \"sink\"\nretry_base_ms = 100\n"
    ))
    .unwrap();
    trigger.format = format;
    trigger.validate().unwrap();
    trigger
}

#[tokio::test]
async fn a_guest_failing_twice_is_delivered_three_times_with_growing_delays() {
    let site = Site::new();
    let kumo = site.start(
        "env = { FAIL_FIRST = \"2\" }",
        &format!(
            "[[trigger.watch]]\nname = \"inbox\"\npath = {}\nfunction = \"sink\"\nretry_base_ms = 400\n",
            toml_path(&site.inbox())
        ),
    );
    std::fs::write(site.inbox().join("a.txt"), "hello").unwrap();
    let database = site.database().await;
    let done = wait_for(Duration::from_secs(30), "the event to be done", || async {
        events_in(&database, EventState::Done).await.pop()
    })
    .await;
    assert_eq!(done.attempts, 3);
    assert_eq!(done.kind, "watch");
    let attempts = list_attempts(&database, &done.id).await.unwrap();
    let outcomes: Vec<(&str, Option<i64>)> = attempts
        .iter()
        .map(|a| (a.outcome.as_str(), a.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("failed", Some(500)),
            ("failed", Some(500)),
            ("ok", Some(200))
        ]
    );
    // The delays between attempts, from the server's records: the first
    // retry waits 200..=400 ms, the second 400..=800 ms (equal jitter), so
    // the second is at least the first's longest.
    let gaps: Vec<i64> = attempts
        .windows(2)
        .map(|pair| pair[1].started_ms - pair[0].finished_ms)
        .collect();
    assert!(gaps[0] >= 200, "first retry after {} ms", gaps[0]);
    assert!(gaps[1] >= 400, "second retry after {} ms", gaps[1]);
    println!("retry delays: {gaps:?} ms");
    // The guest saw the same event id with attempts 1, 2, 3.
    let lines = sink_lines_of(&kumo, 3);
    let seen: Vec<(String, u32)> = lines.iter().map(|(id, n, _)| (id.clone(), *n)).collect();
    assert_eq!(
        seen,
        [
            (done.id.clone(), 1),
            (done.id.clone(), 2),
            (done.id.clone(), 3)
        ]
    );
    assert_eq!(lines[0].2, "file:a.txt:5");
}

#[tokio::test]
async fn an_always_failing_event_goes_dead_and_replay_delivers_it_again() {
    let site = Site::new();
    let kumo = site.start(
        "env = { FAIL_FIRST = \"all\" }",
        &format!(
            "[[trigger.watch]]\npath = {}\nfunction = \"sink\"\nmax_retries = 2\nretry_base_ms = 50\n",
            toml_path(&site.inbox())
        ),
    );
    std::fs::write(site.inbox().join("a.txt"), "x").unwrap();
    let database = site.database().await;
    let dead = wait_for(Duration::from_secs(30), "the event to be dead", || async {
        events_in(&database, EventState::Dead).await.pop()
    })
    .await;
    assert_eq!(dead.attempts, 3, "max_retries + 1 attempts");
    let error = dead.last_error.clone().unwrap();
    assert!(
        error.contains("failed 3 attempts (max_retries = 2)"),
        "{error}"
    );
    assert!(error.contains("the function answered 500"), "{error}");
    assert_eq!(list_attempts(&database, &dead.id).await.unwrap().len(), 3);

    // The dead-letter list through the CLI, and a replay through it.
    let listed = kumo.cli(&["events", "list", "--state", "dead", "-o", "json"]);
    assert!(listed.status.success(), "{listed:#?}");
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed["events"][0]["id"], dead.id.as_str());
    assert_eq!(listed["events"][0]["state"], "dead");
    let table = kumo.cli(&["events", "list", "--state", "dead"]);
    assert!(
        table.stdout.contains(&dead.id) && table.stdout.contains("3/3"),
        "{}",
        table.stdout
    );
    let replayed = kumo.cli(&["events", "replay", &dead.id]);
    assert!(replayed.status.success(), "{replayed:#?}");
    assert_eq!(
        replayed.stdout.trim(),
        format!("event {} is pending again, due now", dead.id)
    );
    // Delivered again: three more attempts, then dead again.
    wait_for(Duration::from_secs(30), "three more attempts", || async {
        let attempts = list_attempts(&database, &dead.id).await.unwrap();
        (attempts.len() == 6).then_some(())
    })
    .await;
    let again = wait_for(
        Duration::from_secs(30),
        "the event to be dead again",
        || async { events_in(&database, EventState::Dead).await.pop() },
    )
    .await;
    assert_eq!(again.id, dead.id);
    let attempts: Vec<u32> = sink_lines_of(&kumo, 6).iter().map(|l| l.1).collect();
    assert_eq!(attempts, [1, 2, 3, 1, 2, 3]);
    // Through the API: a replay of a dead event is 200, a second one of
    // the now pending event 409, an unknown id 404, a bad state 400.
    let path = format!("/v1/events/{}/replay", dead.id);
    let first = kumo
        .admin(reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = kumo
        .admin(reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    assert!(second.text().await.unwrap().contains("not dead"));
    let unknown = kumo
        .admin(reqwest::Method::POST, "/v1/events/nope/replay")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad_state = kumo
        .admin(reqwest::Method::GET, "/v1/events?state=sleeping")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_state.status(), 400);
}

#[tokio::test]
async fn a_watched_folder_turns_each_completed_file_into_one_event() {
    let site = Site::new();
    std::fs::create_dir_all(site.inbox()).unwrap();
    std::fs::write(site.inbox().join("old.txt"), "was here before").unwrap();
    let kumo = site.start(
        "",
        &format!(
            "[[trigger.watch]]\nname = \"inbox\"\npath = {}\npattern = \"*.txt\"\nfunction = \"sink\"\n",
            toml_path(&site.inbox())
        ),
    );
    // Written in two steps, less than the quiet period apart: one event,
    // for the whole file.
    let mut file = std::fs::File::create(site.inbox().join("slow.txt")).unwrap();
    std::io::Write::write_all(&mut file, b"first half ").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    std::io::Write::write_all(&mut file, b"second half").unwrap();
    drop(file);
    // Written hidden, then renamed into place.
    std::fs::write(site.inbox().join(".partial"), "renamed!").unwrap();
    std::fs::rename(
        site.inbox().join(".partial"),
        site.inbox().join("moved.txt"),
    )
    .unwrap();
    // Not matching the pattern.
    std::fs::write(site.inbox().join("skip.csv"), "a,b").unwrap();

    let database = site.database().await;
    let done = wait_for(Duration::from_secs(30), "two file events", || async {
        let done = events_in(&database, EventState::Done).await;
        (done.len() >= 2).then_some(done)
    })
    .await;
    let mut subjects: Vec<&str> = done.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["moved.txt", "slow.txt"]);
    for event in &done {
        assert_eq!(event.event_type, "kumo.file.created");
        assert_eq!(event.source, "/kumo/watch/inbox");
        assert_eq!(event.trigger, "watch:inbox");
    }
    let mut summaries: Vec<String> = sink_lines_of(&kumo, 2).into_iter().map(|l| l.2).collect();
    summaries.sort();
    assert_eq!(summaries, ["file:moved.txt:8", "file:slow.txt:22"]);

    // A restart does not replay files already turned into events, nor the
    // file present before the first start.
    drop(kumo);
    let kumo = site.start(
        "",
        &format!(
            "[[trigger.watch]]\nname = \"inbox\"\npath = {}\npattern = \"*.txt\"\nfunction = \"sink\"\nprocess_existing = true\n",
            toml_path(&site.inbox())
        ),
    );
    // With process_existing, old.txt (never seen) becomes an event; the
    // two already delivered do not.
    let done = wait_for(
        Duration::from_secs(30),
        "the existing file's event",
        || async {
            let done = events_in(&database, EventState::Done).await;
            (done.len() >= 3).then_some(done)
        },
    )
    .await;
    let mut subjects: Vec<&str> = done.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["moved.txt", "old.txt", "slow.txt"]);
    let summaries: Vec<String> = sink_lines_of(&kumo, 1).into_iter().map(|l| l.2).collect();
    assert_eq!(summaries, ["file:old.txt:15"]);
}

#[tokio::test]
async fn reading_a_watched_file_or_changing_its_permissions_is_not_a_change() {
    let site = Site::new();
    std::fs::write(site.inbox().join("old.txt"), "was here before").unwrap();
    let _kumo = site.start(
        "",
        &format!(
            "[[trigger.watch]]\nname = \"inbox\"\npath = {}\nfunction = \"sink\"\n",
            toml_path(&site.inbox())
        ),
    );
    let database = site.database().await;
    // The watcher is running once a new file becomes an event.
    std::fs::write(site.inbox().join("first.txt"), "1").unwrap();
    wait_for(
        Duration::from_secs(30),
        "the first file's event",
        || async { events_in(&database, EventState::Done).await.pop() },
    )
    .await;
    // What `cat`, a backup tool or `chmod` do to an old file.
    for _ in 0..3 {
        assert_eq!(
            std::fs::read_to_string(site.inbox().join("old.txt")).unwrap(),
            "was here before"
        );
    }
    let mut permissions = std::fs::metadata(site.inbox().join("old.txt"))
        .unwrap()
        .permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(site.inbox().join("old.txt"), permissions).unwrap();
    // A file written after them: once its event is done, an event for the
    // reads would be done too (files settle in the order they were seen).
    std::fs::write(site.inbox().join("marker.txt"), "2").unwrap();
    let done = wait_for(Duration::from_secs(30), "the marker's event", || async {
        let done = events_in(&database, EventState::Done).await;
        done.iter()
            .any(|event| event.subject == "marker.txt")
            .then_some(done)
    })
    .await;
    let mut subjects: Vec<&str> = done.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["first.txt", "marker.txt"]);
    assert!(events_in(&database, EventState::Pending).await.is_empty());
}

#[tokio::test]
async fn a_watch_trigger_must_name_an_existing_folder_under_a_watch_root() {
    let site = Site::new();
    let allowed = site.dir.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), allowed.join("link-out")).unwrap();
    let manifest = site.dir.path().join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "[function.sink]\nsource = {}\n",
            toml_path(&test_guest("eventsink"))
        ),
    )
    .unwrap();
    let root = format!("--watch-root={}", allowed.display());
    let kumo = Kumo::start(&Start {
        manifest: &manifest,
        data_dir: &site.data_dir(),
        extra_args: &[&root],
        env: &STORAGE_ENV,
    })
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"));
    let create = |path: PathBuf| {
        kumo.admin(reqwest::Method::POST, "/v1/triggers")
            .json(&json!({"kind": "watch", "path": path, "function": "sink"}))
            .send()
    };
    let refused = |status: u16, body: &Value, needle: &str| {
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    };
    // Outside every root: /etc, or a link that leads out.
    for path in [PathBuf::from("/etc"), allowed.join("link-out")] {
        let answer = create(path.clone()).await.unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap();
        refused(status, &body, "--watch-root");
        refused(status, &body, &path.display().to_string());
    }
    // Missing: refused, and not created.
    let missing = allowed.join("not-yet");
    let answer = create(missing.clone()).await.unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    refused(status, &body, "does not exist");
    assert!(!missing.exists());
    // Under the root: made.
    std::fs::create_dir_all(&missing).unwrap();
    let answer = create(missing.clone()).await.unwrap();
    assert_eq!(answer.status(), 201);
    let answer = kumo
        .admin(reqwest::Method::GET, "/v1/triggers")
        .send()
        .await
        .unwrap();
    let triggers: Value = answer.json().await.unwrap();
    assert_eq!(
        triggers["triggers"].as_array().unwrap().len(),
        1,
        "{triggers}"
    );
}

#[tokio::test]
async fn a_one_second_timer_fires_with_the_function_compute_timer_event() {
    let site = Site::new();
    let kumo = site.start(
        "",
        "[[trigger.timer]]\nname = \"tick\"\ncron = \"* * * * * *\"\nfunction = \"sink\"\npayload = \"sweep\"\n",
    );
    let database = site.database().await;
    let done = wait_for(Duration::from_secs(30), "two timer events", || async {
        let done = events_in(&database, EventState::Done).await;
        (done.len() >= 2).then_some(done)
    })
    .await;
    for event in &done {
        assert_eq!(event.kind, "timer");
        assert_eq!(event.event_type, "kumo.timer");
        assert_eq!(event.subject, "tick");
    }
    let lines = sink_lines_of(&kumo, done.len());
    let mut times = Vec::new();
    for (_, attempt, summary) in &lines {
        assert_eq!(*attempt, 1);
        // timer:<name>:<triggerTime>:<payload>
        let rest = summary.strip_prefix("timer:tick:").unwrap();
        let (time, payload) = rest.rsplit_once(':').unwrap();
        assert_eq!(payload, "sweep");
        let time: chrono::DateTime<chrono::Utc> = time.parse().unwrap();
        assert_eq!(time.timestamp_subsec_nanos(), 0, "whole seconds: {time}");
        times.push(time);
    }
    times.dedup();
    assert_eq!(times.len(), lines.len(), "one event per scheduled second");
}

#[tokio::test]
async fn storage_events_reach_the_function_in_each_format() {
    let site = Site::new();
    let kumo = site.start("", "");
    let database = site.database().await;
    let events = Events::new(
        database.clone(),
        vec![
            storage_trigger("oss", "oss/", ObjectEventFormat::Oss),
            storage_trigger("s3", "s3/", ObjectEventFormat::S3),
            storage_trigger("ce", "ce/", ObjectEventFormat::Cloudevents),
            StorageTrigger {
                function: Target::latest("gone"),
                ..storage_trigger("orphan", "orphan/", ObjectEventFormat::Oss)
            },
        ],
    );
    for key in [
        "oss/a b.png",
        "s3/a b+c.png",
        "ce/a.png",
        "none/a.png",
        "orphan/a.png",
    ] {
        events
            .on_object_change(object_change("photos", key, 7))
            .await
            .unwrap();
    }
    wait_for(Duration::from_secs(30), "three deliveries", || async {
        (events_in(&database, EventState::Done).await.len() == 3).then_some(())
    })
    .await;
    // The event for a function that does not exist goes dead, saying so.
    let dead = wait_for(Duration::from_secs(30), "the orphan to be dead", || async {
        events_in(&database, EventState::Dead).await.pop()
    })
    .await;
    assert_eq!(dead.subject, "orphan/a.png");
    assert_eq!(dead.attempts, 0);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("the function `gone` no longer exists"),
        "{dead:?}"
    );
    let mut summaries: Vec<String> = sink_lines_of(&kumo, 3).into_iter().map(|l| l.2).collect();
    summaries.sort();
    let etag = ETAG;
    assert_eq!(
        summaries,
        [
            format!("ObjectCreated:Put:photos/s3/a b+c.png:7:{etag}"),
            format!("ObjectCreated:PutObject:photos/ce/a.png:7:{etag}"),
            format!(
                "ObjectCreated:PutObject:photos/oss/a b.png:7:{}",
                etag.to_uppercase()
            ),
        ]
    );
}

/// `[[trigger.storage]]` on `photos` for the `sink` function: `(name,
/// prefix, suffix, format)` each.
fn storage_triggers(triggers: &[(&str, &str, &str, &str)]) -> String {
    triggers
        .iter()
        .map(|(name, prefix, suffix, format)| {
            format!(
                "[[trigger.storage]]\nname = \"{name}\"\nbucket = \"photos\"\nevents = [\"ObjectCreated:*\"]\nprefix = \"{prefix}\"\nsuffix = \"{suffix}\"\nformat = \"{format}\"\nfunction = \"sink\"\n"
            )
        })
        .collect()
}

/// Runs boto3 calls that must all succeed.
fn s3_all_ok(kumo: &Kumo, calls: Vec<Value>) {
    let s3 = storage_endpoint(kumo, ACCESS_KEY, SECRET_KEY);
    for (call, result) in calls.iter().zip(s3_calls(&s3, Value::Array(calls.clone()))) {
        assert!(result.get("ok").is_some(), "{call} failed: {result}");
    }
}

fn put_object(key: &str, body: &str) -> Value {
    json!({"op": "put_object", "args": {"Bucket": "photos", "Key": key, "Body": {"text": body}}})
}

/// An object summary of the `eventsink` guest, `<event name>:<bucket>/<key>:
/// <size>:<eTag>`, as `(event name, bucket/key, size, eTag)`.
fn object_summary(summary: &str) -> (String, String, u64, String) {
    let (rest, etag) = summary.rsplit_once(':').unwrap();
    let (rest, size) = rest.rsplit_once(':').unwrap();
    let (event_name, path) = rest.rsplit_once(':').unwrap();
    (
        event_name.to_string(),
        path.to_string(),
        size.parse().unwrap(),
        etag.to_string(),
    )
}

#[tokio::test]
async fn uploads_reach_the_function_filtered_by_prefix_and_suffix_in_each_format() {
    let site = Site::new();
    let kumo = site.start(
        "",
        &storage_triggers(&[
            ("oss", "oss/", ".png", "oss"),
            ("s3", "s3/", ".png", "s3"),
            ("ce", "ce/", ".png", "cloudevents"),
        ]),
    );
    let matching = [
        ("oss/a.png", "an oss event"),
        ("s3/a b+c.png", "an s3 event, key URL-encoded"),
        ("ce/x.png", "a structured cloudevent"),
    ];
    // The storage triggers created the bucket at start.
    let mut calls = vec![json!({"op": "list_objects_v2", "args": {"Bucket": "photos"}})];
    calls.extend(matching.iter().map(|(key, body)| put_object(key, body)));
    // Wrong suffix, then wrong prefix: no trigger wants them.
    calls.push(put_object("oss/a.jpg", "suffix mismatch"));
    calls.push(put_object("other/a.png", "prefix mismatch"));
    // A matching upload after the ones that do not match.
    calls.push(put_object("oss/last.png", "last"));
    s3_all_ok(&kumo, calls);

    // Every upload was answered, and an event is stored before its upload
    // is answered: so the queue now holds every event these uploads will
    // ever make, and none for the two that do not match.
    let database = site.database().await;
    let mut stored: Vec<String> = list_events(&database, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|event| format!("{}:{}", event.trigger, event.subject))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "storage:ce:ce/x.png",
            "storage:oss:oss/a.png",
            "storage:oss:oss/last.png",
            "storage:s3:s3/a b+c.png"
        ]
    );
    // And the guest sees those four, the last upload's included, and
    // nothing else.
    let mut expected: Vec<(String, String, u64, String)> = matching
        .iter()
        .chain([&("oss/last.png", "last")])
        .map(|(key, body)| {
            let event_name = if key.starts_with("s3/") {
                "ObjectCreated:Put"
            } else {
                "ObjectCreated:PutObject"
            };
            (
                event_name.to_string(),
                format!("photos/{key}"),
                body.len() as u64,
                md5_hex(body.as_bytes()),
            )
        })
        .collect();
    expected.sort();
    wait_for(Duration::from_secs(30), "four deliveries", || async {
        (events_in(&database, EventState::Done).await.len() == 4).then_some(())
    })
    .await;
    let lines = sink_lines_of(&kumo, 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut seen: Vec<(String, String, u64, String)> = lines
        .iter()
        .map(|(_, attempt, summary)| {
            assert_eq!(*attempt, 1);
            object_summary(summary)
        })
        .collect();
    seen.sort();
    for (seen, expected) in seen.iter().zip(&expected) {
        assert_eq!(seen.0, expected.0);
        assert_eq!(seen.1, expected.1);
        assert_eq!(seen.2, expected.2, "size of {}", seen.1);
        // The eTag is the object's MD5 in hex. OSS writes it upper-case,
        // S3 and the CloudEvent lower-case: compare ignoring case.
        assert!(
            seen.3.eq_ignore_ascii_case(&expected.3),
            "eTag of {}: {} vs MD5 {}",
            seen.1,
            seen.3,
            expected.3
        );
    }
    // The OSS shape's eTag is upper-case.
    assert!(
        seen.iter()
            .filter(|s| s.1.starts_with("photos/oss/"))
            .all(|s| s.3 == s.3.to_uppercase())
    );
    // The three formats, as the server stored them: the OSS and S3
    // documents as JSON (told apart above by the eTag's case and the event
    // name), the CloudEvent structured.
    let content_types: BTreeMap<String, String> =
        sqlx::query_as("SELECT ce_subject, content_type FROM events")
            .fetch_all(&database)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(content_types["oss/a.png"], "application/json");
    assert_eq!(content_types["s3/a b+c.png"], "application/json");
    assert_eq!(content_types["ce/x.png"], "application/cloudevents+json");
}

#[tokio::test]
async fn a_restart_after_sigkill_delivers_every_uploaded_objects_event() {
    const OBJECTS: usize = 200;
    let site = Site::new();
    let triggers = storage_triggers(&[("all", "", "", "oss")]);
    // One instance at a time, 50 ms each: delivery is far slower than the
    // uploads, so events are still pending when the server is killed.
    let kumo = site.start("env = { SLEEP_MS = \"50\" }\nmax_instances = 1", &triggers);
    let keys: Vec<String> = (0..OBJECTS).map(|index| format!("k{index:03}")).collect();
    // The storage triggers created the bucket at start.
    let mut calls = vec![json!({"op": "list_objects_v2", "args": {"Bucket": "photos"}})];
    calls.extend(keys.iter().map(|key| put_object(key, key)));
    s3_all_ok(&kumo, calls);

    // Every upload was answered: kill the server without warning.
    let status = std::process::Command::new("kill")
        .args(["-KILL", &kumo.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, first_logs) = kumo.wait_with_logs();
    let database = site.database().await;
    let all = list_events(&database, None, 10_000).await.unwrap();
    assert_eq!(all.len(), OBJECTS, "an event per acknowledged upload");
    let undelivered = all.iter().filter(|e| e.state != "done").count();
    assert!(undelivered > 0, "events were pending at the kill");

    // Restarted on the same data directory (without the slowness).
    let kumo = site.start("", &triggers);
    wait_for(
        Duration::from_secs(120),
        "every event delivered",
        || async { (events_in(&database, EventState::Done).await.len() == OBJECTS).then_some(()) },
    )
    .await;
    let first_run = sink_lines(&first_logs);
    let second_run = sink_lines_of(&kumo, OBJECTS.saturating_sub(first_run.len()));
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, summary) in first_run.iter().chain(&second_run) {
        let (_, path, _, _) = object_summary(summary);
        *deliveries.entry(path).or_default() += 1;
    }
    for key in &keys {
        assert!(
            deliveries.contains_key(&format!("photos/{key}")),
            "{key} never delivered"
        );
    }
    assert_eq!(deliveries.len(), OBJECTS, "{deliveries:?}");
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    println!(
        "restart test: {OBJECTS} uploads, {undelivered} undelivered at SIGKILL, {} delivered before it, {duplicates} duplicate deliveries",
        first_run.len()
    );
    // With one instance, only the delivery cut off by the kill can repeat.
    assert!(duplicates <= 1, "{duplicates} duplicates");
}

#[test]
fn the_manifest_refuses_a_bad_cron_and_an_unknown_function() {
    let dir = tempfile::tempdir().unwrap();
    let guest = toml_path(&test_guest("eventsink"));
    for (triggers, words) in [
        (
            "[[trigger.timer]]\ncron = \"every minute\"\nfunction = \"sink\"\n",
            "cron expression `every minute` does not parse",
        ),
        (
            "[[trigger.watch]]\npath = \"in\"\nfunction = \"nope\"\n",
            "names unknown function `nope`",
        ),
    ] {
        let exited = crate::harness::up_expecting_failure(
            dir.path(),
            &format!("[function.sink]\nsource = {guest}\n{triggers}"),
        );
        assert!(!exited.status.success());
        assert!(exited.stderr.contains(words), "{}", exited.stderr);
        assert!(exited.stderr.contains("kumo.toml:"), "{}", exited.stderr);
    }
}
