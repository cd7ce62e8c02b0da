//! Test harness: builds every example and test guest to wasm (once per test
//! run), and runs the real `kumo` binary on `127.0.0.1:0` in a temp dir.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a `kumo up` may take to print its address (it compiles
/// components first; a cold debug build on 2 cores is the slow case).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a `kumo up --build` of Python and JavaScript functions may
/// take: each componentize run takes 10 to 30 s on 2 busy cores, a first
/// `npm install` more.
const BUILD_START_TIMEOUT: Duration = Duration::from_secs(900);

/// The componentize-py the Python functions build with (as `kumo new`
/// pins it).
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The repository's root folder.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ has a parent")
}

/// Builds the guest workspaces once per test run and returns the folder of
/// each one's release wasm files: `(examples, test guests)`.
fn built_guests() -> &'static (PathBuf, PathBuf) {
    static GUESTS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    GUESTS.get_or_init(|| {
        ensure_wasm_target();
        let examples = repo_root().join("examples");
        let tests = repo_root().join("tests/guests");
        for workspace in [&examples, &tests] {
            build_guest_workspace(workspace);
        }
        let release = |workspace: &Path| workspace.join("target/wasm32-wasip2/release");
        (release(&examples), release(&tests))
    })
}

/// A fresh machine has the pinned toolchain but not always its wasm target.
fn ensure_wasm_target() {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(repo_root())
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .exists()
    {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(repo_root())
        .status()
        .expect("the wasm32-wasip2 target is missing and rustup is not available to add it");
    assert!(status.success(), "rustup target add wasm32-wasip2 failed");
}

/// Installs the Python package `requirement` with pip unless `present`
/// (a Python snippet) already runs; once per test process and package, so
/// that `cargo test --workspace` alone runs the whole suite on a fresh
/// machine.
pub fn ensure_python_package(present: &str, requirement: &str) {
    static INSTALLED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed.iter().any(|done| done == requirement) {
        return;
    }
    let found = Command::new("python3")
        .args(["-c", present])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("python3 runs; hint: install Python 3");
    if !found.success() {
        let output = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", requirement])
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "`python3 -m pip install {requirement}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    installed.push(requirement.to_string());
}

/// The object-storage tests and the docs drive a real S3 client, boto3.
pub fn ensure_boto3() {
    ensure_python_package("import boto3", "boto3>=1.34");
}

/// Polls `probe` every 20 ms until it gives a value, for at most `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Python functions build with componentize-py: installed here, at
/// the pinned version, when `componentize-py --version` does not print it.
pub fn ensure_componentize_py() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let version = Command::new("componentize-py").arg("--version").output();
        if version.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(COMPONENTIZE_PY)) {
            return;
        }
        let output = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}"))
            .output()
            .expect("python3 runs; hint: install Python 3");
        assert!(
            output.status.success(),
            "componentize-py is missing and `python3 -m pip install componentize-py=={COMPONENTIZE_PY}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// The JavaScript functions build with componentize-js, which runs on
/// Node.js: its packages come from `sdk/js/package-lock.json` (`npm ci`,
/// run here when `sdk/js/node_modules` is missing; the build commands of
/// the examples do the same).
pub fn ensure_js_toolchain() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let sdk = repo_root().join("sdk/js");
        if sdk.join("node_modules/.bin/componentize-js").exists() {
            return;
        }
        let output = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&sdk)
            .output()
            .expect("npm runs; hint: install Node.js 20 or later with npm");
        assert!(
            output.status.success(),
            "`npm ci` in {} failed:\n{}",
            sdk.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

fn build_guest_workspace(workspace: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(workspace)
        // Settings of the outer (host) build must not leak into the guests'.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the guests in {} failed:\n{}",
        workspace.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The path of a bundled example's component (`hello`, `echo`, `plain`).
pub fn example(name: &str) -> PathBuf {
    built_guests().0.join(format!("{name}.wasm"))
}

/// The path of a test guest's component (`trap`, `forever`, ...).
pub fn test_guest(name: &str) -> PathBuf {
    built_guests().1.join(format!("{name}.wasm"))
}

/// Lines a child process wrote, shared with the thread reading them.
#[derive(Default)]
pub struct Lines {
    text: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Lines {
    pub fn collect(self: &Arc<Self>, stream: impl std::io::Read + Send + 'static) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut text = lines.text.lock().unwrap();
                text.0.push_str(&line);
                text.0.push('\n');
                lines.changed.notify_all();
            }
            // The process closed the stream (it exited): wake the waiters.
            lines.text.lock().unwrap().1 = true;
            lines.changed.notify_all();
        });
    }

    /// Waits (bounded) until `predicate` holds for the text so far, or the
    /// stream closed without it.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        loop {
            if predicate(&text.0) {
                return true;
            }
            let now = Instant::now();
            if text.1 || now >= deadline {
                return false;
            }
            text = self.changed.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Waits (bounded) until the stream is closed.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        while !text.1 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            text = self.changed.wait_timeout(text, left).unwrap().0;
        }
    }

    pub fn snapshot(&self) -> String {
        self.text.lock().unwrap().0.clone()
    }
}

/// A running `kumo up`, stopped when dropped.
pub struct Kumo {
    child: Child,
    /// The gateway's address.
    pub addr: SocketAddr,
    /// The admin API's address.
    pub admin_addr: SocketAddr,
    token: String,
    data_dir: PathBuf,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    /// Keeps the manifest folder alive while the server runs.
    _dir: Option<tempfile::TempDir>,
}

/// A `kumo` process that exited: its status and output.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// How to start `kumo up`.
pub struct Start<'a> {
    pub manifest: &'a Path,
    pub data_dir: &'a Path,
    pub extra_args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
}

/// `port_base`: where the three listeners go (`--port-base`); `None` gives
/// each a free port.
fn spawn(verb: &str, start: &Start<'_>, port_base: Option<u16>) -> (Child, Arc<Lines>, Arc<Lines>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kumo"));
    command.arg(verb);
    if verb != "server" {
        command.arg("-f").arg(start.manifest);
    }
    match port_base {
        None => command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            // Every test server gets its own free storage port (a test may
            // still set another through `env`).
            .env("KUMO_STORAGE_LISTEN", "127.0.0.1:0"),
        Some(base) => command
            .arg("--port-base")
            .arg(base.to_string())
            .env_remove("KUMO_STORAGE_LISTEN"),
    };
    command
        .arg("--data-dir")
        .arg(start.data_dir)
        .args(start.extra_args)
        .env("KUMO_LOG", "info")
        .env_remove("RUST_LOG")
        .env_remove("KUMO_DATA_DIR")
        .env_remove("KUMO_LISTEN")
        .env_remove("KUMO_ADMIN_LISTEN")
        .env_remove("KUMO_ADMIN_TOKEN")
        .env_remove("KUMO_SERVER")
        .env_remove("KUMO_PORT_BASE")
        .env_remove("KUMO_STORAGE_ACCESS_KEY")
        .env_remove("KUMO_STORAGE_SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in start.env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the kumo binary starts");
    let stdout = Arc::new(Lines::default());
    let stderr = Arc::new(Lines::default());
    stdout.collect(child.stdout.take().unwrap());
    stderr.collect(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

impl Kumo {
    /// Writes `manifest` to a temp folder and serves it with a fresh data
    /// directory.
    pub fn up(manifest: &str) -> Kumo {
        Kumo::up_with_env(manifest, &[])
    }

    /// As [`Kumo::up`], with extra environment variables for kumo.
    pub fn up_with_env(manifest: &str, env: &[(&str, &str)]) -> Kumo {
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("kumo.toml");
        std::fs::write(&manifest_path, manifest).unwrap();
        let data_dir = dir.path().join("data");
        let mut kumo = Kumo::start(&Start {
            manifest: &manifest_path,
            data_dir: &data_dir,
            extra_args: &[],
            env,
        })
        .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"));
        kumo._dir = Some(dir);
        kumo
    }

    /// Starts `kumo up` and waits until it serves, or until it exits.
    pub fn start(start: &Start<'_>) -> Result<Kumo, Exited> {
        Kumo::start_verb("up", start)
    }

    /// Starts `kumo server` (no manifest) on a data directory.
    pub fn server(data_dir: &Path) -> Kumo {
        Kumo::start_verb(
            "server",
            &Start {
                manifest: Path::new(""),
                data_dir,
                extra_args: &[],
                env: &[],
            },
        )
        .unwrap_or_else(|exited| panic!("kumo server did not start: {exited:#?}"))
    }

    /// Starts `kumo VERB` (`up`, `dev` or `server`) and waits until it
    /// serves, or until it exits.
    pub fn start_verb(verb: &str, start: &Start<'_>) -> Result<Kumo, Exited> {
        Kumo::start_listening(verb, start, None, START_TIMEOUT)
    }

    /// As [`Kumo::start_verb`], waiting longer: for `--build` of Python
    /// and JavaScript functions.
    pub fn start_building(verb: &str, start: &Start<'_>) -> Result<Kumo, Exited> {
        Kumo::start_listening(verb, start, None, BUILD_START_TIMEOUT)
    }

    /// Starts `kumo server` on a data directory with `--port-base base`
    /// (and no other listen flag), and waits until it serves.
    pub fn server_on_port_base(data_dir: &Path, base: u16) -> Kumo {
        let start = Start {
            manifest: Path::new(""),
            data_dir,
            extra_args: &[],
            env: &[],
        };
        Kumo::start_listening("server", &start, Some(base), START_TIMEOUT)
            .unwrap_or_else(|exited| panic!("kumo server did not start: {exited:#?}"))
    }

    fn start_listening(
        verb: &str,
        start: &Start<'_>,
        port_base: Option<u16>,
        timeout: Duration,
    ) -> Result<Kumo, Exited> {
        let (mut child, stdout, stderr) = spawn(verb, start, port_base);
        let serving = stdout.wait_for(timeout, |text| text.contains("kumo: serving http://"));
        if !serving {
            let _ = child.kill();
            let status = child.wait().unwrap();
            // Let the reader threads drain what is left.
            stdout.wait_closed(Duration::from_secs(10));
            stderr.wait_closed(Duration::from_secs(10));
            return Err(Exited {
                status,
                stdout: stdout.snapshot(),
                stderr: stderr.snapshot(),
            });
        }
        let text = stdout.snapshot();
        let address = |prefix: &str| -> SocketAddr {
            text.lines()
                .find_map(|line| line.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("kumo printed no `{prefix}` line: {text}"))
                .parse()
                .unwrap()
        };
        // The token given with `--admin-token`, else the one kumo wrote.
        let given = start
            .extra_args
            .iter()
            .position(|arg| *arg == "--admin-token")
            .and_then(|at| start.extra_args.get(at + 1));
        let token = match given {
            Some(token) => token.to_string(),
            None => std::fs::read_to_string(start.data_dir.join("admin-token"))
                .expect("kumo wrote its admin token")
                .trim()
                .to_string(),
        };
        Ok(Kumo {
            child,
            addr: address("kumo: serving http://"),
            admin_addr: address("kumo: admin api http://"),
            token,
            data_dir: start.data_dir.to_path_buf(),
            stdout,
            stderr,
            _dir: None,
        })
    }

    /// A full URL on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A full URL on the admin API.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// The admin API's base URL, for `--server`.
    pub fn admin_base(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The admin token the server generated.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// An admin API request with the token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.admin_url(path))
            .bearer_auth(&self.token)
    }

    /// Runs a `kumo` client verb against this server; returns its exit
    /// status, stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> Exited {
        let output = Command::new(env!("CARGO_BIN_EXE_kumo"))
            .args(args)
            .env("KUMO_SERVER", self.admin_base())
            .env("KUMO_ADMIN_TOKEN", &self.token)
            .env_remove("KUMO_DATA_DIR")
            .env("KUMO_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("the kumo binary runs");
        Exited {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything kumo printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.snapshot()
    }

    /// Everything kumo logged (stderr) so far.
    pub fn logs(&self) -> String {
        self.stderr.snapshot()
    }

    /// Waits (bounded) until the log holds every one of `needles` on one line.
    pub fn wait_for_log_line(&self, needles: &[&str]) -> bool {
        self.stderr.wait_for(Duration::from_secs(10), |text| {
            text.lines()
                .any(|line| needles.iter().all(|needle| line.contains(needle)))
        })
    }

    /// Waits (bounded) until stdout holds `needle`.
    pub fn wait_for_stdout(&self, needle: &str) -> bool {
        self.stdout
            .wait_for(Duration::from_secs(30), |text| text.contains(needle))
    }

    /// Waits (bounded by `timeout`) until stdout holds `needle`: for what
    /// follows a rebuild.
    pub fn wait_for_stdout_within(&self, needle: &str, timeout: Duration) -> bool {
        self.stdout.wait_for(timeout, |text| text.contains(needle))
    }

    /// Waits (bounded) until at least `count` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, count: usize) -> bool {
        self.stderr.wait_for(Duration::from_secs(10), |text| {
            text.lines().filter(|line| line.contains(needle)).count() >= count
        })
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn wait(mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// Waits for the process to exit and returns its status and its whole
    /// log.
    pub fn wait_with_logs(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        self.stderr.wait_closed(Duration::from_secs(10));
        (status, self.stderr.snapshot())
    }
}

impl Drop for Kumo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kumo up` on a manifest that must be refused, and returns what it
/// printed. Panics if kumo starts serving.
pub fn up_expecting_failure(dir: &Path, manifest: &str) -> Exited {
    let manifest_path = dir.join("kumo.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    match Kumo::start(&Start {
        manifest: &manifest_path,
        data_dir: &dir.join("data"),
        extra_args: &[],
        env: &[],
    }) {
        Ok(kumo) => panic!(
            "kumo served a manifest it should refuse; logs:\n{}",
            kumo.logs()
        ),
        Err(exited) => exited,
    }
}

/// A `--port-base` whose three loopback ports are free right now. It is
/// taken below Linux's ephemeral range (32768 and up), where no port-0
/// listener of a concurrent test can land, and each call tries new
/// numbers, so two tests of one run do not get the same base.
pub fn free_port_base() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % 1000;
    for _ in 0..1000 {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + (offset * 7 + call * 3) % 10_000;
        let base = u16::try_from(base).expect("below 30000");
        let free =
            (base..base + 3).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no three free consecutive ports between 20000 and 30000");
}

/// A TOML string literal for a path.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// Reads a response body to its end; returns the bytes received and
/// whether the stream ended cleanly (`Ok`) or broke off (`Err`).
pub async fn read_body_outcome(
    mut response: reqwest::Response,
) -> (usize, Result<(), reqwest::Error>) {
    let mut received = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => return (received, Ok(())),
            Err(error) => return (received, Err(error)),
        }
    }
}

/// An HTTP client with no connection reuse surprises and a generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
