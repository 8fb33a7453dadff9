//! The inventory: which nodes exist and how to reach them (TOML).
//!
//! Every mistake in the file is reported with the file and line, because the operator fixing it
//! at 2 a.m. should not have to bisect a config file. Defaults in `[ssh]` apply to every node and
//! each node may override them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// A node as the inventory describes it, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `None`: the ssh agent, then the usual key files.
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub sudo: bool,
    pub proxy_jump: Option<String>,
    pub roles: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// All nodes of the inventory, by name.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Where the inventory came from, for error messages.
    pub source: Option<PathBuf>,
    pub nodes: BTreeMap<String, NodeSpec>,
    /// How to reach etcd (`[etcd]`), for the etcd primitives.
    pub etcd: Option<EtcdSection>,
    /// The load balancer(s) in front of the apiservers (`[apiserver_lb]`), whose backend lists
    /// preflight reads.
    pub apiserver_lb: Option<LbSection>,
    /// `[ssh]`, applied to nodes discovered from the cluster too.
    defaults: RawSsh,
}

/// The inventory's `[apiserver_lb]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSection {
    /// Inventory nodes running haproxy and/or keepalived in front of the apiservers.
    pub nodes: Vec<String>,
    /// The configuration file to read (default: haproxy's and keepalived's standard paths).
    #[serde(default)]
    pub config: Option<String>,
}

/// The `[etcd]` section of the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Reach etcd through this node's ssh connection instead of directly.
    pub via: Option<String>,
}

impl EtcdSection {
    /// Whether any endpoint needs TLS, and so the CA (and client certificate) files.
    pub fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }

    pub fn ca_path(&self) -> &Path {
        self.ca.as_deref().unwrap_or(Path::new(KUBEADM_CA))
    }

    pub fn cert_path(&self) -> &Path {
        self.cert.as_deref().unwrap_or(Path::new(KUBEADM_CERT))
    }

    pub fn key_path(&self) -> &Path {
        self.key.as_deref().unwrap_or(Path::new(KUBEADM_KEY))
    }
}

/// kubeadm's etcd CA, the documented default for `ca`.
pub const KUBEADM_CA: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// kubeadm's etcd health-check client certificate, the documented default for `cert`.
pub const KUBEADM_CERT: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
/// kubeadm's etcd health-check client key, the documented default for `key`.
pub const KUBEADM_KEY: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.key";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
    #[serde(default)]
    etcd: Option<EtcdSection>,
    #[serde(default)]
    apiserver_lb: Option<LbSection>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    user: Option<String>,
    identity: Option<String>,
    known_hosts: Option<String>,
    sudo: Option<bool>,
    proxy_jump: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    user: Option<String>,
    identity: Option<String>,
    known_hosts: Option<String>,
    sudo: Option<bool>,
    proxy_jump: Option<String>,
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("cannot read inventory {}: {e}", path.display())))?;
        Self::parse(&text, Some(path))
    }

    /// Parses inventory text; `source` names the file in errors.
    pub fn parse(text: &str, source: Option<&Path>) -> crate::Result<Self> {
        let shown = source.map_or_else(|| "<inventory>".to_owned(), |p| p.display().to_string());
        let raw: RawInventory = toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!("{shown}:{line}:{column}")
                })
                .unwrap_or(shown.clone());
            Error::input(format!(
                "invalid inventory {location}: {}",
                e.message().trim_end()
            ))
        })?;

        let mut nodes = BTreeMap::new();
        for (name, node) in raw.nodes {
            let spec = resolve_node(&name, node, &raw.ssh).map_err(|msg| {
                Error::input(format!("invalid inventory {shown}: node {name}: {msg}"))
            })?;
            nodes.insert(name, spec);
        }
        if let Some(via) = raw.etcd.as_ref().and_then(|e| e.via.as_ref())
            && !nodes.contains_key(via)
        {
            return Err(Error::input(format!(
                "invalid inventory {shown}: [etcd] via = `{via}` is not a node of the inventory"
            )));
        }
        if let Some(lb) = &raw.apiserver_lb {
            check_lb(lb, &nodes).map_err(|msg| {
                Error::input(format!("invalid inventory {shown}: [apiserver_lb] {msg}"))
            })?;
        }
        let inventory = Self {
            source: source.map(Path::to_path_buf),
            nodes,
            etcd: raw.etcd,
            apiserver_lb: raw.apiserver_lb,
            defaults: raw.ssh,
        };
        inventory.check_jumps()?;
        Ok(inventory)
    }

    /// A node the inventory does not list but the cluster does: reached at `host` (its
    /// InternalIP) with the `[ssh]` defaults.
    pub fn discovered(&self, name: &str, host: &str) -> NodeSpec {
        let raw = RawNode {
            host: host.to_owned(),
            port: None,
            roles: Vec::new(),
            labels: BTreeMap::new(),
            user: None,
            identity: None,
            known_hosts: None,
            sudo: None,
            proxy_jump: None,
        };
        resolve_node(name, raw, &self.defaults).unwrap_or_else(|_| NodeSpec {
            name: name.to_owned(),
            host: host.to_owned(),
            port: 22,
            user: current_user(),
            identity: None,
            known_hosts: home_dir().join(".ssh/known_hosts"),
            sudo: false,
            proxy_jump: None,
            roles: Vec::new(),
            labels: BTreeMap::new(),
        })
    }

    /// Looks a node up by name; an unknown name is invalid input that lists the known ones.
    pub fn node(&self, name: &str) -> crate::Result<&NodeSpec> {
        self.nodes.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
            let source = self.source.as_ref().map_or_else(
                || "no inventory given".to_owned(),
                |p| format!("inventory {}", p.display()),
            );
            let mut message = format!("unknown node `{name}` ({source}");
            if known.is_empty() {
                message.push_str(", which has no nodes)");
            } else {
                message.push_str(&format!("; known nodes: {})", known.join(", ")));
            }
            if let Some(close) = crate::suggest::closest(name, known.iter().copied()) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            Error::input(message)
        })
    }

    fn check_jumps(&self) -> crate::Result<()> {
        for spec in self.nodes.values() {
            let mut seen = vec![spec.name.as_str()];
            let mut current = spec;
            while let Some(jump) = &current.proxy_jump {
                let Some(next) = self.nodes.get(jump) else {
                    return Err(Error::input(format!(
                        "invalid inventory: node {} uses proxy_jump `{jump}`, which is not a node of the inventory",
                        current.name
                    )));
                };
                if seen.contains(&next.name.as_str()) {
                    seen.push(&next.name);
                    return Err(Error::input(format!(
                        "invalid inventory: proxy_jump loop: {}",
                        seen.join(" -> ")
                    )));
                }
                seen.push(&next.name);
                current = next;
            }
        }
        Ok(())
    }
}

/// `[apiserver_lb]`: at least one node, every one an inventory node, an absolute config path.
fn check_lb(lb: &LbSection, nodes: &BTreeMap<String, NodeSpec>) -> Result<(), String> {
    if lb.nodes.is_empty() {
        return Err(
            "`nodes` is empty: name the inventory nodes running haproxy or keepalived in front \
             of the apiservers, or remove the section"
                .into(),
        );
    }
    for name in &lb.nodes {
        if !nodes.contains_key(name) {
            let mut message = format!("nodes: `{name}` is not a node of the inventory");
            if let Some(close) = crate::suggest::closest(name, nodes.keys().map(String::as_str)) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            return Err(message);
        }
    }
    if let Some(config) = &lb.config
        && !config.starts_with('/')
    {
        return Err(format!(
            "config = `{config}`: expected an absolute path on the load-balancer nodes, like \
             /etc/haproxy/haproxy.cfg"
        ));
    }
    Ok(())
}

fn resolve_node(name: &str, node: RawNode, defaults: &RawSsh) -> Result<NodeSpec, String> {
    if node.host.trim().is_empty() {
        return Err("`host` is empty".into());
    }
    let port = node.port.or(defaults.port).unwrap_or(22);
    if port == 0 {
        return Err("`port` must be between 1 and 65535".into());
    }
    let user = node
        .user
        .or_else(|| defaults.user.clone())
        .unwrap_or_else(current_user);
    let identity = node
        .identity
        .or_else(|| defaults.identity.clone())
        .map(|p| expand_home(&p));
    let known_hosts = node
        .known_hosts
        .or_else(|| defaults.known_hosts.clone())
        .map_or_else(|| home_dir().join(".ssh/known_hosts"), |p| expand_home(&p));
    Ok(NodeSpec {
        name: name.to_owned(),
        host: node.host,
        port,
        user,
        identity,
        known_hosts,
        sudo: node.sudo.or(defaults.sudo).unwrap_or(false),
        proxy_jump: node
            .proxy_jump
            .or_else(|| defaults.proxy_jump.clone())
            .filter(|j| j != name),
        roles: node.roles,
        labels: node.labels,
    })
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None if path == "~" => home_dir(),
        None => PathBuf::from(path),
    }
}

/// The user krun runs as, the default ssh user (like OpenSSH).
pub fn current_user() -> String {
    if let Ok(user) = std::env::var("USER")
        && !user.is_empty()
    {
        return user;
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "root".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_defaults_to_kubeadm_paths() {
        let section: EtcdSection = toml::from_str(
            r#"endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
               via = "m1""#,
        )
        .unwrap();
        assert!(section.uses_tls());
        assert_eq!(section.ca_path(), Path::new(KUBEADM_CA));
        assert_eq!(section.cert_path(), Path::new(KUBEADM_CERT));
        assert_eq!(section.key_path(), Path::new(KUBEADM_KEY));
        assert_eq!(section.via.as_deref(), Some("m1"));
        let err = toml::from_str::<EtcdSection>("endpoint = []").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `endpoint`"),
            "{err}"
        );
    }

    #[test]
    fn defaults_apply_and_nodes_override() {
        let inv = Inventory::parse(
            r#"
[ssh]
user = "ops"
sudo = true
known_hosts = "/k"

[nodes.n1]
host = "10.0.0.11"
roles = ["worker"]
labels = { zone = "a" }

[nodes.m1]
host = "10.0.0.1"
port = 2222
user = "root"
sudo = false
"#,
            None,
        )
        .unwrap();
        let n1 = inv.node("n1").unwrap();
        assert_eq!((n1.user.as_str(), n1.port, n1.sudo), ("ops", 22, true));
        assert_eq!(n1.roles, ["worker"]);
        assert_eq!(n1.labels["zone"], "a");
        assert_eq!(n1.known_hosts, PathBuf::from("/k"));
        let m1 = inv.node("m1").unwrap();
        assert_eq!((m1.user.as_str(), m1.port, m1.sudo), ("root", 2222, false));
    }

    #[test]
    fn errors_name_file_and_line() {
        let path = Path::new("inv.toml");
        let err = Inventory::parse("[nodes.n1]\nport = 22\n", Some(path)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("inv.toml:1:1"), "{}", err.message);
        assert!(
            err.message.contains("missing field `host`"),
            "{}",
            err.message
        );

        let err =
            Inventory::parse("[nodes.n1]\nhost = \"h\"\nport = 70000\n", Some(path)).unwrap_err();
        assert!(err.message.contains("inv.toml:3:8"), "{}", err.message);

        let err = Inventory::parse("[nodes.n1\n", Some(path)).unwrap_err();
        assert!(err.message.contains("inv.toml:1:"), "{}", err.message);
    }

    #[test]
    fn unknown_node_lists_known_and_suggests() {
        let inv = Inventory::parse("[nodes.worker-1]\nhost = \"h\"\n", None).unwrap();
        let err = inv.node("worker1").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message.contains("known nodes: worker-1"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("did you mean `worker-1`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn proxy_jump_must_exist_and_not_loop() {
        let err =
            Inventory::parse("[nodes.a]\nhost = \"h\"\nproxy_jump = \"b\"\n", None).unwrap_err();
        assert!(err.message.contains("not a node"), "{}", err.message);
        let err = Inventory::parse(
            "[nodes.a]\nhost = \"h\"\nproxy_jump = \"b\"\n[nodes.b]\nhost = \"h\"\nproxy_jump = \"a\"\n",
            None,
        )
        .unwrap_err();
        assert!(err.message.contains("loop"), "{}", err.message);
    }

    #[test]
    fn apiserver_lb_names_inventory_nodes() {
        let nodes = "[nodes.lb1]\nhost = \"h\"\n[nodes.m1]\nhost = \"h\"\n";
        let inv =
            Inventory::parse(&format!("{nodes}[apiserver_lb]\nnodes = [\"lb1\"]\n"), None).unwrap();
        assert_eq!(inv.apiserver_lb.unwrap().nodes, ["lb1"]);
        let err = Inventory::parse(&format!("{nodes}[apiserver_lb]\nnodes = [\"lb\"]\n"), None)
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message
                .contains("[apiserver_lb] nodes: `lb` is not a node"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("did you mean `lb1`"),
            "{}",
            err.message
        );
        let err = Inventory::parse(
            &format!("{nodes}[apiserver_lb]\nnodes = [\"lb1\"]\nconfig = \"haproxy.cfg\"\n"),
            None,
        )
        .unwrap_err();
        assert!(err.message.contains("absolute path"), "{}", err.message);
        let err =
            Inventory::parse(&format!("{nodes}[apiserver_lb]\nnodes = []\n"), None).unwrap_err();
        assert!(err.message.contains("`nodes` is empty"), "{}", err.message);
    }

    #[test]
    fn a_bastion_does_not_jump_through_itself() {
        let inv = Inventory::parse(
            "[ssh]\nproxy_jump = \"bastion\"\n[nodes.bastion]\nhost = \"b\"\n[nodes.n1]\nhost = \"h\"\n",
            None,
        )
        .unwrap();
        assert_eq!(inv.node("bastion").unwrap().proxy_jump, None);
        assert_eq!(
            inv.node("n1").unwrap().proxy_jump.as_deref(),
            Some("bastion")
        );
    }
}
