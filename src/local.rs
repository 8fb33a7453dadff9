//! Which files on the operator's machine a playbook may read (`render`, `upload`, a containerd
//! tarball, `import`): those under the playbook's directory and the module search directories
//! (`--lib`, `KRUN_PATH`), and any path the operator allows with `--allow-local`. An absolute
//! path, a `..` that leads out, and a symbolic link that points out are refused, so a playbook
//! cannot read `~/.ssh/id_ed25519` and show it in a plan. The stdlib is compiled in.

use std::path::{Component, Path, PathBuf};

/// The directories a playbook reads local files from.
#[derive(Debug, Clone, Default)]
pub struct LocalFiles {
    /// Each as given (made absolute) and as resolved through links.
    roots: Vec<PathBuf>,
    /// `--allow-local` paths (files or directories), in both forms too.
    allowed: Vec<PathBuf>,
}

impl LocalFiles {
    /// Local files under `roots` (the playbook's directory, the module search directories) or
    /// one of the `allowed` paths.
    pub fn new(roots: &[PathBuf], allowed: &[PathBuf]) -> Self {
        Self {
            roots: both_forms(roots),
            allowed: both_forms(allowed),
        }
    }

    /// The file `name` means when the playbook file in `base` names it (`base` joined with
    /// `name`), or why it may not be read. A file that does not exist is returned as it is:
    /// reading it fails with the reason.
    pub fn resolve(&self, base: &Path, name: &str) -> Result<PathBuf, String> {
        let given = Path::new(name);
        let joined = base.join(given);
        let path = normalize(&absolute(&joined));
        if !self.permits(&path) {
            return Err(if given.is_absolute() {
                format!(
                    "`{name}` is an absolute path: a playbook reads local files only from its own \
                     directory and its --lib directories (allow this one with --allow-local {name})"
                )
            } else {
                format!(
                    "`{name}` leads out of the playbook's directory and its --lib directories, to \
                     {} (allow it with --allow-local {})",
                    path.display(),
                    path.display()
                )
            });
        }
        if let Ok(real) = path.canonicalize()
            && !self.permits(&real)
        {
            return Err(format!(
                "`{name}` is a symbolic link to {}, out of the playbook's directory and its --lib \
                 directories (allow it with --allow-local {})",
                real.display(),
                real.display()
            ));
        }
        // As named, so plans show the path the way the playbook's directory was given.
        Ok(joined)
    }

    fn permits(&self, path: &Path) -> bool {
        self.roots
            .iter()
            .chain(&self.allowed)
            .any(|root| path.starts_with(root))
    }
}

fn both_forms(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        let given = normalize(&absolute(path));
        if let Ok(real) = given.canonicalize() {
            out.push(real);
        }
        out.push(given);
    }
    out.dedup();
    out
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    }
}

/// `path` with `.` and `..` resolved by name, without asking the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_the_roots_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let playbooks = dir.path().join("playbooks");
        let libs = dir.path().join("libs");
        std::fs::create_dir_all(playbooks.join("templates")).unwrap();
        std::fs::create_dir_all(&libs).unwrap();
        std::fs::write(playbooks.join("templates/a.j2"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let local = LocalFiles::new(&[playbooks.clone(), libs.clone()], &[]);

        assert_eq!(
            local.resolve(&playbooks, "templates/a.j2").unwrap(),
            playbooks.join("templates/a.j2")
        );
        assert!(
            local.resolve(Path::new(""), "x").is_err(),
            "the working directory is no root"
        );
        assert!(
            local
                .resolve(&playbooks, "templates/../templates/a.j2")
                .is_ok()
        );
        assert!(local.resolve(&playbooks, "../libs/x.j2").is_ok());
        let error = local.resolve(&playbooks, "../secret").unwrap_err();
        assert!(
            error.contains("leads out of the playbook's directory"),
            "{error}"
        );
        let error = local.resolve(&playbooks, "/etc/passwd").unwrap_err();
        assert!(error.contains("is an absolute path"), "{error}");

        std::os::unix::fs::symlink(dir.path().join("secret"), playbooks.join("link")).unwrap();
        let error = local.resolve(&playbooks, "link").unwrap_err();
        assert!(error.contains("is a symbolic link to"), "{error}");

        let allowed = LocalFiles::new(
            std::slice::from_ref(&playbooks),
            &[dir.path().join("secret")],
        );
        assert!(allowed.resolve(&playbooks, "link").is_ok());
        let secret = dir.path().join("secret").display().to_string();
        assert!(allowed.resolve(&playbooks, &secret).is_ok());
    }
}
