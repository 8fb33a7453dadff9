//! `krun.toml`: what a playbook repository is called, its version, the krun it needs, and the
//! libraries it imports.
//!
//! ```toml
//! [package]
//! name = "cluster-ops"
//! version = "0.3.0"
//! requires_krun = ">=0.1"
//!
//! [dependencies]
//! teamlib = { git = "git://git.example/teamlib.git", version = "^1.0" }
//! drainlib = { git = "file:///srv/git/drainlib.git", rev = "4f2a9c0e…" }
//! local = { path = "../local-lib" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Deserialize;

use super::error::LibraryError;

pub const MANIFEST: &str = "krun.toml";

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    /// The krun versions this repository works with; any when absent.
    pub requires_krun: Option<VersionReq>,
    pub description: Option<String>,
    pub dependencies: BTreeMap<String, Dependency>,
}

/// Where a dependency comes from and which version of it is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// A git repository; `version` is matched against its tags (`v1.2.0` or `1.2.0`).
    Git { url: String, want: GitWant },
    /// A directory, relative to the manifest's directory.
    Path { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitWant {
    Version(VersionReq),
    /// A commit id, or a branch or tag name that is read once, when locking.
    Rev(String),
}

impl Dependency {
    /// How a requirement reads in messages: `^1.0 from git://…`.
    pub fn describe(&self) -> String {
        match self {
            Dependency::Git {
                url,
                want: GitWant::Version(req),
            } => format!("{req} from {url}"),
            Dependency::Git {
                url,
                want: GitWant::Rev(rev),
            } => format!("rev {rev} of {url}"),
            Dependency::Path { path } => format!("path {}", path.display()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    package: RawPackage,
    #[serde(default)]
    dependencies: BTreeMap<String, RawDependency>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    version: String,
    requires_krun: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    git: Option<String>,
    version: Option<String>,
    rev: Option<String>,
    path: Option<PathBuf>,
}

impl Manifest {
    /// Reads `dir/krun.toml`.
    pub fn load(dir: &Path) -> Result<Self, LibraryError> {
        let file = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&file).map_err(|e| LibraryError::Io {
            what: format!("cannot read {}", file.display()),
            source: e,
        })?;
        Self::parse(&text, &file.display().to_string())
    }

    /// Parses a manifest's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, LibraryError> {
        let bad = |message: String| LibraryError::Manifest {
            file: file.to_owned(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            bad(match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            })
        })?;
        check_name(&raw.package.name).map_err(|m| bad(format!("package name: {m}")))?;
        let version = Version::parse(&raw.package.version).map_err(|e| {
            bad(format!(
                "version {:?} is not a semantic version like 1.2.0: {e}",
                raw.package.version
            ))
        })?;
        let requires_krun = raw
            .package
            .requires_krun
            .as_deref()
            .map(|r| {
                VersionReq::parse(r).map_err(|e| {
                    bad(format!(
                        "requires_krun {r:?} is not a version range like \">=0.1\": {e}"
                    ))
                })
            })
            .transpose()?;
        let mut dependencies = BTreeMap::new();
        for (name, dep) in raw.dependencies {
            check_name(&name).map_err(|m| bad(format!("dependency {name:?}: {m}")))?;
            let dep = dependency(&name, dep).map_err(|m| bad(format!("dependency {name}: {m}")))?;
            dependencies.insert(name, dep);
        }
        Ok(Manifest {
            name: raw.package.name,
            version,
            requires_krun,
            description: raw.package.description,
            dependencies,
        })
    }

    /// Refuses to run under a krun outside `requires_krun`.
    pub fn check_krun(&self, krun: &Version) -> Result<(), LibraryError> {
        match &self.requires_krun {
            Some(req) if !req.matches(krun) => Err(LibraryError::KrunVersion {
                package: format!("{} {}", self.name, self.version),
                requires: req.to_string(),
                krun: krun.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

fn dependency(name: &str, raw: RawDependency) -> Result<Dependency, String> {
    match (raw.git, raw.path) {
        (Some(_), Some(_)) => Err("give either git or path, not both".to_owned()),
        (None, None) => Err(format!(
            "say where it comes from: {name} = {{ git = \"URL\", version = \"^1.0\" }}, \
             {{ git = \"URL\", rev = \"COMMIT\" }} or {{ path = \"DIR\" }}"
        )),
        (None, Some(path)) => {
            if raw.version.is_some() || raw.rev.is_some() {
                return Err("a path dependency takes no version or rev".to_owned());
            }
            Ok(Dependency::Path { path })
        }
        (Some(url), None) => {
            check_url(&url)?;
            let want = match (raw.version, raw.rev) {
                (Some(_), Some(_)) => return Err("give either version or rev, not both".to_owned()),
                (None, None) => {
                    return Err(
                        "a git dependency needs a version range (version = \"^1.0\") or a rev"
                            .to_owned(),
                    );
                }
                (Some(v), None) => GitWant::Version(VersionReq::parse(&v).map_err(|e| {
                    format!("version {v:?} is not a version range like \"^1.2\": {e}")
                })?),
                (None, Some(rev)) if rev.trim().is_empty() => {
                    return Err("rev is empty".to_owned());
                }
                (None, Some(rev)) => GitWant::Rev(rev),
            };
            Ok(Dependency::Git { url, want })
        }
    }
}

/// Library names are the first part of an import path (`import "teamlib/drain"`).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a library name: lowercase letters, digits, - and _, starting with a \
             letter or digit"
        ))
    }
}

/// The remotes krun can fetch from today.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("file://") || url.starts_with("git://") {
        Ok(())
    } else {
        Err(format!(
            "git URL {url:?}: krun fetches file:// and git:// URLs (an air-gapped mirror, a \
             git daemon); for another remote, vendor the library or use a path dependency"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_parses() {
        let m = Manifest::parse(
            r#"
[package]
name = "cluster-ops"
version = "0.3.0"
requires_krun = ">=0.1, <2"

[dependencies]
teamlib = { git = "git://127.0.0.1/teamlib.git", version = "^1.0" }
pinned = { git = "file:///srv/pinned.git", rev = "abc123" }
local = { path = "../local" }
"#,
            "krun.toml",
        )
        .unwrap();
        assert_eq!(m.name, "cluster-ops");
        assert_eq!(m.version, Version::new(0, 3, 0));
        assert_eq!(
            m.dependencies["teamlib"],
            Dependency::Git {
                url: "git://127.0.0.1/teamlib.git".to_owned(),
                want: GitWant::Version(VersionReq::parse("^1.0").unwrap())
            }
        );
        assert_eq!(
            m.dependencies["pinned"],
            Dependency::Git {
                url: "file:///srv/pinned.git".to_owned(),
                want: GitWant::Rev("abc123".to_owned())
            }
        );
        assert_eq!(
            m.dependencies["local"],
            Dependency::Path {
                path: PathBuf::from("../local")
            }
        );
        assert!(m.check_krun(&Version::new(0, 9, 0)).is_ok());
        assert_eq!(
            m.check_krun(&Version::new(2, 0, 0))
                .unwrap_err()
                .to_string(),
            "cluster-ops 0.3.0 requires krun >=0.1, <2; this is krun 2.0.0"
        );
    }

    #[test]
    fn mistakes_name_the_file_the_line_and_the_fix() {
        let err = |text: &str| {
            Manifest::parse(text, "x/krun.toml")
                .unwrap_err()
                .to_string()
        };
        let package = "[package]\nname = \"a\"\nversion = \"1.0.0\"\n";
        assert_eq!(
            err("[package]\nname = \"a\"\nversion = \"1.0\"\n"),
            "x/krun.toml: version \"1.0\" is not a semantic version like 1.2.0: unexpected end of \
             input while parsing minor version number"
        );
        assert!(
            err(&format!(
                "{package}[dependencies]\nb = {{ git = \"file:///b\" }}\n"
            ))
            .contains("dependency b: a git dependency needs a version range")
        );
        assert!(
            err(&format!(
                "{package}[dependencies]\nb = {{ git = \"https://x/b\", version = \"1\" }}\n"
            ))
            .contains("krun fetches file:// and git:// URLs")
        );
        assert!(
            err(&format!(
                "{package}[dependencies]\nB = {{ path = \"b\" }}\n"
            ))
            .contains("\"B\" is not a library name")
        );
        let unknown = err(&format!("{package}colour = 1\n"));
        assert!(unknown.starts_with("x/krun.toml: line 4:"), "{unknown}");
    }
}
