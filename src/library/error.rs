//! What can go wrong with libraries, each naming the library, the file or the remote.

/// A library could not be resolved, fetched, verified or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },

    #[error("{file}: {message}")]
    Lock { file: String, message: String },

    #[error("{package} requires krun {requires}; this is krun {krun}")]
    KrunVersion {
        package: String,
        requires: String,
        krun: String,
    },

    /// Two dependents want versions of a library that no single version satisfies.
    #[error("{0}")]
    Conflict(String),

    #[error("{0}")]
    NotFound(String),

    /// `--locked`: the lock does not say what the manifest asks for.
    #[error("krun.lock does not match krun.toml ({0}); run `krun lib update` and commit krun.lock")]
    LockOutdated(String),

    /// A tag now names another commit than the one locked: someone re-tagged a release.
    #[error(transparent)]
    MovedTag(Box<MovedTag>),

    /// Files differ from the hash in the lock (an edited vendor/ copy or cache).
    #[error(transparent)]
    HashMismatch(Box<HashMismatch>),

    #[error("{0}")]
    Offline(String),

    #[error("git {url}: {message}")]
    Git { url: String, message: String },

    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
#[error(
    "tag {tag} of {url} moved: {name} {version} is locked at commit {locked}, the tag now \
     points to {now}. A release tag must never move; ask the library's owners, then run \
     `krun lib update {name}` once you trust the new commit"
)]
pub struct MovedTag {
    pub name: String,
    pub version: String,
    pub url: String,
    pub tag: String,
    pub locked: String,
    pub now: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{name} {version}: the files in {place} hash to {actual}, krun.lock says {locked}; \
     they were changed after locking"
)]
pub struct HashMismatch {
    pub name: String,
    pub version: String,
    pub place: String,
    pub locked: String,
    pub actual: String,
}

impl LibraryError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| LibraryError::Io { what, source }
    }
}

impl From<LibraryError> for crate::Error {
    fn from(err: LibraryError) -> Self {
        let message = err.to_string();
        match err {
            // Integrity checks refuse, like a guard: the code is not what was locked.
            LibraryError::MovedTag(_) | LibraryError::HashMismatch(_) => {
                crate::Error::refused(message)
            }
            LibraryError::Git { .. } | LibraryError::Io { .. } => crate::Error::runtime(message),
            _ => crate::Error::input(message),
        }
    }
}
