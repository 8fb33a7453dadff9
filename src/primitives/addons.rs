//! `kube_apply` and `wait_rollout`: a team's addon or CNI manifests put into the cluster, and
//! the wait until what they run has rolled out (the apply is [`crate::kube::apply`]'s). What is
//! applied joins the run's verification (`verify`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, duration_value, primitive, raise};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::kube::Call as KubeCall;
use crate::kube::apply::{is_workload, parse_manifests};
use crate::kube::health::Applied;

const TARGET: &str = "kubernetes";

const APPLY_DOC: &str = "Applies the manifest files `paths` (a path or an array; relative to the playbook or module\n\
that calls it, elsewhere with --allow-local) to the cluster in order, server-side as field\n\
manager krun, like `kubectl apply --server-side --force-conflicts`. The workloads among them\n\
(Deployments, DaemonSets, StatefulSets) join this run's `verify`: they must be rolled out\n\
with the images applied. In a dry-run the API server judges the objects without storing them\n\
(server-side dry-run). Returns `[#{ kind, namespace, name, action, images }]`.";

const WAIT_DOC: &str = "Waits until `workloads` (as `kube_apply` returns them; other kinds are skipped) have rolled\n\
out with their images, like `kubectl rollout status`, for at most `timeout` (\"10m\"); fails\n\
naming each one that did not, and how it stands. Recorded, not run, in a dry-run.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive("kube_apply", &["paths: string | array", "Array"], APPLY_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, paths: Dynamic| -> RhaiResult<Array> {
            apply(&ctx, &call, &paths)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "wait_rollout",
        &["workloads: Array", "timeout: string | int", "Array"],
        WAIT_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, workloads: Array, timeout: Dynamic| -> RhaiResult<Array> {
            let position = call.call_position();
            let input = |message: String| {
                raise(position, ctx.failure("wait_rollout", Kind::Input, message))
            };
            let timeout = duration_value(&timeout).ok_or_else(|| {
                input(format!(
                    "wait_rollout: timeout must be like \"10m\" or seconds, got {timeout}"
                ))
            })?;
            let workloads: Vec<Applied> = workloads
                .iter()
                .filter_map(|w| w.clone().try_cast::<Map>())
                .filter(|w| w.get("kind").is_some_and(|k| is_workload(&k.to_string())))
                .map(|w| Applied {
                    kind: text(&w, "kind"),
                    namespace: text(&w, "namespace"),
                    name: text(&w, "name"),
                    images: w
                        .get("images")
                        .and_then(|i| i.clone().try_cast::<Array>())
                        .unwrap_or_default()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                })
                .collect();
            if workloads.is_empty() {
                return Ok(Array::new());
            }
            let request = KubeCall::WaitRollout { workloads, timeout };
            let outcome = ctx.step_on(
                &call,
                "wait_rollout",
                TARGET,
                Access::Wait,
                request.describe(),
                Effect::call(request),
            )?;
            match rhai::serde::to_dynamic(&outcome.data)?.try_cast::<Array>() {
                Some(states) => Ok(states),
                None => Ok(Array::new()),
            }
        },
    );
}

fn text(map: &Map, key: &str) -> String {
    map.get(key).map(ToString::to_string).unwrap_or_default()
}

fn apply(ctx: &RunContext, call: &NativeCallContext, paths: &Dynamic) -> RhaiResult<Array> {
    const ACTION: &str = "kube_apply";
    let position = call.call_position();
    let names: Vec<String> = if paths.is_array() {
        paths
            .clone()
            .cast::<Array>()
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        vec![paths.to_string()]
    };
    let mut objects = Vec::new();
    for name in &names {
        let local = ctx.local_path(call, ACTION, name)?;
        let text = std::fs::read_to_string(&local).map_err(|e| {
            raise(
                position,
                ctx.failure(
                    ACTION,
                    Kind::Input,
                    format!("{ACTION}: cannot read {}: {e}", local.display()),
                ),
            )
        })?;
        let parsed = parse_manifests(&text).map_err(|why| {
            raise(
                position,
                ctx.failure(
                    ACTION,
                    Kind::Input,
                    format!("{ACTION}: {}: {why}", local.display()),
                ),
            )
        })?;
        objects.extend(parsed);
    }
    if objects.is_empty() {
        return Err(raise(
            position,
            ctx.failure(
                ACTION,
                Kind::Input,
                format!("{ACTION}: no objects in {}", names.join(", ")),
            ),
        ));
    }
    let request = KubeCall::Apply {
        objects: objects.clone(),
        source: names.join(","),
    };
    let outcome = ctx.step_on(
        call,
        ACTION,
        TARGET,
        Access::Change,
        request.describe(),
        Effect::call(request),
    )?;
    let mut applied = Array::new();
    let mut workloads = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        // What the server answered for the object (applied, or judged by its dry-run).
        let answered = outcome.data.get(i);
        let namespace = answered
            .and_then(|a| a["namespace"].as_str())
            .or_else(|| object["metadata"]["namespace"].as_str())
            .unwrap_or_default()
            .to_owned();
        let images: Vec<String> = object
            .pointer("/spec/template/spec/containers")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str().map(str::to_owned))
            .collect();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut map = Map::new();
        map.insert("kind".into(), kind.clone().into());
        map.insert("namespace".into(), namespace.clone().into());
        map.insert("name".into(), name.clone().into());
        map.insert(
            "action".into(),
            answered
                .and_then(|a| a["action"].as_str())
                .map_or(Dynamic::UNIT, |a| a.to_owned().into()),
        );
        map.insert(
            "images".into(),
            Dynamic::from_array(images.iter().cloned().map(Dynamic::from).collect()),
        );
        applied.push(map.into());
        if is_workload(&kind) {
            workloads.push(Applied {
                kind,
                namespace: if namespace.is_empty() {
                    "default".into()
                } else {
                    namespace
                },
                name,
                images,
            });
        }
    }
    let mut registered = ctx.host.verify.applied.lock().expect("applied lock");
    for workload in workloads {
        registered.retain(|w| w.key() != workload.key());
        registered.push(workload);
    }
    Ok(applied)
}
