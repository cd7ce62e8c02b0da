//! Starting, restarting and stopping: the compile cache, graceful shutdown,
//! and `--build`.

use crate::harness::{Kumo, Start, client, example, test_guest, toml_path};

/// Writes a manifest serving `hello` at `/hello` into `dir`; returns it and
/// the data directory to start it with.
fn hello_manifest_in(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let manifest = dir.join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "[function.hello]\nsource = {}\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
            toml_path(&example("hello"))
        ),
    )
    .unwrap();
    (manifest, dir.join("data"))
}

#[test]
fn a_second_start_loads_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, data_dir) = hello_manifest_in(dir.path());
    let start = Start {
        manifest: &manifest,
        data_dir: &data_dir,
        extra_args: &[],
        env: &[],
    };

    let first = Kumo::start(&start).unwrap();
    assert!(
        first.wait_for_log_line(&["compiled function", "function=hello"]),
        "{}",
        first.logs()
    );
    // Without `[app] name` the app is named after the manifest's folder.
    let folder = dir.path().file_name().unwrap().to_string_lossy();
    assert!(
        first.wait_for_log_line(&["ready in", &format!("app={folder}")]),
        "{}",
        first.logs()
    );
    assert!(!first.logs().contains("from the compile cache"));
    assert!(first.terminate().success());

    let second = Kumo::start(&start).unwrap();
    assert!(
        second.wait_for_log_line(&["loaded function from the compile cache", "function=hello"]),
        "{}",
        second.logs()
    );
    assert!(!second.logs().contains("compiled function"));
    assert!(second.terminate().success());
}

/// One server per data directory: a second one is refused with the first
/// one's pid, and the lock goes with the process, even a killed one.
#[test]
fn a_second_server_on_one_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, data_dir) = hello_manifest_in(dir.path());
    let start = Start {
        manifest: &manifest,
        data_dir: &data_dir,
        extra_args: &[],
        env: &[],
    };
    let first = Kumo::start(&start).unwrap();

    let refused = match Kumo::start(&start) {
        Ok(second) => panic!(
            "a second server started on one data directory:\n{}",
            second.logs()
        ),
        Err(exited) => exited,
    };
    assert_eq!(refused.status.code(), Some(1), "{refused:#?}");
    let wanted = format!("is in use by another kumo (pid {})", first.pid());
    assert!(refused.stderr.contains(&wanted), "{refused:#?}");
    assert!(refused.stderr.contains("--data-dir"), "{refused:#?}");

    // A killed server leaves no lock behind.
    let status = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    first.wait();
    let after_kill = Kumo::start(&start).unwrap();
    assert!(after_kill.terminate().success());
}

#[tokio::test]
async fn the_default_relative_data_dir_works() {
    // `kumo up` with no --data-dir, run from the manifest's folder: the
    // README's first command does exactly this.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kumo.toml"),
        format!(
            "[function.hello]\nsource = {}\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
            toml_path(&example("hello"))
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kumo"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--storage-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env_remove("KUMO_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // The gateway's line comes after the storage endpoint's lines.
    let mut first_line = String::new();
    loop {
        first_line.clear();
        let read = std::io::BufRead::read_line(&mut stdout, &mut first_line).unwrap();
        if read == 0 || first_line.starts_with("kumo: serving") {
            break;
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let addr = first_line
        .trim()
        .strip_prefix("kumo: serving http://")
        .unwrap_or_else(|| {
            panic!(
                "kumo did not serve: {first_line:?}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(addr.starts_with("127.0.0.1:"));
    assert!(dir.path().join(".kumo/cache").is_dir());
    assert!(dir.path().join(".kumo/kumo.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let manifest = format!(
        "[function.sleeper]\nsource = {}\n[[trigger.http]]\nroute = \"/sleep\"\nfunction = \"sleeper\"\n",
        toml_path(&test_guest("sleeper"))
    );
    let kumo = Kumo::up(&manifest);
    let url = kumo.url("/sleep?ms=1500");
    let in_flight = tokio::spawn(async move {
        let response = client().get(url).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    });
    assert!(
        kumo.wait_for_log_line(&["sleeping 1500 ms"]),
        "{}",
        kumo.logs()
    );

    let addr = kumo.addr;
    std::process::Command::new("kill")
        .args(["-TERM", &kumo.pid().to_string()])
        .status()
        .unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slept 1500");
    let exit = tokio::task::spawn_blocking(move || kumo.wait())
        .await
        .unwrap();
    assert!(exit.success(), "kumo exited with {exit}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the gateway still accepts connections after shutdown"
    );
}

#[test]
fn build_runs_each_command_once_and_a_failed_build_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let hello = toml_path(&example("hello"));
    // Two functions share one command: it runs once, in the manifest's folder.
    let manifest = format!(
        "[function.one]\nsource = {hello}\nbuild = \"echo built >> build.log\"\n\
         [function.two]\nsource = {hello}\nbuild = \"echo built >> build.log\"\n\
         [[trigger.http]]\nroute = \"/one\"\nfunction = \"one\"\n"
    );
    let manifest_path = dir.path().join("kumo.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let kumo = Kumo::start(&Start {
        manifest: &manifest_path,
        data_dir: &dir.path().join("data"),
        extra_args: &["--build"],
        env: &[],
    })
    .unwrap();
    assert!(
        kumo.stdout().contains("building one, two"),
        "{}",
        kumo.stdout()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("build.log")).unwrap(),
        "built\n"
    );
    drop(kumo);

    let failing = format!("[function.one]\nsource = {hello}\nbuild = \"exit 3\"\n");
    std::fs::write(&manifest_path, failing).unwrap();
    let exited = Kumo::start(&Start {
        manifest: &manifest_path,
        data_dir: &dir.path().join("data"),
        extra_args: &["--build"],
        env: &[],
    })
    .err()
    .expect("a failed build stops kumo");
    assert!(!exited.status.success());
    assert!(
        exited.stdout.contains("building one: exit 3"),
        "{}",
        exited.stdout
    );
    assert!(
        exited
            .stderr
            .contains("the build of one failed: `exit 3` exited with"),
        "{}",
        exited.stderr
    );
}

/// Starts a sleeper server with `extra_args`, puts a 20 s request in flight,
/// sends SIGTERM, and returns kumo's exit status and its log.
async fn shutdown_with_a_long_request(
    extra_args: &[&str],
    second_signal: bool,
) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("kumo.toml");
    std::fs::write(
        &manifest,
        format!(
            "[function.sleeper]\nsource = {}\ntimeout_ms = 60000\n[[trigger.http]]\nroute = \"/sleep\"\nfunction = \"sleeper\"\n",
            toml_path(&test_guest("sleeper"))
        ),
    )
    .unwrap();
    let kumo = Kumo::start(&Start {
        manifest: &manifest,
        data_dir: &dir.path().join("data"),
        extra_args,
        env: &[],
    })
    .unwrap();
    let url = kumo.url("/sleep?ms=20000");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    assert!(tokio::task::block_in_place(
        || kumo.wait_for_log_line(&["sleeping 20000 ms"])
    ));
    let signal = || {
        std::process::Command::new("kill")
            .args(["-TERM", &kumo.pid().to_string()])
            .status()
            .unwrap()
    };
    signal();
    assert!(tokio::task::block_in_place(
        || kumo.wait_for_log_line(&["shutting down the gateway"])
    ));
    if second_signal {
        signal();
    }
    let exit = tokio::task::spawn_blocking(move || kumo.wait_with_logs())
        .await
        .unwrap();
    in_flight.abort();
    exit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_cuts_requests_off_exits_non_zero() {
    let (exit, logs) = shutdown_with_a_long_request(&["--shutdown-timeout-ms", "300"], false).await;
    assert!(!exit.success(), "kumo exited with {exit}");
    assert!(
        logs.contains("requests still running after the shutdown grace period"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_without_waiting() {
    // The grace period is long; the second SIGTERM must not wait for it.
    let (exit, _) = shutdown_with_a_long_request(&["--shutdown-timeout-ms", "60000"], true).await;
    assert!(!exit.success(), "kumo exited with {exit}");
}
