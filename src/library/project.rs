//! A repository with a `krun.toml`: finding it, bringing its lock up to date, and putting every
//! locked library where the module resolver can load it, verified against its hash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::Version;

pub use crate::journal::Provenance;

use super::error::LibraryError;
use super::files::{self, Files};
use super::git::GitCache;
use super::lock::{Lock, Locked, Source};
use super::manifest::{Dependency, GitWant, MANIFEST, Manifest};
use super::resolve::{self, Resolver, Update, tag_version};

/// How libraries may be fetched and whether the lock may change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Fail when `krun.lock` does not match `krun.toml` instead of updating it.
    pub locked: bool,
    /// Never contact a git remote: libraries come from `vendor/` or the cache.
    pub offline: bool,
}

/// The running krun's version, which `requires_krun` ranges are checked against.
pub fn krun_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate version is semver")
}

/// The repository containing `start` (a playbook or a directory): the nearest ancestor with a
/// `krun.toml`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    let mut dir = if start.is_dir() {
        start.as_path()
    } else {
        start.parent()?
    };
    loop {
        if dir.join(MANIFEST).is_file() {
            return Some(dir.to_path_buf());
        }
        dir = dir.parent()?;
    }
}

/// A library ready to import from.
#[derive(Debug, Clone)]
pub struct LoadedLibrary {
    pub name: String,
    pub version: Version,
    pub dir: PathBuf,
}

/// Every library of a repository, locked and verified: what `import "name/module"` resolves
/// through.
#[derive(Debug, Clone, Default)]
pub struct Libraries {
    pub root: PathBuf,
    pub libraries: BTreeMap<String, LoadedLibrary>,
    pub provenance: Vec<Provenance>,
}

impl Libraries {
    /// The file an import names when its first segment is a library: `teamlib/drain` is
    /// `drain.rhai` in teamlib's directory. `None` when it names no library.
    pub fn locate(&self, import: &str) -> Option<PathBuf> {
        let (name, rest) = import.split_once('/')?;
        let library = self.libraries.get(name)?;
        let file = if rest.ends_with(".rhai") {
            rest.to_owned()
        } else {
            format!("{rest}.rhai")
        };
        files::safe_relative(&file).map(|f| library.dir.join(f))
    }

    /// How an unresolved import's search reads in errors.
    pub fn describe(&self, import: &str) -> Option<String> {
        let (name, _) = import.split_once('/')?;
        let library = self.libraries.get(name)?;
        Some(format!(
            "library {name} {} in {}",
            library.version,
            library.dir.display()
        ))
    }
}

/// A repository's manifest and lock, and the caches its libraries come from.
pub struct Project {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub lock: Option<Lock>,
    pub git: GitCache,
}

/// What `update` changed, for the operator.
#[derive(Debug, Default)]
pub struct Changes {
    pub lines: Vec<String>,
}

impl Project {
    pub fn open(root: &Path, offline: bool) -> Result<Self, LibraryError> {
        let manifest = Manifest::load(root)?;
        let lock = Lock::load(root)?;
        Ok(Project {
            root: root.to_path_buf(),
            manifest,
            lock,
            git: GitCache::new(GitCache::default_dir(), offline),
        })
    }

    /// Resolves again (`update` says which locked versions may change), writes the lock, and
    /// says what changed.
    pub fn update(&mut self, update: Update) -> Result<Changes, LibraryError> {
        let (lock, notes) = {
            let mut resolver = Resolver::new(
                &self.root,
                &self.manifest,
                &self.git,
                self.lock.as_ref(),
                update,
                krun_version(),
            );
            let (lock, _) = resolver.resolve()?;
            (lock, resolver.notes)
        };
        let mut changes = Changes { lines: notes };
        changes.lines.extend(diff(self.lock.as_ref(), &lock));
        if self.lock.as_ref() != Some(&lock) {
            lock.save(&self.root)?;
        }
        self.lock = Some(lock);
        Ok(changes)
    }

    /// The lock, brought up to date when the manifest changed (unless `--locked`), then every
    /// library materialized and verified.
    pub fn load(&mut self, options: Options) -> Result<(Libraries, Changes), LibraryError> {
        self.manifest.check_krun(&krun_version())?;
        let mut changes = Changes::default();
        let disagreement = match &self.lock {
            None => Some("there is no krun.lock".to_owned()),
            Some(lock) => disagreement(&self.root, &self.manifest, lock),
        };
        if let Some(why) = disagreement {
            if options.locked {
                return Err(LibraryError::LockOutdated(why));
            }
            changes = self.update(Update::Nothing)?;
        }
        let libraries = self.materialize(options)?;
        // A path library edited since locking (allowed without --locked): the lock follows.
        if let Some(lock) = &mut self.lock {
            let mut relocked = false;
            for entry in &mut lock.libraries {
                let now = libraries.provenance.iter().find(|p| p.name == entry.name);
                if let Some(now) = now.filter(|p| p.hash != entry.hash) {
                    changes.lines.push(format!(
                        "re-locked {} {} (path {} changed)",
                        entry.name, entry.version, entry.source
                    ));
                    entry.hash = now.hash.clone();
                    relocked = true;
                }
            }
            if relocked {
                lock.save(&self.root)?;
            }
        }
        Ok((libraries, changes))
    }

    /// Puts every locked library where runs read it and checks each against its hash.
    pub fn materialize(&self, options: Options) -> Result<Libraries, LibraryError> {
        let lock = self.lock.clone().unwrap_or_default();
        let krun = krun_version();
        let mut libraries = Libraries {
            root: self.root.clone(),
            ..Libraries::default()
        };
        for locked in &lock.libraries {
            let (dir, from, files) = self.place(locked, options)?;
            let manifest = resolve::manifest_of(&files, &dir.display().to_string())?;
            manifest.check_krun(&krun)?;
            let declared: Vec<&String> = manifest.dependencies.keys().collect();
            let recorded: Vec<&String> = locked.dependencies.iter().collect();
            if declared != recorded {
                return Err(LibraryError::LockOutdated(format!(
                    "{} declares the dependencies {declared:?}, the lock says {recorded:?}",
                    locked.name
                )));
            }
            for (name, dep) in &manifest.dependencies {
                if let Some(entry) = lock.get(name)
                    && let Some(why) = unmet(&self.root, dep, entry)
                {
                    return Err(LibraryError::LockOutdated(format!(
                        "{} {} wants {name} {}, but {why}",
                        locked.name,
                        locked.version,
                        dep.describe()
                    )));
                }
            }
            libraries.provenance.push(Provenance {
                name: locked.name.clone(),
                version: locked.version.to_string(),
                source: locked.source.to_string(),
                commit: locked.commit.clone(),
                hash: files::hash(&files),
                from: from.to_owned(),
            });
            libraries.libraries.insert(
                locked.name.clone(),
                LoadedLibrary {
                    name: locked.name.clone(),
                    version: locked.version.clone(),
                    dir,
                },
            );
        }
        Ok(libraries)
    }

    /// Where a locked library's files are (vendor/, the cache, or its path), fetched into the
    /// cache when needed, and verified.
    fn place(
        &self,
        locked: &Locked,
        options: Options,
    ) -> Result<(PathBuf, &'static str, Files), LibraryError> {
        let verify = |files: &Files, place: &Path| -> Result<(), LibraryError> {
            let actual = files::hash(files);
            if actual == locked.hash {
                Ok(())
            } else {
                Err(LibraryError::HashMismatch(Box::new(
                    super::error::HashMismatch {
                        name: locked.name.clone(),
                        version: locked.version.to_string(),
                        place: place.display().to_string(),
                        locked: locked.hash.clone(),
                        actual,
                    },
                )))
            }
        };
        match &locked.source {
            Source::Path(path) => {
                let dir = self.root.join(path);
                let files = files::read_dir(&dir)?;
                if files::hash(&files) != locked.hash {
                    // A path library is edited in place; the lock follows it unless --locked.
                    if options.locked {
                        verify(&files, &dir)?;
                    }
                }
                Ok((dir, "path", files))
            }
            Source::Git(url) => {
                let commit = locked.commit.as_deref().unwrap_or_default();
                let vendored = self.root.join("vendor").join(&locked.name);
                if vendored.join(MANIFEST).is_file() {
                    let files = files::read_dir(&vendored)?;
                    verify(&files, &vendored)?;
                    return Ok((vendored, "vendor", files));
                }
                let checkout = self.git.checkout_dir(url, commit);
                if checkout.is_dir() {
                    let files = files::read_dir(&checkout)?;
                    verify(&files, &checkout)?;
                    return Ok((checkout, "cache", files));
                }
                if options.offline && !self.git.has_commit(url, commit) {
                    return Err(LibraryError::Offline(format!(
                        "{} {} (commit {commit}) is neither in vendor/ nor in the cache ({}) and \
                         --offline forbids fetching it from {url}; run `krun lib vendor` where \
                         the remote is reachable",
                        locked.name,
                        locked.version,
                        self.git.dir().display()
                    )));
                }
                let files = self.git.files_at(url, commit)?;
                self.check_tag(locked, url)?;
                verify(&files, Path::new(url))?;
                files::write_dir(&checkout, &files).or_else(|e| {
                    // Another krun may have written it meanwhile.
                    if checkout.is_dir() { Ok(()) } else { Err(e) }
                })?;
                Ok((checkout, "cache", files))
            }
        }
    }

    /// A locked release's tag must still name the locked commit.
    fn check_tag(&self, locked: &Locked, url: &str) -> Result<(), LibraryError> {
        if locked.rev.is_some() {
            return Ok(());
        }
        for (tag, commit) in self.git.tags(url)? {
            if tag_version(&tag).as_ref() == Some(&locked.version)
                && Some(commit.as_str()) != locked.commit.as_deref()
            {
                return Err(LibraryError::MovedTag(Box::new(super::error::MovedTag {
                    name: locked.name.clone(),
                    version: locked.version.to_string(),
                    url: url.to_owned(),
                    tag,
                    locked: locked.commit.clone().unwrap_or_default(),
                    now: commit,
                })));
            }
        }
        Ok(())
    }

    /// `krun lib verify`: the lock matches the manifest, every library is present or fetchable
    /// and hashes as locked, and (online) every release tag still names its locked commit.
    pub fn verify(&self, options: Options) -> Result<Libraries, LibraryError> {
        let lock = self
            .lock
            .as_ref()
            .ok_or_else(|| LibraryError::LockOutdated("there is no krun.lock".to_owned()))?;
        if let Some(why) = disagreement(&self.root, &self.manifest, lock) {
            return Err(LibraryError::LockOutdated(why));
        }
        let libraries = self.materialize(Options {
            locked: true,
            ..options
        })?;
        if !options.offline {
            for locked in &lock.libraries {
                if let Source::Git(url) = &locked.source {
                    self.check_tag(locked, url)?;
                }
            }
        }
        Ok(libraries)
    }

    /// `krun lib vendor`: copies every locked git library into `vendor/NAME/`, so a machine
    /// without the remotes runs the same code. Returns the libraries vendored.
    pub fn vendor(&self, options: Options) -> Result<Vec<String>, LibraryError> {
        let lock = self.lock.clone().unwrap_or_default();
        let libraries = self.materialize(Options {
            locked: true,
            ..options
        })?;
        let vendor = self.root.join("vendor");
        let mut done = Vec::new();
        for locked in &lock.libraries {
            if !matches!(locked.source, Source::Git(_)) {
                continue;
            }
            let library = &libraries.libraries[&locked.name];
            let target = vendor.join(&locked.name);
            if library.dir == target {
                done.push(locked.name.clone());
                continue;
            }
            let files = files::read_dir(&library.dir)?;
            if target.exists() {
                std::fs::remove_dir_all(&target).map_err(LibraryError::io(format!(
                    "cannot replace {}",
                    target.display()
                )))?;
            }
            files::write_dir(&target, &files)?;
            done.push(locked.name.clone());
        }
        // Libraries no longer locked leave vendor/ (only krun's own copies: they have a
        // krun.toml).
        if let Ok(entries) = std::fs::read_dir(&vendor) {
            let locked: BTreeSet<&str> = lock.libraries.iter().map(|l| l.name.as_str()).collect();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !locked.contains(name.as_str()) && entry.path().join(MANIFEST).is_file() {
                    std::fs::remove_dir_all(entry.path()).map_err(LibraryError::io(format!(
                        "cannot remove {}",
                        entry.path().display()
                    )))?;
                }
            }
        }
        Ok(done)
    }
}

/// Why the lock does not satisfy the manifest (`None`: it does). Transitive requirements are
/// checked once the libraries' own manifests are read (`materialize`).
pub fn disagreement(root: &Path, manifest: &Manifest, lock: &Lock) -> Option<String> {
    for (name, dep) in &manifest.dependencies {
        let Some(entry) = lock.get(name) else {
            return Some(format!("{name} is not locked"));
        };
        if let Some(why) = unmet(root, dep, entry) {
            return Some(format!(
                "krun.toml wants {name} {}, but {why}",
                dep.describe()
            ));
        }
    }
    // Every locked library must be reachable from the manifest.
    let mut reachable = BTreeSet::new();
    let mut todo: Vec<&str> = manifest.dependencies.keys().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        if !reachable.insert(name) {
            continue;
        }
        match lock.get(name) {
            Some(entry) => todo.extend(entry.dependencies.iter().map(String::as_str)),
            None => return Some(format!("{name} is not locked")),
        }
    }
    lock.libraries
        .iter()
        .find(|l| !reachable.contains(l.name.as_str()))
        .map(|l| format!("{} is locked but nothing depends on it", l.name))
}

/// Why a locked entry does not meet a requirement.
fn unmet(root: &Path, dep: &Dependency, entry: &Locked) -> Option<String> {
    match (dep, &entry.source) {
        (Dependency::Git { url, want }, Source::Git(locked_url)) if url == locked_url => match want
        {
            GitWant::Version(req) if !req.matches(&entry.version) => {
                Some(format!("{} is locked", entry.version))
            }
            GitWant::Rev(rev) if entry.rev.as_deref() != Some(rev.as_str()) => Some(format!(
                "the lock has {}",
                entry.rev.as_ref().map_or_else(
                    || format!("version {}", entry.version),
                    |r| format!("rev {r}")
                )
            )),
            GitWant::Version(_) if entry.rev.is_some() => Some("the lock pins a rev".to_owned()),
            _ => None,
        },
        (Dependency::Path { path }, Source::Path(locked)) => {
            let wanted = root.join(path);
            (normalize(&wanted) != normalize(&root.join(locked)))
                .then(|| format!("the lock has path {}", locked.display()))
        }
        (_, source) => Some(format!("the lock has it from {source}")),
    }
}

fn normalize(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// What changed between two locks, one line per library.
pub fn diff(before: Option<&Lock>, after: &Lock) -> Vec<String> {
    let mut lines = Vec::new();
    let empty = Lock::default();
    let before = before.unwrap_or(&empty);
    for new in &after.libraries {
        match before.get(&new.name) {
            None => lines.push(format!(
                "locked {} {} ({})",
                new.name,
                new.version,
                short(new)
            )),
            Some(old) if old.version != new.version => lines.push(format!(
                "updated {} {} -> {} ({})",
                new.name,
                old.version,
                new.version,
                short(new)
            )),
            Some(old) if old != new => lines.push(format!(
                "re-locked {} {} ({})",
                new.name,
                new.version,
                short(new)
            )),
            Some(_) => {}
        }
    }
    for old in &before.libraries {
        if after.get(&old.name).is_none() {
            lines.push(format!("removed {} {}", old.name, old.version));
        }
    }
    lines
}

fn short(l: &Locked) -> String {
    match &l.commit {
        Some(c) => format!("commit {}", &c[..12.min(c.len())]),
        None => format!("path {}", l.source),
    }
}

/// The dependency tree as text: the root, then each library indented under its dependents.
pub fn tree(manifest: &Manifest, lock: &Lock) -> String {
    fn walk(lock: &Lock, name: &str, depth: usize, seen: &mut Vec<String>, out: &mut String) {
        let indent = "  ".repeat(depth);
        match lock.get(name) {
            Some(l) => {
                let origin = match &l.commit {
                    Some(c) => format!("{} @ {}", l.source, &c[..12.min(c.len())]),
                    None => format!("path {}", l.source),
                };
                let again = seen.iter().any(|s| s == name);
                out.push_str(&format!(
                    "{indent}{name} {} ({origin}){}\n",
                    l.version,
                    if again { " (*)" } else { "" }
                ));
                if !again {
                    seen.push(name.to_owned());
                    for dep in &l.dependencies {
                        walk(lock, dep, depth + 1, seen, out);
                    }
                }
            }
            None => out.push_str(&format!("{indent}{name} (not locked)\n")),
        }
    }
    let mut out = format!("{} {}\n", manifest.name, manifest.version);
    let mut seen = Vec::new();
    for name in manifest.dependencies.keys() {
        walk(lock, name, 1, &mut seen, &mut out);
    }
    out
}
