//! Every bundled playbook dry-runs offline on the bundled lab's inventory: no crash, and where
//! a loop runs over something an offline dry-run cannot read, the plan says what it did not plan.

use super::Krun;

/// Each bundled playbook with the parameters it needs, and whether its offline plan has parts
/// it cannot plan.
const PLAYBOOKS: &[(&str, &[&str], bool)] = &[
    // The versions come from the node's repositories.
    (
        "prepare.rhai",
        &["--node", "master-1", "--set", "version=1.22"],
        true,
    ),
    ("cluster.rhai", &["--set", "version=1.21.14"], false),
    (
        "master.rhai",
        &["--node", "master-2", "--set", "version=1.21.14"],
        false,
    ),
    (
        "worker.rhai",
        &["--node", "worker-6", "--set", "version=1.21.14"],
        false,
    ),
    (
        "runtime-switch.rhai",
        &["--node", "worker-6", "--set", "runtime_disk=/dev/vdb"],
        false,
    ),
    // The CRI-O and kubernetes package files are listed on the node.
    (
        "crio-arch.rhai",
        &["--node", "worker-6", "--set", "version=1.21.14"],
        true,
    ),
    (
        "os-replace.rhai",
        &[
            "--node",
            "worker-6",
            "--set",
            "version=1.21.14",
            "--set",
            "reinstall=/opt/pxe/reinstall {node}",
            "--set",
            "hook_node=master-1",
        ],
        false,
    ),
    (
        "kubelet.rhai",
        &["--node", "worker-6", "--set", "version=1.21.14"],
        false,
    ),
    // The members come from etcd's member list.
    (
        "etcd-rolling.rhai",
        &[
            "--set",
            "version=3.5.1",
            "--set",
            "upgrade_cmd=/usr/local/sbin/upgrade-etcd {member} 3.5.1",
        ],
        true,
    ),
    ("verify.rhai", &["--set", "version=1.20.15"], false),
];

/// The playbooks that put back what an earlier run recorded: offline, with nothing recorded,
/// each says what it is missing at its line and changes nothing.
const NEED_A_RECORD: &[(&str, &[&str], &str)] = &[
    (
        "restore.rhai",
        &["--node", "worker-6", "--set", "run=20261202T000000Z-abcdef"],
        "no run 20261202T000000Z-abcdef under",
    ),
    (
        "etcd-restore.rhai",
        &[
            "--set",
            "snapshot=etcd-before.db",
            "--set",
            "confirm=replace-all-etcd-data",
        ],
        "etcd-before.db",
    ),
];

#[test]
fn every_bundled_playbook_dry_runs_offline_and_says_what_it_could_not_plan() {
    let mut bundled: Vec<String> = std::fs::read_dir(super::root().join("playbooks"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    bundled.sort();
    let mut listed: Vec<String> = PLAYBOOKS
        .iter()
        .map(|(p, _, _)| p.to_string())
        .chain(NEED_A_RECORD.iter().map(|(p, _, _)| p.to_string()))
        .collect();
    listed.sort();
    assert_eq!(listed, bundled, "a bundled playbook is not dry-run here");

    for (playbook, args, missing) in NEED_A_RECORD {
        let dir = tempfile::tempdir().unwrap();
        Krun::new()
            .args([format!("playbooks/{playbook}")])
            .args(["--inventory", "examples/lab/inventory.toml", "--state-dir"])
            .arg_path(dir.path())
            .args(*args)
            .args(["--dry-run", "--offline"])
            .run()
            .code(2)
            .stderr_has(missing)
            .stderr_has(&format!("playbooks/{playbook}:"));
    }

    for (playbook, args, unplanned) in PLAYBOOKS {
        let out = Krun::new()
            .args([format!("playbooks/{playbook}")])
            .args(["--inventory", "examples/lab/inventory.toml"])
            .args(*args)
            .args(["--dry-run", "--offline", "-o", "json"])
            .run();
        out.code(0);
        let json = out.json();
        let notes: Vec<&serde_json::Value> = json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["unplanned"].as_array().into_iter().flatten())
            .collect();
        assert_eq!(
            !notes.is_empty(),
            *unplanned,
            "{playbook}: unplanned {notes:?}\n{}",
            out.stderr
        );
        for note in &notes {
            assert!(
                note["what"].as_str().is_some_and(|w| w.contains("not")),
                "{note}"
            );
        }
    }
}

#[test]
fn the_text_plan_shows_what_was_not_planned_in_place_and_counts_it() {
    let out = Krun::new()
        .args([
            "playbooks/crio-arch.rhai",
            "--inventory",
            "examples/lab/inventory.toml",
        ])
        .args([
            "--node",
            "worker-6",
            "--set",
            "version=1.21.14",
            "--dry-run",
            "--offline",
        ])
        .run();
    out.code(0)
        .stdout_has(" steps, 2 not planned)")
        .stderr_has("[worker-6] warning: not planned: pacman -U of each CRI-O package file");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{}", out.stdout))
    };
    // Where the installs would be: after crio is stopped, before it starts again.
    let not_planned = at("[not planned] pacman -U of each CRI-O package file");
    assert!(at("systemctl stop crio") < not_planned);
    assert!(not_planned < at("systemctl start crio"));
}
