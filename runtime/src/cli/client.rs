//! The client verbs: they talk to a running server's admin API over HTTP
//! (`--server` / `KUMO_SERVER`, token from `KUMO_ADMIN_TOKEN` or the data
//! directory) and print a table, or JSON with `--output json`.

use std::path::Path;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AliasCommand, ClientArgs, DeployArgs, EventsCommand, FunctionsCommand, InvokeArgs,
    TriggersCommand,
};
use crate::api::ErrorBody;
use crate::api::aliases::AliasUpdate;
use crate::api::functions::{Deployment, FunctionDeleted, FunctionDetail, FunctionList};
use crate::api::triggers::TriggerList;
use crate::manifest::{Manifest, trigger_subject};
use crate::model::{Route, Target, Trigger, TriggerSpec};
use crate::registry::{Alias, WeightedVersion, sha256_hex};

/// A connection to one server's admin API.
pub(super) struct Client {
    http: reqwest::Client,
    pub(super) base: String,
    token: String,
    pub(super) json: bool,
}

impl Client {
    pub(super) fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let token = match std::env::var("KUMO_ADMIN_TOKEN") {
            Ok(token) if !token.is_empty() => token,
            _ => read_token(&args.data_dir)?,
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_string(),
            token,
            json: args.output == "json",
        })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|error| {
            anyhow::anyhow!(
                "cannot reach the kumo server at {}: {}; hint: is `kumo server` (or `kumo up`) running? set --server or KUMO_SERVER",
                self.base,
                error_chain(&error)
            )
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(server_error(response).await)
    }

    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .context("the server's answer is not the expected JSON; hint: are --server and this kumo the same version?")
    }

    pub(super) fn print_json(&self, value: &impl Serialize) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("wire types serialize")
        );
    }
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

fn read_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(crate::server::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => bail!(
            "no admin token: KUMO_ADMIN_TOKEN is not set and {} cannot be read; hint: set KUMO_ADMIN_TOKEN to the token the server printed, or pass --data-dir of the server",
            path.display()
        ),
    }
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
            let rows: Vec<Vec<String>> = detail
                .versions
                .iter()
                .map(|version| {
                    vec![
                        version.version.to_string(),
                        version.sha256[..12].to_string(),
                        version.wasm_bytes.to_string(),
                        version.config.memory_mb.to_string(),
                        version.config.timeout_ms.to_string(),
                        version.created_at.clone(),
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
                for trigger in &detail.triggers {
                    let (kind, what) = trigger_detail(trigger);
                    println!(
                        "  {} {kind} {what} -> {}",
                        trigger.id,
                        trigger.spec.function()
                    );
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
    let body = match (&args.data, &args.data_file) {
        (Some(data), _) => data.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .with_context(|| format!("cannot read --data-file {}", path.display()))?,
        (None, None) => Vec::new(),
    };
    let mut request = client
        .request(Method::POST, &format!("/v1/functions/{name}/invoke"))
        .query(&[("path", args.path.as_str())]);
    if let Some(qualifier) = &qualifier {
        request = request.query(&[("qualifier", qualifier.as_str())]);
    }
    for header in &args.headers {
        let Some((key, value)) = header.split_once(':') else {
            bail!(
                "--header `{header}` is not `Name: value`; hint: `--header 'content-type: application/json'`"
            );
        };
        request = request.header(key.trim(), value.trim());
    }
    let response = request.body(body).send().await.map_err(|error| {
        anyhow::anyhow!(
            "cannot reach the kumo server at {}: {}; hint: is `kumo server` running? set --server or KUMO_SERVER",
            client.base,
            error_chain(&error)
        )
    })?;
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
    if status.is_success() {
        return Ok(());
    }
    let is_kumo_error =
        status == StatusCode::UNAUTHORIZED || serde_json::from_slice::<ErrorBody>(&body).is_ok();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) if is_kumo_error => bail!(
            "{} (HTTP {}, {}, request {request_id})",
            error.error.message,
            status.as_u16(),
            error.error.code
        ),
        _ => bail!("the function answered HTTP {status} (request {request_id})"),
    }
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
