//! Running a playbook: compile and check it, open its journal, do krun's own setup steps
//! (discovery, the batch plan, the cluster lock: [`super::setup`]), then run it once per node
//! (or once for the cluster), in batches, each run on its own blocking thread with its own
//! engine, all sharing one effects boundary and one record.
//!
//! A failure on one node stops new nodes from starting; runs already going finish their current
//! step and the playbook. Ctrl-C or SIGTERM cancels: no new step starts, commands in flight are
//! cancelled, and the summary says where each node stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::diagnostic::Diagnostic;
use super::engine::{self, ModulePath};
pub use super::settings::RunSettings;
use super::setup::{self, Setup};
use super::shape::Shape;
use crate::effects::Effects;
use crate::error::Kind;
use crate::journal::Journal;
use crate::params::ParamValue;
use crate::plan::{RunFailure, RunId, RunRecord, RunStatus};
use crate::primitives::node::Node;
use crate::primitives::{Host, RunContext};

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
    /// Each library the playbook could import: name, version, commit and content hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<crate::journal::Provenance>,
    pub nodes: Vec<RunRecord>,
    /// krun's own steps before the playbook (discovery, the batch plan's read, the lock); absent
    /// when there were none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<RunRecord>,
    /// The preflight findings a run that drains was judged on (those concerning its nodes and
    /// target).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<crate::preflight::Finding>,
    /// The disruption forecast of the batch plan (runs that drain, rehearsals, `--batch auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::preflight::Forecast>,
    pub exit_code: u8,
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
}

/// The playbook as read and compiled.
struct Playbook {
    /// Its path as given, for messages and the report.
    file: String,
    text: String,
    module_path: ModulePath,
}

impl Playbook {
    fn read(settings: &RunSettings) -> crate::Result<Self> {
        let file = settings.playbook.display().to_string();
        let text = std::fs::read_to_string(&settings.playbook)
            .map_err(|e| crate::Error::input(format!("cannot read playbook {file}: {e}")))?;
        Ok(Self {
            file,
            text,
            module_path: ModulePath::new(&settings.libs, &settings.playbook)
                .allowing(&settings.allow_local)
                .with_libraries(settings.libraries.clone()),
        })
    }

    /// Compiles with every check `krun check` makes, and reads its shape; the diagnostics
    /// when there is a problem.
    fn compile(
        &self,
        settings: &RunSettings,
        host: &Arc<Host>,
    ) -> crate::Result<Result<(rhai::AST, Shape), Vec<Diagnostic>>> {
        let check_engine = engine::for_run(
            self.module_path.clone(),
            &Arc::new(RunContext {
                host: Arc::clone(host),
                run: RunId(usize::MAX),
                node: None,
            }),
        );
        let diagnostics = super::check::check_files(
            &check_engine,
            &settings.libs,
            &settings.allow_local,
            settings.libraries.as_ref(),
            std::slice::from_ref(&settings.playbook),
        );
        if !diagnostics.is_empty() {
            return Ok(Err(diagnostics));
        }
        let ast = engine::compile(&check_engine, &settings.playbook, &self.text)
            .map_err(|e| crate::Error::input(Diagnostic::from_parse(&e, &self.file).message))?;
        let resolver = engine::Resolver::new(self.module_path.clone());
        match Shape::read(&check_engine, &resolver, &self.file, &self.text, &ast) {
            Ok(shape) => Ok(Ok((ast, shape))),
            Err(problem) => Ok(Err(vec![*problem])),
        }
    }
}

/// Runs the playbook as the settings say, through `effects` (wired by the caller for the
/// settings' mode): every read and change, the run's own included, is a step through them.
/// Compile errors come back as a report with diagnostics (exit 2) before anything is contacted.
pub async fn execute(mut settings: RunSettings, effects: Arc<Effects>) -> crate::Result<Report> {
    let recorder = Arc::clone(effects.recorder());
    let cancel = effects.cancel_token().clone();
    let playbook = Playbook::read(&settings)?;
    for name in &settings.secret_params {
        if let Some(ParamValue::Str(value)) = settings.params.get(name) {
            recorder.add_secret(value);
        }
    }
    let mut report = Report {
        run_id: None,
        playbook: playbook.file.clone(),
        dry_run: settings.dry_run,
        offline: settings.offline,
        params: params_json(&settings.params, &settings.secret_params),
        libraries: provenance(&settings),
        nodes: Vec::new(),
        setup: None,
        findings: Vec::new(),
        forecast: None,
        exit_code: 0,
        diagnostics: Vec::new(),
    };
    let (inventory, playbook_path, timeout, strict_skew, cluster) = (
        Arc::clone(&settings.inventory),
        settings.playbook.clone(),
        settings.command_timeout,
        settings.strict_skew,
        setup::has_cluster(&settings),
    );
    let new_host = |params: BTreeMap<String, ParamValue>| {
        Arc::new(
            Host::new(
                Arc::clone(&effects),
                Arc::clone(&inventory),
                params,
                playbook_path.clone(),
                timeout,
            )
            .with_local_files(playbook.module_path.local_files())
            .with_strict_skew(strict_skew)
            .with_cluster(cluster),
        )
    };
    let (ast, shape) = match playbook.compile(&settings, &new_host(settings.params.clone()))? {
        Ok((ast, shape)) => (Arc::new(ast), shape),
        Err(diagnostics) => {
            report.exit_code = Kind::Input.exit_code();
            report.diagnostics = diagnostics;
            return Ok(report);
        }
    };
    shape.complete(&playbook.file, &mut settings.params)?;
    report.params = params_json(&settings.params, &settings.secret_params);
    if shape.uses_node && settings.nodes.is_empty() {
        return Err(crate::Error::input(format!(
            "{} runs once per node (it uses `node`): pass --node NAME, once per node",
            playbook.file
        )));
    }
    let host = new_host(settings.params.clone());

    let journal = if settings.journal {
        open_journal(&settings, &playbook.text, &report.params)?
    } else {
        None
    };
    if let Some(journal) = &journal {
        recorder.set_journal(Arc::clone(journal));
        report.run_id = Some(journal.id().to_owned());
    }

    // krun's own steps, before the playbook's.
    let setup = Setup::new(Arc::clone(&effects));
    let prepared = prepare(&setup, &mut settings, &shape, journal.as_deref(), &cancel).await;
    let setup_error = prepared.as_ref().err();
    setup.finish(setup_error);
    report.setup = recorder
        .runs()
        .into_iter()
        .nth(setup.run().0)
        .filter(|r| !r.steps.is_empty() || r.failure.is_some());
    let (batches, lock) = prepared?;
    if let Some(lock) = &lock {
        effects.require(Arc::new(lock.guard()));
    }
    let refusal = batches.refusal();
    report.forecast = batches.forecast;
    report.findings = batches.findings;
    if let Some(refusal) = refusal {
        tracing::error!("{refusal}");
        report.exit_code = Kind::Refused.exit_code();
        return Ok(report);
    }

    let signals = tokio::spawn(watch_signals(cancel.clone(), settings.overall_timeout));
    let runs = add_runs(&settings, &recorder);
    report.diagnostics = run_batches(
        runs,
        settings.batch,
        batches.starts.as_deref(),
        report.forecast.as_ref(),
        &host,
        &ast,
        &playbook,
        &cancel,
    )
    .await;
    signals.abort();
    let lock_lost = lock
        .as_ref()
        .is_some_and(crate::kube::lock::ClusterLock::lost);
    if let Some(lock) = lock {
        lock.release().await;
    }

    let setup_run = setup.run();
    let mut nodes: Vec<RunRecord> = recorder
        .runs()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != setup_run.0)
        .map(|(_, r)| r)
        .collect();
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
    report.exit_code = if lock_lost {
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
    report.nodes = nodes;
    Ok(report)
}

/// The setup steps: discovery, the judgement of a run that drains (or the batch plan of a
/// rehearsal or `--batch auto`), and, for a run that changes things, the lock.
async fn prepare(
    setup: &Setup,
    settings: &mut RunSettings,
    shape: &Shape,
    journal: Option<&Journal>,
    cancel: &CancellationToken,
) -> crate::Result<(setup::BatchPlan, Option<crate::kube::lock::ClusterLock>)> {
    settings.nodes = setup.discover(settings).await?;
    let batches = if shape.drains && !settings.nodes.is_empty() {
        setup.judge(settings, shape).await?
    } else {
        setup.plan_batches(settings).await?
    };
    if batches.refusal().is_some() || settings.dry_run {
        return Ok((batches, None));
    }
    let lock = setup
        .lock(settings, journal.map(Journal::id), cancel.clone())
        .await?;
    Ok((batches, lock))
}

/// One run per node, in order (or one cluster-level run).
fn add_runs(
    settings: &RunSettings,
    recorder: &crate::plan::Recorder,
) -> Vec<(RunId, Option<Node>)> {
    if settings.nodes.is_empty() {
        return vec![(recorder.add_run("cluster", None), None)];
    }
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
}

/// Runs the playbook on each node, up to `batch` at once; with planned batches (`starts`: the
/// positions where one begins), a batch starts when the one before it is done. A failure stops
/// new runs from starting. Returns the failed runs' diagnostics.
#[allow(clippy::too_many_arguments)]
async fn run_batches(
    runs: Vec<(RunId, Option<Node>)>,
    batch: usize,
    starts: Option<&[usize]>,
    forecast: Option<&crate::preflight::Forecast>,
    host: &Arc<Host>,
    ast: &Arc<rhai::AST>,
    playbook: &Playbook,
    cancel: &CancellationToken,
) -> Vec<Diagnostic> {
    let stop = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(batch.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut diagnostics = Vec::new();
    let progress = BatchProgress::new(&runs, batch, starts, forecast);
    for (position, (run, node)) in runs.into_iter().enumerate() {
        if starts.is_some_and(|s| s.contains(&position)) {
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
        progress.starting(position);
        let (host, ast, module_path, stop, file) = (
            Arc::clone(host),
            Arc::clone(ast),
            playbook.module_path.clone(),
            Arc::clone(&stop),
            playbook.file.clone(),
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
    diagnostics
}

/// "Batch i of N" as the run goes, with how long the rest should take: by the forecast when
/// there is one, else at the pace of the batches so far. Each batch's start is a
/// `krun::progress` event (the live display's header, a line in the log).
struct BatchProgress {
    /// The position where each batch starts, and its nodes.
    batches: Vec<(usize, Vec<String>)>,
    /// Cluster seconds each batch takes by the forecast (`None`: it never finishes).
    forecast: Option<Vec<Option<f64>>>,
    started: std::time::Instant,
}

impl BatchProgress {
    fn new(
        runs: &[(RunId, Option<Node>)],
        batch: usize,
        starts: Option<&[usize]>,
        forecast: Option<&crate::preflight::Forecast>,
    ) -> Self {
        let positions: Vec<usize> = match starts {
            Some(starts) => starts.to_vec(),
            None => (0..runs.len()).step_by(batch.max(1)).collect(),
        };
        let batches = positions
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = positions.get(i + 1).copied().unwrap_or(runs.len());
                let nodes = runs[start..end.min(runs.len())]
                    .iter()
                    .filter_map(|(_, n)| n.as_ref().map(|n| n.0.name.clone()))
                    .collect();
                (start, nodes)
            })
            .collect();
        Self {
            batches,
            forecast: forecast.map(|f| f.batches.iter().map(|b| b.duration_seconds).collect()),
            started: std::time::Instant::now(),
        }
    }

    fn starting(&self, position: usize) {
        let count = self.batches.len();
        let Some(index) = self.batches.iter().position(|(s, _)| *s == position) else {
            return;
        };
        if count < 2 {
            return;
        }
        let estimate = match &self.forecast {
            Some(durations) => durations
                .get(index..)
                .map(|rest| rest.iter().copied().sum::<Option<f64>>())
                .map(|left| match left {
                    Some(seconds) => format!(
                        "; about {} left by the forecast",
                        humantime::format_duration(Duration::from_secs(seconds.round() as u64))
                    ),
                    None => "; the forecast says a batch never finishes".to_owned(),
                }),
            None if index > 0 => {
                let pace = self.started.elapsed().as_secs_f64() / index as f64;
                let left = pace * (count - index) as f64;
                Some(format!(
                    "; about {} left at the pace so far",
                    humantime::format_duration(Duration::from_secs(left.round() as u64))
                ))
            }
            None => None,
        };
        let nodes = &self.batches[index].1;
        tracing::info!(
            target: "krun::progress",
            batch = index + 1,
            batches = count,
            "batch {} of {count}: {}{}",
            index + 1,
            nodes.join(", "),
            estimate.unwrap_or_default()
        );
    }
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

/// The libraries of the run, as the journal and the report record them.
fn provenance(settings: &RunSettings) -> Vec<crate::journal::Provenance> {
    settings
        .libraries
        .as_ref()
        .map(|l| l.provenance.clone())
        .unwrap_or_default()
}

/// Opens the run's journal. It is a precondition of every change: a run that changes things
/// and cannot be journaled does not start. A dry-run changes nothing, so it goes on without one.
fn open_journal(
    settings: &RunSettings,
    text: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> crate::Result<Option<Arc<Journal>>> {
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
        libraries: provenance(settings),
    };
    match Journal::create(&settings.state_dir, &header) {
        Ok(journal) => {
            tracing::debug!("journal: {}", journal.dir().display());
            Ok(Some(Arc::new(journal)))
        }
        Err(e) if settings.dry_run => {
            tracing::warn!(
                "cannot create a run journal under {}: {e}; the dry-run goes on without one",
                settings.state_dir.display()
            );
            Ok(None)
        }
        Err(e) => Err(crate::Error::runtime(format!(
            "cannot create the run journal under {}: {e}. Nothing was run: krun records every \
             change before making it, so a run that cannot be journaled does not start. Free \
             space there or pass --state-dir DIR",
            settings.state_dir.display()
        ))),
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

/// Cancels the run on SIGINT, SIGTERM or when the overall time limit passes. Cancelling stops
/// every wait and command in flight (the boundary and the transport see to it) and starts no
/// new step. A second SIGINT or SIGTERM exits at once, without waiting for that.
async fn watch_signals(cancel: CancellationToken, timeout: Option<Duration>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = next(&mut interrupt) => tracing::warn!("interrupted: no new step starts; stopping what runs (Ctrl-C again exits at once)"),
        () = next(&mut term) => tracing::warn!("terminated: no new step starts; stopping what runs (a second SIGTERM exits at once)"),
        () = limit => tracing::error!("the run exceeded --timeout; stopping what runs"),
    }
    cancel.cancel();
    tokio::select! {
        () = next(&mut interrupt) => {}
        () = next(&mut term) => {}
    }
    tracing::error!(
        "interrupted again: exiting at once; commands in flight may still run on their nodes, \
         and `krun runs` shows where each node stopped"
    );
    std::process::exit(i32::from(Kind::Interrupted.exit_code()));
}

/// The next delivery of a signal; never, when it could not be watched.
async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
