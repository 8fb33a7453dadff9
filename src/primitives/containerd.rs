//! `containerd_install`: containerd from the distribution's package or a release tarball, its
//! `config.toml` rendered by krun and validated by containerd on the node before it is installed,
//! then started and checked through the CRI socket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, Map, NativeCallContext, Position};
use sha2::Digest;

use super::{
    RhaiResult, RunContext, check_options, duration_value, option, primitive, raise, tail,
};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::host::containerd::{Auth, CONFIG_PATH, Config, UNIT_PATH};
use crate::primitives::node::Node;
use crate::quote::quote;

const ACTION: &str = "containerd_install";
const CHECK_PATH: &str = "/etc/containerd/config.toml.krun-check";

const DOC: &str = "Installs and starts containerd on `node` and returns a report map.\n\
Source: `source: \"package\"` (default; `package` names it, default \"containerd\", `version`\n\
pins it, installed like `pkg_install`) or `source: \"tarball\"` with `tarball`: a local release\n\
tarball (relative to the playbook), uploaded and extracted under `prefix` (default /usr/local)\n\
with a systemd unit written to /etc/systemd/system/containerd.service.\n\
/etc/containerd/config.toml (version 2) is rendered from `systemd_cgroup` (default true),\n\
`sandbox_image`, `mirrors` (`#{ \"docker.io\": [\"https://mirror\"] }`), `registry_auth`\n\
(`#{ \"registry\": #{ username, password } }`; passwords are secret: shown as ***), `root`\n\
(data, default /var/lib/containerd) and `state` (default /run/containerd). It is first\n\
written to a temporary file and validated on the node with `containerd -c FILE config dump`;\n\
a config containerd rejects is not installed and the step fails with containerd's error.\n\
Then daemon-reload, enable and restart containerd, and wait (`timeout`, default \"2m\") until\n\
`crictl --runtime-endpoint unix:///run/containerd/containerd.sock version` answers (without\n\
crictl: `ctr plugins ls` lists the CRI plugin as loaded).\n\
Returns `#{ source, config, socket, runtime_version, validated }`.";

const KNOWN: &[&str] = &[
    "source",
    "package",
    "version",
    "tarball",
    "prefix",
    "systemd_cgroup",
    "sandbox_image",
    "mirrors",
    "registry_auth",
    "root",
    "state",
    "timeout",
];

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "containerd_install",
        &["node: Node", "opts: Map", "Map"],
        DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, opts: Map| -> RhaiResult<Map> {
            install(&ctx, &call, &node, &opts)
        },
    );
    let ctx = Arc::clone(context);
    primitive("containerd_install", &["node: Node", "Map"], DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node| -> RhaiResult<Map> {
            install(&ctx, &call, &node, &Map::new())
        },
    );
}

fn input(ctx: &RunContext, position: Position, message: String) -> Box<rhai::EvalAltResult> {
    raise(position, ctx.failure(ACTION, Kind::Input, message))
}

fn string_option(
    ctx: &RunContext,
    opts: &Map,
    key: &str,
    position: Position,
) -> RhaiResult<Option<String>> {
    Ok(option::<rhai::ImmutableString>(opts, key, ctx, ACTION, position)?.map(|s| s.to_string()))
}

/// The config from the options; registry passwords are registered as secrets.
fn config_from(ctx: &RunContext, opts: &Map, position: Position) -> RhaiResult<Config> {
    let mut config = Config::default();
    if let Some(root) = string_option(ctx, opts, "root", position)? {
        config.root = root;
    }
    if let Some(state) = string_option(ctx, opts, "state", position)? {
        config.state = state;
    }
    config.sandbox_image = string_option(ctx, opts, "sandbox_image", position)?;
    if let Some(systemd) = option::<bool>(opts, "systemd_cgroup", ctx, ACTION, position)? {
        config.systemd_cgroup = systemd;
    }
    for (registry, endpoints) in
        option::<Map>(opts, "mirrors", ctx, ACTION, position)?.unwrap_or_default()
    {
        let list: Vec<String> = if endpoints.is_array() {
            endpoints
                .cast::<rhai::Array>()
                .iter()
                .map(ToString::to_string)
                .collect()
        } else if endpoints.is_string() {
            vec![endpoints.to_string()]
        } else {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: mirrors.{registry} must be an array of endpoint URLs"),
            ));
        };
        config.mirrors.insert(registry.to_string(), list);
    }
    let mut auths = BTreeMap::new();
    for (registry, auth) in
        option::<Map>(opts, "registry_auth", ctx, ACTION, position)?.unwrap_or_default()
    {
        let Some(auth) = auth.try_cast::<Map>() else {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: registry_auth.{registry} must be #{{ username, password }}"),
            ));
        };
        let field = |key: &str| auth.get(key).map(ToString::to_string).unwrap_or_default();
        let (username, password) = (field("username"), field("password"));
        if password.is_empty() {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: registry_auth.{registry} has no password"),
            ));
        }
        ctx.host.effects.recorder().add_secret(&password);
        auths.insert(registry.to_string(), Auth { username, password });
    }
    config.auths = auths;
    Ok(config)
}

fn fail_step(
    ctx: &RunContext,
    position: Position,
    node: &Node,
    command: Option<String>,
    message: String,
) -> Box<rhai::EvalAltResult> {
    let mut failure = ctx.failure(ACTION, Kind::Runtime, message);
    failure.node = Some(node.0.name.clone());
    failure.command = command.map(|c| ctx.host.effects.recorder().redact(&c));
    raise(position, failure)
}

/// Runs a changing command; a non-zero exit fails the step.
fn change(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    command: String,
    timeout: Duration,
) -> RhaiResult<()> {
    ctx.run_change(call, ACTION, node, command.clone(), &command, timeout)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_file(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    path: &str,
    content: Vec<u8>,
    mode: u32,
    what: &str,
    local_file: bool,
) -> RhaiResult<()> {
    let effect = Effect::WriteFile {
        node: Arc::clone(node.spec()),
        path: path.to_owned(),
        content,
        mode,
    };
    let mut step = ctx.new_step(call, ACTION, node, Access::Change);
    step.recheck = crate::effects::Recheck::infer(&effect);
    // A release tarball is a local file (and binary): its content is never shown.
    step.hide_content = local_file;
    let outcome = ctx.perform_step(
        call,
        step,
        format!("write {path} ({what}, mode {mode:04o})"),
        effect,
    )?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(fail_step(
            ctx,
            call.call_position(),
            node,
            None,
            format!(
                "cannot write {path} on {}: {}",
                node.0.name,
                tail(&outcome.stderr, 5)
            ),
        ));
    }
    Ok(())
}

fn install(ctx: &RunContext, call: &NativeCallContext, node: &Node, opts: &Map) -> RhaiResult<Map> {
    let position = call.call_position();
    check_options(ctx, opts, KNOWN, ACTION, position)?;
    let source = string_option(ctx, opts, "source", position)?.unwrap_or_else(|| "package".into());
    let wait = match opts.get("timeout") {
        None => Duration::from_secs(120),
        Some(value) => duration_value(value).ok_or_else(|| {
            input(
                ctx,
                position,
                format!("{ACTION}: option `timeout` must be like \"2m\" or seconds, got {value}"),
            )
        })?,
    };
    let config = config_from(ctx, opts, position)?;
    let rendered = config
        .render()
        .map_err(|e| input(ctx, position, format!("{ACTION}: {e}")))?;
    let mut path = String::from("containerd");

    match source.as_str() {
        "package" => {
            let package = string_option(ctx, opts, "package", position)?
                .unwrap_or_else(|| "containerd".into());
            let version = string_option(ctx, opts, "version", position)?.unwrap_or_default();
            super::packages::install(ctx, call, node, &package, &version, &Map::new())?;
        }
        "tarball" => {
            let Some(tarball) = string_option(ctx, opts, "tarball", position)? else {
                return Err(input(
                    ctx,
                    position,
                    format!(
                        "{ACTION}: source \"tarball\" needs `tarball`, the path of a containerd release tarball"
                    ),
                ));
            };
            let prefix = string_option(ctx, opts, "prefix", position)?
                .unwrap_or_else(|| "/usr/local".into());
            let local = ctx.local_path(call, ACTION, &tarball)?;
            let content = std::fs::read(&local).map_err(|e| {
                input(
                    ctx,
                    position,
                    format!("{ACTION}: cannot read {}: {e}", local.display()),
                )
            })?;
            let name = local.file_name().map_or_else(
                || "containerd.tar.gz".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            // Named by content: two different tarballs never share the upload path.
            let digest = hex::encode(sha2::Sha256::digest(&content));
            let remote = format!("/var/tmp/krun-{}-{name}", &digest[..12]);
            write_file(
                ctx,
                call,
                node,
                &remote,
                content,
                0o600,
                &format!("upload of {}", local.display()),
                true,
            )?;
            change(
                ctx,
                call,
                node,
                format!(
                    "mkdir -p -- {prefix_q} && tar -C {prefix_q} -xzf {remote_q} && rm -f -- {remote_q}",
                    prefix_q = quote(&prefix),
                    remote_q = quote(&remote)
                ),
                ctx.host.command_timeout,
            )?;
            let unit = crate::host::containerd::tarball_unit(&prefix)
                .map_err(|e| input(ctx, position, format!("{ACTION}: {e}")))?;
            write_file(
                ctx,
                call,
                node,
                UNIT_PATH,
                unit.into_bytes(),
                0o644,
                "systemd unit",
                false,
            )?;
            path = format!("{}/bin/containerd", prefix.trim_end_matches('/'));
        }
        other => {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: source must be \"package\" or \"tarball\", got \"{other}\""),
            ));
        }
    }

    let mode = if config.auths.is_empty() {
        0o644
    } else {
        0o600
    };
    write_file(
        ctx,
        call,
        node,
        CHECK_PATH,
        rendered.clone().into_bytes(),
        0o600,
        "config.toml to validate",
        false,
    )?;
    let validate = format!(
        "{} -c {CHECK_PATH} config dump >/dev/null; rc=$?; rm -f -- {CHECK_PATH}; exit $rc",
        quote(&path)
    );
    let outcome = ctx.step(
        call,
        ACTION,
        node,
        // Checks a file an earlier step of this primitive wrote: only recorded in a dry-run.
        Access::Wait,
        format!("validate: {} -c {CHECK_PATH} config dump", quote(&path)),
        Effect::Exec {
            node: Arc::clone(node.spec()),
            command: validate.clone(),
            timeout: Some(Duration::from_secs(120)),
        },
    )?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(fail_step(
            ctx,
            position,
            node,
            Some(format!("{} -c {CHECK_PATH} config dump", quote(&path))),
            format!(
                "containerd rejected the rendered config.toml on {} (exit {}); {CONFIG_PATH} was not changed:\n{}",
                node.0.name,
                outcome.exit_code,
                tail(&outcome.stderr, 10)
            ),
        ));
    }
    let validated = outcome.observed;
    write_file(
        ctx,
        call,
        node,
        CONFIG_PATH,
        rendered.into_bytes(),
        mode,
        "validated config.toml",
        false,
    )?;
    for command in [
        "systemctl daemon-reload",
        "systemctl enable containerd",
        "systemctl restart containerd",
    ] {
        change(
            ctx,
            call,
            node,
            command.to_owned(),
            ctx.host.command_timeout,
        )?;
    }

    let socket = format!("unix://{}", config.address);
    let check = crate::host::containerd::cri_check_command(&config.address);
    let outcome = ctx.step(
        call,
        ACTION,
        node,
        Access::Wait,
        format!(
            "wait until `{check}` answers (every 2s, at most {})",
            humantime::format_duration(wait)
        ),
        Effect::Poll {
            node: Arc::clone(node.spec()),
            command: check.clone(),
            interval: Duration::from_secs(2),
            timeout: wait,
        },
    )?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(fail_step(
            ctx,
            position,
            node,
            Some(check),
            format!(
                "containerd's CRI socket {socket} did not answer on {} within {}:\n{}",
                node.0.name,
                humantime::format_duration(wait),
                tail(&outcome.stderr, 5)
            ),
        ));
    }
    let runtime_version = crate::host::containerd::parse_runtime_version(&outcome.stdout);
    let mut map = Map::new();
    map.insert("source".into(), source.into());
    map.insert("config".into(), CONFIG_PATH.into());
    map.insert("socket".into(), socket.into());
    map.insert("runtime_version".into(), runtime_version.into());
    map.insert("validated".into(), Dynamic::from_bool(validated));
    Ok(map)
}
