//! Certificates before an upgrade: none expired, none about to.
//!
//! An expired control-plane certificate stops the upgrade half-way (kubeadm cannot talk to the
//! API server, kubelets cannot join back), and one that expires during the maintenance window
//! looks like a failed upgrade. So preflight reads, over ssh, on each control-plane node of the
//! inventory (role `control-plane` or `master`) the certificates under `/etc/kubernetes/pki/`
//! (with `etcd/`) and the client certificates embedded in kubeadm's kubeconfigs, and on every
//! node to be upgraded (all inventory nodes when none is named) the kubelet's client and
//! serving certificates.
//!
//! Only the certificate blocks leave the node: `sed` prints the PEM `CERTIFICATE` blocks of
//! each file and `grep` the `client-certificate-data` lines of the kubeconfigs, so private keys
//! (in `kubelet-client-current.pem`, or `client-key-data`) are never read. `notAfter` is parsed
//! here with x509-parser rather than by `openssl` on the node, which a node need not have.
//! The read is one read-only step per node (up to eight nodes at a time), so a dry-run runs it
//! and offline mode reports the certificates as not checked. Missing files are not findings: not every cluster uses kubeadm.

use std::sync::Arc;

use base64::Engine as _;

use super::{Finding, Severity, Steps};
use crate::effects::Effect;
use crate::inventory::{Inventory, NodeSpec};

/// The default number of days within which an expiry is a warning.
pub const DEFAULT_CERT_DAYS: u32 = 30;

/// What the certificate check is asked to do.
#[derive(Debug, Clone)]
pub struct CertCheck {
    /// Skip the check (`certs: false`, `--skip-certs`).
    pub skip: bool,
    /// Certificates expiring within this many days are a warning.
    pub days: u32,
}

impl Default for CertCheck {
    fn default() -> Self {
        CertCheck {
            skip: false,
            days: DEFAULT_CERT_DAYS,
        }
    }
}

/// kubeadm's certificates on a control-plane node (files and globs, read in this order).
const CONTROL_PLANE_FILES: &[&str] = &[
    "/etc/kubernetes/pki/*.crt",
    "/etc/kubernetes/pki/etcd/*.crt",
];
/// kubeadm's kubeconfigs with an embedded client certificate.
const KUBECONFIGS: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/super-admin.conf",
];
/// The kubelet's client certificate (rotated by kubelet) and its serving certificate.
const KUBELET_FILES: &[&str] = &[
    "/var/lib/kubelet/pki/kubelet-client-current.pem",
    "/var/lib/kubelet/pki/kubelet.crt",
];

const CERT: &str = "--krun-cert--";
const KUBECONFIG: &str = "--krun-kubeconfig--";
const UNREADABLE: &str = "--krun-unreadable--";

/// The shell command that prints the certificate blocks of `files` and the embedded client
/// certificates of `kubeconfigs`, each after a marker line naming the file.
pub fn read_command(files: &[&str], kubeconfigs: &[&str]) -> String {
    let mut command = String::new();
    let list = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| {
                // Globs stay unquoted so the shell expands them; the paths are krun's own.
                if p.contains('*') {
                    (*p).to_owned()
                } else {
                    crate::quote::quote(p)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let each = |paths: &[&str], marker: &str, print: &str| {
        format!(
            "for f in {}; do [ -f \"$f\" ] || continue; if [ -r \"$f\" ]; then echo \"{marker} $f\"; {print}; else echo \"{UNREADABLE} $f\"; fi; done; ",
            list(paths)
        )
    };
    if !files.is_empty() {
        command.push_str(&each(
            files,
            CERT,
            "sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' \"$f\"",
        ));
    }
    if !kubeconfigs.is_empty() {
        command.push_str(&each(
            kubeconfigs,
            KUBECONFIG,
            "grep 'client-certificate-data:' \"$f\" || true",
        ));
    }
    command.push_str("exit 0");
    command
}

/// One file as the node printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// PEM certificate blocks.
    Certificates {
        path: String,
        pem: String,
    },
    /// `client-certificate-data: <base64 PEM>` lines.
    Kubeconfig {
        path: String,
        lines: String,
    },
    Unreadable {
        path: String,
    },
}

/// Splits the command's output into files.
pub fn parse_output(stdout: &str) -> Vec<Read> {
    let mut files: Vec<Read> = Vec::new();
    for line in stdout.lines() {
        let marker = |m: &str| {
            line.strip_prefix(m)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
        };
        if let Some(path) = marker(CERT) {
            files.push(Read::Certificates {
                path,
                pem: String::new(),
            });
        } else if let Some(path) = marker(KUBECONFIG) {
            files.push(Read::Kubeconfig {
                path,
                lines: String::new(),
            });
        } else if let Some(path) = marker(UNREADABLE) {
            files.push(Read::Unreadable { path });
        } else {
            if let Some(
                Read::Certificates { pem: text, .. } | Read::Kubeconfig { lines: text, .. },
            ) = files.last_mut()
            {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    files
}

/// The earliest `notAfter` (Unix seconds) of the certificates in PEM text; `Err` when there is
/// none that parses.
pub fn earliest_expiry(pem: &[u8]) -> Result<i64, String> {
    let mut earliest: Option<i64> = None;
    let mut problem = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        match block {
            Ok(block) if block.label == "CERTIFICATE" => match block.parse_x509() {
                Ok(cert) => {
                    let not_after = cert.validity().not_after.timestamp();
                    earliest = Some(earliest.map_or(not_after, |e: i64| e.min(not_after)));
                }
                Err(e) => problem = Some(format!("not a valid certificate: {e}")),
            },
            Ok(_) => {}
            Err(e) => {
                problem.get_or_insert_with(|| format!("not PEM: {e}"));
                break;
            }
        }
    }
    earliest.ok_or_else(|| problem.unwrap_or_else(|| "no certificate in it".to_owned()))
}

/// The earliest expiry of the client certificates of a kubeconfig's
/// `client-certificate-data` lines.
pub fn kubeconfig_expiry(lines: &str) -> Result<i64, String> {
    let mut earliest: Option<i64> = None;
    for line in lines.lines() {
        let Some((_, data)) = line.split_once("client-certificate-data:") else {
            continue;
        };
        let data = data.trim().trim_matches('"');
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("client-certificate-data is not base64: {e}"))?;
        let not_after = earliest_expiry(&pem)?;
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest.ok_or_else(|| "no embedded client certificate (client-certificate-data)".to_owned())
}

/// How close a certificate is to its end, in whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Expired { days_ago: i64 },
    Soon { days_left: i64 },
    Fine { days_left: i64 },
}

/// Judges a `notAfter` at `now` (both Unix seconds) against the warning window.
pub fn judge(not_after: i64, now: i64, days: u32) -> Expiry {
    const DAY: i64 = 86_400;
    if not_after <= now {
        Expiry::Expired {
            days_ago: (now - not_after) / DAY,
        }
    } else if not_after - now <= i64::from(days) * DAY {
        Expiry::Soon {
            days_left: (not_after - now) / DAY,
        }
    } else {
        Expiry::Fine {
            days_left: (not_after - now) / DAY,
        }
    }
}

/// How the certificate at `path` on `node` is renewed.
pub fn renewal(node: &str, path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("/var/lib/kubelet/") {
        return if name == "kubelet.crt" {
            format!(
                "this is kubelet's self-signed serving certificate: on {node}, remove \
                 /var/lib/kubelet/pki/kubelet.crt and kubelet.key and restart kubelet to get a new \
                 one, or turn on serverTLSBootstrap so that it is rotated"
            )
        } else {
            format!(
                "kubelet rotates its client certificate itself (rotateCertificates: true, \
                 kubeadm's default) before it expires: check kubelet's log on {node} for rotation \
                 errors and that its CertificateSigningRequests are approved (kubectl get csr); an \
                 expired one needs a new bootstrap kubeconfig (re-join the node)"
            )
        };
    }
    let kubeadm_name = match path {
        "/etc/kubernetes/pki/apiserver.crt" => Some("apiserver"),
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt" => Some("apiserver-kubelet-client"),
        "/etc/kubernetes/pki/apiserver-etcd-client.crt" => Some("apiserver-etcd-client"),
        "/etc/kubernetes/pki/front-proxy-client.crt" => Some("front-proxy-client"),
        "/etc/kubernetes/pki/etcd/server.crt" => Some("etcd-server"),
        "/etc/kubernetes/pki/etcd/peer.crt" => Some("etcd-peer"),
        "/etc/kubernetes/pki/etcd/healthcheck-client.crt" => Some("etcd-healthcheck-client"),
        _ if path.starts_with("/etc/kubernetes/") && path.ends_with(".conf") => Some(name),
        _ => None,
    };
    match kubeadm_name {
        Some(cert) => format!(
            "on {node}: `kubeadm certs renew {cert}`, then restart the control-plane static pods \
             so they load it (kubeadm upgrade apply/node also renews it, unless \
             --certificate-renewal=false)"
        ),
        None if matches!(name, "ca.crt" | "front-proxy-ca.crt") => format!(
            "a CA is not renewed by `kubeadm certs renew`: rotate {path} on every control-plane \
             node by hand (Kubernetes: manual rotation of CA certificates) well before it expires"
        ),
        None => format!("renew {path} on {node} with whatever issued it"),
    }
}

/// One node's findings from the command's output, judged at `now` (Unix seconds).
pub fn judge_node(node: &str, stdout: &str, now: i64, days: u32) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut fine = 0;
    let mut earliest: Option<(i64, String)> = None;
    for file in parse_output(stdout) {
        let (path, expiry) = match file {
            Read::Unreadable { path } => {
                found.push(Finding::new(
                    "cert-unreadable",
                    &format!("{node}:{path}"),
                    Severity::Warn,
                    format!("node/{node} {path}"),
                    format!("{path} on {node} exists but cannot be read, so its expiry is unknown"),
                    "run krun as root on the node, or with `sudo = true` in the inventory",
                ));
                continue;
            }
            Read::Certificates { path, pem } => {
                let expiry = earliest_expiry(pem.as_bytes());
                (path, expiry)
            }
            Read::Kubeconfig { path, lines } => {
                if lines.trim().is_empty() {
                    // Its client certificate is a file of its own (client-certificate: …).
                    continue;
                }
                let expiry = kubeconfig_expiry(&lines);
                (path, expiry)
            }
        };
        let key = format!("{node}:{path}");
        let object = format!("node/{node} {path}");
        let not_after = match expiry {
            Ok(not_after) => not_after,
            Err(e) => {
                found.push(Finding::new(
                    "cert-unparsable",
                    &key,
                    Severity::Warn,
                    object,
                    format!("{path} on {node} could not be read as a certificate: {e}"),
                    "check the file; its expiry is unknown",
                ));
                continue;
            }
        };
        let date = date(not_after);
        match judge(not_after, now, days) {
            Expiry::Expired { days_ago } => found.push(Finding::new(
                "cert-expired",
                &key,
                Severity::Block,
                object,
                format!(
                    "{path} on {node} expired on {date} ({}): whatever uses it can no longer \
                     authenticate",
                    if days_ago == 0 {
                        "less than a day ago".to_owned()
                    } else {
                        format!("{days_ago} day{} ago", plural(days_ago))
                    }
                ),
                renewal(node, &path),
            )),
            Expiry::Soon { days_left } => found.push(Finding::new(
                "cert-expiring",
                &key,
                Severity::Warn,
                object,
                format!(
                    "{path} on {node} expires on {date}, in {days_left} day{} (within {days} \
                     days)",
                    plural(days_left)
                ),
                renewal(node, &path),
            )),
            Expiry::Fine { .. } => {
                fine += 1;
                if earliest.as_ref().is_none_or(|(t, _)| not_after < *t) {
                    earliest = Some((not_after, path.clone()));
                }
            }
        }
    }
    if let Some((not_after, path)) = earliest {
        found.push(Finding::new(
            "certs",
            node,
            Severity::Info,
            format!("node/{node}"),
            format!(
                "{fine} certificate{} on {node} valid for more than {days} days; the first to \
                 expire is {path}, on {}",
                plural(fine),
                date(not_after)
            ),
            "nothing to do",
        ));
    }
    found
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// Reads and judges the certificates of the inventory's control-plane nodes and of the nodes
/// to be upgraded (`nodes`; every inventory node when empty).
pub fn check(
    steps: &Steps,
    inventory: &Inventory,
    nodes: &[String],
    options: &CertCheck,
) -> Vec<Finding> {
    if options.skip {
        return Vec::new();
    }
    let fix = "give krun an inventory (--inventory) whose control-plane nodes have the role \
               `control-plane`, to have their certificates read over ssh";
    if inventory.nodes.is_empty() {
        return vec![Finding::new(
            "certs-not-checked",
            "inventory",
            Severity::Info,
            "certificates",
            "certificates were not checked: there are no inventory nodes to read them from",
            fix,
        )];
    }
    let control_plane = |spec: &NodeSpec| {
        spec.roles
            .iter()
            .any(|r| r == "control-plane" || r == "master")
    };
    let mut found = Vec::new();
    if !inventory.nodes.values().any(control_plane) {
        found.push(Finding::new(
            "certs-not-checked",
            "control-plane",
            Severity::Info,
            "certificates",
            "the control-plane certificates were not checked: no inventory node has the role \
             `control-plane`",
            fix,
        ));
    }
    let outside: Vec<&str> = nodes
        .iter()
        .filter(|n| !inventory.nodes.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        found.push(Finding::new(
            "certs-not-checked",
            "not-in-inventory",
            Severity::Info,
            "certificates",
            format!(
                "the kubelet certificates of {} were not checked: not in the inventory",
                outside.join(", ")
            ),
            "add the nodes to the inventory to have their kubelet certificates read",
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let mut unobserved = Vec::new();
    let mut reads = Vec::new();
    for spec in inventory.nodes.values() {
        let upgraded = nodes.is_empty() || nodes.contains(&spec.name);
        let (files, kubeconfigs): (Vec<&str>, &[&str]) = match (control_plane(spec), upgraded) {
            (true, true) => (
                CONTROL_PLANE_FILES
                    .iter()
                    .chain(KUBELET_FILES)
                    .copied()
                    .collect(),
                KUBECONFIGS,
            ),
            (true, false) => (CONTROL_PLANE_FILES.to_vec(), KUBECONFIGS),
            (false, true) => (KUBELET_FILES.to_vec(), &[]),
            (false, false) => continue,
        };
        let command = read_command(&files, kubeconfigs);
        let mut what = Vec::new();
        if !kubeconfigs.is_empty() {
            what.push("/etc/kubernetes/pki, pki/etcd and the kubeconfigs' client certificates");
        }
        if upgraded {
            what.push("kubelet's client and serving certificates");
        }
        let shown = format!(
            "read the certificates (not the keys) of {} for their expiry",
            what.join(", and ")
        );
        let effect = Effect::Exec {
            node: Arc::new(spec.clone()),
            command,
            timeout: Some(std::time::Duration::from_secs(60)),
        };
        reads.push((spec.name.clone(), shown, effect));
    }
    let names: Vec<String> = reads.iter().map(|(name, _, _)| name.clone()).collect();
    let results = steps.read_concurrently("preflight", reads, true);
    for (name, result) in names.iter().zip(results) {
        let spec = &inventory.nodes[name];
        match result {
            Ok(outcome) if !outcome.observed => unobserved.push(spec.name.clone()),
            Ok(outcome) if outcome.exit_code != 0 => found.push(unreadable_node(
                &spec.name,
                &format!(
                    "the command exited with code {}: {}",
                    outcome.exit_code,
                    outcome.stderr.trim()
                ),
            )),
            Ok(outcome) => found.extend(judge_node(&spec.name, &outcome.stdout, now, options.days)),
            Err(failure) => {
                found.push(unreadable_node(&spec.name, super::failure_reason(&failure)))
            }
        }
    }
    if !unobserved.is_empty() {
        found.push(Finding::new(
            "certs-not-checked",
            "unobserved",
            Severity::Info,
            "certificates",
            format!(
                "the certificates of {} were not read (offline, or the node could not be \
                 reached in this dry-run)",
                unobserved.join(", ")
            ),
            "run preflight with the nodes reachable to have their certificates checked",
        ));
    }
    found
}

fn unreadable_node(node: &str, error: &str) -> Finding {
    Finding::new(
        "certs-unreadable",
        node,
        Severity::Warn,
        format!("node/{node}"),
        format!("the certificates on {node} could not be read: {error}"),
        format!(
            "check that krun can reach {node} over ssh (see the inventory), then run preflight again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn expiry_is_judged_in_whole_days_against_the_window() {
        let now = 1_700_000_000;
        assert_eq!(judge(now - 1, now, 30), Expiry::Expired { days_ago: 0 });
        assert_eq!(
            judge(now - 3 * DAY, now, 30),
            Expiry::Expired { days_ago: 3 }
        );
        assert_eq!(judge(now, now, 30), Expiry::Expired { days_ago: 0 });
        assert_eq!(
            judge(now + 10 * DAY - 5, now, 30),
            Expiry::Soon { days_left: 9 }
        );
        assert_eq!(
            judge(now + 30 * DAY, now, 30),
            Expiry::Soon { days_left: 30 }
        );
        assert_eq!(
            judge(now + 30 * DAY + 1, now, 30),
            Expiry::Fine { days_left: 30 }
        );
        assert_eq!(
            judge(now + 10 * DAY, now, 7),
            Expiry::Fine { days_left: 10 }
        );
    }

    #[test]
    fn the_output_splits_into_files_and_keeps_only_their_text() {
        let out = "--krun-cert-- /etc/kubernetes/pki/ca.crt\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                   --krun-unreadable-- /etc/kubernetes/pki/sa.crt\n\
                   --krun-kubeconfig-- /etc/kubernetes/admin.conf\n    client-certificate-data: QUJD\n";
        let files = parse_output(out);
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[0],
            Read::Certificates {
                path: "/etc/kubernetes/pki/ca.crt".into(),
                pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()
            }
        );
        assert_eq!(
            files[1],
            Read::Unreadable {
                path: "/etc/kubernetes/pki/sa.crt".into()
            }
        );
        assert!(matches!(&files[2], Read::Kubeconfig { lines, .. } if lines.contains("QUJD")));
    }

    #[test]
    fn the_command_never_prints_a_key() {
        let command = read_command(KUBELET_FILES, KUBECONFIGS);
        assert!(
            command.contains("sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p'")
        );
        assert!(command.contains("grep 'client-certificate-data:'"));
        assert!(!command.contains("cat "));
        let globbed = read_command(CONTROL_PLANE_FILES, &[]);
        assert!(
            globbed.contains("for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt;")
        );
    }

    #[test]
    fn renewal_names_kubeadm_certs_and_kubelet_rotation() {
        assert!(
            renewal("m1", "/etc/kubernetes/pki/apiserver.crt")
                .contains("kubeadm certs renew apiserver`")
        );
        assert!(
            renewal("m1", "/etc/kubernetes/pki/etcd/peer.crt")
                .contains("kubeadm certs renew etcd-peer`")
        );
        assert!(
            renewal("m1", "/etc/kubernetes/admin.conf").contains("kubeadm certs renew admin.conf`")
        );
        assert!(renewal("m1", "/etc/kubernetes/pki/ca.crt").contains("a CA is not renewed"));
        assert!(
            renewal("w1", "/var/lib/kubelet/pki/kubelet-client-current.pem")
                .contains("kubelet rotates")
        );
        assert!(renewal("w1", "/var/lib/kubelet/pki/kubelet.crt").contains("serving certificate"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(earliest_expiry(b"").is_err());
        assert!(
            earliest_expiry(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        assert!(
            kubeconfig_expiry("client-certificate-data: !!!")
                .unwrap_err()
                .contains("base64")
        );
    }
}
