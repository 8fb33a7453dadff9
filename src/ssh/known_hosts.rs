//! Host key verification against an OpenSSH known_hosts file.
//!
//! russh's own checker skips markers, does not know wildcards and gives up on the first line it
//! cannot parse, so krun reads the file itself, following OpenSSH's rules: plain and hashed
//! (`|1|salt|hmac`) names, `[host]:port` for ports other than 22, `*` and `?` wildcards,
//! `!negation`, several keys per host, `@revoked`. `@cert-authority` lines are ignored: krun does
//! not accept host certificates, so a CA never vouches for a host here, and a host known only
//! through a CA is reported as unknown.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{Algorithm, HashAlg, PublicKey};

/// What the file says about the key a server presented.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host records exactly this key.
    Known,
    /// No line records a key of this type for the host; `other_types` lists the types it does have.
    Unknown { other_types: Vec<String> },
    /// The host has a recorded key of this type, and it is a different key.
    Changed {
        line: usize,
        old_fingerprint: String,
        entry: String,
    },
    /// The key is listed under `@revoked` for this host.
    Revoked { line: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Revoked,
    CertAuthority,
}

#[derive(Debug)]
struct Entry {
    line: usize,
    marker: Option<Marker>,
    hosts: String,
    key: PublicKey,
    text: String,
}

/// The parsed lines of one known_hosts file. Unparsable lines are skipped, as OpenSSH does.
#[derive(Debug, Default)]
pub(crate) struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads `path`; a missing file is an empty one.
    pub(crate) fn load(path: &Path) -> io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(index, line)| parse_line(index + 1, line))
            .collect();
        Self { entries }
    }

    /// Judges `key` as presented by `host` on `port`.
    pub(crate) fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_pattern(host, port);
        let matching = || {
            self.entries
                .iter()
                .filter(|e| host_matches(&name, &e.hosts))
        };

        if let Some(revoked) = matching()
            .find(|e| e.marker == Some(Marker::Revoked) && e.key.key_data() == key.key_data())
        {
            return Verdict::Revoked { line: revoked.line };
        }
        let plain = || matching().filter(|e| e.marker.is_none());
        if plain().any(|e| e.key.key_data() == key.key_data()) {
            return Verdict::Known;
        }
        if let Some(old) = plain().find(|e| same_type(&e.key, key)) {
            return Verdict::Changed {
                line: old.line,
                old_fingerprint: fingerprint(&old.key),
                entry: old.text.clone(),
            };
        }
        let mut other_types: Vec<String> = plain().map(|e| key_type(&e.key)).collect();
        other_types.dedup();
        Verdict::Unknown { other_types }
    }

    /// Host key algorithms recorded for the host, best first, so the handshake can ask the
    /// server for a key we can verify (OpenSSH does the same) instead of a newer type it also has.
    pub(crate) fn recorded_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_pattern(host, port);
        let mut algorithms = Vec::new();
        for entry in self
            .entries
            .iter()
            .filter(|e| e.marker.is_none() && host_matches(&name, &e.hosts))
        {
            let expanded = match entry.key.algorithm() {
                Algorithm::Rsa { .. } => vec![
                    Algorithm::Rsa {
                        hash: Some(HashAlg::Sha512),
                    },
                    Algorithm::Rsa {
                        hash: Some(HashAlg::Sha256),
                    },
                ],
                other => vec![other],
            };
            for algorithm in expanded {
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
        algorithms
    }
}

/// The name OpenSSH looks up: `host`, or `[host]:port` when the port is not 22.
pub(crate) fn host_pattern(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's `SHA256:base64` form, the one `ssh-keygen -lf` prints.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key type as OpenSSH names it in known_hosts (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`).
pub(crate) fn key_type(key: &PublicKey) -> String {
    match key.algorithm() {
        Algorithm::Rsa { .. } => "ssh-rsa".to_string(),
        other => other.to_string(),
    }
}

fn same_type(a: &PublicKey, b: &PublicKey) -> bool {
    key_type(a) == key_type(b)
}

// Appends from concurrent connections of one run must not interleave.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Records `key` for `host`:`port` at the end of the file, like OpenSSH's accept-new.
pub(crate) fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    let _guard = APPEND_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut needs_newline = false;
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        needs_newline = last[0] != b'\n';
    }
    let mut public = key.clone();
    public.set_comment("");
    let encoded = public
        .to_openssh()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let line = format!(
        "{}{} {}\n",
        if needs_newline { "\n" } else { "" },
        host_pattern(host, port),
        encoded.trim_end()
    );
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

fn parse_line(number: usize, raw: &str) -> Option<Entry> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Some(Marker::Revoked),
        "@cert-authority" => Some(Marker::CertAuthority),
        other if other.starts_with('@') => return None,
        _ => None,
    };
    if marker.is_some() {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let base64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}")).ok()?;
    Some(Entry {
        line: number,
        marker,
        hosts: first.to_string(),
        key,
        text: text.to_string(),
    })
}

/// OpenSSH's host list semantics: any negated pattern that matches vetoes the line.
fn host_matches(name: &str, hosts: &str) -> bool {
    let mut matched = false;
    for pattern in hosts.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_matches(name, hashed);
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_matches(&negated.to_ascii_lowercase(), name) {
                return false;
            }
        } else {
            matched |= wildcard_matches(&pattern.to_ascii_lowercase(), name);
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as written by `ssh-keygen -H`.
fn hashed_matches(name: &str, salt_and_hash: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// Glob match with `*` (any run) and `?` (one character), over bytes like OpenSSH.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, start)) => {
                    p = star + 1;
                    n = start + 1;
                    backtrack = Some((star, start + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    #[test]
    fn wildcards_follow_openssh() {
        assert!(wildcard_matches("*.example.com", "n1.example.com"));
        assert!(wildcard_matches("n?", "n1"));
        assert!(!wildcard_matches("n?", "n12"));
        assert!(wildcard_matches("[10.0.0.*]:2222", "[10.0.0.7]:2222"));
        assert!(!wildcard_matches("[10.0.0.*]:2222", "[10.0.0.7]:22"));
        assert!(wildcard_matches("*a*b", "xxaxxb"));
        assert!(!wildcard_matches("*a*b", "xxaxxbc"));
    }

    #[test]
    fn non_standard_ports_use_brackets() {
        let file = KnownHosts::parse(&format!("[n1]:2222 {ED1}\nn2 {ED2}\n"));
        assert_eq!(file.check("n1", 2222, &key(ED1)), Verdict::Known);
        assert!(matches!(
            file.check("n1", 22, &key(ED1)),
            Verdict::Unknown { .. }
        ));
        assert_eq!(file.check("n2", 22, &key(ED2)), Verdict::Known);
    }

    #[test]
    fn negation_vetoes_the_line() {
        let file = KnownHosts::parse(&format!("*.lab,!bad.lab {ED1}\n"));
        assert_eq!(file.check("good.lab", 22, &key(ED1)), Verdict::Known);
        assert!(matches!(
            file.check("bad.lab", 22, &key(ED1)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn hashed_names_match() {
        // ssh-keygen -H output for "example.com".
        let file = KnownHosts::parse(&format!(
            "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {ED2}\n"
        ));
        assert_eq!(file.check("example.com", 22, &key(ED2)), Verdict::Known);
        assert!(matches!(
            file.check("example.org", 22, &key(ED2)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn a_different_key_of_the_same_type_is_a_change() {
        let file = KnownHosts::parse(&format!("# comment\n\nn1 {ED1}\n"));
        match file.check("n1", 22, &key(ED2)) {
            Verdict::Changed {
                line,
                entry,
                old_fingerprint,
            } => {
                assert_eq!(line, 3);
                assert_eq!(entry, format!("n1 {ED1}"));
                assert_eq!(old_fingerprint, fingerprint(&key(ED1)));
            }
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn revoked_wins_over_a_plain_entry() {
        let file = KnownHosts::parse(&format!("n1 {ED1}\n@revoked * {ED1}\n"));
        assert_eq!(
            file.check("n1", 22, &key(ED1)),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn cert_authority_lines_do_not_vouch_and_bad_lines_are_skipped() {
        let file = KnownHosts::parse(&format!(
            "@cert-authority * {ED1}\nn1 ssh-ed25519 not-base64\ngarbage\n"
        ));
        assert!(matches!(
            file.check("n1", 22, &key(ED1)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn fingerprints_use_the_openssh_format() {
        let fp = fingerprint(&key(ED1));
        assert!(fp.starts_with("SHA256:"));
        assert!(!fp.ends_with('='));
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn append_adds_a_line_that_then_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("n2 {ED2}")).unwrap();
        append(&path, "127.0.0.1", 2200, &key(ED1)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("n2 {ED2}\n[127.0.0.1]:2200 {ED1}\n"));
        let file = KnownHosts::load(&path).unwrap();
        assert_eq!(file.check("127.0.0.1", 2200, &key(ED1)), Verdict::Known);
    }
}
