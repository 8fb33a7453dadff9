//! Fetching libraries with libgit2 (the `git2` crate): one bare repository per remote URL in
//! krun's cache, and the files of a locked commit checked out once per commit.
//!
//! Why git2 and not gix: both are well kept; on this project's 2-core build machine git2
//! (libgit2 compiled from its bundled C source, no https/ssh, so no OpenSSL or libssh2) added
//! 14 crates and about 1 minute of CPU to a clean build, gix with its blocking network client
//! 156 crates and about 3.3 minutes; and libgit2 reads `file://` remotes itself, where gix
//! starts the `git-upload-pack` program. Only `file://` and `git://` are fetched for now.
//!
//! Layout under the cache directory (`KRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/krun`, else
//! `~/.cache/krun`):
//! - `git/<sha256 of the URL, 16 hex>/`: a bare repository holding the remote's tags and
//!   branches (`refs/remotes/origin/*`), refreshed at most once per krun process;
//! - `checkouts/<url key>-<commit>/`: the files krun loads from that commit (see `files.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{AutotagOption, FetchOptions, FetchPrune, ObjectType, Oid, Repository, TreeWalkMode};
use sha2::{Digest, Sha256};

use super::error::LibraryError;
use super::files::{self, Files};

/// krun's cache of fetched library repositories.
pub struct GitCache {
    dir: PathBuf,
    offline: bool,
    /// URLs fetched by this process: each remote is asked once per command.
    fetched: Mutex<BTreeSet<String>>,
}

impl GitCache {
    pub fn new(dir: PathBuf, offline: bool) -> Self {
        GitCache {
            dir,
            offline,
            fetched: Mutex::new(BTreeSet::new()),
        }
    }

    /// `KRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/krun`, else `~/.cache/krun`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KRUN_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("krun");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache").join("krun")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the files of `commit` from `url` are checked out.
    pub fn checkout_dir(&self, url: &str, commit: &str) -> PathBuf {
        self.dir
            .join("checkouts")
            .join(format!("{}-{commit}", url_key(url)))
    }

    fn db_dir(&self, url: &str) -> PathBuf {
        self.dir.join("git").join(url_key(url))
    }

    fn error(url: &str, e: impl std::fmt::Display) -> LibraryError {
        LibraryError::Git {
            url: url.to_owned(),
            message: e.to_string(),
        }
    }

    /// The cached repository for `url`, created empty when missing.
    fn open(&self, url: &str) -> Result<Repository, LibraryError> {
        let dir = self.db_dir(url);
        if dir.join("HEAD").is_file() {
            return Repository::open_bare(&dir).map_err(|e| Self::error(url, e));
        }
        std::fs::create_dir_all(&dir)
            .map_err(LibraryError::io(format!("cannot create {}", dir.display())))?;
        Repository::init_bare(&dir).map_err(|e| Self::error(url, e))
    }

    /// Fetches every tag and branch of `url` into the cache, once per process; offline, uses
    /// what an earlier fetch left.
    fn refresh(&self, url: &str) -> Result<Repository, LibraryError> {
        let repo = self.open(url)?;
        let mut fetched = self.fetched.lock().expect("fetched set");
        if self.offline || fetched.contains(url) {
            return Ok(repo);
        }
        let mut remote = repo
            .remote_anonymous(url)
            .map_err(|e| Self::error(url, e))?;
        let mut options = FetchOptions::new();
        options
            .download_tags(AutotagOption::None)
            .prune(FetchPrune::On)
            .update_fetchhead(false);
        remote
            .fetch(
                &[
                    "+refs/tags/*:refs/tags/*",
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
                Some(&mut options),
                None,
            )
            .map_err(|e| Self::error(url, format!("fetch failed: {}", e.message())))?;
        fetched.insert(url.to_owned());
        drop(remote);
        Ok(repo)
    }

    /// Every tag of `url` and the commit it names (annotated tags peeled).
    pub fn tags(&self, url: &str) -> Result<Vec<(String, String)>, LibraryError> {
        let repo = self.refresh(url)?;
        if self.offline && repo.references().map(|r| r.count()).unwrap_or(0) == 0 {
            return Err(LibraryError::Offline(format!(
                "{url} was never fetched into the cache ({}), and --offline forbids it now",
                self.dir.display()
            )));
        }
        let mut tags = Vec::new();
        let references = repo
            .references_glob("refs/tags/*")
            .map_err(|e| Self::error(url, e))?;
        for reference in references {
            let reference = reference.map_err(|e| Self::error(url, e))?;
            let Ok(name) = reference.shorthand().map(str::to_owned) else {
                continue;
            };
            if let Ok(commit) = reference.peel_to_commit() {
                tags.push((name, commit.id().to_string()));
            }
        }
        tags.sort();
        Ok(tags)
    }

    /// The commit a `rev` names: a commit id (full or abbreviated), a branch or a tag.
    pub fn resolve_rev(&self, url: &str, rev: &str) -> Result<String, LibraryError> {
        let repo = self.refresh(url)?;
        let candidates = [
            format!("refs/remotes/origin/{rev}"),
            format!("refs/tags/{rev}"),
            rev.to_owned(),
        ];
        for spec in &candidates {
            if let Ok(object) = repo.revparse_single(spec)
                && let Ok(commit) = object.peel_to_commit()
            {
                return Ok(commit.id().to_string());
            }
        }
        Err(LibraryError::NotFound(format!(
            "{url} has no branch, tag or commit {rev:?}"
        )))
    }

    /// Whether the cache holds `commit` of `url` already.
    pub fn has_commit(&self, url: &str, commit: &str) -> bool {
        let dir = self.db_dir(url);
        Repository::open_bare(dir)
            .is_ok_and(|repo| Oid::from_str(commit).is_ok_and(|oid| repo.find_commit(oid).is_ok()))
    }

    /// The files krun loads from `commit`, fetched first when the cache lacks it.
    pub fn files_at(&self, url: &str, commit: &str) -> Result<Files, LibraryError> {
        let oid = Oid::from_str(commit)
            .map_err(|_| LibraryError::NotFound(format!("{commit:?} is not a commit id")))?;
        let repo = if self.has_commit(url, commit) {
            self.open(url)?
        } else if self.offline {
            return Err(LibraryError::Offline(format!(
                "commit {commit} of {url} is not in the cache ({}), and --offline forbids                  fetching it",
                self.dir.display()
            )));
        } else {
            self.refresh(url)?
        };
        let commit_object = repo.find_commit(oid).map_err(|_| {
            LibraryError::NotFound(format!(
                "commit {commit} is not in {url} (any more): a history rewrite or a moved tag \
                 removed it; `krun lib update` chooses again"
            ))
        })?;
        let tree = commit_object.tree().map_err(|e| Self::error(url, e))?;
        let mut files = Files::new();
        let mut failure = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(name) = entry.name() else {
                return git2::TreeWalkResult::Skip;
            };
            let path = format!("{dir}{name}");
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    if name.starts_with('.') || name == "vendor" {
                        git2::TreeWalkResult::Skip
                    } else {
                        git2::TreeWalkResult::Ok
                    }
                }
                Some(ObjectType::Blob) if files::is_loaded(&path) => {
                    match repo.find_blob(entry.id()) {
                        Ok(blob) => {
                            files.insert(path, blob.content().to_vec());
                            git2::TreeWalkResult::Ok
                        }
                        Err(e) => {
                            failure = Some(e);
                            git2::TreeWalkResult::Abort
                        }
                    }
                }
                _ => git2::TreeWalkResult::Ok,
            }
        })
        .map_err(|e| Self::error(url, e))?;
        if let Some(e) = failure {
            return Err(Self::error(url, e));
        }
        Ok(files)
    }
}

/// A short, stable directory name for a URL.
fn url_key(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}
