//! The README's and the lab walkthrough's commands, run exactly as written.
//!
//! Every line of a ```sh block is a command a reader copies: it runs from a checkout of the
//! repository (a scratch directory holding `playbooks/` and `examples/`, and the README's own
//! `restart-kubelet.rhai`), with `krun` on PATH, `HOME` in that directory, and `KUBECONFIG` naming
//! a simulated copy of the bundled lab where a command needs a cluster. A command exits 0 unless the comment before it
//! (or after it on its line) says it `exits N`. A command ending in `&` runs in the background
//! until the walkthrough is over, and the next starts once it has printed its first line.
//! ```text blocks are forms to fill in: one with krun commands must have parts in capitals to
//! replace, so that a runnable walkthrough does not hide there untested.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::root;
use crate::support::process::spawn_tied;

/// Commands that build, install or test krun itself, and why this test does not run them.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo install --locked --path .",
        "installs the binary this test runs",
    ),
    (
        "cargo test --locked",
        "is the test suite this test is part of",
    ),
    (
        "KRUN_REGENERATE_LAB=1 cargo test --test integration -- e2e::lab::the_bundled_lab",
        "rewrites the lab from the test code, which e2e::lab checks",
    ),
];

/// `cargo run --locked -- ARGS` runs the binary cargo builds: this test runs that binary.
const CARGO_RUN: &str = "cargo run --locked -- ";

#[derive(Debug, Clone)]
struct Walkthrough {
    file: &'static str,
    line: usize,
    command: String,
    expect: i32,
    background: bool,
}

/// `exits N` in a comment (a mention such as "(exit 3)" says what may happen, not what does).
fn expected_exit(comment: &str) -> Option<i32> {
    let words: Vec<&str> = comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[0] == "exits")
        .and_then(|w| w[1].parse().ok())
}

/// A command line without its trailing comment (a `#` after whitespace, outside quotes).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                return (line[..i].trim_end(), Some(&line[i + 1..]));
            }
            _ => {}
        }
    }
    (line.trim_end(), None)
}

/// The fenced blocks of a markdown file: (language, first line number, lines).
fn blocks(text: &str) -> Vec<(String, usize, Vec<&str>)> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(language)) => open = Some((language.trim().to_owned(), i + 2, Vec::new())),
            (Some(_), Some(_)) => found.push(open.take().expect("open block")),
            (Some((_, _, lines)), None) => lines.push(line),
            (None, None) => {}
        }
    }
    found
}

/// The commands of the ```sh blocks, with what each must exit with.
fn commands(file: &'static str, text: &str) -> Vec<Walkthrough> {
    let mut found = Vec::new();
    for (_, first, lines) in blocks(text).into_iter().filter(|(l, _, _)| l == "sh") {
        let mut expect = 0;
        let mut in_comment = false;
        let mut pending = String::new();
        let mut start = first;
        for (offset, raw) in lines.iter().enumerate() {
            let trimmed = raw.trim();
            if pending.is_empty() && trimmed.starts_with('#') {
                // A run of comment lines is one comment: it says what the commands after it
                // exit with (0 unless it says otherwise).
                if !in_comment {
                    expect = 0;
                }
                in_comment = true;
                if let Some(code) = expected_exit(trimmed) {
                    expect = code;
                }
                continue;
            }
            in_comment = false;
            if trimmed.is_empty() {
                continue;
            }
            if pending.is_empty() {
                start = first + offset;
            }
            if let Some(head) = trimmed.strip_suffix('\\') {
                pending.push_str(head.trim_end());
                pending.push(' ');
                continue;
            }
            pending.push_str(trimmed);
            let (command, comment) = split_comment(&pending);
            let mut command = command.to_owned();
            let background = command.ends_with('&') && !command.ends_with("&&");
            if background {
                command.pop();
                command = command.trim_end().to_owned();
            }
            found.push(Walkthrough {
                file,
                line: start,
                command,
                expect: comment.and_then(expected_exit).unwrap_or(expect),
                background,
            });
            pending.clear();
        }
    }
    found
}

/// The checkout a reader runs the commands in, the simulated cluster, and the background
/// commands still running.
struct Checkout {
    dir: tempfile::TempDir,
    path: std::ffi::OsString,
    kubeconfig: PathBuf,
    background: Vec<Child>,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        for child in &mut self.background {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Checkout {
    fn new(readme: &str) -> Self {
        let dir = tempfile::tempdir().expect("a scratch checkout");
        for name in ["playbooks", "examples"] {
            std::os::unix::fs::symlink(root().join(name), dir.path().join(name))
                .expect("link the repository into the checkout");
        }
        // The README's first playbook, saved as it tells the reader to.
        let playbook = blocks(readme)
            .into_iter()
            .find(|(language, _, lines)| {
                language == "rhai"
                    && lines
                        .first()
                        .is_some_and(|l| l.contains("restart-kubelet.rhai"))
            })
            .expect("the README has its restart-kubelet.rhai")
            .2
            .join("\n");
        std::fs::write(dir.path().join("restart-kubelet.rhai"), playbook + "\n")
            .expect("save restart-kubelet.rhai");
        let bin = dir.path().join(".bin");
        std::fs::create_dir(&bin).expect("a bin directory");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_krun"), bin.join("krun"))
            .expect("krun on PATH");
        let mut path = bin.into_os_string();
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(":");
            path.push(rest);
        }
        let kubeconfig = dir.path().join(".kube-config");
        let mut checkout = Checkout {
            dir,
            path,
            kubeconfig,
            background: Vec::new(),
        };
        // "Your cluster": the bundled lab, simulated.
        let lab = root().join("examples/lab/cluster.yaml");
        let serve = format!(
            "exec krun sim serve --cluster {} --kubeconfig-out {}",
            lab.display(),
            checkout.kubeconfig.display()
        );
        checkout.start_background(&serve, "the simulated cluster");
        checkout
    }

    fn command(&self, text: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(text)
            .current_dir(self.dir.path())
            .env("PATH", &self.path)
            .env("KUBECONFIG", &self.kubeconfig)
            // A reader's own home: what a command writes under ~ stays in the scratch checkout.
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("KRUN_STATE_DIR")
            .env_remove("KRUN_INVENTORY")
            .env_remove("KRUN_PATH")
            .env_remove("KRUN_LOCK")
            .env_remove("CLICOLOR_FORCE");
        command
    }

    /// Starts `text` in the background and waits for its first line on stdout.
    fn start_background(&mut self, text: &str, what: &str) {
        let mut command = self.command(&format!("exec {}", text.trim_start_matches("exec ")));
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = spawn_tied(command).unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, first) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = lines.send(line);
            // Keep reading so the command never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = first
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} printed nothing within 60 s: `{text}`"));
        assert!(!line.is_empty(), "{what} ended without output: `{text}`");
        self.background.push(child);
    }

    fn run(&mut self, step: &Walkthrough) {
        let text = match step.command.strip_prefix(CARGO_RUN) {
            Some(args) => format!("krun {args}"),
            None => step.command.clone(),
        };
        let at = format!("{}:{}: `{}`", step.file, step.line, step.command);
        if step.background {
            self.start_background(&text, &at);
            return;
        }
        let mut command = self.command(&text);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().unwrap_or_else(|e| panic!("{at}: {e}"));
        let started = Instant::now();
        let output = child.wait_with_output().expect("the command's output");
        let code = output.status.code().unwrap_or(-1);
        assert_eq!(
            code,
            step.expect,
            "{at} exited {code} after {:.0?}, the walkthrough says {}\n--- stdout\n{}\n--- stderr\n{}",
            started.elapsed(),
            step.expect,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(report) = text
            .split_whitespace()
            .skip_while(|w| *w != "--report")
            .nth(1)
        {
            assert!(
                self.dir.path().join(report).is_file(),
                "{at} wrote no {report}"
            );
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn every_command_of_the_readme_and_the_lab_walkthrough_runs_as_written() {
    let readme = read("README.md");
    let lab = read("examples/lab/README.md");
    let mut all = commands("README.md", &readme);
    all.extend(commands("examples/lab/README.md", &lab));
    assert!(
        all.iter().any(|c| c.command.starts_with(CARGO_RUN)),
        "the README's main command is gone"
    );
    let mut checkout = Checkout::new(&readme);
    let mut skipped = Vec::new();
    let mut ran = 0;
    for step in &all {
        if step.command.starts_with(CARGO_RUN) || !step.command.contains("cargo ") {
            checkout.run(step);
            ran += 1;
            continue;
        }
        let reason = NOT_RUN
            .iter()
            .find(|(command, _)| *command == step.command)
            .unwrap_or_else(|| {
                panic!(
                    "{}:{}: `{}` builds or tests krun itself; run it here, or say in NOT_RUN why not",
                    step.file, step.line, step.command
                )
            });
        skipped.push(reason.0);
    }
    let stale: Vec<&str> = NOT_RUN
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !skipped.contains(c))
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_RUN names commands the docs no longer have: {stale:?}"
    );
    assert!(ran >= 10, "only {ran} commands ran: did the parsing break?");
}

/// A ```text block with krun commands is a form: it has parts in capitals (or `…`) to fill in.
#[test]
fn text_blocks_hold_forms_to_fill_in_not_commands() {
    let placeholder = |line: &str| {
        let (command, _) = split_comment(line);
        command.contains('…')
            || command
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| {
                    w.len() >= 2
                        && w.chars().any(|c| c.is_ascii_uppercase())
                        && w.chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                })
    };
    for file in ["README.md", "examples/lab/README.md"] {
        let text = read(file);
        for (_, first, lines) in blocks(&text).into_iter().filter(|(l, _, _)| l == "text") {
            let commands = lines.iter().any(|l| l.trim_start().starts_with("krun "));
            assert!(
                !commands || lines.iter().any(|l| placeholder(l)),
                "{file}:{first}: this block's commands run as written: put them in a ```sh block \
                 (they are then tested), or mark what to replace in capitals"
            );
        }
    }
}

#[test]
fn the_parser_reads_expectations_continuations_and_background_commands() {
    let doc = "```sh\n# 1. Fine.\nkrun a\n\n# 2. Refused\n#    (exits 3): why.\nkrun b \\\n    --x 'y # z'\nkrun c   # exits 2: bad\n\n# 3. Serve.\nkrun d &\n```\n";
    let found = commands("doc", doc);
    let shown: Vec<(&str, i32, bool, usize)> = found
        .iter()
        .map(|c| (c.command.as_str(), c.expect, c.background, c.line))
        .collect();
    assert_eq!(
        shown,
        [
            ("krun a", 0, false, 3),
            ("krun b --x 'y # z'", 3, false, 7),
            ("krun c", 2, false, 9),
            ("krun d", 0, true, 12),
        ]
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_krun")).is_file());
}
