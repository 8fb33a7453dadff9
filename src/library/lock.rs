//! `krun.lock`: every library a repository uses, transitive ones included, pinned to a commit id
//! and a content hash, so a run loads exactly the code that was reviewed.
//!
//! ```toml
//! version = 1
//!
//! [[library]]
//! name = "teamlib"
//! version = "1.1.0"
//! source = "git+git://git.example/teamlib.git"
//! commit = "4f2a9c0e…"            # a commit id, never a tag or branch name
//! hash = "sha256:…"               # of the files krun loads (see files.rs)
//! dependencies = ["platform"]
//! ```

use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use super::error::LibraryError;

pub const LOCK: &str = "krun.lock";
const FORMAT: u32 = 1;
const HEADER: &str =
    "# Written by krun (krun lib update); commit it with krun.toml. Do not edit.\n";

/// Where a locked library comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Git(String),
    /// Relative to the repository root, as written in the manifest.
    Path(PathBuf),
}

impl Source {
    fn encode(&self) -> String {
        match self {
            Source::Git(url) => format!("git+{url}"),
            Source::Path(path) => format!("path+{}", path.display()),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        if let Some(url) = text.strip_prefix("git+") {
            Some(Source::Git(url.to_owned()))
        } else {
            text.strip_prefix("path+")
                .map(|p| Source::Path(PathBuf::from(p)))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Git(url) => f.write_str(url),
            Source::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One locked library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub name: String,
    pub version: Version,
    pub source: Source,
    /// The `rev` the manifest asked for, when it pinned one.
    pub rev: Option<String>,
    /// The commit id, for git sources.
    pub commit: Option<String>,
    pub hash: String,
    /// Names of the libraries this one imports (its own `[dependencies]`).
    pub dependencies: Vec<String>,
}

/// The whole lock, libraries sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    pub libraries: Vec<Locked>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: u32,
    #[serde(default, rename = "library")]
    libraries: Vec<RawLocked>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocked {
    name: String,
    version: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    hash: String,
    #[serde(default)]
    dependencies: Vec<String>,
}

impl Lock {
    pub fn get(&self, name: &str) -> Option<&Locked> {
        self.libraries.iter().find(|l| l.name == name)
    }

    /// Reads `dir/krun.lock`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, LibraryError> {
        let file = dir.join(LOCK);
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::parse(&text, &file.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LibraryError::Io {
                what: format!("cannot read {}", file.display()),
                source: e,
            }),
        }
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, LibraryError> {
        let bad = |message: String| LibraryError::Lock {
            file: file.to_owned(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        if raw.version != FORMAT {
            return Err(bad(format!(
                "lock format {} is not one this krun reads ({FORMAT}); a newer krun wrote it",
                raw.version
            )));
        }
        let mut libraries = Vec::new();
        for l in raw.libraries {
            let version = Version::parse(&l.version)
                .map_err(|e| bad(format!("{}: version {:?}: {e}", l.name, l.version)))?;
            let source = Source::decode(&l.source).ok_or_else(|| {
                bad(format!(
                    "{}: source {:?} is not git+URL or path+DIR",
                    l.name, l.source
                ))
            })?;
            if let Some(commit) = &l.commit
                && !is_commit_id(commit)
            {
                return Err(bad(format!(
                    "{}: commit {commit:?} is not a commit id (40 hex digits)",
                    l.name
                )));
            }
            if matches!(source, Source::Git(_)) != l.commit.is_some() {
                return Err(bad(format!(
                    "{}: a git library needs a commit, a path library has none",
                    l.name
                )));
            }
            if !l.hash.starts_with("sha256:") {
                return Err(bad(format!(
                    "{}: hash {:?} is not sha256:…",
                    l.name, l.hash
                )));
            }
            libraries.push(Locked {
                name: l.name,
                version,
                source,
                rev: l.rev,
                commit: l.commit,
                hash: l.hash,
                dependencies: l.dependencies,
            });
        }
        libraries.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = libraries.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(bad(format!("{} is locked twice", pair[0].name)));
        }
        Ok(Lock { libraries })
    }

    pub fn to_toml(&self) -> String {
        let mut libraries: Vec<RawLocked> = self
            .libraries
            .iter()
            .map(|l| RawLocked {
                name: l.name.clone(),
                version: l.version.to_string(),
                source: l.source.encode(),
                rev: l.rev.clone(),
                commit: l.commit.clone(),
                hash: l.hash.clone(),
                dependencies: l.dependencies.clone(),
            })
            .collect();
        libraries.sort_by(|a, b| a.name.cmp(&b.name));
        let raw = Raw {
            version: FORMAT,
            libraries,
        };
        let body = toml::to_string(&raw).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Writes `dir/krun.lock` (through a temporary file and a rename).
    pub fn save(&self, dir: &Path) -> Result<(), LibraryError> {
        let file = dir.join(LOCK);
        let tmp = dir.join(".krun.lock.tmp");
        std::fs::write(&tmp, self.to_toml())
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(LibraryError::io(format!("cannot write {}", file.display())))
    }
}

pub fn is_commit_id(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            libraries: vec![
                Locked {
                    name: "local".into(),
                    version: Version::new(0, 1, 0),
                    source: Source::Path("../local".into()),
                    rev: None,
                    commit: None,
                    hash: format!("sha256:{}", "b".repeat(64)),
                    dependencies: vec![],
                },
                Locked {
                    name: "teamlib".into(),
                    version: Version::new(1, 1, 0),
                    source: Source::Git("git://127.0.0.1/teamlib.git".into()),
                    rev: None,
                    commit: Some("a".repeat(40)),
                    hash: format!("sha256:{}", "c".repeat(64)),
                    dependencies: vec!["local".into()],
                },
            ],
        }
    }

    #[test]
    fn a_lock_reads_back_what_was_written() {
        let lock = sample();
        let text = lock.to_toml();
        assert!(text.starts_with("# Written by krun"));
        assert!(text.contains("source = \"git+git://127.0.0.1/teamlib.git\""));
        assert_eq!(Lock::parse(&text, "krun.lock").unwrap(), lock);
    }

    #[test]
    fn a_tag_name_is_no_commit() {
        let text = sample().to_toml().replace(&"a".repeat(40), "v1.1.0");
        assert_eq!(
            Lock::parse(&text, "krun.lock").unwrap_err().to_string(),
            "krun.lock: teamlib: commit \"v1.1.0\" is not a commit id (40 hex digits)"
        );
    }
}
