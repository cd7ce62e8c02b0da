//! Docs that are executed: the shell blocks of `docs/getting-started.md`
//! run top to bottom against a real server, as a reader would type them,
//! and the output the page shows is checked where it is marked. Other pages
//! run only the blocks marked `run`.
//!
//! Markers are HTML comments (invisible when the page is rendered) on the
//! line before a fenced block:
//!
//! - `<!-- doc-test: page -->` (anywhere): run every `sh` block of the page.
//! - `<!-- doc-test: run -->`: run this `sh` block (pages without `page`).
//! - `<!-- doc-test: skip: WHY -->`: do not run this `sh` block.
//! - `<!-- doc-test: background -->`: start this `sh` block (one command)
//!   and go on once it serves (`kumo: serving` or `kumo dev: watching`).
//! - `<!-- doc-test: stop -->` (alone): Ctrl-C the background command.
//! - `<!-- doc-test: output -->`: this `text` block is what the last command
//!   printed (stdout and stderr); a line `...` stands for any lines.
//! - `<!-- doc-test: server-output -->`: the lines of this `text` block
//!   (but `...`) appear, in order, in the background command's output
//!   (waits for them).
//! - `<!-- doc-test: file PATH -->`: write this block to PATH.
//!
//! Before comparing, both sides are normalised: timestamps, request ids,
//! hashes, durations and sizes that change from run to run become
//! placeholders. Commands run in a scratch folder laid out as the page
//! says (`kumo/` a checkout, `myfn/` beside it), with `kumo` on `PATH`, and
//! with the default ports 3000, 3001 and 9000 moved to free ones.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use regex_automata::dfa::regex::Regex;

use crate::harness::{self, Lines};

/// How long a background server may take to start (a `--build` compiles a
/// crate first).
const START: Duration = Duration::from_secs(300);

/// How long a line shown as the server's may take to appear (a rebuild, a
/// timer's next firing).
const APPEAR: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Page,
    Run,
    Skip,
    Background,
    Stop,
    Output,
    ServerOutput,
    File(String),
}

#[derive(Debug)]
enum Item {
    Marker(Marker, usize),
    Block {
        info: String,
        text: String,
        line: usize,
    },
}

/// Splits a page into markers and fenced blocks, in order.
fn parse_page(page: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = page.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(marker) = trimmed
            .strip_prefix("<!-- doc-test:")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            let marker = marker.trim();
            let parsed = match marker {
                "page" => Marker::Page,
                "run" => Marker::Run,
                "background" => Marker::Background,
                "stop" => Marker::Stop,
                "output" => Marker::Output,
                "server-output" => Marker::ServerOutput,
                _ if marker.starts_with("skip:") => Marker::Skip,
                _ if marker.starts_with("file ") => Marker::File(marker[5..].trim().to_string()),
                _ => panic!("line {}: unknown doc-test marker `{marker}`", number + 1),
            };
            items.push(Item::Marker(parsed, number + 1));
        } else if let Some(info) = trimmed.strip_prefix("```")
            && !info.is_empty()
        {
            let mut text = String::new();
            for (_, inner) in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                text.push_str(inner);
                text.push('\n');
            }
            items.push(Item::Block {
                info: info.trim().to_string(),
                text,
                line: number + 1,
            });
        }
    }
    items
}

/// Replaces what changes from run to run with placeholders.
///
/// The patterns are ASCII-only DFAs of `regex-automata`, with the features
/// Kumo's own dependencies already build it with, so that the test build
/// compiles no dependency of `kumo` again.
struct Normaliser {
    rules: Vec<(Regex, Replacement)>,
}

enum Replacement {
    /// The whole match becomes this.
    With(&'static str),
    /// The match up to and including the last `char` stays, then this.
    KeepThrough(char, &'static str),
}

impl Normaliser {
    fn new() -> Normaliser {
        use Replacement::{KeepThrough, With};
        let rules = [
            (
                r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})",
                With("<time>"),
            ),
            (
                r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
                With("<time>"),
            ),
            (r"[Dd]ate: [ -~]* GMT", With("date: <date>")),
            (r"kumo_[0-9a-f]{64}", With("<token>")),
            (r"\b[0-9a-f]{64}\b", With("<sha256>")),
            (r"\b[0-9a-f]{32}\b", With("<id>")),
            (r"\b[0-9a-f]{12}\b", With("<hash>")),
            // Whether a request found a warm instance depends on the
            // machine's load: a REPORT line's cold-start field is dropped.
            (r"\tInit Duration: [0-9]+(\.[0-9]+)? ms", With("")),
            // Cargo writes a build past a minute as `1m 05s`.
            (
                r"\b([0-9]+m )?[0-9]+(\.[0-9]+)? ?(ms|s)\b",
                With("<duration>"),
            ),
            (r"wasm_bytes=[0-9]+", With("wasm_bytes=<n>")),
            (r"trg_[0-9a-f]{16}", With("trg_<id>")),
            (r"\b[0-9a-f]{8}\.\.", With("<hash>..")),
            // A component's size changes with the path it was built in.
            (r"^[0-9]+ +<hash> +[0-9]+", KeepThrough(' ', "<bytes>")),
            (r"curl/[0-9.]+", With("curl/<version>")),
            // `--help` shows the variables set in its environment.
            (r"\[env: [A-Z_]+=[ -\x5c^-~]*\]", KeepThrough('=', "]")),
            (
                r"access[_ ]key:? =? ?[A-Za-z0-9]+",
                With("access key <key>"),
            ),
            (
                r"secret[_ ]key:? =? ?[A-Za-z0-9]+",
                With("secret key <key>"),
            ),
        ];
        Normaliser {
            rules: rules
                .into_iter()
                .map(|(pattern, to)| {
                    let regex = Regex::new(&format!("(?-u){pattern}"))
                        .unwrap_or_else(|error| panic!("pattern {pattern}: {error}"));
                    (regex, to)
                })
                .collect(),
        }
    }

    fn line(&self, line: &str) -> String {
        let mut line = line.trim_end().to_string();
        for (pattern, to) in &self.rules {
            let mut replaced = String::with_capacity(line.len());
            let mut last = 0;
            for found in pattern.find_iter(line.as_bytes()) {
                let matched = &line[found.start()..found.end()];
                replaced.push_str(&line[last..found.start()]);
                match to {
                    Replacement::With(text) => replaced.push_str(text),
                    Replacement::KeepThrough(at, text) => {
                        let kept = matched.rfind(*at).map_or(0, |index| index + 1);
                        replaced.push_str(&matched[..kept]);
                        replaced.push_str(text);
                    }
                }
                last = found.end();
            }
            replaced.push_str(&line[last..]);
            line = replaced;
        }
        line
    }
}

/// Whether `actual` is `shown`, where a shown line `...` stands for any
/// number of lines.
fn matches_with_ellipsis(shown: &[String], actual: &[String]) -> bool {
    match shown.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches_with_ellipsis(rest, &actual[skip..]))
        }
        Some((first, rest)) => {
            actual.first() == Some(first) && matches_with_ellipsis(rest, &actual[1..])
        }
    }
}

/// Whether the shown lines (but `...`) appear in `actual` in order.
fn appears_in_order(shown: &[String], actual: &[String]) -> bool {
    let mut actual = actual.iter();
    shown
        .iter()
        .filter(|line| *line != "...")
        .all(|wanted| actual.any(|line| line == wanted))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The scratch world the commands of a page run in.
struct World {
    _root: tempfile::TempDir,
    root: PathBuf,
    /// The folder the next command starts in (a `cd` carries over).
    cwd: PathBuf,
    /// `export -p` of the last command: exported variables carry over.
    exports: String,
    /// The page's default ports and the free ones they stand for.
    ports: Vec<(String, String)>,
    normaliser: Normaliser,
    last_output: String,
    background: Option<(Child, Arc<Lines>)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let checkout = root.join("kumo");
        std::fs::create_dir(&checkout).unwrap();
        // The page's `kumo/` is a checkout: the parts a reader uses, linked
        // (the examples' target folder is the one this test run built).
        for part in [
            "Cargo.toml",
            "Cargo.lock",
            "examples",
            "protocol",
            "runtime",
            "sdk",
        ] {
            std::os::unix::fs::symlink(harness::repo_root().join(part), checkout.join(part))
                .unwrap();
        }
        let ports = ["3000", "3001", "9000"]
            .into_iter()
            .map(|port| {
                (
                    format!("127.0.0.1:{port}"),
                    format!("127.0.0.1:{}", free_port()),
                )
            })
            .collect();
        // curl shows no progress meter on a terminal; it does on a pipe.
        let curl_home = root.join(".curl");
        std::fs::create_dir(&curl_home).unwrap();
        std::fs::write(curl_home.join(".curlrc"), "no-progress-meter\n").unwrap();
        World {
            _root: dir,
            cwd: checkout,
            root,
            exports: String::new(),
            ports,
            normaliser: Normaliser::new(),
            last_output: String::new(),
            background: None,
        }
    }

    /// A command as the page writes it, made to run here.
    fn localise(&self, command: &str) -> String {
        let mut command = command.to_string();
        for spelling in [
            "cargo run --release -p kumo --",
            "cargo run -q -p kumo --",
            "cargo run -p kumo --",
        ] {
            command = command.replace(spelling, "kumo");
        }
        for (page, here) in &self.ports {
            command = command.replace(page, here);
        }
        command
    }

    /// Output as the page would show it.
    fn as_shown(&self, output: &str) -> Vec<String> {
        let mut output = output.to_string();
        for (page, here) in &self.ports {
            output = output.replace(here, page);
        }
        let checkout = self.root.join("kumo");
        output = output
            .replace(&harness::repo_root().display().to_string(), "/tmp/kumo")
            .replace(&checkout.display().to_string(), "/tmp/kumo")
            .replace(&self.root.display().to_string(), "/tmp");
        output
            .lines()
            .map(|line| self.normaliser.line(line))
            .collect()
    }

    fn shown(&self, text: &str) -> Vec<String> {
        text.lines()
            .map(|line| self.normaliser.line(line))
            .collect()
    }

    fn shell(&self, script: &str) -> Command {
        let kumo_dir = Path::new(env!("CARGO_BIN_EXE_kumo")).parent().unwrap();
        let path = format!(
            "{}:{}",
            kumo_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(&self.cwd)
            .env("PATH", path)
            .env("CURL_HOME", self.root.join(".curl"))
            .env("KUMO_LISTEN", &self.ports[0].1)
            .env("KUMO_ADMIN_LISTEN", &self.ports[1].1)
            .env("KUMO_STORAGE_LISTEN", &self.ports[2].1)
            .env("KUMO_SERVER", format!("http://{}", self.ports[1].1))
            .env_remove("KUMO_DATA_DIR")
            .env_remove("KUMO_ADMIN_TOKEN")
            .env_remove("KUMO_LOG")
            .env_remove("RUST_LOG")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null());
        command
    }

    /// Runs a block in the foreground; the folder and exported variables it
    /// leaves carry over to the next one.
    fn run(&mut self, block: &str, line: usize) {
        let state = self.root.join(".doc-test-state");
        // One stream for both, in the order a terminal would show them.
        let script = format!(
            "exec 2>&1\nset -eo pipefail\n{}\n{}\npwd > '{cwd}'\nexport -p > '{env}'\n",
            self.exports,
            self.localise(block),
            cwd = state.with_extension("cwd").display(),
            env = state.with_extension("env").display(),
        );
        let output = self
            .shell(&script)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // Shown when the test fails (or with --nocapture): the whole walk.
        eprintln!("$ {}\n{text}", block.trim_end());
        assert!(
            output.status.success(),
            "the block at line {line} failed ({}):\n{block}\n--- its output:\n{text}",
            output.status
        );
        self.cwd = PathBuf::from(
            std::fs::read_to_string(state.with_extension("cwd"))
                .unwrap()
                .trim(),
        );
        self.exports = std::fs::read_to_string(state.with_extension("env")).unwrap();
        self.last_output = text;
    }

    fn start_background(&mut self, block: &str, line: usize) {
        assert!(
            self.background.is_none(),
            "line {line}: a background command is already running"
        );
        let script = format!(
            "{}\nexec 2>&1\nexec {}",
            self.exports,
            self.localise(block.trim())
        );
        let mut child = self
            .shell(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Lines::default());
        lines.collect(child.stdout.take().unwrap());
        let ready = lines.wait_for(START, |text| {
            text.contains("kumo: serving http://") || text.contains("kumo dev: watching")
        });
        assert!(
            ready,
            "the background block at line {line} did not start serving:\n{block}\n--- its output:\n{}",
            lines.snapshot()
        );
        self.background = Some((child, lines));
    }

    fn stop_background(&mut self, line: usize) {
        let (mut child, lines) = self
            .background
            .take()
            .unwrap_or_else(|| panic!("line {line}: `stop` with no background command"));
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = child.wait().unwrap();
        lines.wait_closed(Duration::from_secs(30));
        assert!(
            exited.success(),
            "line {line}: the background command did not stop cleanly ({exited}):\n{}",
            lines.snapshot()
        );
        // What it printed last stays checkable by a `server-output` block.
        self.last_output = lines.snapshot();
    }

    fn check_output(&self, shown: &str, line: usize) {
        let shown_lines = self.shown(shown);
        let actual = self.as_shown(&self.last_output);
        assert!(
            matches_with_ellipsis(&shown_lines, &actual),
            "the output shown at line {line} is not what the command printed.\n--- shown (normalised):\n{}\n--- printed (normalised):\n{}",
            shown_lines.join("\n"),
            actual.join("\n")
        );
    }

    fn check_server_output(&self, shown: &str, line: usize) {
        let shown_lines = self.shown(shown);
        let found = match &self.background {
            Some((_, lines)) => lines.wait_for(APPEAR, |text| {
                appears_in_order(&shown_lines, &self.as_shown(text))
            }),
            None => appears_in_order(&shown_lines, &self.as_shown(&self.last_output)),
        };
        let printed = match &self.background {
            Some((_, lines)) => lines.snapshot(),
            None => self.last_output.clone(),
        };
        assert!(
            found,
            "the server output shown at line {line} did not appear.\n--- shown (normalised):\n{}\n--- printed (normalised):\n{}",
            shown_lines.join("\n"),
            self.as_shown(&printed).join("\n")
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.background.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs one page: every `sh` block with `page`, else the marked ones.
fn run_page(name: &str) {
    let page = std::fs::read_to_string(harness::repo_root().join("docs").join(name)).unwrap();
    let items = parse_page(&page);
    let whole_page = items
        .iter()
        .any(|item| matches!(item, Item::Marker(Marker::Page, _)));
    // Make sure the examples are built (the page's `--build` reuses them),
    // and the page's S3 client is there.
    harness::example("hello");
    harness::ensure_boto3();
    let mut world = World::new();
    let mut pending: Option<Marker> = None;
    let mut ran = 0;
    for item in items {
        match item {
            Item::Marker(Marker::Page, _) => {}
            Item::Marker(Marker::Stop, line) => world.stop_background(line),
            Item::Marker(marker, line) => {
                assert!(
                    pending.is_none(),
                    "line {line}: two markers before one block"
                );
                pending = Some(marker);
            }
            Item::Block { info, text, line } => match (pending.take(), info.as_str()) {
                (Some(Marker::File(path)), _) => {
                    let path = world.cwd.join(path);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, &text).unwrap();
                }
                (Some(Marker::Skip), "sh") => {}
                (Some(Marker::Background), "sh") => {
                    world.start_background(&text, line);
                    ran += 1;
                }
                (Some(Marker::Run), "sh") => {
                    world.run(&text, line);
                    ran += 1;
                }
                (None, "sh") if whole_page => {
                    world.run(&text, line);
                    ran += 1;
                }
                (Some(Marker::Output), "text") => world.check_output(&text, line),
                (Some(Marker::ServerOutput), "text") => world.check_server_output(&text, line),
                (None, _) => {}
                (Some(marker), info) => {
                    panic!("line {line}: marker {marker:?} does not apply to a `{info}` block")
                }
            },
        }
    }
    assert!(
        ran > 0,
        "{name}: no block ran; mark blocks with <!-- doc-test: run -->"
    );
}

#[test]
fn getting_started_runs_as_written() {
    run_page("getting-started.md");
}

#[test]
fn operations_blocks_marked_run_run_as_written() {
    run_page("operations.md");
}

#[test]
fn normalising_and_matching() {
    let normaliser = Normaliser::new();
    let cases = [
        (
            "2026-11-23T12:45:08.299543Z  INFO compiled function in 126.0 ms function=echo sha256=5cefa516f1e2 wasm_bytes=173884",
            "<time>  INFO compiled function in <duration> function=echo sha256=<hash> wasm_bytes=<n>",
        ),
        (
            "x-kumo-request-id: 28b76889422d4dbebfbeccd5f3079ee5",
            "x-kumo-request-id: <id>",
        ),
        ("date: Mon, 23 Nov 2026 12:45:08 GMT", "date: <date>"),
        (
            "kumo: [1/1] built echo in 5.2s",
            "kumo: [1/1] built echo in <duration>",
        ),
        (
            "    Finished `release` profile [optimized] target(s) in 1m 05s",
            "    Finished `release` profile [optimized] target(s) in <duration>",
        ),
        ("version 12 of greet", "version 12 of greet"),
        (
            "REPORT RequestId: x\tDuration: 2001.84 ms\tInit Duration: 0.61 ms\tStatus: timeout",
            "REPORT RequestId: x\tDuration: <duration>\tStatus: timeout",
        ),
        (
            "1        bf9c485a6ced  418959  128",
            "1        <hash>  <bytes>  128",
        ),
        (
            "Address [env: KUMO_LISTEN=127.0.0.1:44837] [default: x]",
            "Address [env: KUMO_LISTEN=] [default: x]",
        ),
        (
            "code changed (sha256 bf9c485a.. -> 46af6dfc..)",
            "code changed (sha256 <hash>.. -> <hash>..)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(normaliser.line(line), expected, "{line}");
    }
    let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
    let match_cases = [
        ("a\nb", "a\nb", true),
        ("a\n...\nc", "a\nb\nb\nc", true),
        ("a\n...\nc", "a\nc", true),
        ("a\nc", "a\nb\nc", false),
        ("a\n...", "a\nb", true),
        ("a", "a\nb", false),
    ];
    for (shown, actual, expected) in match_cases {
        assert_eq!(
            matches_with_ellipsis(&lines(shown), &lines(actual)),
            expected,
            "{shown:?} against {actual:?}"
        );
    }
    assert!(appears_in_order(&lines("a\n...\nc"), &lines("x\na\ny\nc")));
    assert!(!appears_in_order(&lines("c\na"), &lines("a\nc")));
}
