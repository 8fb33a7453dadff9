//! Secrets never leave krun in plain text: a multi-line secret (a PEM key given with
//! `--set-secret`) and one with short lines (`secret("q7x\nz9")`) through every output path —
//! log, print, debug at -vv, maps and arrays printed, streamed command output, a failed
//! command's stderr, a file diff in a dry-run, the JSON report, the summary and the journal —
//! in a dry-run and in a real run.

use super::Setup;
use crate::support::Fleet;

const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIHNlY3JldGtleW1hdGVyaWFsZm9ydGVzdGluZzE\n\
c2Vjb25kbGluZW9mdGhla2V5\n\
-----END PRIVATE KEY-----\n";

const SHORT: &str = "q7x\nz9";

const PLAYBOOK: &str = r##"let key = param("key");
let short = secret("q7x\nz9");
log("log: " + key);
print("print: " + key);
debug("debug: " + key);
print(short);
debug(short);
let out = probe(node, ["printf", "%s\n", key, short]);
write_file(node, "/etc/kubernetes/pki/krun-test.key", "# key\n" + key + short + "\n", 0o600);
sh(node, ["printf", "%s\n", key, short]);
print([key, short]);
log(`${#{ k: key }}`);
try {
    sh(node, ["sh", "-c", "printf '%s\n' \"$1\" >&2; exit 3", "sh", key]);
} catch (e) {
    log(`caught ${e}`);
}
fail("stopped with " + key);
"##;

/// Every line of output, report and journal that a secret could be in.
fn everything(out: &crate::cli::Output, state: &std::path::Path) -> String {
    let mut all = format!("{}\n{}\n", out.stdout, out.stderr);
    let runs = state.join("runs");
    for run in std::fs::read_dir(&runs).unwrap() {
        for file in std::fs::read_dir(run.unwrap().path()).unwrap() {
            all.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
            all.push('\n');
        }
    }
    all
}

#[track_caller]
fn assert_no_secret(text: &str) {
    for line in KEY.lines() {
        assert!(!text.contains(line), "`{line}` leaked:\n{text}");
    }
    for line in text.lines() {
        // A streamed line is `[node] line`; a diff line starts with its mark.
        let bare = line.rsplit("] ").next().unwrap_or(line);
        let bare = bare.trim().trim_start_matches(['+', '-', ' ']);
        assert!(
            !SHORT.lines().any(|s| s == bare),
            "a line of the short secret leaked as `{line}`:\n{text}"
        );
    }
    assert!(
        !text.contains("q7x\\nz9"),
        "the escaped short secret leaked:\n{text}"
    );
}

#[test]
fn a_multi_line_secret_is_redacted_in_every_output() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n1");
    node.write_file("/etc/kubernetes/pki/krun-test.key", "# key\nold\n");
    let setup = Setup::new(fleet, PLAYBOOK);
    let state = setup.dir.path().join("state");
    let key = format!("key={KEY}");
    let common = [
        "--node",
        "n1",
        "--set-secret",
        key.as_str(),
        "-vv",
        "--state-dir",
        state.to_str().unwrap(),
    ];

    let dry = setup
        .krun(&common)
        .args(["--dry-run", "--output", "json"])
        .run();
    dry.code(1).stderr_has("stopped with ***");
    // The paths were taken: each printed something, redacted.
    dry.stderr_has("log: ***")
        .stderr_has("print: ***")
        .stderr_has("debug: ***");
    let json = dry.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let write = steps.iter().find(|s| s["action"] == "write_file").unwrap();
    let diff = write["diff"].as_str().unwrap();
    assert!(diff.contains("+***") && diff.contains("-old"), "{diff}");
    let probe = steps.iter().find(|s| s["action"] == "probe").unwrap();
    assert_eq!(probe["executed"], true, "{probe}");
    assert_no_secret(&everything(&dry, &state));

    let text = setup.krun(&common).args(["--dry-run"]).run();
    text.code(1).stdout_has("+***");
    assert_no_secret(&everything(&text, &state));

    let live = setup.krun(&common).run();
    live.code(1).stderr_has("[n1] ***").stderr_has("caught");
    assert_eq!(
        node.read_file("/etc/kubernetes/pki/krun-test.key")
            .as_deref(),
        Some(format!("# key\n{KEY}{SHORT}\n").as_str()),
        "the real run wrote the real key"
    );
    assert_no_secret(&everything(&live, &state));
}
