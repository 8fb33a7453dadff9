//! kubelet's flags and configuration edited on real sshd nodes (files in each node's private
//! /var/lib/kubelet and /etc/kubernetes).

use std::os::unix::fs::PermissionsExt;

use crate::e2e::Setup;
use crate::support::Fleet;

const FLAGS_1_20: &str = "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n";

const CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\ncgroupDriver: cgroupfs\nkind: KubeletConfiguration\nstaticPodPath: /etc/kubernetes/manifests\n";

const SWITCH: &str = r#"
let r = set_kubelet_flags(node, #{
    "network-plugin": (),
    "container-runtime": "remote",
    "--container-runtime-endpoint": "unix:///run/containerd/containerd.sock",
});
log(`flags changed: ${r.changed} in ${r.file}`);
let c = set_kubelet_config(node, #{ cgroupDriver: "systemd" });
log(`config changed: ${c.changed}`);
let f = kubelet_flags(node);
if f.file != "/var/lib/kubelet/kubeadm-flags.env" { fail(`read ${f.file}`); }
if !f.args.contains("--container-runtime-endpoint=unix:///run/containerd/containerd.sock") {
    log(`flags now: ${f.args}`);
}
"#;

fn write(path: &std::path::Path, content: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn actions(out: &crate::cli::Output) -> Vec<String> {
    out.json()["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn kubeadm_flags_and_config_switch_to_containerd() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    let flags = node.root_path("/var/lib/kubelet/kubeadm-flags.env");
    let config = node.root_path("/var/lib/kubelet/config.yaml");
    write(&flags, FLAGS_1_20, 0o644);
    write(&config, CONFIG, 0o644);
    let setup = Setup::new(&fleet, SWITCH);

    // A dry-run reads the real files and shows the diffs, changing nothing.
    let out = setup
        .krun(&["--node", "n1", "--dry-run", "--output", "json"])
        .run();
    out.code(0);
    assert_eq!(std::fs::read_to_string(&flags).unwrap(), FLAGS_1_20);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let diffs: Vec<&str> = steps.iter().filter_map(|s| s["diff"].as_str()).collect();
    assert_eq!(diffs.len(), 2, "{steps:#?}");
    assert!(diffs[0].contains("+KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=k8s.gcr.io/pause:3.2 --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\""), "{}", diffs[0]);
    assert!(
        diffs[1].contains("-cgroupDriver: cgroupfs") && diffs[1].contains("+cgroupDriver: systemd"),
        "{}",
        diffs[1]
    );

    // For real.
    setup
        .krun(&["--node", "n1"])
        .run()
        .code(0)
        .stderr_has("flags changed: true");
    assert_eq!(
        std::fs::read_to_string(&flags).unwrap(),
        "KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=k8s.gcr.io/pause:3.2 --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        CONFIG.replace("cgroupfs", "systemd")
    );

    // Again: nothing left to change, nothing written.
    let out = setup.krun(&["--node", "n1", "--output", "json"]).run();
    out.code(0)
        .stderr_has("flags changed: false")
        .stderr_has("config changed: false");
    assert_eq!(
        actions(&out),
        ["set_kubelet_flags", "set_kubelet_config", "kubelet_flags"]
    );
}

#[test]
fn a_hand_kept_kubelet_env_keeps_its_comments_layout_and_mode() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    let env = node.root_path("/etc/kubernetes/kubelet.env");
    let before = "# kubelet flags, kept by hand\nKUBELET_ARGS=\"--address=0.0.0.0 \\\n--cgroup-driver=cgroupfs \\\n--v 2\"\nOTHER=1\n";
    write(&env, before, 0o640);
    let setup = Setup::new(
        &fleet,
        r#"let r = set_kubelet_flags(node, #{ "cgroup-driver": "systemd", "container-runtime-endpoint": "unix:///var/run/containerd/containerd.sock" });
if r.file != "/etc/kubernetes/kubelet.env" { fail(r.file); }
if r.before["cgroup-driver"] != "cgroupfs" || r.after["cgroup-driver"] != "systemd" { fail(`${r}`); }
"#,
    );
    setup.krun(&["--node", "n1"]).run().code(0);
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "# kubelet flags, kept by hand\nKUBELET_ARGS=\"--address=0.0.0.0 \\\n--cgroup-driver=systemd \\\n--v 2 \\\n--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock\"\nOTHER=1\n"
    );
    let mode = std::fs::metadata(&env).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
}

#[test]
fn no_flags_file_is_a_clear_failure() {
    let Some(fleet) = Fleet::start(1) else { return };
    let setup = Setup::new(
        &fleet,
        r#"let f = kubelet_flags(node);
if f.file != "" { fail(`found ${f.file}`); }
set_kubelet_flags(node, #{ "cgroup-driver": "systemd" });
"#,
    );
    setup
        .krun(&["--node", "n1"])
        .run()
        .code(1)
        .stderr_has("set_kubelet_flags: none of /var/lib/kubelet/kubeadm-flags.env")
        .stderr_has("kubelet exists on n1");
}

#[test]
fn a_named_flags_file_is_read_and_created() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    write(
        &node.root_path("/var/lib/kubelet/kubeadm-flags.env"),
        FLAGS_1_20,
        0o644,
    );
    let setup = Setup::new(
        &fleet,
        r#"let opts = #{ file: "/etc/kubernetes/kubelet-extra.env" };
if kubelet_flags(node, opts).file != "" { fail("it exists already"); }
let r = set_kubelet_flags(node, #{ "node-ip": "10.0.0.5" }, opts);
if !r.changed || r.file != opts.file { fail(`${r}`); }
let f = kubelet_flags(node, opts);
if f.variable != "KUBELET_EXTRA_ARGS" || f.flags["node-ip"] != "10.0.0.5" { fail(`${f}`); }
// Without a file, the first existing one is still kubeadm's.
if kubelet_flags(node).file != "/var/lib/kubelet/kubeadm-flags.env" { fail("wrong default"); }
set_kubelet_flags(node, #{}, #{ fiel: "/x" });
"#,
    );
    setup
        .krun(&["--node", "n1"])
        .run()
        .code(2)
        .stderr_has("unknown option `fiel`");
    assert_eq!(
        std::fs::read_to_string(node.root_path("/etc/kubernetes/kubelet-extra.env")).unwrap(),
        "KUBELET_EXTRA_ARGS=\"--node-ip=10.0.0.5\"\n"
    );
}

/// kubelet reads the flags file split at whitespace: a label value with a space would add a
/// flag of the caller's choosing, so it is refused and the file stays as it was.
#[test]
fn a_flag_value_with_a_space_is_refused_not_split() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    let flags = node.root_path("/var/lib/kubelet/kubeadm-flags.env");
    write(&flags, FLAGS_1_20, 0o644);
    let setup = Setup::new(
        &fleet,
        "let labels = param(\"labels\");\nset_kubelet_flags(node, #{ \"node-labels\": labels });\n",
    );
    setup
        .krun(&[
            "--node",
            "n1",
            "--set",
            "labels=role=edge --authorization-mode=AlwaysAllow",
        ])
        .run()
        .code(2)
        .stderr_has("the value of --node-labels contains whitespace")
        .stderr_has("play.rhai:2");
    assert_eq!(std::fs::read_to_string(&flags).unwrap(), FLAGS_1_20);

    // A value that looks like an option stays attached to its flag.
    setup
        .krun(&["--node", "n1", "--set", "labels=-role=edge"])
        .run()
        .code(0);
    let written = std::fs::read_to_string(&flags).unwrap();
    assert!(written.contains(" --node-labels=-role=edge\""), "{written}");
}
