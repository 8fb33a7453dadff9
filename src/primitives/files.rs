//! `upload` copies a local file to a node; `write_file` writes a string; `render` renders a
//! template shipped with the playbook. Local files are read through the playbook's
//! [`crate::local::LocalFiles`], and a dry-run shows their content only when marked showable.

use std::sync::Arc;

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, check_options, option, primitive, raise};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::primitives::node::Node;

const UPLOAD_DOC: &str = "Copies `local_path` (relative to the playbook or module that calls it) to `remote_path`\n\
on `node` atomically, with permission bits `mode` (e.g. 0o644 or \"0644\").\n\
Local files are read only from the playbook's directory and its --lib directories (an\n\
absolute path or a `..` leading out is refused; `--allow-local PATH` allows one more).\n\
A dry-run plan shows the file's size and digest, never its content, unless the playbook\n\
marks it showable with `#{ show: true }`: then it shows a diff against the node's file.";

const RENDER_DOC: &str = "Renders the minijinja template file `template` (relative to the playbook or module that\n\
calls it) with `vars` and writes it to `remote_path` on `node` atomically. An undefined\n\
variable is an error. Templates are read only from the playbook's directory and its --lib\n\
directories (`--allow-local PATH` allows one more). A dry-run plan shows the rendered\n\
file's size and digest, not its content, unless the playbook marks it showable with\n\
`#{ show: true }`: then it shows a diff against the node's current file.";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "upload",
        &[
            "node: Node",
            "local_path: &str",
            "remote_path: &str",
            "mode: int | string",
            "()",
        ],
        UPLOAD_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              local: &str,
              remote: &str,
              mode: Dynamic|
              -> RhaiResult<()> {
            upload(&ctx, &call, &node, local, remote, &mode, &Map::new())
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "upload",
        &[
            "node: Node",
            "local_path: &str",
            "remote_path: &str",
            "mode: int | string",
            "opts: Map",
            "()",
        ],
        "`upload` with options: `show` (bool) lets a dry-run show the file's content as a diff.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              local: &str,
              remote: &str,
              mode: Dynamic,
              opts: Map|
              -> RhaiResult<()> { upload(&ctx, &call, &node, local, remote, &mode, &opts) },
    );

    let ctx = Arc::clone(context);
    primitive(
        "write_file",
        &[
            "node: Node",
            "remote_path: &str",
            "content: &str",
            "mode: int | string",
            "()",
        ],
        "Writes `content` to `remote_path` on `node` atomically, with permission bits `mode`\n\
         (a systemd unit, a small config). In a dry-run the plan shows a diff against the node's\n\
         current file. For anything with structure, prefer `render` with a template.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              remote: &str,
              content: &str,
              mode: Dynamic|
              -> RhaiResult<()> {
            let position = call.call_position();
            let mode = file_mode(&mode)
                .map_err(|m| raise(position, ctx.failure("write_file", Kind::Input, m)))?;
            let shown = format!(
                "write {}:{remote} (mode {mode:04o}, {} bytes)",
                node.0.name,
                content.len()
            );
            ctx.step(
                &call,
                "write_file",
                &node,
                Access::Change,
                shown,
                Effect::WriteFile {
                    node: Arc::clone(node.spec()),
                    path: remote.to_owned(),
                    content: content.as_bytes().to_vec(),
                    mode,
                },
            )?;
            Ok(())
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "render",
        &[
            "node: Node",
            "template: &str",
            "vars: Map",
            "remote_path: &str",
            "mode: int | string",
            "()",
        ],
        RENDER_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              template: &str,
              vars: Map,
              remote: &str,
              mode: Dynamic|
              -> RhaiResult<()> {
            render(
                &ctx,
                &call,
                &node,
                template,
                &vars,
                remote,
                &mode,
                &Map::new(),
            )
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "render",
        &[
            "node: Node",
            "template: &str",
            "vars: Map",
            "remote_path: &str",
            "mode: int | string",
            "opts: Map",
            "()",
        ],
        "`render` with options: `show` (bool) lets a dry-run show the rendered file as a diff\n\
         (a configuration meant to be reviewed), e.g. `#{ show: true }`.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext,
              node: Node,
              template: &str,
              vars: Map,
              remote: &str,
              mode: Dynamic,
              opts: Map|
              -> RhaiResult<()> {
            render(&ctx, &call, &node, template, &vars, remote, &mode, &opts)
        },
    );
}

/// Whether the playbook marked a local file's content showable (`#{ show: true }`).
fn showable(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &str,
    opts: &Map,
) -> RhaiResult<bool> {
    let position = call.call_position();
    check_options(ctx, opts, &["show"], action, position)?;
    Ok(option::<bool>(opts, "show", ctx, action, position)?.unwrap_or(false))
}

fn upload(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    local: &str,
    remote: &str,
    mode: &Dynamic,
    opts: &Map,
) -> RhaiResult<()> {
    let position = call.call_position();
    let show = showable(ctx, call, "upload", opts)?;
    let mode =
        file_mode(mode).map_err(|m| raise(position, ctx.failure("upload", Kind::Input, m)))?;
    let path = ctx.local_path(call, "upload", local)?;
    let content = std::fs::read(&path).map_err(|e| {
        raise(
            position,
            ctx.failure(
                "upload",
                Kind::Input,
                format!("upload: cannot read {}: {e}", path.display()),
            ),
        )
    })?;
    let shown = format!(
        "upload {} -> {}:{remote} (mode {mode:04o}, {} bytes)",
        path.display(),
        node.0.name,
        content.len()
    );
    write_local(
        ctx, call, "upload", node, shown, remote, content, mode, show,
    )
}

#[allow(clippy::too_many_arguments)]
fn render(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    template: &str,
    vars: &Map,
    remote: &str,
    mode: &Dynamic,
    opts: &Map,
) -> RhaiResult<()> {
    let position = call.call_position();
    let show = showable(ctx, call, "render", opts)?;
    let mode =
        file_mode(mode).map_err(|m| raise(position, ctx.failure("render", Kind::Input, m)))?;
    let path = ctx.local_path(call, "render", template)?;
    let content = render_template(&path, vars)
        .map_err(|m| raise(position, ctx.failure("render", Kind::Input, m)))?;
    let shown = format!(
        "render {} -> {}:{remote} (mode {mode:04o})",
        path.display(),
        node.0.name
    );
    write_local(
        ctx,
        call,
        "render",
        node,
        shown,
        remote,
        content.into_bytes(),
        mode,
        show,
    )
}

/// Writes a file made from a local file; its content reaches the plan only when `show`.
#[allow(clippy::too_many_arguments)]
fn write_local(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
    node: &Node,
    shown: String,
    remote: &str,
    content: Vec<u8>,
    mode: u32,
    show: bool,
) -> RhaiResult<()> {
    let effect = Effect::WriteFile {
        node: Arc::clone(node.spec()),
        path: remote.to_owned(),
        content,
        mode,
    };
    let mut step = ctx.new_step(call, action, node, Access::Change);
    step.recheck = Recheck::infer(&effect);
    step.hide_content = !show;
    ctx.perform_step(call, step, shown, effect)?;
    Ok(())
}

/// Renders a template file with Rhai variables; errors name the template file and line.
pub(crate) fn render_template(path: &std::path::Path, vars: &Map) -> Result<String, String> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read template {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_template(&name, &source)
        .map_err(|e| template_error(&name, &e))?;
    let vars: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from_map(vars.clone()))
        .map_err(|e| format!("template variables for {name}: {e}"))?;
    env.get_template(&name)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&vars)))
        .map_err(|e| template_error(&name, &e))
}

fn template_error(name: &str, error: &minijinja::Error) -> String {
    let line = error.line().map_or_else(String::new, |l| format!(":{l}"));
    format!(
        "template {name}{line}: {}",
        error.detail().unwrap_or(&error.kind().to_string())
    )
}

/// Permission bits from `0o644` (an integer) or `"0644"` (octal text).
pub(crate) fn file_mode(mode: &Dynamic) -> Result<u32, String> {
    let parsed = if let Some(n) = mode.clone().try_cast::<i64>() {
        u32::try_from(n).ok()
    } else if let Ok(text) = mode.clone().into_string() {
        u32::from_str_radix(text.trim().trim_start_matches("0o"), 8).ok()
    } else {
        None
    };
    parsed
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("file mode must be like 0o644 or \"0644\", got {mode}"))
}
