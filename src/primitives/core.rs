//! Parameters, logging, failing on purpose, and finding other nodes of the inventory.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, primitive, raise};
use crate::error::Kind;
use crate::primitives::node::Node;

/// The primitive a playbook declares its parameters with (read before it runs).
pub const DECLARE_PARAMETERS: &str = "parameters";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "param",
        &["name: &str", "Dynamic"],
        "The value of `--set NAME=VALUE`; an error at this line when it was not given.\n\
         `true`/`false` are booleans, plain integers are integers, anything else a string.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            match ctx.host.params.get(name) {
                Some(value) => Ok(value.to_dynamic()),
                None => {
                    let known: Vec<&str> = ctx.host.params.keys().map(String::as_str).collect();
                    let mut message =
                        format!("parameter `{name}` is not set: pass --set {name}=VALUE");
                    if let Some(close) = crate::suggest::closest(name, known.iter().copied()) {
                        message.push_str(&format!(" (did you mean `{close}`, which is set?)"));
                    }
                    Err(raise(
                        call.call_position(),
                        ctx.failure("param", Kind::Input, message),
                    ))
                }
            }
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "param",
        &["name: &str", "default: Dynamic", "Dynamic"],
        "The value of `--set NAME=VALUE`, or `default` when it was not given.",
    )
    .register_into_engine(engine, move |name: &str, default: Dynamic| -> Dynamic {
        ctx.host
            .params
            .get(name)
            .map_or(default, crate::params::ParamValue::to_dynamic)
    });

    primitive(
        DECLARE_PARAMETERS,
        &["declared: Map"],
        "Declares the playbook's parameters, once, at its top level, as a literal map:\n\
         `parameters(#{ version: #{ doc: \"the version to move to\", required: true },\n\
         runtime: #{ doc: \"containerd to switch runtimes too\", value: \"\" } });`\n\
         krun reads it before running: an unknown `--set` key is refused with a \"did you mean\",\n\
         a required one must be given, `param(NAME)` returns the declared `value`, and\n\
         `krun describe PLAYBOOK` and `krun check` show and check it. Running it does nothing.",
    )
    .register_into_engine(engine, |_declared: Map| {});

    let ctx = Arc::clone(context);
    primitive(
        "log",
        &["message: &str"],
        "Writes a message to the log (each line names the node whose run wrote it).",
    )
    .register_into_engine(engine, move |message: &str| {
        let message = ctx.host.effects.recorder().redact(message);
        tracing::info!(target: "krun::playbook", "{message}");
    });

    let ctx = Arc::clone(context);
    primitive(
        "warn",
        &["message: &str"],
        "Writes a warning to the log (each line names the node whose run wrote it).",
    )
    .register_into_engine(engine, move |message: &str| {
        let message = ctx.host.effects.recorder().redact(message);
        tracing::warn!(target: "krun::playbook", "{message}");
    });

    let ctx = Arc::clone(context);
    primitive(
        "fail",
        &["message: &str", "()"],
        "Stops this node's run here with `message`; the summary shows it with this line.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, message: &str| -> RhaiResult<()> {
            Err(raise(
                call.call_position(),
                ctx.failure("fail", Kind::Runtime, message),
            ))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "refuse",
        &["message: &str", "()"],
        "Like `fail`, for a safety guard of the playbook's own: the run stops with exit code 3\n\
         (refused), as for krun's built-in guards. Use it before anything changes, e.g. to\n\
         refuse draining a node whose upgrade the version-skew policy would stop later.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, message: &str| -> RhaiResult<()> {
            Err(raise(
                call.call_position(),
                ctx.failure("refuse", Kind::Refused, message),
            ))
        },
    );

    const UNPLANNED_DOC: &str = "Notes in the plan a part of the playbook that could not be planned because it depends\n\
         on state that was not observed: a loop over files listed on a node that an offline\n\
         dry-run did not read, over etcd members it did not list. `what` says what would happen\n\
         there. The plan shows it in place; the summary counts it.";
    let ctx = Arc::clone(context);
    primitive("unplanned", &["node: Node", "what: &str"], UNPLANNED_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, what: &str| {
            not_planned(&ctx, &call, &node.0.name, what);
        },
    );
    let ctx = Arc::clone(context);
    primitive("unplanned", &["what: &str"], UNPLANNED_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, what: &str| {
            let target = ctx
                .node
                .as_ref()
                .map_or_else(|| "cluster".to_owned(), |n| n.0.name.clone());
            not_planned(&ctx, &call, &target, what);
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "find_node",
        &["name: &str", "Node"],
        "Another node of the inventory by name (e.g. a control-plane node to create a join token on).",
    )
    .register_into_engine(engine, move |call: NativeCallContext, name: &str| -> RhaiResult<Node> {
        ctx.host
            .inventory
            .node(name)
            .map(|spec| Node(Arc::new(spec.clone())))
            .map_err(|e| raise(call.call_position(), ctx.failure("find_node", Kind::Input, e.message)))
    });

    let ctx = Arc::clone(context);
    primitive(
        "nodes",
        &["role: &str", "Array"],
        "Every inventory node with `role` among its roles, sorted by name.",
    )
    .register_into_engine(engine, move |role: &str| -> Array {
        ctx.host
            .inventory
            .nodes
            .values()
            .filter(|spec| spec.roles.iter().any(|r| r == role))
            .map(|spec| Dynamic::from(Node(Arc::new(spec.clone()))))
            .collect()
    });

    let ctx = Arc::clone(context);
    primitive(
        "secret",
        &["value: &str", "String"],
        "Marks `value` as secret and returns it: from now on it is shown as *** in logs,\n\
         plans, reports and the journal (e.g. a join token read from a node).",
    )
    .register_into_engine(engine, move |value: &str| -> String {
        ctx.host.effects.recorder().add_secret(value);
        value.to_owned()
    });

    primitive(
        "quote",
        &["word: &str", "String"],
        "`word` quoted for a POSIX shell, for building commands by hand in `sh`.",
    )
    .with_volatility(false)
    .with_purity(true)
    .register_into_engine(engine, crate::quote::quote);
}

fn not_planned(ctx: &RunContext, call: &NativeCallContext, node: &str, what: &str) {
    let recorder = ctx.host.effects.recorder();
    recorder.unplanned(ctx.run, node, what, super::origin(call));
    tracing::warn!(target: "krun::playbook", "not planned: {}", recorder.redact(what));
}
