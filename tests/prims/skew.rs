//! The version-skew guards, judged against a simulated cluster (`--rehearse`) in dry-runs.

use crate::cli::{Krun, Output};

/// A kubeadm cluster at 1.20.15: one control-plane node and two workers.
const CLUSTER: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: kube-system
- apiVersion: v1
  kind: Node
  metadata:
    name: cp-1
    labels:
      kubernetes.io/hostname: cp-1
      node-role.kubernetes.io/control-plane: ""
  status:
    addresses:
    - {address: 192.0.2.10, type: InternalIP}
    conditions:
    - {type: Ready, status: "True", reason: KubeletReady}
    nodeInfo:
      kubeletVersion: v1.20.15
      kubeProxyVersion: v1.20.15
      containerRuntimeVersion: docker://18.6.2
- apiVersion: v1
  kind: Node
  metadata:
    name: n1
    labels:
      kubernetes.io/hostname: n1
  status:
    addresses:
    - {address: 192.0.2.11, type: InternalIP}
    conditions:
    - {type: Ready, status: "True", reason: KubeletReady}
    nodeInfo:
      kubeletVersion: v1.20.15
      kubeProxyVersion: v1.20.15
      containerRuntimeVersion: docker://18.6.2
- apiVersion: v1
  kind: Node
  metadata:
    name: n2
    labels:
      kubernetes.io/hostname: n2
  status:
    addresses:
    - {address: 192.0.2.12, type: InternalIP}
    conditions:
    - {type: Ready, status: "True", reason: KubeletReady}
    nodeInfo:
      kubeletVersion: v1.20.15
      kubeProxyVersion: v1.20.15
      containerRuntimeVersion: docker://18.6.2
"#;

const INVENTORY: &str = r#"
[nodes.cp-1]
host = "192.0.2.10"
roles = ["control-plane"]

[nodes.n1]
host = "192.0.2.11"
roles = ["worker"]

[nodes.n2]
host = "192.0.2.12"
roles = ["worker"]
"#;

struct Rehearsal {
    dir: tempfile::TempDir,
}

impl Rehearsal {
    fn new(playbook: &str) -> Self {
        Self::of(CLUSTER, INVENTORY, playbook)
    }

    fn of(cluster: &str, inventory: &str, playbook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.yaml"), cluster).unwrap();
        std::fs::write(dir.path().join("inventory.toml"), inventory).unwrap();
        std::fs::write(dir.path().join("play.rhai"), playbook).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// An offline rehearsal: the cluster is the simulator, no node is contacted.
    fn run(&self, extra: &[&str]) -> Output {
        Krun::new()
            .args([
                self.path("play.rhai"),
                "--inventory".into(),
                self.path("inventory.toml"),
                "--rehearse".into(),
                self.path("cluster.yaml"),
                "--offline".into(),
                "--output".into(),
                "json".into(),
            ])
            .args(extra)
            .run()
    }
}

fn steps(out: &Output) -> Vec<serde_json::Value> {
    out.json()["nodes"][0]["steps"].as_array().unwrap().clone()
}

fn commands(out: &Output, action: &str) -> Vec<String> {
    steps(out)
        .iter()
        .filter(|s| s["action"] == action)
        .map(|s| s["command"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn applying_three_minors_at_once_is_refused_with_the_path() {
    let rehearsal = Rehearsal::new(r#"kubeadm_upgrade_apply(find_node("cp-1"), "1.23.17", #{});"#);
    rehearsal
        .run(&[])
        .code(3)
        .stderr_has("refusing kubeadm upgrade apply 1.20.15 -> 1.23.17: one minor at a time; go through 1.21, 1.22");
}

#[test]
fn a_dry_run_of_several_hops_judges_each_against_the_one_before() {
    let rehearsal = Rehearsal::new(
        r#"let cp = find_node("cp-1");
for v in ["1.21.14", "1.22.17"] { kubeadm_upgrade_apply(cp, v, #{ etcd_upgrade: false, force: true }); }
"#,
    );
    let out = rehearsal.run(&[]);
    out.code(0);
    let applies = commands(&out, "kubeadm_upgrade_apply");
    assert_eq!(
        applies[0],
        "kubeadm upgrade apply -y v1.21.14 --etcd-upgrade=false"
    );
    // kubeadm 1.22 refuses the 1.20 kubelets unless forced, and the plan says it is.
    assert!(
        applies[1].starts_with("kubeadm upgrade apply -y v1.22.17 --etcd-upgrade=false --force  # WARNING: kubeadm 1.22.17 refuses `upgrade apply` while kubelets are more than 1 minor(s) behind it"),
        "{applies:?}"
    );
    // Each hop read the cluster first.
    let reads = commands(&out, "skew_check");
    assert_eq!(reads.len(), 6, "{reads:?}");

    // Skipping a minor within the same dry-run is refused too: 1.21 is planned, 1.23 is two up.
    let rehearsal = Rehearsal::new(
        r#"let cp = find_node("cp-1");
kubeadm_upgrade_apply(cp, "1.21.14", #{});
kubeadm_upgrade_apply(cp, "1.23.17", #{});
"#,
    );
    rehearsal.run(&[]).code(3).stderr_has(
        "refusing kubeadm upgrade apply 1.21.14 -> 1.23.17: one minor at a time; go through 1.22",
    );
}

const THREE_HOPS: &str = r#"let cp = find_node("cp-1");
for v in ["1.21.14", "1.22.17", "1.23.17"] { kubeadm_upgrade_apply(cp, v, #{ force: true }); }
"#;

#[test]
fn kubelets_left_behind_warn_or_refuse_under_strict_skew() {
    let rehearsal = Rehearsal::new(THREE_HOPS);
    let out = rehearsal.run(&[]);
    out.code(0).stderr_has(
        "kubelet 1.20.15 would be 3 minors behind kube-apiserver 1.23; 1.23 allows at most 2",
    );
    let applies = commands(&out, "kubeadm_upgrade_apply");
    assert!(
        !applies[1].contains("outside the supported skew"),
        "{applies:?}"
    );
    assert!(
        applies[2].starts_with("kubeadm upgrade apply -y v1.23.17 --force  # WARNING: ")
            && applies[2].ends_with("after kubeadm upgrade apply 1.23.17, kubelets outside the supported skew: kubelet 1.20.15 would be 3 minors behind kube-apiserver 1.23; 1.23 allows at most 2 (3 nodes: cp-1, n1, n2)"),
        "{applies:?}"
    );

    rehearsal
        .run(&["--strict-skew"])
        .code(3)
        .stderr_has("refusing kubeadm upgrade apply 1.22.17 -> 1.23.17 (--strict-skew)")
        .stderr_has("(3 nodes: cp-1, n1, n2)");

    // Kubelets upgraded in the same command count: after these, only cp-1 is left behind.
    let rehearsal = Rehearsal::new(
        r#"let cp = find_node("cp-1");
kubeadm_upgrade_apply(cp, "1.21.14", #{});
kubeadm_upgrade_apply(cp, "1.22.17", #{ force: true });
for n in ["n1", "n2", "cp-1"] { pkg_install(find_node(n), "kubelet", "1.22.17-00"); }
kubeadm_upgrade_apply(cp, "1.23.17", #{});
"#,
    );
    rehearsal.run(&["--strict-skew"]).code(0);
}

#[test]
fn allow_skew_overrides_loudly() {
    let rehearsal = Rehearsal::new(
        r#"kubeadm_upgrade_apply(find_node("cp-1"), "1.22.17", #{ allow_skew: true, force: true });"#,
    );
    let out = rehearsal.run(&[]);
    out.code(0).stderr_has("skew guard overridden (allow_skew)");
    let applies = commands(&out, "kubeadm_upgrade_apply");
    assert!(
        applies[0].contains("# WARNING: skew guard overridden (allow_skew): refusing kubeadm upgrade apply 1.20.15 -> 1.22.17"),
        "{applies:?}"
    );
    // A downgrade is never overridden.
    let rehearsal = Rehearsal::new(
        r#"kubeadm_upgrade_apply(find_node("cp-1"), "1.19.16", #{ allow_skew: true });"#,
    );
    rehearsal.run(&[]).code(3).stderr_has("that is a downgrade");
}

#[test]
fn a_kubelet_newer_than_the_control_plane_is_refused() {
    let rehearsal = Rehearsal::new(r#"pkg_install(node, "kubelet", "1.21.14-00");"#);
    rehearsal
        .run(&["--node", "n1"])
        .code(3)
        .stderr_has("refusing to install kubelet 1.21.14 on n1: kubelet 1.21.14 would be")
        .stderr_has("newer than kube-apiserver");
    // The same minor is fine, and so is any other package.
    let rehearsal = Rehearsal::new(
        r#"pkg_install(node, "kubelet", "1.20.15-00"); pkg_install(node, "kubeadm", "1.22.17-00");"#,
    );
    rehearsal.run(&["--node", "n1"]).code(0);
    // The override is shown with the step.
    let rehearsal =
        Rehearsal::new(r#"pkg_install(node, "kubelet", "1.21.14-00", #{ allow_skew: true });"#);
    let out = rehearsal.run(&["--node", "n1"]);
    out.code(0);
    assert!(
        commands(&out, "pkg_install")[0].contains("# WARNING: skew guard overridden (allow_skew)"),
        "{:?}",
        commands(&out, "pkg_install")
    );
}

#[test]
fn offline_without_a_cluster_the_plan_says_the_guard_could_not_check() {
    let rehearsal = Rehearsal::new(
        r#"pkg_install(find_node("n1"), "kubelet", "1.23.17-00");
kubeadm_upgrade_apply(find_node("cp-1"), "1.23.17", #{});
// Later guards judge against the recorded apply.
pkg_install(find_node("n1"), "kubelet", "1.23.17-00");
"#,
    );
    let out = Krun::new()
        .args([
            rehearsal.path("play.rhai"),
            "--inventory".into(),
            rehearsal.path("inventory.toml"),
            "--dry-run".into(),
            "--offline".into(),
            "--output".into(),
            "json".into(),
        ])
        .run();
    out.code(0);
    for action in ["kubeadm_upgrade_apply", "pkg_install"] {
        let shown = commands(&out, action);
        assert!(
            shown[0].contains("# WARNING: version skew not checked"),
            "{action}: {shown:?}"
        );
    }
    assert!(!commands(&out, "pkg_install")[1].contains("WARNING"));
}

#[test]
fn kubeadm_upgrade_node_forms() {
    let rehearsal = Rehearsal::new(
        r#"kubeadm_upgrade_node(node);
kubeadm_upgrade_node(node, #{ config_only: true });
kubeadm_upgrade_node(node, #{ config_only: true, kubelet_version: "1.12.1" });
"#,
    );
    let out = rehearsal.run(&["--node", "n1"]);
    out.code(0);
    assert_eq!(
        commands(&out, "kubeadm_upgrade_node"),
        [
            "kubeadm upgrade node",
            "kubeadm upgrade node phase kubelet-config",
            "kubeadm upgrade node config --kubelet-version v1.12.1"
        ]
    );
    let rehearsal = Rehearsal::new(r#"kubeadm_upgrade_node(node, #{ config_onyl: true });"#);
    rehearsal
        .run(&["--node", "n1"])
        .code(2)
        .stderr_has("did you mean `config_only`?");
}

#[test]
fn version_path_from_what_the_repositories_offer() {
    let rehearsal = Rehearsal::new(
        r#"let path = version_path("1.20.15", "1.23", ["1.23.17-00", "1.22.17-00", "1.22.9-00", "1.21.14-00"]);
if path != ["1.21.14-00", "1.22.17-00", "1.23.17-00"] { fail(`got ${path}`); }
version_path("1.20.15", "1.23", ["1.23.17-00", "1.21.14-00"]);
"#,
    );
    rehearsal
        .run(&[])
        .code(2)
        .stderr_has("no version of 1.22 is available (available: 1.21.14, 1.23.17)");
}

/// The cluster served by an in-process simulator, with its kubeconfig.
async fn serve(yaml: &str) -> (krun::sim::Server, tempfile::TempDir) {
    let cluster = krun::sim::Cluster::load(yaml).expect("the cluster loads");
    let server = krun::sim::Server::start(cluster, krun::sim::SimOptions::default())
        .await
        .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    server
        .write_kubeconfig(&dir.path().join("kubeconfig"))
        .expect("the kubeconfig is written");
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_apply_goes_one_minor_and_a_skip_never_reaches_kubeadm() {
    use crate::support::{Fleet, NodeSpec, Os};
    // The first control-plane node, with kubeadm 1.21 installed and its admin kubeconfig.
    let spec = NodeSpec::new("n1", Os::Debian12)
        .package("kubeadm", &Os::Debian12.package_version("1.21.14"));
    let Some(fleet) = Fleet::builder().node(spec).start() else {
        return;
    };
    let admin = fleet.node("n1").root_path("/etc/kubernetes/admin.conf");
    std::fs::create_dir_all(admin.parent().unwrap()).unwrap();
    std::fs::write(&admin, "apiVersion: v1\nkind: Config\n").unwrap();
    let (_server, dir) = serve(CLUSTER).await;
    let setup = crate::e2e::Setup::new(
        &fleet,
        r#"let r = kubeadm_upgrade_apply(node, param("v"), #{ certificate_renewal: false });
log(`applied ${r.version} over ${r.from}`);
"#,
    );
    let kubeconfig = dir.path().join("kubeconfig").display().to_string();
    let run = |version: &'static str| {
        let krun = setup.krun(&[
            "--node",
            "n1",
            "--kubeconfig",
            &kubeconfig,
            "--set",
            &format!("v={version}"),
        ]);
        tokio::task::spawn_blocking(move || krun.run())
    };
    run("1.23.17")
        .await
        .unwrap()
        .code(3)
        .stderr_has("refusing kubeadm upgrade apply 1.20.15 -> 1.23.17");
    assert!(
        !fleet
            .node("n1")
            .changes()
            .iter()
            .any(|c| c.starts_with("kubeadm")),
        "{:?}",
        fleet.node("n1").changes()
    );
    run("1.21.14")
        .await
        .unwrap()
        .code(0)
        .stderr_has("applied 1.21.14 over 1.20.15");
    let kubeadm: Vec<String> = fleet
        .node("n1")
        .changes()
        .into_iter()
        .filter(|c| c.starts_with("kubeadm"))
        .collect();
    assert_eq!(kubeadm, ["kubeadm upgrade apply v1.21.14"]);
}

#[test]
fn strict_skew_is_a_flag_of_runs_and_resumes() {
    for args in [&["--help"][..], &["resume", "--help"][..]] {
        let out = Krun::new().args(args).run();
        out.code(0);
        assert!(out.stdout.contains("--strict-skew"), "{}", out.stdout);
    }
}

#[test]
fn a_plan_without_the_node_names_each_minor() {
    let rehearsal = Rehearsal::new(
        r#"let cp = find_node("cp-1");
for v in version_path("1.20.15", "1.22", pkg_versions(cp, "kubeadm")) {
    pkg_install(cp, "kubeadm", v);
    kubeadm_upgrade_apply(cp, v, #{ force: true });
}
"#,
    );
    let out = rehearsal.run(&[]);
    out.code(0)
        .stderr_has("the available versions were not observed");
    let applies = commands(&out, "kubeadm_upgrade_apply");
    assert_eq!(applies[0], "kubeadm upgrade apply -y v1.21.x");
    assert!(
        applies[1].starts_with("kubeadm upgrade apply -y v1.22.x --force  # WARNING: "),
        "{applies:?}"
    );
    // A live run never takes a placeholder.
    let rehearsal = Rehearsal::new(r#"kubeadm_upgrade_apply(node, "1.21.x", #{});"#);
    let out = Krun::new()
        .args([
            rehearsal.path("play.rhai"),
            "--inventory".into(),
            rehearsal.path("inventory.toml"),
            "--node".into(),
            "n1".into(),
        ])
        .run();
    out.code(2).stderr_has("is not a full Kubernetes version");
}

/// Three control-plane nodes, each with its kube-apiserver static pod, at 1.20.15.
fn ha_cluster() -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: kube-system\n",
    );
    for cp in ["cp-1", "cp-2", "cp-3"] {
        yaml.push_str(&format!(
            r#"- apiVersion: v1
  kind: Node
  metadata:
    name: {cp}
    labels:
      kubernetes.io/hostname: {cp}
      node-role.kubernetes.io/control-plane: ""
  status:
    conditions:
    - {{type: Ready, status: "True", reason: KubeletReady}}
    nodeInfo:
      kubeletVersion: v1.20.15
      kubeProxyVersion: v1.20.15
      containerRuntimeVersion: containerd://1.6.20
- apiVersion: v1
  kind: Pod
  metadata:
    name: kube-apiserver-{cp}
    namespace: kube-system
    labels:
      component: kube-apiserver
      tier: control-plane
  spec:
    nodeName: {cp}
    containers:
    - name: kube-apiserver
      image: registry.k8s.io/kube-apiserver:v1.20.15
  status:
    phase: Running
"#
        ));
    }
    yaml
}

const HA_INVENTORY: &str = r#"
[nodes.cp-1]
host = "192.0.2.10"
roles = ["control-plane"]

[nodes.cp-2]
host = "192.0.2.11"
roles = ["control-plane"]

[nodes.cp-3]
host = "192.0.2.12"
roles = ["control-plane"]
"#;

#[test]
fn ha_apiservers_left_two_minors_behind_are_refused() {
    // Two hops on the first control-plane node without upgrading the others in between.
    let rehearsal = Rehearsal::of(
        &ha_cluster(),
        HA_INVENTORY,
        r#"let cp = find_node("cp-1");
kubeadm_upgrade_apply(cp, "1.21.14", #{});
kubeadm_upgrade_apply(cp, "1.22.17", #{});
"#,
    );
    rehearsal
        .run(&[])
        .code(3)
        .stderr_has("refusing kubeadm upgrade apply 1.21.14 -> 1.22.17: kube-apiserver on cp-2 at")
        .stderr_has("1.20.15 would be more than one minor behind");
    // With kubeadm upgrade node on the others after each hop, as the procedure goes.
    let rehearsal = Rehearsal::of(
        &ha_cluster(),
        HA_INVENTORY,
        r#"let cp = find_node("cp-1");
for v in ["1.21.14", "1.22.17"] {
    kubeadm_upgrade_apply(cp, v, #{ force: true });
    for other in ["cp-2", "cp-3"] { kubeadm_upgrade_node(find_node(other)); }
}
"#,
    );
    rehearsal.run(&[]).code(0);
}
