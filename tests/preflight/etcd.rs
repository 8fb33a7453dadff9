//! The etcd check against three real etcd 3.4 members: healthy (the margin is reported, a
//! snapshot is taken and judged), then one member stopped (a block naming it, and the quorum
//! arithmetic); and the same options from a playbook, where a dry-run records the snapshot.

use std::path::Path;

use crate::cli::{Krun, Output};
use crate::etcd_e2e::{Files, etcd_section, three_members};

use super::snapshot;

/// `krun preflight` against the rehearsal snapshot with `inventory`, as JSON. The snapshot's
/// own block (Prometheus without a budget) is accepted: it is not what these tests are about.
async fn preflight(inventory: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["--accept", "critical-without-pdb", "--inventory"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(inventory.display().to_string());
    args.extend(["--output".to_owned(), "json".to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    super::preflight_cli_async("prometheus-without-pdb", args).await
}

fn finding(out: &Output, id: &str) -> serde_json::Value {
    super::findings(out)
        .into_iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {:#}", out.json()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_reports_its_margin_when_healthy_and_blocks_with_a_member_down() {
    let Some(mut cluster) = three_members().await else {
        return;
    };
    let files = Files::new(&etcd_section(&cluster));
    let backups = files.dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let taken = backups.join("before.db");

    // Healthy: the margin as information, and no snapshot named yet: a warning saying so.
    let out = preflight(&files.inventory, &["--skip-certs"]).await;
    out.code(0);
    let margin = finding(&out, "etcd-quorum/margin");
    assert_eq!(margin["severity"], "info");
    assert!(
        margin["message"]
            .as_str()
            .unwrap()
            .starts_with("etcd quorum margin 1: 3 voters, 3 healthy, quorum 2"),
        "{margin}"
    );
    let unknown = finding(&out, "etcd-snapshot/unknown");
    assert_eq!(unknown["severity"], "warn");
    assert!(unknown["fix"].as_str().unwrap().contains("--take-snapshot"));
    assert!(
        !super::finding_ids(&out)
            .iter()
            .any(|id| id.starts_with("etcd-unhealthy"))
    );

    // "Or take one": saved through the snapshot step, and then the directory is recent.
    let out = preflight(
        &files.inventory,
        &["--skip-certs", "--take-snapshot", taken.to_str().unwrap()],
    )
    .await;
    out.code(0);
    let saved = finding(&out, &format!("etcd-snapshot/{}", taken.display()));
    assert_eq!(saved["severity"], "info");
    assert!(
        saved["message"]
            .as_str()
            .unwrap()
            .contains("saved a snapshot")
    );
    assert!(std::fs::metadata(&taken).unwrap().len() > 0);
    let out = preflight(
        &files.inventory,
        &["--skip-certs", "--snapshot", backups.to_str().unwrap()],
    )
    .await;
    out.code(0);
    let recent = finding(&out, &format!("etcd-snapshot/{}", backups.display()));
    assert_eq!(recent["severity"], "info", "{recent}");
    // The same snapshot is too old for a limit it has already outlived.
    std::fs::File::options()
        .write(true)
        .open(&taken)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let out = preflight(
        &files.inventory,
        &[
            "--skip-certs",
            "--snapshot",
            backups.to_str().unwrap(),
            "--snapshot-max-age",
            "1h",
        ],
    )
    .await;
    out.code(0);
    let old = finding(&out, &format!("etcd-snapshot/{}", backups.display()));
    assert_eq!(old["severity"], "warn");
    assert!(
        old["message"].as_str().unwrap().contains("older than 1h"),
        "{old}"
    );

    // One member down: it is named with its error, and one more down would lose quorum.
    cluster.stop("m1");
    let out = preflight(&files.inventory, &["--skip-certs"]).await;
    out.code(3);
    let down = finding(&out, "etcd-unhealthy/m1");
    assert_eq!(down["severity"], "block");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .starts_with("etcd member m1 ("),
        "{down}"
    );
    let margin = finding(&out, "etcd-quorum/margin");
    assert_eq!(margin["severity"], "block");
    assert!(
        margin["message"].as_str().unwrap().contains(
            "a rolling upgrade takes each member down once; with 3 voters and 2 healthy, \
             taking one more down loses quorum"
        ),
        "{margin}"
    );
    // Accepting the check by name lets it through, logged.
    let out = preflight(
        &files.inventory,
        &[
            "--skip-certs",
            "--accept",
            "etcd-unhealthy",
            "--accept",
            "etcd-quorum",
        ],
    )
    .await;
    out.code(0)
        .stderr_has("accepted block finding etcd-unhealthy/m1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_gets_the_etcd_findings_and_a_dry_run_only_records_the_snapshot() {
    let Some(cluster) = three_members().await else {
        return;
    };
    let files = Files::new(&etcd_section(&cluster));
    let taken = files.dir.path().join("preflight.db");
    let playbook = files.write(
        "check.rhai",
        &format!(
            r#"
let findings = preflight(#{{ take_snapshot: {taken:?}, certs: false }});
let ids = [];
for f in findings {{ ids.push(f.id); }}
if !ids.contains("etcd-quorum/margin") {{ throw `no margin in ${{ids}}`; }}
log(`findings: ${{ids}}`);
"#,
            taken = taken.display().to_string()
        ),
    );
    let rehearsal = snapshot("prometheus-without-pdb").display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        let out = files.krun(&playbook, &["--rehearse", &rehearsal, "--output", "json"]);
        (files, out)
    })
    .await
    .unwrap();
    let (_files, out) = out;
    out.code(0);
    let report = out.json();
    let steps = crate::etcd_e2e::steps(&report);
    let snapshot_step = steps
        .iter()
        .find(|s| s["action"] == "etcd_snapshot")
        .unwrap_or_else(|| panic!("no etcd_snapshot step in {report:#}"));
    assert_eq!(snapshot_step["access"], "change");
    assert_eq!(snapshot_step["executed"], false);
    assert!(!taken.exists(), "a dry-run takes no snapshot");
    let read = steps
        .iter()
        .find(|s| s["node"] == "etcd" && s["action"] == "preflight")
        .unwrap_or_else(|| panic!("no etcd read in {report:#}"));
    assert_eq!(read["executed"], true);

    // A misspelt option is an input error with the near miss.
    let bad = tempfile::tempdir().unwrap();
    let path = bad.path().join("bad.rhai");
    std::fs::write(&path, "preflight(#{ cert_day: 10 });").unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Krun::new()
            .args([path.to_str().unwrap(), "--dry-run", "--offline"])
            .run()
    })
    .await
    .unwrap();
    out.code(2).stderr_has("did you mean `cert_days`?");
}
