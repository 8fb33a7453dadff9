//! Kubernetes versions for playbooks: `version_path` (the versions an upgrade passes through,
//! one minor at a time), and parsing and comparing versions the way the guards do
//! (`version_parts`, `version_compare`, `version_minor_distance`, which the stdlib's `versions`
//! module wraps).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, NativeCallContext};

use super::{RhaiResult, RunContext, primitive, raise};
use crate::error::Kind;
use crate::versions::KubeVersion;

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "version_path",
        &["from: &str", "to: &str", "available: Array", "Array"],
        "The versions to pass through from `from` to `to`, one minor at a time: the newest patch\n\
         of each minor after `from`'s up to `to`'s, taken from `available` (what `pkg_versions`\n\
         returns: \"1.21.14-00\", \"1.21.14-1.1\", \"v1.21.14\", …) and returned verbatim, ready\n\
         for `pkg_install`. A `to` with a patch (\"1.23.16\") ends the path at exactly that one;\n\
         a `to` in `from`'s minor is a patch upgrade. A minor with no available version, a\n\
         downgrade or a major change is an input error naming it. In a dry-run that could not\n\
         observe the node (`available` empty), the path names each minor as \"1.21.x\".\n\
         `version_path(\"1.20.15\", \"1.22\", pkg_versions(node, \"kubeadm\"))` → `[\"1.21.14-00\", \"1.22.17-00\"]`",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, from: &str, to: &str, available: Array| -> RhaiResult<Array> {
            let available: Vec<String> = available.iter().map(ToString::to_string).collect();
            let result = if available.is_empty() && ctx.saw_unobserved() {
                tracing::warn!(
                    "version_path({from:?}, {to:?}): the available versions were not observed; \
                     the plan names each minor as M.m.x"
                );
                crate::versions::unobserved_path(from, to)
            } else {
                crate::versions::version_path(from, to, &available)
            };
            result
                .map(|path| path.into_iter().map(Dynamic::from).collect())
                .map_err(|e| {
                    let message = format!("version_path({from:?}, {to:?}): {e}");
                    raise(
                        call.call_position(),
                        ctx.failure("version_path", Kind::Input, message),
                    )
                })
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "version_parts",
        &["version: &str", "Array"],
        "`[major, minor, patch]` of a Kubernetes version as tools print it: \"v1.21.14\", \"1.21\"\n\
         (patch 0), a package version \"1.21.14-00\", \"1:1.21.14-1.1\" (epoch and revision\n\
         ignored). Anything else is an input error naming it.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, version: &str| -> RhaiResult<Array> {
            let v = parse(&ctx, &call, "version_parts", version)?;
            Ok([v.major, v.minor, v.patch.unwrap_or(0)]
                .into_iter()
                .map(|n| Dynamic::from_int(i64::try_from(n).unwrap_or(i64::MAX)))
                .collect())
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "version_compare",
        &["a: &str", "b: &str", "i64"],
        "-1, 0 or 1 as version `a` is lower than, equal to or higher than `b` (\"1.21\" is \"1.21.0\").",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, a: &str, b: &str| -> RhaiResult<i64> {
            let a = parse(&ctx, &call, "version_compare", a)?;
            let b = parse(&ctx, &call, "version_compare", b)?;
            let key = |v: KubeVersion| (v.major, v.minor, v.patch.unwrap_or(0));
            Ok(match key(a).cmp(&key(b)) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            })
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "version_minor_distance",
        &["from: &str", "to: &str", "i64"],
        "How many minor releases `to` is above `from` (negative when below). Versions of\n\
         different major releases are an input error.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, from: &str, to: &str| -> RhaiResult<i64> {
            let a = parse(&ctx, &call, "version_minor_distance", from)?;
            let b = parse(&ctx, &call, "version_minor_distance", to)?;
            if a.major != b.major {
                let message = format!(
                    "version_minor_distance: cannot compare minors across major versions: {from} -> {to}"
                );
                return Err(raise(
                    call.call_position(),
                    ctx.failure("version_minor_distance", Kind::Input, message),
                ));
            }
            Ok(b.minors_ahead_of(a))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "kubelet_flags_removed",
        &["version: &str", "Array"],
        "The kubelet flags kubelet `version` no longer has (it exits on them: \"unknown flag\"):\n\
         `network-plugin`, `cni-bin-dir`, `cni-conf-dir` from 1.24, `container-runtime` from 1.27.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, version: &str| -> RhaiResult<Array> {
            let v = parse(&ctx, &call, "kubelet_flags_removed", version)?;
            Ok(crate::versions::kubelet_flags_removed_by(v)
                .into_iter()
                .map(Dynamic::from)
                .collect())
        },
    );
}

fn parse(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &str,
    text: &str,
) -> RhaiResult<KubeVersion> {
    KubeVersion::parse(text.trim()).ok_or_else(|| {
        let message = format!("{action}: `{text}` is not a Kubernetes version like 1.21.14");
        raise(
            call.call_position(),
            ctx.failure(action, Kind::Input, message),
        )
    })
}
