//! Clients nobody here wrote: the official Kubernetes Python client (PyPI `kubernetes`) and
//! Ansible's `kubernetes.core` (PyPI `ansible`), both installed by `.ci/run`. The checks
//! themselves are in `clients/`, each naming the upstream source of what it expects.

use std::path::PathBuf;

use super::support::*;
use crate::support::in_ci;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sim/clients")
        .join(name)
}

/// Whether `python3 -c CODE` succeeds; a failure fails the test under `CI=true`.
async fn python_has(code: &str, what: &str) -> bool {
    let found = tokio::process::Command::new("python3")
        .args(["-c", code])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !found {
        let message = format!("{what} is not installed (pip install: see .ci/run)");
        assert!(!in_ci(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client() {
    if !python_has("import kubernetes", "the Python kubernetes client").await {
        return;
    }
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let output = tokio::process::Command::new("python3")
        .arg(script("python_client.py"))
        .arg(&sim.kubeconfig)
        .env("HOME", sim.dir.path())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "version",
        "eviction blocked by budget",
        "graceful deletion visible",
        "deployment rollout",
        "consistent pagination",
        "continue with resourceVersion refused",
        "watch too old is 410",
    ] {
        assert!(
            stdout.contains(&format!("ok {check}\n")),
            "{check}:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansible_kubernetes_core() {
    if !python_has(
        "import ansible_collections.kubernetes.core",
        "Ansible's kubernetes.core collection",
    )
    .await
    {
        return;
    }
    // The modules run under the interpreter that has the collection's requirements.
    let python = tokio::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .await
        .expect("python3 runs");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let output = tokio::process::Command::new("ansible-playbook")
        .args(["-i", "localhost,", "-c", "local", "-e"])
        .arg(format!("kubeconfig={}", sim.kubeconfig.display()))
        .arg("-e")
        .arg(format!("ansible_python_interpreter={python}"))
        .arg(script("ansible_playbook.yml"))
        .env("HOME", sim.dir.path())
        .env("ANSIBLE_LOCAL_TEMP", sim.dir.path().join("ansible-tmp"))
        .output()
        .await
        .expect("ansible-playbook runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("failed=0"), "{stdout}");
}
