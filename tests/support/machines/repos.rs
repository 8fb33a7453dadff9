//! The package repositories test machines install from, in the layouts users have, holding the
//! kubeadm/kubelet/kubectl/CRI-O stand-ins (`tests/standins/`) as real packages built by the
//! real tools: `dpkg-deb` + `dpkg-scanpackages`, `rpmbuild` + `createrepo_c`, `makepkg` +
//! `repo-add`. Built once per content of `tests/standins/` and cached under
//! `target/test-machines/repos-<hash>/`; machines see it read-only at [`MOUNT`].
//!
//! | layout | where | versions |
//! | --- | --- | --- |
//! | legacy apt (`apt.kubernetes.io`) | `apt-legacy/`, suite `kubernetes-xenial`, component `main` | `1.X.Y-00` |
//! | legacy rpm (`packages.cloud.google.com`) | `rpm-legacy/` | `1.X.Y-0` |
//! | pkgs.k8s.io, one repository per minor | `pkgs/v1.NN/deb/` (flat), `pkgs/v1.NN/rpm/` | `1.X.Y-1.1`, `1.X.Y-150500.1.1` |
//! | Arch Linux ARM repository `kubernetes` | `arch/` | `kubernetes 1.X.Y-1`, `cri-o` |
//! | a team-built package for `pacman -U` | `arch-files/kubernetes-1.12.1-1-aarch64.pkg.tar.xz` | |

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::base::{cache_dir, lock, run};
use crate::support::require;

/// Where machines see the repositories.
pub const MOUNT: &str = "/srv/krun-repos";

/// Kubernetes versions in the legacy repositories (apt `-00`, rpm `-0`).
pub const LEGACY: &[&str] = &[
    "1.17.17", "1.18.20", "1.19.16", "1.20.15", "1.21.0", "1.21.14", "1.22.0", "1.22.17", "1.23.17",
];

/// Kubernetes versions on pkgs.k8s.io, each in its minor's repository.
pub const PKGS: &[&str] = &["1.27.16", "1.28.15", "1.29.14", "1.30.14"];

/// Arch Linux ARM: the `kubernetes` package (kubelet, kubeadm and kubectl in one) in the
/// repository, and CRI-O.
pub const ARCH_KUBERNETES: &[&str] = &["1.11.1", "1.12.1", "1.18.20", "1.19.16"];
pub const ARCH_CRIO: &[&str] = &["1.11.2", "1.11.7"];

/// The team-built package the Arch report installs with `pacman -U`.
pub const ARCH_FILE: &str = "arch-files/kubernetes-1.12.1-1-aarch64.pkg.tar.xz";

const RECIPE: u32 = 1;

/// The repositories of one package format and layout, as a node's sources name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    AptLegacy,
    RpmLegacy,
    AptPkgs,
    RpmPkgs,
    Arch,
}

impl Layout {
    /// A package version as this layout spells it: `1.21.14-00`, `1.21.14-0`, `1.28.15-1.1`,
    /// `1.28.15-150500.1.1`, `1.12.1-1`.
    pub fn package_version(self, upstream: &str) -> String {
        let release = match self {
            Self::AptLegacy => "00",
            Self::RpmLegacy => "0",
            Self::AptPkgs => "1.1",
            Self::RpmPkgs => "150500.1.1",
            Self::Arch => "1",
        };
        format!("{upstream}-{release}")
    }
}

/// The repositories, built on first use; `None` (after saying why) when a build tool is
/// missing outside CI.
pub fn repositories() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tools = [
            "dpkg-deb",
            "dpkg-scanpackages",
            "rpmbuild",
            "createrepo_c",
            "makepkg",
            "repo-add",
            "fakeroot",
            "bsdtar",
            "runuser",
        ];
        if !require(&tools, true) {
            return None;
        }
        let user = crate::support::sudo_user()?;
        Some(build_once(user))
    })
    .as_deref()
}

fn standins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

fn content_key() -> String {
    let mut hash = Sha256::new();
    hash.update(format!(
        "{RECIPE}\n{LEGACY:?}{PKGS:?}{ARCH_KUBERNETES:?}{ARCH_CRIO:?}\n"
    ));
    let mut files = Vec::new();
    let mut pending = vec![standins_dir()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read tests/standins").flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for file in files {
        hash.update(
            file.strip_prefix(standins_dir())
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(fs::read(&file).expect("read a stand-in file"));
    }
    hex::encode(&hash.finalize()[..6])
}

fn build_once(user: &str) -> PathBuf {
    let cache = cache_dir();
    fs::create_dir_all(&cache).expect("create the machine cache directory");
    let key = content_key();
    let root = cache.join(format!("repos-{key}"));
    let _lock = lock(&cache.join(".repos.lock"));
    if root.join(".complete").exists() {
        return root;
    }
    let building = cache.join(format!("repos-{key}.building"));
    let _ = fs::remove_dir_all(&building);
    fs::create_dir_all(&building).expect("create the repository directory");
    // makepkg refuses root; the unprivileged test user builds, so it must reach the tree.
    set_mode(&building, 0o755);
    eprintln!(
        "building the test package repositories in {}",
        root.display()
    );
    build_apt_legacy(&building);
    build_rpm_legacy(&building);
    for version in PKGS {
        build_pkgs(&building, version);
    }
    build_arch(&building, user);
    fs::write(building.join(".complete"), &key).expect("mark the repositories complete");
    fs::rename(&building, &root).expect("move the repositories into place");
    super::base::remove_other_keys(&cache, "repos-", &root);
    root
}

/// One file of a package: its path on the node, content, mode.
struct File {
    path: String,
    content: Vec<u8>,
    mode: u32,
}

fn file(path: &str, content: impl Into<Vec<u8>>, mode: u32) -> File {
    File {
        path: path.to_string(),
        content: content.into(),
        mode,
    }
}

fn standin(name: &str) -> Vec<u8> {
    fs::read(standins_dir().join(name)).unwrap_or_else(|e| panic!("read stand-in {name}: {e}"))
}

fn unit(name: &str) -> Vec<u8> {
    standin(&format!("units/{name}"))
}

/// The version's data file with its exact version in front.
fn version_toml(version: &str) -> Vec<u8> {
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let data = standin(&format!("versions/{}.toml", minor.join(".")));
    let mut text = format!("version = \"{version}\"\n").into_bytes();
    text.extend(data);
    text
}

fn launcher(lib: &str, module: &str) -> Vec<u8> {
    format!(
        "#!/usr/bin/python3\nimport sys\nsys.path.insert(0, \"/usr/lib/{lib}\")\nimport standin, {module}\nstandin.run_main({module}.main)\n"
    )
    .into_bytes()
}

/// The stand-in tool `tool` (kubeadm, kubelet, crio) of `version` under /usr/lib/`lib`.
fn tool_files(tool: &str, module: &str, lib: &str, version: &str) -> Vec<File> {
    vec![
        file(&format!("/usr/bin/{tool}"), launcher(lib, module), 0o755),
        file(
            &format!("/usr/lib/{lib}/standin.py"),
            standin("standin.py"),
            0o644,
        ),
        file(
            &format!("/usr/lib/{lib}/{module}.py"),
            standin(&format!("{module}.py")),
            0o644,
        ),
        file(
            &format!("/usr/lib/{lib}/version.toml"),
            version_toml(version),
            0o644,
        ),
    ]
}

fn kubectl_files(lib: &str, version: &str) -> Vec<File> {
    vec![
        file("/usr/bin/kubectl", standin("kubectl.sh"), 0o755),
        file(
            &format!("/usr/lib/{lib}/version"),
            format!("{version}\n"),
            0o644,
        ),
    ]
}

/// kubeadm, kubelet, kubectl of `version` as the Kubernetes deb/rpm packages lay them out:
/// the drop-in in /etc/systemd/system (legacy deb) or the unit directory (rpm, pkgs.k8s.io).
fn kubernetes_packages(version: &str, layout: Layout) -> Vec<(&'static str, Vec<File>)> {
    let (unit_dir, drop_in) = match layout {
        Layout::AptLegacy => (
            "/lib/systemd/system",
            ("/etc/systemd/system", "10-kubeadm-deb.conf"),
        ),
        Layout::AptPkgs => (
            "/usr/lib/systemd/system",
            ("/usr/lib/systemd/system", "10-kubeadm-deb.conf"),
        ),
        Layout::RpmLegacy | Layout::RpmPkgs => (
            "/usr/lib/systemd/system",
            ("/usr/lib/systemd/system", "10-kubeadm-rpm.conf"),
        ),
        Layout::Arch => unreachable!("Arch ships one kubernetes package"),
    };
    let mut kubelet = tool_files("kubelet", "kubelet", "kubelet", version);
    kubelet.push(file(
        &format!("{unit_dir}/kubelet.service"),
        unit("kubelet.service"),
        0o644,
    ));
    let mut kubeadm = tool_files("kubeadm", "kubeadm", "kubeadm", version);
    kubeadm.push(file(
        &format!("{}/kubelet.service.d/10-kubeadm.conf", drop_in.0),
        unit(drop_in.1),
        0o644,
    ));
    vec![
        ("kubelet", kubelet),
        ("kubeadm", kubeadm),
        ("kubectl", kubectl_files("kubectl", version)),
    ]
}

// -- deb ----------------------------------------------------------------------------------

fn build_deb(out_dir: &Path, name: &str, version: &str, files: &[File], depends: &str) -> PathBuf {
    let tree = tempfile::tempdir().expect("a package tree");
    for f in files {
        write_file(
            &tree.path().join(f.path.trim_start_matches('/')),
            &f.content,
            f.mode,
        );
    }
    let mut control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: krun tests <tests@krun.invalid>\nSection: misc\nPriority: optional\nDescription: {name} stand-in for krun's tests\n"
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    let conffiles: Vec<&str> = files
        .iter()
        .filter(|f| f.path.starts_with("/etc/"))
        .map(|f| f.path.as_str())
        .collect();
    write_file(
        &tree.path().join("DEBIAN/control"),
        control.as_bytes(),
        0o644,
    );
    if !conffiles.is_empty() {
        write_file(
            &tree.path().join("DEBIAN/conffiles"),
            (conffiles.join("\n") + "\n").as_bytes(),
            0o644,
        );
    }
    fs::create_dir_all(out_dir).expect("create the pool");
    let deb = out_dir.join(format!("{name}_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zgzip"])
        .arg(tree.path())
        .arg(&deb));
    deb
}

/// `Packages` for the debs under `dir` (paths relative to `base`), gzipped beside it.
fn scan_packages(base: &Path, dir: &str, packages_file: &Path) {
    let output = Command::new("dpkg-scanpackages")
        .args(["-m", dir, "/dev/null"])
        .current_dir(base)
        .output()
        .expect("run dpkg-scanpackages");
    assert!(output.status.success(), "dpkg-scanpackages: {output:?}");
    if let Some(parent) = packages_file.parent() {
        fs::create_dir_all(parent).expect("create the index directory");
    }
    fs::write(packages_file, &output.stdout).expect("write Packages");
}

/// A `Release` file listing the indexes under `dir` (apt wants one even from trusted sources).
fn release_file(dir: &Path, suite: Option<(&str, &str)>) {
    let mut indexes = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current)
            .expect("read the repository")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "Packages") {
                indexes.push(path);
            }
        }
    }
    indexes.sort();
    let mut text = String::from("Origin: krun tests\nLabel: krun tests\n");
    if let Some((suite, component)) = suite {
        text.push_str(&format!(
            "Suite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: {component}\n"
        ));
    }
    text.push_str("SHA256:\n");
    for index in indexes {
        let content = fs::read(&index).expect("read Packages");
        text.push_str(&format!(
            " {} {} {}\n",
            hex::encode(Sha256::digest(&content)),
            content.len(),
            index.strip_prefix(dir).unwrap().display()
        ));
    }
    fs::write(dir.join("Release"), text).expect("write Release");
}

fn build_apt_legacy(repos: &Path) {
    let base = repos.join("apt-legacy");
    for version in LEGACY {
        let package_version = Layout::AptLegacy.package_version(version);
        for (name, files) in kubernetes_packages(version, Layout::AptLegacy) {
            let depends = if name == "kubeadm" {
                "kubelet (>= 1.13.0), kubectl (>= 1.13.0)"
            } else {
                ""
            };
            build_deb(
                &base.join("pool/main"),
                name,
                &package_version,
                &files,
                depends,
            );
        }
    }
    let suite = base.join("dists/kubernetes-xenial");
    scan_packages(&base, "pool", &suite.join("main/binary-amd64/Packages"));
    release_file(&suite, Some(("kubernetes-xenial", "main")));
}

fn build_pkgs(repos: &Path, version: &str) {
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let dir = repos.join(format!("pkgs/v{}", minor.join(".")));
    let deb_dir = dir.join("deb");
    let deb_version = Layout::AptPkgs.package_version(version);
    for (name, files) in kubernetes_packages(version, Layout::AptPkgs) {
        let depends = if name == "kubeadm" {
            "kubelet (>= 1.19.0), kubectl (>= 1.19.0)"
        } else {
            ""
        };
        build_deb(&deb_dir, name, &deb_version, &files, depends);
    }
    scan_packages(&deb_dir, ".", &deb_dir.join("Packages"));
    release_file(&deb_dir, None);
    let rpm_dir = dir.join("rpm");
    for (name, files) in kubernetes_packages(version, Layout::RpmPkgs) {
        build_rpm(&rpm_dir, name, version, "150500.1.1", &files);
    }
    run(Command::new("createrepo_c").arg("--quiet").arg(&rpm_dir));
}

// -- rpm ----------------------------------------------------------------------------------

fn build_rpm(out_dir: &Path, name: &str, version: &str, release: &str, files: &[File]) {
    let top = tempfile::tempdir().expect("an rpmbuild tree");
    let tree = top.path().join("tree");
    for f in files {
        write_file(
            &tree.join(f.path.trim_start_matches('/')),
            &f.content,
            f.mode,
        );
    }
    let listed: String = files
        .iter()
        .map(|f| {
            if f.path.starts_with("/etc/") {
                format!("%config(noreplace) {}\n", f.path)
            } else {
                format!("{}\n", f.path)
            }
        })
        .collect();
    let requires = if name == "kubeadm" {
        "Requires: kubelet >= 1.13.0, kubectl >= 1.13.0\n"
    } else {
        ""
    };
    // No automatic dependencies (nothing in a test node's rpm database provides python3), no
    // byte-compiling or stripping of the stand-ins' scripts.
    let spec = format!(
        "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: {name} stand-in for krun's tests\n\
         License: ASL 2.0\nBuildArch: x86_64\nAutoReqProv: no\n{requires}\
         %global debug_package %{{nil}}\n%global __os_install_post %{{nil}}\n\n\
         %description\n{name} stand-in for krun's tests.\n\n\
         %install\ncp -a {tree}/. %{{buildroot}}/\n\n%files\n{listed}",
        tree = tree.display()
    );
    let spec_path = top.path().join(format!("{name}.spec"));
    fs::write(&spec_path, spec).expect("write the spec");
    run(Command::new("rpmbuild")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", out_dir.display()))
        .arg("--define")
        .arg("_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
        .arg("-bb")
        .arg(&spec_path));
}

fn build_rpm_legacy(repos: &Path) {
    let dir = repos.join("rpm-legacy");
    for version in LEGACY {
        for (name, files) in kubernetes_packages(version, Layout::RpmLegacy) {
            build_rpm(&dir, name, version, "0", &files);
        }
    }
    run(Command::new("createrepo_c").arg("--quiet").arg(&dir));
}

// -- pacman -------------------------------------------------------------------------------

/// Arch's `kubernetes` package: all three tools, kubelet's unit reading /etc/kubernetes/kubelet.env.
fn arch_kubernetes_files(version: &str) -> Vec<File> {
    let mut files = Vec::new();
    for (tool, module) in [("kubelet", "kubelet"), ("kubeadm", "kubeadm")] {
        files.extend(
            tool_files(tool, module, "kubernetes", version)
                .into_iter()
                .filter(|f| {
                    !(tool == "kubeadm"
                        && (f.path.ends_with("standin.py") || f.path.ends_with("version.toml")))
                }),
        );
    }
    files.extend(kubectl_files("kubernetes", version));
    files.push(file(
        "/usr/lib/systemd/system/kubelet.service",
        unit("kubelet.service"),
        0o644,
    ));
    files.push(file(
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        unit("10-kubeadm-arch.conf"),
        0o644,
    ));
    files.push(file(
        "/etc/kubernetes/kubelet.env",
        unit("kubelet.env"),
        0o644,
    ));
    files
}

fn arch_crio_files(version: &str) -> Vec<File> {
    let mut files = tool_files("crio", "crio", "cri-o", version);
    files.push(file(
        "/usr/lib/systemd/system/crio.service",
        unit("crio.service"),
        0o644,
    ));
    files.push(file(
        "/etc/crio/crio.conf",
        "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
        0o644,
    ));
    files
}

/// `makepkg` as `user` (it refuses root) on a PKGBUILD that installs `files`.
fn build_pacman(
    out_dir: &Path,
    user: &str,
    name: &str,
    version: &str,
    files: &[File],
    extension: &str,
) -> PathBuf {
    let work = tempfile::Builder::new()
        .prefix("makepkg-")
        .tempdir()
        .expect("a makepkg directory");
    set_mode(work.path(), 0o755);
    let tree = work.path().join("tree");
    for f in files {
        write_file(
            &tree.join(f.path.trim_start_matches('/')),
            &f.content,
            f.mode,
        );
    }
    let backup: Vec<String> = files
        .iter()
        .filter(|f| f.path.starts_with("/etc/"))
        .map(|f| format!("'{}'", f.path.trim_start_matches('/')))
        .collect();
    let pkgbuild = format!(
        "pkgname={name}\npkgver={version}\npkgrel=1\npkgdesc='{name} stand-in for krun tests'\n\
         arch=('aarch64')\nlicense=('Apache')\nbackup=({})\noptions=('!strip' '!debug' '!emptydirs')\n\n\
         package() {{\n    cp -a \"$startdir/tree/.\" \"$pkgdir/\"\n}}\n",
        backup.join(" ")
    );
    fs::write(work.path().join("PKGBUILD"), pkgbuild).expect("write PKGBUILD");
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(work.path()));
    run(Command::new("runuser")
        .args(["-u", user, "--", "env"])
        .arg("CARCH=aarch64")
        .arg(format!("PKGEXT={extension}"))
        .arg(format!("BUILDDIR={}/build", work.path().display()))
        .arg(format!("PKGDEST={}", work.path().display()))
        .arg("SRCDEST=/tmp")
        .args([
            "makepkg",
            "--nodeps",
            "--noconfirm",
            "--skipinteg",
            "--force",
        ])
        .current_dir(work.path()));
    let built = work
        .path()
        .join(format!("{name}-{version}-1-aarch64{extension}"));
    fs::create_dir_all(out_dir).expect("create the package directory");
    let target = out_dir.join(built.file_name().unwrap());
    fs::copy(&built, &target).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    target
}

fn build_arch(repos: &Path, user: &str) {
    let dir = repos.join("arch");
    let mut built = Vec::new();
    for version in ARCH_KUBERNETES {
        built.push(build_pacman(
            &dir,
            user,
            "kubernetes",
            version,
            &arch_kubernetes_files(version),
            ".pkg.tar.zst",
        ));
    }
    for version in ARCH_CRIO {
        built.push(build_pacman(
            &dir,
            user,
            "cri-o",
            version,
            &arch_crio_files(version),
            ".pkg.tar.zst",
        ));
    }
    let mut add = Command::new("repo-add");
    add.arg("--quiet")
        .arg(dir.join("kubernetes.db.tar.gz"))
        .args(&built);
    run(&mut add);
    let single = Path::new(ARCH_FILE);
    build_pacman(
        &repos.join(single.parent().unwrap()),
        user,
        "kubernetes",
        "1.12.1",
        &arch_kubernetes_files("1.12.1"),
        ".pkg.tar.xz",
    );
}

fn write_file(path: &Path, content: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create a package directory");
        set_mode_tree(parent);
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

fn set_mode_tree(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}
