//! `pull_images`: pulls images on a node with its container runtime's own client, so that a
//! registry the runtime cannot talk to shows up on one canary node before any node is drained
//! (seed 000: after the switch to containerd, the old registry answered 404 on manifests by
//! digest, and the drained nodes could not start their pods again).
//!
//! The client is crictl against the runtime's CRI socket: it pulls exactly as kubelet will,
//! with the registry mirrors and credentials of the runtime's CRI configuration. Where crictl is
//! not installed, a containerd canary falls back to `ctr -n k8s.io images pull`, which talks to
//! the registry directly and does not read the CRI plugin's mirrors and credentials; CRI-O has
//! no other client, so a CRI-O canary without crictl is an error.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Engine, Map, NativeCallContext, Position};

use super::{
    RhaiResult, RunContext, check_options, duration_value, option, primitive, raise, tail,
};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::host::images::{
    Client, FailedPull, PullOptions, PullReport, Runtime, registry_host, unique_images,
};
use crate::primitives::node::Node;

const ACTION: &str = "pull_images";

const DOC: &str = "Pulls every image of `images` on `node` (a canary already running the new runtime) with\n\
that runtime's client, one step per image, and returns a report map. Images are pulled once\n\
each, tags and digests as given. `opts`: `runtime` (\"containerd\", default, or \"crio\"),\n\
`endpoint` (the CRI socket; default unix:///run/containerd/containerd.sock or\n\
unix:///var/run/crio/crio.sock), `client` (\"crictl\" or \"ctr\"; default crictl when the node has\n\
it, else `ctr -n k8s.io images pull` for containerd, which ignores the CRI plugin's registry\n\
mirrors and credentials), `timeout` per pull (default \"10m\").\n\
A failed pull does not stop the primitive: it is reported. Returns `#{ node, runtime, client,\n\
images, pulled, failed: [#{ image, registry, stderr }], findings, observed }`; `findings` are\n\
preflight findings `registry-pull/<image>` (severity block), `observed` is false in a dry-run,\n\
where the pulls are shown and not run.";

const KNOWN: &[&str] = &["runtime", "endpoint", "client", "timeout"];

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        ACTION,
        &["node: Node", "images: Array", "opts: Map", "Map"],
        DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, images: Array, opts: Map| -> RhaiResult<Map> {
            pull_images(&ctx, &call, &node, &images, &opts)
        },
    );
    let ctx = Arc::clone(context);
    primitive(ACTION, &["node: Node", "images: Array", "Map"], DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, images: Array| -> RhaiResult<Map> {
            pull_images(&ctx, &call, &node, &images, &Map::new())
        },
    );
}

fn input(ctx: &RunContext, position: Position, message: String) -> Box<rhai::EvalAltResult> {
    raise(position, ctx.failure(ACTION, Kind::Input, message))
}

/// Reads the primitive's options.
pub fn options(ctx: &RunContext, position: Position, opts: &Map) -> RhaiResult<PullOptions> {
    check_options(ctx, opts, KNOWN, ACTION, position)?;
    let text = |key: &str| {
        option::<rhai::ImmutableString>(opts, key, ctx, ACTION, position)
            .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
    };
    let mut options = PullOptions::default();
    if let Some(runtime) = text("runtime")? {
        options.runtime = Runtime::parse(&runtime).ok_or_else(|| {
            input(
                ctx,
                position,
                format!("{ACTION}: runtime must be \"containerd\" or \"crio\", got \"{runtime}\""),
            )
        })?;
    }
    options.endpoint = text("endpoint")?;
    options.client = text("client")?;
    match options.client.as_deref() {
        None | Some("crictl") => {}
        Some("ctr") if options.runtime == Runtime::Containerd => {}
        Some("ctr") => {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: ctr is containerd's client; CRI-O pulls with crictl"),
            ));
        }
        Some(other) => {
            return Err(input(
                ctx,
                position,
                format!("{ACTION}: client must be \"crictl\" or \"ctr\", got \"{other}\""),
            ));
        }
    }
    if let Some(value) = opts.get("timeout").filter(|v| !v.is_unit()) {
        options.timeout = duration_value(value).ok_or_else(|| {
            input(
                ctx,
                position,
                format!("{ACTION}: option `timeout` must be like \"10m\" or seconds, got {value}"),
            )
        })?;
    }
    Ok(options)
}

fn pull_images(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    images: &Array,
    opts: &Map,
) -> RhaiResult<Map> {
    let position = call.call_position();
    let mut names = Vec::with_capacity(images.len());
    for image in images {
        if !image.is_string() {
            return Err(input(
                ctx,
                position,
                format!(
                    "{ACTION}: images must be strings like \"nginx:1.25\", got {}",
                    image.type_name()
                ),
            ));
        }
        names.push(image.to_string());
    }
    let options = options(ctx, position, opts)?;
    let report = pull(ctx, call, node, &names, &options)?;
    let findings = crate::preflight::registry::findings(&report);
    let mut map = rhai::serde::to_dynamic(&report)?
        .try_cast::<Map>()
        .unwrap_or_default();
    map.insert("findings".into(), rhai::serde::to_dynamic(&findings)?);
    Ok(map)
}

/// Pulls `images` on `node`, one step per image; failed pulls are reported, not raised.
pub fn pull(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    images: &[String],
    options: &PullOptions,
) -> RhaiResult<PullReport> {
    let images = unique_images(images.iter().map(String::as_str));
    let client = choose_client(ctx, call, node, options)?;
    let mut report = PullReport {
        node: node.0.name.clone(),
        runtime: options.runtime.name(),
        client: client.name(),
        images: images.clone(),
        pulled: Vec::new(),
        failed: Vec::new(),
        observed: true,
        pulled_with: client.clone(),
    };
    for image in images {
        let command = client.pull_command(&image);
        // A pull reaches the same state when repeated: a resumed run pulls again.
        let outcome = ctx.step_rechecked(
            call,
            ACTION,
            node,
            Access::Change,
            command.clone(),
            Effect::Exec {
                node: Arc::clone(node.spec()),
                command,
                timeout: Some(options.timeout),
            },
            Recheck::Rerun,
        )?;
        if !outcome.observed {
            report.observed = false;
        } else if outcome.exit_code == 0 {
            report.pulled.push(image);
        } else {
            report.failed.push(FailedPull {
                registry: registry_host(&image).to_owned(),
                stderr: tail(&outcome.stderr, 5),
                image,
            });
        }
    }
    if !report.failed.is_empty() {
        tracing::warn!(
            target: "krun::images",
            "{}: {} of {} images could not be pulled with {}",
            node.0.name,
            report.failed.len(),
            report.images.len(),
            report.runtime
        );
    }
    Ok(report)
}

/// crictl unless told otherwise; ctr when a containerd node has no crictl (a read, so a dry-run
/// shows the commands the run would make).
fn choose_client(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    options: &PullOptions,
) -> RhaiResult<Client> {
    let crictl = Client::Crictl {
        endpoint: options
            .endpoint
            .clone()
            .unwrap_or_else(|| options.runtime.socket().to_owned()),
    };
    match options.client.as_deref() {
        Some("crictl") => return Ok(crictl),
        Some("ctr") => return Ok(Client::Ctr),
        _ => {}
    }
    let probe = "command -v crictl".to_owned();
    let outcome = ctx.step(
        call,
        ACTION,
        node,
        Access::Read,
        probe.clone(),
        Effect::Exec {
            node: Arc::clone(node.spec()),
            command: probe,
            timeout: Some(Duration::from_secs(60)),
        },
    )?;
    if !outcome.observed || outcome.exit_code == 0 {
        return Ok(crictl);
    }
    match options.runtime {
        Runtime::Containerd => Ok(Client::Ctr),
        Runtime::Crio => {
            let mut failure = ctx.failure(
                ACTION,
                Kind::Runtime,
                format!(
                    "{} has no crictl, the only client that pulls through CRI-O: install cri-tools there",
                    node.0.name
                ),
            );
            failure.node = Some(node.0.name.clone());
            Err(raise(call.call_position(), failure))
        }
    }
}
