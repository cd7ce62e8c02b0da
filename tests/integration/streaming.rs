//! Streaming both ways through the gateway: a guest that writes its
//! response in pieces reaches the client piece by piece while the client is
//! still sending its request, a 1 GiB upload reaches the guest as a stream
//! with Kumo's resident memory measured from /proc, and the server-sent
//! events example streams its events.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Kumo, client, example, test_guest, toml_path};

/// Reads from `stream` into `received` until it holds `needle`.
async fn read_until(stream: &mut TcpStream, received: &mut Vec<u8>, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(received).contains(needle) {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the connection closed before `{needle}`");
            received.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no `{needle}` in what arrived: {:?}",
        String::from_utf8_lossy(received)
    );
}

#[tokio::test]
async fn each_piece_comes_back_before_the_next_one_is_sent() {
    let kumo = Kumo::up(&format!(
        "[function.chunks]\nsource = {}\n[[trigger.http]]\nroute = \"/chunks\"\nfunction = \"chunks\"\n",
        toml_path(&test_guest("chunks"))
    ));
    let mut stream = TcpStream::connect(kumo.addr).await.unwrap();
    stream
        .write_all(
            b"POST /chunks HTTP/1.1\r\nHost: kumo\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    // The guest upper-cases what it reads: `ONE` can only come back once
    // `one` was read, and `two` is not sent until `ONE` arrived. So the
    // guest answered its first piece before it had its second, and the
    // client got that piece before the guest finished.
    stream.write_all(b"3\r\none\r\n").await.unwrap();
    read_until(&mut stream, &mut received, "ONE").await;
    let head = String::from_utf8_lossy(&received).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("TWO") && !head.contains("done"), "{head}");
    stream.write_all(b"3\r\ntwo\r\n").await.unwrap();
    read_until(&mut stream, &mut received, "TWO").await;
    assert!(!String::from_utf8_lossy(&received).contains("done"));
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    read_until(&mut stream, &mut received, "done\n").await;
    read_until(&mut stream, &mut received, "0\r\n\r\n").await;
}

/// The resident set of process `pid`, in KiB: now (`VmRSS`) and its peak
/// (`VmHWM`).
fn resident_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_one_gib_upload_streams_through_with_little_memory() {
    const GIB: u64 = 1 << 30;
    const PIECE: usize = 1 << 20;
    let kumo = Kumo::up(&format!(
        "[function.chunks]\nsource = {}\nmax_request_bytes = {}\ntimeout_ms = 900000\n\
         [[trigger.http]]\nroute = \"/count\"\nfunction = \"chunks\"\n",
        toml_path(&test_guest("chunks")),
        2 * GIB
    ));
    let pid = kumo.pid();
    // Warm the function, so its instance exists before the measure.
    let warm = client()
        .post(kumo.url("/count"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(warm.text().await.unwrap(), "1\n");
    // Reset the peak to what is resident now (Linux 4.0 and later), so
    // the peak read afterwards is the upload's.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let (before, _) = resident_kib(pid);

    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(resident_kib(pid).0);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let pieces = GIB / PIECE as u64;
    let body = futures_util::stream::iter(
        (0..pieces).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'k'; PIECE]))),
    );
    let started = Instant::now();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap()
        .post(kumo.url("/count"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let took = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let sampled_peak = sampler.join().unwrap();
    let (_, high_water) = resident_kib(pid);
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, format!("{GIB}\n"), "the guest counted every byte");
    let peak = if reset {
        high_water.max(sampled_peak)
    } else {
        sampled_peak
    };
    println!(
        "1 GiB upload: {took:?}; kumo resident {before} KiB before, peak {peak} KiB during (sampled {sampled_peak} KiB, VmHWM {high_water} KiB, reset {reset})"
    );
    assert!(peak < 100 * 1024, "peak resident set {peak} KiB");
}

#[tokio::test]
async fn the_sse_example_streams_its_events() {
    let kumo = Kumo::up(&format!(
        "[function.sse]\nsource = {}\n[[trigger.http]]\nroute = \"/sse\"\nfunction = \"sse\"\n",
        toml_path(&example("sse"))
    ));
    let mut response = client()
        .get(kumo.url("/sse?count=3&interval_ms=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut pieces = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        pieces += 1;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events,
        [
            "id: 1\nevent: tick\ndata: {\"tick\":1,\"of\":3}",
            "id: 2\nevent: tick\ndata: {\"tick\":2,\"of\":3}",
            "id: 3\nevent: tick\ndata: {\"tick\":3,\"of\":3}",
        ]
    );
    // Written one at a time, the events arrive as separate pieces.
    assert!(pieces >= 3, "{pieces} pieces");
}
