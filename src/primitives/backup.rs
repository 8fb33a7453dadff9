//! `backup`, `restore_plan`, `restore_files`: a node's state kept before a change, and put
//! back from what a run's journal recorded (the commands and their reading are
//! [`crate::host::backup`]'s; the listing format is [`crate::journal::backup`]'s).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, Position};

use super::packages::{exec, manager};
use super::{RhaiResult, RunContext, primitive, raise};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::etcd::Call as EtcdCall;
use crate::host::backup::{self as domain, RestorePlan};
use crate::journal::backup::{BackupRecord, NodeState, Scope};
use crate::journal::view::JournalView;
use crate::primitives::node::Node;

/// The backups this command took, by node: a second `backup` of a node in the same command
/// returns the first (a wider scope adds what the narrower one left out).
#[derive(Debug, Default)]
pub struct Backups {
    taken: Mutex<BTreeMap<String, Vec<(Scope, Map)>>>,
}

const BACKUP_DOC: &str = "Backs `node` up before a change, once per command: `scope` \"node\" copies kubelet's and\n\
the container runtime's configuration (config.yaml, kubeadm-flags.env, /etc/default or\n\
/etc/sysconfig/kubelet, drop-ins, /etc/containerd, /etc/crio, daemon.json) and the Kubernetes\n\
package repository files, and records the installed versions of kubeadm, kubelet, kubectl and\n\
the runtime and the holds; \"control-plane\" adds the node's /etc/kubernetes (manifests, PKI,\n\
kubeconfigs; not kubeadm's own backups under tmp/) and, on a control-plane node, an etcd\n\
snapshot saved beside the run's journal (checksum verified). The copies stay ON the node in\n\
/var/backups/krun/<run id>/<scope> (mode 0700); the journal records the listing with each\n\
file's SHA-256, so `krun runs show ID` says what can be restored and `restore.rhai` puts it\n\
back. With an [etcd] section in the inventory the snapshot must succeed; without one, etcd\n\
found through the cluster's etcd pods is snapshotted when it answers, else a warning says why\n\
not. The stdlib's kubeadm, runtime and CRI-O steps call it before they change anything.\n\
Returns `#{ node, scope, dir, control_plane, files, packages, etcd_snapshot, observed }`.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive("backup", &["node: Node", "scope: &str", "Map"], BACKUP_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, scope: &str| -> RhaiResult<Map> {
            let position = call.call_position();
            let scope = Scope::parse(scope).ok_or_else(|| {
                raise(
                    position,
                    ctx.failure(
                        "backup",
                        Kind::Input,
                        format!(
                            "backup: scope must be \"node\" or \"control-plane\", got \"{scope}\""
                        ),
                    ),
                )
            })?;
            backup(&ctx, &call, &node, scope)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "restore_plan",
        &["node: Node", "run: &str", "Map"],
        "What restoring `node` to the state run `run` recorded before changing it would put back,\n\
         from that run's journal (its backups of the node) and the node as it is now (the\n\
         copies' and the live files' hashes, the installed packages): `#{ run, node,\n\
         control_plane, files: [#{ path, why }], packages: [#{ name, now, before }], appeared,\n\
         extra_manifests, added, damaged, unchanged, kubelet_version, text }`. `damaged` lists\n\
         backup copies that are gone or changed since: nothing can be restored from those.\n\
         Reads only; runs in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, run: &str| -> RhaiResult<Map> {
            let state = recorded_state(&ctx, &call, &node, run)?;
            let plan = check(&ctx, &call, &node, &state)?;
            Ok(plan_map(run, &state, &plan))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "restore_files",
        &["node: Node", "run: &str", "Map"],
        "Puts back on `node` every file run `run` backed up that differs now or is gone, from the\n\
         copies on the node: each copy's SHA-256 is checked against the journal first (nothing is\n\
         written if one changed), then each file is copied next to its place and moved over it,\n\
         with the copy's mode and owner. Files that did not exist before the run are moved aside\n\
         (`PATH.krun-moved`), not deleted. Returns `#{ restored: [paths], moved: [paths],\n\
         observed }` (`observed` false in a dry-run, where it is recorded, not done).",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, run: &str| -> RhaiResult<Map> {
            let state = recorded_state(&ctx, &call, &node, run)?;
            let plan = check(&ctx, &call, &node, &state)?;
            refuse_damaged(&ctx, call.call_position(), &node, run, &plan)?;
            let mut result = Map::new();
            let paths = |items: Vec<String>| -> Dynamic {
                Dynamic::from_array(items.into_iter().map(Dynamic::from).collect())
            };
            result.insert(
                "restored".into(),
                paths(plan.files.iter().map(|f| f.path.clone()).collect()),
            );
            result.insert("moved".into(), paths(plan.appeared.clone()));
            if plan.files.is_empty() && plan.appeared.is_empty() {
                result.insert("observed".into(), true.into());
                return Ok(result);
            }
            let command = domain::restore_command(&plan);
            let shown = format!(
                "put back {} file(s) on {} from the backup of run {run}{}: {}",
                plan.files.len(),
                node.0.name,
                if plan.appeared.is_empty() {
                    String::new()
                } else {
                    format!(", move aside {}", plan.appeared.len())
                },
                plan.files
                    .iter()
                    .map(|f| f.path.as_str())
                    .chain(plan.appeared.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let outcome = ctx.step_rechecked(
                &call,
                "restore_files",
                &node,
                Access::Change,
                shown,
                exec(&node, command.clone()),
                Recheck::Rerun,
            )?;
            if outcome.exit_code != 0 {
                return Err(ctx.command_failed(
                    call.call_position(),
                    "restore_files",
                    &node,
                    "restore_files",
                    &outcome,
                ));
            }
            result.insert("observed".into(), outcome.observed.into());
            Ok(result)
        },
    );
}

fn backup(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    scope: Scope,
) -> RhaiResult<Map> {
    let name = node.0.name.clone();
    if let Some(earlier) = ctx
        .host
        .backups
        .taken
        .lock()
        .expect("backups lock")
        .get(&name)
        .and_then(|taken| taken.iter().find(|(s, _)| *s >= scope))
    {
        return Ok(earlier.1.clone());
    }
    let run_id = run_id(ctx);
    let dir = domain::backup_dir(&run_id, scope);
    let manager = manager(ctx, call, node)?;
    let (shown, command) = match manager {
        Some(manager) => {
            let command = domain::backup_command(&dir, scope, manager);
            (
                format!(
                    "back up {} of {name} to {dir} (listing and SHA-256 of each file, package versions)",
                    what(scope)
                ),
                command,
            )
        }
        None => {
            let shown = domain::backup_shown_unobserved(&dir, scope);
            (shown.clone(), shown)
        }
    };
    let mut step = ctx.new_step(call, "backup", node, Access::Change);
    step.recheck = Recheck::Rerun;
    step.quiet_output = true;
    let outcome = ctx.perform_step(call, step, shown, exec(node, command.clone()))?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(ctx.command_failed(call.call_position(), "backup", node, &command, &outcome));
    }
    let record = outcome
        .observed
        .then(|| BackupRecord::parse(&name, &outcome.stdout))
        .flatten();
    if outcome.observed && record.is_none() {
        let failure = ctx.failure(
            "backup",
            Kind::Runtime,
            format!("the backup of {name} printed no listing; nothing was changed after it"),
        );
        return Err(raise(call.call_position(), failure));
    }
    let control_plane = match &record {
        Some(record) => record.control_plane,
        None => node.0.roles.iter().any(|r| r == "control-plane"),
    };
    let mut snapshot = Dynamic::UNIT;
    if scope == Scope::ControlPlane && control_plane {
        snapshot = etcd_snapshot(ctx, call, &name, &run_id)?;
    }

    let mut map = Map::new();
    map.insert("node".into(), name.clone().into());
    map.insert("scope".into(), scope.name().into());
    map.insert("dir".into(), dir.clone().into());
    map.insert("control_plane".into(), control_plane.into());
    map.insert("observed".into(), outcome.observed.into());
    map.insert("etcd_snapshot".into(), snapshot.clone());
    match &record {
        Some(record) => {
            map.insert("files".into(), (record.files.len() as i64).into());
            let packages: Map = record
                .packages
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.clone().into()))
                .collect();
            map.insert("packages".into(), packages.into());
            let etcd = if snapshot.is_unit() {
                String::new()
            } else {
                format!("; etcd snapshot {snapshot}")
            };
            tracing::info!(
                target: "krun::playbook",
                "[{name}] backup ({}): {} files in {} on {name}{etcd}",
                scope.name(),
                record.files.len(),
                record.dir
            );
        }
        None => {
            map.insert("files".into(), Dynamic::UNIT);
            map.insert("packages".into(), Map::new().into());
        }
    }
    ctx.host
        .backups
        .taken
        .lock()
        .expect("backups lock")
        .entry(name)
        .or_default()
        .push((scope, map.clone()));
    Ok(map)
}

fn what(scope: Scope) -> &'static str {
    match scope {
        Scope::Node => "kubelet and runtime configuration, package repositories",
        Scope::ControlPlane => {
            "/etc/kubernetes, kubelet and runtime configuration, package repositories"
        }
    }
}

/// The etcd snapshot of a control-plane backup, saved beside the run's journal. With an
/// `[etcd]` section it must succeed; without one, etcd found through the cluster may simply
/// not be reachable from here, which is a warning.
fn etcd_snapshot(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &str,
    run_id: &str,
) -> RhaiResult<Dynamic> {
    let path = match state_dir(ctx) {
        Some(state) => state
            .join("runs")
            .join(run_id)
            .join(format!("etcd-{node}.db")),
        None => PathBuf::from(format!("etcd-{node}-{run_id}.db")),
    };
    if ctx.host.inventory.etcd.is_none() {
        let members = EtcdCall::Members;
        let read = ctx.step_on(
            call,
            "etcd_members",
            "etcd",
            Access::Read,
            members.describe(),
            Effect::call(members),
        );
        match read {
            Ok(outcome) if outcome.observed => {}
            Ok(_) => {}
            Err(error) => {
                let why = super::step_message(&error).unwrap_or_else(|| error.to_string());
                tracing::warn!(
                    "[{node}] backup: NO etcd snapshot: the inventory has no [etcd] section and etcd \
                     could not be reached through the cluster ({}); a failed control-plane upgrade \
                     then has no etcd to go back to",
                    why.lines().next().unwrap_or_default()
                );
                return Ok(Dynamic::UNIT);
            }
        }
    }
    let snapshot = EtcdCall::Snapshot { path: path.clone() };
    let outcome = ctx.step_on(
        call,
        "etcd_snapshot",
        "etcd",
        Access::Change,
        snapshot.describe(),
        Effect::call(snapshot),
    )?;
    Ok(if outcome.observed {
        Dynamic::from(path.display().to_string())
    } else {
        Dynamic::UNIT
    })
}

/// The state directory of this command's journal.
fn state_dir(ctx: &RunContext) -> Option<PathBuf> {
    let journal = ctx.host.effects.recorder().journal()?;
    Some(journal.dir().parent()?.parent()?.to_path_buf())
}

/// The run id backups are named after: the first run of a chain of resumes, so that a
/// resumed run's backup step is the same step as the one it replays.
fn run_id(ctx: &RunContext) -> String {
    match (ctx.host.effects.recorder().journal(), state_dir(ctx)) {
        (Some(journal), Some(state)) => JournalView::first_of_chain(&state, journal.id()),
        _ => format!(
            "{}-unjournaled",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ),
    }
}

/// What run `run` recorded of `node` before changing it.
fn recorded_state(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    run: &str,
) -> RhaiResult<NodeState> {
    let position = call.call_position();
    let input = |message: String| raise(position, ctx.failure("restore", Kind::Input, message));
    let state = state_dir(ctx).ok_or_else(|| {
        input("no state directory: this command has no journal to find run journals beside".into())
    })?;
    let view = JournalView::load(&state, run).map_err(|e| input(e.message))?;
    view.node_state(&node.0.name).ok_or_else(|| {
        let nodes: Vec<String> = view.backups().into_iter().map(|b| b.node).collect();
        input(format!(
            "run {run} backed nothing up on {}{}; `krun runs show {run}` lists its backups",
            node.0.name,
            if nodes.is_empty() {
                String::new()
            } else {
                format!(" (it backed up {})", nodes.join(", "))
            }
        ))
    })
}

/// Compares the node with `state` (a read).
fn check(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    state: &NodeState,
) -> RhaiResult<RestorePlan> {
    let manager = manager(ctx, call, node)?;
    let command = domain::check_command(state, manager);
    let shown = format!(
        "compare {} backed-up files and the package versions of {} with its backup in {}",
        state.files.len(),
        node.0.name,
        state.dirs.join(", ")
    );
    let mut step = ctx.new_step(call, "restore_check", node, Access::Read);
    step.quiet_output = true;
    let outcome = ctx.perform_step(call, step, shown, exec(node, command.clone()))?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(ctx.command_failed(
            call.call_position(),
            "restore_check",
            node,
            &command,
            &outcome,
        ));
    }
    Ok(RestorePlan::from_check(state, &outcome.stdout))
}

fn refuse_damaged(
    ctx: &RunContext,
    position: Position,
    node: &Node,
    run: &str,
    plan: &RestorePlan,
) -> RhaiResult<()> {
    if plan.damaged.is_empty() {
        return Ok(());
    }
    let message = format!(
        "not restoring {}: the backup of run {run} cannot be trusted, these copies are gone or changed since it was taken:\n  {}",
        node.0.name,
        plan.damaged.join("\n  ")
    );
    Err(raise(
        position,
        ctx.failure("restore_files", Kind::Refused, message),
    ))
}

fn plan_map(run: &str, state: &NodeState, plan: &RestorePlan) -> Map {
    let strings = |items: &[String]| -> Dynamic {
        Dynamic::from_array(items.iter().cloned().map(Dynamic::from).collect())
    };
    let mut map = Map::new();
    map.insert("run".into(), run.into());
    map.insert("node".into(), plan.node.clone().into());
    map.insert("control_plane".into(), state.control_plane.into());
    let files: Array = plan
        .files
        .iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("path".into(), f.path.clone().into());
            m.insert("why".into(), f.why.into());
            m.into()
        })
        .collect();
    map.insert("files".into(), files.into());
    let packages: Array = plan
        .packages
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("name".into(), p.name.clone().into());
            m.insert("now".into(), p.now.clone().into());
            m.insert("before".into(), p.before.clone().into());
            m.into()
        })
        .collect();
    map.insert("packages".into(), packages.into());
    map.insert("appeared".into(), strings(&plan.appeared));
    map.insert("extra_manifests".into(), strings(&plan.extra_manifests));
    let added: Vec<String> = plan.added.iter().map(|(n, v)| format!("{n} {v}")).collect();
    map.insert("added".into(), strings(&added));
    map.insert("damaged".into(), strings(&plan.damaged));
    map.insert("unchanged".into(), (plan.unchanged.len() as i64).into());
    map.insert("held".into(), strings(&state.held));
    let kubelet = state
        .packages
        .get("kubelet")
        .or_else(|| state.packages.get("kubernetes"))
        .and_then(|v| crate::versions::KubeVersion::parse(v))
        .map_or_else(String::new, |v| v.to_string());
    map.insert("kubelet_version".into(), kubelet.into());
    map.insert(
        "text".into(),
        format!(
            "restoring {} to before run {run} puts back:\n{}",
            plan.node,
            plan.describe()
        )
        .into(),
    );
    map
}
