//! The platform team publishes teamlib 1.0.0, then 1.1.0; a cluster team depends on ^1.0 over
//! `git daemon`, locks, upgrades, vendors, and runs with the daemon gone.

use super::{DRY_RUN, PLAYBOOK, Workspace, drain_module, locked, planned_commands};
use crate::support::git::{GitDaemon, LibraryRepo, git, require_git};

#[test]
fn a_cluster_team_locks_upgrades_vendors_and_runs_without_the_remote() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let served = ws.path().join("served");
    let teamlib = LibraryRepo::create(&served, "teamlib");
    let v100 = teamlib.release("1.0.0", "", &[("drain.rhai", &drain_module("policy-1.0"))]);
    teamlib.tag("v1.0.0", false);
    let mut daemon = GitDaemon::serve(&served);
    let url = daemon.url(&teamlib);

    // The cluster team adds the library: the newest release, as ^1.0, locked at its commit.
    let ops = ws.cluster_repo("ops", PLAYBOOK);
    ws.krun(&ops, &["lib", "add", "teamlib", "--git", &url])
        .code(0)
        .stdout_has("locked teamlib 1.0.0");
    let manifest = std::fs::read_to_string(ops.join("krun.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "teamlib = {{ git = \"{url}\", version = \"^1.0\" }}"
        )),
        "{manifest}"
    );
    assert!(manifest.contains("# Shared libraries"), "comments are kept");
    let entry = locked(&ops, "teamlib");
    assert_eq!(entry["version"].as_str(), Some("1.0.0"));
    assert_eq!(
        entry["commit"].as_str(),
        Some(v100.as_str()),
        "a commit id, not the tag"
    );
    let hash_100 = entry["hash"].as_str().unwrap().to_owned();

    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo policy-1.0"]);

    // 1.1.0 is released; the lock keeps 1.0.0 until the team updates.
    let v110 = teamlib.release("1.1.0", "", &[("drain.rhai", &drain_module("policy-1.1"))]);
    teamlib.tag("v1.1.0", false);
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo policy-1.0"]);
    ws.krun(&ops, &["lib", "update"])
        .code(0)
        .stdout_has("updated teamlib 1.0.0 -> 1.1.0");
    assert_eq!(
        locked(&ops, "teamlib")["commit"].as_str(),
        Some(v110.as_str())
    );
    let hash_110 = locked(&ops, "teamlib")["hash"].as_str().unwrap().to_owned();
    assert_ne!(hash_110, hash_100);
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    let json = out.json();
    assert_eq!(planned_commands(&json), ["echo policy-1.1"]);
    // The JSON plan says which library code ran.
    assert_eq!(json["libraries"][0]["name"], "teamlib");
    assert_eq!(json["libraries"][0]["version"], "1.1.0");
    assert_eq!(json["libraries"][0]["hash"], hash_110.as_str());
    assert_eq!(json["libraries"][0]["commit"], v110.as_str());
    git(&ops, &["add", "-A"]);
    git(&ops, &["commit", "-q", "-m", "teamlib 1.1"]);

    // A manual edit of the manifest: --locked refuses instead of changing the lock.
    let manifest = std::fs::read_to_string(ops.join("krun.toml")).unwrap();
    std::fs::write(
        ops.join("krun.toml"),
        manifest.replace("version = \"^1.0\"", "version = \"^1.2\""),
    )
    .unwrap();
    let mut locked_run = DRY_RUN.to_vec();
    locked_run.push("--locked");
    ws.krun(&ops, &locked_run).code(2).stderr_has(&format!(
        "krun.lock does not match krun.toml (krun.toml wants teamlib ^1.2 from {url}, but 1.1.0 \
         is locked); run `krun lib update`"
    ));
    assert_eq!(locked(&ops, "teamlib")["version"].as_str(), Some("1.1.0"));
    // Without --locked the lock follows the manifest, which no release satisfies.
    ws.krun(&ops, &["lib", "update"]).code(2).stderr_has(&format!(
        "no version of teamlib satisfies the requirement: ops (krun.toml) wants ^1.2 from {url}; \
         {url} has 1.0.0, 1.1.0"
    ));
    git(&ops, &["checkout", "-q", "krun.toml"]);

    // Vendoring, then the remote goes away and the cache is empty: the run still has its code.
    ws.krun(&ops, &["lib", "vendor"])
        .code(0)
        .stdout_has("vendored 1 library");
    assert_eq!(
        std::fs::read_to_string(ops.join("vendor/teamlib/drain.rhai")).unwrap(),
        drain_module("policy-1.1")
    );
    daemon.stop();
    std::fs::remove_dir_all(&ws.cache).unwrap();
    let state = ws.path().join("state");
    let mut air_gapped = DRY_RUN.to_vec();
    air_gapped.extend(["--locked", "--state-dir", state.to_str().unwrap()]);
    let out = ws.krun(&ops, &air_gapped);
    out.code(0);
    let json = out.json();
    assert_eq!(planned_commands(&json), ["echo policy-1.1"]);
    assert_eq!(json["libraries"][0]["from"], "vendor");
    // The journal names the library and its hash, and `krun runs ID` shows them.
    let run_id = json["run_id"].as_str().unwrap().to_owned();
    let journal =
        std::fs::read_to_string(state.join("runs").join(&run_id).join("journal.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(header["libraries"][0]["name"], "teamlib");
    assert_eq!(header["libraries"][0]["version"], "1.1.0");
    assert_eq!(header["libraries"][0]["hash"], hash_110.as_str());
    ws.krun(
        &ops,
        &[
            "runs",
            "show",
            &run_id,
            "--state-dir",
            state.to_str().unwrap(),
        ],
    )
    .code(0)
    .stdout_has(&format!("library teamlib 1.1.0 {hash_110}"));
    // Without vendor/ and without the remote, --offline says what is missing.
    std::fs::remove_dir_all(ops.join("vendor")).unwrap();
    ws.krun(&ops, DRY_RUN)
        .code(2)
        .stderr_has("teamlib 1.1.0 (commit ")
        .stderr_has("is neither in vendor/ nor in the cache");
}

#[test]
fn a_moved_release_tag_is_refused() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let served = ws.path().join("served");
    let teamlib = LibraryRepo::create(&served, "teamlib");
    teamlib.release("1.0.0", "", &[("drain.rhai", &drain_module("policy-1.0"))]);
    teamlib.tag("v1.0.0", false);
    let locked_commit = teamlib.release("1.1.0", "", &[("drain.rhai", &drain_module("a"))]);
    teamlib.tag("v1.1.0", false);
    let daemon = GitDaemon::serve(&served);
    let url = daemon.url(&teamlib);
    let ops = ws.cluster_repo("ops", PLAYBOOK);
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &url, "--version", "^1.0"],
    )
    .code(0)
    .stdout_has("locked teamlib 1.1.0");
    ws.krun(&ops, &["lib", "verify"])
        .code(0)
        .stdout_has("verified 1 library");

    // Someone re-tags 1.1.0 on another commit.
    let moved = teamlib.release("1.1.0", "", &[("drain.rhai", &drain_module("b"))]);
    teamlib.tag("v1.1.0", true);
    let message = format!(
        "tag v1.1.0 of {url} moved: teamlib 1.1.0 is locked at commit {locked_commit}, the tag \
         now points to {moved}"
    );
    ws.krun(&ops, &["lib", "verify"])
        .code(3)
        .stderr_has(&message);
    // A machine that never fetched it refuses to run the new code under the old version.
    std::fs::remove_dir_all(&ws.cache).unwrap();
    let out = ws.krun(
        &ops,
        &[
            "playbooks/play.rhai",
            "--inventory",
            "inventory.toml",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    out.code(3).stderr_has(&message);
    // Accepting it is explicit.
    ws.krun(&ops, &["lib", "update", "teamlib"])
        .code(0)
        .stdout_has(&format!(
            "teamlib: tag v1.1.0 moved from {locked_commit} to {moved}"
        ));
    assert_eq!(
        locked(&ops, "teamlib")["commit"].as_str(),
        Some(moved.as_str())
    );
}
