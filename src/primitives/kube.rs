//! Kubernetes primitives: cordon, drain, evict, uncordon, wait for Ready, and the reads around
//! them. Drains go through the Eviction API and respect PodDisruptionBudgets; bypassing them
//! (`disable_eviction`) is an explicit, loudly logged override.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, Map, NativeCallContext, Position};

use super::{RhaiResult, RunContext, check_options, duration_value, option, primitive, raise};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::kube::Call as KubeCall;
use crate::kube::{DrainFilters, DrainOptions, EvictionBypass};
use crate::primitives::node::Node;

const TARGET: &str = "kubernetes";

/// A primitive that takes one node: its name, its documentation, and the call it makes.
type NodePrimitive = (&'static str, &'static str, fn(String) -> KubeCall);

const DRAIN_DOC: &str = "Cordons `node` and evicts its pods through the Eviction API, like `kubectl drain`, waiting\n\
(by watch) until they are gone. `opts` mirror kubectl: `ignore_daemonsets`, `delete_emptydir_data`,\n\
`force` (pods without a controller), `grace_period` (seconds), `timeout` (\"10m\"), `pod_selector`,\n\
`skip_wait_for_delete_timeout`, `uncordon_on_failure` (default false), `disable_eviction`\n\
(plain DELETE that bypasses PodDisruptionBudgets: give a reason string; logged loudly),\n\
`keep_replica` (default true: a workload with a controller and no PodDisruptionBudget keeps a\n\
ready replica — its pods leave one at a time, across every drain of the run, each once the\n\
one before has a Ready replacement elsewhere; `false` evicts them all at once).\n\
If any pod is refused, nothing is evicted and the error lists every refused pod and the option\n\
that would allow it. Returns the report: evicted pods, skipped pods and why, and for every wait\n\
the budget that held it. In a dry-run: the same plan from the live pods, with a server-side\n\
dry-run eviction per pod saying whether it would be admitted now.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "server_version",
        &["Map"],
        "The API server's version: `#{ major, minor, git_version, … }`. Runs in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext| -> RhaiResult<Dynamic> {
            kube_step(
                &ctx,
                &call,
                "server_version",
                Access::Read,
                KubeCall::ServerVersion,
            )
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "pdbs",
        &["Array"],
        "Every PodDisruptionBudget with its status numbers. Runs in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext| -> RhaiResult<Dynamic> {
            kube_step(&ctx, &call, "pdbs", Access::Read, KubeCall::Pdbs)
        },
    );

    let ctx = Arc::clone(context);
    primitive("preflight", &["Array"], PREFLIGHT_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext| -> RhaiResult<Dynamic> {
            preflight(&ctx, &call, &Map::new())
        },
    );
    let ctx = Arc::clone(context);
    primitive("preflight", &["opts: Map", "Array"], PREFLIGHT_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
            preflight(&ctx, &call, &opts)
        },
    );

    let readers: [NodePrimitive; 2] = [
        (
            "node_info",
            "`#{ kubelet_version, kube_proxy_version, container_runtime, os_image, architecture,\n\
             conditions, unschedulable, taints, internal_ip, … }` of a node (a Node or its name).\n\
             Runs in a dry-run.",
            |node| KubeCall::NodeInfo { node },
        ),
        (
            "pods_on",
            "The pods on a node: `[#{ namespace, name, phase, owner, labels, images }]` (`images`: what\n\
             its init containers and containers run, each once). Runs in a dry-run.",
            |node| KubeCall::PodsOn { node },
        ),
    ];
    for (name, doc, make) in readers {
        let ctx = Arc::clone(context);
        primitive(name, &["node: Node | string", "Dynamic"], doc).register_into_engine(
            engine,
            move |call: NativeCallContext, node: Dynamic| -> RhaiResult<Dynamic> {
                let node = node_name(&ctx, &call, name, node)?;
                kube_step(&ctx, &call, name, Access::Read, make(node))
            },
        );
    }

    let writers: [NodePrimitive; 2] = [
        (
            "cordon",
            "Marks a node unschedulable; returns `#{ node, changed }` (false when it already was). Recorded in a dry-run.",
            |node| KubeCall::Cordon { node },
        ),
        (
            "uncordon",
            "Marks a node schedulable again; returns `#{ node, changed }`. Recorded in a dry-run.",
            |node| KubeCall::Uncordon { node },
        ),
    ];
    for (name, doc, make) in writers {
        let ctx = Arc::clone(context);
        primitive(name, &["node: Node | string", "Map"], doc).register_into_engine(
            engine,
            move |call: NativeCallContext, node: Dynamic| -> RhaiResult<Dynamic> {
                let node = node_name(&ctx, &call, name, node)?;
                kube_step(&ctx, &call, name, Access::Change, make(node))
            },
        );
    }

    let ctx = Arc::clone(context);
    primitive("drain", &["node: Node | string", "Map"], DRAIN_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Dynamic| -> RhaiResult<Dynamic> {
            drain(&ctx, &call, node, &Map::new())
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "drain",
        &["node: Node | string", "opts: Map", "Map"],
        DRAIN_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<Dynamic> {
            drain(&ctx, &call, node, &opts)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "evict",
        &["namespace: &str", "pod: &str", "opts: Map", "Map"],
        "Evicts one pod through the Eviction API, retrying while a PodDisruptionBudget blocks it and\n\
         waiting until it is gone. `opts`: `grace_period` (seconds), `timeout` (\"5m\"). In a dry-run:\n\
         a server-side dry-run eviction says whether it would be admitted now.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, namespace: &str, pod: &str, opts: Map| -> RhaiResult<Dynamic> {
        let position = call.call_position();
        let grace_period = option::<i64>(&opts, "grace_period", &ctx, "evict", position)?;
        let timeout = duration_option(&ctx, &opts, "timeout", "evict", position)?;
        let effect = KubeCall::Evict { namespace: namespace.to_owned(), pod: pod.to_owned(), grace_period, timeout };
        kube_step(&ctx, &call, "evict", Access::Change, effect)
    });

    for with_version in [false, true] {
        let ctx = Arc::clone(context);
        let params: &[&str] = if with_version {
            &[
                "node: Node | string",
                "timeout: string | int",
                "kubelet_version: &str",
                "Map",
            ]
        } else {
            &["node: Node | string", "timeout: string | int", "Map"]
        };
        let doc = "Waits (by watch, no polling) until the node is Ready — and, when given, reports\n\
                   `kubelet_version` (\"1.21.14\" or \"v1.21.14\") — for at most `timeout`. Returns the node's\n\
                   info. Recorded, not run, in a dry-run.";
        let register = primitive("wait_ready", params, doc);
        if with_version {
            register.register_into_engine(
                engine,
                move |call: NativeCallContext,
                      node: Dynamic,
                      timeout: Dynamic,
                      version: &str|
                      -> RhaiResult<Dynamic> {
                    wait_ready(&ctx, &call, node, &timeout, Some(version.to_owned()))
                },
            );
        } else {
            register.register_into_engine(
                engine,
                move |call: NativeCallContext,
                      node: Dynamic,
                      timeout: Dynamic|
                      -> RhaiResult<Dynamic> {
                    wait_ready(&ctx, &call, node, &timeout, None)
                },
            );
        }
    }
}

const PREFLIGHT_DOC: &str = "Checks the cluster before an upgrade and returns the findings:\n\
`[#{ id, severity: \"block\"|\"warn\"|\"info\", object, message, fix }]` — nodes not Ready or cordoned,\n\
kubelet/kube-proxy skew against `target`, critical workloads (ingress, Prometheus, Alertmanager,\n\
CoreDNS, `critical`) without a PodDisruptionBudget, single replicas, budgets allowing no\n\
disruption or overlapping, objects in API versions the target removes, and non-root pods without\n\
fsGroup when crossing 1.21 (bound tokens), every apiserver answering on its own address, etcd\n\
(members healthy, quorum margin for a rolling restart, learners, a recent snapshot) and\n\
certificate expiry (control-plane nodes' /etc/kubernetes/pki and kubeconfigs, kubelets' client and\n\
serving certificates, read over ssh from the inventory's nodes). `opts`: `target` (\"1.29.4\"),\n\
`critical` ([\"ns/name\"]), `manifests` ([paths]), `nodes` ([names] to be upgraded), `apiservers`\n\
([urls]), `etcd` (false: skip etcd), `snapshot` (a snapshot file or directory; its newest must be\n\
younger than `snapshot_max_age`, default \"24h\"), `take_snapshot` (a path: save one now, as\n\
`etcd_snapshot` does), `certs` (false: skip certificates), `cert_days` (warn within, default 30),\n\
`lb` ([inventory nodes] running haproxy/keepalived in front of the apiservers; default: the\n\
inventory's `[apiserver_lb]`), whose backend list must hold every control-plane node (missing or\n\
disabled: block), `lb_config` ([paths] instead of /etc/haproxy/haproxy.cfg and\n\
/etc/keepalived/keepalived.conf).\n\
With `canary` (an inventory node already running the new runtime) and `runtime` (\"containerd\",\n\
default, or \"crio\"), it also pulls every image of the pods on `nodes` on the canary, as\n\
`pull_images` does, and reports each image the canary cannot pull as `registry-pull/<image>`\n\
(block). Read-only except `take_snapshot` and the canary's pulls; runs in a dry-run (the snapshot\n\
and the pulls are recorded, not made, and a `registry-pull` info finding says so).";

fn strings(
    ctx: &RunContext,
    call: &NativeCallContext,
    opts: &Map,
    key: &str,
) -> RhaiResult<Vec<String>> {
    match opts.get(key) {
        None => Ok(Vec::new()),
        Some(value) if value.is_unit() => Ok(Vec::new()),
        Some(value) if value.is_string() => Ok(vec![value.to_string()]),
        Some(value) => match value.clone().try_cast::<rhai::Array>() {
            Some(items) => Ok(items.iter().map(ToString::to_string).collect()),
            None => Err(raise(
                call.call_position(),
                ctx.failure(
                    "preflight",
                    Kind::Input,
                    format!("preflight: option `{key}` must be a list of strings, got {value}"),
                ),
            )),
        },
    }
}

fn preflight(ctx: &RunContext, call: &NativeCallContext, opts: &Map) -> RhaiResult<Dynamic> {
    const KNOWN: &[&str] = &[
        "target",
        "critical",
        "manifests",
        "nodes",
        "apiservers",
        "canary",
        "runtime",
        "etcd",
        "snapshot",
        "snapshot_max_age",
        "take_snapshot",
        "certs",
        "cert_days",
        "lb",
        "lb_config",
    ];
    let position = call.call_position();
    let input = |message: String| raise(position, ctx.failure("preflight", Kind::Input, message));
    check_options(ctx, opts, KNOWN, "preflight", position)?;
    let target = match opts.get("target") {
        None => None,
        Some(value) if value.is_unit() => None,
        Some(value) => Some(
            crate::preflight::Version::parse(&value.to_string()).ok_or_else(|| {
                input(format!(
                    "preflight: target `{value}` is not a Kubernetes version like \"1.29.4\""
                ))
            })?,
        ),
    };
    let path = |key: &str| {
        option::<rhai::ImmutableString>(opts, key, ctx, "preflight", position)
            .map(|p| p.map(|p| std::path::PathBuf::from(p.as_str())))
    };
    let cert_days = match option::<i64>(opts, "cert_days", ctx, "preflight", position)? {
        None => crate::preflight::certs::DEFAULT_CERT_DAYS,
        Some(days) => u32::try_from(days).map_err(|_| {
            input(format!(
                "preflight: option `cert_days` must be 0 or more days, got {days}"
            ))
        })?,
    };
    let options = crate::preflight::PreflightOptions {
        target,
        critical: strings(ctx, call, opts, "critical")?,
        manifests: strings(ctx, call, opts, "manifests")?
            .into_iter()
            .map(std::path::PathBuf::from)
            .collect(),
        nodes: strings(ctx, call, opts, "nodes")?,
        apiservers: strings(ctx, call, opts, "apiservers")?,
        etcd: crate::preflight::EtcdCheck {
            skip: !option::<bool>(opts, "etcd", ctx, "preflight", position)?.unwrap_or(true),
            snapshot: path("snapshot")?,
            snapshot_max_age: duration_option(
                ctx,
                opts,
                "snapshot_max_age",
                "preflight",
                position,
            )?
            .unwrap_or(crate::preflight::etcd::DEFAULT_SNAPSHOT_MAX_AGE),
            take_snapshot: path("take_snapshot")?,
        },
        certs: crate::preflight::CertCheck {
            skip: !option::<bool>(opts, "certs", ctx, "preflight", position)?.unwrap_or(true),
            days: cert_days,
        },
        lb: crate::preflight::LbCheck {
            nodes: strings(ctx, call, opts, "lb")?,
            configs: strings(ctx, call, opts, "lb_config")?,
        },
    };
    for name in &options.lb.nodes {
        ctx.host
            .inventory
            .node(name)
            .map_err(|e| input(format!("preflight: option `lb`: {}", e.message)))?;
    }
    for path in &options.lb.configs {
        if !path.starts_with('/') {
            return Err(input(format!(
                "preflight: option `lb_config`: `{path}` is not an absolute path on the load-balancer nodes"
            )));
        }
    }
    let canary = canary_pull_options(ctx, call, opts, &options.nodes)?;
    let steps = crate::preflight::Steps {
        effects: Arc::clone(&ctx.host.effects),
        run: ctx.run,
        origin: super::origin(call),
    };
    let (_, found) = crate::preflight::check(&steps, &ctx.host.inventory, &options)
        .map_err(|failure| raise(position, failure))?;
    let mut findings: Vec<serde_json::Value> = found
        .iter()
        .map(|f| serde_json::to_value(f).unwrap_or_default())
        .collect();
    if let Some((canary, pull_options)) = canary {
        let mut images = Vec::new();
        for node in &options.nodes {
            let pods = kube_step(
                ctx,
                call,
                "preflight",
                Access::Read,
                KubeCall::PodsOn { node: node.clone() },
            )?;
            for pod in pods.try_cast::<rhai::Array>().unwrap_or_default() {
                let pod = pod.try_cast::<Map>().unwrap_or_default();
                let pod_images = pod.get("images").cloned().unwrap_or_default();
                for image in pod_images.try_cast::<rhai::Array>().unwrap_or_default() {
                    images.push(image.to_string());
                }
            }
        }
        let report = super::images::pull(ctx, call, &canary, &images, &pull_options)?;
        findings.extend(
            crate::preflight::registry::findings(&report)
                .iter()
                .map(|f| serde_json::to_value(f).unwrap_or_default()),
        );
    }
    // Blocks first, then warnings, then information, by id: as `krun preflight` orders them.
    let rank = |f: &serde_json::Value| match f["severity"].as_str() {
        Some("block") => 0,
        Some("warn") => 1,
        _ => 2,
    };
    findings.sort_by(|a, b| (rank(a), a["id"].as_str()).cmp(&(rank(b), b["id"].as_str())));
    rhai::serde::to_dynamic(&findings)
}

/// The canary and how it pulls, when preflight is asked to check the registries.
fn canary_pull_options(
    ctx: &RunContext,
    call: &NativeCallContext,
    opts: &Map,
    nodes: &[String],
) -> RhaiResult<Option<(Node, crate::host::images::PullOptions)>> {
    let position = call.call_position();
    let input = |message: String| raise(position, ctx.failure("preflight", Kind::Input, message));
    let runtime = opts.get("runtime").filter(|v| !v.is_unit()).cloned();
    let Some(name) = option::<rhai::ImmutableString>(opts, "canary", ctx, "preflight", position)?
    else {
        if runtime.is_some() {
            return Err(input(
                "preflight: `runtime` says how `canary` pulls images; name the canary too".into(),
            ));
        }
        return Ok(None);
    };
    if nodes.is_empty() {
        return Err(input(format!(
            "preflight: `canary` pulls the images of the pods on `nodes`; name the nodes (e.g. nodes: [\"w1\"]) whose images {name} must pull"
        )));
    }
    let spec = ctx
        .host
        .inventory
        .node(&name)
        .map_err(|e| input(format!("preflight: canary {name}: {}", e.message)))?;
    let mut pull = Map::new();
    if let Some(runtime) = runtime {
        pull.insert("runtime".into(), runtime);
    }
    let options = super::images::options(ctx, position, &pull)?;
    Ok(Some((Node(Arc::new(spec.clone())), options)))
}

fn kube_step(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
    access: Access,
    effect: KubeCall,
) -> RhaiResult<Dynamic> {
    let outcome = ctx.step_on(
        call,
        action,
        TARGET,
        access,
        effect.describe(),
        Effect::call(effect),
    )?;
    rhai::serde::to_dynamic(&outcome.data)
}

/// A node given as a `Node` value or by name.
fn node_name(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &str,
    node: Dynamic,
) -> RhaiResult<String> {
    if let Some(node) = node.clone().try_cast::<Node>() {
        return Ok(node.0.name.clone());
    }
    if node.is_string() {
        return Ok(node.to_string());
    }
    Err(raise(
        call.call_position(),
        ctx.failure(
            action,
            Kind::Input,
            format!(
                "{action}: expected a node or a node name, got {}",
                node.type_name()
            ),
        ),
    ))
}

fn duration_option(
    ctx: &RunContext,
    opts: &Map,
    key: &str,
    action: &str,
    position: Position,
) -> RhaiResult<Option<Duration>> {
    match opts.get(key) {
        None => Ok(None),
        Some(value) if value.is_unit() => Ok(None),
        Some(value) => duration_value(value).map(Some).ok_or_else(|| {
            raise(
                position,
                ctx.failure(
                    action,
                    Kind::Input,
                    format!(
                        "{action}: option `{key}` must be like \"10m\" or seconds, got {value}"
                    ),
                ),
            )
        }),
    }
}

fn drain(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: Dynamic,
    opts: &Map,
) -> RhaiResult<Dynamic> {
    let position = call.call_position();
    let node = node_name(ctx, call, "drain", node)?;
    const KNOWN: &[&str] = &[
        "ignore_daemonsets",
        "delete_emptydir_data",
        "force",
        "grace_period",
        "timeout",
        "pod_selector",
        "disable_eviction",
        "skip_wait_for_delete_timeout",
        "uncordon_on_failure",
        "keep_replica",
    ];
    check_options(ctx, opts, KNOWN, "drain", position)?;
    let flag =
        |key: &str| option::<bool>(opts, key, ctx, "drain", position).map(|v| v.unwrap_or(false));
    let selector = option::<rhai::ImmutableString>(opts, "pod_selector", ctx, "drain", position)?
        .unwrap_or_default();
    let pod_selector = crate::kube::selector::Selector::parse(&selector).map_err(|e| {
        raise(
            position,
            ctx.failure(
                "drain",
                Kind::Input,
                format!("drain: pod_selector `{selector}`: {e}"),
            ),
        )
    })?;
    let disable_eviction = match opts.get("disable_eviction") {
        None => None,
        Some(value) if value.is_unit() => None,
        Some(value) if value.as_bool() == Ok(false) => None,
        Some(value) if value.is_string() => Some(EvictionBypass::acknowledged(value.to_string())),
        Some(_) => {
            return Err(raise(
                position,
                ctx.failure(
                    "drain",
                    Kind::Input,
                    "drain: `disable_eviction` bypasses PodDisruptionBudgets; give the reason as a string, e.g. disable_eviction: \"PDB of a dead app blocks the upgrade, approved by X\"",
                ),
            ));
        }
    };
    let options = DrainOptions {
        filters: DrainFilters {
            ignore_daemonsets: flag("ignore_daemonsets")?,
            delete_emptydir_data: flag("delete_emptydir_data")?,
            force: flag("force")?,
            pod_selector,
            skip_wait_for_delete_timeout: duration_option(
                ctx,
                opts,
                "skip_wait_for_delete_timeout",
                "drain",
                position,
            )?,
        },
        grace_period: option::<i64>(opts, "grace_period", ctx, "drain", position)?,
        timeout: duration_option(ctx, opts, "timeout", "drain", position)?,
        disable_eviction,
        uncordon_on_failure: flag("uncordon_on_failure")?,
        keep_replica: option::<bool>(opts, "keep_replica", ctx, "drain", position)?.unwrap_or(true),
        ..DrainOptions::default()
    };
    kube_step(
        ctx,
        call,
        "drain",
        Access::Change,
        KubeCall::Drain {
            node,
            options: Box::new(options),
        },
    )
}

fn wait_ready(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: Dynamic,
    timeout: &Dynamic,
    version: Option<String>,
) -> RhaiResult<Dynamic> {
    let node = node_name(ctx, call, "wait_ready", node)?;
    let timeout = duration_value(timeout).ok_or_else(|| {
        raise(
            call.call_position(),
            ctx.failure(
                "wait_ready",
                Kind::Input,
                format!("wait_ready: timeout must be like \"5m\" or seconds, got {timeout}"),
            ),
        )
    })?;
    kube_step(
        ctx,
        call,
        "wait_ready",
        Access::Wait,
        KubeCall::WaitReady {
            node,
            timeout,
            version,
        },
    )
}
