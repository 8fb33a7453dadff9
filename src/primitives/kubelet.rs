//! `kubelet_flags` / `set_kubelet_flags` and `kubelet_config` / `set_kubelet_config`: kubelet's
//! flags file and KubeletConfiguration, edited structurally (see `crate::host::kubelet_config`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, Position};

use super::{RhaiResult, RunContext, option, primitive, raise, tail};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::host::kubelet_config::{
    self as config, Arg, CONFIG_FILE, EnvFile, FLAG_FILES, FlagEdit,
};
use crate::primitives::node::Node;
use crate::quote::quote;

const MARK: &str = "--krun-file--";

/// A file as read from the node: its path, permission bits and content.
struct Found {
    path: String,
    mode: u32,
    content: String,
}

/// Reads the first of `paths` that exists (one command, runs in a dry-run). `None` when none
/// exists; `observed` is false when the node could not be read.
fn read_first(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
    node: &Node,
    paths: &[&str],
) -> RhaiResult<(Option<Found>, bool)> {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    let command = format!(
        "for f in {}; do if [ -f \"$f\" ]; then printf '%s\\n' \"$f\"; stat -c %a -- \"$f\"; echo {MARK}; exec cat -- \"$f\"; fi; done; exit 3",
        list.join(" ")
    );
    let shown = format!("read the first existing of {}", paths.join(", "));
    let outcome = ctx.step(
        call,
        action,
        node,
        Access::Read,
        shown,
        Effect::Exec {
            node: Arc::clone(node.spec()),
            command,
            timeout: Some(std::time::Duration::from_secs(60)),
        },
    )?;
    if !outcome.observed {
        return Ok((None, false));
    }
    match outcome.exit_code {
        0 => {}
        3 => return Ok((None, true)),
        code => {
            let mut failure = ctx.failure(
                action,
                Kind::Runtime,
                format!(
                    "cannot read {} on {} (exit {code}): {}",
                    paths.join(", "),
                    node.0.name,
                    tail(&outcome.stderr, 5)
                ),
            );
            failure.node = Some(node.0.name.clone());
            return Err(raise(call.call_position(), failure));
        }
    }
    let (head, content) = outcome
        .stdout
        .split_once(&format!("{MARK}\n"))
        .unwrap_or((outcome.stdout.as_str(), ""));
    let mut lines = head.lines();
    let path = lines.next().unwrap_or_default().to_owned();
    let mode = lines
        .next()
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .unwrap_or(0o644);
    Ok((
        Some(Found {
            path,
            mode,
            content: content.to_owned(),
        }),
        true,
    ))
}

fn flags_map(args: &[Arg]) -> Map {
    let mut map = Map::new();
    for arg in args {
        if let Arg::Flag { name, value, .. } = arg {
            let value = value
                .as_ref()
                .map_or(Dynamic::TRUE, |v| Dynamic::from(v.clone()));
            map.insert(name.as_str().into(), value);
        }
    }
    map
}

fn words_array(args: &[Arg]) -> Array {
    config::render_args(args)
        .into_iter()
        .map(Dynamic::from)
        .collect()
}

fn input_error(
    ctx: &RunContext,
    position: Position,
    action: &str,
    message: String,
) -> Box<rhai::EvalAltResult> {
    raise(position, ctx.failure(action, Kind::Input, message))
}

fn parse_env(
    ctx: &RunContext,
    position: Position,
    action: &str,
    node: &Node,
    found: &Found,
) -> RhaiResult<EnvFile> {
    EnvFile::parse(&found.content, config::variables_for(&found.path)).map_err(|e| {
        let mut failure = ctx.failure(
            action,
            Kind::Runtime,
            format!("{} on {}: {e}", found.path, node.0.name),
        );
        failure.node = Some(node.0.name.clone());
        raise(position, failure)
    })
}

const FLAGS_DOC: &str = "kubelet's flags on `node`, from the first of /var/lib/kubelet/kubeadm-flags.env\n\
(KUBELET_KUBEADM_ARGS), /etc/kubernetes/kubelet.env (KUBELET_ARGS or KUBELET_EXTRA_ARGS),\n\
/etc/default/kubelet, /etc/sysconfig/kubelet (KUBELET_EXTRA_ARGS) that exists, or from\n\
`opts.file` (e.g. #{ file: \"/etc/default/kubelet\" }, where kubeadm wants overrides):\n\
`#{ file, variable, flags, args, observed }` where `flags` maps each flag name (no dashes)\n\
to its value (`true` for a bare flag) and `args` is the words in order. `file` is \"\"\n\
when none exists. Runs in a dry-run.";

const SET_FLAGS_DOC: &str = "Edits kubelet's flags in the file `kubelet_flags` reads (or `opts.file`, created when\n\
missing): each entry of `flags` sets a flag (name with or without dashes) to a string,\n\
number or bool; `()` removes it. Existing flags keep their place and style (`--a=b`,\n\
`--a b`), new ones are appended in name order; comments and other lines stay as they are.\n\
Writes the file (atomically, same mode) only when something changes; the plan shows the\n\
diff. Fails when no flags file exists. A value with whitespace, quotes or backslashes is\n\
refused (kubelet reads the file split at whitespace: it would become another flag).\n\
Returns `#{ file, changed, before, after }` (`before`/`after`: flag maps).\n\
`set_kubelet_flags(node, #{ \"container-runtime-endpoint\": \"unix:///run/containerd/containerd.sock\", \"network-plugin\": () })`";

/// The flags files to look at: `opts.file`, or every known one in order.
fn flag_paths(
    ctx: &RunContext,
    opts: &Map,
    action: &str,
    position: Position,
) -> RhaiResult<Vec<String>> {
    match option::<rhai::ImmutableString>(opts, "file", ctx, action, position)? {
        Some(file) if file.starts_with('/') => Ok(vec![file.to_string()]),
        Some(file) => Err(input_error(
            ctx,
            position,
            action,
            format!("{action}: `file` must be an absolute path, got {file}"),
        )),
        None => Ok(FLAG_FILES.iter().map(|(p, _)| (*p).to_owned()).collect()),
    }
}

fn check_flag_options(
    ctx: &RunContext,
    opts: &Map,
    action: &str,
    position: Position,
) -> RhaiResult<()> {
    match opts.keys().find(|k| k.as_str() != "file") {
        Some(key) => Err(input_error(
            ctx,
            position,
            action,
            format!("{action}: unknown option `{key}` (known: file)"),
        )),
        None => Ok(()),
    }
}

fn read_flags(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    opts: &Map,
) -> RhaiResult<Map> {
    const ACTION: &str = "kubelet_flags";
    let position = call.call_position();
    check_flag_options(ctx, opts, ACTION, position)?;
    let paths = flag_paths(ctx, opts, ACTION, position)?;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (found, observed) = read_first(ctx, call, ACTION, node, &paths)?;
    let mut map = Map::new();
    map.insert("observed".into(), Dynamic::from_bool(observed));
    let (file, variable, args) = match &found {
        Some(found) => {
            let env = parse_env(ctx, position, ACTION, node, found)?;
            (found.path.clone(), env.variable.clone(), env.args())
        }
        None => (String::new(), String::new(), Vec::new()),
    };
    map.insert("file".into(), file.into());
    map.insert("variable".into(), variable.into());
    map.insert("flags".into(), Dynamic::from_map(flags_map(&args)));
    map.insert("args".into(), Dynamic::from_array(words_array(&args)));
    Ok(map)
}

fn set_flags(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    flags: &Map,
    opts: &Map,
) -> RhaiResult<Map> {
    const ACTION: &str = "set_kubelet_flags";
    let position = call.call_position();
    check_flag_options(ctx, opts, ACTION, position)?;
    let mut edits = Vec::new();
    for (name, value) in flags {
        let edit = if value.is_unit() {
            FlagEdit::Remove
        } else if value.is_string() || value.is_int() || value.is_bool() || value.is_float() {
            FlagEdit::Set(value.to_string())
        } else {
            return Err(input_error(
                ctx,
                position,
                ACTION,
                format!(
                    "{ACTION}: flag `{name}` must be a string, number, bool or () to remove it, got {}",
                    value.type_name()
                ),
            ));
        };
        config::check_flag(name, &edit)
            .map_err(|e| input_error(ctx, position, ACTION, format!("{ACTION}: {e}")))?;
        edits.push((name.trim_start_matches('-').to_owned(), edit));
    }
    // Rhai maps have no insertion order: new flags are appended in name order.
    edits.sort_by(|a, b| a.0.cmp(&b.0));
    let named = opts.contains_key("file");
    let paths = flag_paths(ctx, opts, ACTION, position)?;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (found, observed) = read_first(ctx, call, ACTION, node, &paths)?;
    let found = match found {
        Some(found) => found,
        // A file the playbook names is created.
        None if named && observed => Found {
            path: paths[0].to_owned(),
            mode: 0o644,
            content: String::new(),
        },
        None if observed => {
            let mut failure = ctx.failure(
                ACTION,
                Kind::Runtime,
                format!(
                    "{ACTION}: none of {} exists on {}",
                    paths.join(", "),
                    node.0.name
                ),
            );
            failure.node = Some(node.0.name.clone());
            return Err(raise(position, failure));
        }
        None => {
            // Not observed (offline): record what would be done.
            let shown = format!(
                "edit kubelet flags ({}) in the first existing of {} (not observed)",
                describe(&edits),
                paths.join(", ")
            );
            ctx.step(
                call,
                ACTION,
                node,
                Access::Change,
                shown.clone(),
                Effect::Exec {
                    node: Arc::clone(node.spec()),
                    command: shown,
                    timeout: None,
                },
            )?;
            let mut map = Map::new();
            map.insert("file".into(), "".into());
            map.insert("changed".into(), Dynamic::TRUE);
            map.insert("before".into(), Dynamic::from_map(Map::new()));
            map.insert("after".into(), Dynamic::from_map(Map::new()));
            return Ok(map);
        }
    };
    let env = parse_env(ctx, position, ACTION, node, &found)?;
    let before = env.args();
    let after = config::edit_args(&before, &edits);
    let content = env.render(&after);
    let changed = content != found.content;
    if changed {
        write(
            ctx,
            call,
            ACTION,
            node,
            &found.path,
            content,
            found.mode,
            &describe(&edits),
        )?;
    }
    let mut map = Map::new();
    map.insert("file".into(), found.path.into());
    map.insert("changed".into(), Dynamic::from_bool(changed));
    map.insert("before".into(), Dynamic::from_map(flags_map(&before)));
    map.insert("after".into(), Dynamic::from_map(flags_map(&after)));
    Ok(map)
}

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive("kubelet_flags", &["node: Node", "Map"], FLAGS_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node| -> RhaiResult<Map> {
            read_flags(&ctx, &call, &node, &Map::new())
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "kubelet_flags",
        &["node: Node", "opts: Map", "Map"],
        FLAGS_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, opts: Map| -> RhaiResult<Map> {
            read_flags(&ctx, &call, &node, &opts)
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "set_kubelet_flags",
        &["node: Node", "flags: Map", "Map"],
        SET_FLAGS_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, flags: Map| -> RhaiResult<Map> {
            set_flags(&ctx, &call, &node, &flags, &Map::new())
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "set_kubelet_flags",
        &["node: Node", "flags: Map", "opts: Map", "Map"],
        SET_FLAGS_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, flags: Map, opts: Map| -> RhaiResult<Map> {
            set_flags(&ctx, &call, &node, &flags, &opts)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "kubelet_config",
        &["node: Node", "Map"],
        "kubelet's configuration file /var/lib/kubelet/config.yaml (a KubeletConfiguration) on\n\
         `node` as a map (`#{}` when it does not exist or was not observed). Runs in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node| -> RhaiResult<Dynamic> {
            let position = call.call_position();
            let (found, _) = read_first(&ctx, &call, "kubelet_config", &node, &[CONFIG_FILE])?;
            let Some(found) = found else {
                return Ok(Dynamic::from_map(Map::new()));
            };
            let parsed = config::parse_config(&found.content).map_err(|e| {
                raise(
                    position,
                    ctx.failure(
                        "kubelet_config",
                        Kind::Runtime,
                        format!("{} on {}: {e}", CONFIG_FILE, node.0.name),
                    ),
                )
            })?;
            rhai::serde::to_dynamic(serde_yaml_ng::Value::Mapping(parsed))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "set_kubelet_config",
        &["node: Node", "changes: Map", "Map"],
        "Edits /var/lib/kubelet/config.yaml on `node`: maps in `changes` merge key by key, `()`\n\
         removes a key, other values replace; every other field is kept, in its place (YAML\n\
         comments are not: kubeadm writes none). Writes (atomically, same mode) only when\n\
         something changes; the plan shows the diff. Fails when the file does not exist.\n\
         Returns `#{ file, changed }`.\n\
         `set_kubelet_config(node, #{ cgroupDriver: \"systemd\", containerRuntimeEndpoint: \"unix:///run/containerd/containerd.sock\" })`",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, changes: Map| -> RhaiResult<Map> {
            const ACTION: &str = "set_kubelet_config";
            let position = call.call_position();
            let changes_value: serde_yaml_ng::Value = rhai::serde::from_dynamic(&Dynamic::from_map(changes.clone()))
                .map_err(|e| input_error(&ctx, position, ACTION, format!("{ACTION}: {e}")))?;
            let serde_yaml_ng::Value::Mapping(changes_map) = changes_value else {
                return Err(input_error(&ctx, position, ACTION, format!("{ACTION}: changes must be a map")));
            };
            let keys: Vec<String> = changes.keys().map(ToString::to_string).collect();
            let (found, observed) = read_first(&ctx, &call, ACTION, &node, &[CONFIG_FILE])?;
            let Some(found) = found else {
                if observed {
                    let mut failure = ctx.failure(ACTION, Kind::Runtime, format!("{ACTION}: {CONFIG_FILE} does not exist on {}", node.0.name));
                    failure.node = Some(node.0.name.clone());
                    return Err(raise(position, failure));
                }
                let shown = format!("edit {CONFIG_FILE} ({}) (not observed)", keys.join(", "));
                ctx.step(&call, ACTION, &node, Access::Change, shown.clone(), Effect::Exec { node: Arc::clone(node.spec()), command: shown, timeout: None })?;
                let mut map = Map::new();
                map.insert("file".into(), CONFIG_FILE.into());
                map.insert("changed".into(), Dynamic::TRUE);
                return Ok(map);
            };
            let mut parsed = config::parse_config(&found.content)
                .map_err(|e| raise(position, ctx.failure(ACTION, Kind::Runtime, format!("{} on {}: {e}", CONFIG_FILE, node.0.name))))?;
            let original = parsed.clone();
            config::merge_config(&mut parsed, &changes_map);
            let changed = parsed != original;
            if changed {
                let content = config::render_config(&parsed);
                write(&ctx, &call, ACTION, &node, CONFIG_FILE, content, found.mode, &keys.join(", "))?;
            }
            let mut map = Map::new();
            map.insert("file".into(), CONFIG_FILE.into());
            map.insert("changed".into(), Dynamic::from_bool(changed));
            Ok(map)
        },
    );
}

fn describe(edits: &[(String, FlagEdit)]) -> String {
    edits
        .iter()
        .map(|(name, edit)| {
            let name = name.trim_start_matches('-');
            match edit {
                FlagEdit::Set(value) => format!("--{name}={value}"),
                FlagEdit::Bare => format!("--{name}"),
                FlagEdit::Remove => format!("remove --{name}"),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::too_many_arguments)]
fn write(
    ctx: &RunContext,
    call: &NativeCallContext,
    action: &'static str,
    node: &Node,
    path: &str,
    content: String,
    mode: u32,
    what: &str,
) -> RhaiResult<()> {
    let shown = format!("write {path} ({what}; mode {mode:04o})");
    let outcome = ctx.step(
        call,
        action,
        node,
        Access::Change,
        shown,
        Effect::WriteFile {
            node: Arc::clone(node.spec()),
            path: path.to_owned(),
            content: content.into_bytes(),
            mode,
        },
    )?;
    if outcome.observed && outcome.exit_code != 0 {
        let mut failure = ctx.failure(
            action,
            Kind::Runtime,
            format!(
                "cannot write {path} on {} (exit {}): {}",
                node.0.name,
                outcome.exit_code,
                tail(&outcome.stderr, 5)
            ),
        );
        failure.node = Some(node.0.name.clone());
        return Err(raise(call.call_position(), failure));
    }
    Ok(())
}
