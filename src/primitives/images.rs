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
use crate::preflight::{Finding, Severity};
use crate::primitives::node::Node;
use crate::quote::quote;

const ACTION: &str = "pull_images";
const CHECK: &str = "registry-pull";

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

/// The container runtime whose client pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    Crio,
}

impl Runtime {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "containerd" => Some(Runtime::Containerd),
            "crio" | "cri-o" => Some(Runtime::Crio),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
        }
    }

    fn socket(self) -> &'static str {
        match self {
            Runtime::Containerd => "unix:///run/containerd/containerd.sock",
            Runtime::Crio => "unix:///var/run/crio/crio.sock",
        }
    }
}

/// Which client pulls, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    Crictl { endpoint: String },
    Ctr,
}

impl Client {
    pub fn name(&self) -> &'static str {
        match self {
            Client::Crictl { .. } => "crictl",
            Client::Ctr => "ctr",
        }
    }

    /// The pull command for one image.
    pub fn pull_command(&self, image: &str) -> String {
        match self {
            Client::Crictl { endpoint } => format!(
                "crictl --runtime-endpoint {} pull {}",
                quote(endpoint),
                quote(image)
            ),
            Client::Ctr => format!("ctr -n k8s.io images pull {}", quote(image)),
        }
    }
}

/// What `pull_images` is asked to do.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub runtime: Runtime,
    pub endpoint: Option<String>,
    /// `None`: crictl when the node has it, else ctr (containerd only).
    pub client: Option<String>,
    pub timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            runtime: Runtime::Containerd,
            endpoint: None,
            client: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// One image the node could not pull.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedPull {
    pub image: String,
    pub registry: String,
    /// The end of the client's stderr.
    pub stderr: String,
}

/// What the pulls found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullReport {
    pub node: String,
    pub runtime: &'static str,
    pub client: &'static str,
    /// Every image asked for, each once.
    pub images: Vec<String>,
    pub pulled: Vec<String>,
    pub failed: Vec<FailedPull>,
    /// False when the pulls were only recorded (a dry-run).
    pub observed: bool,
    /// How the pulls were made, for the fix a finding suggests.
    #[serde(skip)]
    pub pulled_with: Client,
}

impl PullReport {
    /// A blocking preflight finding per image the node could not pull; in a dry-run, one
    /// finding that says the registries were not checked.
    pub fn findings(&self) -> Vec<Finding> {
        let client = self.client;
        let runtime = self.runtime;
        let command = |image: &str| self.pulled_with.pull_command(image);
        if !self.observed {
            return vec![Finding::new(
                CHECK,
                &self.node,
                Severity::Info,
                format!("node/{}", self.node),
                format!(
                    "the pulls of {} images on {} with {runtime} are shown, not run: the \
                     registries are not checked in a dry-run",
                    self.images.len(),
                    self.node
                ),
                "run without --dry-run; the pulls change nothing but the canary's image store",
            )];
        }
        self.failed
            .iter()
            .map(|failed| {
                let reason = failed.stderr.lines().last().unwrap_or("").trim();
                Finding::new(
                    CHECK,
                    &failed.image,
                    Severity::Block,
                    format!("image {}", failed.image),
                    format!(
                        "{} cannot pull {} from registry {} with {runtime} ({client}): {reason}",
                        self.node, failed.image, failed.registry
                    ),
                    format!(
                        "make registry {} serve {runtime} (upgrade it, or set a mirror in the \
                         runtime's registry configuration) and check with `{}` on {}",
                        failed.registry,
                        command(&failed.image),
                        self.node
                    ),
                )
            })
            .collect()
    }
}

/// The registry an image reference names, as the runtimes resolve it: the first path
/// component when it looks like a host (has a dot or a port, or is `localhost`), else
/// Docker Hub.
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// The images, trimmed, each once in first-seen order; no normalisation, so a tag and a
/// digest of the same repository are both pulled.
pub fn unique_images<'a>(images: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for image in images.into_iter().map(str::trim) {
        if !image.is_empty() && !unique.iter().any(|seen| seen == image) {
            unique.push(image.to_owned());
        }
    }
    unique
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
    let findings = report.findings();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_hosts_or_docker_hub() {
        for (image, registry) in [
            ("nginx:1.25", "docker.io"),
            ("library/nginx@sha256:0123", "docker.io"),
            ("bitnami/redis:7", "docker.io"),
            ("k8s.gcr.io/pause:3.2", "k8s.gcr.io"),
            (
                "my-register2.example.com/nginx:20231130",
                "my-register2.example.com",
            ),
            ("registry:5000/team/app:1", "registry:5000"),
            ("localhost/app:dev", "localhost"),
            ("[::1]:5000/app:1", "[::1]:5000"),
        ] {
            assert_eq!(registry_host(image), registry, "{image}");
        }
    }

    #[test]
    fn images_are_pulled_once_as_given() {
        let images = unique_images([
            "nginx:1.25",
            " registry.example.com/shop/web:1.2 ",
            "nginx:1.25",
            "",
            "docker.io/library/nginx:1.25",
            "nginx@sha256:0123",
        ]);
        assert_eq!(
            images,
            [
                "nginx:1.25",
                "registry.example.com/shop/web:1.2",
                "docker.io/library/nginx:1.25",
                "nginx@sha256:0123"
            ]
        );
    }

    #[test]
    fn the_pull_commands_quote_the_image() {
        let crictl = Client::Crictl {
            endpoint: Runtime::Crio.socket().into(),
        };
        assert_eq!(
            crictl.pull_command("quay.io/app:1"),
            "crictl --runtime-endpoint unix:///var/run/crio/crio.sock pull quay.io/app:1"
        );
        assert_eq!(
            Client::Ctr.pull_command("a b"),
            "ctr -n k8s.io images pull 'a b'"
        );
    }

    #[test]
    fn every_failed_pull_is_a_blocking_finding() {
        let report = PullReport {
            node: "w2".into(),
            runtime: "containerd",
            client: "crictl",
            images: vec!["old.example.com/web:1".into(), "nginx:1.25".into()],
            pulled: vec!["nginx:1.25".into()],
            failed: vec![FailedPull {
                image: "old.example.com/web:1".into(),
                registry: "old.example.com".into(),
                stderr: "E1123 noise\nFATA[0000] pulling image: not found".into(),
            }],
            observed: true,
            pulled_with: Client::Crictl {
                endpoint: Runtime::Containerd.socket().into(),
            },
        };
        let findings = report.findings();
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.id, "registry-pull/old.example.com/web:1");
        assert!(finding.blocks());
        assert_eq!(
            finding.message,
            "w2 cannot pull old.example.com/web:1 from registry old.example.com with containerd \
             (crictl): FATA[0000] pulling image: not found"
        );
        assert!(
            finding.fix.contains(
                "`crictl --runtime-endpoint unix:///run/containerd/containerd.sock pull old.example.com/web:1` on w2"
            ),
            "{}",
            finding.fix
        );
    }
}
