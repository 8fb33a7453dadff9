//! krun builds on a machine that has only Rust: no `protoc`, no system protobuf.
//!
//! protoc is reached through the `PROTOC` variable (prost-build reads it, and so does every
//! code generator built on it) by code that runs while building: build scripts, their
//! build-dependencies, and proc macros. The first test inspects exactly that part of the
//! resolved dependency graph, which takes a second; the second really builds krun from scratch
//! with `PROTOC` pointing at a program that fails, which takes many minutes on a small machine,
//! so it runs only when asked: `cargo test --test integration -- --ignored build::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::root;

/// Code generators that run protoc (or bundle one).
const PROTOC_USERS: &[&str] = &[
    "prost-build",
    "tonic-build",
    "tonic-prost-build",
    "protobuf-codegen",
    "protoc-rust",
    "protoc-bin-vendored",
    "protobuf-src",
    "grpcio-compiler",
];

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// The packages whose code runs at build time: build-dependencies, proc macros, and whatever
/// those depend on.
fn build_time_packages(metadata: &Value) -> BTreeMap<String, (String, String)> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let kinds = |dep: &Value| -> Vec<Option<String>> {
        dep["dep_kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kind"].as_str().map(str::to_owned))
            .collect()
    };
    let mut todo: Vec<&str> = Vec::new();
    for node in nodes.values() {
        for dep in node["deps"].as_array().unwrap() {
            if kinds(dep).iter().any(|k| k.as_deref() == Some("build")) {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    for (id, package) in &packages {
        let proc_macro = package["targets"].as_array().unwrap().iter().any(|t| {
            t["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "proc-macro")
        });
        if proc_macro {
            todo.push(id);
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            if kinds(dep).iter().any(|k| k.as_deref() != Some("dev")) {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.iter()
        .map(|id| {
            let p = packages[id];
            let dir = Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .display()
                .to_string();
            (
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                ),
                (p["name"].as_str().unwrap().to_owned(), dir),
            )
        })
        .collect()
}

fn reads_protoc_variable(dir: &Path) -> Option<String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"PROTOC\""))
            {
                return Some(path.display().to_string());
            }
        }
    }
    None
}

#[test]
fn nothing_that_runs_at_build_time_needs_protoc() {
    let out = Command::new(cargo())
        .current_dir(root())
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let generators: Vec<&&str> = all.iter().filter(|n| PROTOC_USERS.contains(n)).collect();
    assert!(
        generators.is_empty(),
        "protobuf code generators in the dependency graph: {generators:?}"
    );

    let build_time = build_time_packages(&metadata);
    // The walk must find the build-time graph, or the scan below proves nothing.
    for expected in ["cc", "proc-macro2", "syn", "prost-derive"] {
        assert!(
            build_time.values().any(|(name, _)| name == expected),
            "{expected} should run at build time: {:?}",
            build_time.keys()
        );
    }
    let readers: Vec<String> = build_time
        .iter()
        .filter_map(|(package, (_, dir))| {
            reads_protoc_variable(Path::new(dir)).map(|file| format!("{package}: {file}"))
        })
        .collect();
    assert!(
        readers.is_empty(),
        "build-time code reads PROTOC: {readers:?}"
    );
}

#[test]
#[ignore = "a full build from scratch: many minutes; run on demand"]
fn builds_with_a_protoc_that_fails() {
    let target = tempfile::tempdir().unwrap();
    let fake = target.path().join("protoc");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'protoc must not be called' >&2\nexit 1\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&fake, permissions).unwrap();
    let out = Command::new(cargo())
        .current_dir(root())
        .args(["build", "--locked", "--bin", "krun", "--target-dir"])
        .arg(target.path().join("target"))
        .env("PROTOC", &fake)
        .env("PATH", path_without_protoc())
        .output()
        .expect("cargo build runs");
    assert!(
        out.status.success(),
        "cargo build with a failing protoc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PATH without directories that hold a `protoc`.
fn path_without_protoc() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::env::split_paths(&path).filter(|d| !d.join("protoc").exists()))
        .unwrap()
}
