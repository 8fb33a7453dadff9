//! Pulling images with a container runtime's own client: which client, the pull command, and
//! what a set of pulls found. Used by the registry canary, which pulls on one node running the
//! new runtime before any node is drained (the field report's old registry answered 404 on
//! manifests by digest to the new containerd).

use std::time::Duration;

use crate::quote::{operands, quote};

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

    pub fn socket(self) -> &'static str {
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
                operands([image])
            ),
            Client::Ctr => format!("ctr -n k8s.io images pull {}", operands([image])),
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
}
