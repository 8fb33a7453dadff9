//! A validated request to run a playbook: what the command line asked, read once by the run
//! and by its setup steps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::inventory::{Inventory, NodeSpec};
use crate::params::ParamValue;

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
    /// `--allow-local`: paths outside the playbook's and the --lib directories it may read.
    pub allow_local: Vec<PathBuf>,
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
    /// The repository's locked libraries, when the playbook is in one (a `krun.toml` above it).
    pub libraries: Option<Arc<crate::library::Libraries>>,
}
