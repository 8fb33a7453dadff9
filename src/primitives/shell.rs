//! `sh` runs a command on a node; `probe` runs one the playbook declares read-only.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, duration_value, option, outcome_map, primitive, raise, tail};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::primitives::node::Node;

const SH_DOC: &str = "Runs `cmd` on `node` and returns `#{ code, stdout, stderr, ok }`.\n\
`cmd` is a string (a shell command, used as written) or an array of words (each one quoted).\n\
A non-zero exit fails the step with the node, command, exit code and the end of stderr,\n\
unless `opts` has `allow_fail: true`. `opts.timeout` (\"10m\" or seconds) overrides\n\
`--command-timeout`. `opts.check` is a read-only command that exits 0 exactly when `cmd`'s\n\
change is in place (`\"test -b /dev/vg0/runtime\"`): if krun dies while `cmd` runs, `krun resume`\n\
runs the check instead of asking the operator (`--retry-unknown`). `opts.rerun: true` says\n\
running `cmd` twice is harmless. `opts.secret: true`: the output is a secret (a join command,\n\
a certificate key); it is not logged and is shown as *** everywhere. In a dry-run the command\n\
is recorded, not run.";

const PROBE_DOC: &str = "Like `sh`, for a command the playbook declares read-only: it runs in a\n\
dry-run too, so the plan is built from the node's real state. With `--offline` or an\n\
unreachable node it returns empty output and the plan marks later steps as unobserved.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    for (name, access, doc) in [
        ("sh", Access::Change, SH_DOC),
        ("probe", Access::Read, PROBE_DOC),
    ] {
        let ctx = Arc::clone(context);
        primitive(name, &["node: Node", "cmd: string | array", "Map"], doc).register_into_engine(
            engine,
            move |call: NativeCallContext, node: Node, cmd: Dynamic| -> RhaiResult<Map> {
                run(&ctx, &call, name, access, &node, cmd, &Map::new())
            },
        );
        let ctx = Arc::clone(context);
        primitive(
            name,
            &["node: Node", "cmd: string | array", "opts: Map", "Map"],
            doc,
        )
        .register_into_engine(
            engine,
            move |call: NativeCallContext,
                  node: Node,
                  cmd: Dynamic,
                  opts: Map|
                  -> RhaiResult<Map> {
                run(&ctx, &call, name, access, &node, cmd, &opts)
            },
        );
    }
}

fn run(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
    access: Access,
    node: &Node,
    cmd: Dynamic,
    opts: &Map,
) -> RhaiResult<Map> {
    let position = call.call_position();
    let command =
        command_text(cmd).map_err(|m| raise(position, ctx.failure(action, Kind::Input, m)))?;
    let allow_fail = option::<bool>(opts, "allow_fail", ctx, action, position)?.unwrap_or(false);
    let timeout = match opts.get("timeout") {
        None => ctx.host.command_timeout,
        Some(value) => duration_value(value).ok_or_else(|| {
            raise(
                position,
                ctx.failure(action, Kind::Input, format!("{action}: option `timeout` must be like \"10m\" or a number of seconds, got {value}")),
            )
        })?,
    };
    let check = option::<String>(opts, "check", ctx, action, position)?;
    let rerun = option::<bool>(opts, "rerun", ctx, action, position)?.unwrap_or(false);
    let recheck = match check {
        Some(check) => Recheck::command(Arc::clone(node.spec()), check),
        None if rerun => Recheck::Rerun,
        None => Recheck::Ask,
    };
    let mut step = ctx.new_step(call, action, node, access);
    step.recheck = recheck;
    step.secret_output = option::<bool>(opts, "secret", ctx, action, position)?.unwrap_or(false);
    let outcome = ctx.perform_step(
        call,
        step,
        command.clone(),
        Effect::Exec {
            node: Arc::clone(node.spec()),
            command: command.clone(),
            timeout: Some(timeout),
        },
    )?;
    if outcome.exit_code != 0 && !allow_fail {
        let mut failure = ctx.failure(
            action,
            Kind::Runtime,
            format!(
                "`{command}` exited with code {} on {}",
                outcome.exit_code, node.0.name
            ),
        );
        let stderr = tail(&outcome.stderr, 10);
        if !stderr.is_empty() {
            failure
                .message
                .push_str(&format!("\nstderr (last lines):\n{stderr}"));
        }
        failure.node = Some(node.0.name.clone());
        failure.command = Some(ctx.host.effects.recorder().redact(&command));
        return Err(raise(position, failure));
    }
    Ok(outcome_map(&outcome))
}

/// A command from a string (as written) or an array of words (each quoted).
pub(crate) fn command_text(cmd: Dynamic) -> Result<String, String> {
    if cmd.is_string() {
        let text = cmd.into_string().unwrap_or_default();
        if text.trim().is_empty() {
            return Err("the command is empty".into());
        }
        return Ok(text);
    }
    if cmd.is_array() {
        let words: Array = cmd.cast();
        if words.is_empty() {
            return Err("the command is an empty array".into());
        }
        let words: Vec<String> = words.into_iter().map(|w| w.to_string()).collect();
        return Ok(crate::quote::join(&words));
    }
    Err(format!(
        "the command must be a string or an array of words, got {}",
        cmd.type_name()
    ))
}
