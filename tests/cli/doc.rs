//! `krun doc` is generated from the engine's metadata: every primitive, with its documentation.

use super::Krun;

const PRIMITIVES: &[&str] = &[
    "param",
    "log",
    "fail",
    "sh",
    "probe",
    "upload",
    "render",
    "systemctl",
    "service_active",
    "wait_active",
    "pkg_install",
    "pkg_version",
    "os_facts",
];

#[test]
fn markdown_lists_every_primitive_with_docs() {
    let out = Krun::new().args(["doc"]).run();
    out.code(0);
    for name in PRIMITIVES {
        assert!(
            out.stdout.contains(&format!("### `{name}(")),
            "doc lacks {name}:\n{}",
            out.stdout
        );
    }
    out.stdout_has("`node.name`").stdout_has("versions::minor");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn json_is_structured() {
    let out = Krun::new().args(["doc", "--format", "json"]).run();
    out.code(0);
    let json = out.json();
    let names: Vec<&str> = json["primitives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in PRIMITIVES {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(
        json["primitives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["doc"].as_str().unwrap().is_empty())
    );
    assert_eq!(json["modules"][0]["import"], "versions");
}
