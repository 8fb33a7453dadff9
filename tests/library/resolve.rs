//! Resolution over `file://` remotes: transitive libraries, pinned revs, paths, conflicts named
//! on both sides, krun's own version, and code that changed after locking.

use super::{DRY_RUN, PLAYBOOK, Workspace, drain_module, locked, planned_commands};
use crate::support::git::{LibraryRepo, require_git};

/// teamlib depends on netlib; the cluster team depends on teamlib and netlib.
#[test]
fn transitive_libraries_are_locked_with_commits_and_hashes() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let netlib = LibraryRepo::create(ws.path(), "netlib");
    let net_100 = netlib.release("1.0.0", "", &[("ports.rhai", "fn api() { 6443 }\n")]);
    netlib.light_tag("1.0.0");
    netlib.release("1.3.0", "", &[("ports.rhai", "fn api() { 6444 }\n")]);
    netlib.tag("v1.3.0", false);
    netlib.release("2.0.0", "", &[("ports.rhai", "fn api() { 443 }\n")]);
    netlib.tag("v2.0.0", false);
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    teamlib.release(
        "1.0.0",
        &format!(
            "netlib = {{ git = \"{}\", version = \">=1.0, <1.2\" }}\n",
            netlib.file_url()
        ),
        &[(
            "drain.rhai",
            "import \"netlib/ports\" as ports;\nfn policy() { `port-${ports::api()}` }\n",
        )],
    );
    teamlib.tag("v1.0.0", false);

    let ops = ws.cluster_repo("ops", PLAYBOOK);
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &teamlib.file_url()],
    )
    .code(0)
    .stdout_has("locked netlib 1.0.0")
    .stdout_has("locked teamlib 1.0.0");
    // The transitive library is locked like a direct one, at the commit its tag named.
    let net = locked(&ops, "netlib");
    assert_eq!(net["commit"].as_str(), Some(net_100.as_str()));
    assert_eq!(
        locked(&ops, "teamlib")["dependencies"][0].as_str(),
        Some("netlib")
    );
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo port-6443"]);
    let tree = ws.krun(&ops, &["lib", "tree", "--offline"]);
    tree.code(0);
    let lines: Vec<&str> = tree.stdout.lines().collect();
    assert_eq!(lines[0], "ops 0.1.0");
    assert!(
        lines[1].starts_with("  teamlib 1.0.0 (file://"),
        "{}",
        tree.stdout
    );
    assert!(
        lines[2].starts_with("    netlib 1.0.0 (file://"),
        "{}",
        tree.stdout
    );

    // The cluster team also wants netlib ^2: no version satisfies both, and both are named.
    let manifest = std::fs::read_to_string(ops.join("krun.toml")).unwrap();
    std::fs::write(
        ops.join("krun.toml"),
        format!(
            "{manifest}netlib = {{ git = \"{}\", version = \"^2.0\" }}\n",
            netlib.file_url()
        ),
    )
    .unwrap();
    let url = netlib.file_url();
    ws.krun(&ops, &["lib", "update"])
        .code(2)
        .stderr_has(&format!(
            "no version of netlib satisfies every requirement: ops (krun.toml) wants ^2.0 from \
         {url}, teamlib 1.0.0 wants >=1.0, <1.2 from {url}; {url} has 1.0.0, 1.3.0, 2.0.0"
        ));
    assert_eq!(
        locked(&ops, "netlib")["version"].as_str(),
        Some("1.0.0"),
        "lock untouched"
    );
}

#[test]
fn one_name_from_two_places_is_a_conflict() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let a = LibraryRepo::create(&ws.path().join("a"), "netlib");
    a.release("1.0.0", "", &[("ports.rhai", "fn api() { 1 }\n")]);
    a.tag("v1.0.0", false);
    let b = LibraryRepo::create(&ws.path().join("b"), "netlib");
    b.release("1.0.0", "", &[("ports.rhai", "fn api() { 2 }\n")]);
    b.tag("v1.0.0", false);
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    teamlib.release(
        "1.0.0",
        &format!(
            "netlib = {{ git = \"{}\", version = \"^1\" }}\n",
            b.file_url()
        ),
        &[("drain.rhai", &drain_module("x"))],
    );
    teamlib.tag("v1.0.0", false);
    let ops = ws.cluster_repo("ops", PLAYBOOK);
    ws.krun(&ops, &["lib", "add", "netlib", "--git", &a.file_url()])
        .code(0);
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &teamlib.file_url()],
    )
    .code(2)
    .stderr_has(&format!(
        "netlib is required from two places: ops (krun.toml) wants ^1.0 from {}, \
             teamlib 1.0.0 wants ^1 from {}; one name must mean one library",
        a.file_url(),
        b.file_url()
    ));
    // A failed add leaves krun.toml as it was.
    let manifest = std::fs::read_to_string(ops.join("krun.toml")).unwrap();
    assert!(
        !manifest.lines().any(|l| l.starts_with("teamlib")),
        "{manifest}"
    );
}

#[test]
fn pinned_revs_and_path_libraries() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    let first = teamlib.release("1.0.0", "", &[("drain.rhai", &drain_module("first"))]);
    teamlib.release("1.0.1", "", &[("drain.rhai", &drain_module("second"))]);
    let ops = ws.cluster_repo("ops", PLAYBOOK);
    // A rev may be a branch: it is read once and locked as the commit it named.
    ws.krun(
        &ops,
        &[
            "lib",
            "add",
            "teamlib",
            "--git",
            &teamlib.file_url(),
            "--rev",
            "main",
        ],
    )
    .code(0);
    let entry = locked(&ops, "teamlib");
    assert_eq!(entry["rev"].as_str(), Some("main"));
    assert_eq!(entry["commit"].as_str(), Some(teamlib.head().as_str()));
    assert_eq!(entry["version"].as_str(), Some("1.0.1"));
    // A new commit on the branch does not change what runs until an update.
    teamlib.release("1.0.2", "", &[("drain.rhai", &drain_module("third"))]);
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo second"]);

    // Pinned to a commit id instead.
    let manifest = std::fs::read_to_string(ops.join("krun.toml")).unwrap();
    std::fs::write(
        ops.join("krun.toml"),
        manifest.replace("\"main\"", &format!("\"{first}\"")),
    )
    .unwrap();
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo first"]);
    assert_eq!(
        locked(&ops, "teamlib")["commit"].as_str(),
        Some(first.as_str())
    );

    // A path library, edited in place: the lock follows it, except under --locked.
    let local = ws.path().join("ops/libs/local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(
        local.join("krun.toml"),
        "[package]\nname = \"local\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(local.join("steps.rhai"), "fn word() { \"one\" }\n").unwrap();
    ws.krun(&ops, &["lib", "add", "local", "--path", "libs/local"])
        .code(0)
        .stdout_has("locked local 0.1.0 (path libs/local)");
    std::fs::write(
        ops.join("playbooks/play.rhai"),
        "import \"local/steps\" as steps;\nsh(find_node(\"n1\"), [\"echo\", steps::word()]);\n",
    )
    .unwrap();
    std::fs::write(local.join("steps.rhai"), "fn word() { \"two\" }\n").unwrap();
    let mut strict = DRY_RUN.to_vec();
    strict.push("--locked");
    ws.krun(&ops, &strict)
        .code(3)
        .stderr_has("local 0.1.0: the files in ")
        .stderr_has("were changed after locking");
    let out = ws.krun(&ops, DRY_RUN);
    out.code(0);
    assert_eq!(planned_commands(&out.json()), ["echo two"]);
    ws.krun(&ops, &strict).code(0);
}

#[test]
fn an_edited_vendored_copy_and_an_incompatible_krun_are_refused() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    teamlib.release("1.0.0", "", &[("drain.rhai", &drain_module("reviewed"))]);
    teamlib.tag("v1.0.0", false);
    let ops = ws.cluster_repo("ops", PLAYBOOK);
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &teamlib.file_url()],
    )
    .code(0);
    ws.krun(&ops, &["lib", "vendor"]).code(0);
    std::fs::write(
        ops.join("vendor/teamlib/drain.rhai"),
        drain_module("patched"),
    )
    .unwrap();
    let hash = locked(&ops, "teamlib")["hash"].as_str().unwrap().to_owned();
    ws.krun(&ops, DRY_RUN)
        .code(3)
        .stderr_has(&format!(
            "teamlib 1.0.0: the files in {} hash to sha256:",
            ops.join("vendor/teamlib").display()
        ))
        .stderr_has(&format!(
            "krun.lock says {hash}; they were changed after locking"
        ));
    ws.krun(&ops, &["lib", "verify"]).code(3);
    // vendor does not paper over the edit; removing the copy and vendoring again restores it.
    ws.krun(&ops, &["lib", "vendor"]).code(3);
    std::fs::remove_dir_all(ops.join("vendor")).unwrap();
    ws.krun(&ops, &["lib", "vendor"]).code(0);
    ws.krun(&ops, &["lib", "verify"]).code(0);

    // A release that needs a newer krun is refused by name.
    teamlib.release("1.1.0", "", &[("drain.rhai", &drain_module("new"))]);
    let manifest = std::fs::read_to_string(teamlib.dir.join("krun.toml")).unwrap();
    std::fs::write(
        teamlib.dir.join("krun.toml"),
        manifest.replace(
            "version = \"1.1.0\"\n",
            "version = \"1.1.0\"\nrequires_krun = \">=99\"\n",
        ),
    )
    .unwrap();
    crate::support::git::git(&teamlib.dir, &["commit", "-qam", "needs krun 99"]);
    teamlib.tag("v1.1.0", false);
    ws.krun(&ops, &["lib", "update"])
        .code(2)
        .stderr_has(&format!(
            "teamlib 1.1.0 requires krun >=99; this is krun {}",
            env!("CARGO_PKG_VERSION")
        ));
}
