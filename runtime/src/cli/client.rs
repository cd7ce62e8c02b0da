//! The client verbs: they talk to a running server's admin API over HTTP
//! and print a table, or JSON with `--output json`.
//!
//! The server is `--admin-url` / `KUMO_SERVER`, else the address the server
//! wrote into `<data-dir>/admin-url`, else `http://127.0.0.1:3001`; the
//! token is `KUMO_ADMIN_TOKEN`, else `<data-dir>/admin-token`. Errors say
//! which address was tried and which token was refused, and that no server
//! is running before anything about a missing token.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AliasCommand, ClientArgs, DeployArgs, EventsCommand, FunctionsCommand, InvocationsCommand,
    InvokeArgs, TriggersCommand,
};
use crate::api::ErrorBody;
use crate::api::aliases::AliasUpdate;
use crate::api::functions::{Deployment, FunctionDeleted, FunctionDetail, FunctionList};
use crate::api::invoke::SampleEventRequest;
use crate::api::triggers::TriggerList;
use crate::manifest::{Manifest, trigger_subject};
use crate::model::{Route, Target, Trigger, TriggerSpec};
use crate::registry::{Alias, WeightedVersion, sha256_hex};

/// A connection to one server's admin API.
pub(super) struct Client {
    http: reqwest::Client,
    pub(super) base: String,
    /// Where `base` came from, to say so when nothing answers there.
    base_source: AdminUrlSource,
    token: AdminToken,
    pub(super) json: bool,
}

/// Where the admin API's URL came from.
enum AdminUrlSource {
    /// `--admin-url` or `KUMO_SERVER`.
    Given,
    /// `<data-dir>/admin-url`, written by the server at its start.
    DataDir(PathBuf),
    /// Neither: the default address.
    Default,
}

/// The admin token, and where it came from, to name it when the server
/// refuses it.
enum AdminToken {
    /// `KUMO_ADMIN_TOKEN`.
    Environment(String),
    /// `<data-dir>/admin-token`.
    File { path: PathBuf, token: String },
    /// Neither could be had; said only once a server answers, so that no
    /// server running is said first.
    Missing { path: PathBuf, reason: String },
}

/// The admin API's address when nothing says otherwise.
const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:3001";

impl Client {
    pub(super) fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let (base, base_source) = admin_url(args.admin.server.as_deref(), &args.admin.data_dir);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!(
                "admin url `{base}` is not an http:// URL; hint: pass the address the server printed on its `kumo: admin api` line, such as --admin-url http://127.0.0.1:3001"
            );
        }
        let token = match std::env::var("KUMO_ADMIN_TOKEN") {
            Ok(token) if !token.is_empty() => AdminToken::Environment(token),
            _ => read_token(&args.admin.data_dir),
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            base_source,
            token,
            json: args.output == "json",
        })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            AdminToken::Environment(token) | AdminToken::File { token, .. } => {
                request.bearer_auth(token)
            }
            AdminToken::Missing { .. } => request,
        }
    }

    /// Sends a request; a server that is not there, and a token it
    /// refuses, become errors that say which address and which token.
    /// Any other answer is returned, whatever its status.
    pub(super) async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if is_admin_refusal(&response) {
            return Err(self.refused());
        }
        Ok(response)
    }

    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = self.answer(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(server_error(response).await)
    }

    /// Why a request got no answer: no server at that address, or
    /// another failure on the way.
    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let source = match &self.base_source {
            AdminUrlSource::DataDir(path) => format!(
                " (the address in {}, written by the last server started with that data directory)",
                path.display()
            ),
            AdminUrlSource::Given | AdminUrlSource::Default => String::new(),
        };
        if is_connection_refused(error) {
            return anyhow::anyhow!(
                "no kumo server is running at {}{source}; hint: start one with `kumo up` (or pass --admin-url if it listens elsewhere)",
                self.base
            );
        }
        anyhow::anyhow!(
            "cannot reach the kumo server at {}{source}: {}; hint: is `kumo up` (or `kumo server`) running there? pass --admin-url (or KUMO_SERVER) with the address its `kumo: admin api` line printed",
            self.base,
            error_chain(error)
        )
    }

    /// The server answered 401: say which token was refused, or that there
    /// was none.
    fn refused(&self) -> anyhow::Error {
        match &self.token {
            AdminToken::Environment(_) => anyhow::anyhow!(
                "wrong admin token: the kumo server at {} refused the token in KUMO_ADMIN_TOKEN; hint: set it to that server's token (its <data-dir>/admin-token), or unset it to read the token from --data-dir",
                self.base
            ),
            AdminToken::File { path, .. } => anyhow::anyhow!(
                "wrong admin token: the kumo server at {} refused the token read from {}; hint: that file belongs to another server: run this where you started the server at {}, pass its --data-dir, or set KUMO_ADMIN_TOKEN",
                self.base,
                path.display(),
                self.base
            ),
            AdminToken::Missing { path, reason } => anyhow::anyhow!(
                "no admin token: KUMO_ADMIN_TOKEN is not set and {} {reason}; hint: run this where you started the server at {}, pass its --data-dir, or set KUMO_ADMIN_TOKEN to the token it printed",
                path.display(),
                self.base
            ),
        }
    }

    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .context("the server's answer is not the expected JSON; hint: are --admin-url and this kumo the same version?")
    }

    pub(super) fn print_json(&self, value: &impl Serialize) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("wire types serialize")
        );
    }
}

/// Whether the admin API refused the token: its 401 names Kumo's realm and
/// carries no request id. (A function invoked through the API may answer
/// 401 itself; that answer has a request id, and is the function's.)
fn is_admin_refusal(response: &reqwest::Response) -> bool {
    let headers = response.headers();
    response.status() == StatusCode::UNAUTHORIZED
        && headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .is_some_and(|value| value.as_bytes().ends_with(b"realm=\"kumo-admin\""))
        && !headers.contains_key(crate::request_id::REQUEST_ID_HEADER)
}

/// The admin API's URL: the one given, else the one the server wrote into
/// the data directory, else the default.
fn admin_url(given: Option<&str>, data_dir: &Path) -> (String, AdminUrlSource) {
    if let Some(url) = given.filter(|url| !url.trim().is_empty()) {
        return (url.trim().to_string(), AdminUrlSource::Given);
    }
    let path = absolute(&data_dir.join(crate::server::ADMIN_URL_FILE));
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            (text.trim().to_string(), AdminUrlSource::DataDir(path))
        }
        _ => (DEFAULT_ADMIN_URL.to_string(), AdminUrlSource::Default),
    }
}

/// `path` made absolute against the current folder, so a message names
/// the file wherever the reader is.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether nothing listens at the address (as opposed to a name that does
/// not resolve, a timeout, a broken connection).
fn is_connection_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = cause.source();
    }
    false
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn server_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) => anyhow::anyhow!(
            "{} (HTTP {}, {})",
            error.error.message,
            status.as_u16(),
            error.error.code
        ),
        Err(_) => anyhow::anyhow!(
            "the server answered HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ),
    }
}

/// The token in `<data-dir>/admin-token`, or why there is none.
fn read_token(data_dir: &Path) -> AdminToken {
    let path = absolute(&data_dir.join(crate::server::ADMIN_TOKEN_FILE));
    let reason = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            return AdminToken::File {
                token: text.trim().to_string(),
                path,
            };
        }
        Ok(_) => "is empty".to_string(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
        Err(error) => format!("cannot be read ({error})"),
    };
    AdminToken::Missing { path, reason }
}

/// Prints rows under a header, columns padded to their widest cell.
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn describe_alias(alias: &Alias) -> String {
    let versions: Vec<String> = alias
        .versions
        .iter()
        .map(|entry| {
            if alias.versions.len() == 1 {
                entry.version.to_string()
            } else {
                format!("{} ({}%)", entry.version, entry.weight)
            }
        })
        .collect();
    format!("{} -> {}", alias.name, versions.join(", "))
}

fn trigger_detail(trigger: &Trigger) -> (&'static str, String) {
    (trigger.spec.kind(), trigger.spec.describe())
}

pub(super) async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    if args.build {
        let manifest = manifest.clone();
        tokio::task::spawn_blocking(move || super::build::run_builds(&manifest))
            .await
            .context("the build task failed")??;
    }
    let client = Client::new(&args.client)?;
    let existing: FunctionList = client
        .call(client.request(Method::GET, "/v1/functions"))
        .await?;
    let mut results = Vec::new();
    for spec in manifest.functions.values() {
        let wasm = tokio::fs::read(&spec.source).await.map_err(|error| {
            anyhow::anyhow!(
                "function `{}`: cannot read source `{}`: {error}; hint: build it first (`kumo deploy --build`)",
                spec.name,
                spec.source.display()
            )
        })?;
        let sha256 = sha256_hex(&wasm);
        let unchanged = if existing.functions.iter().any(|f| f.name == spec.name) {
            let detail: FunctionDetail = client
                .call(client.request(Method::GET, &format!("/v1/functions/{}", spec.name)))
                .await?;
            // Unchanged means the newest version already has this code
            // and configuration; an older identical version is returned by
            // the server without a new number, but is reported as deployed.
            detail
                .versions
                .into_iter()
                .last()
                .filter(|version| version.sha256 == sha256 && version.config == spec.config)
        } else {
            None
        };
        if let Some(version) = unchanged {
            if !client.json {
                println!("{}: unchanged (version {})", spec.name, version.version);
            }
            results.push(serde_json::json!({"function": spec.name, "version": version.version, "status": "unchanged"}));
            continue;
        }
        let deployment = upload(&client, &spec.name, &spec.source, wasm, &spec.config).await?;
        let status = if deployment.created {
            "deployed"
        } else {
            "unchanged"
        };
        if !client.json {
            if deployment.created {
                println!(
                    "{}: deployed version {}",
                    spec.name, deployment.version.version
                );
            } else {
                println!(
                    "{}: unchanged (version {})",
                    spec.name, deployment.version.version
                );
            }
        }
        results.push(serde_json::json!({"function": spec.name, "version": deployment.version.version, "status": status}));
    }

    // The same plan `kumo up` applies: the manifest wins, except that a
    // target moved through the API to an alias or version of the function
    // the manifest names is kept; triggers it does not mention stay.
    let triggers: TriggerList = client
        .call(client.request(Method::GET, "/v1/triggers"))
        .await?;
    let manifest_name = manifest.file_name();
    let mut trigger_results = Vec::new();
    for planned in manifest.plan_triggers(&triggers.triggers) {
        if planned.change.writes() {
            let request = match planned.change.stored_id() {
                None => client.request(Method::POST, "/v1/triggers"),
                Some(id) => client.request(Method::PUT, &format!("/v1/triggers/{id}")),
            };
            let _: Trigger = client
                .call(request.json(&planned.spec))
                .await
                .with_context(|| {
                    format!(
                        "{}: {}",
                        manifest.path.display(),
                        trigger_subject(&planned.spec)
                    )
                })?;
        }
        if !client.json {
            println!("{}", planned.line(&manifest_name));
        }
        let spec = &planned.spec;
        trigger_results.push(serde_json::json!({
            "kind": spec.kind(),
            "source": spec.describe(),
            "function": spec.function(),
            "status": planned.change.status(),
        }));
    }
    if client.json {
        client.print_json(&serde_json::json!({"functions": results, "triggers": trigger_results}));
    }
    Ok(())
}

/// Uploads a component as a multipart form, with a progress bar on a
/// terminal.
async fn upload(
    client: &Client,
    function: &str,
    source: &Path,
    wasm: Vec<u8>,
    config: &crate::config::FunctionConfig,
) -> anyhow::Result<Deployment> {
    use futures_util::StreamExt;
    let total = wasm.len() as u64;
    let progress = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .expect("a constant template parses")
            .progress_chars("=> "),
    );
    progress.set_message(format!("uploading {function}"));
    let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(wasm)
        .chunks(64 << 10)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let bar = progress.clone();
    let stream = futures_util::stream::iter(chunks).map(move |chunk| {
        bar.inc(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    });
    let file_name = source
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{function}.wasm"));
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), total)
                .file_name(file_name)
                .mime_str("application/wasm")
                .expect("a constant mime type parses"),
        )
        .part(
            "config",
            reqwest::multipart::Part::text(config.canonical_json())
                .mime_str("application/json")
                .expect("a constant mime type parses"),
        );
    let result = client
        .call(
            client
                .request(Method::POST, &format!("/v1/functions/{function}/versions"))
                .multipart(form),
        )
        .await;
    progress.finish_and_clear();
    result.with_context(|| format!("cannot deploy function `{function}`"))
}

pub(super) async fn functions(command: FunctionsCommand) -> anyhow::Result<()> {
    match command {
        FunctionsCommand::List(args) => {
            let client = Client::new(&args)?;
            let list: FunctionList = client
                .call(client.request(Method::GET, "/v1/functions"))
                .await?;
            if client.json {
                client.print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .functions
                .iter()
                .map(|function| {
                    let aliases: Vec<String> =
                        function.aliases.iter().map(describe_alias).collect();
                    vec![
                        function.name.clone(),
                        function.latest_version.to_string(),
                        function.versions.to_string(),
                        if aliases.is_empty() {
                            "-".into()
                        } else {
                            aliases.join("; ")
                        },
                        function.created_at.clone(),
                    ]
                })
                .collect();
            print_table(&["NAME", "LATEST", "VERSIONS", "ALIASES", "CREATED"], &rows);
        }
        FunctionsCommand::Show { name, client } => {
            let client = Client::new(&client)?;
            let detail: FunctionDetail = client
                .call(client.request(Method::GET, &format!("/v1/functions/{name}")))
                .await?;
            if client.json {
                client.print_json(&detail);
                return Ok(());
            }
            println!("function {}  (created {})", detail.name, detail.created_at);
            println!();
            // Versions come oldest first: each is described against the
            // one before it.
            let rows: Vec<Vec<String>> = detail
                .versions
                .iter()
                .enumerate()
                .map(|(index, version)| {
                    let previous = index.checked_sub(1).map(|before| &detail.versions[before]);
                    vec![
                        version.version.to_string(),
                        version.sha256[..12].to_string(),
                        version.wasm_bytes.to_string(),
                        version.config.memory_mb.to_string(),
                        version.config.timeout_ms.to_string(),
                        version.created_at.clone(),
                        super::version_changes::describe_version_change(previous, version),
                    ]
                })
                .collect();
            print_table(
                &[
                    "VERSION",
                    "SHA256",
                    "BYTES",
                    "MEMORY_MB",
                    "TIMEOUT_MS",
                    "CREATED",
                    "CHANGES",
                ],
                &rows,
            );
            println!();
            if detail.aliases.is_empty() {
                println!("aliases: none");
            } else {
                println!("aliases:");
                for alias in &detail.aliases {
                    println!("  {}", describe_alias(alias));
                }
            }
            if detail.triggers.is_empty() {
                println!("triggers: none");
            } else {
                println!("triggers:");
                // By kind and source, not by id: the ids are random.
                let mut lines: Vec<(String, String, String)> = detail
                    .triggers
                    .iter()
                    .map(|trigger| {
                        let (kind, what) = trigger_detail(trigger);
                        (
                            kind.to_string(),
                            what.to_string(),
                            format!(
                                "  {} {kind} {what} -> {}",
                                trigger.id,
                                trigger.spec.function()
                            ),
                        )
                    })
                    .collect();
                lines.sort();
                for (_, _, line) in lines {
                    println!("{line}");
                }
            }
            if detail.instances.is_empty() {
                println!("instances: none live");
            } else {
                println!("instances:");
                for counts in &detail.instances {
                    println!(
                        "  version {}: {} idle, {} busy, {} starting, {} queued",
                        counts.version, counts.idle, counts.busy, counts.starting, counts.queued
                    );
                }
            }
        }
        FunctionsCommand::Delete {
            name,
            force,
            client,
        } => {
            let client = Client::new(&client)?;
            let deleted: FunctionDeleted = client
                .call(client.request(
                    Method::DELETE,
                    &format!("/v1/functions/{name}?force={force}"),
                ))
                .await?;
            if client.json {
                client.print_json(&deleted);
            } else {
                println!(
                    "deleted function {} (and {} trigger(s))",
                    deleted.deleted,
                    deleted.triggers_deleted.len()
                );
            }
        }
    }
    Ok(())
}

pub(super) async fn alias(command: AliasCommand) -> anyhow::Result<()> {
    match command {
        AliasCommand::Set {
            name,
            alias,
            version,
            weight,
            client,
        } => {
            let client = Client::new(&client)?;
            let update = match weight {
                None => AliasUpdate {
                    version: Some(version),
                    versions: None,
                },
                Some(text) => {
                    let (other, share) = parse_weight(&text)?;
                    if share >= crate::registry::TOTAL_WEIGHT {
                        bail!(
                            "--weight {text}: the share must be below 100; hint: to send all traffic to {other}, run `kumo alias set {name} {alias} {other}`"
                        );
                    }
                    AliasUpdate {
                        version: None,
                        versions: Some(vec![
                            WeightedVersion {
                                version,
                                weight: crate::registry::TOTAL_WEIGHT - share,
                            },
                            WeightedVersion {
                                version: other,
                                weight: share,
                            },
                        ]),
                    }
                }
            };
            let updated: Alias = client
                .call(
                    client
                        .request(
                            Method::PUT,
                            &format!("/v1/functions/{name}/aliases/{alias}"),
                        )
                        .json(&update),
                )
                .await?;
            if client.json {
                client.print_json(&updated);
            } else {
                println!("{name}:{}", describe_alias(&updated));
            }
        }
        AliasCommand::Delete {
            name,
            alias,
            client,
        } => {
            let client = Client::new(&client)?;
            client
                .send(client.request(
                    Method::DELETE,
                    &format!("/v1/functions/{name}/aliases/{alias}"),
                ))
                .await?;
            if client.json {
                client.print_json(&serde_json::json!({"deleted": format!("{name}:{alias}")}));
            } else {
                println!("deleted alias {name}:{alias}");
            }
        }
    }
    Ok(())
}

fn parse_weight(text: &str) -> anyhow::Result<(u32, u32)> {
    let parsed = text.split_once('=').and_then(|(version, share)| {
        Some((version.trim().parse().ok()?, share.trim().parse().ok()?))
    });
    parsed.ok_or_else(|| {
        anyhow::anyhow!("--weight `{text}` is not VERSION=N; hint: `--weight 2=10` sends 10% of the traffic to version 2")
    })
}

pub(super) async fn invoke(args: InvokeArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    let (name, qualifier) = match args.target.split_once(':') {
        Some((name, qualifier)) => (name.to_string(), Some(qualifier.to_string())),
        None => (args.target.clone(), None),
    };
    let mut request = match args.event {
        Some(kind) => client
            .request(Method::POST, &format!("/v1/functions/{name}/sample-event"))
            .json(&SampleEventRequest {
                kind,
                bucket: args.bucket.clone(),
                key: args.key.clone(),
            }),
        None => {
            let body = match (&args.data, &args.data_file) {
                (Some(data), _) => data.clone().into_bytes(),
                (None, Some(path)) => std::fs::read(path)
                    .with_context(|| format!("cannot read --data-file {}", path.display()))?,
                (None, None) => Vec::new(),
            };
            let mut request = client
                .request(Method::POST, &format!("/v1/functions/{name}/invoke"))
                .query(&[("path", args.path.as_str())]);
            for header in &args.headers {
                let Some((key, value)) = header.split_once(':') else {
                    bail!(
                        "--header `{header}` is not `Name: value`; hint: `--header 'content-type: application/json'`"
                    );
                };
                request = request.header(key.trim(), value.trim());
            }
            if args.asynchronous {
                request = request.header(kumo_protocol::header::INVOCATION_TYPE, "Event");
            }
            request.body(body)
        }
    };
    if let Some(qualifier) = &qualifier {
        request = request.query(&[("qualifier", qualifier.as_str())]);
    }
    let response = client.answer(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let request_id = headers
        .get(crate::request_id::REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let body = response
        .bytes()
        .await
        .context("the response body broke off")?;
    if args.asynchronous && status == StatusCode::ACCEPTED {
        let accepted: crate::api::invocations::AsyncAccepted = serde_json::from_slice(&body)
            .context("the server's answer to a queued call is not what this kumo expects")?;
        if client.json {
            client.print_json(&accepted);
        } else {
            println!(
                "invocation {id} queued; `kumo invocations show {id}` tells its status",
                id = accepted.invocation_id
            );
        }
        return Ok(());
    }
    // A failure is one line on stderr (through the error); stdout carries
    // only a successful answer.
    if !status.is_success() {
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => bail!(
                "{} (HTTP {}, {}, request {request_id})",
                error.error.message,
                status.as_u16(),
                error.error.code
            ),
            Err(_) => {
                let excerpt = one_line_excerpt(&body);
                let excerpt = if excerpt.is_empty() {
                    String::new()
                } else {
                    format!(": {excerpt}")
                };
                bail!("the function answered HTTP {status} (request {request_id}){excerpt}")
            }
        }
    }
    if client.json {
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(key, value)| {
                (
                    key.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into(),
                )
            })
            .collect();
        client.print_json(&serde_json::json!({
            "status": status.as_u16(),
            "request_id": request_id,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }));
    } else {
        use std::io::Write;
        std::io::stdout().write_all(&body)?;
        if !body.ends_with(b"\n") && !body.is_empty() {
            println!();
        }
    }
    Ok(())
}

/// `kumo invocations show`.
pub(super) async fn invocations(command: InvocationsCommand) -> anyhow::Result<()> {
    let InvocationsCommand::Show { id, client } = command;
    let client = Client::new(&client)?;
    let status: crate::events::InvocationStatus = client
        .call(client.request(Method::GET, &format!("/v1/invocations/{id}")))
        .await?;
    if client.json {
        client.print_json(&status);
        return Ok(());
    }
    let word = serde_json::to_value(status.status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    let time = |time: Option<chrono::DateTime<chrono::Utc>>| {
        time.map_or_else(
            || "-".to_string(),
            |time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    println!("invocation  {}", status.id);
    println!("function    {}", status.function);
    println!("request     {} {}", status.method, status.path);
    println!("status      {word}");
    println!(
        "attempts    {}/{}",
        status.attempts,
        status.max_retries.saturating_add(1)
    );
    println!(
        "last status {}",
        status
            .final_status
            .map_or_else(|| "-".to_string(), |code| code.to_string())
    );
    if let Some(condition) = &status.condition {
        println!("condition   {condition}");
    }
    if let Some(error) = &status.last_error {
        println!("last error  {error}");
    }
    println!("queued      {}", time(Some(status.queued_at)));
    println!("started     {}", time(status.started_at));
    println!("finished    {}", time(status.finished_at));
    Ok(())
}

/// A body as one readable line: whitespace runs (newlines too) become one
/// space, and past 200 characters it is cut with `...`.
fn one_line_excerpt(body: &[u8]) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= LIMIT {
        return line;
    }
    let cut: String = line.chars().take(LIMIT).collect();
    format!("{cut}...")
}

/// Which stored trigger a verb is about: its route, or its id. Typed once
/// from the command line.
#[derive(Debug, Clone)]
pub(super) enum TriggerSelector {
    Route(Route),
    Id(String),
}

impl TriggerSelector {
    /// `/greet/...` (a route) or `trg_...` (an id).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with('/') {
            return Route::try_from(text.to_string()).map(Self::Route);
        }
        match text.strip_prefix("trg_") {
            Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Ok(Self::Id(text.to_string()))
            }
            _ => Err(format!(
                "`{text}` is neither a route nor a trigger id; hint: write a route like `/greet/...`, or an id like `trg_5e0c1b2f9a7d4c11` (`kumo triggers list` shows both)"
            )),
        }
    }

    /// The stored trigger it names.
    fn find<'a>(&self, triggers: &'a [Trigger]) -> anyhow::Result<&'a Trigger> {
        let found = triggers.iter().find(|trigger| match self {
            Self::Id(id) => trigger.id == *id,
            Self::Route(route) => {
                matches!(&trigger.spec, TriggerSpec::Http { route: stored, .. } if stored == route)
            }
        });
        found.ok_or_else(|| match self {
            Self::Id(id) => {
                anyhow::anyhow!("no trigger `{id}`; hint: `kumo triggers list` shows the ids")
            }
            Self::Route(route) => anyhow::anyhow!(
                "no trigger has the route `{route}`; hint: `kumo triggers list` shows the routes; `kumo triggers create --route {route} --function TARGET` makes one"
            ),
        })
    }
}

pub(super) async fn triggers(command: TriggersCommand) -> anyhow::Result<()> {
    let args = match command {
        TriggersCommand::List(args) => args,
        TriggersCommand::Create {
            route,
            function,
            client,
        } => return create_route(route, function, &client).await,
        TriggersCommand::Update {
            trigger,
            function,
            client,
        } => return retarget_trigger(&trigger, function, &client).await,
        TriggersCommand::Delete { trigger, client } => {
            return delete_trigger(&trigger, &client).await;
        }
    };
    let client = Client::new(&args)?;
    let list: TriggerList = client
        .call(client.request(Method::GET, "/v1/triggers"))
        .await?;
    if client.json {
        client.print_json(&list);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .triggers
        .iter()
        .map(|trigger| {
            let (kind, what) = trigger_detail(trigger);
            vec![
                trigger.id.clone(),
                kind.to_string(),
                what,
                trigger.spec.function().to_string(),
            ]
        })
        .collect();
    print_table(&["ID", "KIND", "SOURCE", "FUNCTION"], &rows);
    Ok(())
}

async fn create_route(route: Route, function: Target, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let spec = TriggerSpec::Http { route, function };
    let created: Trigger = client
        .call(client.request(Method::POST, "/v1/triggers").json(&spec))
        .await?;
    if client.json {
        client.print_json(&created);
    } else {
        println!(
            "{}: created ({})",
            trigger_subject(&created.spec),
            created.id
        );
    }
    Ok(())
}

/// Points a stored trigger at `function` with one PUT: same id, same
/// settings, never missing in between.
async fn retarget_trigger(
    selector: &TriggerSelector,
    function: Target,
    args: &ClientArgs,
) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let list: TriggerList = client
        .call(client.request(Method::GET, "/v1/triggers"))
        .await?;
    let stored = selector.find(&list.triggers)?;
    let previous = stored.spec.function().clone();
    let mut spec = stored.spec.clone();
    *spec.function_mut() = function;
    let updated: Trigger = client
        .call(
            client
                .request(Method::PUT, &format!("/v1/triggers/{}", stored.id))
                .json(&spec),
        )
        .await?;
    if client.json {
        client.print_json(&updated);
    } else if previous == *updated.spec.function() {
        println!("{}: unchanged", trigger_subject(&updated.spec));
    } else {
        println!(
            "{}: retargeted (was {previous})",
            trigger_subject(&updated.spec)
        );
    }
    Ok(())
}

async fn delete_trigger(selector: &TriggerSelector, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let list: TriggerList = client
        .call(client.request(Method::GET, "/v1/triggers"))
        .await?;
    let stored = selector.find(&list.triggers)?;
    client
        .send(client.request(Method::DELETE, &format!("/v1/triggers/{}", stored.id)))
        .await?;
    if client.json {
        client.print_json(&serde_json::json!({"deleted": stored.id}));
    } else {
        println!("{}: deleted ({})", trigger_subject(&stored.spec), stored.id);
    }
    Ok(())
}

pub(super) async fn events(command: EventsCommand) -> anyhow::Result<()> {
    use crate::api::events::EventList;
    use crate::events::EventSummary;
    match command {
        EventsCommand::List {
            state,
            limit,
            client,
        } => {
            let client = Client::new(&client)?;
            let mut request = client
                .request(Method::GET, "/v1/events")
                .query(&[("limit", limit.to_string())]);
            if let Some(state) = &state {
                request = request.query(&[("state", state)]);
            }
            let list: EventList = client.call(request).await?;
            if client.json {
                client.print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .events
                .iter()
                .map(|event| {
                    vec![
                        event.id.clone(),
                        event.state.clone(),
                        event.trigger.clone(),
                        event.function.clone(),
                        event.subject.clone(),
                        format!("{}/{}", event.attempts, event.max_retries + 1),
                        event.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "STATE",
                    "TRIGGER",
                    "FUNCTION",
                    "SUBJECT",
                    "ATTEMPTS",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        EventsCommand::Replay { id, client } => {
            let client = Client::new(&client)?;
            let event: EventSummary = client
                .call(client.request(Method::POST, &format!("/v1/events/{id}/replay")))
                .await?;
            if client.json {
                client.print_json(&event);
            } else {
                println!("event {} is {} again, due now", event.id, event.state);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_invocations_body_becomes_one_short_line() {
        let long = "x".repeat(250);
        let cut = format!("{}...", "x".repeat(200));
        let cases = [
            ("", ""),
            ("oops", "oops"),
            ("  line one\n\tline two\r\n", "line one line two"),
            (long.as_str(), cut.as_str()),
        ];
        for (body, expected) in cases {
            assert_eq!(one_line_excerpt(body.as_bytes()), expected, "{body:?}");
        }
    }

    #[test]
    fn only_the_admin_apis_own_401_is_a_refused_token() {
        let response = |status: u16, headers: &[(&str, &str)]| {
            let mut builder = http::Response::builder().status(status);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            reqwest::Response::from(builder.body(Vec::new()).unwrap())
        };
        let realm = ("www-authenticate", "Bearer realm=\"kumo-admin\"");
        let request_id = (crate::request_id::REQUEST_ID_HEADER, "0123");
        // (response, refused)
        let cases = [
            (response(401, &[realm]), true),
            // A function's own 401, through the invoke endpoint.
            (response(401, &[realm, request_id]), false),
            (
                response(401, &[("www-authenticate", "Basic realm=\"app\"")]),
                false,
            ),
            (response(401, &[]), false),
            (response(403, &[realm]), false),
            (response(200, &[]), false),
        ];
        for (index, (response, refused)) in cases.into_iter().enumerate() {
            assert_eq!(is_admin_refusal(&response), refused, "case {index}");
        }
    }
}
