//! Before the playbook: what krun itself reads and takes, as steps of its own run (`(setup)`)
//! through the effects boundary, so the plan and the journal show them like any other step.
//!
//! - **Discovery**: a `--node` the inventory does not list is looked up in the cluster and
//!   reached at its InternalIP.
//! - **The batch plan**: for a rehearsal or `--batch auto`, the forecast of the plan on the
//!   cluster as it is now; `auto` orders the nodes batch by batch.
//! - **The cluster lock**, for a run that changes things.
//!
//! These steps read the present: a resumed run performs them again rather than replaying them.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::run::RunSettings;
use crate::Error;
use crate::effects::{Access, Effect, Effects, Outcome, Recheck, Step, StepFailure};
use crate::error::Kind;
use crate::inventory::NodeSpec;
use crate::kube::lock::{ClusterLock, Holder};
use crate::kube::{Call, ClusterView};
use crate::plan::{Origin, RunId, RunStatus};
use crate::preflight::{BatchSpec, Forecast, ForecastOptions, batches};

/// The name of krun's own run in the plan and the journal; never a node's name (node names
/// are DNS subdomains, without parentheses).
pub const SETUP: &str = "(setup)";

/// The setup run: steps performed on behalf of the whole command.
pub struct Setup {
    effects: Arc<Effects>,
    run: RunId,
}

/// The batch plan a forecast gave: the forecast, and for `auto` where each batch starts.
pub struct BatchPlan {
    pub forecast: Option<Forecast>,
    /// Positions in the (reordered) node list where a new batch starts.
    pub starts: Option<Vec<usize>>,
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

    /// The disruption forecast of the batch plan, when the run rehearses or plans its batches
    /// itself (`--batch auto`). For `auto`, `settings.nodes` is reordered batch by batch and
    /// `settings.batch` set to the largest batch.
    pub async fn plan_batches(&self, settings: &mut RunSettings) -> crate::Result<BatchPlan> {
        let auto = settings.batch_spec == BatchSpec::Auto;
        if settings.nodes.is_empty() || (settings.rehearse.is_none() && !auto) {
            return Ok(BatchPlan {
                forecast: None,
                starts: None,
            });
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
        Ok(BatchPlan {
            forecast: Some(forecast),
            starts,
        })
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
