//! The web console (`/console/` on the admin listener).
//!
//! One test drives it in a real browser: headless Chromium from Debian's
//! `chromium` package, driven by Playwright for Python
//! (`console_browser.py` beside this file), against `kumo up` of the
//! examples. The test run installs both when missing (`apt-get install
//! chromium`, `pip install playwright`; never `playwright install`, which
//! downloads a browser of its own). Screenshots go to a temp folder, or to
//! `$KUMO_CONSOLE_SCREENSHOTS` when set (`docs/images` refreshes the
//! docs' pictures; see `docs/console.md`).
//!
//! The others are plain HTTP: a wrong token, a forged cross-site form and
//! a closed session are refused. An expired session is tested in-process
//! with an injected clock (`console::tests` in the runtime), since a real
//! server's sessions last hours.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::harness::{Kumo, Start, client, example, repo_root, toml_path};

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs Chromium from Debian when it is missing (the tests run as
/// root, as CI does).
fn ensure_chromium() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if Path::new(CHROMIUM).exists() {
            return;
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .expect("apt-get runs; hint: the browser test needs Debian's chromium package")
        };
        if !install().status.success() {
            // A fresh machine's package lists may be missing or old.
            let update = Command::new("apt-get")
                .arg("update")
                .output()
                .expect("apt-get runs");
            assert!(
                update.status.success(),
                "apt-get update failed:\n{}",
                String::from_utf8_lossy(&update.stderr)
            );
            let output = install();
            assert!(
                output.status.success(),
                "apt-get install chromium failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(
            Path::new(CHROMIUM).exists(),
            "chromium installed no {CHROMIUM}"
        );
    });
}

/// Installs Playwright for Python when it is missing (only the driver: the
/// browser is Debian's).
fn ensure_playwright() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let present = Command::new("python3")
            .args(["-c", "import playwright.sync_api"])
            .stderr(Stdio::null())
            .status()
            .expect("python3 runs; hint: install Python 3");
        if present.success() {
            return;
        }
        let output = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "playwright>=1.55,<2"])
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "playwright is missing and `python3 -m pip install playwright` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// `kumo up` of the examples' own manifest (their components were built
/// by the harness, where the manifest's `source` paths point).
fn serve_examples(data_dir: &Path) -> Kumo {
    example("hello"); // builds every example once
    Kumo::start(&Start {
        manifest: &repo_root().join("examples/kumo.toml"),
        data_dir,
        extra_args: &[],
        env: &[],
    })
    .unwrap_or_else(|exited| panic!("kumo did not start: {exited:#?}"))
}

/// Where the browser test writes its screenshots: `$KUMO_CONSOLE_SCREENSHOTS`
/// (relative to the repository) or a temp folder.
fn screenshot_dir(temp: &Path) -> PathBuf {
    match std::env::var_os("KUMO_CONSOLE_SCREENSHOTS") {
        Some(dir) => {
            let dir = repo_root().join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
        None => temp.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_browser() {
    ensure_chromium();
    ensure_playwright();
    let dir = tempfile::tempdir().unwrap();
    let kumo = serve_examples(&dir.path().join("data"));

    // A second version of `hello` (another component), an alias on the
    // first, and a route to the alias: the browser moves the alias.
    let form = reqwest::multipart::Form::new().part(
        "component",
        reqwest::multipart::Part::bytes(std::fs::read(example("plain")).unwrap())
            .file_name("plain.wasm"),
    );
    let deployed = kumo
        .admin(Method::POST, "/v1/functions/hello/versions")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), StatusCode::CREATED);
    let alias = kumo
        .admin(Method::PUT, "/v1/functions/hello/aliases/live")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), StatusCode::OK);
    let route = kumo
        .admin(Method::POST, "/v1/triggers")
        .json(&json!({"kind": "http", "route": "/live", "function": "hello:live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(route.status(), StatusCode::CREATED);

    // The invocation the browser must find on hello's page.
    let earlier = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(earlier.status(), StatusCode::OK);
    let request_id = earlier.headers()["x-kumo-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let shots = screenshot_dir(dir.path());
    let script = repo_root().join("tests/integration/console_browser.py");
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUMO_CONSOLE_URL", kumo.admin_base())
        .env("KUMO_GATEWAY_URL", format!("http://{}", kumo.addr))
        .env("KUMO_ADMIN_TOKEN", kumo.token())
        .env("KUMO_REQUEST_ID", &request_id)
        .env("KUMO_CAT_PNG", repo_root().join("examples/cat.png"))
        .env("KUMO_SCREENSHOT_DIR", &shots)
        .env("KUMO_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "{stdout}browser test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\n--- kumo's log ---\n{}",
        kumo.logs()
    );
    assert!(stdout.contains("console test: done"), "{stdout}");
    for name in ["console-sign-in", "console-overview", "console-function"] {
        assert!(shots.join(format!("{name}.png")).is_file(), "no {name}.png");
    }
}

fn hello_manifest() -> String {
    format!(
        "[function.hello]\nsource = {}\n\n[[trigger.http]]\nroute = \"/hello\"\nfunction = \"hello\"\n",
        toml_path(&example("hello"))
    )
}

/// Signs in with `token`; the answer, not followed.
async fn sign_in(kumo: &Kumo, token: &str) -> reqwest::Response {
    no_redirects()
        .post(kumo.admin_url("/console/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session cookie (`kumo_console=<id>`) a sign-in set.
fn session_cookie(response: &reqwest::Response) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}

/// The CSRF token in a console page's forms.
fn csrf_token(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("the page has a form") + marker.len();
    page[start..start + 64].to_string()
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_right_one_opens_a_strict_session() {
    let kumo = Kumo::up(&hello_manifest());
    let http = no_redirects();

    // Closed before signing in: pages send the browser to the sign-in
    // form, data and forms answer nothing useful.
    for path in ["/console/", "/console/billing", "/console/live/instances"] {
        let answer = http.get(kumo.admin_url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.headers()[header::LOCATION], "/console/sign-in");
    }

    for wrong in ["", "kumo_wrong", &kumo.token()[..kumo.token().len() - 1]] {
        let answer = sign_in(&kumo, wrong).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(answer.headers().get(header::SET_COOKIE).is_none());
        let page = answer.text().await.unwrap();
        assert!(page.contains("wrong admin token"), "{page}");
        assert!(!page.contains(kumo.token()));
    }

    let answer = sign_in(&kumo, kumo.token()).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[header::LOCATION], "/console/");
    let set_cookie = answer.headers()[header::SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    let cookie = session_cookie(&answer);
    let overview = http
        .get(kumo.admin_url("/console/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    let csp = overview.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = overview.text().await.unwrap();
    assert!(page.contains("hello"), "{page}");
    assert!(!page.contains(kumo.token()), "the token is never in a page");

    // The live instance counts the script polls: one warm instance after
    // an invocation, under the keys of the page's cells.
    let hello = client().get(kumo.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    let counts: serde_json::Value = http
        .get(kumo.admin_url("/console/live/instances"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warm = |key: &str| {
        counts[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {counts}"))
    };
    assert_eq!(warm("hello:idle") + warm("hello:busy"), 1, "{counts}");
    assert_eq!(warm("hello@1:idle") + warm("hello@1:busy"), 1, "{counts}");
    assert_eq!(warm("*:idle") + warm("*:busy"), 1, "{counts}");
    assert!(page.contains(r#"data-count="hello:idle""#), "{page}");
}

#[tokio::test]
async fn forged_cross_site_forms_are_refused_and_sign_out_closes_the_session() {
    let kumo = Kumo::up(&hello_manifest());
    let http = no_redirects();
    let cookie = session_cookie(&sign_in(&kumo, kumo.token()).await);
    let page = http
        .get(kumo.admin_url("/console/functions/hello"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&page);
    let origin = format!("http://{}", kumo.admin_addr);
    let move_alias = |csrf: &str, origin: &str, site: &str| {
        http.post(kumo.admin_url("/console/functions/hello/aliases"))
            .header(header::COOKIE, &cookie)
            .header(header::ORIGIN, origin)
            .header("sec-fetch-site", site)
            .form(&[("csrf", csrf), ("alias", "live"), ("version", "1")])
            .send()
    };
    let aliases = || async {
        let answer = kumo
            .admin(Method::GET, "/v1/functions/hello")
            .send()
            .await
            .unwrap();
        answer.json::<serde_json::Value>().await.unwrap()["aliases"]
            .as_array()
            .unwrap()
            .len()
    };

    // (CSRF token, Origin, Sec-Fetch-Site): each refused with 403.
    let forged = [
        (csrf.as_str(), "http://evil.example", "cross-site"),
        (csrf.as_str(), "http://evil.example", "same-origin"),
        (csrf.as_str(), origin.as_str(), "same-site"),
        ("", origin.as_str(), "same-origin"),
        (&"0".repeat(64), origin.as_str(), "same-origin"),
    ];
    for (token, from, site) in forged {
        let answer = move_alias(token, from, site).await.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::FORBIDDEN,
            "{token:?} {from} {site}"
        );
    }
    assert_eq!(aliases().await, 0, "no forged form changed anything");
    // The same form from the console's own page goes through.
    let answer = move_alias(&csrf, &origin, "same-origin").await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(aliases().await, 1);

    // A cross-site sign-in is refused too.
    let answer = http
        .post(kumo.admin_url("/console/sign-in"))
        .header(header::ORIGIN, "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", kumo.token())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(answer.headers().get(header::SET_COOKIE).is_none());

    // Sign out: the cookie is cleared and the old session is dead.
    let answer = http
        .post(kumo.admin_url("/console/sign-out"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &origin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let cleared = answer.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let after = http
        .get(kumo.admin_url("/console/functions/hello"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()[header::LOCATION], "/console/sign-in");
    let late_form = move_alias(&csrf, &origin, "same-origin").await.unwrap();
    assert_eq!(late_form.status(), StatusCode::UNAUTHORIZED);
}
