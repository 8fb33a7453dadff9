//! The load balancer in front of the apiservers: its configured backend list names every
//! control-plane node.
//!
//! Seed 000: the keepalived VIP every worker used had two of its three apiservers commented out
//! of its configuration, unnoticed, so upgrading the one left cut every worker off the API. The
//! `/readyz` probes of [`super::apiserver`] see every apiserver up and the VIP answering; only the
//! load balancer's own configuration says which apiservers the VIP reaches. So preflight reads it,
//! over ssh, on the load-balancer nodes the inventory's `[apiserver_lb]` section (or the `lb`
//! option, `--lb NODE`) names: haproxy's `backend`/`listen` sections that forward to the
//! apiserver port, and keepalived's LVS `virtual_server` blocks. Every control-plane node (role
//! label `control-plane` or `master`, by its InternalIP or name) missing from a list, or listed
//! but `disabled`, is a block; a backend that is no control-plane node, and two load balancers
//! whose lists differ, are warnings.
//!
//! The configuration is read as one read-only step per load balancer; lines that may carry a
//! password (keepalived's `auth_pass`, haproxy's `stats auth`, `userlist` users) are dropped on the
//! node and the rest is kept out of the log. A dry-run reads, offline mode reports the check as
//! not done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Finding, Severity, Steps};
use crate::effects::{Access, Effect};
use crate::inventory::Inventory;
use crate::kube::Call as KubeCall;
use crate::kube::node::ControlPlane;

/// The port kube-apiserver listens on (kubeadm's default).
pub const APISERVER_PORT: u16 = 6443;
/// Where haproxy and keepalived keep their configuration by default.
pub const DEFAULT_CONFIGS: &[&str] = &[
    "/etc/haproxy/haproxy.cfg",
    "/etc/keepalived/keepalived.conf",
];

/// Which load balancers to read (`lb` option, `--lb`; else the inventory's `[apiserver_lb]`).
#[derive(Debug, Clone, Default)]
pub struct LbCheck {
    /// Inventory nodes running haproxy and/or keepalived; empty: the inventory's.
    pub nodes: Vec<String>,
    /// Configuration files to read instead of [`DEFAULT_CONFIGS`].
    pub configs: Vec<String>,
}

/// One `server` (haproxy) or `real_server` (keepalived) line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Server {
    /// haproxy's server name; keepalived's real servers have none (the address).
    pub name: String,
    /// An IP address or host name.
    pub address: String,
    pub port: Option<u16>,
    /// `disabled` (haproxy) or `weight 0` (keepalived): listed, but sent no traffic.
    pub disabled: bool,
    /// `backup` (haproxy): used only when every other server is down.
    pub backup: bool,
}

/// A list of backends traffic for the apiservers goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendList {
    /// How the list is named in messages: `haproxy backend kube-apiserver`,
    /// `keepalived virtual_server 10.0.0.10:6443`.
    pub label: String,
    /// Short form for finding ids: `kube-apiserver`, `10.0.0.10:6443`.
    pub key: String,
    pub servers: Vec<Server>,
}

/// What one configuration file says about the apiservers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub lists: Vec<BackendList>,
    /// keepalived VRRP addresses (`virtual_ipaddress`), with the instance's name.
    pub vips: Vec<(String, String)>,
}

/// Whether a configuration file is keepalived's (else it is read as haproxy's).
pub fn is_keepalived(text: &str) -> bool {
    text.lines().map(strip_comment).any(|l| {
        let first = l.split_whitespace().next().unwrap_or("");
        matches!(
            first,
            "vrrp_instance"
                | "virtual_server"
                | "global_defs"
                | "vrrp_script"
                | "virtual_server_group"
        )
    })
}

fn strip_comment(line: &str) -> &str {
    let cut = line.find(['#', '!']).unwrap_or(line.len());
    line[..cut].trim()
}

/// `ADDR:PORT`, `[v6]:PORT`, `ADDR` (no port), with haproxy's `ipv4@` prefix → address and port.
fn split_address(text: &str) -> (String, Option<u16>) {
    let text = text.split_once('@').map_or(text, |(_, rest)| rest);
    if let Some(rest) = text.strip_prefix('[')
        && let Some((address, tail)) = rest.split_once(']')
    {
        return (
            address.to_owned(),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match text.rsplit_once(':') {
        Some((address, port)) if !address.contains(':') => (address.to_owned(), port.parse().ok()),
        _ => (text.to_owned(), None),
    }
}

/// The ports a `bind` line listens on (`bind *:6443`, `bind 10.0.0.10:6443,:8443 ssl …`).
fn bind_ports(args: &[&str]) -> Vec<u16> {
    args.first()
        .map(|addresses| {
            addresses
                .split(',')
                // The port follows the last colon, IPv6 (`:::6443`) included.
                .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The apiserver backend lists of an haproxy configuration: the `backend` and `listen` sections
/// with a server on `port`, a `listen` section bound on `port`, and the backends a `frontend`
/// bound on `port` sends to (`default_backend`, `use_backend`).
pub fn parse_haproxy(text: &str, port: u16) -> Vec<BackendList> {
    #[derive(Default)]
    struct Section {
        kind: String,
        name: String,
        binds: Vec<u16>,
        targets: Vec<String>,
        servers: Vec<Server>,
    }
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        // haproxy comments start at `#` (no `!`).
        let line = line.split('#').next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&keyword, args)) = words.split_first() else {
            continue;
        };
        match keyword {
            "global" | "defaults" | "frontend" | "backend" | "listen" | "userlist" | "peers"
            | "resolvers" | "cache" | "program" | "http-errors" | "ring" | "mailers" => {
                sections.push(Section {
                    kind: keyword.to_owned(),
                    name: args.first().copied().unwrap_or("").to_owned(),
                    ..Section::default()
                });
                // `listen NAME ADDR:PORT` (the old form) binds too.
                if keyword == "listen"
                    && let Some(section) = sections.last_mut()
                {
                    section
                        .binds
                        .extend(bind_ports(args.get(1..).unwrap_or(&[])));
                }
            }
            _ => {
                let Some(section) = sections.last_mut() else {
                    continue;
                };
                match keyword {
                    "bind" => section.binds.extend(bind_ports(args)),
                    "default_backend" | "use_backend" => {
                        if let Some(target) = args.first() {
                            section.targets.push((*target).to_owned());
                        }
                    }
                    "server" if args.len() >= 2 => {
                        let (address, server_port) = split_address(args[1]);
                        let options = &args[2..];
                        section.servers.push(Server {
                            name: args[0].to_owned(),
                            address,
                            port: server_port,
                            disabled: options.contains(&"disabled"),
                            backup: options.contains(&"backup"),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    let targeted: BTreeSet<&str> = sections
        .iter()
        .filter(|s| s.kind == "frontend" && s.binds.contains(&port))
        .flat_map(|s| s.targets.iter().map(String::as_str))
        .collect();
    sections
        .iter()
        .filter(|s| s.kind == "backend" || s.kind == "listen")
        .filter(|s| {
            s.servers.iter().any(|srv| srv.port == Some(port))
                || (s.kind == "listen" && s.binds.contains(&port))
                || targeted.contains(s.name.as_str())
        })
        .map(|s| BackendList {
            label: format!("haproxy {} {}", s.kind, s.name),
            key: s.name.clone(),
            servers: s.servers.clone(),
        })
        .collect()
}

/// A keepalived configuration as nested blocks: `(words of the line, children)`.
#[derive(Debug, Default)]
struct Block {
    words: Vec<String>,
    children: Vec<Block>,
}

fn blocks(text: &str) -> Vec<Block> {
    // Braces may share a line with words (`real_server 10.0.0.1 6443 {`) or stand alone.
    let mut tokens: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        let line = strip_comment(line);
        let mut words = Vec::new();
        for word in line
            .replace('{', " { ")
            .replace('}', " } ")
            .split_whitespace()
        {
            if word == "{" || word == "}" {
                if !words.is_empty() {
                    tokens.push(std::mem::take(&mut words));
                }
                tokens.push(vec![word.to_owned()]);
            } else {
                words.push(word.to_owned());
            }
        }
        if !words.is_empty() {
            tokens.push(words);
        }
    }
    let mut stack: Vec<Block> = vec![Block::default()];
    for token in tokens {
        match token.first().map(String::as_str) {
            Some("{") => {
                // The previous statement opens a block.
                let parent = stack.last_mut().expect("the root is never popped");
                let opened = parent.children.pop().unwrap_or_default();
                stack.push(opened);
            }
            Some("}") => {
                if stack.len() > 1 {
                    let done = stack.pop().expect("more than the root");
                    stack
                        .last_mut()
                        .expect("the root is never popped")
                        .children
                        .push(done);
                }
            }
            _ => stack
                .last_mut()
                .expect("the root is never popped")
                .children
                .push(Block {
                    words: token,
                    children: Vec::new(),
                }),
        }
    }
    while stack.len() > 1 {
        let done = stack.pop().expect("more than the root");
        stack.last_mut().expect("the root").children.push(done);
    }
    stack.pop().map(|root| root.children).unwrap_or_default()
}

/// keepalived's LVS `virtual_server VIP PORT` blocks on `port` (or with real servers on it) and
/// its VRRP addresses.
pub fn parse_keepalived(text: &str, port: u16) -> Parsed {
    let mut parsed = Parsed::default();
    for block in blocks(text) {
        let keyword = block.words.first().map(String::as_str);
        match keyword {
            Some("virtual_server") => {
                let vip = block.words.get(1).cloned().unwrap_or_default();
                let vport: Option<u16> = block.words.get(2).and_then(|p| p.parse().ok());
                let servers: Vec<Server> = block
                    .children
                    .iter()
                    .filter(|c| c.words.first().map(String::as_str) == Some("real_server"))
                    .map(|c| {
                        let address = c.words.get(1).cloned().unwrap_or_default();
                        let weight = c
                            .children
                            .iter()
                            .find(|w| w.words.first().map(String::as_str) == Some("weight"))
                            .and_then(|w| w.words.get(1))
                            .and_then(|w| w.parse::<i64>().ok());
                        Server {
                            name: address.clone(),
                            address,
                            port: c.words.get(2).and_then(|p| p.parse().ok()),
                            disabled: weight == Some(0),
                            backup: false,
                        }
                    })
                    .collect();
                if vport == Some(port) || servers.iter().any(|s| s.port == Some(port)) {
                    let key = match vport {
                        Some(p) => format!("{vip}:{p}"),
                        None => vip.clone(),
                    };
                    parsed.lists.push(BackendList {
                        label: format!("keepalived virtual_server {key}"),
                        key,
                        servers,
                    });
                }
            }
            Some("vrrp_instance") => {
                let instance = block.words.get(1).cloned().unwrap_or_default();
                for child in &block.children {
                    if child.words.first().map(String::as_str) == Some("virtual_ipaddress") {
                        for address in &child.children {
                            if let Some(first) = address.words.first() {
                                let ip = first.split('/').next().unwrap_or(first);
                                parsed.vips.push((instance.clone(), ip.to_owned()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    parsed
}

const FILE: &str = "--krun-lb-config--";
const UNREADABLE: &str = "--krun-lb-unreadable--";

/// The shell command that prints each existing file of `paths` after a marker line, without
/// the lines that may hold a password.
pub fn read_command(paths: &[String]) -> String {
    let list = paths
        .iter()
        .map(|p| crate::quote::quote(p))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "for f in {list}; do [ -e \"$f\" ] || continue; \
         if [ ! -r \"$f\" ]; then echo \"{UNREADABLE} $f\"; continue; fi; echo \"{FILE} $f\"; \
         grep -v -i -E 'auth_pass|stats[[:space:]]+auth|password|insecure-password' \"$f\" || true; \
         done; exit 0"
    )
}

/// Splits the command's output into the files read, `(path, text)`, and the paths that exist but
/// could not be read.
pub fn parse_output(stdout: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut reading = false;
    for line in stdout.lines() {
        if let Some(path) = line.strip_prefix(FILE).and_then(|r| r.strip_prefix(' ')) {
            files.push((path.to_owned(), String::new()));
            reading = true;
        } else if let Some(path) = line
            .strip_prefix(UNREADABLE)
            .and_then(|r| r.strip_prefix(' '))
        {
            unreadable.push(path.to_owned());
            reading = false;
        } else if reading && let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    (files, unreadable)
}

/// What one load balancer's configuration files say.
pub fn parse_files(files: &[(String, String)], port: u16) -> Parsed {
    let mut parsed = Parsed::default();
    for (_, text) in files {
        if is_keepalived(text) {
            let more = parse_keepalived(text, port);
            parsed.lists.extend(more.lists);
            parsed.vips.extend(more.vips);
        } else {
            parsed.lists.extend(parse_haproxy(text, port));
        }
    }
    parsed
}

fn matches(server: &Server, cp: &ControlPlane) -> bool {
    server.address == cp.name || cp.address.as_deref() == Some(server.address.as_str())
}

fn shown(cp: &ControlPlane) -> String {
    match &cp.address {
        Some(address) => format!("{} ({address})", cp.name),
        None => cp.name.clone(),
    }
}

/// One load balancer's findings: its apiserver backend lists against the control-plane nodes.
/// `files` are the paths that were read (for messages).
pub fn judge(
    lb: &str,
    files: &[String],
    parsed: &Parsed,
    control: &[ControlPlane],
) -> Vec<Finding> {
    let mut found = Vec::new();
    let object = format!("node/{lb}");
    if parsed.lists.is_empty() {
        let vips: Vec<String> = parsed
            .vips
            .iter()
            .map(|(instance, ip)| format!("{ip} (vrrp_instance {instance})"))
            .collect();
        let message = if files.is_empty() {
            format!(
                "no load-balancer configuration was found on {lb} (looked for {}), so its \
                 backend list is unknown",
                DEFAULT_CONFIGS.join(", ")
            )
        } else if !vips.is_empty() {
            format!(
                "keepalived on {lb} only moves the VIP {} and lists no backends; they come from \
                 haproxy, and {} has no haproxy section forwarding to port {APISERVER_PORT}",
                vips.join(", "),
                files.join(", ")
            )
        } else {
            format!(
                "{} on {lb} has no backend list forwarding to the apiserver port {APISERVER_PORT}",
                files.join(", ")
            )
        };
        found.push(Finding::new(
            "lb-no-backends",
            lb,
            Severity::Warn,
            object,
            message,
            "name the configuration that holds the apiserver backends (`config` in \
             [apiserver_lb], or --lb-config), or check that this node is the apiserver load \
             balancer",
        ));
        return found;
    }
    if !parsed.vips.is_empty() {
        let vips: Vec<String> = parsed.vips.iter().map(|(_, ip)| ip.clone()).collect();
        found.push(Finding::new(
            "lb-vip",
            lb,
            Severity::Info,
            object.clone(),
            format!(
                "keepalived on {lb} holds the VIP {}; its backends are the lists judged here",
                vips.join(", ")
            ),
            "nothing to do",
        ));
    }
    for list in &parsed.lists {
        let live = |cp: &ControlPlane| list.servers.iter().any(|s| matches(s, cp) && !s.disabled);
        let reached = control.iter().filter(|cp| live(cp)).count();
        for cp in control {
            if live(cp) {
                continue;
            }
            let listed = list.servers.iter().any(|s| matches(s, cp));
            let (check, why, fix) = if listed {
                (
                    "lb-backend-disabled",
                    format!("is listed but disabled in {lb}'s {}", list.label),
                    format!(
                        "enable it in {}'s configuration on {lb} (remove `disabled`, or a \
                         `weight 0`) and reload the load balancer",
                        list.label
                    ),
                )
            } else {
                (
                    "lb-backend-missing",
                    format!("is not a backend of {lb}'s {}", list.label),
                    format!(
                        "add {} to {} on {lb} (for haproxy: `server {} {}:{APISERVER_PORT} check`) \
                         and reload the load balancer",
                        shown(cp),
                        list.label,
                        cp.name,
                        cp.address.as_deref().unwrap_or(&cp.name)
                    ),
                )
            };
            found.push(Finding::new(
                check,
                &format!("{lb}:{}:{}", list.key, cp.name),
                Severity::Block,
                object.clone(),
                format!(
                    "the VIP reaches only {reached} of {} apiservers: {} {why}; upgrading a \
                     control-plane node it does reach can leave every kubelet without an API \
                     server",
                    control.len(),
                    shown(cp)
                ),
                fix,
            ));
        }
        for server in &list.servers {
            if control.iter().any(|cp| matches(server, cp)) {
                continue;
            }
            found.push(Finding::new(
                "lb-backend-unknown",
                &format!("{lb}:{}:{}", list.key, server.address),
                Severity::Warn,
                object.clone(),
                format!(
                    "{lb}'s {} sends apiserver traffic to {} ({}), which is not a control-plane \
                     node of the cluster",
                    list.label, server.address, server.name
                ),
                "remove it from the load balancer, or check that the node carries the \
                 control-plane role label",
            ));
        }
    }
    found
}

/// The backends a load balancer sends apiserver traffic to, as `address:port` (`disabled`
/// marked), for comparing load balancers.
fn backend_set(parsed: &Parsed) -> BTreeSet<String> {
    parsed
        .lists
        .iter()
        .flat_map(|l| &l.servers)
        .map(|s| {
            let mut text = match s.port {
                Some(p) => format!("{}:{p}", s.address),
                None => s.address.clone(),
            };
            if s.disabled {
                text.push_str(" (disabled)");
            }
            text
        })
        .collect()
}

/// Load balancers whose backend lists differ: a warning for each pair with the first.
pub fn compare(read: &BTreeMap<String, Parsed>) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut iter = read.iter().filter(|(_, p)| !p.lists.is_empty());
    let Some((first, first_parsed)) = iter.next() else {
        return found;
    };
    let reference = backend_set(first_parsed);
    for (other, parsed) in iter {
        let set = backend_set(parsed);
        if set == reference {
            continue;
        }
        let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            a.difference(b).cloned().collect::<Vec<_>>().join(", ")
        };
        let mut parts = Vec::new();
        let (a, b) = (only(&reference, &set), only(&set, &reference));
        if !a.is_empty() {
            parts.push(format!("only {first} has {a}"));
        }
        if !b.is_empty() {
            parts.push(format!("only {other} has {b}"));
        }
        found.push(Finding::new(
            "lb-backends-differ",
            &format!("{first}:{other}"),
            Severity::Warn,
            format!("node/{first} node/{other}"),
            format!(
                "the load balancers {first} and {other} do not send apiserver traffic to the same \
                 backends ({}): which apiservers the VIP reaches depends on which of them holds it",
                parts.join("; ")
            ),
            "make their apiserver backend lists the same (keep the configuration in version \
             control and deploy it to every load balancer)",
        ));
    }
    found
}

/// The load balancers to read: the option's, else the inventory's.
pub fn lb_nodes(inventory: &Inventory, options: &LbCheck) -> (Vec<String>, Vec<String>) {
    let section = inventory.apiserver_lb.as_ref();
    let nodes = if options.nodes.is_empty() {
        section.map(|s| s.nodes.clone()).unwrap_or_default()
    } else {
        options.nodes.clone()
    };
    let configs = if !options.configs.is_empty() {
        options.configs.clone()
    } else if let Some(config) = section.and_then(|s| s.config.clone()) {
        vec![config]
    } else {
        DEFAULT_CONFIGS.iter().map(|p| (*p).to_owned()).collect()
    };
    (nodes, configs)
}

fn not_checked(key: &str, message: String, fix: &str) -> Finding {
    Finding::new(
        "lb-not-checked",
        key,
        Severity::Info,
        "apiserver load balancer",
        message,
        fix,
    )
}

/// Reads the load balancers' configurations and judges them. No load balancer named: no
/// finding. Every name must be an inventory node (checked where the option is read).
pub fn check(steps: &Steps, inventory: &Inventory, options: &LbCheck) -> Vec<Finding> {
    let (nodes, configs) = lb_nodes(inventory, options);
    if nodes.is_empty() {
        return Vec::new();
    }
    let control = match steps.perform(
        "preflight",
        "cluster",
        Access::Read,
        KubeCall::ControlPlanes.describe(),
        Effect::call(KubeCall::ControlPlanes),
        false,
    ) {
        Ok(outcome) if !outcome.observed => {
            return vec![not_checked(
                "offline",
                "the load balancers' backend lists were not read (offline: the control-plane \
                 nodes are not known)"
                    .to_owned(),
                "run preflight with the cluster reachable",
            )];
        }
        Ok(outcome) => {
            serde_json::from_value::<Vec<ControlPlane>>(outcome.data).unwrap_or_default()
        }
        Err(failure) => {
            return vec![not_checked(
                "control-plane",
                format!(
                    "the load balancers' backend lists were not judged: the control-plane nodes \
                     could not be listed: {}",
                    super::failure_reason(&failure)
                ),
                "run preflight with the cluster reachable",
            )];
        }
    };
    if control.is_empty() {
        return vec![not_checked(
            "control-plane",
            "the load balancers' backend lists were not judged: no node of the cluster has the \
             role label node-role.kubernetes.io/control-plane (or master)"
                .to_owned(),
            "label the control-plane nodes",
        )];
    }
    let mut found = Vec::new();
    let mut reads = Vec::new();
    for name in &nodes {
        let Some(spec) = inventory.nodes.get(name) else {
            found.push(unreadable(name, "not a node of the inventory"));
            continue;
        };
        let effect = Effect::Exec {
            node: Arc::new(spec.clone()),
            command: read_command(&configs),
            timeout: Some(std::time::Duration::from_secs(30)),
        };
        let shown = format!(
            "read the load balancer's configuration ({}) for its apiserver backends",
            configs.join(", ")
        );
        reads.push((name.clone(), shown, effect));
    }
    let names: Vec<String> = reads.iter().map(|(n, _, _)| n.clone()).collect();
    let results = steps.read_concurrently("preflight", reads, true);
    let mut read = BTreeMap::new();
    let mut unobserved = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(outcome) if !outcome.observed => unobserved.push(name.clone()),
            Ok(outcome) if outcome.exit_code != 0 => found.push(unreadable(
                name,
                &format!(
                    "the command exited with code {}: {}",
                    outcome.exit_code,
                    outcome.stderr.trim()
                ),
            )),
            Ok(outcome) => {
                let (files, unreadable_files) = parse_output(&outcome.stdout);
                if !unreadable_files.is_empty() {
                    found.push(unreadable(
                        name,
                        &format!(
                            "{} exists but cannot be read (run krun as root on the node, or \
                             with `sudo = true` in the inventory)",
                            unreadable_files.join(", ")
                        ),
                    ));
                    continue;
                }
                let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
                let parsed = parse_files(&files, APISERVER_PORT);
                found.extend(judge(name, &paths, &parsed, &control));
                read.insert(name.clone(), parsed);
            }
            Err(failure) => found.push(unreadable(name, super::failure_reason(&failure))),
        }
    }
    found.extend(compare(&read));
    if !unobserved.is_empty() {
        found.push(not_checked(
            "unobserved",
            format!(
                "the configuration of {} was not read (offline, or the node could not be reached \
                 in this dry-run)",
                unobserved.join(", ")
            ),
            "run preflight with the load balancers reachable",
        ));
    }
    found
}

fn unreadable(node: &str, error: &str) -> Finding {
    Finding::new(
        "lb-unreadable",
        node,
        Severity::Warn,
        format!("node/{node}"),
        format!(
            "the load balancer configuration on {node} could not be read, so which apiservers the \
             VIP reaches is unknown: {error}"
        ),
        format!(
            "check that krun can reach {node} over ssh (see the inventory), then run preflight again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAPROXY: &str = r#"
global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
    mode tcp
    timeout connect 5s

frontend kube-apiserver
    bind *:6443
    mode tcp
    option tcplog
    default_backend kube-apiserver

backend kube-apiserver
    mode tcp
    option tcp-check
    balance roundrobin
    default-server inter 10s downinter 5s rise 2 fall 2
    server m1 10.0.0.1:6443 check
    #server m2 10.0.0.2:6443 check
    server m3 10.0.0.3:6443 check disabled

frontend ingress
    bind *:80
    default_backend ingress

backend ingress
    server w1 10.0.0.11:30080 check
"#;

    const KEEPALIVED_LVS: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id LVS_K8S
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    authentication {
        auth_type PASS
    }
    virtual_ipaddress {
        10.0.0.10/24 dev eth0
    }
}
virtual_server 10.0.0.10 6443 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.1 6443 {
        weight 1
        TCP_CHECK { connect_timeout 3 }
    }
#   real_server 10.0.0.2 6443 {
#       weight 1
#   }
    real_server 10.0.0.3 6443
    {
        weight 0
    }
}
"#;

    const KEEPALIVED_VRRP: &str =
        "vrrp_instance VI_1 {\n  state BACKUP\n  virtual_ipaddress {\n    10.0.0.10\n  }\n}\n";

    fn cps() -> Vec<ControlPlane> {
        (1..=3)
            .map(|i| ControlPlane {
                name: format!("m{i}"),
                address: Some(format!("10.0.0.{i}")),
            })
            .collect()
    }

    fn ids(found: &[Finding]) -> Vec<&str> {
        found.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn haproxy_apiserver_backends_are_found_by_port_and_frontend() {
        let lists = parse_haproxy(HAPROXY, APISERVER_PORT);
        assert_eq!(lists.len(), 1, "{lists:?}");
        assert_eq!(lists[0].label, "haproxy backend kube-apiserver");
        let servers = &lists[0].servers;
        assert_eq!(servers.len(), 2, "the commented-out m2 is not a server");
        assert_eq!(
            servers[0],
            Server {
                name: "m1".into(),
                address: "10.0.0.1".into(),
                port: Some(6443),
                disabled: false,
                backup: false
            }
        );
        assert!(servers[1].disabled);

        // A backend on another port is found through the frontend bound on 6443.
        let text = "frontend api\n  bind 10.0.0.10:6443,:16443\n  use_backend masters if TRUE\nbackend masters\n  server a m1.example:8443 check backup\n";
        let lists = parse_haproxy(text, APISERVER_PORT);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].key, "masters");
        assert!(lists[0].servers[0].backup);
        assert_eq!(lists[0].servers[0].address, "m1.example");

        // The old `listen NAME ADDR:PORT` form.
        let text = "listen k8s 0.0.0.0:6443\n  mode tcp\n  server m1 [fd00::1]:6443\n";
        let lists = parse_haproxy(text, APISERVER_PORT);
        assert_eq!(lists[0].servers[0].address, "fd00::1");

        // Bound on IPv6's any address, servers with haproxy's address-family prefix.
        let text = "listen k8s\n  bind :::6443 v4v6\n  server m1 ipv4@10.0.0.1:16443\n";
        let lists = parse_haproxy(text, APISERVER_PORT);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].servers[0].address, "10.0.0.1");
        assert_eq!(lists[0].servers[0].port, Some(16443));
    }

    #[test]
    fn keepalived_virtual_servers_skip_comments_and_weight_zero_is_disabled() {
        assert!(is_keepalived(KEEPALIVED_LVS));
        assert!(!is_keepalived(HAPROXY));
        let parsed = parse_keepalived(KEEPALIVED_LVS, APISERVER_PORT);
        assert_eq!(parsed.vips, [("VI_1".to_owned(), "10.0.0.10".to_owned())]);
        assert_eq!(parsed.lists.len(), 1);
        let list = &parsed.lists[0];
        assert_eq!(list.label, "keepalived virtual_server 10.0.0.10:6443");
        let addresses: Vec<(&str, bool)> = list
            .servers
            .iter()
            .map(|s| (s.address.as_str(), s.disabled))
            .collect();
        assert_eq!(addresses, [("10.0.0.1", false), ("10.0.0.3", true)]);
    }

    #[test]
    fn a_missing_master_blocks_naming_it_and_the_list() {
        let parsed = parse_files(&[("/etc/haproxy/haproxy.cfg".into(), HAPROXY.into())], 6443);
        let found = judge("lb1", &["/etc/haproxy/haproxy.cfg".into()], &parsed, &cps());
        assert_eq!(
            ids(&found),
            [
                "lb-backend-missing/lb1:kube-apiserver:m2",
                "lb-backend-disabled/lb1:kube-apiserver:m3"
            ]
        );
        assert!(found.iter().all(|f| f.severity == Severity::Block));
        assert!(
            found[0].message.contains(
                "the VIP reaches only 1 of 3 apiservers: m2 (10.0.0.2) is not a backend of lb1's haproxy backend kube-apiserver"
            ),
            "{}",
            found[0].message
        );
        assert!(
            found[0].fix.contains("server m2 10.0.0.2:6443 check"),
            "{}",
            found[0].fix
        );
    }

    #[test]
    fn a_complete_list_is_quiet_and_a_stranger_warns() {
        let text = "backend api\n  server m1 10.0.0.1:6443\n  server m2 m2:6443\n  server m3 10.0.0.3:6443\n  server old 10.0.0.9:6443\n";
        let parsed = parse_files(&[("/x".into(), text.into())], 6443);
        let found = judge("lb1", &["/x".into()], &parsed, &cps());
        assert_eq!(ids(&found), ["lb-backend-unknown/lb1:api:10.0.0.9"]);
        assert_eq!(found[0].severity, Severity::Warn);
    }

    #[test]
    fn keepalived_with_only_a_vip_points_at_haproxy() {
        let parsed = parse_files(
            &[(
                "/etc/keepalived/keepalived.conf".into(),
                KEEPALIVED_VRRP.into(),
            )],
            6443,
        );
        let found = judge(
            "lb1",
            &["/etc/keepalived/keepalived.conf".into()],
            &parsed,
            &cps(),
        );
        assert_eq!(ids(&found), ["lb-no-backends/lb1"]);
        assert!(
            found[0].message.contains("only moves the VIP 10.0.0.10"),
            "{}",
            found[0].message
        );

        // With haproxy next to it, the VIP is information and haproxy's list is judged.
        let files = [
            ("/etc/haproxy/haproxy.cfg".into(), HAPROXY.into()),
            (
                "/etc/keepalived/keepalived.conf".into(),
                KEEPALIVED_VRRP.into(),
            ),
        ];
        let found = judge("lb1", &[], &parse_files(&files, 6443), &cps());
        assert!(ids(&found).contains(&"lb-vip/lb1"));
        assert!(ids(&found).contains(&"lb-backend-missing/lb1:kube-apiserver:m2"));
    }

    #[test]
    fn load_balancers_with_different_lists_warn() {
        let a = parse_files(
            &[(
                "/x".into(),
                "backend api\n server m1 10.0.0.1:6443\n server m2 10.0.0.2:6443\n".into(),
            )],
            6443,
        );
        let b = parse_files(
            &[(
                "/x".into(),
                "backend api\n server m1 10.0.0.1:6443\n".into(),
            )],
            6443,
        );
        let same = BTreeMap::from([("lb1".to_owned(), a.clone()), ("lb2".to_owned(), a.clone())]);
        assert!(compare(&same).is_empty());
        let differ = BTreeMap::from([("lb1".to_owned(), a), ("lb2".to_owned(), b)]);
        let found = compare(&differ);
        assert_eq!(ids(&found), ["lb-backends-differ/lb1:lb2"]);
        assert!(
            found[0].message.contains("only lb1 has 10.0.0.2:6443"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn the_output_splits_into_files_and_the_command_drops_passwords() {
        let out = "--krun-lb-config-- /etc/haproxy/haproxy.cfg\nbackend a\n--krun-lb-unreadable-- /etc/keepalived/keepalived.conf\n";
        let (files, unreadable) = parse_output(out);
        assert_eq!(
            files,
            [(
                "/etc/haproxy/haproxy.cfg".to_owned(),
                "backend a\n".to_owned()
            )]
        );
        assert_eq!(unreadable, ["/etc/keepalived/keepalived.conf"]);
        let command = read_command(&["/etc/haproxy/haproxy.cfg".to_owned()]);
        assert!(command.contains("grep -v -i -E 'auth_pass|stats[[:space:]]+auth|password"));
        assert!(!command.contains("cat "));
    }
}
