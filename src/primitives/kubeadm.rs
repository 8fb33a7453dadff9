//! `kubeadm_upgrade_apply` and `kubeadm_upgrade_node`, guarded by the version-skew policy
//! (`crate::versions::skew`), and the kubelet guard `pkg_install` consults.
//!
//! Guards judge against the cluster as observed plus what this command already did: a recorded
//! `kubeadm upgrade apply` advances the planned control-plane version, so a dry-run of several
//! hops checks each hop against the one before it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, Position};

use super::{
    RhaiResult, RunContext, check_options, duration_value, option, outcome_map, primitive, raise,
};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::kube::Call as KubeCall;
use crate::primitives::node::Node;
use crate::quote::join;
use crate::versions::KubeVersion;
use crate::versions::skew::{self, KubeletSkew};

const APPLY_DOC: &str = "Runs `kubeadm upgrade apply -y v<version>` on `node` (the first control-plane node), after\n\
checking the cluster: `version` must be at most one minor above the current control plane, not\n\
a downgrade, and leave no other kube-apiserver (HA) more than one minor behind, else the step\n\
is refused (exit 3) naming the minors to go through or the nodes to upgrade first. Kubelets\n\
that would fall outside the supported version skew after the hop (older than 3 minors from\n\
1.28 on, 2 before) are a warning, or a refusal with `--strict-skew`. `opts`: `etcd_upgrade`\n\
(bool), `certificate_renewal` (bool), `extra_args` (array of words), `timeout` (\"30m\"),\n\
`allow_skew: true` (override the skew guards; logged as a warning in the plan and journal).\n\
kubeadm itself refuses while kubelets are more than one minor behind the target (three from\n\
1.29): that is refused here before kubeadm runs, naming the nodes to upgrade first;\n\
`force: true` passes kubeadm's `--force` then (and only then), logged as a warning.\n\
`check_only: true` runs the guards only (before anything changes) and returns\n\
`#{ from, version, warnings }`.\n\
In a dry-run the apply is recorded and later guards of the command judge against `version`;\n\
offline there is no cluster to check, which the plan says (`--rehearse` gives it one).\n\
Returns `#{ from, version, warnings, code, stdout, stderr, ok, observed }`.";

const NODE_DOC: &str = "Runs `kubeadm upgrade node` on `node` (further control-plane nodes and workers: upgrades\n\
the local control plane and kubelet configuration to the installed kubeadm's version).\n\
`opts`: `config_only: true` only rewrites the kubelet configuration from the cluster:\n\
`kubeadm upgrade node phase kubelet-config` (kubeadm 1.15 and later); with `kubelet_version`\n\
also given it is the old form `kubeadm upgrade node config --kubelet-version v<version>`\n\
(kubeadm 1.14 and earlier, e.g. 1.12 on Arch Linux ARM). `extra_args` (array of words),\n\
`timeout` (\"30m\"). Returns `#{ code, stdout, stderr, ok, observed }`.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "kubeadm_upgrade_apply",
        &["node: Node", "version: &str", "opts: Map", "Map"],
        APPLY_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, version: &str, opts: Map| -> RhaiResult<Map> {
            upgrade_apply(&ctx, &call, &node, version, &opts)
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "kubeadm_upgrade_apply",
        &["node: Node", "version: &str", "Map"],
        APPLY_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, version: &str| -> RhaiResult<Map> {
            upgrade_apply(&ctx, &call, &node, version, &Map::new())
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "kubeadm_upgrade_node",
        &["node: Node", "opts: Map", "Map"],
        NODE_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, opts: Map| -> RhaiResult<Map> {
            upgrade_node(&ctx, &call, &node, &opts)
        },
    );
    let ctx = Arc::clone(context);
    primitive("kubeadm_upgrade_node", &["node: Node", "Map"], NODE_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node| -> RhaiResult<Map> {
            upgrade_node(&ctx, &call, &node, &Map::new())
        },
    );
}

/// Rejects options the primitive does not know, suggesting the closest.
fn extra_args(
    ctx: &RunContext,
    opts: &Map,
    action: &str,
    position: Position,
) -> RhaiResult<Vec<String>> {
    Ok(option::<Array>(opts, "extra_args", ctx, action, position)?
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect())
}

fn timeout(
    ctx: &RunContext,
    opts: &Map,
    action: &str,
    position: Position,
) -> RhaiResult<std::time::Duration> {
    match opts.get("timeout") {
        None => Ok(ctx.host.command_timeout),
        Some(value) => duration_value(value).ok_or_else(|| {
            raise(
                position,
                ctx.failure(
                    action,
                    Kind::Input,
                    format!(
                        "{action}: option `timeout` must be like \"30m\" or seconds, got {value}"
                    ),
                ),
            )
        }),
    }
}

/// The control plane's and the kubelets' versions as the cluster reports them; `None` when
/// the cluster was not observed (an offline dry-run).
struct Observed {
    apiserver: Option<KubeVersion>,
    kubelets: BTreeMap<String, KubeVersion>,
    /// kube-apiserver static pods' versions by node.
    apiservers: BTreeMap<String, KubeVersion>,
}

fn read_server_version(
    ctx: &RunContext,
    call: &NativeCallContext,
) -> RhaiResult<Option<KubeVersion>> {
    let call_ = KubeCall::ServerVersion;
    let outcome = ctx.step_on(
        call,
        "skew_check",
        "kubernetes",
        Access::Read,
        call_.describe(),
        Effect::call(call_),
    )?;
    if !outcome.observed {
        return Ok(None);
    }
    let text = outcome.data["git_version"].as_str().unwrap_or_default();
    KubeVersion::parse(text).map(Some).ok_or_else(|| {
        raise(
            call.call_position(),
            ctx.failure(
                "skew_check",
                Kind::Runtime,
                format!("the API server reports version `{text}`, which krun cannot read"),
            ),
        )
    })
}

fn read_cluster(ctx: &RunContext, call: &NativeCallContext) -> RhaiResult<Observed> {
    if !ctx.host.cluster {
        return Ok(Observed {
            apiserver: None,
            kubelets: BTreeMap::new(),
            apiservers: BTreeMap::new(),
        });
    }
    let apiserver = read_server_version(ctx, call)?;
    let mut kubelets = BTreeMap::new();
    let mut apiservers = BTreeMap::new();
    if apiserver.is_some() {
        let read = |request: KubeCall| {
            ctx.step_on(
                call,
                "skew_check",
                "kubernetes",
                Access::Read,
                request.describe(),
                Effect::call(request),
            )
        };
        let nodes = read(KubeCall::Nodes)?;
        for node in nodes.data.as_array().into_iter().flatten() {
            let name = node["name"].as_str().unwrap_or_default();
            let version = node["kubelet_version"].as_str().unwrap_or_default();
            if let Some(version) = KubeVersion::parse(version) {
                kubelets.insert(name.to_owned(), version);
            }
        }
        let pods = read(KubeCall::ApiserverVersions)?;
        for pod in pods.data.as_array().into_iter().flatten() {
            let node = pod["node"].as_str().unwrap_or_default();
            let version = pod["version"].as_str().unwrap_or_default();
            if let Some(version) = KubeVersion::parse(version) {
                apiservers.insert(node.to_owned(), version);
            }
        }
        ctx.host
            .skew
            .lock()
            .expect("skew lock")
            .apiserver_nodes
            .extend(apiservers.keys().cloned());
    }
    Ok(Observed {
        apiserver,
        kubelets,
        apiservers,
    })
}

fn refuse(
    ctx: &RunContext,
    position: Position,
    action: &str,
    message: String,
) -> Box<rhai::EvalAltResult> {
    raise(position, ctx.failure(action, Kind::Refused, message))
}

fn upgrade_apply(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    version: &str,
    opts: &Map,
) -> RhaiResult<Map> {
    const ACTION: &str = "kubeadm_upgrade_apply";
    let position = call.call_position();
    check_options(
        ctx,
        opts,
        &[
            "etcd_upgrade",
            "certificate_renewal",
            "extra_args",
            "allow_skew",
            "force",
            "check_only",
            "timeout",
        ],
        ACTION,
        position,
    )?;
    // "1.21.x" only comes from a plan that could not observe the available versions.
    let placeholder = version.ends_with(".x") && ctx.saw_unobserved();
    let target = KubeVersion::parse(version)
        .filter(|v| v.patch.is_some() || placeholder)
        .ok_or_else(|| {
            raise(
                position,
                ctx.failure(
                    ACTION,
                    Kind::Input,
                    format!("{ACTION}: `{version}` is not a full Kubernetes version like 1.21.14"),
                ),
            )
        })?;
    let allow_skew = option::<bool>(opts, "allow_skew", ctx, ACTION, position)?.unwrap_or(false);
    let force = option::<bool>(opts, "force", ctx, ACTION, position)?.unwrap_or(false);
    let check_only = option::<bool>(opts, "check_only", ctx, ACTION, position)?.unwrap_or(false);
    let etcd_upgrade = option::<bool>(opts, "etcd_upgrade", ctx, ACTION, position)?;
    let certificate_renewal = option::<bool>(opts, "certificate_renewal", ctx, ACTION, position)?;
    let extra = extra_args(ctx, opts, ACTION, position)?;
    let timeout = timeout(ctx, opts, ACTION, position)?;

    let observed = read_cluster(ctx, call)?;
    let planned = ctx.host.skew.lock().expect("skew lock").clone();
    // Set when kubeadm's kubelet rule is bypassed: only then is --force passed.
    let mut forced = false;
    let current = planned.control_plane(observed.apiserver);
    let mut warnings = Vec::new();
    match current {
        None => warnings.push(
            "version skew not checked: the cluster was not observed (offline, or no \
             kubeconfig); --rehearse checks it against a snapshot"
                .to_owned(),
        ),
        Some(current) => {
            if let Err(refusal) = skew::check_apply(current, target) {
                if allow_skew && refusal.overridable() {
                    warnings.push(format!("skew guard overridden (allow_skew): {refusal}"));
                } else {
                    let mut message = refusal.to_string();
                    if refusal.overridable() {
                        message.push_str(" (override: allow_skew: true)");
                    }
                    return Err(refuse(ctx, position, ACTION, message));
                }
            }
            // HA: the other kube-apiservers stay where they are during this hop.
            let mut apiservers = planned.apiservers(observed.apiservers);
            apiservers.remove(&node.0.name);
            let behind = skew::apiservers_left_behind(&apiservers, target);
            if !behind.is_empty() {
                let list: Vec<String> = behind
                    .iter()
                    .map(|(node, version)| format!("{node} at {version}"))
                    .collect();
                let what = format!(
                    "refusing kubeadm upgrade apply {current} -> {target}: kube-apiserver on {} would be \
                     more than one minor behind (HA apiservers stay within one minor); upgrade those \
                     control-plane nodes first (kubeadm_upgrade_node)",
                    list.join(", ")
                );
                if allow_skew {
                    warnings.push(format!("skew guard overridden (allow_skew): {what}"));
                } else {
                    return Err(refuse(
                        ctx,
                        position,
                        ACTION,
                        format!("{what} (override: allow_skew: true)"),
                    ));
                }
            }
            let kubelets = planned.kubelets(observed.kubelets);
            // kubeadm's own rule, stricter than the supported skew: it would refuse the apply
            // after kubeadm was installed and plan ran; say so before, with the way out.
            let too_old = skew::kubelets_kubeadm_refuses(&kubelets, target);
            if !too_old.is_empty() {
                let list: Vec<String> = too_old
                    .iter()
                    .map(|(node, version)| format!("{node} at {version}"))
                    .collect();
                let lag = skew::kubeadm_kubelet_lag(target);
                let floor = KubeVersion::new(target.major, target.minor.saturating_sub(lag), 0);
                let what = format!(
                    "kubeadm {target} refuses `upgrade apply` while kubelets are more than {lag} minor(s) \
                     behind it: {}",
                    list.join(", ")
                );
                if force {
                    forced = true;
                    warnings.push(format!("{what}; passing --force as asked (force: true)"));
                } else {
                    return Err(refuse(
                        ctx,
                        position,
                        ACTION,
                        format!(
                            "{what}; upgrade those nodes to {}.{} first (worker.rhai), or pass \
                             force: true to run kubeadm with --force",
                            floor.major, floor.minor
                        ),
                    ));
                }
            }
            let outside = skew::kubelets_outside_skew(&kubelets, target);
            if !outside.is_empty() {
                let list = skew::group_by_problem(&outside);
                let what = format!(
                    "after kubeadm upgrade apply {target}, kubelets outside the supported skew: {}",
                    list.join("; ")
                );
                if ctx.host.strict_skew && !allow_skew {
                    return Err(refuse(
                        ctx,
                        position,
                        ACTION,
                        format!(
                            "refusing kubeadm upgrade apply {current} -> {target} (--strict-skew): {what}; \
                             upgrade those kubelets first (override: allow_skew: true)"
                        ),
                    ));
                }
                if allow_skew && ctx.host.strict_skew {
                    warnings.push(format!("--strict-skew overridden (allow_skew): {what}"));
                } else {
                    warnings.push(what);
                }
            }
        }
    }

    if check_only {
        let mut map = Map::new();
        map.insert(
            "from".into(),
            current.map_or_else(String::new, |c| c.to_string()).into(),
        );
        map.insert("version".into(), target.to_string().into());
        map.insert(
            "warnings".into(),
            Dynamic::from_array(warnings.into_iter().map(Dynamic::from).collect()),
        );
        return Ok(map);
    }
    let mut words = vec![
        "kubeadm".to_owned(),
        "upgrade".to_owned(),
        "apply".to_owned(),
        "-y".to_owned(),
        if placeholder {
            format!("v{}", version.trim_start_matches('v'))
        } else {
            format!("v{target}")
        },
    ];
    if let Some(etcd) = etcd_upgrade {
        words.push(format!("--etcd-upgrade={etcd}"));
    }
    if let Some(renew) = certificate_renewal {
        words.push(format!("--certificate-renewal={renew}"));
    }
    if forced {
        words.push("--force".to_owned());
    }
    words.extend(extra);
    let command = join(&words);
    for warning in &warnings {
        tracing::warn!("[{}] {ACTION}: {warning}", node.0.name);
    }
    let outcome = ctx.run_change(
        call,
        ACTION,
        node,
        crate::journal::view::with_warnings(&command, &warnings),
        &command,
        timeout,
    )?;
    {
        let mut planned = ctx.host.skew.lock().expect("skew lock");
        planned.control_plane = Some(current.map_or(target, |c| c.max(target)));
        planned.apiservers.insert(node.0.name.clone(), target);
        planned.apiserver_nodes.insert(node.0.name.clone());
    }
    let mut map = outcome_map(&outcome);
    map.insert(
        "from".into(),
        current.map_or_else(String::new, |c| c.to_string()).into(),
    );
    map.insert("version".into(), target.to_string().into());
    map.insert(
        "warnings".into(),
        Dynamic::from_array(warnings.into_iter().map(Dynamic::from).collect()),
    );
    Ok(map)
}

fn upgrade_node(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    opts: &Map,
) -> RhaiResult<Map> {
    const ACTION: &str = "kubeadm_upgrade_node";
    let position = call.call_position();
    check_options(
        ctx,
        opts,
        &["config_only", "kubelet_version", "extra_args", "timeout"],
        ACTION,
        position,
    )?;
    let config_only = option::<bool>(opts, "config_only", ctx, ACTION, position)?.unwrap_or(false);
    let kubelet_version =
        option::<rhai::ImmutableString>(opts, "kubelet_version", ctx, ACTION, position)?;
    let mut words: Vec<String> = ["kubeadm", "upgrade", "node"].map(str::to_owned).to_vec();
    match (config_only, kubelet_version) {
        (false, None) => {}
        (true, None) => words.extend(["phase".to_owned(), "kubelet-config".to_owned()]),
        (true, Some(version)) => {
            let parsed = KubeVersion::parse(&version)
                .filter(|v| v.patch.is_some())
                .ok_or_else(|| {
                    raise(
                        position,
                        ctx.failure(
                            ACTION,
                            Kind::Input,
                            format!(
                                "{ACTION}: kubelet_version `{version}` is not a version like 1.12.1"
                            ),
                        ),
                    )
                })?;
            words.extend([
                "config".to_owned(),
                "--kubelet-version".to_owned(),
                format!("v{parsed}"),
            ]);
        }
        (false, Some(_)) => {
            return Err(raise(
                position,
                ctx.failure(
                    ACTION,
                    Kind::Input,
                    format!("{ACTION}: kubelet_version is only used with config_only: true (kubeadm upgrade node config)"),
                ),
            ));
        }
    }
    words.extend(extra_args(ctx, opts, ACTION, position)?);
    let timeout = timeout(ctx, opts, ACTION, position)?;
    let command = join(&words);
    let outcome = ctx.run_change(call, ACTION, node, command.clone(), &command, timeout)?;
    // kubeadm upgrade node brings a control-plane node's apiserver to the cluster's version.
    {
        let mut planned = ctx.host.skew.lock().expect("skew lock");
        if let Some(version) = planned.control_plane
            && !config_only
            && planned.apiserver_nodes.contains(&node.0.name)
        {
            planned.apiservers.insert(node.0.name.clone(), version);
        }
    }
    Ok(outcome_map(&outcome))
}

/// The guard `pkg_install` consults: installing kubelet newer than the (planned) control plane
/// is refused (exit 3) unless `allow_skew`; too old a kubelet warns, or is refused with
/// `--strict-skew`. Records the kubelet version for later guards of the command. Returns the
/// warnings to show with the step.
pub(super) fn kubelet_guard(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    name: &str,
    version: &str,
    allow_skew: bool,
) -> RhaiResult<Vec<String>> {
    let Some(kubelet) = skew::kubelet_package_version(name, version) else {
        return Ok(Vec::new());
    };
    let position = call.call_position();
    // A node-only run (no cluster configured) still installs, saying the guard could not check.
    if !ctx.host.cluster
        && ctx
            .host
            .skew
            .lock()
            .expect("skew lock")
            .control_plane
            .is_none()
    {
        tracing::warn!(
            "[{}] pkg_install kubelet {kubelet}: version skew not checked: no cluster to ask \
             (no kubeconfig)",
            node.0.name
        );
        ctx.host
            .skew
            .lock()
            .expect("skew lock")
            .kubelets
            .insert(node.0.name.clone(), kubelet);
        return Ok(Vec::new());
    }
    let read = if ctx.host.cluster {
        read_server_version(ctx, call)
    } else {
        Ok(None)
    };
    let (observed, unreadable) = match read {
        Ok(version) => (version, None),
        Err(error) => match step_failure(&error) {
            Some(failure) if matches!(failure.kind, Kind::Runtime | Kind::Input) => {
                (None, Some(failure.message))
            }
            _ => return Err(error),
        },
    };
    let apiserver = ctx
        .host
        .skew
        .lock()
        .expect("skew lock")
        .control_plane(observed);
    let warning = match apiserver {
        None => Some(match unreadable {
            Some(error) => format!(
                "version skew not checked: the control plane's version could not be read ({})",
                error.lines().next().unwrap_or_default()
            ),
            None => "version skew not checked: the control plane's version was not observed \
                     (offline); --rehearse checks it against a snapshot"
                .to_owned(),
        }),
        Some(apiserver) => match skew::kubelet_skew(kubelet, apiserver) {
            None => None,
            Some(problem) if allow_skew => {
                Some(format!("skew guard overridden (allow_skew): {problem}"))
            }
            Some(problem @ KubeletSkew::Newer { .. }) => {
                return Err(refuse(
                    ctx,
                    position,
                    "pkg_install",
                    format!(
                        "refusing to install kubelet {kubelet} on {}: {problem}; upgrade the control plane first (kubeadm_upgrade_apply), or pass allow_skew: true",
                        node.0.name
                    ),
                ));
            }
            Some(problem) if ctx.host.strict_skew => {
                return Err(refuse(
                    ctx,
                    position,
                    "pkg_install",
                    format!(
                        "refusing to install kubelet {kubelet} on {} (--strict-skew): {problem}",
                        node.0.name
                    ),
                ));
            }
            Some(problem) => Some(problem.to_string()),
        },
    };
    if let Some(warning) = &warning {
        tracing::warn!("[{}] pkg_install kubelet: {warning}", node.0.name);
    }
    ctx.host
        .skew
        .lock()
        .expect("skew lock")
        .kubelets
        .insert(node.0.name.clone(), kubelet);
    Ok(warning.into_iter().collect())
}

/// The step failure a Rhai error carries, if it is one.
fn step_failure(error: &rhai::EvalAltResult) -> Option<crate::effects::StepFailure> {
    match error {
        rhai::EvalAltResult::ErrorRuntime(value, _) => {
            value.clone().try_cast::<crate::effects::StepFailure>()
        }
        _ => None,
    }
}
