//! Shell quoting for every command krun builds from values.
//!
//! Versions, package names, paths and units come from parameters and inventories; each is quoted
//! so that `1.21; rm -rf /` stays one argument. Quoting is delegated to `shlex`, which implements
//! POSIX single-quote rules; we only add the refusal of NUL bytes (no shell can carry them).

/// Quotes one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    // NUL cannot appear in a shell word; replacing it keeps the command one argument long.
    let word = word.replace('\0', "");
    shlex::try_quote(&word).map_or_else(|_| "''".to_owned(), |q| q.into_owned())
}

/// Quotes each word and joins them with spaces.
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
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

    #[test]
    fn injection_stays_one_argument() {
        assert_eq!(quote("1.21; rm -rf /"), "'1.21; rm -rf /'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("plain-1.2.3"), "plain-1.2.3");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(
            join(["apt-get", "install", "kubeadm=1.21.14-00"]),
            "apt-get install kubeadm=1.21.14-00"
        );
    }
}
