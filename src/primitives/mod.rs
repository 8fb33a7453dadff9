//! Rhai-facing registrations: thin functions that convert Rhai values, build an [`Effect`] and
//! hand it to the effects boundary. One file per area; `krun doc` is generated from what is
//! registered here (names, parameters, doc comments).

mod addons;
pub mod backup;
mod containerd;
mod core;
mod etcd;
mod files;
mod images;
mod kube;
mod kubeadm;
mod kubelet;
pub mod node;
mod packages;
mod shell;
mod systemd;
mod verify;
mod versions;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Map, NativeCallContext, Position};

use crate::effects::{Access, Effect, Effects, Outcome, Recheck, Step, StepFailure};
use crate::error::Kind;
use crate::inventory::Inventory;
use crate::local::LocalFiles;
use crate::params::ParamValue;
use crate::plan::{Origin, RunId};
use crate::primitives::node::Node;

pub use core::DECLARE_PARAMETERS;

/// The primitives that run commands on a node over ssh. A run that can reach one of them
/// reaches its nodes before it changes anything (`krun` checks each `--node` answers).
pub const NODE_COMMANDS: &[&str] = &[
    "containerd_install",
    "kubeadm_upgrade_apply",
    "kubeadm_upgrade_node",
    "kubelet_config",
    "kubelet_flags",
    "os_facts",
    "pkg_install",
    "pkg_repo_minor",
    "pkg_version",
    "pkg_versions",
    "probe",
    "pull_images",
    "render",
    "service_active",
    "set_kubelet_config",
    "set_kubelet_flags",
    "sh",
    "systemctl",
    "upload",
    "wait_active",
    "write_file",
];

/// The primitives that do not (the Kubernetes API, etcd, the playbook's own values). Every
/// primitive is in exactly one of the two lists; a test holds new ones to that.
pub const NOT_NODE_COMMANDS: &[&str] = &[
    "cordon",
    "drain",
    "etcd_add_member",
    "etcd_health",
    "etcd_members",
    "etcd_move_leader",
    "etcd_promote",
    "etcd_remove_member",
    "etcd_snapshot",
    "etcd_status",
    "etcd_wait_healthy",
    "evict",
    "fail",
    "find_node",
    "kubelet_flags_removed",
    "log",
    "node_info",
    "nodes",
    "param",
    "parameters",
    "pdbs",
    "pods_on",
    "preflight",
    "quote",
    "refuse",
    "secret",
    "server_version",
    "uncordon",
    "unplanned",
    "version_compare",
    "version_minor_distance",
    "version_parts",
    "version_path",
    "wait_ready",
    "warn",
];

use crate::host::packages::OsFacts;

/// What every run of one command shares.
pub struct Host {
    pub effects: Arc<Effects>,
    pub inventory: Arc<Inventory>,
    pub params: BTreeMap<String, ParamValue>,
    /// The playbook file; relative paths in `upload`/`render` from it resolve against its directory.
    pub playbook: PathBuf,
    /// The local files `upload`, `render` and the like may read.
    pub local: LocalFiles,
    pub command_timeout: Duration,
    /// `--strict-skew`: kubelets outside the supported version skew refuse an upgrade instead
    /// of warning.
    pub strict_skew: bool,
    /// Whether the command has a cluster to ask (a kubeconfig, in-cluster, a rehearsal, or
    /// offline where reads are shown as not read); without one, guards log that they could not
    /// check instead of failing a node-only run.
    pub cluster: bool,
    facts: Mutex<HashMap<String, OsFacts>>,
    /// Versions as this command leaves them (a dry-run records changes without making them).
    skew: Mutex<crate::versions::skew::Planned>,
    /// The nodes this command backed up (see `backup`).
    backups: backup::Backups,
    /// The baseline and what was applied, for `verify`.
    verify: verify::VerifyState,
}

impl Host {
    pub fn new(
        effects: Arc<Effects>,
        inventory: Arc<Inventory>,
        params: BTreeMap<String, ParamValue>,
        playbook: PathBuf,
        command_timeout: Duration,
    ) -> Self {
        Self {
            effects,
            inventory,
            params,
            playbook,
            local: LocalFiles::default(),
            command_timeout,
            strict_skew: false,
            cluster: true,
            facts: Mutex::new(HashMap::new()),
            skew: Mutex::new(crate::versions::skew::Planned::default()),
            backups: backup::Backups::default(),
            verify: verify::VerifyState::default(),
        }
    }

    /// Reading local files as `local` permits (see [`LocalFiles`]).
    pub fn with_local_files(mut self, local: LocalFiles) -> Self {
        self.local = local;
        self
    }

    /// With `--strict-skew`.
    pub fn with_strict_skew(mut self, strict: bool) -> Self {
        self.strict_skew = strict;
        self
    }

    /// Whether a cluster can be asked (see [`Host::cluster`]).
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }
}

/// One run: the shared host, the run's record, and its node (none for cluster-level playbooks).
pub struct RunContext {
    pub host: Arc<Host>,
    pub run: RunId,
    pub node: Option<Node>,
}

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

impl RunContext {
    /// Performs one effect as a step of this run.
    pub fn step(
        &self,
        call: &NativeCallContext,
        action: &'static str,
        node: &Node,
        access: Access,
        shown: String,
        effect: Effect,
    ) -> RhaiResult<Outcome> {
        let recheck = Recheck::infer(&effect);
        self.step_rechecked(call, action, node, access, shown, effect, recheck)
    }

    /// Runs `command` on `node` as a change (shown as `shown` in the plan) and fails the step,
    /// naming the node, the command and its stderr, when it exits non-zero.
    pub fn run_change(
        &self,
        call: &NativeCallContext,
        action: &'static str,
        node: &Node,
        shown: String,
        command: &str,
        timeout: Duration,
    ) -> RhaiResult<Outcome> {
        let outcome = self.step(
            call,
            action,
            node,
            Access::Change,
            shown,
            Effect::Exec {
                node: Arc::clone(node.spec()),
                command: command.to_owned(),
                timeout: Some(timeout),
            },
        )?;
        if outcome.exit_code != 0 {
            return Err(self.command_failed(call.call_position(), action, node, command, &outcome));
        }
        Ok(outcome)
    }

    /// [`RunContext::step`], saying how a resumed run settles the step if krun died while it
    /// ran (a package install reads the installed version back, a `systemctl start` reruns).
    #[allow(clippy::too_many_arguments)]
    pub fn step_rechecked(
        &self,
        call: &NativeCallContext,
        action: &'static str,
        node: &Node,
        access: Access,
        shown: String,
        effect: Effect,
        recheck: Recheck,
    ) -> RhaiResult<Outcome> {
        let mut step = self.new_step(call, action, node, access);
        step.recheck = recheck;
        self.perform_step(call, step, shown, effect)
    }

    /// A step of this run on `node`, for primitives that set more than the usual
    /// ([`Step::secret_output`], [`Step::recheck`]) before [`RunContext::perform_step`].
    pub fn new_step(
        &self,
        call: &NativeCallContext,
        action: &'static str,
        node: &Node,
        access: Access,
    ) -> Step {
        Step {
            action,
            target: node.0.name.clone(),
            access,
            origin: origin(call),
            recheck: Recheck::Ask,
            secret_output: false,
            quiet_output: false,
            hide_content: false,
        }
    }

    /// Performs one effect as `step`.
    pub fn perform_step(
        &self,
        call: &NativeCallContext,
        step: Step,
        shown: String,
        effect: Effect,
    ) -> RhaiResult<Outcome> {
        self.host
            .effects
            .perform(self.run, step, shown, effect)
            .map_err(|failure| raise(call.call_position(), failure))
    }

    /// Performs one effect on a cluster service (`target` names it in the plan).
    pub fn step_on(
        &self,
        call: &NativeCallContext,
        action: &'static str,
        target: &str,
        access: Access,
        shown: String,
        effect: Effect,
    ) -> RhaiResult<Outcome> {
        let step = Step {
            action,
            target: target.to_owned(),
            access,
            origin: origin(call),
            recheck: Recheck::infer(&effect),
            secret_output: false,
            quiet_output: false,
            hide_content: false,
        };
        self.host
            .effects
            .perform(self.run, step, shown, effect)
            .map_err(|failure| raise(call.call_position(), failure))
    }

    /// The failure of `command`, which exited non-zero on `node`: the node, the command, the
    /// exit code and the end of its stderr, at the playbook's `position`.
    pub fn command_failed(
        &self,
        position: Position,
        action: &str,
        node: &Node,
        command: &str,
        outcome: &Outcome,
    ) -> Box<EvalAltResult> {
        let mut failure = self.failure(
            action,
            Kind::Runtime,
            format!(
                "`{command}` exited with code {} on {}\n{}",
                outcome.exit_code,
                node.0.name,
                tail(&outcome.stderr, 10)
            ),
        );
        failure.node = Some(node.0.name.clone());
        failure.command = Some(self.host.effects.recorder().redact(command));
        raise(position, failure)
    }

    /// A failure of this run that is not tied to a node command (bad argument, `fail()`).
    pub fn failure(&self, action: &str, kind: Kind, message: impl Into<String>) -> StepFailure {
        StepFailure {
            kind,
            node: self.node.as_ref().map(|n| n.0.name.clone()),
            action: action.to_owned(),
            command: None,
            message: message.into(),
        }
    }

    /// Resolves a local path the playbook names relative to the file that names it, refusing
    /// one outside the playbook's directory and its --lib directories (see [`LocalFiles`]).
    pub fn local_path(
        &self,
        call: &NativeCallContext,
        action: &str,
        path: &str,
    ) -> RhaiResult<PathBuf> {
        // The stdlib is compiled in: what its functions name is the playbook's.
        let base = call
            .call_source()
            .filter(|source| !source.starts_with("stdlib/"))
            .map(Path::new)
            .filter(|p| p.is_file())
            .unwrap_or(&self.host.playbook);
        let dir = base.parent().unwrap_or(Path::new("."));
        self.host.local.resolve(dir, path).map_err(|why| {
            raise(
                call.call_position(),
                self.failure(action, Kind::Input, format!("{action}: {why}")),
            )
        })
    }

    /// Whether this run recorded changes instead of making them (a dry-run or a rehearsal):
    /// what those would have changed is not there to be checked.
    pub fn recorded_changes(&self) -> bool {
        self.host
            .effects
            .recorder()
            .runs()
            .get(self.run.0)
            .is_some_and(|run| {
                run.steps.iter().any(|s| {
                    s.access == Access::Change && !s.executed && !s.replayed && s.error.is_none()
                })
            })
    }

    /// Whether this run has depended on state it could not observe (offline, unreachable).
    pub fn saw_unobserved(&self) -> bool {
        self.host
            .effects
            .recorder()
            .runs()
            .get(self.run.0)
            .is_some_and(|run| run.steps.iter().any(|s| !s.observed))
    }
}

/// The playbook position of the current call.
pub fn origin(call: &NativeCallContext) -> Origin {
    let position = call.call_position();
    Origin {
        file: call.call_source().map(str::to_owned),
        line: position.line(),
        column: position.position(),
    }
}

/// Turns a step failure into a Rhai error that the runner recognises at the edge.
pub fn raise(position: Position, failure: StepFailure) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(failure), position).into()
}

/// Registers every primitive for one run.
pub fn register_all(engine: &mut Engine, context: &Arc<RunContext>) {
    crate::primitives::node::register(engine);
    core::register(engine, context);
    backup::register(engine, context);
    verify::register(engine, context);
    addons::register(engine, context);
    etcd::register(engine, context);
    shell::register(engine, context);
    files::register(engine, context);
    kube::register(engine, context);
    systemd::register(engine, context);
    packages::register(engine, context);
    versions::register(engine, context);
    kubeadm::register(engine, context);
    kubelet::register(engine, context);
    containerd::register(engine, context);
    images::register(engine, context);
}

/// Starts a registration with its documentation; side-effecting primitives are volatile so the
/// optimizer never evaluates them ahead of time.
pub(crate) fn primitive(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    let comments: Vec<String> = doc
        .lines()
        .map(|l| format!("/// {l}").trim_end().to_owned())
        .collect();
    FuncRegistration::new(name)
        .with_params_info(params.iter().copied())
        .with_comments([comments.join("\n")])
        .with_volatility(true)
        .with_purity(false)
}

/// Reads an optional map entry with a type, or explains which option was wrong.
/// Refuses an option map with a key the primitive does not know, suggesting the closest one:
/// a misspelt option must never be silently ignored.
pub(crate) fn check_options(
    ctx: &RunContext,
    opts: &Map,
    known: &[&str],
    action: &str,
    position: Position,
) -> RhaiResult<()> {
    for key in opts.keys() {
        if !known.contains(&key.as_str()) {
            let mut message = format!("{action}: unknown option `{key}`");
            if let Some(close) = crate::suggest::closest(key, known.iter().copied()) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            return Err(raise(position, ctx.failure(action, Kind::Input, message)));
        }
    }
    Ok(())
}

pub(crate) fn option<T: Clone + 'static>(
    options: &Map,
    key: &str,
    context: &RunContext,
    action: &str,
    position: Position,
) -> RhaiResult<Option<T>> {
    match options.get(key) {
        None => Ok(None),
        Some(value) if value.is_unit() => Ok(None),
        Some(value) => value.clone().try_cast::<T>().map(Some).ok_or_else(|| {
            raise(
                position,
                context.failure(
                    action,
                    Kind::Input,
                    format!(
                        "{action}: option `{key}` must be a {}, got {}",
                        std::any::type_name::<T>()
                            .rsplit("::")
                            .next()
                            .unwrap_or("value"),
                        value.type_name()
                    ),
                ),
            )
        }),
    }
}

/// Parses a duration option given as "10m"/"30s" or a number of seconds.
pub(crate) fn duration_value(value: &Dynamic) -> Option<Duration> {
    if let Some(seconds) = value.clone().try_cast::<i64>() {
        return u64::try_from(seconds).ok().map(Duration::from_secs);
    }
    let text = value.clone().into_string().ok()?;
    humantime::parse_duration(text.trim()).ok()
}

/// The map a command-running primitive returns.
pub(crate) fn outcome_map(outcome: &Outcome) -> Map {
    let mut map = Map::new();
    map.insert(
        "code".into(),
        Dynamic::from_int(i64::from(outcome.exit_code)),
    );
    map.insert("stdout".into(), outcome.stdout.clone().into());
    map.insert("stderr".into(), outcome.stderr.clone().into());
    map.insert("ok".into(), Dynamic::from_bool(outcome.exit_code == 0));
    map.insert("observed".into(), Dynamic::from_bool(outcome.observed));
    map
}

/// The message of the step failure a Rhai error carries, if it is one.
pub(crate) fn step_message(error: &EvalAltResult) -> Option<String> {
    match error {
        EvalAltResult::ErrorRuntime(value, _) => value
            .clone()
            .try_cast::<StepFailure>()
            .map(|failure| failure.message),
        _ => None,
    }
}

/// The last lines of a command's stderr, for error messages.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
