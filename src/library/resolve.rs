//! Choosing one version of every library a repository needs.
//!
//! One name is one library in a run (`import "teamlib/drain"` must mean one thing), so every
//! requirement on a name must be met by the same version: the highest tag that satisfies all of
//! them, or the locked one while it still does. When none does, resolution stops with an error
//! naming each dependent and what it asked for — never "the first one found wins".
//!
//! The search is a fixed point: pick a version per name from the requirements of the current
//! picks, read the picked versions' own manifests, repeat until nothing changes. There is no
//! backtracking: when a pick brings in a requirement that contradicts another, that is reported
//! as the conflict it is, and the operator decides which side moves.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use semver::Version;

use super::error::LibraryError;
use super::files::{self, Files};
use super::git::GitCache;
use super::lock::{Lock, Locked, Source};
use super::manifest::{Dependency, GitWant, MANIFEST, Manifest};

const MAX_ROUNDS: usize = 100;

/// Which locked versions may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Keep every locked version that still satisfies its requirements.
    Nothing,
    /// Re-resolve these names (and accept that their tags moved).
    Only(BTreeSet<String>),
    Everything,
}

impl Update {
    fn allows(&self, name: &str) -> bool {
        match self {
            Update::Nothing => false,
            Update::Only(names) => names.contains(name),
            Update::Everything => true,
        }
    }
}

/// A library version that was read: its manifest, files and hash.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub source: Source,
    pub commit: Option<String>,
    pub manifest: Manifest,
    pub files: Arc<Files>,
    pub hash: String,
    /// A path library's directory, for its own path dependencies.
    dir: Option<PathBuf>,
}

/// One dependent's requirement on a name.
#[derive(Debug, Clone)]
struct Want {
    /// Who asks: `cluster-ops (krun.toml)` or `platform 1.1.0`.
    by: String,
    dep: Dependency,
    /// For path dependencies: the directory the path is relative to.
    base: Option<PathBuf>,
}

pub struct Resolver<'a> {
    root_dir: &'a Path,
    root: &'a Manifest,
    git: &'a GitCache,
    lock: Option<&'a Lock>,
    update: Update,
    krun: Version,
    /// Versions read so far, by (source, commit or path).
    seen: BTreeMap<(Source, String), Candidate>,
    /// Notes for the operator (a tag that moved and was accepted by an update).
    pub notes: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        root_dir: &'a Path,
        root: &'a Manifest,
        git: &'a GitCache,
        lock: Option<&'a Lock>,
        update: Update,
        krun: Version,
    ) -> Self {
        Resolver {
            root_dir,
            root,
            git,
            lock,
            update,
            krun,
            seen: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Resolves every library, transitive ones included, into a lock.
    pub fn resolve(&mut self) -> Result<(Lock, BTreeMap<String, Candidate>), LibraryError> {
        self.root.check_krun(&self.krun)?;
        let mut picks: BTreeMap<String, Candidate> = BTreeMap::new();
        for _ in 0..MAX_ROUNDS {
            let wants = self.wants(&picks)?;
            let mut next = BTreeMap::new();
            for (name, wants) in &wants {
                let pick = self.pick(name, wants, picks.get(name))?;
                next.insert(name.clone(), pick);
            }
            let settled = next.len() == picks.len()
                && next
                    .iter()
                    .all(|(name, c)| picks.get(name).is_some_and(|p| same(p, c)));
            picks = next;
            if settled {
                for candidate in picks.values() {
                    candidate.manifest.check_krun(&self.krun)?;
                }
                let lock = self.lock_of(&picks, &wants);
                return Ok((lock, picks));
            }
        }
        Err(LibraryError::Conflict(format!(
            "the library versions did not settle after {MAX_ROUNDS} rounds; pin the libraries \
             that keep changing with an exact version (\"=1.2.0\")"
        )))
    }

    /// Every requirement of the root and of the current picks reachable from it, by name.
    fn wants(
        &self,
        picks: &BTreeMap<String, Candidate>,
    ) -> Result<BTreeMap<String, Vec<Want>>, LibraryError> {
        let mut wants: BTreeMap<String, Vec<Want>> = BTreeMap::new();
        let root_label = format!("{} (krun.toml)", self.root.name);
        let mut queue: VecDeque<(String, &Manifest, Option<PathBuf>, bool)> = VecDeque::new();
        queue.push_back((
            root_label,
            self.root,
            Some(self.root_dir.to_path_buf()),
            true,
        ));
        let mut visited = BTreeSet::new();
        while let Some((by, manifest, dir, may_use_paths)) = queue.pop_front() {
            for (name, dep) in &manifest.dependencies {
                if name == &self.root.name {
                    return Err(LibraryError::Conflict(format!(
                        "{by} depends on {name}, which is the name of this repository itself"
                    )));
                }
                if matches!(dep, Dependency::Path { .. }) && !may_use_paths {
                    return Err(LibraryError::Conflict(format!(
                        "{by} declares the path dependency {name}; only a repository's own \
                         krun.toml (or a path library's) may, since a path means nothing on \
                         another machine"
                    )));
                }
                wants.entry(name.clone()).or_default().push(Want {
                    by: by.clone(),
                    dep: dep.clone(),
                    base: dir.clone(),
                });
                if let Some(pick) = picks.get(name)
                    && visited.insert(name.clone())
                {
                    queue.push_back((
                        format!("{name} {}", pick.manifest.version),
                        &pick.manifest,
                        pick.dir.clone(),
                        pick.dir.is_some(),
                    ));
                }
            }
        }
        Ok(wants)
    }

    fn pick(
        &mut self,
        name: &str,
        wants: &[Want],
        current: Option<&Candidate>,
    ) -> Result<Candidate, LibraryError> {
        let first = &wants[0];
        let source = self.source_of(first)?;
        for other in &wants[1..] {
            let other_source = self.source_of(other)?;
            if other_source != source {
                return Err(LibraryError::Conflict(format!(
                    "{name} is required from two places: {} wants {}, {} wants {}; one name \
                     must mean one library",
                    first.by,
                    first.dep.describe(),
                    other.by,
                    other.dep.describe()
                )));
            }
        }
        let candidate = match &source {
            Source::Path(relative) => {
                let dir = self.root_dir.join(relative);
                self.read_path(name, relative, &dir)?
            }
            Source::Git(url) => self.pick_git(name, url, wants, current)?,
        };
        if candidate.manifest.name != name {
            return Err(LibraryError::Conflict(format!(
                "{} imports {name} from {}, whose krun.toml names it {:?}; the dependency's key \
                 must be the library's name",
                first.by, candidate.source, candidate.manifest.name
            )));
        }
        Ok(candidate)
    }

    fn pick_git(
        &mut self,
        name: &str,
        url: &str,
        wants: &[Want],
        current: Option<&Candidate>,
    ) -> Result<Candidate, LibraryError> {
        let locked = self
            .lock
            .and_then(|l| l.get(name))
            .filter(|l| l.source == Source::Git(url.to_owned()))
            .filter(|_| !self.update.allows(name));
        // A pinned rev decides the commit; version ranges must then accept its version.
        let revs: BTreeSet<&str> = wants
            .iter()
            .filter_map(|w| match &w.dep {
                Dependency::Git {
                    want: GitWant::Rev(rev),
                    ..
                } => Some(rev.as_str()),
                _ => None,
            })
            .collect();
        if let Some(rev) = revs.iter().next() {
            let commit = match locked.filter(|l| l.rev.as_deref() == Some(*rev)) {
                Some(l) => l.commit.clone().unwrap_or_default(),
                None => self.git.resolve_rev(url, rev)?,
            };
            for other in revs.iter().skip(1) {
                let other_commit = self.git.resolve_rev(url, other)?;
                if other_commit != commit {
                    return Err(self.conflict(name, wants, "they pin different commits"));
                }
            }
            let candidate = self.read_git(url, &commit)?;
            if !wants
                .iter()
                .all(|w| accepts(&w.dep, &candidate.manifest.version))
            {
                return Err(self.conflict(
                    name,
                    wants,
                    &format!("the pinned rev is version {}", candidate.manifest.version),
                ));
            }
            return Ok(candidate);
        }

        let tags = self.git.tags(url)?;
        let mut versions: BTreeMap<Version, (String, String)> = BTreeMap::new();
        for (tag, commit) in tags {
            let Some(version) = tag_version(&tag) else {
                continue;
            };
            if let Some((other_tag, other_commit)) = versions.get(&version)
                && *other_commit != commit
            {
                return Err(LibraryError::Conflict(format!(
                    "{url}: tags {other_tag} and {tag} both say version {version} but name \
                     different commits"
                )));
            }
            versions.insert(version, (tag, commit));
        }
        let matching: Vec<&Version> = versions
            .keys()
            .filter(|v| wants.iter().all(|w| accepts(&w.dep, v)))
            .collect();
        if let Some(locked) = locked.filter(|l| matching.contains(&&l.version)) {
            let (tag, commit) = &versions[&locked.version];
            let locked_commit = locked.commit.clone().unwrap_or_default();
            if *commit != locked_commit {
                return Err(LibraryError::MovedTag(Box::new(super::error::MovedTag {
                    name: name.to_owned(),
                    version: locked.version.to_string(),
                    url: url.to_owned(),
                    tag: tag.clone(),
                    locked: locked_commit,
                    now: commit.clone(),
                })));
            }
            return self.read_git_version(url, tag, commit, &locked.version);
        }
        if let Some(was) = self
            .lock
            .and_then(|l| l.get(name))
            .filter(|l| self.update.allows(name) && l.source == Source::Git(url.to_owned()))
            && let Some((tag, commit)) = versions.get(&was.version)
            && was.commit.as_deref() != Some(commit)
        {
            self.notes.push(format!(
                "{name}: tag {tag} moved from {} to {commit} since it was locked",
                was.commit.as_deref().unwrap_or("?")
            ));
        }
        let chosen = current
            .map(|c| &c.manifest.version)
            .filter(|v| matching.contains(v))
            .or_else(|| matching.last().copied());
        match chosen {
            Some(version) => {
                let (tag, commit) = versions[version].clone();
                let version = version.clone();
                self.read_git_version(url, &tag, &commit, &version)
            }
            None if versions.is_empty() => Err(LibraryError::NotFound(format!(
                "{url} has no version tags (like v1.0.0), which {} needs for {}",
                wants[0].by,
                wants[0].dep.describe()
            ))),
            None => {
                let available: Vec<String> = versions.keys().map(ToString::to_string).collect();
                Err(self.conflict(name, wants, &format!("{url} has {}", available.join(", "))))
            }
        }
    }

    fn conflict(&self, name: &str, wants: &[Want], detail: &str) -> LibraryError {
        let asks: Vec<String> = wants
            .iter()
            .map(|w| format!("{} wants {}", w.by, w.dep.describe()))
            .collect();
        let what = if wants.len() > 1 {
            "satisfies every requirement"
        } else {
            "satisfies the requirement"
        };
        LibraryError::Conflict(format!(
            "no version of {name} {what}: {}; {detail}",
            asks.join(", ")
        ))
    }

    fn source_of(&self, want: &Want) -> Result<Source, LibraryError> {
        Ok(match &want.dep {
            Dependency::Git { url, .. } => Source::Git(url.clone()),
            Dependency::Path { path } => {
                let base = want
                    .base
                    .clone()
                    .unwrap_or_else(|| self.root_dir.to_path_buf());
                Source::Path(relative_to(self.root_dir, &base.join(path)))
            }
        })
    }

    fn read_git_version(
        &mut self,
        url: &str,
        tag: &str,
        commit: &str,
        version: &Version,
    ) -> Result<Candidate, LibraryError> {
        let candidate = self.read_git(url, commit)?;
        if candidate.manifest.version != *version {
            return Err(LibraryError::Manifest {
                file: format!("{url} at tag {tag}: {MANIFEST}"),
                message: format!(
                    "says version {}, the tag says {version}",
                    candidate.manifest.version
                ),
            });
        }
        Ok(candidate)
    }

    fn read_git(&mut self, url: &str, commit: &str) -> Result<Candidate, LibraryError> {
        let key = (Source::Git(url.to_owned()), commit.to_owned());
        if let Some(c) = self.seen.get(&key) {
            return Ok(c.clone());
        }
        let files = self.git.files_at(url, commit)?;
        let manifest = manifest_of(&files, &format!("{url} at {commit}"))?;
        let candidate = Candidate {
            source: key.0.clone(),
            commit: Some(commit.to_owned()),
            hash: files::hash(&files),
            manifest,
            files: Arc::new(files),
            dir: None,
        };
        self.seen.insert(key, candidate.clone());
        Ok(candidate)
    }

    fn read_path(
        &mut self,
        name: &str,
        relative: &Path,
        dir: &Path,
    ) -> Result<Candidate, LibraryError> {
        let key = (Source::Path(relative.to_path_buf()), String::new());
        if let Some(c) = self.seen.get(&key) {
            return Ok(c.clone());
        }
        if !dir.join(MANIFEST).is_file() {
            return Err(LibraryError::NotFound(format!(
                "{name}: {} has no {MANIFEST}",
                dir.display()
            )));
        }
        let files = files::read_dir(dir)?;
        let manifest = Manifest::load(dir)?;
        let candidate = Candidate {
            source: key.0.clone(),
            commit: None,
            hash: files::hash(&files),
            manifest,
            files: Arc::new(files),
            dir: Some(dir.to_path_buf()),
        };
        self.seen.insert(key, candidate.clone());
        Ok(candidate)
    }

    fn lock_of(
        &self,
        picks: &BTreeMap<String, Candidate>,
        wants: &BTreeMap<String, Vec<Want>>,
    ) -> Lock {
        let libraries = picks
            .iter()
            .map(|(name, c)| Locked {
                name: name.clone(),
                version: c.manifest.version.clone(),
                source: c.source.clone(),
                rev: wants.get(name).and_then(|ws| {
                    ws.iter().find_map(|w| match &w.dep {
                        Dependency::Git {
                            want: GitWant::Rev(rev),
                            ..
                        } => Some(rev.clone()),
                        _ => None,
                    })
                }),
                commit: c.commit.clone(),
                hash: c.hash.clone(),
                dependencies: c.manifest.dependencies.keys().cloned().collect(),
            })
            .collect();
        Lock { libraries }
    }
}

fn same(a: &Candidate, b: &Candidate) -> bool {
    a.source == b.source && a.commit == b.commit && a.hash == b.hash
}

/// Whether a requirement accepts a version (a path accepts whatever is there).
fn accepts(dep: &Dependency, version: &Version) -> bool {
    match dep {
        Dependency::Git {
            want: GitWant::Version(req),
            ..
        } => req.matches(version),
        _ => true,
    }
}

/// The version a release tag names: `v1.2.0` or `1.2.0`.
pub fn tag_version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// A library's manifest from its files.
pub fn manifest_of(files: &Files, place: &str) -> Result<Manifest, LibraryError> {
    let text = files.get(MANIFEST).ok_or_else(|| {
        LibraryError::NotFound(format!(
            "{place} has no {MANIFEST}: it is not a krun library"
        ))
    })?;
    let text = String::from_utf8_lossy(text);
    Manifest::parse(&text, &format!("{place}: {MANIFEST}"))
}

/// `path` relative to `root`, lexically (`..` where needed), for the lock.
fn relative_to(root: &Path, path: &Path) -> PathBuf {
    let normal = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        out
    };
    let (root, path) = (normal(root), normal(path));
    let common = root.iter().zip(&path).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..root.len() {
        out.push("..");
    }
    for part in &path[common..] {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tags_with_or_without_v() {
        assert_eq!(tag_version("v1.2.0"), Some(Version::new(1, 2, 0)));
        assert_eq!(tag_version("1.2.0"), Some(Version::new(1, 2, 0)));
        assert_eq!(tag_version("release-1"), None);
        assert_eq!(tag_version("v1.2"), None);
    }

    #[test]
    fn paths_in_the_lock_are_relative_to_the_repository() {
        assert_eq!(
            relative_to(Path::new("/r/ops"), Path::new("/r/ops/../libs/a")),
            PathBuf::from("../libs/a")
        );
        assert_eq!(
            relative_to(Path::new("/r/ops"), Path::new("/r/ops/libs/a")),
            PathBuf::from("libs/a")
        );
    }
}
