//! The layers of `src/`, held to what `src/lib.rs` says: each module imports only from its own
//! layer and the layers below it, and only the wiring names the performers.
//!
//! A module's layer is its top-level name under `src/`; a reference is any `crate::name` path in
//! code (comments are not code). A new top-level module must be given a layer here, so this test
//! also fails when someone adds one without deciding where it stands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top to bottom. A module may use modules of its own layer and of any layer after it.
const LAYERS: &[(&str, &[&str])] = &[
    ("edge", &["app", "cli", "cmd", "output", "ui", "wiring"]),
    ("runtime", &["runtime"]),
    ("primitives", &["primitives"]),
    ("judgement", &["preflight"]),
    ("boundary", &["effects"]),
    (
        "clients and domain",
        &[
            "etcd", "host", "kube", "library", "model", "sim", "ssh", "versions",
        ],
    ),
    (
        "base",
        &[
            "error",
            "inventory",
            "journal",
            "local",
            "paint",
            "params",
            "plan",
            "quote",
            "secrets",
            "suggest",
            // `crate::Error` and `crate::Result` are re-exports of `error`.
            "Error",
            "Result",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/kube/drain.rs` → `kube`); `None` for the crate
/// root files.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The code of a file without its comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // Keep `//` inside string literals such as "https://…".
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module `code` names through `crate::…`, including grouped imports
/// (`use crate::{a::B, c}`).
fn referenced(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `krate::`, `my_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

fn files() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    (src, files)
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let (src, files) = files();
    let mut upward = Vec::new();
    let mut unplaced = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(from) = layer_of(&module) else {
            unplaced.insert(module, file.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        for name in referenced(&code(&text)) {
            match layer_of(&name) {
                Some(to) if to < from => upward.push(format!(
                    "{} ({}) uses crate::{name} ({})",
                    file.strip_prefix(&src).unwrap_or(file).display(),
                    LAYERS[from].0,
                    LAYERS[to].0
                )),
                Some(_) => {}
                None => {
                    unplaced.insert(name, file.display().to_string());
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no layer in tests/architecture.rs (give each one): {unplaced:?}"
    );
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "{} import(s) run from a lower layer to a higher one:\n  {}",
        upward.len(),
        upward.join("\n  ")
    );
}

#[test]
fn only_the_wiring_names_the_performers() {
    let (src, files) = files();
    let mut named = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        // Where they are defined, and the one place that picks them.
        if relative == Path::new("wiring.rs") || relative == Path::new("effects/perform.rs") {
            continue;
        }
        let text = code(&std::fs::read_to_string(file).expect("a source file is readable"));
        // `Mode::Live` and `Mode::DryRun` name the command's mode, not a performer.
        let text = text.replace("Mode::", "mode_");
        for performer in ["Live", "DryRun", "Rehearse"] {
            let mut words = text.split(|c: char| !c.is_alphanumeric() && c != '_');
            if words.any(|word| word == performer) {
                named.push(format!("{} names {performer}", relative.display()));
            }
        }
    }
    assert!(
        named.is_empty(),
        "performers named outside src/wiring.rs:\n  {}",
        named.join("\n  ")
    );
}

#[test]
fn primitives_and_preflight_never_ask_for_the_mode() {
    let (src, files) = files();
    let mut asking = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        if !(relative.starts_with("primitives") || relative.starts_with("preflight")) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        for (number, line) in text.lines().enumerate() {
            if line.contains("dry_run") || line.contains("kube_live") {
                asking.push(format!(
                    "{}:{}: {}",
                    relative.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        asking.is_empty(),
        "primitives and preflight must not know the mode (the performer does):\n  {}",
        asking.join("\n  ")
    );
}

#[test]
fn the_reference_scanner_sees_paths_and_groups_but_not_comments() {
    let text = "use crate::kube::Call;\nlet x = crate::plan::Origin::default(); // crate::app\nuse crate::{error::Kind, quote};\n/// [`crate::wiring`]\nlet krate::x = 1;";
    assert_eq!(referenced(&code(text)), ["kube", "plan", "error", "quote"]);
    assert_eq!(layer_of("wiring"), Some(0));
    assert!(layer_of("kube") > layer_of("effects"));
}
