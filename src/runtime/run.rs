//! Running a playbook: once per node (or once for the cluster), in batches, each run on its own
//! blocking thread with its own engine, all sharing one effects boundary and one record.
//!
//! A failure on one node stops new nodes from starting; runs already going finish their current
//! step and the playbook. Ctrl-C or SIGTERM cancels: no new step starts, commands in flight are
//! cancelled, and the summary says where each node stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::effects::Effects;
use crate::effects::kube::KubeService;
use crate::error::Kind;
use crate::inventory::{Inventory, NodeSpec};
use crate::params::ParamValue;
use crate::plan::{RunFailure, RunId, RunRecord, RunStatus};
use crate::primitives::node::Node;
use crate::primitives::{Host, RunContext};
use crate::runtime::diagnostic::Diagnostic;
use crate::runtime::engine::{self, ModulePath};

/// A validated request to run a playbook.
#[derive(Clone)]
pub struct RunSettings {
    pub playbook: PathBuf,
    /// Empty: one cluster-level run with no current node.
    pub nodes: Vec<NodeSpec>,
    pub params: BTreeMap<String, ParamValue>,
    /// Names of parameters given with `--set-secret`.
    pub secret_params: Vec<String>,
    pub inventory: Arc<Inventory>,
    pub libs: Vec<PathBuf>,
    pub state_dir: PathBuf,
    /// How to reach the cluster (`--kubeconfig`, `--context`).
    pub kube: crate::kube::ClientOptions,
    pub batch: usize,
    /// The batch plan as asked (`--batch N`, `N%`, `auto`); `batch` is its size for fixed plans.
    pub batch_spec: crate::preflight::BatchSpec,
    /// `--accept` values: `forecast` lets a run start despite a forecast block.
    pub accept: Vec<String>,
    pub dry_run: bool,
    pub offline: bool,
    /// `--strict-skew`: version-skew warnings become refusals.
    pub strict_skew: bool,
    /// Rehearsing against an in-process simulator loaded from this snapshot.
    pub rehearse: Option<PathBuf>,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub overall_timeout: Option<Duration>,
    /// The command line as given (secrets masked), for the journal.
    pub argv: Vec<String>,
    /// Resuming: the journal being resumed and its replay.
    pub resume: Option<(String, Arc<crate::effects::replay::Replay>)>,
    /// The cluster lock a run that changes things holds; `None` with `--no-lock`.
    pub lock: Option<crate::kube::lock::LockName>,
    /// Whether the run keeps a journal; not for the plan shown before a confirmation.
    pub journal: bool,
}

/// What a run produced: the JSON document of `--output json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The journal's id (`<state-dir>/runs/<id>/`); absent when nothing ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub playbook: String,
    pub dry_run: bool,
    pub offline: bool,
    pub params: BTreeMap<String, serde_json::Value>,
    pub nodes: Vec<RunRecord>,
    /// The disruption forecast of the batch plan (rehearsals and `--batch auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::preflight::Forecast>,
    pub exit_code: u8,
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
}

/// Runs the playbook as the settings say, through `effects` (wired by the caller for the
/// settings' mode) and `kube` (the cluster the effects reach, for the run's own reads). Compile
/// errors come back as `Err` (exit 2) before anything is contacted.
pub async fn execute(
    settings: RunSettings,
    effects: Arc<Effects>,
    kube: Arc<KubeService>,
) -> crate::Result<Report> {
    let recorder = Arc::clone(effects.recorder());
    let file = settings.playbook.display().to_string();
    let text = std::fs::read_to_string(&settings.playbook)
        .map_err(|e| crate::Error::input(format!("cannot read playbook {file}: {e}")))?;
    let module_path = ModulePath::new(&settings.libs, &settings.playbook);
    for name in &settings.secret_params {
        if let Some(ParamValue::Str(value)) = settings.params.get(name) {
            recorder.add_secret(value);
        }
    }
    let shown_params = params_json(&settings.params, &settings.secret_params);

    let cancel = effects.cancel_token().clone();
    let mut settings = settings;
    settings.nodes = discover(&settings, &kube).await?;
    let (forecast, groups) = forecast_plan(&mut settings, &kube).await?;
    if let Some(forecast) = forecast.as_ref().filter(|f| f.blocked()) {
        tracing::error!(
            "the disruption forecast blocks this plan ({}); nothing was run",
            forecast.verdict
        );
        return Ok(Report {
            run_id: None,
            playbook: file,
            dry_run: settings.dry_run,
            offline: settings.offline,
            params: shown_params,
            nodes: Vec::new(),
            forecast: Some(forecast.clone()),
            exit_code: Kind::Refused.exit_code(),
            diagnostics: Vec::new(),
        });
    }
    let cluster = Arc::clone(&kube);
    let host = Arc::new(
        Host::new(
            effects,
            Arc::clone(&settings.inventory),
            settings.params.clone(),
            settings.playbook.clone(),
            settings.command_timeout,
        )
        .with_strict_skew(settings.strict_skew)
        .with_cluster(has_cluster(&settings)),
    );

    // Compile and check before touching anything.
    let check_engine = engine::for_run(
        module_path.clone(),
        &Arc::new(RunContext {
            host: Arc::clone(&host),
            run: RunId(usize::MAX),
            node: None,
        }),
    );
    let diagnostics = crate::runtime::check::check_files(
        &check_engine,
        &settings.libs,
        std::slice::from_ref(&settings.playbook),
    );
    if !diagnostics.is_empty() {
        return Ok(Report {
            run_id: None,
            playbook: file,
            dry_run: settings.dry_run,
            offline: settings.offline,
            params: shown_params.clone(),
            nodes: Vec::new(),
            forecast,
            exit_code: Kind::Input.exit_code(),
            diagnostics,
        });
    }
    let ast = Arc::new(
        engine::compile(&check_engine, &settings.playbook, &text)
            .map_err(|e| crate::Error::input(Diagnostic::from_parse(&e, &file).message))?,
    );
    drop(check_engine);

    let journal = if settings.journal {
        open_journal(&settings, &text, &shown_params)
    } else {
        None
    };
    if let Some(journal) = &journal {
        recorder.set_journal(Arc::clone(journal));
    }
    let lock = if settings.dry_run {
        None
    } else {
        take_lock(&settings, &cluster, journal.as_deref(), cancel.clone()).await?
    };
    let runs: Vec<(RunId, Option<Node>)> = if settings.nodes.is_empty() {
        vec![(recorder.add_run("cluster", None), None)]
    } else {
        settings
            .nodes
            .iter()
            .map(|spec| {
                (
                    recorder.add_run(&spec.name, Some(&spec.host)),
                    Some(Node(Arc::new(spec.clone()))),
                )
            })
            .collect()
    };

    let signals = tokio::spawn(watch_signals(cancel.clone(), settings.overall_timeout));
    let stop = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(settings.batch.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut diagnostics = Vec::new();
    for (position, (run, node)) in runs.into_iter().enumerate() {
        // Planned batches run one after another: the next starts when the last is done.
        if groups.as_ref().is_some_and(|g| g.contains(&position)) {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(Some(diagnostic)) = joined {
                    diagnostics.push(diagnostic);
                }
            }
        }
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("semaphore open"),
            () = cancel.cancelled() => break,
        };
        if stop.load(Ordering::SeqCst) || cancel.is_cancelled() {
            break;
        }
        let (host, ast, module_path, stop, file) = (
            Arc::clone(&host),
            Arc::clone(&ast),
            module_path.clone(),
            Arc::clone(&stop),
            file.clone(),
        );
        tasks.spawn_blocking(move || {
            let _permit = permit;
            let diagnostic = run_one(host, run, node, &ast, module_path, &file);
            if diagnostic.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
            diagnostic
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Some(diagnostic)) = joined {
            diagnostics.push(diagnostic);
        }
    }
    signals.abort();
    let lock_lost = lock
        .as_ref()
        .is_some_and(crate::kube::lock::ClusterLock::lost);
    if let Some(lock) = lock {
        lock.release().await;
    }

    let mut nodes = recorder.runs();
    for failure in nodes.iter_mut().filter_map(|n| n.failure.as_mut()) {
        if settings.dry_run {
            // A rehearsal cordons nodes of the simulator only.
            failure.left_cordoned.clear();
        }
        for node in &failure.left_cordoned {
            tracing::warn!(
                "{node} is left CORDONED (its workloads run elsewhere); fix the cause and resume \
                 the run, or `kubectl uncordon {node}` to return it to service as it is"
            );
        }
    }
    let exit_code = if lock_lost {
        Kind::Refused.exit_code()
    } else if cancel.is_cancelled() {
        Kind::Interrupted.exit_code()
    } else {
        nodes
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .map(|f| f.exit_code)
            .next()
            .unwrap_or(0)
    };
    Ok(Report {
        run_id: journal.map(|j| j.id().to_owned()),
        playbook: file,
        dry_run: settings.dry_run,
        offline: settings.offline,
        params: shown_params.clone(),
        nodes,
        forecast,
        exit_code,
        diagnostics,
    })
}

/// The disruption forecast of the batch plan, when the run rehearses or plans its batches
/// itself (`--batch auto`): the forecast, and for `auto` the run positions where a new batch
/// starts (the nodes reordered batch by batch, the batch size set to the largest batch).
async fn forecast_plan(
    settings: &mut RunSettings,
    kube: &KubeService,
) -> crate::Result<(Option<crate::preflight::Forecast>, Option<Vec<usize>>)> {
    use crate::preflight::{BatchSpec, ClusterView, ForecastOptions, batches};
    let auto = settings.batch_spec == BatchSpec::Auto;
    if settings.nodes.is_empty() || (settings.rehearse.is_none() && !auto) {
        return Ok((None, None));
    }
    let client = kube.client().await.map_err(|e| {
        crate::Error::input(format!(
            "--batch auto reads the cluster, which is not reachable: {e}"
        ))
    })?;
    let view = ClusterView::read(client).await?;
    let names: Vec<String> = settings.nodes.iter().map(|n| n.name.clone()).collect();
    // The playbook's drain options are its own: pods without a controller are assumed to go
    // (`force`); if the playbook's drain refuses them, the drain says so itself.
    let options = ForecastOptions {
        force: true,
        ..ForecastOptions::default()
    };
    let mut forecast = batches::plan(&view, &[], &names, settings.batch_spec, &options);
    if forecast.blocked() && settings.accept.iter().any(|a| a == "forecast") {
        tracing::warn!(
            "running despite the disruption forecast's block (--accept forecast): {}",
            forecast.verdict
        );
        forecast.accepted = true;
    }
    let mut groups = None;
    if auto {
        let mut order = Vec::new();
        let mut starts = Vec::new();
        for batch in &forecast.batches {
            starts.push(order.len());
            order.extend(batch.nodes.iter().cloned());
        }
        let mut nodes = std::mem::take(&mut settings.nodes);
        settings.nodes = order
            .iter()
            .filter_map(|name| {
                let i = nodes.iter().position(|n| &n.name == name)?;
                Some(nodes.remove(i))
            })
            .collect();
        settings.batch = forecast
            .batches
            .iter()
            .map(|b| b.nodes.len())
            .max()
            .unwrap_or(1);
        groups = Some(starts);
    }
    Ok((Some(forecast), groups))
}

fn params_json(
    params: &BTreeMap<String, ParamValue>,
    secret: &[String],
) -> BTreeMap<String, serde_json::Value> {
    params
        .iter()
        .map(|(k, v)| {
            let shown = if secret.contains(k) {
                "***".into()
            } else {
                v.to_json()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Takes the cluster lock for a run that changes things, after checking kured's. No lock when
/// no cluster is configured at all (a playbook that only talks to nodes over ssh) or with
/// `--no-lock`; a configured cluster that cannot be reached refuses, since krun cannot tell
/// whether another upgrade is running.
async fn take_lock(
    settings: &RunSettings,
    kube: &KubeService,
    journal: Option<&crate::journal::Journal>,
    cancel: CancellationToken,
) -> crate::Result<Option<crate::kube::lock::ClusterLock>> {
    let note = |fields: serde_json::Value| {
        if let Some(journal) = journal {
            journal.record(crate::journal::entry("lock", "cluster", fields), true);
        }
    };
    let Some(name) = &settings.lock else {
        tracing::warn!(
            "running WITHOUT the cluster lock (--no-lock): nothing stops a second upgrade"
        );
        note(serde_json::json!({ "lock": null, "override": "--no-lock" }));
        return Ok(None);
    };
    if crate::kube::nothing_configured(&settings.kube) {
        tracing::debug!("no cluster configured: running without the cluster lock");
        return Ok(None);
    }
    let client = kube
        .client()
        .await
        .map_err(|e| crate::kube::lock::LockError::Unavailable {
            lock: name.clone(),
            message: e.to_string(),
        })?;
    let refused = |e: crate::kube::lock::LockError| {
        note(serde_json::json!({ "lock": name.to_string(), "refused": e.to_string() }));
        crate::Error::from(e)
    };
    crate::kube::lock::check_kured(client)
        .await
        .map_err(refused)?;
    let me = crate::kube::lock::Holder {
        user: crate::inventory::current_user(),
        host: crate::journal::hostname(),
        run_id: journal.map_or_else(
            || format!("pid-{}", std::process::id()),
            |j| j.id().to_owned(),
        ),
        playbook: settings.playbook.display().to_string(),
        resumes: settings.resume.as_ref().map(|(id, _)| id.clone()),
    };
    let lock = crate::kube::lock::acquire(client, name, &me, cancel)
        .await
        .map_err(refused)?;
    note(serde_json::json!({ "lock": name.to_string(), "holder": me.identity() }));
    Ok(Some(lock))
}

/// Nodes named with --node that the inventory does not list are looked up in the cluster and
/// reached at their InternalIP; a name neither knows is invalid input.
async fn discover(settings: &RunSettings, kube: &KubeService) -> crate::Result<Vec<NodeSpec>> {
    let mut nodes = Vec::new();
    for spec in &settings.nodes {
        if !spec.host.is_empty() {
            nodes.push(spec.clone());
            continue;
        }
        let unknown = settings
            .inventory
            .node(&spec.name)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        let client = kube.client().await.map_err(|e| {
            crate::Error::input(format!("{unknown}; and no cluster to look it up in ({e})"))
        })?;
        let info = client.node_info(&spec.name).await.map_err(|e| {
            crate::Error::input(format!(
                "{unknown}; the cluster ({}) does not have it either: {e}",
                client.source()
            ))
        })?;
        let host = info.internal_ip.or(info.hostname).ok_or_else(|| {
            crate::Error::input(format!(
                "node {} of the cluster has no InternalIP address to reach it by",
                spec.name
            ))
        })?;
        tracing::info!(
            "node {} is not in the inventory; the cluster says it is at {host}",
            spec.name
        );
        nodes.push(settings.inventory.discovered(&spec.name, &host));
    }
    Ok(nodes)
}

/// Whether the command can ask a cluster: a rehearsal, offline (where the plan shows the reads
/// as not read), or a kubeconfig or in-cluster configuration, found or broken (a broken one is
/// an error worth seeing).
fn has_cluster(settings: &RunSettings) -> bool {
    settings.rehearse.is_some()
        || settings.offline
        || settings.kube.kubeconfig.is_some()
        || crate::kube::client::choose_source(
            &settings.kube,
            &crate::kube::client::Environment::current(),
        )
        .is_ok()
}

/// Opens the run's journal; a run that cannot be journaled still runs, loudly.
fn open_journal(
    settings: &RunSettings,
    text: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Option<Arc<crate::journal::Journal>> {
    let header = crate::journal::Header {
        playbook: settings.playbook.display().to_string(),
        playbook_sha256: crate::journal::content_hash(text),
        params: params.clone(),
        nodes: settings.nodes.iter().map(|n| n.name.clone()).collect(),
        dry_run: settings.dry_run,
        krun_version: env!("CARGO_PKG_VERSION").to_owned(),
        user: crate::inventory::current_user(),
        host: crate::journal::hostname(),
        started_at: chrono::Utc::now().to_rfc3339(),
        argv: settings.argv.clone(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        secret_params: settings.secret_params.clone(),
        resumes: settings.resume.as_ref().map(|(id, _)| id.clone()),
    };
    match crate::journal::Journal::create(&settings.state_dir, &header) {
        Ok(journal) => {
            tracing::debug!("journal: {}", journal.dir().display());
            Some(Arc::new(journal))
        }
        Err(e) => {
            tracing::error!(
                "cannot create a run journal under {}: {e}; this run will not be resumable",
                settings.state_dir.display()
            );
            None
        }
    }
}

/// One run of the playbook, on the calling (blocking) thread.
fn run_one(
    host: Arc<Host>,
    run: RunId,
    node: Option<Node>,
    ast: &rhai::AST,
    module_path: ModulePath,
    file: &str,
) -> Option<Diagnostic> {
    let name = node
        .as_ref()
        .map_or_else(|| "cluster".to_owned(), |n| n.0.name.clone());
    let _span = tracing::info_span!("run", node = %name).entered();
    let recorder = Arc::clone(host.effects.recorder());
    if host.effects.cancel_token().is_cancelled() {
        return None;
    }
    recorder.set_status(run, RunStatus::Running);
    let context = Arc::new(RunContext {
        host,
        run,
        node: node.clone(),
    });
    let engine = engine::for_run(module_path, &context);
    let mut scope = engine::initial_scope(node);
    match engine.run_ast_with_scope(&mut scope, ast) {
        Ok(()) => {
            recorder.set_status(run, RunStatus::Ok);
            None
        }
        Err(error) => {
            let mut diagnostic = Diagnostic::from_eval(&error, file);
            diagnostic.message = recorder.redact(&diagnostic.message);
            let interrupted = diagnostic.kind == Kind::Interrupted
                || context.host.effects.cancel_token().is_cancelled();
            let status = if interrupted {
                RunStatus::Interrupted
            } else {
                RunStatus::Failed
            };
            let step = diagnostic
                .failure
                .as_ref()
                .and_then(|f| f.command.as_ref())
                .and_then(|_| recorder.last_step(run));
            recorder.fail(
                run,
                status,
                RunFailure {
                    step,
                    message: diagnostic.message.clone(),
                    file: diagnostic.file.clone(),
                    line: diagnostic.line,
                    exit_code: if interrupted {
                        Kind::Interrupted.exit_code()
                    } else {
                        diagnostic.kind.exit_code()
                    },
                    left_cordoned: Vec::new(),
                },
            );
            Some(diagnostic)
        }
    }
}

/// Cancels the run on SIGINT, SIGTERM or when the overall time limit passes.
async fn watch_signals(cancel: CancellationToken, timeout: Option<Duration>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::warn!("interrupted: no new step starts; cancelling commands in flight"),
        () = terminate => tracing::warn!("terminated: no new step starts; cancelling commands in flight"),
        () = limit => tracing::error!("the run exceeded --timeout; cancelling"),
    }
    cancel.cancel();
}
