//! Preflight: what an upgrade would run into, found before anything changes.
//!
//! Every incident in the field reports was visible beforehand to a tool that looked: an
//! Ingress or Prometheus without a PodDisruptionBudget, all replicas of a service on the
//! nodes of one batch, objects in API versions the target release no longer serves, a
//! non-root pod that cannot read its bound service-account token after 1.21. The checks
//! here read the cluster (live, or the rehearsal's simulator) and return findings, each with
//! a severity and a fix; the disruption [`forecast`] plays a batch plan against a model of
//! the cluster and says what every batch does to the workloads.
//!
//! The checks are pure functions of a [`ClusterView`] read once, so the same code judges a
//! live cluster, a snapshot, and the tests' scenarios. The [`etcd`], [`certs`] and [`lb`] checks
//! read etcd and the nodes instead, as steps through the effects boundary ([`Steps`]), so a dry-run,
//! offline mode and the journal treat those reads like any other.

pub mod apis;
pub mod apiserver;
pub mod batches;
pub mod certs;
pub mod checks;
pub mod etcd;
pub mod flags;
pub mod forecast;
pub mod html;
pub mod lb;
mod markup;
pub mod registry;
pub mod render;
pub mod verify_html;
pub mod workload;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::effects::{Access, Effect, Effects, Outcome, Recheck, Step, StepFailure};
use crate::inventory::Inventory;
pub use crate::kube::ClusterView;
use crate::kube::survey::{Survey, SurveyRequest};
use crate::plan::{Origin, RunId};

pub use crate::versions::KubeVersion as Version;
pub use batches::BatchSpec;
pub use certs::CertCheck;
pub use etcd::EtcdCheck;
pub use forecast::{Forecast, ForecastOptions};
pub use lb::LbCheck;

/// How bad a finding is: a block stops krun before anything runs (exit 3) unless accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Block,
    Warn,
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Block => "block",
            Severity::Warn => "warn",
            Severity::Info => "info",
        }
    }
}

/// One thing preflight found: what, where, why it matters and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `<check>/<object>`, e.g. `critical-without-pdb/monitoring/prometheus-k8s`; what
    /// `--accept` names (the whole id, or the check alone for all its findings).
    pub id: String,
    pub severity: Severity,
    /// The object concerned: `node/worker-1`, `StatefulSet monitoring/prometheus-k8s`.
    pub object: String,
    pub message: String,
    pub fix: String,
    /// Accepted with `--accept`: shown, logged, but no longer blocking.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accepted: bool,
}

impl Finding {
    pub fn new(
        check: &str,
        key: &str,
        severity: Severity,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            id: format!("{check}/{key}"),
            severity,
            object: object.into(),
            message: message.into(),
            fix: fix.into(),
            accepted: false,
        }
    }

    /// The check's name: the id up to the first `/`.
    pub fn check(&self) -> &str {
        self.id.split('/').next().unwrap_or(&self.id)
    }

    /// Whether this finding stops the run.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Block && !self.accepted
    }
}

/// What preflight is asked to judge.
#[derive(Debug, Clone, Default)]
pub struct PreflightOptions {
    /// The Kubernetes version the upgrade goes to.
    pub target: Option<Version>,
    /// Workloads the team calls critical, `namespace/name`, besides the well-known ones.
    pub critical: Vec<String>,
    /// Manifest files (or directories of them) to check for removed API versions.
    pub manifests: Vec<PathBuf>,
    /// The nodes about to be upgraded; checks that depend on them (PDBs that would hold
    /// their drain) block only for these. Empty: all nodes.
    pub nodes: Vec<String>,
    /// Each kube-apiserver's own address (`https://10.0.0.1:6443`), probed one by one; empty:
    /// from the kubeadm annotation on the apiserver pods.
    pub apiservers: Vec<String>,
    /// etcd's health, quorum margin and snapshots.
    pub etcd: EtcdCheck,
    /// Certificate expiry on the control-plane nodes and the kubelets.
    pub certs: CertCheck,
    /// The apiserver load balancers' backend lists.
    pub lb: LbCheck,
}

/// Marks the findings the operator accepted (`--accept ID` or `--accept CHECK`); every
/// accepted block is logged. Returns accept values that matched nothing, to report.
pub fn accept(findings: &mut [Finding], accepted: &[String]) -> Vec<String> {
    let mut used = BTreeSet::new();
    for finding in findings.iter_mut() {
        if let Some(a) = accepted
            .iter()
            .find(|a| **a == finding.id || a.as_str() == finding.check())
        {
            used.insert(a.clone());
            finding.accepted = true;
            if finding.severity == Severity::Block {
                tracing::warn!(
                    "preflight: accepted block finding {} (--accept {a}): {}",
                    finding.id,
                    finding.message
                );
            }
        }
    }
    accepted
        .iter()
        .filter(|a| !used.contains(*a))
        .cloned()
        .collect()
}

/// The preflight answer: the findings, and the forecast when a batch plan was given.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
}

impl Report {
    /// Whether anything stops the run: a block finding not accepted, or a forecast block.
    pub fn blocked(&self) -> bool {
        self.findings.iter().any(Finding::blocks)
            || self.forecast.as_ref().is_some_and(Forecast::blocked)
    }
}

/// Judges what the survey read: every check of the Kubernetes side.
pub fn findings(survey: &Survey, options: &PreflightOptions) -> crate::Result<Vec<Finding>> {
    let mut found = checks::all(&survey.view, options);
    found.extend(apiserver::check(survey));
    found.extend(apis::served(survey, options));
    found.extend(apis::manifests(&survey.view, options)?);
    sort(&mut found);
    Ok(found)
}

/// What preflight reads of the cluster for `options`.
pub fn survey_request(options: &PreflightOptions) -> SurveyRequest {
    SurveyRequest {
        target: options.target.map(|t| t.to_string()),
        apiservers: options.apiservers.clone(),
        apis: apis::questions(options.target),
    }
}

/// Every check: the cluster survey, etcd, the certificates and the load balancers, each read
/// as a step through the effects boundary, then judged. Returns the survey too (the forecast
/// plays batches on its view). Blocking: call it from a blocking thread.
pub fn check(
    steps: &Steps,
    inventory: &Inventory,
    options: &PreflightOptions,
) -> Result<(Arc<Survey>, Vec<Finding>), StepFailure> {
    let call = crate::kube::Call::Survey(Box::new(survey_request(options)));
    let outcome = steps.perform(
        "preflight",
        "kubernetes",
        Access::Read,
        call.describe(),
        Effect::call(call),
        false,
    )?;
    // Offline, nothing was read: the checks of the Kubernetes side have nothing to judge.
    let survey = outcome.detail::<Survey>().unwrap_or_default();
    let mut found = if outcome.observed {
        findings(&survey, options).map_err(|e| StepFailure {
            kind: e.kind,
            node: None,
            action: "preflight".to_owned(),
            command: None,
            message: e.message,
        })?
    } else {
        Vec::new()
    };
    found.extend(node_findings(steps, inventory, options));
    sort(&mut found);
    Ok((survey, found))
}

/// Where the checks that read etcd and the nodes perform their reads: steps of one run
/// through the effects boundary.
pub struct Steps {
    pub effects: Arc<Effects>,
    pub run: RunId,
    /// The playbook line that called preflight (none for `krun preflight`).
    pub origin: Origin,
}

impl Steps {
    /// Performs one step; reads run again when a resumed run finds them interrupted. `quiet`
    /// keeps large output (certificates) out of the log.
    pub fn perform(
        &self,
        action: &'static str,
        target: &str,
        access: Access,
        shown: String,
        effect: Effect,
        quiet: bool,
    ) -> Result<Outcome, StepFailure> {
        let recheck = if access == Access::Read {
            Recheck::Rerun
        } else {
            Recheck::infer(&effect)
        };
        let step = Step {
            action,
            target: target.to_owned(),
            access,
            origin: self.origin.clone(),
            recheck,
            secret_output: false,
            quiet_output: quiet,
            hide_content: false,
        };
        self.effects.perform(self.run, step, shown, effect)
    }

    /// The same read on several targets (`(target, shown, effect)`), at most
    /// [`Steps::CONCURRENCY`] at a time; results in the order given. Steps are numbered in
    /// that order too, so a resumed run replays them.
    pub fn read_concurrently(
        &self,
        action: &'static str,
        calls: Vec<(String, String, Effect)>,
        quiet: bool,
    ) -> Vec<Result<Outcome, StepFailure>> {
        use futures::StreamExt;
        let effects = &self.effects;
        let steps = futures::stream::iter(calls.into_iter().map(|(target, shown, effect)| {
            let step = Step {
                action,
                target,
                access: Access::Read,
                origin: self.origin.clone(),
                recheck: Recheck::Rerun,
                secret_output: false,
                quiet_output: quiet,
                hide_content: false,
            };
            effects.perform_async(self.run, step, shown, effect)
        }))
        .buffered(Self::CONCURRENCY)
        .collect::<Vec<_>>();
        tokio::runtime::Handle::current().block_on(steps)
    }

    /// How many nodes are read at once.
    pub const CONCURRENCY: usize = 8;
}

/// Why a step failed, without the `step N (action) on target:` the run's summary needs and a
/// finding does not.
pub fn failure_reason(failure: &StepFailure) -> &str {
    let message = failure.message.as_str();
    failure
        .node
        .as_deref()
        .and_then(|target| message.split_once(&format!(" on {target}: ")))
        .filter(|(head, _)| head.starts_with("step "))
        .map_or(message, |(_, reason)| reason)
}

/// The checks that read etcd and the nodes over ssh rather than the Kubernetes API. Blocking:
/// call it from a blocking thread.
pub fn node_findings(
    steps: &Steps,
    inventory: &Inventory,
    options: &PreflightOptions,
) -> Vec<Finding> {
    let mut found = etcd::check(steps, inventory.etcd.is_some(), &options.etcd);
    found.extend(certs::check(
        steps,
        inventory,
        &options.nodes,
        &options.certs,
    ));
    found.extend(lb::check(steps, inventory, &options.lb));
    found.extend(flags::check(
        steps,
        inventory,
        &options.nodes,
        options.target,
    ));
    found
}

/// Blocks first, then warnings, then information; by id within each.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| (a.severity, &a.id).cmp(&(b.severity, &b.id)));
}
