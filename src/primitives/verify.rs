//! `verify_baseline` and `verify`: the cluster as a run found it, and whether it is healthy after
//! a hop (the judgement is [`crate::kube::health`]'s; the service reads until it passes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, check_options, duration_value, option, primitive, raise};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::etcd::Call as EtcdCall;
use crate::journal::view::JournalView;
use crate::kube::Call as KubeCall;
use crate::kube::call::VerifyRequest;
use crate::kube::health::{Applied, Baseline, EtcdState, Expectations, Verification};
use crate::primitives::node::Node;

const TARGET: &str = "kubernetes";

/// What this command's verifications compare with: the baseline, and what the run applied.
#[derive(Debug, Default)]
pub struct VerifyState {
    pub(super) baseline: Mutex<Option<Baseline>>,
    pub(super) applied: Mutex<Vec<Applied>>,
}

const BASELINE_DOC: &str = "Reads the cluster as the run finds it, once per command: each workload's ready replicas,\n\
the pods already failing (CrashLoopBackOff, ImagePullBackOff), the budgets already short, every\n\
node's readiness and kubelet, etcd's voting members. `verify` compares each hop with it. Call it\n\
before the first change; the bundled SOPs do. Runs in a dry-run. Returns\n\
`#{ workloads, failing, nodes, server_version }` (counts).";

const VERIFY_DOC: &str = "Verifies the cluster after a hop and fails (exit 1) with a before/after report unless it is\n\
healthy: every node Ready and the hop's nodes at `version` (kubelet) and schedulable, the\n\
control plane at least at `version`, kube-system rolled out and CoreDNS and kube-proxy at the\n\
versions kubeadm deploys for `version` (from 1.28 only once every control-plane node runs it:\n\
kubeadm moves them with the last one), what `kube_apply` applied rolled out with its images,\n\
every apiserver answering /readyz on its own address and through the address in use (the load\n\
balancer), etcd healthy with all its voting members, and, against `verify_baseline`, no\n\
workload with fewer ready replicas than at the start, no pod newly in CrashLoopBackOff or\n\
ImagePullBackOff, no budget newly short. It reads until all that holds, for at most `timeout`.\n\
`opts`: `version` (required), `nodes` (names or Nodes that must be at `version`; default: this\n\
run's node, or every node in a cluster-level run), `addons` (false: skip CoreDNS/kube-proxy),\n\
`apiservers` ([urls]; default: kubeadm's annotation), `etcd` (false: skip), `timeout` (\"5m\"),\n\
`baseline` (a run id whose `verify_baseline` to compare with, when this command took none),\n\
`report` (write the report as an HTML page there), `allow_fail` (return instead of failing).\n\
In a dry-run the hop's changes were not made, so nothing is judged: `observed` is false.\n\
Returns `#{ ok, observed, text, checks: [#{ area, subject, status, before, after }] }`.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive("verify_baseline", &["Map"], BASELINE_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext| -> RhaiResult<Map> {
            let baseline = baseline(&ctx, &call)?;
            let mut map = Map::new();
            if let Some(b) = baseline {
                map.insert("workloads".into(), (b.workloads.len() as i64).into());
                map.insert("failing".into(), (b.failing.len() as i64).into());
                map.insert("nodes".into(), (b.nodes.len() as i64).into());
                map.insert("server_version".into(), b.server_version.into());
                map.insert("observed".into(), true.into());
            } else {
                map.insert("observed".into(), false.into());
            }
            Ok(map)
        },
    );

    let ctx = Arc::clone(context);
    primitive("verify", &["opts: Map", "Map"], VERIFY_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, opts: Map| -> RhaiResult<Map> { verify(&ctx, &call, &opts) },
    );
}

/// The command's baseline, taken now if it has none yet; `None` when the cluster was not
/// observed (offline).
fn baseline(ctx: &RunContext, call: &NativeCallContext) -> RhaiResult<Option<Baseline>> {
    if let Some(taken) = ctx
        .host
        .verify
        .baseline
        .lock()
        .expect("baseline lock")
        .clone()
    {
        return Ok(Some(taken));
    }
    let request = KubeCall::Baseline;
    let outcome = ctx.step_on(
        call,
        "verify_baseline",
        TARGET,
        Access::Read,
        request.describe(),
        Effect::call(request),
    )?;
    if !outcome.observed {
        return Ok(None);
    }
    let mut baseline: Baseline = serde_json::from_value(outcome.data).map_err(|e| {
        raise(
            call.call_position(),
            ctx.failure(
                "verify_baseline",
                Kind::Runtime,
                format!("the baseline could not be read back: {e}"),
            ),
        )
    })?;
    if let Some(etcd) = read_etcd(ctx, call, "verify_baseline")?
        && etcd.error.is_none()
        && etcd.skipped.is_none()
    {
        baseline.etcd_members = Some(etcd.members.iter().filter(|m| !m.1).count());
    }
    *ctx.host.verify.baseline.lock().expect("baseline lock") = Some(baseline.clone());
    Ok(Some(baseline))
}

/// etcd's members and health, for the verification; `None` when not asked for.
fn read_etcd(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
) -> RhaiResult<Option<EtcdState>> {
    let request = EtcdCall::View;
    let read = ctx.step_on(
        call,
        action,
        "etcd",
        Access::Read,
        request.describe(),
        Effect::call(request),
    );
    Ok(Some(match read {
        Ok(outcome) if outcome.observed => EtcdState::from_view(&outcome.data),
        Ok(_) => EtcdState {
            skipped: Some("etcd was not read (offline)".into()),
            ..EtcdState::default()
        },
        Err(error) => {
            let why = super::step_message(&error).unwrap_or_else(|| error.to_string());
            let why = why.lines().next().unwrap_or_default().to_owned();
            if ctx.host.inventory.etcd.is_some() {
                EtcdState {
                    error: Some(why),
                    ..EtcdState::default()
                }
            } else {
                EtcdState {
                    skipped: Some(format!(
                        "the inventory has no [etcd] section and the cluster's etcd did not answer ({why})"
                    )),
                    ..EtcdState::default()
                }
            }
        }
    }))
}

fn strings(
    ctx: &RunContext,
    opts: &Map,
    key: &str,
    position: rhai::Position,
) -> RhaiResult<Vec<String>> {
    match opts.get(key) {
        None => Ok(Vec::new()),
        Some(value) if value.is_unit() => Ok(Vec::new()),
        Some(value) if value.is_array() => Ok(value
            .clone()
            .cast::<Array>()
            .into_iter()
            .map(|item| match item.clone().try_cast::<Node>() {
                Some(node) => node.0.name.clone(),
                None => item.to_string(),
            })
            .collect()),
        Some(value) => match value.clone().try_cast::<Node>() {
            Some(node) => Ok(vec![node.0.name.clone()]),
            None if value.is_string() => Ok(vec![value.to_string()]),
            None => Err(raise(
                position,
                ctx.failure(
                    "verify",
                    Kind::Input,
                    format!(
                        "verify: option `{key}` must be an array of names, got {}",
                        value.type_name()
                    ),
                ),
            )),
        },
    }
}

fn verify(ctx: &RunContext, call: &NativeCallContext, opts: &Map) -> RhaiResult<Map> {
    const ACTION: &str = "verify";
    let position = call.call_position();
    check_options(
        ctx,
        opts,
        &[
            "version",
            "nodes",
            "addons",
            "apiservers",
            "etcd",
            "timeout",
            "baseline",
            "report",
            "allow_fail",
        ],
        ACTION,
        position,
    )?;
    let input = |message: String| raise(position, ctx.failure(ACTION, Kind::Input, message));
    let version = option::<rhai::ImmutableString>(opts, "version", ctx, ACTION, position)?
        .ok_or_else(|| {
            input(
                "verify: option `version` is required (the hop's version, e.g. \"1.21.14\")".into(),
            )
        })?;
    let version = version.trim_start_matches('v').to_owned();
    if crate::versions::KubeVersion::parse(&version).is_none() {
        return Err(input(format!(
            "verify: `{version}` is not a Kubernetes version like 1.21.14"
        )));
    }
    let mut nodes = strings(ctx, opts, "nodes", position)?;
    if !opts.contains_key("nodes")
        && let Some(node) = &ctx.node
    {
        nodes.push(node.0.name.clone());
    }
    let addons = option::<bool>(opts, "addons", ctx, ACTION, position)?.unwrap_or(true);
    let with_etcd = option::<bool>(opts, "etcd", ctx, ACTION, position)?.unwrap_or(true);
    let allow_fail = option::<bool>(opts, "allow_fail", ctx, ACTION, position)?.unwrap_or(false);
    let timeout = match opts.get("timeout") {
        None => Duration::from_secs(300),
        Some(value) => duration_value(value).ok_or_else(|| {
            input(format!(
                "verify: option `timeout` must be like \"5m\" or seconds, got {value}"
            ))
        })?,
    };
    let apiservers = strings(ctx, opts, "apiservers", position)?;

    let mut baseline = ctx
        .host
        .verify
        .baseline
        .lock()
        .expect("baseline lock")
        .clone();
    if baseline.is_none()
        && let Some(run) = option::<rhai::ImmutableString>(opts, "baseline", ctx, ACTION, position)?
    {
        baseline = Some(baseline_of_run(ctx, &run).map_err(input)?);
    }
    let etcd = if with_etcd {
        read_etcd(ctx, call, ACTION)?.unwrap_or_default()
    } else {
        EtcdState {
            skipped: Some("not asked for (etcd: false)".into()),
            ..EtcdState::default()
        }
    };
    let applied = ctx
        .host
        .verify
        .applied
        .lock()
        .expect("applied lock")
        .clone();
    let request = KubeCall::Verify(Box::new(VerifyRequest {
        expect: Expectations {
            version: version.clone(),
            nodes,
            addons,
            applied,
            versions_unjudged: ctx.recorded_changes().then(|| {
                "the node commands before it were recorded, not run (a rehearsal)".to_owned()
            }),
        },
        baseline,
        etcd,
        apiservers,
        timeout,
    }));
    let outcome = ctx.step_on(
        call,
        ACTION,
        TARGET,
        Access::Wait,
        request.describe(),
        Effect::call(request),
    )?;
    let mut map = Map::new();
    if !outcome.observed {
        let text = format!(
            "verification at {version}: not judged: a dry-run records it without waiting for what comes before it to be done"
        );
        tracing::info!(target: "krun::playbook", "{}{text}", prefix(ctx));
        map.insert("ok".into(), Dynamic::UNIT);
        map.insert("observed".into(), false.into());
        map.insert("text".into(), text.into());
        map.insert("checks".into(), Array::new().into());
        return Ok(map);
    }
    let verification: Verification = serde_json::from_value(outcome.data.clone()).map_err(|e| {
        raise(
            position,
            ctx.failure(
                ACTION,
                Kind::Runtime,
                format!("the verification could not be read back: {e}"),
            ),
        )
    })?;
    let text = verification.text();
    // A failure is shown once, as the run's error.
    // One log line per report line, each with its time and node.
    for line in text.trim_end().lines() {
        if verification.ok {
            tracing::info!(target: "krun::playbook", "{}{line}", prefix(ctx));
        } else if allow_fail {
            tracing::warn!(target: "krun::playbook", "{}{line}", prefix(ctx));
        }
    }
    if let Some(path) = option::<rhai::ImmutableString>(opts, "report", ctx, ACTION, position)? {
        write_report(&path, &verification)
            .map_err(|why| raise(position, ctx.failure(ACTION, Kind::Runtime, why)))?;
    }
    if !verification.ok && !allow_fail {
        let failure = ctx.failure(ACTION, Kind::Runtime, text.trim_end().to_owned());
        return Err(raise(position, failure));
    }
    map.insert("ok".into(), verification.ok.into());
    map.insert("observed".into(), true.into());
    map.insert("text".into(), text.into());
    map.insert(
        "checks".into(),
        rhai::serde::to_dynamic(&verification.checks)?,
    );
    Ok(map)
}

/// The baseline an earlier run took (its `verify_baseline` step).
fn baseline_of_run(ctx: &RunContext, run: &str) -> Result<Baseline, String> {
    let journal = ctx
        .host
        .effects
        .recorder()
        .journal()
        .ok_or("no state directory: this command has no journal to find run journals beside")?;
    let state = journal
        .dir()
        .parent()
        .and_then(|p| p.parent())
        .ok_or("the journal is not in a state directory")?;
    let view = JournalView::load(state, run).map_err(|e| e.message)?;
    view.runs
        .values()
        .flat_map(|r| &r.steps)
        .filter(|s| s.action == "verify_baseline" && s.node == TARGET)
        .find_map(|s| serde_json::from_value(s.done.as_ref()?["data"].clone()).ok())
        .ok_or_else(|| {
            format!("run {run} took no baseline (verify_baseline): nothing to compare with")
        })
}

/// Writes the verification as a self-contained HTML page on this machine.
fn write_report(path: &str, verification: &Verification) -> Result<(), String> {
    if !path.ends_with(".html") {
        return Err(format!("verify: report `{path}` must be an .html file"));
    }
    std::fs::write(
        path,
        crate::preflight::html::verification_page(verification),
    )
    .map_err(|e| format!("cannot write the verification report {path}: {e}"))
}

fn prefix(ctx: &RunContext) -> String {
    ctx.node
        .as_ref()
        .map_or_else(String::new, |n| format!("[{}] ", n.0.name))
}
