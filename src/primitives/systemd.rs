//! systemd units: `systemctl`, `service_active`, `wait_active`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, duration_value, outcome_map, primitive, raise};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::primitives::node::Node;

/// Verbs that only look; they run in a dry-run and a non-zero exit is an answer, not a failure.
const READ_VERBS: &[&str] = &[
    "is-active",
    "is-enabled",
    "is-failed",
    "status",
    "show",
    "cat",
];
const CHANGE_VERBS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "reload",
    "try-restart",
    "enable",
    "disable",
    "mask",
    "unmask",
    "daemon-reload",
    "reset-failed",
];

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "systemctl",
        &["node: Node", "verb: &str", "unit: &str", "Map"],
        "Runs `systemctl VERB UNIT` on `node` (unit may be \"\" for daemon-reload).\n\
         Changing verbs (start, stop, restart, enable, daemon-reload, …) fail the step on a\n\
         non-zero exit and are only recorded in a dry-run; reading verbs (is-active, status, …)\n\
         run in a dry-run too and return their exit code as an answer.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, verb: &str, unit: &str| -> RhaiResult<Map> {
            let position = call.call_position();
            let access = if READ_VERBS.contains(&verb) {
                Access::Read
            } else if CHANGE_VERBS.contains(&verb) {
                Access::Change
            } else {
                let mut message = format!("systemctl: unknown verb `{verb}`");
                let all = READ_VERBS.iter().chain(CHANGE_VERBS).copied();
                if let Some(close) = crate::suggest::closest(verb, all) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                return Err(raise(
                    position,
                    ctx.failure("systemctl", Kind::Input, message),
                ));
            };
            let command = crate::host::systemd::command(verb, unit);
            // Every verb krun knows moves a unit to a state; repeating it changes nothing more.
            let outcome = ctx.step_rechecked(
                &call,
                "systemctl",
                &node,
                access,
                command.clone(),
                Effect::Exec {
                    node: Arc::clone(node.spec()),
                    command: command.clone(),
                    timeout: Some(ctx.host.command_timeout),
                },
                Recheck::Rerun,
            )?;
            if access == Access::Change && outcome.exit_code != 0 {
                return Err(ctx.command_failed(position, "systemctl", &node, &command, &outcome));
            }
            Ok(outcome_map(&outcome))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "service_active",
        &["node: Node", "unit: &str", "bool"],
        "Whether `unit` is active on `node` (`systemctl is-active`). Runs in a dry-run;\n\
         false when the node could not be observed.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, unit: &str| -> RhaiResult<bool> {
            let command = crate::host::systemd::is_active_command(unit);
            let outcome = ctx.step(
                &call,
                "service_active",
                &node,
                Access::Read,
                command.clone(),
                Effect::Exec {
                    node: Arc::clone(node.spec()),
                    command,
                    timeout: Some(Duration::from_secs(60)),
                },
            )?;
            Ok(outcome.observed && outcome.exit_code == 0)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "wait_active",
        &["node: Node", "unit: &str", "timeout: string | int", "()"],
        "Waits until `unit` is active on `node`, checking every 2 s, for at most `timeout`\n\
         (\"2m\" or seconds); fails the step when it is not. Recorded, not run, in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              unit: &str,
              timeout: Dynamic|
              -> RhaiResult<()> {
            let position = call.call_position();
            let timeout = duration_value(&timeout).ok_or_else(|| {
                raise(
                    position,
                    ctx.failure(
                        "wait_active",
                        Kind::Input,
                        format!(
                            "wait_active: timeout must be like \"2m\" or seconds, got {timeout}"
                        ),
                    ),
                )
            })?;
            let command = crate::host::systemd::is_active_command(unit);
            let shown = format!(
                "wait until `{command}` succeeds (every 2s, at most {})",
                humantime::format_duration(timeout)
            );
            let outcome = ctx.step(
                &call,
                "wait_active",
                &node,
                Access::Wait,
                shown,
                Effect::Poll {
                    node: Arc::clone(node.spec()),
                    command,
                    interval: Duration::from_secs(2),
                    timeout,
                },
            )?;
            if outcome.observed && outcome.exit_code != 0 {
                let mut failure = ctx.failure(
                    "wait_active",
                    Kind::Runtime,
                    format!(
                        "{unit} did not become active on {} within {}",
                        node.0.name,
                        humantime::format_duration(timeout)
                    ),
                );
                failure.node = Some(node.0.name.clone());
                return Err(raise(position, failure));
            }
            Ok(())
        },
    );
}
