//! How long resolving a tree of 20 libraries takes, over `git daemon` and `file://`. Prints,
//! never asserts on time: `cargo test --test integration library::bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use super::Workspace;
use crate::support::git::{GitDaemon, LibraryRepo, require_git};

const LIBRARIES: usize = 20;
const RELEASES: usize = 3;

/// lib00 … lib19, each with three releases; lib N depends on libs 2N+1 and 2N+2 (a binary
/// tree), and every library also depends on lib19, so lib19 has many dependents to agree on.
fn publish(ws: &Workspace, url: &dyn Fn(&LibraryRepo) -> String) -> Vec<LibraryRepo> {
    let served = ws.path().join("served");
    let repos: Vec<LibraryRepo> = (0..LIBRARIES)
        .map(|i| LibraryRepo::create(&served, &format!("lib{i:02}")))
        .collect();
    for (i, repo) in repos.iter().enumerate() {
        let mut children: Vec<usize> = [2 * i + 1, 2 * i + 2]
            .into_iter()
            .filter(|c| *c < LIBRARIES)
            .collect();
        if i != LIBRARIES - 1 && !children.contains(&(LIBRARIES - 1)) {
            children.push(LIBRARIES - 1);
        }
        for minor in 0..RELEASES {
            let deps: String = children
                .iter()
                .map(|c| {
                    format!(
                        "lib{c:02} = {{ git = \"{}\", version = \"^1.{}\" }}\n",
                        url(&repos[*c]),
                        minor.min(1)
                    )
                })
                .collect();
            repo.release(
                &format!("1.{minor}.0"),
                &deps,
                &[("steps.rhai", &format!("fn release() {{ \"1.{minor}\" }}\n"))],
            );
            repo.tag(&format!("v1.{minor}.0"), false);
        }
    }
    repos
}

fn timed(ws: &Workspace, project: &std::path::Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    ws.krun(project, args).code(0);
    started.elapsed()
}

#[test]
#[ignore = "benchmark: prints figures"]
fn resolution_time_for_twenty_libraries() {
    if !require_git() {
        return;
    }
    for transport in ["git daemon", "file://"] {
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.path().join("served")).unwrap();
        let daemon = GitDaemon::serve(&ws.path().join("served"));
        let port = daemon.port;
        let url = move |repo: &LibraryRepo| -> String {
            if transport == "file://" {
                repo.file_url()
            } else {
                format!("git://127.0.0.1:{port}/{}.git", repo.name)
            }
        };
        let repos = publish(&ws, &url);
        let ops = ws.cluster_repo(
            "ops",
            "import \"lib00/steps\" as s;\nsh(find_node(\"n1\"), [\"echo\", s::release()]);\n",
        );
        let root_url = url(&repos[0]);
        let cold = timed(
            &ws,
            &ops,
            &[
                "lib",
                "add",
                "lib00",
                "--git",
                &root_url,
                "--version",
                "^1.0",
            ],
        );
        let lock = std::fs::read_to_string(ops.join("krun.lock")).unwrap();
        assert_eq!(lock.matches("[[library]]").count(), LIBRARIES);
        let update = timed(&ws, &ops, &["lib", "update"]);
        let verify = timed(&ws, &ops, &["lib", "verify"]);
        let run = timed(
            &ws,
            &ops,
            &[
                "playbooks/play.rhai",
                "--inventory",
                "inventory.toml",
                "--dry-run",
                "--offline",
                "--locked",
            ],
        );
        let check = timed(
            &ws,
            &ops,
            &["check", "--locked", "--offline", "playbooks/play.rhai"],
        );
        std::fs::write(ws.path().join("noop.rhai"), "let x = 1;\n").unwrap();
        let baseline = timed(&ws, ws.path(), &["check", "noop.rhai"]);
        eprintln!(
            "{transport}: {LIBRARIES} libraries x {RELEASES} releases: \
             add + resolve + lock (empty cache) {cold:.2?}; update (cache warm) {update:.2?}; \
             verify (tags re-read) {verify:.2?}; offline dry-run with --locked {run:.2?}; \
             check --locked {check:.2?}; (check of a one-line playbook outside any repository: \
             {baseline:.2?})"
        );
    }
}
