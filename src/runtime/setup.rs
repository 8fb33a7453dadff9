//! Before the playbook: what krun itself reads and takes, as steps of its own run (`(setup)`)
//! through the effects boundary, so the plan and the journal show them like any other step.
//!
//! - **Discovery**: a `--node` the inventory does not list is looked up in the cluster and
//!   reached at its InternalIP.
//! - **The judgement of a run that drains** (a `drain` is reachable from the playbook, see
//!   [`super::shape`]), before anything changes: every `--node` reached over ssh (and sudo), the
//!   preflight findings that concern the nodes and the target, and the forecast of the actual
//!   batch plan on the same view of the cluster. A block refuses the run (exit 3) with the way
//!   to proceed.
//! - **The batch plan**: the forecast of the plan on the cluster as it is now (for a run that
//!   drains, a rehearsal or `--batch auto`); `auto` orders the nodes batch by batch.
//! - **The cluster lock**, for a run that changes things.
//!
//! These steps read the present: a resumed run performs them again rather than replaying them.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::settings::RunSettings;
use crate::Error;
use crate::effects::{Access, Effect, Effects, Outcome, Recheck, Step, StepFailure};
use crate::error::Kind;
use crate::inventory::NodeSpec;
use crate::kube::lock::{ClusterLock, Holder};
use crate::kube::{Call, ClusterView};
use crate::plan::{Origin, RunId, RunStatus};
use crate::preflight::{
    BatchSpec, Finding, Forecast, ForecastOptions, PreflightOptions, Severity, batches,
};

/// The name of krun's own run in the plan and the journal; never a node's name (node names
/// are DNS subdomains, without parentheses).
pub const SETUP: &str = "(setup)";

/// The setup run: steps performed on behalf of the whole command.
pub struct Setup {
    effects: Arc<Effects>,
    run: RunId,
}

/// The batch plan a forecast gave: the forecast, and for `auto` where each batch starts; for
/// a run that drains, the preflight findings it was judged on too.
#[derive(Default)]
pub struct BatchPlan {
    pub forecast: Option<Forecast>,
    /// Positions in the (reordered) node list where a new batch starts.
    pub starts: Option<Vec<usize>>,
    /// The findings that concern the run's nodes and target (a run that drains).
    pub findings: Vec<Finding>,
}

impl BatchPlan {
    /// Why the run may not start: every block not accepted, with its fix, and how to proceed.
    pub fn refusal(&self) -> Option<String> {
        let blocks: Vec<&Finding> = self.findings.iter().filter(|f| f.blocks()).collect();
        let forecast = self.forecast.as_ref().filter(|f| f.blocked());
        if blocks.is_empty() && forecast.is_none() {
            return None;
        }
        let mut message = String::from("refused before anything changed:");
        for finding in &blocks {
            message.push_str(&format!(
                "\n  {}: {}\n    fix: {}",
                finding.id, finding.message, finding.fix
            ));
        }
        if let Some(forecast) = forecast {
            message.push_str(&format!(
                "\n  the disruption forecast of --batch {}: {}",
                forecast.plan, forecast.verdict
            ));
        }
        message.push_str(
            "\nFix the cause and run again; or, having read it, accept a block with --accept ID \
             (its check name accepts all of its findings; --accept forecast the forecast's)",
        );
        Some(message)
    }
}

impl Setup {
    pub fn new(effects: Arc<Effects>) -> Self {
        let run = effects.recorder().add_run(SETUP, None);
        Self { effects, run }
    }

    /// The setup's record in the plan.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// Marks the setup done (or stopped by `error`). A setup without steps leaves no trace.
    pub fn finish(&self, error: Option<&Error>) {
        let recorder = self.effects.recorder();
        match error {
            None if recorder.last_step(self.run).is_none() => {}
            None => recorder.set_status(self.run, RunStatus::Ok),
            Some(error) => recorder.fail(
                self.run,
                RunStatus::Failed,
                crate::plan::RunFailure {
                    step: recorder.last_step(self.run),
                    message: error.message.clone(),
                    file: None,
                    line: None,
                    exit_code: error.exit_code(),
                    left_cordoned: Vec::new(),
                },
            ),
        }
    }

    async fn call(
        &self,
        action: &'static str,
        access: Access,
        call: Call,
    ) -> Result<Outcome, StepFailure> {
        let mut step = Step::new(
            action,
            crate::effects::kube::SERVICE,
            access,
            Origin::default(),
        );
        step.recheck = Recheck::Rerun;
        let shown = call.describe();
        self.effects
            .perform_async(self.run, step, shown, Effect::call(call))
            .await
    }

    /// The nodes to run on: inventory nodes as they are, and nodes only the cluster knows,
    /// looked up there (their InternalIP, else their hostname).
    pub async fn discover(&self, settings: &RunSettings) -> crate::Result<Vec<NodeSpec>> {
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
            if !has_cluster(settings) {
                return Err(Error::input(format!(
                    "{unknown}; and no cluster to look it up in (no kubeconfig)"
                )));
            }
            let outcome = self
                .call(
                    "discover",
                    Access::Read,
                    Call::NodeInfo {
                        node: spec.name.clone(),
                    },
                )
                .await
                .map_err(|failure| {
                    Error::input(format!(
                        "{unknown}; the cluster does not have it either: {}",
                        crate::preflight::failure_reason(&failure)
                    ))
                })?;
            if !outcome.observed {
                return Err(Error::input(format!(
                    "{unknown}; offline, the cluster is not asked for it: add it to the inventory"
                )));
            }
            let address = |key: &str| outcome.data[key].as_str().map(str::to_owned);
            let host = address("internal_ip")
                .or_else(|| address("hostname"))
                .ok_or_else(|| {
                    Error::input(format!(
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

    /// Judges a run that drains, before anything changes: every node reached over ssh, the
    /// preflight findings that concern the nodes and the target, and the batch plan's forecast
    /// on the same view (see [`Setup::plan_batches`]). Blocks come back in the plan; the caller
    /// refuses with [`BatchPlan::refusal`].
    pub async fn judge(
        &self,
        settings: &mut RunSettings,
        shape: &super::shape::Shape,
    ) -> crate::Result<BatchPlan> {
        if shape.runs_commands {
            self.reach(settings).await?;
        }
        if !has_cluster(settings) {
            tracing::warn!(
                "no cluster configured: the drains of this run are not judged (no preflight, no \
                 forecast); pass --kubeconfig"
            );
            return Ok(BatchPlan::default());
        }
        let names: Vec<String> = settings.nodes.iter().map(|n| n.name.clone()).collect();
        let target = settings.params.get("version").and_then(|v| match v {
            crate::params::ParamValue::Str(text) => crate::versions::KubeVersion::parse(text),
            _ => None,
        });
        let options = PreflightOptions {
            target,
            nodes: names.clone(),
            ..PreflightOptions::default()
        };
        let request = crate::preflight::survey_request(&options);
        let outcome = self
            .call("judge", Access::Read, Call::Survey(Box::new(request)))
            .await
            .map_err(|failure| {
                Error::input(format!(
                    "judging the run reads the cluster, which is not reachable: {}",
                    crate::preflight::failure_reason(&failure)
                ))
            })?;
        let Some(survey) = outcome.detail::<crate::kube::Survey>() else {
            tracing::warn!(
                "offline: the drains of this run are not judged against the cluster (pass \
                 --rehearse SNAPSHOT to judge them against a copy)"
            );
            return Ok(BatchPlan::default());
        };
        let mut findings = crate::preflight::findings(&survey, &options)?;
        concerning(&mut findings, &names, keeps_replicas(settings));
        let unmatched = crate::preflight::accept(&mut findings, &settings.accept);
        for accept in unmatched.iter().filter(|a| *a != "forecast") {
            tracing::warn!("--accept {accept} matches no finding");
        }
        let mut plan = self.forecast(settings, &survey.view);
        plan.findings = findings;
        Ok(plan)
    }

    /// Every node answers over ssh (through sudo where the inventory says so) before anything
    /// changes; an offline dry-run cannot tell.
    async fn reach(&self, settings: &RunSettings) -> crate::Result<()> {
        use futures::StreamExt;
        let steps = settings.nodes.iter().map(|spec| {
            let mut step = Step::new("reach", spec.name.clone(), Access::Read, Origin::default());
            step.recheck = Recheck::Rerun;
            let effect = Effect::Exec {
                node: Arc::new(spec.clone()),
                command: "true".to_owned(),
                timeout: Some(std::time::Duration::from_secs(60)),
            };
            self.effects
                .perform_async(self.run, step, "true".to_owned(), effect)
        });
        let results: Vec<_> = futures::stream::iter(steps)
            .buffered(crate::preflight::Steps::CONCURRENCY)
            .collect()
            .await;
        let mut unreachable = Vec::new();
        for (spec, result) in settings.nodes.iter().zip(results) {
            match result {
                Ok(outcome) if !outcome.observed || outcome.exit_code == 0 => {}
                Ok(outcome) => unreachable.push(format!(
                    "{}: `true` exited with {} ({})",
                    spec.name,
                    outcome.exit_code,
                    outcome.stderr.trim()
                )),
                Err(failure) => unreachable.push(format!(
                    "{}: {}",
                    spec.name,
                    crate::preflight::failure_reason(&failure)
                )),
            }
        }
        if unreachable.is_empty() {
            return Ok(());
        }
        Err(Error::refused(format!(
            "refused before anything changed: {} of the nodes cannot be reached over ssh:\n  {}\n\
             Fix their access (host, port, key, sudo) or leave them out of --node",
            unreachable.len(),
            unreachable.join("\n  ")
        )))
    }

    /// The disruption forecast of the batch plan, when the run rehearses or plans its batches
    /// itself (`--batch auto`). For `auto`, `settings.nodes` is reordered batch by batch and
    /// `settings.batch` set to the largest batch.
    pub async fn plan_batches(&self, settings: &mut RunSettings) -> crate::Result<BatchPlan> {
        let auto = settings.batch_spec == BatchSpec::Auto;
        if settings.nodes.is_empty() || (settings.rehearse.is_none() && !auto) {
            return Ok(BatchPlan::default());
        }
        let outcome = self
            .call("forecast", Access::Read, Call::ClusterView)
            .await
            .map_err(|failure| {
                Error::input(format!(
                    "the batch plan reads the cluster, which is not reachable: {}",
                    crate::preflight::failure_reason(&failure)
                ))
            })?;
        let Some(view) = outcome.detail::<ClusterView>() else {
            return Err(Error::input(
                "the batch plan reads the cluster, which an offline dry-run does not: pass --rehearse SNAPSHOT or a fixed --batch N",
            ));
        };
        Ok(self.forecast(settings, &view))
    }

    /// The forecast of the batch plan on `view`; for `auto`, the nodes reordered batch by batch.
    fn forecast(&self, settings: &mut RunSettings, view: &ClusterView) -> BatchPlan {
        let auto = settings.batch_spec == BatchSpec::Auto;
        let names: Vec<String> = settings.nodes.iter().map(|n| n.name.clone()).collect();
        // The playbook's drain options are its own: pods without a controller are assumed to go
        // (`force`); if the playbook's drain refuses them, the drain says so itself.
        let options = ForecastOptions {
            force: true,
            keep_replica: keeps_replicas(settings),
            ..ForecastOptions::default()
        };
        let mut forecast = batches::plan(view, &[], &names, settings.batch_spec, &options);
        if forecast.blocked() && settings.accept.iter().any(|a| a == "forecast") {
            tracing::warn!(
                "running despite the disruption forecast's block (--accept forecast): {}",
                forecast.verdict
            );
            forecast.accepted = true;
        }
        let mut starts = None;
        if auto {
            let mut order = Vec::new();
            let mut at = Vec::new();
            for batch in &forecast.batches {
                at.push(order.len());
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
            starts = Some(at);
        }
        BatchPlan {
            forecast: Some(forecast),
            starts,
            findings: Vec::new(),
        }
    }

    /// Takes the cluster lock for a run that changes things, after checking kured's. No lock
    /// when no cluster is configured at all (a playbook that only talks to nodes over ssh) or
    /// with `--no-lock`; a configured cluster that cannot be reached refuses, since krun cannot
    /// tell whether another upgrade is running.
    pub async fn lock(
        &self,
        settings: &RunSettings,
        run_id: Option<&str>,
        on_lost: CancellationToken,
    ) -> crate::Result<Option<ClusterLock>> {
        let Some(name) = &settings.lock else {
            tracing::warn!(
                "running WITHOUT the cluster lock (--no-lock): nothing stops a second upgrade"
            );
            if let Some(journal) = self.effects.recorder().journal() {
                let note = serde_json::json!({ "lock": null, "override": "--no-lock" });
                journal
                    .record(crate::journal::entry("lock", SETUP, note), true)
                    .map_err(Error::runtime)?;
            }
            return Ok(None);
        };
        if crate::kube::nothing_configured(&settings.kube) {
            tracing::debug!("no cluster configured: running without the cluster lock");
            return Ok(None);
        }
        let holder = Holder {
            user: crate::inventory::current_user(),
            host: crate::journal::hostname(),
            run_id: run_id.map_or_else(|| format!("pid-{}", std::process::id()), str::to_owned),
            playbook: settings.playbook.display().to_string(),
            resumes: settings.resume.as_ref().map(|(id, _)| id.clone()),
            pid: Some(std::process::id()),
        };
        let outcome = self
            .call(
                "lock",
                Access::Change,
                Call::Lock {
                    name: name.clone(),
                    holder: Box::new(holder),
                    on_lost,
                },
            )
            .await
            .map_err(|failure| Error {
                kind: if failure.kind == Kind::Runtime {
                    Kind::Refused
                } else {
                    failure.kind
                },
                message: crate::preflight::failure_reason(&failure).to_owned(),
            })?;
        let lock = outcome
            .detail::<Mutex<Option<ClusterLock>>>()
            .and_then(|held| held.lock().expect("lock handle").take());
        Ok(lock)
    }
}

/// Keeps what concerns a run on `nodes`: findings about other nodes inform (a block there
/// becomes a warning: it does not stop these nodes' drains); a critical workload without a
/// budget is kept up by the drains themselves (a kept replica, judged by the forecast), so
/// it warns; the rest stands, since workload checks already judge budgets by these nodes, and
/// the target's findings concern every node.
fn concerning(findings: &mut [Finding], nodes: &[String], keep_replica: bool) {
    for finding in findings.iter_mut() {
        if keep_replica
            && finding.check() == "critical-without-pdb"
            && finding.severity == Severity::Block
        {
            finding.severity = Severity::Warn;
            finding.message.push_str(
                "; this run's drains keep a ready replica of it (keep_replica), and the forecast \
                 below judges whether they can",
            );
            continue;
        }
        let other_node = finding
            .object
            .strip_prefix("node/")
            .is_some_and(|node| !nodes.iter().any(|n| n == node));
        if other_node && finding.severity == Severity::Block {
            finding.severity = Severity::Warn;
            finding.message.push_str(" (not a node of this run)");
            continue;
        }
        // A node of this run that is not Ready is what the run works on (a restore of a broken
        // node, a kubelet that needs its upgrade): the drain of a NotReady node takes no margin
        // from its workloads, whose pods there are not ready either.
        if finding.check() == "node-not-ready" && finding.severity == Severity::Block {
            finding.severity = Severity::Warn;
            finding
                .message
                .push_str(" (a node of this run: the run works on it as it is)");
        }
    }
    crate::preflight::sort(findings);
}

/// Whether the run's drains keep a ready replica of workloads without a budget: the stdlib's
/// drains do unless `--set keep_replica=false`.
fn keeps_replicas(settings: &RunSettings) -> bool {
    settings.params.get("keep_replica") != Some(&crate::params::ParamValue::Bool(false))
}

/// Whether the command can ask a cluster: a rehearsal, offline (where the plan shows the reads
/// as not read), or a kubeconfig or in-cluster configuration, found or broken (a broken one is
/// an error worth seeing).
pub fn has_cluster(settings: &RunSettings) -> bool {
    settings.rehearse.is_some()
        || settings.offline
        || settings.kube.kubeconfig.is_some()
        || crate::kube::client::choose_source(
            &settings.kube,
            &crate::kube::client::Environment::current(),
        )
        .is_ok()
}
