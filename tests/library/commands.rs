//! `krun init`, and `krun check` and `krun doc --lib` over library modules.

use super::{DRY_RUN, Workspace, drain_module};
use crate::support::git::{LibraryRepo, require_git};

#[test]
fn init_scaffolds_a_repository_that_checks_and_plans() {
    let ws = Workspace::new();
    ws.krun(ws.path(), &["init", "cluster-ops"])
        .code(0)
        .stdout_has("created cluster-ops");
    let repo = ws.path().join("cluster-ops");
    let manifest = std::fs::read_to_string(repo.join("krun.toml")).unwrap();
    assert!(manifest.contains("name = \"cluster-ops\""), "{manifest}");
    let krun = env!("CARGO_PKG_VERSION")
        .split('.')
        .take(2)
        .collect::<Vec<_>>();
    assert!(
        manifest.contains(&format!("requires_krun = \"^{}.{}\"", krun[0], krun[1])),
        "{manifest}"
    );
    let playbook = std::fs::read_to_string(repo.join("playbooks/restart-kubelet.rhai")).unwrap();
    assert!(playbook.contains("import \"node\" as node_ops;"));
    let ci = std::fs::read_to_string(repo.join("ci/check.sh")).unwrap();
    assert!(ci.contains("krun check --locked playbooks/*.rhai"), "{ci}");
    // The CI line, as CI runs it (krun on PATH).
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_krun"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(repo.join("ci/check.sh"))
        .env("PATH", path)
        .env("KRUN_CACHE_DIR", &ws.cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ci/check.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 1 playbook(s) checked"));

    // The inventory example is a valid inventory: the playbook plans against it, drain first.
    std::fs::copy(
        repo.join("inventory.example.toml"),
        repo.join("inventory.toml"),
    )
    .unwrap();
    let out = ws.krun(
        &repo,
        &[
            "playbooks/restart-kubelet.rhai",
            "--inventory",
            "inventory.toml",
            "--node",
            "worker-1",
            "--dry-run",
            "--offline",
            "--locked",
            "--output",
            "json",
        ],
    );
    out.code(0);
    let json = out.json();
    let actions: Vec<&str> = json["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    let position = |a: &str| actions.iter().position(|x| *x == a).unwrap_or(usize::MAX);
    assert!(
        position("cordon") < position("drain") && position("drain") < position("uncordon"),
        "{actions:?}"
    );

    ws.krun(ws.path(), &["init", "cluster-ops"])
        .code(2)
        .stderr_has("krun.toml exists; krun init writes only new files");
    ws.krun(ws.path(), &["init", "Bad Name"])
        .code(2)
        .stderr_has("is not a library name");
}

#[test]
fn check_and_doc_cover_library_modules() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    teamlib.release(
        "1.0.0",
        "",
        &[
            ("drain.rhai", &drain_module("p")),
            (
                "kubeadm/plan.rhai",
                "//! Wrappers around kubeadm upgrade plan.\n\n/// Plans the upgrade on `n`.\nfn plan(n) {\n    sh(n, \"kubeadm upgrade plan\")\n}\n\nfn broken(n) {\n    systemctll(n, \"restart\", \"kubelet\");\n}\n",
            ),
        ],
    );
    teamlib.tag("v1.0.0", false);
    let ops = ws.cluster_repo(
        "ops",
        "import \"teamlib/kubeadm/plan\" as plan;\nplan::plan(find_node(\"n1\"));\nplan::plann(find_node(\"n1\"));\n",
    );
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &teamlib.file_url()],
    )
    .code(0);
    let out = ws.krun(&ops, &["check", "--locked", "playbooks/play.rhai"]);
    out.code(2);
    // The library's own mistake is reported in its file, and the playbook's call by name.
    out.stderr_has("unknown function `systemctll`")
        .stderr_has("kubeadm/plan.rhai")
        .stderr_has("unknown function `plan::plann`")
        .stderr_has("did you mean `plan::plan`?");
    let missing = "import \"teamlib/nothing\" as x;\n";
    std::fs::write(ops.join("playbooks/play.rhai"), missing).unwrap();
    ws.krun(&ops, &["check", "playbooks/play.rhai"])
        .code(2)
        .stderr_has("module not found: `teamlib/nothing`");
    let mut dry = DRY_RUN.to_vec();
    dry.push("--locked");
    ws.krun(&ops, &dry)
        .code(2)
        .stderr_has("teamlib/nothing")
        .stderr_has("library teamlib 1.0.0 in ");

    let doc = ws.krun(&ops, &["doc", "--lib", "teamlib"]);
    doc.code(0);
    doc.stdout_has("# teamlib 1.0.0")
        .stdout_has("### `import \"teamlib/kubeadm/plan\" as plan;`")
        .stdout_has("Wrappers around kubeadm upgrade plan.")
        .stdout_has("#### `plan::plan(n)`")
        .stdout_has("Plans the upgrade on `n`.")
        .stdout_has("#### `drain::policy()`");
    let json = ws.krun(&ops, &["doc", "--lib", "teamlib", "--format", "json"]);
    json.code(0);
    let json = json.json();
    let imports: Vec<&str> = json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["import"].as_str().unwrap())
        .collect();
    assert_eq!(imports, ["teamlib/drain", "teamlib/kubeadm/plan"]);
    ws.krun(&ops, &["doc", "--lib", "nolib"])
        .code(2)
        .stderr_has("nolib is not a library of ops (its libraries: teamlib)");
}

#[test]
fn resume_refuses_library_code_that_changed_since_the_run_started() {
    if !require_git() {
        return;
    }
    let ws = Workspace::new();
    let teamlib = LibraryRepo::create(ws.path(), "teamlib");
    teamlib.release("1.0.0", "", &[("drain.rhai", &drain_module("one"))]);
    teamlib.tag("v1.0.0", false);
    let ops = ws.cluster_repo(
        "ops",
        "import \"teamlib/drain\" as drain;\nlog(drain::policy());\nfail(\"stopped\");\n",
    );
    ws.krun(
        &ops,
        &["lib", "add", "teamlib", "--git", &teamlib.file_url()],
    )
    .code(0);
    let state = ws.path().join("state");
    let state = state.to_str().unwrap();
    // A live run that touches nothing and stops at fail(): resumable.
    let out = ws.krun(
        &ops,
        &[
            "playbooks/play.rhai",
            "--no-lock",
            "--state-dir",
            state,
            "--output",
            "json",
        ],
    );
    out.code(1);
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    let hash_one = super::locked(&ops, "teamlib")["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    teamlib.release("1.1.0", "", &[("drain.rhai", &drain_module("two"))]);
    teamlib.tag("v1.1.0", false);
    ws.krun(&ops, &["lib", "update"]).code(0);
    ws.krun(&ops, &["resume", &id, "--state-dir", state])
        .code(2)
        .stderr_has(&format!(
            "the libraries changed since run {id} started (teamlib 1.0.0 {} then, teamlib 1.1.0 ",
            &hash_one[..19]
        ))
        .stderr_has("resume with --allow-changed");
    // Accepted explicitly, the resumed run uses the new code (and stops at fail() again).
    ws.krun(
        &ops,
        &["resume", &id, "--state-dir", state, "--allow-changed"],
    )
    .code(1)
    .stderr_has("two");
}
