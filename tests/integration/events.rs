//! Event triggers end to end: the real `kumo` binary delivers queued
//! events to the `eventsink` test guest. Outcomes and delays are read from
//! the server's own records (the queue in `<data-dir>/kumo.db`), opened by
//! the test beside the server.
//!
//! Object-storage events are enqueued by the test itself through
//! `kumo::events::Events::on_object_change` on the same database (the S3
//! endpoint is not on this branch): the server's delivery picks them up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kumo::database::Database;
use kumo::events::trigger::{ObjectEventFormat, StorageTrigger};
use kumo::events::{EventState, EventSummary, Events, ObjectChange, list_attempts, list_events};

use crate::harness::{Kumo, Start, test_guest, toml_path};

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

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
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
            env: &[],
        })
        .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
    }

    async fn database(&self) -> Database {
        kumo::database::open(&self.data_dir()).await.unwrap()
    }
}

/// Polls `probe` every 50 ms until it gives a value, for at most `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
            let summary = summary
                .rsplit_once(" function=")
                .map_or(summary, |(s, _)| s);
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
                function: "gone".into(),
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

#[tokio::test]
async fn a_restart_after_sigkill_delivers_every_pending_event() {
    const EVENTS: usize = 200;
    let site = Site::new();
    let slow = "env = { SLEEP_MS = \"20\" }\nmax_instances = 2";
    let kumo = site.start(slow, "");
    let database = site.database().await;
    let events = Events::new(
        database.clone(),
        vec![storage_trigger("all", "", ObjectEventFormat::Oss)],
    );
    for index in 0..EVENTS {
        events
            .on_object_change(object_change("photos", &format!("k{index}"), 1))
            .await
            .unwrap();
    }
    // Kill while events are pending and some are being delivered.
    wait_for(Duration::from_secs(30), "a first delivery", || async {
        (!events_in(&database, EventState::Done).await.is_empty()).then_some(())
    })
    .await;
    let first_logs = {
        let pid = kumo.pid();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (_, logs) = kumo.wait_with_logs();
        logs
    };
    let pending = events_in(&database, EventState::Pending).await.len();
    assert!(pending > 0, "events were pending at the kill");

    let kumo = site.start("", "");
    let done = wait_for(Duration::from_secs(60), "every event delivered", || async {
        let done = events_in(&database, EventState::Done).await;
        (done.len() == EVENTS).then_some(done)
    })
    .await;
    assert_eq!(done.len(), EVENTS);
    // Every event reached the guest at least once, across both runs.
    let first_run = sink_lines(&first_logs);
    let second_run = sink_lines_of(&kumo, EVENTS.saturating_sub(first_run.len()));
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _, _) in first_run.into_iter().chain(second_run) {
        *deliveries.entry(id).or_default() += 1;
    }
    for event in &done {
        assert!(
            deliveries.contains_key(&event.id),
            "{} never delivered",
            event.id
        );
    }
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    println!(
        "restart test: {EVENTS} events, {pending} pending at SIGKILL, {duplicates} delivered twice"
    );
    assert!(
        duplicates <= 2,
        "only deliveries cut off by the kill repeat"
    );
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
