//! Shell quoting for every command krun builds from values.
//!
//! Versions, package names, paths and units come from parameters and inventories; each is quoted
//! so that `1.21; rm -rf /` stays one argument. The rule is POSIX single quoting (what Python's
//! `shlex.quote` does): words made only of safe characters stay bare, so plans stay readable
//! (`kubeadm=1.21.14-00`, which the `shlex` crate would quote); anything else is wrapped in single
//! quotes with `'` written as `'\''`. A property test runs the result through a real `sh`.

/// Quotes one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    // NUL cannot appear in a shell word (no shell can carry it); dropping it keeps one argument.
    let word = word.replace('\0', "");
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Quotes each word and joins them with spaces.
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a command's operands (package names, units, images) and puts `--` before them when
/// one starts with `-`, so a value never becomes an option: `systemctl restart -- --host=x`
/// looks for a unit of that name instead of restarting units on another host. Every tool krun
/// passes operands to reads `--` as the end of its options (apt-get, apt-cache, dpkg-query,
/// dnf, rpm, pacman, systemctl, mkdir; crictl and ctr through Go's flag parsing).
pub fn operands<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    let words: Vec<String> = words.into_iter().map(|w| w.as_ref().to_owned()).collect();
    let quoted = join(&words);
    if words.iter().any(|w| w.starts_with('-')) {
        format!("-- {quoted}")
    } else {
        quoted
    }
}

/// A command that writes stdin to `path` atomically (temporary file in the same directory, then
/// rename), creating the directory if needed, with the given permission bits.
pub fn write_file_command(path: &str, mode: u32) -> String {
    let path = quote(path);
    format!(
        "set -e; dir=$(dirname -- {path}); mkdir -p -- \"$dir\"; tmp=$(mktemp \"$dir/.krun.XXXXXX\"); \
         trap 'rm -f -- \"$tmp\"' EXIT; cat > \"$tmp\"; chmod {mode:04o} \"$tmp\"; mv -f -- \"$tmp\" {path}; trap - EXIT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn through_a_shell(word: &str) -> String {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(word)))
            .output()
            .expect("sh runs");
        String::from_utf8(output.stdout).expect("utf-8")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_word_survives_a_real_shell(word in "[^\\x00]{0,40}") {
            prop_assert_eq!(through_a_shell(&word), word);
        }
    }

    #[test]
    fn hostile_words_survive_a_real_shell() {
        for word in [
            "it's",
            "$(id)",
            "`id`",
            "a\"b",
            "\\",
            "1.21; rm -rf /",
            "*",
            "~",
            "$HOME",
            "a\nb",
            "!x",
            "{a,b}",
        ] {
            assert_eq!(through_a_shell(word), word);
        }
    }

    #[test]
    fn option_like_operands_come_after_the_end_of_options() {
        assert_eq!(operands(["kubelet"]), "kubelet");
        assert_eq!(operands(["--host=x"]), "-- --host=x");
        assert_eq!(
            operands(["a", "-oDPkg::Pre-Invoke::=x"]),
            "-- a -oDPkg::Pre-Invoke::=x"
        );
    }

    #[test]
    fn injection_stays_one_argument() {
        assert_eq!(quote("1.21; rm -rf /"), "'1.21; rm -rf /'");
        assert_eq!(quote("plain-1.2.3"), "plain-1.2.3");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(
            join(["apt-get", "install", "kubeadm=1.21.14-00"]),
            "apt-get install kubeadm=1.21.14-00"
        );
    }
}
