//! kubelet's flags and configuration, read and edited as structures instead of with sed.
//!
//! Flags live in a shell-style environment file: one variable (`KUBELET_KUBEADM_ARGS`,
//! `KUBELET_ARGS`, `KUBELET_EXTRA_ARGS`) whose quoted value systemd splits into words. Editing
//! changes only that assignment: comments, other lines and the order of the flags stay as they
//! were, and a multi-line value (`\` continuations, as hand-kept kubelet.env files have) keeps
//! one flag per line. The configuration is `/var/lib/kubelet/config.yaml`, a
//! KubeletConfiguration edited as YAML keeping every field krun does not touch.

use serde_yaml_ng::{Mapping, Value};

/// The files kubelet's flags are kept in, in the order they are looked for, with the variables
/// each may hold (the first one present is edited; a file holding none gets the first).
pub const FLAG_FILES: &[(&str, &[&str])] = &[
    (
        "/var/lib/kubelet/kubeadm-flags.env",
        &["KUBELET_KUBEADM_ARGS"],
    ),
    (
        "/etc/kubernetes/kubelet.env",
        &["KUBELET_ARGS", "KUBELET_EXTRA_ARGS"],
    ),
    ("/etc/default/kubelet", &["KUBELET_EXTRA_ARGS"]),
    ("/etc/sysconfig/kubelet", &["KUBELET_EXTRA_ARGS"]),
];

/// kubeadm's KubeletConfiguration file.
pub const CONFIG_FILE: &str = "/var/lib/kubelet/config.yaml";

/// The variables a flags file may hold.
pub fn variables_for(file: &str) -> &'static [&'static str] {
    FLAG_FILES
        .iter()
        .find(|(path, _)| *path == file)
        .map_or(&["KUBELET_EXTRA_ARGS"], |(_, vars)| vars)
}

/// How a flag was written, kept when its value changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStyle {
    /// `--name=value`
    Equals,
    /// `--name value`
    Separate,
    /// `--name` alone (a boolean that is true)
    Bare,
}

/// One word (or pair of words) of the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Flag {
        /// Without the leading dashes.
        name: String,
        value: Option<String>,
        style: FlagStyle,
        /// `-v` rather than `--v`.
        single_dash: bool,
    },
    /// A word that is not a flag nor a flag's value; kept as it is.
    Word(String),
}

/// Splits words into flags: `--a=b`, `--a b` (a value never starts with `-`), bare `--a`.
pub fn parse_args(words: &[String]) -> Vec<Arg> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let dashes = if word.starts_with("--") {
            2
        } else if word.starts_with('-') && word.len() > 1 {
            1
        } else {
            0
        };
        if dashes == 0 {
            args.push(Arg::Word(word.clone()));
            i += 1;
            continue;
        }
        let body = &word[dashes..];
        let single_dash = dashes == 1;
        if let Some((name, value)) = body.split_once('=') {
            args.push(Arg::Flag {
                name: name.to_owned(),
                value: Some(value.to_owned()),
                style: FlagStyle::Equals,
                single_dash,
            });
            i += 1;
        } else if let Some(next) = words.get(i + 1).filter(|n| !n.starts_with('-')) {
            args.push(Arg::Flag {
                name: body.to_owned(),
                value: Some(next.clone()),
                style: FlagStyle::Separate,
                single_dash,
            });
            i += 2;
        } else {
            args.push(Arg::Flag {
                name: body.to_owned(),
                value: None,
                style: FlagStyle::Bare,
                single_dash,
            });
            i += 1;
        }
    }
    args
}

/// The words of `args`, as kubelet receives them.
pub fn render_args(args: &[Arg]) -> Vec<String> {
    let mut words = Vec::new();
    for arg in args {
        match arg {
            Arg::Word(word) => words.push(word.clone()),
            Arg::Flag {
                name,
                value,
                style,
                single_dash,
            } => {
                let dashes = if *single_dash { "-" } else { "--" };
                match (style, value) {
                    (FlagStyle::Separate, Some(value)) => {
                        words.push(format!("{dashes}{name}"));
                        words.push(value.clone());
                    }
                    (_, Some(value)) => words.push(format!("{dashes}{name}={value}")),
                    (_, None) => words.push(format!("{dashes}{name}")),
                }
            }
        }
    }
    words
}

/// A flag's new value: a string, `Bare` for `--name` alone, or removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagEdit {
    Set(String),
    Bare,
    Remove,
}

/// Refuses a flag edit that would not reach kubelet as one flag with this value. kubelet reads
/// its flags file through systemd's `EnvironmentFile=` and an unbraced `$VARIABLE` in
/// `ExecStart=`, which splits the value at whitespace into words (and takes quotes and
/// backslashes as quoting); setups that source the same file in a shell split it without
/// unquoting. No quoting keeps a value with whitespace one word for both, and no kubelet flag
/// needs one (labels, taints, paths, endpoints and quantities have none), so it is refused.
pub fn check_flag(name: &str, edit: &FlagEdit) -> Result<(), String> {
    let bare = name.trim_start_matches('-');
    if bare.is_empty()
        || !bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "flag name `{name}` is not a kubelet flag name (letters, digits, `-`, `_`, `.`)"
        ));
    }
    if let FlagEdit::Set(value) = edit
        && let Some(c) = value
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "'\"\\".contains(*c))
    {
        let what = if c.is_whitespace() {
            "whitespace".to_owned()
        } else {
            format!("`{}`", c.escape_debug())
        };
        return Err(format!(
            "the value of --{bare} contains {what}: kubelet reads its flags file split at \
             whitespace (systemd's $VARIABLE expansion), so it would not stay one flag; \
             kubelet flag values never need one"
        ));
    }
    Ok(())
}

/// Applies edits (flag names with or without dashes); existing flags keep their place and
/// style, new ones are appended as `--name=value`. A flag given several times is edited where
/// it first appears and its repetitions are dropped.
pub fn edit_args(args: &[Arg], edits: &[(String, FlagEdit)]) -> Vec<Arg> {
    let mut out: Vec<Arg> = args.to_vec();
    for (key, edit) in edits {
        let key = key.trim_start_matches('-');
        let mut seen = false;
        out.retain_mut(|arg| {
            let Arg::Flag {
                name, value, style, ..
            } = arg
            else {
                return true;
            };
            if name != key {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            match edit {
                FlagEdit::Remove => return false,
                FlagEdit::Bare => {
                    *value = None;
                    *style = FlagStyle::Bare;
                }
                // `--a` alone already means true.
                FlagEdit::Set(new) if *style == FlagStyle::Bare && new == "true" => {}
                FlagEdit::Set(new) => {
                    *value = Some(new.clone());
                    // `--a -x` would read back as two flags, `--a ''` as a bare one.
                    if *style == FlagStyle::Bare || new.is_empty() || new.starts_with('-') {
                        *style = FlagStyle::Equals;
                    }
                }
            }
            true
        });
        if !seen {
            let (value, style) = match edit {
                FlagEdit::Remove => continue,
                FlagEdit::Bare => (None, FlagStyle::Bare),
                FlagEdit::Set(v) => (Some(v.clone()), FlagStyle::Equals),
            };
            out.push(Arg::Flag {
                name: key.to_owned(),
                value,
                style,
                single_dash: false,
            });
        }
    }
    out
}

/// Why an environment file cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    #[error("line {line}: unterminated quote in the value of {variable}")]
    Unterminated { variable: String, line: usize },
}

/// An environment file with one variable located in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    text: String,
    /// The variable edited.
    pub variable: String,
    /// Byte range of the value (after `=`) in `text`; `None` when the variable is absent.
    value: Option<(usize, usize)>,
    /// The value's words, unquoted.
    pub words: Vec<String>,
}

impl EnvFile {
    /// Finds the first of `variables` assigned in `text` (the last assignment wins, as in a
    /// shell); when none is, the first variable will be appended on edit.
    pub fn parse(text: &str, variables: &[&str]) -> Result<Self, EnvFileError> {
        for variable in variables {
            if let Some((start, end, value)) = find_assignment(text, variable)? {
                return Ok(Self {
                    text: text.to_owned(),
                    variable: (*variable).to_owned(),
                    value: Some((start, end)),
                    words: value.split_whitespace().map(str::to_owned).collect(),
                });
            }
        }
        Ok(Self {
            text: text.to_owned(),
            variable: variables
                .first()
                .copied()
                .unwrap_or("KUBELET_EXTRA_ARGS")
                .to_owned(),
            value: None,
            words: Vec::new(),
        })
    }

    pub fn args(&self) -> Vec<Arg> {
        parse_args(&self.words)
    }

    /// The file with the variable's value replaced by `args`, in the value's quoting and
    /// layout (one flag per line when it was written over several lines).
    pub fn render(&self, args: &[Arg]) -> String {
        let groups: Vec<Vec<String>> = args
            .iter()
            .map(|a| render_args(std::slice::from_ref(a)))
            .collect();
        let words: Vec<&String> = groups.iter().flatten().collect();
        match self.value {
            Some((start, end)) => {
                let old = &self.text[start..end];
                let multiline = old.contains("\\\n");
                let quote = match old.chars().next() {
                    // Inside single quotes a backslash-newline is not a continuation.
                    Some('\'') if !multiline && words.iter().all(|w| !w.contains('\'')) => {
                        Quote::Single
                    }
                    Some('"' | '\'') => Quote::Double,
                    _ if words.len() > 1 || words.iter().any(|w| needs_quotes(w)) => Quote::Double,
                    _ => Quote::None,
                };
                let value = render_value(&groups, quote, multiline);
                format!("{}{value}{}", &self.text[..start], &self.text[end..])
            }
            None => {
                let mut text = self.text.clone();
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!(
                    "{}={}\n",
                    self.variable,
                    render_value(&groups, Quote::Double, false)
                ));
                text
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Quote {
    None,
    Single,
    Double,
}

fn needs_quotes(word: &str) -> bool {
    word.is_empty()
        || word
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c)))
}

fn render_value(groups: &[Vec<String>], quote: Quote, multiline: bool) -> String {
    let escape = |w: &String| -> String {
        match quote {
            Quote::Double => w
                .chars()
                .flat_map(|c| {
                    let escaped = matches!(c, '"' | '\\' | '$' | '`');
                    escaped
                        .then_some('\\')
                        .into_iter()
                        .chain(std::iter::once(c))
                })
                .collect(),
            _ => w.clone(),
        }
    };
    let lines: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(escape).collect::<Vec<_>>().join(" "))
        .collect();
    let separator = if multiline { " \\\n" } else { " " };
    let body = lines.join(separator);
    match quote {
        Quote::None => body,
        Quote::Single => format!("'{body}'"),
        Quote::Double => format!("\"{body}\""),
    }
}

/// Locates `NAME=value` (optionally `export NAME=value`) at the start of a line; returns the
/// value's byte range and its unquoted text. The last assignment is the one that counts.
fn find_assignment(
    text: &str,
    variable: &str,
) -> Result<Option<(usize, usize, String)>, EnvFileError> {
    let mut found = None;
    let mut offset = 0;
    let mut line_number = 0;
    while offset < text.len() {
        line_number += 1;
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line = &text[offset..line_end];
        let trimmed = line.trim_start();
        let rest = trimmed
            .strip_prefix("export ")
            .map_or(trimmed, str::trim_start);
        if let Some(after) = rest
            .strip_prefix(variable)
            .and_then(|r| r.strip_prefix('='))
        {
            let start = line_end - after.len();
            let (end, value) =
                read_word(text, start).ok_or_else(|| EnvFileError::Unterminated {
                    variable: variable.to_owned(),
                    line: line_number,
                })?;
            found = Some((start, end, value));
            line_number += text[start..end].matches('\n').count();
            offset = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
            continue;
        }
        offset = line_end + 1;
    }
    Ok(found)
}

/// Reads one shell word starting at `start`: quotes, backslash escapes, `\` line
/// continuations. Returns where it ends and its value; `None` for an unterminated quote.
fn read_word(text: &str, start: usize) -> Option<(usize, String)> {
    let mut value = String::new();
    let mut chars = text[start..].char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' => return Some((start + i, value)),
            '\'' => {
                chars.next();
                loop {
                    let (_, c) = chars.next()?;
                    if c == '\'' {
                        break;
                    }
                    value.push(c);
                }
            }
            '"' => {
                chars.next();
                loop {
                    let (_, c) = chars.next()?;
                    match c {
                        '"' => break,
                        '\\' => {
                            let (_, next) = chars.next()?;
                            match next {
                                '\n' => {}
                                '"' | '\\' | '$' | '`' => value.push(next),
                                other => {
                                    value.push('\\');
                                    value.push(other);
                                }
                            }
                        }
                        other => value.push(other),
                    }
                }
            }
            '\\' => {
                chars.next();
                match chars.next() {
                    Some((_, '\n')) => {}
                    Some((_, next)) => value.push(next),
                    None => {}
                }
            }
            other => {
                chars.next();
                value.push(other);
            }
        }
    }
    Some((text.len(), value))
}

/// Why a kubelet configuration cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{CONFIG_FILE} is not valid YAML: {0}")]
    Yaml(String),
    #[error("{CONFIG_FILE} is not a YAML mapping (a KubeletConfiguration)")]
    NotAMapping,
}

/// Parses a KubeletConfiguration (an empty file is an empty mapping).
pub fn parse_config(text: &str) -> Result<Mapping, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(map)) => Ok(map),
        Ok(_) => Err(ConfigError::NotAMapping),
        Err(e) => Err(ConfigError::Yaml(e.to_string())),
    }
}

pub fn render_config(config: &Mapping) -> String {
    serde_yaml_ng::to_string(config).unwrap_or_default()
}

/// Merges `changes` into `config`: mappings merge key by key, a `Null` removes the key, any
/// other value replaces. Keys keep their place; new keys are appended.
pub fn merge_config(config: &mut Mapping, changes: &Mapping) {
    for (key, value) in changes {
        match (value, config.get_mut(key)) {
            (Value::Null, _) => {
                config.shift_remove(key);
            }
            (Value::Mapping(inner), Some(Value::Mapping(existing))) => {
                merge_config(existing, inner);
            }
            (value, Some(existing)) => *existing = value.clone(),
            (value, None) => {
                config.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_value_with_whitespace_is_refused() {
        let set = |v: &str| FlagEdit::Set(v.to_owned());
        assert!(check_flag("node-labels", &set("a=b,c=d")).is_ok());
        assert!(check_flag("--v", &set("2")).is_ok());
        let error =
            check_flag("node-labels", &set("a=b --authorization-mode=AlwaysAllow")).unwrap_err();
        assert!(
            error.contains("--node-labels contains whitespace"),
            "{error}"
        );
        assert!(check_flag("node-labels", &set("a=b\n--x")).is_err());
        assert!(check_flag("node-labels", &set("a='b'")).is_err());
        assert!(check_flag("a b", &FlagEdit::Bare).is_err());
        assert!(check_flag("a=b", &FlagEdit::Remove).is_err());
    }

    #[test]
    fn a_value_like_an_option_is_attached_to_its_flag() {
        let words: Vec<String> = ["--root-dir", "/var/lib/kubelet"]
            .map(String::from)
            .to_vec();
        let args = edit_args(
            &parse_args(&words),
            &[("root-dir".to_owned(), FlagEdit::Set("-x".to_owned()))],
        );
        assert_eq!(render_args(&args), ["--root-dir=-x"]);
        assert_eq!(parse_args(&render_args(&args)), args);
    }
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/prims/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(name: &str, value: &str) -> (String, FlagEdit) {
        (name.to_owned(), FlagEdit::Set(value.to_owned()))
    }

    #[test]
    fn kubeadm_flags_files_of_every_version_parse() {
        for version in ["1.20", "1.22", "1.24", "1.26", "1.27", "1.30"] {
            let text = fixture(&format!("kubeadm-flags-{version}.env"));
            let file = EnvFile::parse(&text, &["KUBELET_KUBEADM_ARGS"]).unwrap();
            assert!(file.value.is_some(), "{version}");
            let args = file.args();
            assert!(
                args.iter().any(
                    |a| matches!(a, Arg::Flag { name, .. } if name == "pod-infra-container-image")
                ),
                "{version}: {args:?}"
            );
            assert_eq!(file.render(&file.args()), text, "{version} round-trips");
        }
    }

    #[test]
    fn switching_kubeadm_flags_to_containerd() {
        let text = fixture("kubeadm-flags-1.20.env");
        let file = EnvFile::parse(&text, &["KUBELET_KUBEADM_ARGS"]).unwrap();
        let edited = edit_args(
            &file.args(),
            &[
                ("network-plugin".into(), FlagEdit::Remove),
                set("container-runtime", "remote"),
                set(
                    "--container-runtime-endpoint",
                    "unix:///run/containerd/containerd.sock",
                ),
            ],
        );
        assert_eq!(
            file.render(&edited),
            "KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=k8s.gcr.io/pause:3.2 --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n"
        );
    }

    #[test]
    fn a_hand_kept_multiline_kubelet_env_keeps_its_layout() {
        let text = fixture("kubelet.env");
        let file = EnvFile::parse(&text, variables_for("/etc/kubernetes/kubelet.env")).unwrap();
        assert_eq!(file.variable, "KUBELET_ARGS");
        assert_eq!(file.render(&file.args()), text);
        let edited = edit_args(
            &file.args(),
            &[
                set("cgroup-driver", "systemd"),
                set("container-runtime", "remote"),
                set(
                    "container-runtime-endpoint",
                    "unix:///var/run/containerd/containerd.sock",
                ),
            ],
        );
        let after = file.render(&edited);
        assert_eq!(
            after,
            text.replace("--cgroup-driver=cgroupfs", "--cgroup-driver=systemd")
                .replace(
                    "--v 2\"",
                    "--v 2 \\\n--container-runtime=remote \\\n--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock\""
                )
        );
        // Comments and other variables are untouched; the result parses to the edit.
        let again = EnvFile::parse(&after, &["KUBELET_ARGS"]).unwrap();
        assert_eq!(render_args(&again.args()), render_args(&edited));
        assert!(after.starts_with("# kubelet flags, kept by hand\n"));
        assert!(after.contains("KUBE_LOGTOSTDERR=\"--logtostderr=true\"\n"));
    }

    #[test]
    fn flag_styles_are_kept() {
        let args = parse_args(&words(&["--a=1", "--b", "2", "--c", "--d", "-v", "3", "x"]));
        assert_eq!(
            args[1],
            Arg::Flag {
                name: "b".into(),
                value: Some("2".into()),
                style: FlagStyle::Separate,
                single_dash: false
            }
        );
        assert_eq!(
            args[2],
            Arg::Flag {
                name: "c".into(),
                value: None,
                style: FlagStyle::Bare,
                single_dash: false
            }
        );
        assert_eq!(args[5], Arg::Word("x".into()));
        let edited = edit_args(
            &args,
            &[
                set("b", "5"),
                set("c", "false"),
                ("v".into(), FlagEdit::Remove),
                ("e".into(), FlagEdit::Bare),
            ],
        );
        assert_eq!(
            render_args(&edited),
            words(&["--a=1", "--b", "5", "--c=false", "--d", "x", "--e"])
        );
    }

    #[test]
    fn empty_and_absent_variables() {
        let file = EnvFile::parse("KUBELET_EXTRA_ARGS=\n", &["KUBELET_EXTRA_ARGS"]).unwrap();
        assert!(file.words.is_empty());
        assert_eq!(
            file.render(&parse_args(&words(&["--cgroup-driver=systemd"]))),
            "KUBELET_EXTRA_ARGS=--cgroup-driver=systemd\n"
        );
        assert_eq!(
            file.render(&parse_args(&words(&["--a=1", "--b=2"]))),
            "KUBELET_EXTRA_ARGS=\"--a=1 --b=2\"\n"
        );
        let file = EnvFile::parse("# nothing yet\n", &["KUBELET_EXTRA_ARGS"]).unwrap();
        assert_eq!(
            file.render(&parse_args(&words(&["--a=1"]))),
            "# nothing yet\nKUBELET_EXTRA_ARGS=\"--a=1\"\n"
        );
        assert_eq!(
            EnvFile::parse("KUBELET_EXTRA_ARGS=\"--a\n", &["KUBELET_EXTRA_ARGS"]),
            Err(EnvFileError::Unterminated {
                variable: "KUBELET_EXTRA_ARGS".into(),
                line: 1
            })
        );
    }

    #[test]
    fn the_last_assignment_counts_and_export_is_understood() {
        let text = "KUBELET_EXTRA_ARGS=--a=1\nexport KUBELET_EXTRA_ARGS='--a=2 --b'\n# end\n";
        let file = EnvFile::parse(text, &["KUBELET_EXTRA_ARGS"]).unwrap();
        assert_eq!(file.words, words(&["--a=2", "--b"]));
        assert_eq!(
            file.render(&parse_args(&words(&["--a=3"]))),
            "KUBELET_EXTRA_ARGS=--a=1\nexport KUBELET_EXTRA_ARGS='--a=3'\n# end\n"
        );
    }

    #[test]
    fn kubelet_configuration_edits_keep_unknown_fields() {
        for version in ["1.20", "1.30"] {
            let text = fixture(&format!("config-{version}.yaml"));
            let mut config = parse_config(&text).unwrap();
            assert_eq!(render_config(&config), text, "{version} round-trips");
            let changes: Mapping = serde_yaml_ng::from_str(
                "cgroupDriver: systemd\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\nauthentication:\n  anonymous:\n    enabled: true\nshutdownGracePeriod: null\n",
            )
            .unwrap();
            merge_config(&mut config, &changes);
            let after = render_config(&config);
            assert!(after.contains("cgroupDriver: systemd\n"), "{after}");
            assert!(after.contains("clientCAFile: /etc/kubernetes/pki/ca.crt"));
            assert!(after.contains("  anonymous:\n    enabled: true\n  webhook:"));
            assert!(!after.contains("shutdownGracePeriod:"));
            assert!(
                after.ends_with(
                    "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
                ) || version == "1.30"
            );
        }
        assert_eq!(parse_config("- a\n"), Err(ConfigError::NotAMapping));
        assert!(parse_config("").unwrap().is_empty());
    }

    fn flag_word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z-]{0,12}=[a-zA-Z0-9:/._=-]{0,16}".prop_map(|s| format!("--{s}")),
            "[a-z][a-z-]{0,12}".prop_map(|s| format!("--{s}")),
            "[a-z][a-z-]{0,12}=[a-zA-Z0-9\"$'\\\\]{1,8}".prop_map(|s| format!("--{s}")),
        ]
    }

    fn yaml_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| Value::Number(n.into())),
            "[ -~]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
                proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9.]{0,8}", inner, 0..4).prop_map(
                    |m| Value::Mapping(m.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn kubelet_configurations_round_trip(
            fields in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9]{0,10}", yaml_value(), 0..8),
            changes in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9]{0,10}", yaml_value(), 0..4),
        ) {
            let config: Mapping = fields.into_iter().map(|(k, v)| (Value::String(k), v)).collect();
            prop_assert_eq!(parse_config(&render_config(&config)).unwrap(), config.clone());
            // Merging changes keeps every other field as it was.
            let changes: Mapping = changes.into_iter().map(|(k, v)| (Value::String(k), v)).collect();
            let mut merged = config.clone();
            merge_config(&mut merged, &changes);
            for (key, value) in &config {
                if !changes.contains_key(key) {
                    prop_assert_eq!(merged.get(key), Some(value));
                }
            }
            prop_assert_eq!(parse_config(&render_config(&merged)).unwrap(), merged);
        }

        #[test]
        fn env_files_round_trip(
            flags in proptest::collection::vec(flag_word(), 0..8),
            quote in 0u8..3,
            multiline in any::<bool>(),
            before in "(# [a-z ]{0,10}\n|OTHER=[a-z]{0,5}\n){0,3}",
            after in "(# [a-z ]{0,10}\n|OTHER=[a-z]{0,5}\n){0,3}",
        ) {
            let quote = match quote { 0 => Quote::None, 1 => Quote::Single, _ => Quote::Double };
            let flags: Vec<String> = match quote {
                // Unquoted and single-quoted values cannot hold every character.
                Quote::Double => flags,
                _ => flags.into_iter().filter(|f| !needs_quotes(f)).collect(),
            };
            let quote = if multiline || (matches!(quote, Quote::None) && flags.len() > 1) { Quote::Double } else { quote };
            let groups: Vec<Vec<String>> = flags.iter().map(|f| vec![f.clone()]).collect();
            let value = render_value(&groups, quote, multiline);
            let text = format!("{before}KUBELET_ARGS={value}\n{after}");
            let file = EnvFile::parse(&text, &["KUBELET_ARGS"]).unwrap();
            let expected: Vec<String> = flags.join(" ").split_whitespace().map(str::to_owned).collect();
            prop_assert_eq!(&file.words, &expected);
            prop_assert_eq!(file.render(&file.args()), text.clone());
            // Editing one flag leaves the lines around the assignment alone.
            let edited = edit_args(&file.args(), &[set("cgroup-driver", "systemd")]);
            let rendered = file.render(&edited);
            prop_assert!(rendered.starts_with(&before));
            prop_assert!(rendered.ends_with(&after));
            let again = EnvFile::parse(&rendered, &["KUBELET_ARGS"]).unwrap();
            prop_assert_eq!(render_args(&again.args()), render_args(&edited));
        }
    }
}
