//! The kubeadm stand-in's `token create`, `join` and `reset`, run on the test machine against
//! the simulator: what the real kubeadm prints and refuses (sources in `tests/standins/kubeadm.py`).
//! A join that succeeds needs a kubelet and is proven on a booted machine (`sop.rs`).

use std::os::unix::net::UnixListener;

use std::process::{Command, Output};

use super::{NodeRoot, TestCluster, standin, standins, text};
use crate::support::require;

fn ready() -> bool {
    require(&["/usr/bin/python3", "curl", "openssl"], false)
}

/// A freshly installed node: nothing of kubeadm's, containerd listening on its socket.
fn fresh_node() -> (NodeRoot, UnixListener) {
    let root = NodeRoot {
        dir: tempfile::tempdir().expect("a node root"),
    };
    let socket = root.path("run/containerd/containerd.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&socket).expect("containerd's socket");
    (root, listener)
}

/// `kubeadm ARGS` of `version` on the fresh `node` named `name`, whose kubelet is `kubelet`.
fn join_with_kubelet(
    version: &str,
    node: &NodeRoot,
    name: &str,
    kubelet: &str,
    args: &[&str],
) -> Output {
    Command::new("/usr/bin/python3")
        .arg(standins().join("kubeadm.py"))
        .args(args)
        .env("STANDIN_VERSION", version)
        .env("STANDIN_DATA_DIR", standins().join("versions"))
        .env("STANDIN_ROOT", node.dir.path())
        .env("STANDIN_NODE_NAME", name)
        .env("STANDIN_ACTIVE_UNITS", "")
        .env("STANDIN_KUBELET_VERSION", kubelet)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs the stand-in")
}

/// `kubeadm token create --print-join-command` on m1; returns the join command's words.
fn join_command(cluster: &TestCluster, version: &str) -> Vec<String> {
    let m1 = NodeRoot::new(&cluster.server.url(), true, version);
    let out = standin(
        "kubeadm",
        version,
        &m1,
        "m1",
        "kubelet",
        &["token", "create", "--ttl", "30m", "--print-join-command"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The CA's public-key pin as the kubeadm docs compute it with openssl.
fn documented_pin() -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(crate::support::lab::cluster_ca().as_bytes())?;
            child.wait_with_output()
        })
        .expect("openssl runs");
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn token_create_prints_one_join_line_stores_the_token_and_signs_cluster_info() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let words = join_command(&cluster, "1.20.15");
    let host_port = cluster
        .server
        .url()
        .trim_start_matches("http://")
        .to_string();
    assert_eq!(
        words[..3],
        ["kubeadm", "join", host_port.as_str()],
        "{words:?}"
    );
    assert_eq!(words[3], "--token");
    let (id, secret) = words[4].split_once('.').expect("id.secret");
    assert!(id.len() == 6 && secret.len() == 16, "{}", words[4]);
    assert_eq!(
        words[5..],
        [
            "--discovery-token-ca-cert-hash".to_string(),
            documented_pin()
        ]
    );
    let stored = cluster.get(&format!(
        "/api/v1/namespaces/kube-system/secrets/bootstrap-token-{id}"
    ));
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token", "{stored}");
    assert!(stored["data"]["expiration"].is_string(), "{stored}");
    let info = cluster.get("/api/v1/namespaces/kube-public/configmaps/cluster-info");
    assert!(
        info["data"][format!("jws-kubeconfig-{id}")].is_string(),
        "{info}"
    );
}

#[test]
fn join_with_a_token_the_cluster_does_not_know_is_refused_after_discovery() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let mut words = join_command(&cluster, "1.20.15");
    words[4] = "abcdef.0123456789abcdef".into();
    let (node, _containerd) = fresh_node();
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let out = standin("kubeadm", "1.20.15", &node, "w2", "", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "error execution phase preflight: couldn't validate the identity of the API Server: \
             could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\""
        ),
        "{}",
        text(&out)
    );
    assert_eq!(node.read("etc/kubernetes/bootstrap-kubelet.conf"), None);
}

#[test]
fn join_with_another_clusters_ca_hash_is_refused() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let mut words = join_command(&cluster, "1.20.15");
    let other = format!("sha256:{}", "0".repeat(64));
    words[6] = other.clone();
    let (node, _containerd) = fresh_node();
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let out = standin("kubeadm", "1.20.15", &node, "w2", "", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{}\" are pinned",
            documented_pin()
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn join_refuses_a_node_that_was_not_reset_and_a_name_a_ready_node_has() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let words = join_command(&cluster, "1.20.15");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();

    // What an old installation leaves behind.
    let (node, _containerd) = fresh_node();
    node.write("etc/kubernetes/kubelet.conf", "old");
    node.write("etc/kubernetes/pki/ca.crt", "old");
    let out = standin("kubeadm", "1.20.15", &node, "w2", "", &args);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("[preflight] Some fatal errors occurred:")
            && said.contains(
                "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"
            )
            && said.contains(
                "[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists"
            ),
        "{said}"
    );

    // w1 is Ready in the cluster: a new machine may not take its name (1.18+, k/k#81056).
    let (node, _containerd) = fresh_node();
    let out = standin("kubeadm", "1.20.15", &node, "w1", "", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "error execution phase kubelet-start: a Node with name \"w1\" and status \"Ready\" \
             already exists in the cluster. You must delete the existing Node or change the name \
             of this new joining Node"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn reset_stops_kubelet_and_removes_what_init_and_join_wrote() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let m1 = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    m1.write(
        "var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    );
    m1.write("etc/kubernetes/pki/ca.crt", "ca");
    m1.write("etc/cni/net.d/10-flannel.conflist", "{}");
    let out = standin("kubeadm", "1.20.15", &m1, "m1", "kubelet", &["reset", "-f"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("[reset] Stopping the kubelet service"),
        "{said}"
    );
    assert!(
        said.contains("The reset process does not clean CNI configuration"),
        "{said}"
    );
    for gone in [
        "etc/kubernetes/admin.conf",
        "etc/kubernetes/kubelet.conf",
        "etc/kubernetes/pki/ca.crt",
        "etc/kubernetes/manifests/kube-apiserver.yaml",
        "var/lib/kubelet/config.yaml",
    ] {
        assert_eq!(m1.read(gone), None, "{gone} is left");
    }
    assert!(m1.read("etc/cni/net.d/10-flannel.conflist").is_some());
    // Without -f it asks, and a missing answer is a no.
    let m1 = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = standin("kubeadm", "1.20.15", &m1, "m1", "kubelet", &["reset"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(m1.read("etc/kubernetes/admin.conf").is_some());
}

#[test]
fn join_refuses_a_token_without_a_ca_pin_or_of_the_wrong_form_before_any_check() {
    if !ready() {
        return;
    }
    // Validation of the configuration comes before the preflight phase: nothing is contacted
    // (the endpoint here answers nothing) and nothing is written.
    let (node, _containerd) = fresh_node();
    let out = standin(
        "kubeadm",
        "1.20.15",
        &node,
        "w2",
        "",
        &["join", "127.0.0.1:1", "--token", "abcdef.0123456789abcdef"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based \
             discovery without caCertHashes can be unsafe."
        ) && !said.contains("[preflight]"),
        "{said}"
    );
    let out = standin(
        "kubeadm",
        "1.20.15",
        &node,
        "w2",
        "",
        &[
            "join",
            "127.0.0.1:1",
            "--token",
            "ABCDEF.0123456789abcdef",
            "--discovery-token-unsafe-skip-ca-verification",
        ],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            r#"the bootstrap token "ABCDEF.0123456789abcdef" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z""#
        ),
        "{said}"
    );
    assert!(node.list("etc/kubernetes").is_empty());
}

/// kubeadm-facts.md §1: the join preflight's kubelet check allows a kubelet one minor behind
/// kubeadm up to 1.28 and three from 1.29 (k/k#120825); `--ignore-preflight-errors` names it.
#[test]
fn join_refuses_a_kubelet_older_than_kubeadm_supports_one_minor_then_three_from_1_29() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.28.15", &[]);
    let words = join_command(&cluster, "1.28.15");
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.push("--dry-run");
    let (node, _containerd) = fresh_node();
    let out = join_with_kubelet("1.28.15", &node, "w2", "1.26.15", &args);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "\t[ERROR KubeletVersion]: Kubelet version \"1.26.15\" is lower than kubeadm can \
             support. Please upgrade kubelet"
        ),
        "{said}"
    );
    let out = join_with_kubelet("1.28.15", &node, "w2", "1.27.16", &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    args.push("--ignore-preflight-errors=KubeletVersion");
    let out = join_with_kubelet("1.28.15", &node, "w2", "1.26.15", &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let cluster = TestCluster::start(1, 1, "1.29.14", &[]);
    let words = join_command(&cluster, "1.29.14");
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.push("--dry-run");
    let out = join_with_kubelet("1.29.14", &node, "w2", "1.26.15", &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = join_with_kubelet("1.29.14", &node, "w2", "1.25.16", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[ERROR KubeletVersion]"),
        "{}",
        text(&out)
    );
}
