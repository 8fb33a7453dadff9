//! `version_path`: the versions an upgrade passes through, one minor at a time.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, NativeCallContext};

use super::{RhaiResult, RunContext, primitive, raise};
use crate::error::Kind;

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
}
