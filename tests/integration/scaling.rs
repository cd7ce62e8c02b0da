//! Pools: the instance cap, backpressure, reuse, discarding failed
//! instances, idle release and `min_instances`, seen through the `counter`
//! guest, which answers `{"instance": id, "count": n}` per instance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::harness::{Kumo, client, test_guest, toml_path, wait_for};

fn counter_function(name: &str, keys: &str) -> String {
    format!(
        "[function.{name}]\nsource = {}\n{keys}\n[[trigger.http]]\nroute = \"/{name}\"\nfunction = \"{name}\"\n",
        toml_path(&test_guest("counter"))
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted {
    instance: String,
    count: u64,
}

async fn count(kumo: &Kumo, path: &str) -> Counted {
    let response = client().get(kumo.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let json: serde_json::Value = response.json().await.unwrap();
    Counted {
        instance: json["instance"].as_str().unwrap().to_string(),
        count: json["count"].as_u64().unwrap(),
    }
}

#[tokio::test]
async fn max_instances_caps_concurrency_and_every_request_is_answered() {
    let kumo = Kumo::up(&counter_function("capped", "max_instances = 2"));
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let url = kumo.url("/capped?sleep_ms=300");
            tokio::spawn(async move {
                let response = client().get(url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let json: serde_json::Value = response.json().await.unwrap();
                (
                    json["instance"].as_str().unwrap().to_string(),
                    json["count"].as_u64().unwrap(),
                )
            })
        })
        .collect();
    let mut highest_count: BTreeMap<String, u64> = BTreeMap::new();
    for request in requests {
        let (instance, count) = request.await.unwrap();
        let highest = highest_count.entry(instance).or_default();
        *highest = (*highest).max(count);
    }
    assert!(
        highest_count.len() <= 2,
        "more than 2 instances served: {highest_count:?}"
    );
    assert_eq!(highest_count.values().sum::<u64>(), 10, "{highest_count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_right_away() {
    let kumo = Kumo::up(&counter_function(
        "narrow",
        "max_instances = 1\nmax_queue = 2",
    ));
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = kumo.url("/narrow?sleep_ms=1000");
            tokio::spawn(async move {
                let response = client().get(url).send().await.unwrap();
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|value| value.to_str().unwrap().to_string());
                let body = response.text().await.unwrap();
                (status, retry_after, body, Instant::now())
            })
        })
        .collect();
    let mut answered = Vec::new();
    for request in requests {
        answered.push(request.await.unwrap());
    }
    let served: Vec<_> = answered
        .iter()
        .filter(|(status, ..)| *status == 200)
        .collect();
    let pushed_back: Vec<_> = answered
        .iter()
        .filter(|(status, ..)| *status == 429)
        .collect();
    assert_eq!((served.len(), pushed_back.len()), (3, 3), "{answered:#?}");
    for (_, retry_after, body, _) in &pushed_back {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert!(body.contains("\"code\":\"overloaded\""), "{body}");
        assert!(body.contains("its queue is full"), "{body}");
    }
    // The surplus was refused at once: before the first request finished.
    let last_refusal = pushed_back.iter().map(|(.., at)| *at).max().unwrap();
    let first_success = served.iter().map(|(.., at)| *at).min().unwrap();
    assert!(last_refusal < first_success);
}

#[tokio::test]
async fn reuse_keeps_an_instance_and_no_reuse_never_does() {
    let manifest = counter_function("reused", "") + &counter_function("fresh", "reuse = false");
    let kumo = Kumo::up(&manifest);

    let reused = [
        count(&kumo, "/reused").await,
        count(&kumo, "/reused").await,
        count(&kumo, "/reused").await,
    ];
    assert!(
        reused.iter().all(|c| c.instance == reused[0].instance),
        "{reused:?}"
    );
    assert_eq!(reused.map(|c| c.count), [1, 2, 3]);

    let fresh = [
        count(&kumo, "/fresh").await,
        count(&kumo, "/fresh").await,
        count(&kumo, "/fresh").await,
    ];
    assert_eq!(fresh.clone().map(|c| c.count), [1, 1, 1]);
    let instances: BTreeSet<_> = fresh.iter().map(|c| &c.instance).collect();
    assert_eq!(instances.len(), 3, "{fresh:?}");

    // Each request's slot instantiates the next instance once it is done:
    // it waits idle for the next request, which it serves once. (A request
    // that came before the previous one's replacement was ready started
    // cold, so more than one may be waiting.)
    wait_for(
        Duration::from_secs(10),
        "an instance made ahead",
        || async {
            let detail: serde_json::Value = kumo
                .admin(reqwest::Method::GET, "/v1/functions/fresh")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let instances = &detail["instances"][0];
            (instances["idle"].as_u64()? >= 1 && instances["starting"] == 0).then_some(())
        },
    )
    .await;
    let next = count(&kumo, "/fresh").await;
    assert_eq!(next.count, 1, "{next:?}");
    assert!(!instances.contains(&next.instance), "{next:?}");
}

#[tokio::test]
async fn a_trapped_instance_is_never_reused() {
    let kumo = Kumo::up(&counter_function("fragile", ""));
    let first = count(&kumo, "/fragile").await;
    assert_eq!(
        count(&kumo, "/fragile").await,
        Counted {
            count: 2,
            ..first.clone()
        }
    );

    let trapped = client()
        .get(kumo.url("/fragile?trap=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(trapped.status(), 500);

    let after = count(&kumo, "/fragile").await;
    assert_eq!(after.count, 1, "a fresh instance starts counting again");
    assert_ne!(after.instance, first.instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instances_are_released_but_min_instances_stay() {
    let manifest = counter_function("zero", "idle_timeout_s = 1")
        + &counter_function("one", "idle_timeout_s = 1\nmin_instances = 1");
    let kumo = Kumo::up(&manifest);

    // Scale to zero: the idle instance goes, the next request starts afresh.
    let before = count(&kumo, "/zero").await;
    assert!(
        kumo.wait_for_log_line(&["released idle instances", "function=zero", "count=1"]),
        "{}",
        kumo.logs()
    );
    let after = count(&kumo, "/zero").await;
    assert_eq!(after.count, 1);
    assert_ne!(after.instance, before.instance);

    // min_instances = 1: two instances exist after two concurrent requests;
    // one is released when idle and the other stays and keeps serving.
    let (a, b) = tokio::join!(
        count(&kumo, "/one?sleep_ms=300"),
        count(&kumo, "/one?sleep_ms=300")
    );
    assert_ne!(a.instance, b.instance);
    assert!(
        kumo.wait_for_log_line(&["released idle instances", "function=one", "count=1"]),
        "{}",
        kumo.logs()
    );
    let kept = count(&kumo, "/one").await;
    assert!(
        kept.instance == a.instance || kept.instance == b.instance,
        "{kept:?}"
    );
    assert_eq!(kept.count, 2, "the kept instance is warm: {kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_serves_queued_requests_before_exiting() {
    let kumo = Kumo::up_with_env(
        &counter_function("single", "max_instances = 1"),
        &[("KUMO_LOG", "info,kumo::pool=debug")],
    );
    // One runs, two wait in the queue (long enough for a maintenance tick
    // to see and log it).
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let url = kumo.url("/single?sleep_ms=1500");
            tokio::spawn(async move { client().get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let queued = tokio::task::block_in_place(|| {
        kumo.wait_for_log_line(&["function=single", "busy=1", "queued=2"])
    });
    assert!(queued, "the requests did not queue:\n{}", kumo.logs());
    std::process::Command::new("kill")
        .args(["-TERM", &kumo.pid().to_string()])
        .status()
        .unwrap();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(statuses, [200, 200, 200]);
    let exit = tokio::task::spawn_blocking(move || kumo.wait())
        .await
        .unwrap();
    assert!(exit.success(), "kumo exited with {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_prewarms_ahead_of_sustained_load() {
    let kumo = Kumo::up(&counter_function("busy", "max_instances = 20"));
    // Six requests in flight at all times for a few seconds: the autoscaler
    // wants ceil(6 / 0.7) = 9 instances, more than the 6 busy ones.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let url = kumo.url("/busy?sleep_ms=200");
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = client();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let status = client.get(&url).send().await.unwrap().status();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    let prewarmed = tokio::task::block_in_place(|| {
        kumo.wait_for_log_line(&["pre-warming instances", "function=busy"])
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        prewarmed,
        "no pre-warm under sustained load:\n{}",
        kumo.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waits_past_queue_timeout_gets_429() {
    let kumo = Kumo::up(&counter_function(
        "patient",
        "max_instances = 1\nmax_queue = 5\nqueue_timeout_ms = 200",
    ));
    // Whichever request gets the only instance holds it for 1.5 s; the
    // other waits in the queue until its 200 ms run out.
    let requests: Vec<_> = (0..2)
        .map(|_| {
            let url = kumo.url("/patient?sleep_ms=1500");
            tokio::spawn(async move {
                let response = client().get(url).send().await.unwrap();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").cloned();
                (status, retry_after, response.text().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    answers.sort_by_key(|(status, ..)| *status);
    assert_eq!(answers[0].0, 200, "{answers:?}");
    let (status, retry_after, body) = &answers[1];
    assert_eq!(*status, 429, "{answers:?}");
    assert_eq!(retry_after.as_ref().unwrap(), "1");
    assert!(body.contains("waited 200 ms in its queue"), "{body}");
}
