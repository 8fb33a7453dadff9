//! `krun lib add|update|tree|verify|vendor`: the libraries of a playbook repository; and the
//! libraries a run, `krun check` and `krun doc --lib` resolve imports through.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::Error;
use crate::library::{self, Dependency, GitWant, LibraryError, MANIFEST, Options, Project, Update};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  krun lib add teamlib --git git://git.example/teamlib.git --version ^1.0
  krun lib add pinned --git file:///srv/git/pinned.git --rev 4f2a9c0
  krun lib update teamlib
  krun lib tree
  krun lib verify
  krun lib vendor        # then copy the repository to a machine without the remotes

Playbooks import a library's modules by its name: import \"teamlib/drain\" as drain;")]
pub struct LibArgs {
    #[command(subcommand)]
    pub command: LibCommand,

    /// The repository: a directory with krun.toml, or one below it.
    #[arg(long, value_name = "DIR", default_value = ".", global = true)]
    pub project: PathBuf,

    /// Never contact a git remote: libraries come from vendor/ and the cache only.
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum LibCommand {
    /// Add a dependency to krun.toml and lock it.
    Add(AddArgs),
    /// Choose versions again: the newest each requirement allows (all libraries, or the named
    /// ones), and write krun.lock.
    Update {
        /// Libraries to update (default: all).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Show the locked libraries as a tree, with versions and commits.
    Tree,
    /// Check krun.lock against krun.toml, every library against its hash, and that no release
    /// tag moved since locking. Exit 3 when the code is not what was locked.
    Verify,
    /// Copy every locked git library into vendor/, so a machine without the remotes runs the
    /// same code (runs read vendor/ first, verified against krun.lock).
    Vendor,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The library's name: what imports start with (`import "NAME/module"`).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Its git repository (file:// or git://).
    #[arg(long, value_name = "URL", required_unless_present = "path")]
    pub git: Option<String>,

    /// A version range over its release tags (default: ^ the newest release, e.g. ^1.4).
    #[arg(long, value_name = "RANGE", requires = "git", conflicts_with = "rev")]
    pub version: Option<String>,

    /// A commit (or a branch or tag, read once and locked as a commit) instead of a range.
    #[arg(long, value_name = "REV", requires = "git")]
    pub rev: Option<String>,

    /// A directory instead of a git repository (relative to the repository).
    #[arg(long, value_name = "DIR", conflicts_with = "git")]
    pub path: Option<PathBuf>,
}

pub fn run(args: &LibArgs) -> crate::Result<u8> {
    let root = root(&args.project)?;
    let mut project = Project::open(&root, args.offline)?;
    let options = Options {
        locked: false,
        offline: args.offline,
    };
    match &args.command {
        LibCommand::Add(add) => {
            let changes = add_dependency(&mut project, add)?;
            print_lines(&changes.lines, "krun.lock is up to date");
        }
        LibCommand::Update { names } => {
            for name in names {
                if !project.manifest.dependencies.contains_key(name)
                    && project.lock.as_ref().and_then(|l| l.get(name)).is_none()
                {
                    return Err(Error::input(format!(
                        "{name} is not a dependency of {} (see krun lib tree)",
                        project.manifest.name
                    )));
                }
            }
            let update = if names.is_empty() {
                Update::Everything
            } else {
                Update::Only(names.iter().cloned().collect())
            };
            let changes = project.update(update)?;
            print_lines(&changes.lines, "nothing to update");
        }
        LibCommand::Tree => {
            let (_, changes) = project.load(options)?;
            for line in &changes.lines {
                tracing::info!("{line}");
            }
            let lock = project.lock.clone().unwrap_or_default();
            print(&library::tree(&project.manifest, &lock));
        }
        LibCommand::Verify => {
            let libraries = project.verify(options)?;
            let mut out = String::new();
            for p in &libraries.provenance {
                out.push_str(&format!(
                    "ok {} {} {} ({})\n",
                    p.name, p.version, p.hash, p.from
                ));
            }
            out.push_str(&format!(
                "verified {} librar{}{}\n",
                libraries.provenance.len(),
                if libraries.provenance.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                if args.offline {
                    " (offline: release tags not checked)"
                } else {
                    ""
                }
            ));
            print(&out);
        }
        LibCommand::Vendor => {
            let (_, changes) = project.load(options)?;
            for line in &changes.lines {
                tracing::info!("{line}");
            }
            let vendored = project.vendor(options)?;
            print(&format!(
                "vendored {} librar{} into {}\n",
                vendored.len(),
                if vendored.len() == 1 { "y" } else { "ies" },
                root.join("vendor").display()
            ));
        }
    }
    Ok(0)
}

/// The repository `dir` is in.
pub fn root(dir: &Path) -> crate::Result<PathBuf> {
    library::find_root(dir).ok_or_else(|| {
        Error::input(format!(
            "no {MANIFEST} in {} or above it; `krun init` makes one",
            dir.display()
        ))
    })
}

/// Adds the dependency to krun.toml (keeping its comments and layout) and locks it; krun.toml
/// is left as it was when the new dependency cannot be resolved.
fn add_dependency(project: &mut Project, add: &AddArgs) -> crate::Result<library::Changes> {
    library::manifest::check_name(&add.name).map_err(Error::input)?;
    if project.manifest.dependencies.contains_key(&add.name) {
        return Err(Error::input(format!(
            "{} is already a dependency in {MANIFEST}; edit it there, or `krun lib update {}`",
            add.name, add.name
        )));
    }
    let mut table = toml_edit::InlineTable::new();
    let dependency = match (&add.git, &add.path) {
        (Some(url), _) => {
            library::manifest::check_url(url).map_err(Error::input)?;
            table.insert("git", url.as_str().into());
            let want = match (&add.version, &add.rev) {
                (_, Some(rev)) => {
                    table.insert("rev", rev.as_str().into());
                    GitWant::Rev(rev.clone())
                }
                (Some(range), None) => {
                    let req = semver::VersionReq::parse(range).map_err(|e| {
                        Error::input(format!("--version {range}: not a version range: {e}"))
                    })?;
                    table.insert("version", range.as_str().into());
                    GitWant::Version(req)
                }
                (None, None) => {
                    let newest = newest_release(project, url)?;
                    let range = format!("^{}.{}", newest.major, newest.minor);
                    table.insert("version", range.as_str().into());
                    GitWant::Version(semver::VersionReq::parse(&range).expect("a caret range"))
                }
            };
            Dependency::Git {
                url: url.clone(),
                want,
            }
        }
        (None, Some(path)) => {
            let text = path.to_string_lossy().into_owned();
            table.insert("path", text.as_str().into());
            Dependency::Path { path: path.clone() }
        }
        (None, None) => return Err(Error::input("give --git URL or --path DIR")),
    };
    let file = project.root.join(MANIFEST);
    let before = std::fs::read_to_string(&file)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", file.display())))?;
    let mut document: toml_edit::DocumentMut = before
        .parse()
        .map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
    let dependencies = document
        .entry("dependencies")
        .or_insert_with(toml_edit::table)
        .as_table_mut()
        .ok_or_else(|| {
            Error::input(format!("{}: [dependencies] is not a table", file.display()))
        })?;
    dependencies.insert(&add.name, toml_edit::value(table));
    let after = document.to_string();
    std::fs::write(&file, &after)
        .map_err(|e| Error::runtime(format!("cannot write {}: {e}", file.display())))?;
    project
        .manifest
        .dependencies
        .insert(add.name.clone(), dependency);
    match project.update(Update::Nothing) {
        Ok(changes) => Ok(changes),
        Err(e) => {
            let _ = std::fs::write(&file, &before);
            Err(e.into())
        }
    }
}

fn newest_release(project: &Project, url: &str) -> Result<semver::Version, LibraryError> {
    project
        .git
        .tags(url)?
        .iter()
        .filter_map(|(tag, _)| library::resolve::tag_version(tag))
        .filter(|v| v.pre.is_empty())
        .max()
        .ok_or_else(|| {
            LibraryError::NotFound(format!(
                "{url} has no release tags (like v1.0.0); give --rev COMMIT instead"
            ))
        })
}

fn print_lines(lines: &[String], nothing: &str) {
    if lines.is_empty() {
        print(&format!("{nothing}\n"));
    } else {
        print(&format!("{}\n", lines.join("\n")));
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The locked libraries of the repository `playbook` is in (`None` outside one), with the lock
/// brought up to date unless `locked`; `offline` forbids contacting a git remote.
pub fn libraries_for(
    playbook: &Path,
    locked: bool,
    offline: bool,
) -> crate::Result<Option<std::sync::Arc<library::Libraries>>> {
    let Some(root) = library::find_root(playbook) else {
        return Ok(None);
    };
    let mut project = Project::open(&root, offline)?;
    let (libraries, changes) = project.load(Options { locked, offline })?;
    for line in &changes.lines {
        tracing::info!("{}: {line}", root.join(library::LOCK).display());
    }
    Ok(Some(std::sync::Arc::new(libraries)))
}

/// `krun doc --lib NAME`: the modules of one library of the repository in the current directory.
pub fn library_doc(
    engine: &rhai::Engine,
    name: &str,
) -> crate::Result<crate::runtime::doc::LibraryDoc> {
    let root = root(Path::new("."))?;
    let libraries = libraries_for(&root, false, false)?.unwrap_or_default();
    let Some(library) = libraries.libraries.get(name) else {
        let names: Vec<&str> = libraries.libraries.keys().map(String::as_str).collect();
        let manifest = library::Manifest::load(&root)?;
        return Err(Error::input(format!(
            "{name} is not a library of {} (its libraries: {})",
            manifest.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let files = library::files::read_dir(&library.dir)?;
    let modules: Vec<(String, String)> = files
        .iter()
        .filter_map(|(path, content)| {
            let module = path.strip_suffix(".rhai")?;
            Some((
                format!("{name}/{module}"),
                String::from_utf8_lossy(content).into_owned(),
            ))
        })
        .collect();
    Ok(crate::runtime::doc::library(
        engine,
        name,
        &library.version.to_string(),
        &modules,
    ))
}
