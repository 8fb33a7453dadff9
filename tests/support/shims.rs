//! Stand-ins for the node commands that cannot run in a test machine: systemctl, the package
//! managers, and the version queries of kubelet/kubeadm.
//!
//! They are small POSIX sh scripts in each node's `bin/`, first on the session PATH, keeping
//! their state in `<node>/state` so that a query after a change tells the truth
//! (`dpkg-query -W -f='${Version}' kubelet` after `apt-get install kubelet=1.21.14-00`).
//! Output formats and exit codes follow the real tools for the subset krun uses, including
//! their refusals: no root, no `-y`, unknown package or version, held package, unknown unit.
//!
//! Every node gets every package manager script. The ones that do not belong to the node's OS
//! answer "command not found" (exit 127), as the real node would, and that also guarantees a
//! playbook that picks the wrong manager can never reach the real apt-get of the test machine.
//!
//! State layout (all plain text):
//! - `state/pkgs/<name>`: installed version (`1.21.14-00`, `1.21.14-0`, `1.21.14-1`)
//! - `state/held/<name>`: apt-mark hold
//! - `state/units/<unit>`: `<active|inactive|failed> <enabled|disabled>`
//! - `state/changes.log`: one line per mutating command, in order
//! - `repo/<name>`: versions the node's package repository offers, one per line (not state)

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Which package manager a node's OS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageFamily {
    Apt,
    /// dnf, with yum as an alias (RHEL 8+ and derivatives).
    Dnf,
    /// yum only (CentOS 7).
    Yum,
    Pacman,
}

impl PackageFamily {
    fn name(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
            Self::Pacman => "pacman",
        }
    }
}

/// Writes every shim into `bin`, wired to the state under `node_dir`.
pub fn install(bin: &Path, node_dir: &Path, family: PackageFamily) -> io::Result<()> {
    fs::create_dir_all(bin)?;
    let header = COMMON
        .replace("__NODE_DIR__", &sh_quote(&node_dir.to_string_lossy()))
        .replace("__FAMILY__", family.name());
    for (name, body) in SHIMS {
        let path = bin.join(name);
        fs::write(&path, format!("{header}\n{body}"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Helpers shared by every shim.
const COMMON: &str = r#"#!/bin/sh
# Test stand-in (see tests/support/shims.rs). State: $NODE_DIR/state.
NODE_DIR=__NODE_DIR__
FAMILY=__FAMILY__
STATE="$NODE_DIR/state"
REPO="$NODE_DIR/repo"
ARCH=$(uname -m)
TOOL=$(basename "$0")

is_root() { [ "$(id -u)" = 0 ]; }
record() { printf '%s\n' "$*" >>"$STATE/changes.log"; }
installed_version() { cat "$STATE/pkgs/$1" 2>/dev/null; }
in_repo() { [ -f "$REPO/$1" ]; }
repo_has() { in_repo "$1" && grep -qxF -- "$2" "$REPO/$1"; }
latest_version() { sort -V "$REPO/$1" | tail -n 1; }
# A version with its release cut off: 1.21.14-00 -> 1.21.14
upstream() { printf '%s\n' "${1%-*}"; }
set_installed() {
    mkdir -p "$STATE/pkgs" && printf '%s\n' "$2" >"$STATE/pkgs/$1"
    unit=$(package_unit "$1")
    if [ -n "$unit" ] && [ ! -f "$STATE/units/$unit" ]; then
        mkdir -p "$STATE/units" && echo "active enabled" >"$STATE/units/$unit"
    fi
}
remove_installed() { rm -f "$STATE/pkgs/$1"; }
package_unit() {
    case "$1" in
        kubelet) echo kubelet.service ;;
        containerd | containerd.io) echo containerd.service ;;
        cri-o) echo crio.service ;;
        docker-ce | docker.io | docker) echo docker.service ;;
        etcd | etcd-server) echo etcd.service ;;
    esac
}
# "2 < 1" in version order (sort -V, close enough to dpkg/rpm for test data)
version_lt() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]; }
only_on() {
    for family in "$@"; do
        [ "$FAMILY" = "$family" ] && return 0
    done
    echo "bash: line 1: $TOOL: command not found" >&2
    exit 127
}
"#;

const SHIMS: &[(&str, &str)] = &[
    ("systemctl", SYSTEMCTL),
    ("apt-get", APT_GET),
    ("apt-mark", APT_MARK),
    ("apt-cache", APT_CACHE),
    ("dpkg-query", DPKG_QUERY),
    ("dpkg", DPKG),
    ("dnf", DNF),
    ("yum", DNF),
    ("rpm", RPM),
    ("pacman", PACMAN),
    ("kubelet", KUBELET),
    ("kubeadm", KUBEADM),
];

const SYSTEMCTL: &str = r#"
quiet=0 now=0 value=0 props= verb= units=
while [ $# -gt 0 ]; do
    case "$1" in
        -q | --quiet) quiet=1 ;;
        --now) now=1 ;;
        --value) value=1 ;;
        -p | --property) shift; props="$props ${1:-}" ;;
        --property=*) props="$props ${1#--property=}" ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else units="$units $1"; fi ;;
    esac
    shift
done
props=$(printf '%s' "$props" | tr ',' ' ')

unit_name() { case "$1" in *.*) echo "$1" ;; *) echo "$1.service" ;; esac; }
known() { [ -f "$STATE/units/$1" ]; }
active_of() { if known "$1"; then cut -d' ' -f1 "$STATE/units/$1"; else echo inactive; fi; }
enabled_of() { cut -d' ' -f2 "$STATE/units/$1"; }
set_unit() { mkdir -p "$STATE/units" && echo "$2 $3" >"$STATE/units/$1"; }
say() { [ "$quiet" = 1 ] || printf '%s\n' "$*"; }
need_root() {
    if ! is_root; then
        echo "Failed to $verb $1: Access denied" >&2
        echo "See system logs and 'systemctl status $1' for details." >&2
        exit 1
    fi
}

case "$verb" in
    start | restart | reload | try-restart | reload-or-restart | stop)
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                if [ "$verb" = stop ]; then
                    echo "Failed to stop $u: Unit $u not loaded." >&2
                else
                    echo "Failed to $verb $u: Unit $u not found." >&2
                fi
                exit 5
            fi
            need_root "$u"
            if [ "$verb" = stop ]; then state=inactive; else state=active; fi
            set_unit "$u" "$state" "$(enabled_of "$u")"
            record "systemctl $verb $u"
        done
        ;;
    enable | disable)
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Failed to $verb unit: Unit file $u does not exist." >&2
                exit 1
            fi
            need_root "$u"
            active=$(active_of "$u")
            if [ "$verb" = enable ]; then
                echo "Created symlink /etc/systemd/system/multi-user.target.wants/$u → /lib/systemd/system/$u." >&2
                [ "$now" = 1 ] && active=active
                set_unit "$u" "$active" enabled
            else
                echo "Removed \"/etc/systemd/system/multi-user.target.wants/$u\"." >&2
                [ "$now" = 1 ] && active=inactive
                set_unit "$u" "$active" disabled
            fi
            if [ "$now" = 1 ]; then record "systemctl $verb --now $u"; else record "systemctl $verb $u"; fi
        done
        ;;
    is-active)
        rc=3
        for u in $units; do
            state=$(active_of "$(unit_name "$u")")
            say "$state"
            [ "$state" = active ] && rc=0
        done
        exit $rc
        ;;
    is-failed)
        rc=1
        for u in $units; do
            state=$(active_of "$(unit_name "$u")")
            say "$state"
            [ "$state" = failed ] && rc=0
        done
        exit $rc
        ;;
    is-enabled)
        rc=1
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Failed to get unit file state for $u: No such file or directory" >&2
                exit 1
            fi
            state=$(enabled_of "$u")
            say "$state"
            [ "$state" = enabled ] && rc=0
        done
        exit $rc
        ;;
    daemon-reload)
        if ! is_root; then
            echo "Failed to reload daemon: Access denied" >&2
            exit 1
        fi
        record "systemctl daemon-reload"
        ;;
    status)
        rc=0
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Unit $u could not be found." >&2
                exit 4
            fi
            active=$(active_of "$u")
            case "$active" in
                active) line="active (running)" ;;
                failed) line="failed (Result: exit-code)"; rc=3 ;;
                *) line="inactive (dead)"; rc=3 ;;
            esac
            echo "● $u"
            echo "     Loaded: loaded (/lib/systemd/system/$u; $(enabled_of "$u"); preset: enabled)"
            echo "     Active: $line"
        done
        exit $rc
        ;;
    show)
        for u in $units; do
            u=$(unit_name "$u")
            if known "$u"; then load=loaded; file=$(enabled_of "$u"); else load=not-found; file=; fi
            active=$(active_of "$u")
            case "$active" in active) sub=running ;; failed) sub=failed ;; *) sub=dead ;; esac
            [ -n "$props" ] || props="Id LoadState ActiveState SubState UnitFileState"
            for p in $props; do
                case "$p" in
                    Id) v=$u ;;
                    LoadState) v=$load ;;
                    ActiveState) v=$active ;;
                    SubState) v=$sub ;;
                    UnitFileState) v=$file ;;
                    *) v= ;;
                esac
                if [ "$value" = 1 ]; then echo "$v"; else echo "$p=$v"; fi
            done
        done
        ;;
    "")
        echo "Missing command verb (this stand-in lists no units)." >&2
        exit 1
        ;;
    *)
        echo "Unknown command verb $verb." >&2
        exit 1
        ;;
esac
exit 0
"#;

const APT_GET: &str = r#"
only_on apt
yes=0 downgrades=0 change_held=0 verb= args=
while [ $# -gt 0 ]; do
    case "$1" in
        -y | --yes | --assume-yes | -qy | -yq) yes=1 ;;
        --allow-downgrades) downgrades=1 ;;
        --allow-change-held-packages) change_held=1 ;;
        -o | --option | -c | --config-file | -t | --target-release) shift ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
        echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?" >&2
        exit 100
    fi
}
case "$verb" in
    update)
        need_root
        echo "Hit:1 http://deb.debian.org/debian stable InRelease"
        echo "Reading package lists..."
        record "apt-get update"
        ;;
    install)
        need_root
        plan=
        for spec in $args; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "Reading package lists..."
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            case "$spec" in
                *=*) version=${spec#*=}
                    if ! repo_has "$name" "$version"; then
                        echo "Reading package lists..."
                        echo "E: Version '$version' for '$name' was not found" >&2
                        exit 100
                    fi ;;
                *) version=$(latest_version "$name") ;;
            esac
            current=$(installed_version "$name")
            [ "$current" = "$version" ] && continue
            if [ -f "$STATE/held/$name" ] && [ "$change_held" = 0 ]; then
                echo "E: Held packages were changed and -y was used without --allow-change-held-packages." >&2
                exit 100
            fi
            if [ -n "$current" ] && version_lt "$version" "$current" && [ "$downgrades" = 0 ]; then
                echo "E: Packages were downgraded and -y was used without --allow-downgrades." >&2
                exit 100
            fi
            plan="$plan $name=$version"
        done
        echo "Reading package lists..."
        echo "Building dependency tree..."
        if [ -z "$plan" ]; then
            for spec in $args; do
                name=${spec%%=*}
                echo "$name is already the newest version ($(installed_version "$name"))."
            done
            echo "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
            exit 0
        fi
        if [ "$yes" = 0 ]; then
            echo "Do you want to continue? [Y/n] Abort."
            exit 1
        fi
        for item in $plan; do
            name=${item%%=*} version=${item#*=}
            echo "Setting up $name ($version) ..."
            set_installed "$name" "$version"
            record "apt-get install $name=$version"
        done
        ;;
    remove | purge)
        need_root
        for name in $args; do
            if [ -n "$(installed_version "$name")" ]; then
                echo "Removing $name ($(installed_version "$name")) ..."
                remove_installed "$name"
                record "apt-get $verb $name"
            else
                echo "Package '$name' is not installed, so not removed"
            fi
        done
        ;;
    "")
        echo "E: No command given" >&2
        exit 100
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
exit 0
"#;

const APT_MARK: &str = r#"
only_on apt
verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
    hold | unhold)
        if ! is_root; then
            echo "E: Could not create temporary file for /var/lib/apt/extended_states - mkstemp (13: Permission denied)" >&2
            exit 100
        fi
        for name in "$@"; do
            if [ -z "$(installed_version "$name")" ] && ! in_repo "$name"; then
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            if [ "$verb" = hold ]; then
                mkdir -p "$STATE/held" && : >"$STATE/held/$name"
                echo "$name set on hold."
            else
                rm -f "$STATE/held/$name"
                echo "Canceled hold on $name."
            fi
            record "apt-mark $verb $name"
        done
        ;;
    showhold)
        ls "$STATE/held" 2>/dev/null | sort
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
"#;

const APT_CACHE: &str = r#"
only_on apt
verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
    madison)
        for name in "$@"; do
            in_repo "$name" || { echo "N: Unable to locate package $name" >&2; continue; }
            sort -rV "$REPO/$name" | while read -r version; do
                printf '%10s | %s | https://pkgs.k8s.io/core:/stable:/deb  Packages\n' "$name" "$version"
            done
        done
        ;;
    policy)
        for name in "$@"; do
            in_repo "$name" || { echo "N: Unable to locate package $name" >&2; continue; }
            echo "$name:"
            echo "  Installed: $(installed_version "$name" || true)" | sed 's/Installed: $/Installed: (none)/'
            echo "  Candidate: $(latest_version "$name")"
            echo "  Version table:"
            sort -rV "$REPO/$name" | while read -r version; do
                echo "     $version 500"
                echo "        500 https://pkgs.k8s.io/core:/stable:/deb  Packages"
            done
        done
        ;;
    show)
        found=0
        for name in "$@"; do
            in_repo "$name" || continue
            found=1
            sort -rV "$REPO/$name" | while read -r version; do
                printf 'Package: %s\nVersion: %s\nArchitecture: %s\n\n' "$name" "$version" "$ARCH"
            done
        done
        if [ "$found" = 0 ]; then
            echo "E: No packages found" >&2
            exit 100
        fi
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
exit 0
"#;

const DPKG_QUERY: &str = r#"
only_on apt
format='${binary:Package}\t${Version}\n' mode= names=
while [ $# -gt 0 ]; do
    case "$1" in
        -W | --show) mode=show ;;
        -s | --status) mode=status ;;
        -f | --showformat) shift; format=$1 ;;
        -f*) format=${1#-f}; format=${format#=} ;;
        --showformat=*) format=${1#--showformat=} ;;
        -*) ;;
        *) names="$names $1" ;;
    esac
    shift
done
rc=0
for name in $names; do
    version=$(installed_version "$name")
    if [ -z "$version" ]; then
        if [ "$mode" = status ]; then
            echo "dpkg-query: package '$name' is not installed and no information is available" >&2
        else
            echo "dpkg-query: no packages found matching $name" >&2
        fi
        rc=1
        continue
    fi
    if [ "$mode" = status ]; then
        printf 'Package: %s\nStatus: install ok installed\nArchitecture: %s\nVersion: %s\n' "$name" "$ARCH" "$version"
        continue
    fi
    out=$(printf '%s' "$format" | sed \
        -e "s|\${binary:Package}|$name|g" \
        -e "s|\${Package}|$name|g" \
        -e "s|\${Version}|$version|g" \
        -e "s|\${Architecture}|$ARCH|g" \
        -e "s|\${Status}|install ok installed|g" \
        -e "s|\${db:Status-Abbrev}|ii |g")
    printf '%b' "$out"
done
exit $rc
"#;

const DPKG: &str = r#"
only_on apt
case "${1:-}" in
    -i | --install)
        shift
        if ! is_root; then
            echo "dpkg: error: requested operation requires superuser privilege" >&2
            exit 2
        fi
        for file in "$@"; do
            if [ ! -r "$file" ]; then
                echo "dpkg: error: cannot access archive '$file': No such file or directory" >&2
                exit 1
            fi
            base=$(basename "$file" .deb)
            name=${base%%_*} rest=${base#*_}
            version=${rest%_*}
            echo "Unpacking $name ($version) ..."
            echo "Setting up $name ($version) ..."
            set_installed "$name" "$version"
            record "dpkg -i $file"
        done
        ;;
    -s | --status | -l | --list)
        exec dpkg-query "$@"
        ;;
    *)
        echo "dpkg: error: need an action option" >&2
        exit 2
        ;;
esac
"#;

/// dnf and yum share one script; yum on a dnf node is the alias it is on RHEL 8+.
const DNF: &str = r#"
case "$TOOL" in
    dnf) only_on dnf ;;
    *) only_on dnf yum ;;
esac
yes=0 verb= args= showdups=0
while [ $# -gt 0 ]; do
    case "$1" in
        -y | --assumeyes) yes=1 ;;
        --showduplicates) showdups=1 ;;
        -e | -d | --setopt | --disablerepo | --enablerepo | --disableexcludes | --releasever) shift ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "Error: This command has to be run with superuser privileges (under the root user on most systems)." >&2
        exit 1
    fi
}
# Sets name and version from a spec: name, name-version or name-version-release.
resolve() {
    spec=$1 name= version=
    for candidate in $(ls "$REPO" 2>/dev/null | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-); do
        if [ "$spec" = "$candidate" ]; then
            name=$candidate version=$(latest_version "$candidate")
            return 0
        fi
        case "$spec" in
            "$candidate"-*)
                wanted=${spec#"$candidate"-}
                version=$(grep -xF -e "$wanted" "$REPO/$candidate" || grep -F -e "$wanted-" "$REPO/$candidate" | grep "^$wanted-" | sort -V | tail -n 1)
                if [ -n "$version" ]; then
                    name=$candidate
                    return 0
                fi ;;
        esac
    done
    return 1
}
case "$verb" in
    install | upgrade | update | downgrade | reinstall)
        need_root
        plan=
        if [ -z "$args" ] && [ "$verb" != install ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                in_repo "$name" && args="$args $name"
            done
        fi
        for spec in $args; do
            if ! resolve "$spec"; then
                echo "No match for argument: $spec" >&2
                echo "Error: Unable to find a match: $spec" >&2
                exit 1
            fi
            [ "$(installed_version "$name")" = "$version" ] && continue
            plan="$plan $name=$version"
        done
        echo "Dependencies resolved."
        if [ -z "$plan" ]; then
            for spec in $args; do
                resolve "$spec" && echo "Package $name-$(installed_version "$name").$ARCH is already installed."
            done
            echo "Nothing to do."
            echo "Complete!"
            exit 0
        fi
        if [ "$yes" = 0 ]; then
            echo "Is this ok [y/N]: Operation aborted."
            exit 1
        fi
        echo "Installed:"
        for item in $plan; do
            name=${item%%=*} version=${item#*=}
            echo "  $name-$version.$ARCH"
            set_installed "$name" "$version"
            record "$TOOL $verb $name-$version"
        done
        echo
        echo "Complete!"
        ;;
    remove | erase)
        need_root
        for name in $args; do
            if [ -z "$(installed_version "$name")" ]; then
                echo "No match for argument: $name" >&2
                echo "Error: No packages marked for removal." >&2
                exit 1
            fi
            remove_installed "$name"
            record "$TOOL remove $name"
        done
        echo "Complete!"
        ;;
    list)
        what=all
        case "$args" in
            " installed"*) what=installed; args=${args# installed} ;;
            " available"*) what=available; args=${args# available} ;;
        esac
        found=0
        if [ "$what" != available ]; then
            for name in $args; do
                version=$(installed_version "$name")
                [ -n "$version" ] || continue
                [ "$found" = 0 ] && echo "Installed Packages"
                found=1
                printf '%-40s %-20s %s\n' "$name.$ARCH" "$version" "@kubernetes"
            done
        fi
        if [ "$what" != installed ]; then
            header=0
            for name in $args; do
                in_repo "$name" || continue
                if [ "$showdups" = 1 ]; then versions=$(sort -V "$REPO/$name"); else versions=$(latest_version "$name"); fi
                for version in $versions; do
                    [ "$showdups" = 0 ] && [ "$version" = "$(installed_version "$name")" ] && continue
                    [ "$header" = 0 ] && echo "Available Packages"
                    header=1 found=1
                    printf '%-40s %-20s %s\n' "$name.$ARCH" "$version" "kubernetes"
                done
            done
        fi
        if [ "$found" = 0 ]; then
            echo "Error: No matching Packages to list" >&2
            exit 1
        fi
        ;;
    makecache)
        echo "Metadata cache created."
        ;;
    check-update)
        ;;
    "")
        echo "Error: need a command" >&2
        exit 1
        ;;
    *)
        echo "No such command: $verb. Please use /usr/bin/$TOOL --help" >&2
        exit 1
        ;;
esac
exit 0
"#;

const RPM: &str = r#"
only_on dnf yum
format= mode= names= all=0
while [ $# -gt 0 ]; do
    case "$1" in
        -q | --query) mode=query ;;
        -qa) mode=query all=1 ;;
        -a | --all) all=1 ;;
        -i | --install | -U | --upgrade | -Uvh | -ivh | -Uv | -iv) mode=install ;;
        --qf | --queryformat) shift; format=$1 ;;
        --qf=* | --queryformat=*) format=${1#*=} ;;
        -*) ;;
        *) names="$names $1" ;;
    esac
    shift
done
show() {
    name=$1 version=$2
    if [ -z "$format" ]; then
        echo "$name-$version.$ARCH"
        return
    fi
    out=$(printf '%s' "$format" | sed \
        -e "s|%{NAME}|$name|g" \
        -e "s|%{VERSION}|${version%-*}|g" \
        -e "s|%{RELEASE}|${version##*-}|g" \
        -e "s|%{ARCH}|$ARCH|g" \
        -e "s|%{EPOCH}|(none)|g")
    printf '%b' "$out"
}
case "$mode" in
    query)
        if [ "$all" = 1 ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                show "$name" "$(installed_version "$name")"
            done
            exit 0
        fi
        rc=0
        for name in $names; do
            version=$(installed_version "$name")
            if [ -z "$version" ]; then
                echo "package $name is not installed"
                rc=1
            else
                show "$name" "$version"
            fi
        done
        exit $rc
        ;;
    install)
        if ! is_root; then
            echo "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)" >&2
            exit 1
        fi
        for file in $names; do
            if [ ! -r "$file" ]; then
                echo "error: open of $file failed: No such file or directory" >&2
                exit 1
            fi
            base=$(basename "$file" .rpm)
            base=${base%.*}
            release=${base##*-} rest=${base%-*}
            version=${rest##*-} name=${rest%-*}
            set_installed "$name" "$version-$release"
            record "rpm -U $file"
        done
        ;;
    *)
        echo "rpm: no operation specified" >&2
        exit 1
        ;;
esac
"#;

const PACMAN: &str = r#"
only_on pacman
op= flags= targets=
while [ $# -gt 0 ]; do
    case "$1" in
        --noconfirm | --needed | --quiet | --color=*) ;;
        --sync) op=S ;;
        --upgrade) op=U ;;
        --query) op=Q ;;
        --remove) op=R ;;
        --*) ;;
        -*) letters=${1#-}
            case "$letters" in
                S*) op=S ;; U*) op=U ;; Q*) op=Q ;; R*) op=R ;;
            esac
            flags="$flags${letters#?}" ;;
        *) targets="$targets $1" ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "error: you cannot perform this operation unless you are root." >&2
        exit 1
    fi
}
has_flag() { case "$flags" in *"$1"*) return 0 ;; esac; return 1; }
case "$op" in
    S)
        need_root
        if has_flag y; then
            echo ":: Synchronizing package databases..."
            echo " core is up to date"
            echo " extra is up to date"
        fi
        if has_flag u; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                in_repo "$name" && targets="$targets $name"
            done
        fi
        for spec in $targets; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "error: target not found: $spec" >&2
                exit 1
            fi
            version=$(latest_version "$name")
            case "$spec" in
                *=*) if [ "${spec#*=}" != "$version" ]; then
                        echo "error: target not found: $spec" >&2
                        exit 1
                    fi ;;
            esac
        done
        for spec in $targets; do
            name=${spec%%=*}
            version=$(latest_version "$name")
            if [ "$(installed_version "$name")" = "$version" ]; then
                echo "warning: $name-$version is up to date -- reinstalling"
            fi
            echo "installing $name..."
            set_installed "$name" "$version"
            record "pacman -S $name"
        done
        ;;
    U)
        need_root
        for file in $targets; do
            if [ ! -r "$file" ]; then
                echo "error: '$file': could not find or read package" >&2
                exit 1
            fi
            base=$(basename "$file")
            base=${base%.pkg.tar*}
            rest=${base%-*}
            release=${rest##*-} rest=${rest%-*}
            version=${rest##*-} name=${rest%-*}
            echo "loading packages..."
            echo "installing $name..."
            set_installed "$name" "$version-$release"
            record "pacman -U $file"
        done
        ;;
    Q)
        if [ -z "$targets" ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                echo "$name $(installed_version "$name")"
            done
            exit 0
        fi
        rc=0
        for name in $targets; do
            version=$(installed_version "$name")
            if [ -z "$version" ]; then
                echo "error: package '$name' was not found" >&2
                rc=1
            elif has_flag i; then
                printf 'Name            : %s\nVersion         : %s\nArchitecture    : %s\n\n' "$name" "$version" "$ARCH"
            elif has_flag q; then
                echo "$name"
            else
                echo "$name $version"
            fi
        done
        exit $rc
        ;;
    R)
        need_root
        for name in $targets; do
            if [ -z "$(installed_version "$name")" ]; then
                echo "error: target not found: $name" >&2
                exit 1
            fi
            remove_installed "$name"
            record "pacman -R $name"
        done
        ;;
    *)
        echo "error: no operation specified (use -h for help)" >&2
        exit 1
        ;;
esac
exit 0
"#;

const KUBELET: &str = r#"
version=$(installed_version kubelet)
if [ -z "$version" ]; then
    echo "bash: line 1: kubelet: command not found" >&2
    exit 127
fi
case "${1:-}" in
    --version) echo "Kubernetes v$(upstream "$version")" ;;
    *) echo "kubelet stand-in: only --version is supported" >&2; exit 1 ;;
esac
"#;

const KUBEADM: &str = r#"
version=$(installed_version kubeadm)
if [ -z "$version" ]; then
    echo "bash: line 1: kubeadm: command not found" >&2
    exit 127
fi
v=$(upstream "$version")
case "${1:-}" in
    version)
        case "$*" in
            *short*) echo "v$v" ;;
            *) major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
               echo "kubeadm version: &version.Info{Major:\"$major\", Minor:\"$minor\", GitVersion:\"v$v\", GitTreeState:\"clean\", GoVersion:\"go1.16\", Compiler:\"gc\", Platform:\"linux/amd64\"}" ;;
        esac ;;
    upgrade)
        if ! is_root; then
            echo "couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": open /etc/kubernetes/admin.conf: permission denied" >&2
            exit 1
        fi
        record "kubeadm $*"
        echo "[upgrade] The upgrade was successful (test stand-in)" ;;
    *) echo "kubeadm stand-in: only version and upgrade are supported" >&2; exit 1 ;;
esac
"#;
