//! The queue against a real database, SQLite in a temp dir and PostgreSQL
//! when the tests have one (`database::testing::each_backend`): enqueueing
//! object changes, claims and leases, attempts, dead letters and replay.

use std::time::Duration;

use super::queue::{
    Attempt, AttemptOutcome, FileVersion, NextState, TimerFiring, claim_due, finish_attempt,
    get_event, insert_file_event_once, insert_timer_event_once, mark_dead, next_due_ms,
    release_all_leases,
};
use super::*;
use crate::database::testing::each_backend;
use crate::model::{ObjectEventFormat, RetryPolicy};

fn storage_trigger(name: &str, prefix: &str, format: ObjectEventFormat) -> StorageTrigger {
    let mut trigger = StorageTrigger {
        name: name.into(),
        bucket: "photos".into(),
        events: vec!["ObjectCreated:*".into()],
        prefix: prefix.into(),
        suffix: String::new(),
        function: crate::model::Target::parse(&format!("fn-{name}")).unwrap(),
        format,
        max_retries: 3,
        retry_base_ms: 1000,
        max_event_age_s: 86_400,
    };
    trigger.validate().unwrap();
    trigger
}

/// The queue with one storage trigger, `all`, on every upload to `photos`.
fn events_for_every_upload(database: &Database) -> Arc<Events> {
    Events::new(
        database.clone(),
        vec![storage_trigger("all", "", ObjectEventFormat::Oss)],
    )
}

fn upload(key: &str) -> ObjectChange {
    ObjectChange {
        bucket: "photos".into(),
        key: key.into(),
        size: 3,
        etag: "acbd18db4cc2f85cedef654fccc4a4d8".into(),
        event_name: "ObjectCreated:PutObject".into(),
        time: Utc::now(),
        source_ip: Some("127.0.0.1".into()),
        request_id: "req".into(),
    }
}

fn timer_event(name: &str) -> NewEvent {
    NewEvent {
        id: queue::new_event_id(),
        trigger_id: queue::trigger_id(EventKind::Timer, name),
        target: "f".into(),
        kind: EventKind::Timer,
        document: document::timer_event(name, Utc::now(), "p"),
        retry: RetryPolicy::default(),
        hops: 0,
        dead_reason: None,
        call: None,
    }
}

fn attempt(outcome: AttemptOutcome, at: i64) -> Attempt {
    Attempt {
        started_ms: at,
        finished_ms: at + 5,
        outcome,
        status: Some(500),
        error: Some("boom".into()),
        request_id: "r".into(),
    }
}

#[tokio::test]
async fn an_object_change_becomes_one_event_per_matching_trigger() {
    each_backend(
        "an_object_change_becomes_one_event_per_matching_trigger",
        async |database| {
            let events = Events::new(
                database.clone(),
                vec![
                    storage_trigger("all", "", ObjectEventFormat::Oss),
                    storage_trigger("inbox", "in/", ObjectEventFormat::S3),
                    storage_trigger("other", "out/", ObjectEventFormat::Cloudevents),
                ],
            );
            events.on_object_change(upload("in/a.png")).await.unwrap();
            events.on_object_change(upload("b.png")).await.unwrap();
            let mut other = upload("x");
            other.bucket = "elsewhere".into();
            events.on_object_change(other).await.unwrap();

            let stored = list(&database, Some(EventState::Pending), 100)
                .await
                .unwrap();
            let mut seen: Vec<(String, String, String)> = stored
                .iter()
                .map(|e| (e.trigger.clone(), e.function.clone(), e.subject.clone()))
                .collect();
            seen.sort();
            assert_eq!(
                seen,
                [
                    ("storage:all".into(), "fn-all".into(), "b.png".into()),
                    ("storage:all".into(), "fn-all".into(), "in/a.png".into()),
                    ("storage:inbox".into(), "fn-inbox".into(), "in/a.png".into()),
                ]
            );
            for event in &stored {
                assert_eq!(event.kind, "storage");
                assert_eq!(event.attempts, 0);
                assert_eq!(event.hops, 0);
                assert_eq!(event.source, "/kumo/storage/photos");
                assert_eq!(event.event_type, "kumo.storage.ObjectCreated:PutObject");
            }
            // The stored body is the trigger's format.
            let claimed = claim_due(&database, i64::MAX / 2, Duration::from_secs(60), 10)
                .await
                .unwrap();
            let inbox = claimed
                .iter()
                .find(|e| e.target.to_string() == "fn-inbox")
                .expect("the inbox event is due");
            let body: serde_json::Value = serde_json::from_slice(&inbox.body).unwrap();
            assert_eq!(body["Records"][0]["s3"]["object"]["key"], "in/a.png");
            assert_eq!(body["Records"][0]["s3"]["configurationId"], "inbox");
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_enqueue_stores_nothing() {
    each_backend("a_failed_enqueue_stores_nothing", async |database| {
        let events = Events::new(
            database.clone(),
            vec![
                storage_trigger("a", "", ObjectEventFormat::Oss),
                storage_trigger("b", "", ObjectEventFormat::Oss),
            ],
        );
        // A database that fails (closed): the caller gets the error.
        database.close().await;
        let error = events.on_object_change(upload("a")).await.unwrap_err();
        assert!(format!("{error:#}").contains("cannot enqueue the events of photos/a"));
    })
    .await;
}

#[tokio::test]
async fn writes_caused_by_functions_count_hops_and_stop_at_the_limit() {
    each_backend(
        "writes_caused_by_functions_count_hops_and_stop_at_the_limit",
        async |database| {
            let events = events_for_every_upload(&database);
            for cause in [
                None,
                Some(0),
                Some(MAX_HOPS - 2),
                Some(MAX_HOPS - 1),
                Some(MAX_HOPS),
            ] {
                let stored = events
                    .on_object_change_caused_by(upload(&format!("{cause:?}")), cause)
                    .await
                    .unwrap();
                assert_eq!(stored, 1);
            }
            let all = list(&database, None, 100).await.unwrap();
            let mut states: Vec<(u32, String)> =
                all.iter().map(|e| (e.hops, e.state.clone())).collect();
            states.sort();
            assert_eq!(
                states,
                [
                    (0, "pending".into()),
                    (1, "pending".into()),
                    (MAX_HOPS - 1, "pending".into()),
                    (MAX_HOPS, "dead".into()),
                    (MAX_HOPS + 1, "dead".into()),
                ]
            );
            let dead = all.iter().find(|e| e.state == "dead").unwrap();
            assert!(
                dead.last_error
                    .as_deref()
                    .unwrap()
                    .contains("hop limit reached")
            );
        },
    )
    .await;
}

#[tokio::test]
async fn claims_lease_events_until_they_finish_or_the_lease_expires() {
    each_backend(
        "claims_lease_events_until_they_finish_or_the_lease_expires",
        async |database| {
            let events = events_for_every_upload(&database);
            events.on_object_change(upload("a")).await.unwrap();
            let now = Utc::now().timestamp_millis() + 10;
            let lease = Duration::from_secs(60);

            let first = claim_due(&database, now, lease, 10).await.unwrap();
            assert_eq!(first.len(), 1);
            // Leased: nobody else gets it, and it is not "due" for the sleeper.
            assert!(
                claim_due(&database, now, lease, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(next_due_ms(&database).await.unwrap(), None);
            // The lease expires (a worker died): claimable again.
            let later = now + 60_001;
            assert_eq!(
                claim_due(&database, later, lease, 10).await.unwrap().len(),
                1
            );
            // A restart releases every lease at once.
            assert_eq!(release_all_leases(&database).await.unwrap(), 1);
            let again = claim_due(&database, now, lease, 10).await.unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].id, first[0].id);
        },
    )
    .await;
}

#[tokio::test]
async fn attempts_move_events_through_retrying_to_done_or_dead() {
    each_backend(
        "attempts_move_events_through_retrying_to_done_or_dead",
        async |database| {
            let events = events_for_every_upload(&database);
            events.on_object_change(upload("a")).await.unwrap();
            let now = Utc::now().timestamp_millis() + 10;
            let lease = Duration::from_secs(60);
            let id = claim_due(&database, now, lease, 1).await.unwrap()[0]
                .id
                .clone();

            // A throttled attempt changes neither the state nor the count.
            finish_attempt(
                &database,
                &id,
                &attempt(AttemptOutcome::Throttled, now),
                false,
                &NextState::RetryAt(now + 1000),
                None,
            )
            .await
            .unwrap();
            let event = get_event(&database, &id).await.unwrap().unwrap();
            assert_eq!((event.state.as_str(), event.attempts), ("pending", 0));
            assert!(
                claim_due(&database, now + 999, lease, 1)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(next_due_ms(&database).await.unwrap(), Some(now + 1000));

            // A failure: retrying, one attempt, not due before its time.
            let claimed = claim_due(&database, now + 1000, lease, 1).await.unwrap();
            assert_eq!(claimed[0].attempts, 0);
            finish_attempt(
                &database,
                &id,
                &attempt(AttemptOutcome::Failed, now + 1000),
                true,
                &NextState::RetryAt(now + 3000),
                None,
            )
            .await
            .unwrap();
            let event = get_event(&database, &id).await.unwrap().unwrap();
            assert_eq!((event.state.as_str(), event.attempts), ("retrying", 1));
            assert_eq!(event.last_error.as_deref(), Some("boom"));

            // Dead after the next failure.
            let claimed = claim_due(&database, now + 3000, lease, 1).await.unwrap();
            assert_eq!(claimed[0].attempts, 1);
            finish_attempt(
                &database,
                &id,
                &attempt(AttemptOutcome::Failed, now + 3000),
                true,
                &NextState::Dead("gave up".into()),
                None,
            )
            .await
            .unwrap();
            let dead = list(&database, Some(EventState::Dead), 10).await.unwrap();
            assert_eq!(dead.len(), 1);
            assert_eq!(dead[0].attempts, 2);
            assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
            assert!(
                claim_due(&database, i64::MAX / 2, lease, 1)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let attempts = list_attempts(&database, &id).await.unwrap();
            let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
            assert_eq!(outcomes, ["throttled", "failed", "failed"]);

            // Replay: pending again, attempts start over, due now.
            let replayed = queue::replay(&database, &id, now + 5000).await.unwrap();
            assert_eq!((replayed.state.as_str(), replayed.attempts), ("pending", 0));
            let claimed = claim_due(&database, now + 5000, lease, 1).await.unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].first_seen_ms, now + 5000);
            finish_attempt(
                &database,
                &id,
                &Attempt {
                    outcome: AttemptOutcome::Ok,
                    status: Some(200),
                    error: None,
                    ..attempt(AttemptOutcome::Ok, now + 5000)
                },
                true,
                &NextState::Done,
                None,
            )
            .await
            .unwrap();
            let done = get_event(&database, &id).await.unwrap().unwrap();
            assert_eq!((done.state.as_str(), done.attempts), ("done", 1));
            // Done events go after their retention.
            assert_eq!(
                queue::purge_done(&database, now + 5000).await.unwrap(),
                0,
                "kept while recent"
            );
            assert_eq!(queue::purge_done(&database, now + 6000).await.unwrap(), 1);
            assert!(get_event(&database, &id).await.unwrap().is_none());
            assert!(list_attempts(&database, &id).await.unwrap().is_empty());
        },
    )
    .await;
}

#[tokio::test]
async fn replay_refuses_unknown_and_live_events() {
    each_backend("replay_refuses_unknown_and_live_events", async |database| {
        let error = queue::replay(&database, "nope", 0).await.unwrap_err();
        assert!(matches!(error, ReplayError::NotFound(_)), "{error}");
        let event = timer_event("t");
        queue::insert_events(&database, std::slice::from_ref(&event), 0)
            .await
            .unwrap();
        let error = queue::replay(&database, &event.id, 0).await.unwrap_err();
        assert!(
            error.to_string().contains("is pending, not dead"),
            "{error}"
        );
        mark_dead(
            &database,
            &event.id,
            "the function `f` no longer exists",
            1,
            None,
        )
        .await
        .unwrap();
        let dead = get_event(&database, &event.id).await.unwrap().unwrap();
        assert_eq!(dead.state, "dead");
        assert_eq!(
            dead.last_error.as_deref(),
            Some("the function `f` no longer exists")
        );
        replay(&database, &event.id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_timer_fires_once_per_tick_with_at_most_one_outstanding_event() {
    each_backend(
        "a_timer_fires_once_per_tick_with_at_most_one_outstanding_event",
        async |database| {
            // (timer, scheduled ms, now ms, what becomes of the firing)
            let first = timer_event("tick");
            assert_eq!(
                insert_timer_event_once(&database, &first, 1000, 0)
                    .await
                    .unwrap(),
                TimerFiring::Stored
            );
            // Another node firing the same tick finds it recorded.
            assert_eq!(
                insert_timer_event_once(&database, &timer_event("tick"), 1000, 1)
                    .await
                    .unwrap(),
                TimerFiring::AlreadyFired
            );
            // The next tick while the first event is queued is skipped.
            assert_eq!(
                insert_timer_event_once(&database, &timer_event("tick"), 2000, 1)
                    .await
                    .unwrap(),
                TimerFiring::Outstanding
            );
            // Another timer is not held back.
            assert_eq!(
                insert_timer_event_once(&database, &timer_event("other"), 1000, 1)
                    .await
                    .unwrap(),
                TimerFiring::Stored
            );
            // Once the first is done, the next tick goes in.
            finish_attempt(
                &database,
                &first.id,
                &attempt(AttemptOutcome::Ok, 2),
                true,
                &NextState::Done,
                None,
            )
            .await
            .unwrap();
            assert_eq!(
                insert_timer_event_once(&database, &timer_event("tick"), 3000, 3)
                    .await
                    .unwrap(),
                TimerFiring::Stored
            );
            assert_eq!(list(&database, None, 10).await.unwrap().len(), 3);
        },
    )
    .await;
}

#[tokio::test]
async fn a_watched_file_version_becomes_one_event() {
    each_backend(
        "a_watched_file_version_becomes_one_event",
        async |database| {
            let event = || {
                let mut event = timer_event("w");
                event.trigger_id = "watch:w".into();
                event
            };
            let file = FileVersion {
                path: "a.txt".into(),
                size: 3,
                mtime_ns: 42,
            };
            assert!(
                insert_file_event_once(&database, &event(), &file, 0)
                    .await
                    .unwrap()
            );
            assert!(
                !insert_file_event_once(&database, &event(), &file, 1)
                    .await
                    .unwrap()
            );
            // The same path rewritten is a new version.
            let rewritten = FileVersion {
                size: 4,
                ..file.clone()
            };
            assert!(
                insert_file_event_once(&database, &event(), &rewritten, 2)
                    .await
                    .unwrap()
            );
            assert_eq!(list(&database, None, 10).await.unwrap().len(), 2);
        },
    )
    .await;
}

#[tokio::test]
async fn the_retry_policy_comes_back_from_the_queue_as_it_went_in() {
    each_backend(
        "the_retry_policy_comes_back_from_the_queue_as_it_went_in",
        async |database| {
            let policy = RetryPolicy {
                max_retries: 7,
                retry_base: Duration::from_millis(250),
                max_event_age: Duration::from_secs(90),
            };
            let event = NewEvent {
                retry: policy,
                ..timer_event("t")
            };
            queue::insert_events(&database, std::slice::from_ref(&event), 0)
                .await
                .unwrap();
            let claimed = claim_due(&database, 0, Duration::from_secs(60), 1)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].retry, policy);
        },
    )
    .await;
}

#[tokio::test]
async fn a_stored_event_that_does_not_read_back_goes_dead_instead_of_out() {
    each_backend(
        "a_stored_event_that_does_not_read_back_goes_dead_instead_of_out",
        async |database| {
            // (column, a stored value that does not read back, words in the reason)
            let cases = [
                ("max_retries", "-1", "max_retries -1"),
                ("max_retries", "4294967296", "max_retries 4294967296"),
                ("retry_base_ms", "-5", "retry_base_ms -5"),
                ("max_age_ms", "-1", "max_age_ms -1"),
                ("attempts", "-2", "attempts -2"),
                ("hops", "-3", "hops -3"),
                // The target is parsed once, when claimed.
                (
                    "target",
                    "'Fn:0'",
                    "the stored target `Fn:0` does not parse",
                ),
            ];
            for (column, value, words) in cases {
                let event = timer_event(column);
                queue::insert_events(&database, std::slice::from_ref(&event), 0)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE events SET {column} = {value} WHERE id = $1"
                )))
                .bind(&event.id)
                .execute(&database)
                .await
                .unwrap();
                let claimed = claim_due(&database, 0, Duration::from_secs(60), 10)
                    .await
                    .unwrap();
                assert!(claimed.is_empty(), "{column} = {value} was delivered");
                let dead = get_event(&database, &event.id).await.unwrap().unwrap();
                assert_eq!(dead.state, "dead", "{column} = {value}");
                let reason = dead.last_error.unwrap();
                assert!(reason.contains(words), "{column} = {value}: {reason}");
            }
        },
    )
    .await;
}

#[tokio::test]
async fn events_are_listed_newest_first_so_a_limit_keeps_the_newest() {
    each_backend(
        "events_are_listed_newest_first_so_a_limit_keeps_the_newest",
        async |database| {
            let names = ["first", "second", "third"];
            for (seen_ms, name) in names.iter().enumerate() {
                queue::insert_events(&database, &[timer_event(name)], seen_ms as i64 * 1000)
                    .await
                    .unwrap();
            }
            let listed = |limit| {
                let database = database.clone();
                async move {
                    list_events(&database, None, limit)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|event| event.trigger)
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(
                listed(10).await,
                ["timer:third", "timer:second", "timer:first"]
            );
            assert_eq!(listed(2).await, ["timer:third", "timer:second"]);
        },
    )
    .await;
}

/// An asynchronous call as queued by `invocation::enqueue`.
fn queued_call(function: &str) -> NewEvent {
    use super::queue::{Call, QueuedRequest};
    NewEvent {
        trigger_id: super::invocation::trigger_id(function),
        target: function.into(),
        kind: EventKind::Invocation,
        call: Some(Call::Invocation(Box::new(QueuedRequest {
            method: "PUT".into(),
            uri: "/orders?id=7".into(),
            headers: b"content-type: application/json\r\nx-tag: a\r\n".to_vec(),
            on_success: Some(crate::model::Destination::Url(
                "http://127.0.0.1:9/hook".into(),
            )),
            on_failure: Some(crate::model::Destination::Bucket {
                bucket: "failures".into(),
                prefix: "orders/".into(),
            }),
        }))),
        ..timer_event("unused")
    }
}

#[tokio::test]
async fn a_queued_call_comes_back_with_its_request_and_destinations() {
    each_backend(
        "a_queued_call_comes_back_with_its_request_and_destinations",
        async |database| {
            let call = queued_call("orders");
            let stored = queue::insert_event_bounded(&database, &call, 10, 0)
                .await
                .unwrap();
            assert_eq!(stored, Ok(()));
            let claimed = claim_due(&database, 0, Duration::from_secs(60), 1)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].call, call.call);
            assert_eq!(claimed[0].target, crate::model::Target::latest("orders"));
        },
    )
    .await;
}

#[tokio::test]
async fn past_its_bound_a_call_is_not_stored() {
    each_backend("past_its_bound_a_call_is_not_stored", async |database| {
        for _ in 0..2 {
            let stored = queue::insert_event_bounded(&database, &queued_call("orders"), 2, 0)
                .await
                .unwrap();
            assert_eq!(stored, Ok(()));
        }
        let full = queue::insert_event_bounded(&database, &queued_call("orders"), 2, 0)
            .await
            .unwrap();
        assert_eq!(full, Err(2));
        // The bound is per function.
        let other = queue::insert_event_bounded(&database, &queued_call("audit"), 2, 0)
            .await
            .unwrap();
        assert_eq!(other, Ok(()));
        // A finished call frees its place.
        let id = claim_due(&database, 0, Duration::from_secs(60), 1)
            .await
            .unwrap()[0]
            .id
            .clone();
        finish_attempt(
            &database,
            &id,
            &attempt(AttemptOutcome::Ok, 1),
            true,
            &NextState::Done,
            None,
        )
        .await
        .unwrap();
        let freed = queue::insert_event_bounded(&database, &queued_call("orders"), 2, 2)
            .await
            .unwrap();
        assert_eq!(freed, Ok(()));
    })
    .await;
}

#[tokio::test]
async fn an_existing_queue_upgrades_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    // A kumo.db as the release before asynchronous calls left it: the
    // first four migrations, one pending event.
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join(crate::database::FILE_NAME))
            .create_if_missing(true);
        let old = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.migrations = std::borrow::Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|migration| migration.version <= 4)
                .cloned()
                .collect(),
        );
        migrator.run(&old).await.unwrap();
        sqlx::query(
            "INSERT INTO events (id, trigger_id, target, kind, ce_source, ce_type, ce_subject,
                 ce_time, content_type, body, state, attempts, max_retries, retry_base_ms,
                 max_age_ms, hops, first_seen_ms, next_attempt_ms, updated_ms)
             VALUES ('old', 'timer:t', 'f', 'timer', '/kumo/timer/t', 'kumo.timer', 't',
                 '2026-01-01T00:00:00.000Z', 'application/json', x'7b7d', 'pending', 0, 3,
                 1000, 86400000, 0, 0, 0, 0)",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;
    }
    let database = crate::database::open(
        dir.path(),
        &crate::database::DatabaseLocation::DataDirectory,
    )
    .await
    .unwrap();
    let claimed = claim_due(&database, 1, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "old");
    assert_eq!(claimed[0].call, None);
    assert_eq!(claimed[0].body, b"{}");
    // And the upgraded table takes calls.
    let stored = queue::insert_event_bounded(&database, &queued_call("orders"), 10, 2)
        .await
        .unwrap();
    assert_eq!(stored, Ok(()));
}

/// Concurrent writers share the group commit (`writer.rs`): each is
/// answered only once its write is stored, and a write that fails (here
/// an event id already stored) fails alone, not the writes it shared a
/// batch with.
#[tokio::test]
async fn concurrent_writes_share_a_commit_and_a_bad_one_fails_alone() {
    each_backend(
        "concurrent_writes_share_a_commit_and_a_bad_one_fails_alone",
        async |database| {
            let events = events_for_every_upload(&database);
            let taken = timer_event("taken");
            queue::insert_events(&database, std::slice::from_ref(&taken), 0)
                .await
                .unwrap();
            // All are handed over before the writer task runs (this test's
            // runtime has one thread), so they make one batch.
            let uploads = futures::future::join_all(
                (0..20).map(|index| events.on_object_change(upload(&format!("k{index:02}")))),
            );
            let duplicate = events.writer.write(writer::Write::Insert {
                events: vec![taken.clone()],
                now_ms: 0,
            });
            let (uploaded, duplicate) = tokio::join!(uploads, duplicate);
            assert!(duplicate.is_err(), "an event id already stored is refused");
            for result in uploaded {
                result.unwrap();
            }
            let claimed = claim_due(&database, i64::MAX / 2, Duration::from_secs(60), 100)
                .await
                .unwrap();
            let mut keys: Vec<&str> = claimed
                .iter()
                .filter(|event| event.target.to_string() == "fn-all")
                .map(|event| event.ce_subject.as_str())
                .collect();
            keys.sort_unstable();
            let expected: Vec<String> = (0..20).map(|index| format!("k{index:02}")).collect();
            assert_eq!(keys, expected);

            // Attempts go through the same group commit.
            let finished = futures::future::join_all(claimed.iter().map(|event| {
                events.finish_attempt(
                    &event.id,
                    attempt(AttemptOutcome::Ok, 10),
                    true,
                    NextState::Done,
                    None,
                )
            }))
            .await;
            for result in finished {
                result.unwrap();
            }
            assert_eq!(
                list(&database, Some(EventState::Done), 100)
                    .await
                    .unwrap()
                    .len(),
                claimed.len()
            );
            for event in &claimed {
                let attempts = list_attempts(&database, &event.id).await.unwrap();
                assert_eq!(attempts.len(), 1, "{}", event.id);
            }
        },
    )
    .await;
}

/// Delivery's claims go through the group commit too: a claim handed over
/// with uploads shares their transaction, after their writes, so it claims
/// their events; when a write of the batch fails, the claim is made again
/// on its own, and still sees every event that was stored.
#[tokio::test]
async fn a_claim_shares_the_transaction_of_the_writes_it_arrived_with() {
    each_backend(
        "a_claim_shares_the_transaction_of_the_writes_it_arrived_with",
        async |database| {
            let events = events_for_every_upload(&database);
            let lease = Duration::from_secs(60);
            let now = i64::MAX / 2;
            let claimed_keys = |claimed: &[queue::ClaimedEvent]| {
                let mut keys: Vec<String> = claimed
                    .iter()
                    .filter(|event| event.target.to_string() == "fn-all")
                    .map(|event| event.ce_subject.clone())
                    .collect();
                keys.sort_unstable();
                keys
            };

            // (first key, uploads, whether a failing write joins the batch)
            let cases = [(0, 3, false), (10, 4, true)];
            for (first, count, with_a_bad_write) in cases {
                let taken = timer_event("taken");
                if with_a_bad_write {
                    queue::insert_events(&database, std::slice::from_ref(&taken), 0)
                        .await
                        .unwrap();
                }
                // Handed over in this order before the writer task runs
                // (this test's runtime has one thread): one batch.
                let uploads = futures::future::join_all(
                    (first..first + count)
                        .map(|index| events.on_object_change(upload(&format!("k{index:02}")))),
                );
                let bad_write = async {
                    if with_a_bad_write {
                        let duplicate = writer::Write::Insert {
                            events: vec![taken.clone()],
                            now_ms: 0,
                        };
                        Some(events.writer.write(duplicate).await)
                    } else {
                        None
                    }
                };
                let claim = events.claim_due(now, lease, 100);
                let (uploaded, bad, claimed) = tokio::join!(uploads, bad_write, claim);
                for result in uploaded {
                    result.unwrap();
                }
                if with_a_bad_write {
                    assert!(
                        bad.unwrap().is_err(),
                        "an event id already stored is refused"
                    );
                }
                let expected: Vec<String> = (first..first + count)
                    .map(|index| format!("k{index:02}"))
                    .collect();
                assert_eq!(claimed_keys(&claimed.unwrap()), expected);
                assert_eq!(
                    claimed_keys(&events.claim_due(now, lease, 100).await.unwrap()),
                    Vec::<String>::new(),
                    "claimed events are leased"
                );
            }
        },
    )
    .await;
}
