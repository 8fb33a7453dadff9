//! The files krun loads from a library, and their content hash.
//!
//! A library is its `krun.toml` and every `.rhai` file below its root, except under `vendor/`
//! and hidden directories (`.git`). Those files, and only those, are hashed, vendored and
//! checked out, so the hash in `krun.lock` covers exactly the code a run can import.
//!
//! The hash is `sha256:` and the hex SHA-256 of, for each file in byte order of its path
//! (`/`-separated, relative to the root): the path, a NUL byte, the content's length as 8
//! bytes little-endian, then the content.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::error::LibraryError;
use super::manifest::MANIFEST;

/// A library's loaded files: relative path (`/`-separated) to content.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Whether krun loads the file at this relative path.
pub fn is_loaded(path: &str) -> bool {
    if path == MANIFEST {
        return true;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let hidden_or_vendored = parts[..parts.len() - 1]
        .iter()
        .any(|dir| dir.starts_with('.') || *dir == "vendor");
    path.ends_with(".rhai") && !hidden_or_vendored && !parts.last().unwrap_or(&"").starts_with('.')
}

/// The hash of a set of files, as recorded in `krun.lock`.
pub fn hash(files: &Files) -> String {
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(content);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Reads the loaded files of the library rooted at `root`.
pub fn read_dir(root: &Path) -> Result<Files, LibraryError> {
    let mut files = Files::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(LibraryError::io(format!("cannot list {}", dir.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(LibraryError::io(format!("cannot list {}", dir.display())))?;
            let path = entry.path();
            let relative = relative(root, &path);
            let kind = entry
                .file_type()
                .map_err(LibraryError::io(format!("cannot stat {}", path.display())))?;
            if kind.is_dir() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !name.starts_with('.') && name != "vendor" {
                    stack.push(path);
                }
            } else if is_loaded(&relative) {
                let content = std::fs::read(&path)
                    .map_err(LibraryError::io(format!("cannot read {}", path.display())))?;
                files.insert(relative, content);
            }
        }
    }
    Ok(files)
}

/// Writes `files` under `dir`, which must not exist yet: into a temporary sibling first, then
/// renamed, so a crash never leaves half a library under the final name.
pub fn write_dir(dir: &Path, files: &Files) -> Result<(), LibraryError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(LibraryError::io(format!(
        "cannot create {}",
        parent.display()
    )))?;
    let staging = tempfile::Builder::new()
        .prefix(".krun-lib-")
        .tempdir_in(parent)
        .map_err(LibraryError::io(format!(
            "cannot create a directory in {}",
            parent.display()
        )))?;
    for (path, content) in files {
        let relative = safe_relative(path).ok_or_else(|| {
            LibraryError::NotFound(format!(
                "refusing the file name {path:?}: library files must stay inside the library"
            ))
        })?;
        let target = staging.path().join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(LibraryError::io(format!(
                "cannot create {}",
                parent.display()
            )))?;
        }
        std::fs::write(&target, content).map_err(LibraryError::io(format!(
            "cannot write {}",
            target.display()
        )))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        LibraryError::Io {
            what: format!("cannot move a library into {}", dir.display()),
            source: e,
        }
    })
}

/// `path` as a relative path with only normal components (no `..`, no root).
pub fn safe_relative(path: &str) -> Option<&Path> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then_some(p)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_manifest_and_rhai_files_outside_vendor_and_hidden_dirs_are_loaded() {
        assert!(is_loaded("krun.toml"));
        assert!(is_loaded("drain.rhai"));
        assert!(is_loaded("sub/dir/x.rhai"));
        assert!(!is_loaded("README.md"));
        assert!(!is_loaded("vendor/other/x.rhai"));
        assert!(!is_loaded(".git/x.rhai"));
        assert!(!is_loaded("sub/.hidden.rhai"));
        assert!(!is_loaded("sub/krun.toml"));
    }

    #[test]
    fn the_hash_covers_names_and_contents_and_reads_back_from_disk() {
        let mut files = Files::new();
        files.insert("krun.toml".into(), b"[package]".to_vec());
        files.insert("a.rhai".into(), b"fn a() {}".to_vec());
        let original = hash(&files);
        assert!(original.starts_with("sha256:") && original.len() == 71);

        let mut renamed = files.clone();
        let content = renamed.remove("a.rhai").unwrap();
        renamed.insert("b.rhai".into(), content);
        assert_ne!(hash(&renamed), original);
        // Moving bytes between files changes the hash too (lengths are part of it).
        let mut shifted = Files::new();
        shifted.insert("krun.toml".into(), b"[package]fn".to_vec());
        shifted.insert("a.rhai".into(), b" a() {}".to_vec());
        assert_ne!(hash(&shifted), original);

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        files.insert("sub/c.rhai".into(), b"1".to_vec());
        write_dir(&root, &files).unwrap();
        std::fs::write(root.join("README.md"), "not loaded").unwrap();
        std::fs::create_dir_all(root.join("vendor/x")).unwrap();
        std::fs::write(root.join("vendor/x/y.rhai"), "not loaded").unwrap();
        assert_eq!(read_dir(&root).unwrap(), files);
        assert!(write_dir(&root, &files).is_err(), "an existing dir is kept");
    }

    #[test]
    fn file_names_that_escape_the_library_are_refused() {
        assert!(safe_relative("a/b.rhai").is_some());
        assert!(safe_relative("../b.rhai").is_none());
        assert!(safe_relative("/etc/b.rhai").is_none());
        assert!(safe_relative("").is_none());
    }
}
