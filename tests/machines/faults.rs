//! The fault suite: a full worker upgrade of three machines (`worker.rhai`, one node at a time)
//! while the API server fails requests in bursts, answers slowly and drops every watch, and one
//! node's sshd is killed and started again. What krun survives must leave no trace: no budget
//! short at any moment, every node Ready at the target and uncordoned, every step in the journal
//! exactly once. What stops it must be said (the nodes left cordoned) and `krun resume` must
//! finish it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use krun::sim::{Fault, Latency, SimHandle};
use serde_json::Value;

use crate::support::fleet::Os;
use crate::support::machines::Layout;
use crate::support::machines::lab::{MachineLab, MachineLabSpec};

/// Bursts of server errors, each on requests krun itself makes during a worker upgrade: the
/// node reads and writes of cordon, uncordon and wait_ready, the drain's pod list and watch,
/// its DaemonSet lookups and evictions, and the cluster lock's reads and renewals. Each burst
/// of a kind answers with the next of its codes.
const BURSTS: &[(&str, &str, u32, &[u16])] = &[
    ("get", "nodes", 2, &[503, 429, 500]),
    ("list", "nodes", 2, &[500, 504]),
    ("watch", "nodes", 1, &[504, 503]),
    ("patch", "nodes", 1, &[500, 503]),
    ("list", "pods", 2, &[500, 429]),
    ("watch", "pods", 1, &[503]),
    ("get", "daemonsets", 1, &[500, 502]),
    ("create", "pods/eviction", 3, &[503, 500, 429]),
    ("get", "leases", 1, &[503, 500]),
    ("update", "leases", 1, &[500, 504]),
];

/// How often every open watch is dropped (an API server restart).
const WATCH_DROP_EVERY: Duration = Duration::from_millis(1500);

/// What the injector did, for the assertions and the report.
#[derive(Debug, Default)]
struct FaultReport {
    /// `verb resource code`: (bursts armed, bursts that fired in full).
    bursts: BTreeMap<String, (u32, u32)>,
    watch_drops: u32,
}

impl FaultReport {
    fn fired(&self) -> u32 {
        self.bursts.values().map(|(_, fired)| fired).sum()
    }

    fn armed(&self) -> u32 {
        self.bursts.values().map(|(armed, _)| armed).sum()
    }
}

/// Injects faults into the simulator until stopped.
struct Injector {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<FaultReport>,
}

impl Injector {
    /// Latency on evictions and node writes throughout; one burst of each kind pending at a
    /// time, armed again only after a request of its kind got through, so bursts never join
    /// into an outage (which krun should not ride out silently); watches dropped regularly.
    fn start(handle: SimHandle) -> Injector {
        let stop = Arc::new(AtomicBool::new(false));
        for (verb, resource, milliseconds) in [
            ("create", "pods/eviction", 150),
            ("patch", "nodes", 100),
            ("list", "pods", 50),
        ] {
            handle.set_latency(Latency {
                verb: verb.into(),
                resource: resource.into(),
                milliseconds,
            });
        }
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut report = FaultReport::default();
                // Per burst: the request count of its kind when it was armed.
                let mut pending: Vec<Option<u64>> = vec![None; BURSTS.len()];
                let mut armed_total: Vec<usize> = vec![0; BURSTS.len()];
                let mut last_drop = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let counts = handle.request_counts();
                    for (i, (verb, resource, count, codes)) in BURSTS.iter().enumerate() {
                        let seen = counts
                            .get(&format!("{verb} {resource}"))
                            .copied()
                            .unwrap_or(0);
                        match pending[i] {
                            // Fired in full, and a request of its kind got through after.
                            Some(armed) if seen > armed + u64::from(*count) => {
                                pending[i] = None;
                                let code = codes[(armed_total[i] - 1) % codes.len()];
                                report
                                    .bursts
                                    .entry(format!("{verb} {resource} {code}"))
                                    .or_default()
                                    .1 += 1;
                            }
                            Some(_) => continue,
                            None => {}
                        }
                        let code = codes[armed_total[i] % codes.len()];
                        armed_total[i] += 1;
                        handle.inject_fault(Fault {
                            verb: (*verb).into(),
                            resource: (*resource).into(),
                            namespace: None,
                            count: *count,
                            code,
                            message: Some(format!("fault suite: {code} on {verb} {resource}")),
                        });
                        report
                            .bursts
                            .entry(format!("{verb} {resource} {code}"))
                            .or_default()
                            .0 += 1;
                        pending[i] = Some(seen);
                    }
                    if last_drop.elapsed() >= WATCH_DROP_EVERY {
                        handle.drop_watches();
                        report.watch_drops += 1;
                        last_drop = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                handle.clear_faults();
                report
            }
        });
        Injector { stop, thread }
    }

    fn stop(self) -> FaultReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the fault injector")
    }
}

/// Stops sshd on `node` and kills every session it served (what a crash or an OOM kill of
/// sshd does to the commands of a connection), keeps it down for `down`, then starts it again.
fn kill_sshd(lab: &MachineLab, node: &str, down: Duration) {
    let machine = lab.machine(node);
    machine.sh("systemctl stop ssh.service; pkill -KILL -x sshd; true");
    std::thread::sleep(down);
    machine.sh("systemctl start ssh.service");
}

/// Pods on `node` that a drain moves (all but DaemonSet pods).
fn workload_pods_on(lab: &MachineLab, node: &str) -> usize {
    lab.handle().snapshot()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == "Pod" && i["spec"]["nodeName"] == node)
        .filter(|p| {
            !p["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["kind"] == "DaemonSet")
        })
        .count()
}

/// Waits until `until` holds or `running` ended; true when it held.
fn wait_for(running: &AtomicBool, until: impl Fn() -> bool) -> bool {
    while running.load(Ordering::SeqCst) {
        if until() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The lines of a step's intent records and of its result records.
type Records = (Vec<usize>, Vec<usize>);

/// Every journal under `state`: each step of each run has exactly one intent and one result,
/// numbered 1.. without a gap, the result after its intent; no torn line.
fn check_journals(state: &Path) -> usize {
    let mut journals = 0;
    for entry in std::fs::read_dir(state.join("runs")).expect("the runs directory") {
        let path = entry.expect("a run").path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("a journal");
        journals += 1;
        let mut steps: BTreeMap<String, BTreeMap<u64, Records>> = BTreeMap::new();
        for (line_no, line) in text.lines().enumerate() {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{}: torn or invalid ({e})", path.display(), line_no + 1)
            });
            let kind = record["type"].as_str().unwrap_or_default();
            if kind != "intent" && kind != "done" {
                continue;
            }
            let run = record["run"].as_str().unwrap_or_default().to_string();
            let seq = record["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}:{}: no seq", path.display(), line_no + 1));
            let slot = steps.entry(run).or_default().entry(seq).or_default();
            if kind == "intent" {
                slot.0.push(line_no);
            } else {
                slot.1.push(line_no);
            }
        }
        for (run, seqs) in &steps {
            let numbers: Vec<u64> = seqs.keys().copied().collect();
            assert_eq!(
                numbers,
                (1..=numbers.len() as u64).collect::<Vec<_>>(),
                "{}: run {run} has gaps in its steps",
                path.display()
            );
            for (seq, (intents, dones)) in seqs {
                assert!(
                    intents.len() == 1 && dones.len() == 1 && intents[0] < dones[0],
                    "{}: run {run} step {seq}: {} intent(s) at lines {intents:?}, {} result(s) at \
                     lines {dones:?}",
                    path.display(),
                    intents.len(),
                    dones.len()
                );
            }
        }
    }
    journals
}

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

/// The nodes the cluster shows cordoned.
fn cordoned(lab: &MachineLab, nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| lab.cluster_node(n).1)
        .map(|n| n.to_string())
        .collect()
}

/// A failed run's JSON report and summary name every node the cluster shows cordoned.
fn assert_cordoned_nodes_are_named(lab: &MachineLab, out: &crate::cli::Output, nodes: &[&str]) {
    let report = out.json();
    let named: Vec<String> = report["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["failure"]["left_cordoned"].as_array())
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    for node in cordoned(lab, nodes) {
        assert!(
            named.contains(&node),
            "{node} is cordoned but the JSON names only {named:?} as left cordoned:\n{}",
            out.stdout
        );
        assert!(
            out.stderr.contains(&format!("{node} is left CORDONED")),
            "{node} is cordoned but the summary does not say so:\n{}",
            out.stderr
        );
    }
}

/// One faulted upgrade of w1..w3 to `version` (`1.21`), with `sshd_fault` run beside it;
/// resumed until done when it fails. Returns the fault report, whether a resume was needed, and
/// what krun said.
fn faulted_upgrade(
    lab: &MachineLab,
    version: &str,
    sshd_fault: impl FnOnce(&AtomicBool) + Send,
) -> (FaultReport, bool, String) {
    let workers = ["w1", "w2", "w3"];
    let state = lab.dir().join(format!("state-{version}"));
    let state_arg = state.to_str().unwrap().to_string();
    let version_arg = format!("version={version}");
    let running = AtomicBool::new(true);
    let injector = Injector::start(lab.handle());
    let out = std::thread::scope(|scope| {
        let sshd = scope.spawn(|| sshd_fault(&running));
        let krun = lab
            .krun(playbook("worker.rhai"))
            .args([
                "--node", "w1", "--node", "w2", "--node", "w3", "--batch", "1",
            ])
            .args(["--set", &version_arg, "--set", "ready_timeout=60s"])
            .args(["--output", "json", "--state-dir", &state_arg])
            .spawn();
        let out = krun.wait();
        running.store(false, Ordering::SeqCst);
        sshd.join().expect("the sshd fault");
        out
    });
    let resumed = out.code != 0;
    if resumed {
        assert_eq!(out.code, 1, "a failed run exits 1:\n{}", out.stderr);
        assert_cordoned_nodes_are_named(lab, &out, &workers);
        let id = out.json()["run_id"].as_str().unwrap().to_string();
        // The API server still misbehaves while the run is resumed.
        crate::cli::Krun::new()
            .args(["resume", &id, "--state-dir", &state_arg, "--retry-unknown"])
            .run()
            .code(0);
    }
    let report = injector.stop();
    let journals = check_journals(&state);
    assert_eq!(journals, 1 + usize::from(resumed), "{}", state.display());
    (report, resumed, out.stderr)
}

/// Every worker Ready at `version`, schedulable, its packages held; no budget ever short.
fn assert_upgraded(lab: &MachineLab, version: &str) {
    for name in ["w1", "w2", "w3"] {
        let (ready, unschedulable, reported) = lab.cluster_node(name);
        assert!(
            ready && !unschedulable && reported == version,
            "{name}: Ready {ready}, cordoned {unschedulable}, kubelet {reported}"
        );
        assert_eq!(
            lab.machine(name).held(),
            ["kubeadm", "kubectl", "kubelet"],
            "{name}"
        );
    }
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// 1.20 -> 1.21 with w2's sshd killed while its drain runs (between two of its ssh steps) and
/// back only after krun's next command found it refusing; then 1.21 -> 1.22 on the same machines with w3's sshd killed while a
/// command runs on it (a step whose outcome is unknown: the run stops, names w3 left cordoned,
/// and `krun resume --retry-unknown` finishes it), or between its steps if the command was
/// already done. Bursts of 5xx and 429, latency and dropped watches throughout.
#[test]
fn a_worker_upgrade_survives_api_faults_and_an_sshd_restart() {
    let mut spec = MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15").workers(3);
    spec.pods = 30;
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    lab.krun(playbook("cluster.rhai"))
        .args(["--set", "version=1.21", "--set", "ready_timeout=60s"])
        .run()
        .code(0);

    let (first, resumed_first, said) = faulted_upgrade(&lab, "1.21", |running| {
        // Killed once w2 is cordoned (its drain has no ssh step), back a second after the
        // drain has emptied it, so that krun's next command on w2 finds sshd refusing.
        if wait_for(running, || lab.cluster_node("w2").1) {
            lab.machine("w2")
                .sh("systemctl stop ssh.service; pkill -KILL -x sshd; true");
            wait_for(running, || workload_pods_on(&lab, "w2") == 0);
            std::thread::sleep(Duration::from_secs(1));
            lab.machine("w2").sh("systemctl start ssh.service");
        }
    });
    // A node krun had reached before is connected to again while sshd comes back; one it
    // meets refusing at its first contact fails the run (nothing ran on it), names it left
    // cordoned, and the resume finishes.
    if resumed_first {
        assert!(
            said.contains("w2: cannot connect to"),
            "the run failed for another reason than w2's sshd:\n{said}"
        );
    } else {
        assert!(
            said.contains("w2: cannot connect to") && said.contains("sshd may be restarting"),
            "krun never met w2's sshd down:\n{said}"
        );
    }
    assert_upgraded(&lab, "v1.21.14");

    lab.krun(playbook("cluster.rhai"))
        .args(["--set", "version=1.22", "--set", "ready_timeout=60s"])
        .run()
        .code(0);
    let (second, resumed_second, said) = faulted_upgrade(&lab, "1.22", |running| {
        let w3 = lab.machine("w3");
        let busy = || {
            // The brackets keep the pattern from matching the shell that runs pgrep.
            w3.exec("pgrep -f '[a]pt-get install|[k]ubeadm upgrade|[s]ystemctl restart'")
                .status
                .success()
        };
        if wait_for(running, || lab.cluster_node("w3").1 && busy()) {
            kill_sshd(&lab, "w3", Duration::from_secs(1));
        }
    });
    assert_upgraded(&lab, "v1.22.17");
    assert!(
        !resumed_second
            || said.contains("w3: connection lost while running")
            || said.contains("w3: cannot connect to"),
        "the run failed for another reason than w3's sshd:\n{said}"
    );

    for report in [&first, &second] {
        eprintln!(
            "fault suite: {} bursts armed, {} fired in full, {} watch drops: {:?}",
            report.armed(),
            report.fired(),
            report.watch_drops,
            report.bursts
        );
        assert!(
            report.fired() >= 10 && report.watch_drops >= 3,
            "too few faults reached krun to prove anything: {report:?}"
        );
    }
    eprintln!(
        "fault suite: resumed after w2's sshd restart: {resumed_first}; after w3's sshd was \
         killed mid-run: {resumed_second}"
    );
}
