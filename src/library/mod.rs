//! Playbook libraries shared between teams: versions, a lock, and offline vendoring.
//!
//! A platform team publishes its drain policy and kubeadm wrappers once, as a git repository
//! with a `krun.toml` and release tags; every cluster team imports them at a version it chose:
//!
//! - `krun.toml` ([`manifest`]) names the repository, its version, the krun it needs
//!   (`requires_krun`) and its dependencies: `{ git, version }` (a semver range over the
//!   repository's tags), `{ git, rev }` or `{ path }`.
//! - `krun.lock` ([`lock`]) records every library, transitive ones included, with the version
//!   chosen, the commit id and the hash of the files krun loads ([`files`]). [`resolve`] makes
//!   it; one version per name, and a conflict is an error that names both sides.
//! - Runs resolve `import "teamlib/drain"` through the lock ([`Libraries::locate`]), from
//!   `vendor/` when present, else from a cache of fetched commits ([`git`]), after checking each
//!   library against its hash. The journal and the JSON plan record each library's name,
//!   version and hash ([`Provenance`]).

mod error;
pub mod files;
pub mod git;
pub mod lock;
pub mod manifest;
mod project;
pub mod resolve;

pub use error::LibraryError;
pub use lock::{LOCK, Lock, Locked, Source};
pub use manifest::{Dependency, GitWant, MANIFEST, Manifest};
pub use project::{
    Changes, Libraries, LoadedLibrary, Options, Project, Provenance, diff, disagreement, find_root,
    krun_version, tree,
};
pub use resolve::Update;
