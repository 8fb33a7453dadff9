//! Stand-ins for the node commands that cannot run in a test machine: systemctl, the package
//! managers, kubelet/kubeadm, the container runtimes' clients (crictl, ctr, docker, crio) and the
//! disk tools (mkfs, wipefs, blkid, mount, umount, findmnt).
//!
//! They are small POSIX sh scripts in each node's `bin/`, first on the session PATH, keeping
//! their state in `<node>/state` so that a query after a change tells the truth
//! (`dpkg-query -W -f='${Version}' kubelet` after `apt-get install kubelet=1.21.14-00`).
//! Output formats and exit codes follow the real tools for the subset krun uses, including
//! their refusals: no root, no `-y`, unknown package or version, held package, unknown unit,
//! a kubeadm older than the version it is asked to apply, a runtime client whose daemon is down.
//!
//! Every node gets every package manager script. The ones that do not belong to the node's OS
//! answer "command not found" (exit 127), as the real node would, and that also guarantees a
//! playbook that picks the wrong manager can never reach the real apt-get of the test machine.
//! The disk tools only record: no real device is ever touched.
//!
//! A node whose directory holds `sim-url` (written by the lab fixture) is a node of the simulated
//! cluster: systemctl starting or stopping kubelet, or the runtime kubelet points at, reports
//! the node's kubelet version, runtime version and readiness to the simulator's `/sim/` API,
//! and kubeadm moves the control plane there. `sim.log` in the node directory lists the reports.
//!
//! State layout (all plain text):
//! - `state/pkgs/<name>`: installed version (`1.21.14-00`, `1.21.14-0`, `1.21.14-1`)
//! - `state/held/<name>`: apt-mark hold
//! - `state/units/<unit>`: `<active|inactive|failed> <enabled|disabled>`
//! - `state/changes.log`: one line per mutating command, in order
//! - `state/containers/<runtime>`: `<id> <running|exited> <name>` per container
//! - `state/images/<runtime>`: pulled image references
//! - `state/disks/<name>`: `<fstype> <uuid>` of a block device (empty: unformatted)
//! - `state/mounts`: `<device> <dir> <fstype>` per mount
//! - `state/joined`: present while kubeadm join holds (the CRI socket it joined with)
//! - `faults/kubelet` (not state): kubelet crashes on start, see `Node::break_kubelet`
//! - `journal/<unit>` (not state): what `journalctl -u <unit>` prints (kubelet's start failures)
//! - `repo/<name>`: versions the node's package repository offers, one per line (not state)
//! - `refused-registries` (not state): registry hosts the node's runtime cannot pull from, one
//!   per line; crictl and ctr fail on their images as containerd does against a registry it
//!   cannot speak to (seed 000), see `Node::refuse_registry`
//! - `../../cluster/`: shared by the fleet, like the cluster's own state: `tokens`, `ca-hash`,
//!   `version` (without a simulator) and `kubelet-config.yaml` (what kubeadm writes to nodes)

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
    let header = [COMMON, DISKS]
        .concat()
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
# The node's name in the cluster, the fleet-wide "cluster" state (kubeadm tokens, the kubelet
# configuration kubeadm hands out) and the simulator this node reports to, if any.
NODE_NAME=$(cat "$NODE_DIR/node-name" 2>/dev/null || basename "$NODE_DIR")
CLUSTER_DIR="$NODE_DIR/../../cluster"
sim_url() { cat "$NODE_DIR/sim-url" 2>/dev/null; }
sim_log() { printf '%s\n' "$*" >>"$NODE_DIR/sim.log"; }
# sim_put PATH JSON: a change through the simulator's control API (nothing without a simulator).
sim_put() {
    url=$(sim_url)
    [ -n "$url" ] || return 0
    sim_log "PUT /sim/$1 $2"
    curl -sS -f -X PUT -H 'Content-Type: application/json' -d "$2" "$url/sim/$1" >/dev/null 2>>"$NODE_DIR/sim.log" \
        || sim_log "FAILED: PUT /sim/$1"
}
sim_get() {
    url=$(sim_url)
    [ -n "$url" ] && curl -sS -f "$url$1" 2>>"$NODE_DIR/sim.log"
}
# The registry of an image reference: its first component when that is a host, else Docker Hub.
image_registry() {
    case "$1" in
        */*) _first=${1%%/*} ;;
        *) _first= ;;
    esac
    case "$_first" in
        *.* | *:* | localhost) echo "$_first" ;;
        *) echo docker.io ;;
    esac
}
# Whether the node's runtime cannot pull from this image's registry (`refused-registries`).
registry_refused() { [ -f "$NODE_DIR/refused-registries" ] && grep -qxF -- "$(image_registry "$1")" "$NODE_DIR/refused-registries"; }
# What containerd says when a registry answers its manifest request by digest with 404.
refused_reason() {
    _registry=$(image_registry "$1")
    _path=${1#"$_registry"/}
    [ "$_registry" = docker.io ] && _path=${1#docker.io/}
    _repo=${_path%%[:@]*}
    printf 'failed to pull and unpack image "%s": failed to copy: httpReadSeeker: failed open: content at https://%s/v2/%s/manifests/sha256:%s not found: not found' \
        "$1" "$_registry" "$_repo" "$(printf '%s' "$1" | sha256sum | cut -c1-64)"
}
unit_active_state() { cut -d' ' -f1 "$STATE/units/$1" 2>/dev/null || echo inactive; }
# The value of one kubelet flag (`--name=value` or `--name value`) across the files kubelet's
# unit reads, the last one winning as on the real command line.
kubelet_flag() {
    cat /var/lib/kubelet/kubeadm-flags.env /etc/kubernetes/kubelet.env \
        /etc/systemd/system/kubelet.service.d/*.conf 2>/dev/null \
        | tr '"\\' '  ' \
        | awk -v name="--$1" '
            { for (i = 1; i <= NF; i++) {
                token = $i
                sub(/^[A-Za-z_]+=/, "", token)
                if (token == name && i < NF) value = $(i + 1)
                else if (index(token, name "=") == 1) value = substr(token, length(name) + 2)
            } }
            END { print value }'
}
# The runtime kubelet talks to: its endpoint flag or config, or dockershim when neither says.
kubelet_runtime() {
    _endpoint=$(kubelet_flag container-runtime-endpoint)
    if [ -z "$_endpoint" ]; then
        _endpoint=$(sed -n 's/^containerRuntimeEndpoint: *//p' /var/lib/kubelet/config.yaml 2>/dev/null | tr -d "\"'")
    fi
    case "$_endpoint" in
        *containerd*) echo containerd ;;
        *crio*) echo crio ;;
        "" | *docker*) echo docker ;;
        *) echo unknown ;;
    esac
}
runtime_unit() {
    case "$1" in
        containerd) echo containerd.service ;;
        crio) echo crio.service ;;
        docker) echo docker.service ;;
    esac
}
# `containerd://1.6.20`, as the node reports it, from the installed package.
runtime_version() {
    case "$1" in
        containerd) _v=$(installed_version containerd || installed_version containerd.io) ;;
        crio) _v=$(installed_version cri-o) ;;
        docker) _v=$(installed_version docker-ce || installed_version docker.io || installed_version docker) ;;
        *) _v= ;;
    esac
    [ -n "$_v" ] || return 1
    _name=$1
    [ "$_name" = crio ] && _name=cri-o
    echo "$_name://$(upstream "$_v")"
}
# What kubelet posts after a (re)start: its version, its runtime's, and Ready only when it is
# registered (kubelet.conf) and the runtime it points at runs.
kubelet_report() {
    _kubelet=$(installed_version kubelet) || return 0
    _runtime=$(kubelet_runtime)
    _ready=false
    if [ -f /etc/kubernetes/kubelet.conf ] && [ "$(unit_active_state "$(runtime_unit "$_runtime")")" = active ]; then
        _ready=true
    fi
    _body="{\"ready\":$_ready,\"kubeletVersion\":\"v$(upstream "$_kubelet")\""
    if _reported=$(runtime_version "$_runtime"); then
        _body="$_body,\"containerRuntimeVersion\":\"$_reported\""
    fi
    sim_put "nodes/$NODE_NAME" "$_body}"
}
# systemctl's hook: kubelet reports on start and stop, and follows the runtime it points at.
unit_changed() {
    case "$1" in
        kubelet.service)
            if [ "$(unit_active_state kubelet.service)" = active ]; then kubelet_report; else kubelet_stopped; fi ;;
        containerd.service | crio.service | docker.service)
            if [ "$(unit_active_state kubelet.service)" = active ] \
                && [ "$(runtime_unit "$(kubelet_runtime)")" = "$1" ]; then
                kubelet_report
            fi ;;
    esac
}
kubelet_stopped() { sim_put "nodes/$NODE_NAME" '{"ready":false}'; }
journal() {
    mkdir -p "$NODE_DIR/journal"
    printf '%s %s\n' "$(date -u '+%b %d %H:%M:%S')" "$2" >>"$NODE_DIR/journal/$1"
}
# Why kubelet would exit right after starting, if it would: an injected fault, or (dockershim)
# a cgroup driver other than Docker's, which kubelet 1.20 refuses.
kubelet_start_failure() {
    if [ -f "$NODE_DIR/faults/kubelet" ]; then
        echo "kubelet: failed to run Kubelet: injected fault"
        return 0
    fi
    [ "$(kubelet_runtime)" = docker ] || return 1
    [ "$(unit_active_state docker.service)" = active ] || return 1
    _docker_driver=cgroupfs
    grep -q 'native.cgroupdriver=systemd' /etc/docker/daemon.json 2>/dev/null && _docker_driver=systemd
    _kubelet_driver=$(kubelet_flag cgroup-driver)
    [ -n "$_kubelet_driver" ] || _kubelet_driver=$(sed -n 's/^cgroupDriver: *//p' /var/lib/kubelet/config.yaml 2>/dev/null)
    [ -n "$_kubelet_driver" ] || _kubelet_driver=cgroupfs
    [ "$_kubelet_driver" = "$_docker_driver" ] && return 1
    echo "kubelet: failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"$_kubelet_driver\" is different from docker cgroup driver: \"$_docker_driver\""
}
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
    ("journalctl", JOURNALCTL),
    ("kubelet", KUBELET),
    ("kubeadm", KUBEADM),
    ("crictl", CRICTL),
    ("ctr", CTR),
    ("docker", DOCKER),
    ("crio", CRIO),
    ("mkfs.ext4", MKFS),
    ("mkfs.xfs", MKFS),
    ("wipefs", WIPEFS),
    ("blkid", BLKID),
    ("mount", MOUNT),
    ("umount", UMOUNT),
    ("findmnt", FINDMNT),
];

const SYSTEMCTL: &str = r#"
quiet=0 now=0 value=0 props= verb= units=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift
            for unit in "$@"; do
                if [ -z "$verb" ]; then verb=$unit; else units="$units $unit"; fi
            done
            break ;;
        --version) echo "systemd 252 (252.39-1~deb12u2)"; exit 0 ;;
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
# A unit is known from its state, or from a unit file a playbook wrote (inactive, disabled).
known() { [ -f "$STATE/units/$1" ] || [ -f "/etc/systemd/system/$1" ]; }
active_of() { if [ -f "$STATE/units/$1" ]; then cut -d' ' -f1 "$STATE/units/$1"; else echo inactive; fi; }
enabled_of() { if [ -f "$STATE/units/$1" ]; then cut -d' ' -f2 "$STATE/units/$1"; else echo disabled; fi; }
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
            # A kubelet that crashes on start stays in systemd's restart loop.
            if [ "$state" = active ] && [ "$u" = kubelet.service ] && failure=$(kubelet_start_failure); then
                state=activating
                journal kubelet.service "$failure"
            fi
            set_unit "$u" "$state" "$(enabled_of "$u")"
            record "systemctl $verb $u"
            unit_changed "$u"
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
                if [ "$now" = 1 ] && [ "$u" = kubelet.service ] && failure=$(kubelet_start_failure); then
                    active=activating
                    journal kubelet.service "$failure"
                fi
                set_unit "$u" "$active" enabled
            else
                echo "Removed \"/etc/systemd/system/multi-user.target.wants/$u\"." >&2
                [ "$now" = 1 ] && active=inactive
                set_unit "$u" "$active" disabled
            fi
            if [ "$now" = 1 ]; then
                record "systemctl $verb --now $u"
                unit_changed "$u"
            else
                record "systemctl $verb $u"
            fi
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
                activating) line="activating (auto-restart) (Result: exit-code)"; rc=3 ;;
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
            case "$active" in active) sub=running ;; activating) sub=auto-restart ;; failed) sub=failed ;; *) sub=dead ;; esac
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
yes=0 downgrades=0 change_held=0 download_only=0 verb= args=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift
            for arg in "$@"; do
                if [ -z "$verb" ]; then verb=$arg; else args="$args $arg"; fi
            done
            break ;;
        -y | --yes | --assume-yes | -qy | -yq) yes=1 ;;
        -d | --download-only) download_only=1 ;;
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
        if [ "$download_only" = 1 ]; then
            for item in $plan; do
                echo "Get:1 https://pkgs.k8s.io/core:/stable:/deb  ${item%%=*} ${item#*=} [9 MB]"
                mkdir -p "$STATE/cache" && touch "$STATE/cache/$item"
            done
            echo "Download complete and in download only mode"
            exit 0
        fi
        for item in $plan; do
            name=${item%%=*} version=${item#*=}
            echo "Setting up $name ($version) ..."
            set_installed "$name" "$version"
            record "apt-get install $name=$version"
        done
        ;;
    download)
        # Fetches .deb files into the working directory; needs no root, installs nothing.
        for spec in $args; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            case "$spec" in
                *=*) version=${spec#*=}
                    if ! repo_has "$name" "$version"; then
                        echo "E: Version '$version' for '$name' was not found" >&2
                        exit 100
                    fi ;;
                *) version=$(latest_version "$name") ;;
            esac
            deb_arch=$ARCH
            [ "$deb_arch" = x86_64 ] && deb_arch=amd64
            [ "$deb_arch" = aarch64 ] && deb_arch=arm64
            printf 'stand-in package %s %s\n' "$name" "$version" >"${name}_${version}_${deb_arch}.deb"
            echo "Get:1 https://pkgs.k8s.io/core:/stable:/deb  $name $version [9 MB]"
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
[ "${1:-}" = -- ] && shift
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
        --) shift; names="$names $*"; break ;;
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
        --) shift
            for arg in "$@"; do
                if [ -z "$verb" ]; then verb=$arg; else args="$args $arg"; fi
            done
            break ;;
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
        --) shift; names="$names $*"; break ;;
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
        --) shift; targets="$targets $*"; break ;;
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

/// journalctl -u UNIT [-n N]: what the shims logged for the unit (kubelet's start failures).
const JOURNALCTL: &str = r#"
unit= lines=
while [ $# -gt 0 ]; do
    case "$1" in
        -u | --unit) shift; unit=${1:-} ;;
        --unit=*) unit=${1#*=} ;;
        -n | --lines) shift; lines=${1:-} ;;
        --lines=*) lines=${1#*=} ;;
    esac
    shift
done
case "$unit" in *.*) ;; "") ;; *) unit=$unit.service ;; esac
file="$NODE_DIR/journal/$unit"
if [ -z "$unit" ] || [ ! -f "$file" ]; then
    echo "-- No entries --"
    exit 0
fi
if [ -n "$lines" ]; then tail -n "$lines" "$file"; else cat "$file"; fi
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

/// kubeadm at the installed package's version. `upgrade apply` and `upgrade node` move the
/// simulator's control plane (static pod images, `/version`); `join` and `reset` (un)register the
/// node; tokens and the kubelet configuration kubeadm hands out are fleet-wide, in `cluster/`.
const KUBEADM: &str = r#"
version=$(installed_version kubeadm)
if [ -z "$version" ]; then
    echo "bash: line 1: kubeadm: command not found" >&2
    exit 127
fi
KUBEADM_VERSION=v$(upstream "$version")
bare() { printf '%s\n' "${1#v}"; }
minor() { bare "$1" | cut -d. -f2; }
# The cluster's version: the simulator's /version, else what the last apply recorded.
cluster_version() {
    found=$(sim_get /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
    [ -n "$found" ] || found=$(cat "$CLUSTER_DIR/version" 2>/dev/null)
    [ -n "$found" ] || found=v$(upstream "$(installed_version kubelet)")
    echo "$found"
}
is_control_plane() { [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; }
fatal() {
    printf '%s\n' "$@" >&2
    echo "To see the stack trace of this error execute with --v=5 or higher" >&2
    exit 1
}
preflight_fatal() {
    {
        echo "error execution phase preflight: [preflight] Some fatal errors occurred:"
        printf '\t%s\n' "$@"
        echo "[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\`"
    } >&2
    fatal
}
need_root() { is_root || preflight_fatal "[ERROR IsPrivilegedUser]: user is not running as root"; }
need_client() {
    if [ ! -f "$1" ]; then
        fatal "couldn't create a Kubernetes client from file \"$1\": failed to load admin kubeconfig: open $1: no such file or directory"
    fi
}
cluster_kubectl() { kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"; }
not_ready_control_planes() {
    [ -n "$(sim_url)" ] || return 0
    cluster_kubectl get nodes -l node-role.kubernetes.io/control-plane \
        -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null \
        | awk '$2 != "True" { printf "%s ", $1 }'
}
kubelet_versions() {
    [ -n "$(sim_url)" ] || return 0
    cluster_kubectl get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.kubeletVersion}{"\n"}{end}' 2>/dev/null \
        | sort -V | uniq -c | awk '{ printf "%s x %s\n", $1, $2 }'
}
write_kubelet_config() {
    mkdir -p /var/lib/kubelet
    if [ -f "$CLUSTER_DIR/kubelet-config.yaml" ]; then
        cp "$CLUSTER_DIR/kubelet-config.yaml" /var/lib/kubelet/config.yaml
    else
        printf 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\nstaticPodPath: /etc/kubernetes/manifests\n' >/var/lib/kubelet/config.yaml
    fi
    echo "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\""
}
# Rewrites this node's control-plane static pods to `$1`, keeping a backup as kubeadm does.
upgrade_static_pods() {
    stamp=$(date -u +%Y-%m-%d-%H-%M-%S)
    backup=/etc/kubernetes/tmp/kubeadm-backup-manifests-$stamp
    mkdir -p "$backup"
    for component in kube-apiserver kube-controller-manager kube-scheduler; do
        manifest=/etc/kubernetes/manifests/$component.yaml
        [ -f "$manifest" ] || continue
        cp "$manifest" "$backup/$component.yaml"
        sed -i "s|\(image: .*/$component\):.*|\1:$1|" "$manifest"
        echo "[upgrade/staticpods] Moved new manifest to \"$manifest\" and backed up old manifest to \"$backup/$component.yaml\""
        echo "[upgrade/staticpods] Component \"$component\" upgraded successfully!"
    done
    sim_put control-plane "{\"version\":\"$1\",\"node\":\"$NODE_NAME\"}"
}
cri_socket() {
    if [ "$(unit_active_state docker.service)" = active ]; then echo /var/run/dockershim.sock
    elif [ "$(unit_active_state containerd.service)" = active ]; then echo unix:///run/containerd/containerd.sock
    elif [ "$(unit_active_state crio.service)" = active ]; then echo unix:///var/run/crio/crio.sock
    fi
}
kubeadm_flags() {
    case "$1" in
        *dockershim*) echo 'KUBELET_KUBEADM_ARGS="--network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.2"' ;;
        *) echo "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=$1 --pod-infra-container-image=k8s.gcr.io/pause:3.2\"" ;;
    esac
}
kubeconfig_for() {
    server=$(sim_url)
    [ -n "$server" ] || server=https://127.0.0.1:6443
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: %s\ncontexts:\n- name: %s@kubernetes\n  context:\n    cluster: kubernetes\n    user: %s\ncurrent-context: %s@kubernetes\nusers:\n- name: %s\n  user: {}\n' \
        "$server" "$1" "$1" "$1" "$1"
}
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ca_hash() {
    mkdir -p "$CLUSTER_DIR"
    [ -f "$CLUSTER_DIR/ca-hash" ] || echo "sha256:$(random_hex 32)" >"$CLUSTER_DIR/ca-hash"
    cat "$CLUSTER_DIR/ca-hash"
}

upgrade_plan() {
    need_client /etc/kubernetes/admin.conf
    current=$(cluster_version)
    echo "[upgrade/config] Making sure the configuration is correct:"
    echo "[upgrade/config] Reading configuration from the cluster..."
    echo "[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'"
    echo "[preflight] Running pre-flight checks."
    echo "[upgrade] Running cluster health checks"
    not_ready=$(not_ready_control_planes)
    if [ -n "$not_ready" ]; then
        echo "[upgrade/health] FATAL: [preflight] Some fatal errors occurred:" >&2
        printf '\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [%s]\n' "${not_ready% }" >&2
        fatal
    fi
    echo "[upgrade] Fetching available versions to upgrade to"
    echo "[upgrade/versions] Cluster version: $current"
    echo "[upgrade/versions] kubeadm version: $KUBEADM_VERSION"
    series=$(grep "^$(bare "$current" | cut -d. -f1-2)\." "$REPO/kubeadm" 2>/dev/null | sort -V | tail -n 1)
    next_minor=$(( $(minor "$current") + 1 ))
    stable=$(grep "^1\.$next_minor\." "$REPO/kubeadm" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$series" ] && series=v$(upstream "$series")
    [ -n "$stable" ] && stable=v$(upstream "$stable")
    [ -n "$stable" ] && echo "[upgrade/versions] Target version: $stable"
    [ -n "$series" ] && echo "[upgrade/versions] Latest version in the v1.$(minor "$current") series: $series"
    offered=0
    for target in $series $stable; do
        version_lt "$(bare "$current")" "$(bare "$target")" || continue
        offered=1
        echo
        echo "Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':"
        echo "COMPONENT   CURRENT       TARGET"
        kubelet_versions | while read -r line; do
            printf 'kubelet     %-13s %s\n' "$line" "$target"
        done
        echo
        if [ "$target" = "$stable" ]; then echo "Upgrade to the latest stable version:"; else echo "Upgrade to the latest version in the v1.$(minor "$current") series:"; fi
        echo
        echo "COMPONENT                 CURRENT    TARGET"
        for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
            printf '%-25s %-10s %s\n' "$component" "$current" "$target"
        done
        echo
        echo "You can now apply the upgrade by executing the following command:"
        echo
        printf '\tkubeadm upgrade apply %s\n' "$target"
        if version_lt "$(bare "$KUBEADM_VERSION")" "$(bare "$target")"; then
            echo
            echo "Note: Before you can perform this upgrade, you have to update kubeadm to $target."
        fi
        echo
        echo "_____________________________________________________________________"
    done
    if [ "$offered" = 0 ]; then
        echo
        echo "Awesome, you're up-to-date! Enjoy!"
    fi
}

upgrade_apply() {
    target= yes=0 force=0 dry=0
    for arg in "$@"; do
        case "$arg" in
            -y | --yes) yes=1 ;;
            -f | --force) force=1; yes=1 ;;
            --dry-run) dry=1 ;;
            -*) ;;
            *) [ -z "$target" ] && target=$arg ;;
        esac
    done
    need_client /etc/kubernetes/admin.conf
    [ -n "$target" ] || fatal "[upgrade/version] FATAL: missing one or more required arguments. Required arguments: [version]"
    target=v$(bare "$target")
    current=$(cluster_version)
    echo "[upgrade/config] Making sure the configuration is correct:"
    echo "[upgrade/config] Reading configuration from the cluster..."
    echo "[preflight] Running pre-flight checks."
    echo "[upgrade] Running cluster health checks"
    not_ready=$(not_ready_control_planes)
    if [ -n "$not_ready" ]; then
        echo "[upgrade/health] FATAL: [preflight] Some fatal errors occurred:" >&2
        printf '\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [%s]\n' "${not_ready% }" >&2
        fatal
    fi
    echo "[upgrade/version] You have chosen to change the cluster version to \"$target\""
    echo "[upgrade/versions] Cluster version: $current"
    echo "[upgrade/versions] kubeadm version: $KUBEADM_VERSION"
    mandatory= skippable=
    if [ "$(minor "$target")" -gt $(( $(minor "$current") + 1 )) ]; then
        mandatory="Specified version to upgrade to \"$target\" is too high; kubeadm can upgrade only 1 minor version at a time"
    fi
    if version_lt "$(bare "$KUBEADM_VERSION")" "$(bare "$target")"; then
        skippable="Specified version to upgrade to \"$target\" is higher than the kubeadm version \"$KUBEADM_VERSION\". Upgrade kubeadm first using the tool you used to install kubeadm"
    elif version_lt "$(bare "$target")" "$(bare "$current")"; then
        skippable="Specified version to upgrade to \"$target\" is equal to or lower than the cluster version \"$current\". Downgrades are not supported yet"
    fi
    if [ -n "$mandatory" ]; then
        {
            echo "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:"
            echo
            printf '\t- %s\n' "$mandatory"
            [ -n "$skippable" ] && printf '\t- %s\n' "$skippable"
            echo
            echo "Please fix the misalignments highlighted above and try upgrading again"
        } >&2
        fatal
    fi
    if [ -n "$skippable" ] && [ "$force" = 0 ]; then
        {
            echo "[upgrade/version] FATAL: the --version argument is invalid due to these errors:"
            echo
            printf '\t- %s\n' "$skippable"
            echo
            echo "Can be bypassed if you pass the --force flag"
        } >&2
        fatal
    fi
    if [ "$yes" = 0 ]; then
        echo "[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: "
        fatal "won't proceed; the user didn't answer (Y|y) in order to continue"
    fi
    if [ "$dry" = 1 ]; then
        echo "[dryrun] Finished dryrunning successfully!"
        return 0
    fi
    echo "[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster"
    echo "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"$target\"..."
    upgrade_static_pods "$target"
    mkdir -p "$CLUSTER_DIR" && echo "$target" >"$CLUSTER_DIR/version"
    echo "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace"
    write_kubelet_config
    if [ -n "$(sim_url)" ]; then
        case "$(minor "$target")" in
            21) coredns=v1.8.0 ;; 22) coredns=v1.8.4 ;; 23) coredns=v1.8.6 ;; *) coredns= ;;
        esac
        [ -n "$coredns" ] && cluster_kubectl -n kube-system set image deployment/coredns \
            "coredns=k8s.gcr.io/coredns/coredns:$coredns" >/dev/null 2>>"$NODE_DIR/sim.log"
        cluster_kubectl -n kube-system set image daemonset/kube-proxy \
            "kube-proxy=k8s.gcr.io/kube-proxy:$target" >/dev/null 2>>"$NODE_DIR/sim.log"
    fi
    echo "[addons] Applied essential addon: CoreDNS"
    echo "[addons] Applied essential addon: kube-proxy"
    echo
    echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$target\". Enjoy!"
    echo
    echo "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so."
    record "kubeadm upgrade apply $target"
}

upgrade_node() {
    if [ "${1:-}" = config ]; then
        shift
        kubelet_version=
        while [ $# -gt 0 ]; do
            case "$1" in
                --kubelet-version) shift; kubelet_version=${1:-} ;;
                --kubelet-version=*) kubelet_version=${1#*=} ;;
            esac
            shift
        done
        [ -n "$kubelet_version" ] || fatal "the --kubelet-version argument is required"
        need_client /etc/kubernetes/kubelet.conf
        write_kubelet_config
        echo "[upgrade] The configuration for this node was successfully updated!"
        echo "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
        record "kubeadm upgrade node config --kubelet-version $kubelet_version"
        return 0
    fi
    if is_control_plane; then need_client /etc/kubernetes/admin.conf; else need_client /etc/kubernetes/kubelet.conf; fi
    current=$(cluster_version)
    echo "[upgrade] Reading configuration from the cluster..."
    echo "[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'"
    if version_lt "$(bare "$KUBEADM_VERSION")" "$(bare "$current")"; then
        fatal "[upgrade] FATAL: this version of kubeadm ($KUBEADM_VERSION) is older than the cluster's version ($current); upgrade kubeadm first"
    fi
    echo "[preflight] Running pre-flight checks"
    if is_control_plane; then
        echo "[preflight] Pulling images required for setting up a Kubernetes cluster"
        echo "[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"$current\"..."
        upgrade_static_pods "$current"
        echo "[upgrade] The control plane instance for this node was successfully updated!"
    else
        echo "[preflight] Skipping prepull. Not a control plane node."
        echo "[upgrade] Skipping phase. Not a control plane node."
    fi
    write_kubelet_config
    echo "[upgrade] The configuration for this node was successfully updated!"
    echo "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
    record "kubeadm upgrade node"
}

token_create() {
    print=0
    for arg in "$@"; do [ "$arg" = --print-join-command ] && print=1; done
    need_client /etc/kubernetes/admin.conf
    token="$(random_hex 3).$(random_hex 8)"
    mkdir -p "$CLUSTER_DIR" && echo "$token" >>"$CLUSTER_DIR/tokens"
    record "kubeadm token create"
    if [ "$print" = 1 ]; then
        endpoint=$(sim_url | sed 's|^[a-z]*://||')
        [ -n "$endpoint" ] || endpoint=127.0.0.1:6443
        echo "kubeadm join $endpoint --token $token --discovery-token-ca-cert-hash $(ca_hash) "
    else
        echo "$token"
    fi
}

join() {
    need_root
    token= hash= control_plane=0 socket=
    while [ $# -gt 0 ]; do
        case "$1" in
            --token | --discovery-token) shift; token=${1:-} ;;
            --token=* | --discovery-token=*) token=${1#*=} ;;
            --discovery-token-ca-cert-hash) shift; hash=${1:-} ;;
            --discovery-token-ca-cert-hash=*) hash=${1#*=} ;;
            --cri-socket) shift; socket=${1:-} ;;
            --cri-socket=*) socket=${1#*=} ;;
            --control-plane) control_plane=1 ;;
            --certificate-key | --node-name | --apiserver-advertise-address | --ignore-preflight-errors | --config) shift ;;
        esac
        shift
    done
    errors=
    [ -f /etc/kubernetes/kubelet.conf ] && errors="[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"
    [ -n "$socket" ] || socket=$(cri_socket)
    [ -n "$socket" ] || errors="$errors${errors:+
}[ERROR CRI]: container runtime is not running"
    if [ -n "$errors" ]; then
        old_ifs=$IFS
        IFS='
'
        # shellcheck disable=SC2086
        preflight_fatal $errors
        IFS=$old_ifs
    fi
    echo "[preflight] Running pre-flight checks"
    if [ -z "$token" ] || ! grep -qxF -- "$token" "$CLUSTER_DIR/tokens" 2>/dev/null; then
        fatal "error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"${token%%.*}\""
    fi
    if [ "$hash" != "$(ca_hash)" ]; then
        fatal "error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"$(ca_hash)\" are pinned"
    fi
    echo "[preflight] Reading configuration from the cluster..."
    mkdir -p /etc/kubernetes/manifests /var/lib/kubelet
    if [ "$control_plane" = 1 ]; then
        current=$(cluster_version)
        for component in kube-apiserver kube-controller-manager kube-scheduler; do
            printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: kube-system\nspec:\n  containers:\n  - name: %s\n    image: k8s.gcr.io/%s:%s\n' \
                "$component" "$component" "$component" "$current" >/etc/kubernetes/manifests/$component.yaml
        done
        kubeconfig_for kubernetes-admin >/etc/kubernetes/admin.conf
    fi
    write_kubelet_config
    kubeadm_flags "$socket" >/var/lib/kubelet/kubeadm-flags.env
    echo "[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\""
    kubeconfig_for "system:node:$NODE_NAME" >/etc/kubernetes/kubelet.conf
    echo "[kubelet-start] Starting the kubelet"
    set_unit_state kubelet.service active
    kubelet_report
    echo "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap..."
    echo
    echo "This node has joined the cluster:"
    echo "* Certificate signing request was sent to apiserver and a response was received."
    echo "* The Kubelet was informed of the new secure connection details."
    echo
    echo "Run 'kubectl get nodes' on the control-plane to see this node join the cluster."
    if [ "$control_plane" = 1 ]; then record "kubeadm join --control-plane"; else record "kubeadm join"; fi
    printf '%s\n' "$socket" >"$STATE/joined"
}

reset() {
    need_root
    force=0
    for arg in "$@"; do case "$arg" in -f | --force) force=1 ;; esac; done
    echo "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted."
    if [ "$force" = 0 ]; then
        echo "[reset] Are you sure you want to proceed? [y/N]: "
        fatal "error execution phase preflight: aborted reset operation"
    fi
    echo "[preflight] Running pre-flight checks"
    echo "[reset] Stopping the kubelet service"
    set_unit_state kubelet.service inactive
    kubelet_stopped
    echo "[reset] Unmounting mounted directories in \"/var/lib/kubelet\""
    if is_control_plane; then
        echo "[reset] Deleting contents of stateful directories: [/var/lib/etcd /var/lib/kubelet]"
        rm -rf /var/lib/etcd/* 2>/dev/null
    else
        echo "[reset] Deleting contents of stateful directories: [/var/lib/kubelet]"
    fi
    rm -rf /var/lib/kubelet/* /etc/kubernetes/manifests/* /etc/kubernetes/pki 2>/dev/null
    echo "[reset] Deleting contents of config directories: [/etc/kubernetes/manifests /etc/kubernetes/pki]"
    rm -f /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf \
        /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf
    echo "[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]"
    echo
    echo "The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d"
    rm -f "$STATE/joined"
    record "kubeadm reset"
}

set_unit_state() {
    enabled=$(cut -d' ' -f2 "$STATE/units/$1" 2>/dev/null || echo enabled)
    mkdir -p "$STATE/units" && echo "$2 $enabled" >"$STATE/units/$1"
}

case "${1:-}" in
    version)
        case "$*" in
            *short*) echo "$KUBEADM_VERSION" ;;
            *) v=$(bare "$KUBEADM_VERSION") major=${v%%.*} minor=$(minor "$v")
               echo "kubeadm version: &version.Info{Major:\"$major\", Minor:\"$minor\", GitVersion:\"v$v\", GitTreeState:\"clean\", GoVersion:\"go1.16\", Compiler:\"gc\", Platform:\"linux/amd64\"}" ;;
        esac ;;
    upgrade)
        shift
        if ! is_root; then
            fatal "couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: permission denied"
        fi
        verb=${1:-}
        [ $# -gt 0 ] && shift
        case "$verb" in
            plan) upgrade_plan "$@" ;;
            apply) upgrade_apply "$@" ;;
            node) upgrade_node "$@" ;;
            *) echo "Error: unknown command \"$verb\" for \"kubeadm upgrade\"" >&2; exit 1 ;;
        esac ;;
    token)
        shift
        is_root || fatal "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: permission denied"
        case "${1:-}" in
            create) shift; token_create "$@" ;;
            list) cat "$CLUSTER_DIR/tokens" 2>/dev/null ;;
            *) echo "Error: unknown command \"${1:-}\" for \"kubeadm token\"" >&2; exit 1 ;;
        esac ;;
    join) shift; join "$@" ;;
    reset) shift; reset "$@" ;;
    *) echo "Error: unknown command \"${1:-}\" for \"kubeadm\"" >&2
       echo "Run 'kubeadm --help' for usage." >&2
       exit 1 ;;
esac
"#;

/// crictl against the runtime kubelet points at (or `--runtime-endpoint`): it answers only while
/// that runtime's unit is active. Containers live in `state/containers/<runtime>`.
const CRICTL: &str = r#"
endpoint=${CONTAINER_RUNTIME_ENDPOINT:-} verb= args=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; args="$args $*"; break ;;
        -r | --runtime-endpoint) shift; endpoint=${1:-} ;;
        --runtime-endpoint=*) endpoint=${1#*=} ;;
        -i | --image-endpoint | -t | --timeout | -c | --config) shift ;;
        -*) [ -n "$verb" ] && args="$args $1" ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
case "$endpoint" in
    *containerd*) runtime=containerd socket=/run/containerd/containerd.sock ;;
    *crio*) runtime=crio socket=/var/run/crio/crio.sock ;;
    *docker*) runtime=docker socket=/var/run/dockershim.sock ;;
    "") runtime=$(kubelet_runtime)
        case "$runtime" in
            containerd) socket=/run/containerd/containerd.sock ;;
            crio) socket=/var/run/crio/crio.sock ;;
            *) socket=/var/run/dockershim.sock ;;
        esac ;;
    *) runtime=unknown socket=${endpoint#unix://} ;;
esac
# dockershim lives inside kubelet 1.20-1.23: it answers while kubelet runs.
if [ "$runtime" = docker ]; then unit=kubelet.service; else unit=$(runtime_unit "$runtime"); fi
if [ -z "$unit" ] || [ "$(unit_active_state "$unit")" != active ]; then
    echo "FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint \"unix://$socket\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix $socket: connect: no such file or directory\"" >&2
    exit 1
fi
containers="$STATE/containers/$runtime"
name=$runtime
[ "$name" = crio ] && name=cri-o
version=$(runtime_version "$runtime" | sed 's|.*://||')
case "$verb" in
    version)
        echo "Version:  0.1.0"
        echo "RuntimeName:  $name"
        echo "RuntimeVersion:  ${version:-unknown}"
        echo "RuntimeApiVersion:  v1"
        ;;
    info)
        sandbox=$(sed -n 's/^ *sandbox_image *= *"\(.*\)".*/\1/p' /etc/containerd/config.toml 2>/dev/null | head -n 1)
        systemd=$(grep -c '^ *SystemdCgroup *= *true' /etc/containerd/config.toml 2>/dev/null)
        [ "${systemd:-0}" -gt 0 ] && systemd=true || systemd=false
        cat <<EOF
{
  "status": {
    "conditions": [
      {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
      {"type": "NetworkReady", "status": true, "reason": "", "message": ""}
    ]
  },
  "config": {
    "sandboxImage": "${sandbox:-registry.k8s.io/pause:3.6}",
    "containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": $systemd}}}}
  }
}
EOF
        ;;
    ps)
        case "$args" in
            *-q*) [ -f "$containers" ] && awk '$2 == "running" { print $1 }' "$containers" ;;
            *) echo "CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD"
               [ -f "$containers" ] && awk '$2 == "running" { printf "%-19s %-19s %-19s %-19s %-19s 0\n", substr($1, 1, 13), "sha256:0", "1 hour ago", "Running", $3 }' "$containers" ;;
        esac
        ;;
    pods)
        [ -f "$containers" ] && awk '{ print $1 }' "$containers"
        ;;
    rmp)
        is_root || { echo "FATA[0000] permission denied" >&2; exit 1; }
        if [ -f "$containers" ]; then
            while read -r id _; do
                echo "Stopped sandbox $id"
                echo "Removed sandbox $id"
            done <"$containers"
            : >"$containers"
        fi
        record "crictl rmp$args"
        ;;
    pull)
        is_root || { echo "FATA[0000] permission denied" >&2; exit 1; }
        image=$(printf '%s' "$args" | awk '{ print $NF }')
        [ -n "$image" ] || { echo "FATA[0000] image name cannot be empty" >&2; exit 1; }
        if registry_refused "$image"; then
            echo "E0000 00:00:00.000000    4242 remote_image.go:180] \"PullImage from image service failed\" err=\"rpc error: code = NotFound desc = $(refused_reason "$image" | sed 's/"/\\"/g')\" image=\"$image\"" >&2
            echo "FATA[0000] pulling image: rpc error: code = NotFound desc = $(refused_reason "$image")" >&2
            exit 1
        fi
        mkdir -p "$STATE/images" && echo "$image" >>"$STATE/images/$runtime"
        echo "Image is up to date for sha256:$(printf '%s' "$image" | sha256sum | cut -c1-64)"
        record "crictl pull $image"
        ;;
    images)
        [ -f "$STATE/images/$runtime" ] && sort -u "$STATE/images/$runtime"
        ;;
    *)
        echo "crictl stand-in: unsupported command ${verb:-(none)}" >&2
        exit 1
        ;;
esac
exit 0
"#;

/// ctr, containerd's own client: answers while containerd.service is active.
const CTR: &str = r#"
verb= args=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; args="$args $*"; break ;;
        -n | --namespace | -a | --address | --timeout) shift ;;
        --namespace=* | --address=* | --timeout=*) ;;
        -*) [ -n "$verb" ] && args="$args $1" ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
version=$(runtime_version containerd | sed 's|.*://||')
if [ -z "$version" ]; then
    echo "bash: line 1: ctr: command not found" >&2
    exit 127
fi
if [ "$(unit_active_state containerd.service)" != active ]; then
    [ "$verb" = version ] && printf 'Client:\n  Version:  %s\n  Revision: 1\n  Go version: go1.20\n\n' "$version"
    echo "ctr: failed to dial \"/run/containerd/containerd.sock\": connection error: desc = \"transport: error while dialing: dial unix:///run/containerd/containerd.sock: timeout\"" >&2
    exit 1
fi
case "$verb" in
    version)
        printf 'Client:\n  Version:  %s\n  Revision: 1\n  Go version: go1.20\n\nServer:\n  Version:  %s\n  Revision: 1\n  UUID: %s\n' \
            "$version" "$version" "$(cat /proc/sys/kernel/random/uuid)"
        ;;
    images | image | i)
        set -- $args
        case "${1:-}" in
            pull)
                shift
                is_root || { echo "ctr: permission denied" >&2; exit 1; }
                image=
                for a in "$@"; do case "$a" in -*) ;; *) image=$a ;; esac; done
                if registry_refused "$image"; then
                    echo "$image: resolving      |--------------------------------------|"
                    echo "elapsed: 0.5 s                                  total:   0.0 B (0.0 B/s)"
                    echo "ctr: $(refused_reason "$image" | sed 's/^failed to pull and unpack image "[^"]*": //')" >&2
                    exit 1
                fi
                mkdir -p "$STATE/images" && echo "$image" >>"$STATE/images/containerd"
                echo "$image: resolved       |++++++++++++++++++++++++++++++++++++++|"
                echo "elapsed: 1.0 s                                  total:  0.0 B (0.0 B/s)"
                echo "unpacking linux/amd64 sha256:$(printf '%s' "$image" | sha256sum | cut -c1-64)...done"
                record "ctr images pull $image"
                ;;
            ls | list)
                echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"
                [ -f "$STATE/images/containerd" ] && sort -u "$STATE/images/containerd"
                ;;
            *) echo "ctr: unsupported images command ${1:-}" >&2; exit 1 ;;
        esac
        ;;
    *)
        echo "ctr stand-in: unsupported command ${verb:-(none)}" >&2
        exit 1
        ;;
esac
"#;

/// docker: `ps`, `stop`, `rm`, `info`, `version`; answers while docker.service is active.
/// Containers are `state/containers/docker` lines: `<id> <running|exited> <name>`.
const DOCKER: &str = r#"
version=$(runtime_version docker | sed 's|.*://||')
if [ -z "$version" ]; then
    echo "bash: line 1: docker: command not found" >&2
    exit 127
fi
containers="$STATE/containers/docker"
if [ "$(unit_active_state docker.service)" != active ]; then
    echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
    exit 1
fi
verb=${1:-}
[ $# -gt 0 ] && shift
require_ids() {
    if [ $# -eq 0 ]; then
        echo "\"docker $verb\" requires at least 1 argument." >&2
        echo "See 'docker $verb --help'." >&2
        exit 1
    fi
}
case "$verb" in
    ps)
        all=0 quiet=0
        for a in "$@"; do
            case "$a" in
                -a | --all) all=1 ;; -q | --quiet) quiet=1 ;; -aq | -qa) all=1 quiet=1 ;;
            esac
        done
        [ "$quiet" = 1 ] || echo "CONTAINER ID   IMAGE     COMMAND   CREATED       STATUS       PORTS     NAMES"
        [ -f "$containers" ] || exit 0
        awk -v all="$all" -v quiet="$quiet" '
            all == 1 || $2 == "running" {
                if (quiet == 1) print substr($1, 1, 12)
                else printf "%-14s k8s       \"/pause\"  1 hour ago    %-12s           %s\n", substr($1, 1, 12), ($2 == "running" ? "Up 1 hour" : "Exited (0)"), $3
            }' "$containers"
        ;;
    stop | rm | kill)
        force=0 ids=
        for a in "$@"; do
            case "$a" in -f | --force) force=1 ;; -*) ;; *) ids="$ids $a" ;; esac
        done
        # shellcheck disable=SC2086
        require_ids $ids
        is_root || { echo "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock" >&2; exit 1; }
        rc=0
        for id in $ids; do
            line=$(grep "^$id" "$containers" 2>/dev/null | head -n 1)
            if [ -z "$line" ]; then
                echo "Error response from daemon: No such container: $id" >&2
                rc=1
                continue
            fi
            full=${line%% *}
            if [ "$verb" = rm ]; then
                if [ "$force" = 0 ] && [ "$(echo "$line" | cut -d' ' -f2)" = running ]; then
                    echo "Error response from daemon: You cannot remove a running container $full. Stop the container before attempting removal or force remove" >&2
                    rc=1
                    continue
                fi
                grep -v "^$full " "$containers" >"$containers.new"; mv "$containers.new" "$containers"
            else
                sed -i "s/^$full running /$full exited /" "$containers"
            fi
            echo "$id"
        done
        record "docker $verb$ids"
        exit $rc
        ;;
    info)
        driver=cgroupfs
        grep -q 'native.cgroupdriver=systemd' /etc/docker/daemon.json 2>/dev/null && driver=systemd
        running=$(awk '$2 == "running"' "$containers" 2>/dev/null | wc -l)
        total=$(wc -l <"$containers" 2>/dev/null || echo 0)
        case "$*" in
            *--format* | *-f*)
                format=$(printf '%s\n' "$@" | sed -n '/^--format=/s/^--format=//p; /^-f$/{n;p}; /^--format$/{n;p}')
                printf '%s\n' "$format" | sed -e "s/{{ *\.CgroupDriver *}}/$driver/g" -e "s/{{ *\.ServerVersion *}}/$version/g" \
                    -e "s/{{ *\.Driver *}}/devicemapper/g" -e "s/{{ *\.ContainersRunning *}}/$running/g" -e "s/{{ *\.Containers *}}/$total/g"
                ;;
            *)
                printf 'Client:\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: %s\n  Running: %s\n  Paused: 0\n  Stopped: %s\n' "$total" "$running" "$((total - running))"
                printf ' Server Version: %s\n Storage Driver: devicemapper\n Logging Driver: json-file\n Cgroup Driver: %s\n Cgroup Version: 1\n Docker Root Dir: /var/lib/docker\n' "$version" "$driver"
                ;;
        esac
        ;;
    version)
        printf 'Client: Docker Engine - Community\n Version:           %s\n\nServer: Docker Engine - Community\n Engine:\n  Version:          %s\n' "$version" "$version"
        ;;
    *)
        echo "docker stand-in: unsupported command ${verb:-(none)}" >&2
        exit 1
        ;;
esac
exit 0
"#;

const CRIO: &str = r#"
version=$(runtime_version crio | sed 's|.*://||')
if [ -z "$version" ]; then
    echo "bash: line 1: crio: command not found" >&2
    exit 127
fi
case "${1:-}" in
    --version | version | -v)
        echo "crio version $version"
        echo "Version:          $version"
        echo "GoVersion:        go1.16"
        echo "Compiler:         gc"
        echo "Platform:         linux/$(uname -m)"
        ;;
    *) echo "crio stand-in: only --version is supported" >&2; exit 1 ;;
esac
"#;

/// Disks: `state/disks/<name>` holds `<fstype> <uuid>` (empty when unformatted); mounts are
/// `state/mounts` lines `<device> <dir> <fstype>`. Nothing touches a real device.
const DISKS: &str = r#"
disk_file() { printf '%s/disks/%s' "$STATE" "$(basename "$1")"; }
known_disk() { [ -f "$(disk_file "$1")" ]; }
fs_of() { cut -d' ' -f1 "$(disk_file "$1")" 2>/dev/null; }
uuid_of() { cut -d' ' -f2 "$(disk_file "$1")" 2>/dev/null; }
# A device named as /dev/x, UUID=... or LABEL-less path, resolved to /dev/x.
resolve_device() {
    case "$1" in
        UUID=*) for f in "$STATE"/disks/*; do
                    [ -f "$f" ] || continue
                    [ "$(cut -d' ' -f2 "$f")" = "${1#UUID=}" ] && { echo "/dev/$(basename "$f")"; return 0; }
                done
                return 1 ;;
        *) echo "$1" ;;
    esac
}
mounted_at() { awk -v dir="$1" '$2 == dir { print; found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; }
device_mounted() { awk -v dev="$1" '$1 == dev { found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; }
"#;

const MKFS: &str = r#"
force=0 device=
while [ $# -gt 0 ]; do
    case "$1" in
        -F | -f) force=1 ;;
        -L | -t | -b | -m | -E | -O | -n | -i) shift ;;
        -*) ;;
        *) device=$1 ;;
    esac
    shift
done
fstype=${TOOL#mkfs.}
if [ -z "$device" ]; then
    echo "Usage: $TOOL [options] device" >&2
    exit 1
fi
if ! is_root; then
    echo "$TOOL: Permission denied while trying to determine filesystem size" >&2
    exit 1
fi
if ! known_disk "$device"; then
    echo "The file $device does not exist and no size was specified." >&2
    exit 1
fi
if device_mounted "$device"; then
    echo "$device is mounted; will not make a filesystem here!" >&2
    exit 1
fi
current=$(fs_of "$device")
if [ -n "$current" ] && [ "$force" = 0 ]; then
    if [ "$fstype" = xfs ]; then
        echo "mkfs.xfs: $device appears to contain an existing filesystem ($current)." >&2
        echo "mkfs.xfs: Use the -f option to force overwrite." >&2
    else
        echo "$device contains a $current file system"
        echo "Proceed anyway? (y,N) "
    fi
    exit 1
fi
uuid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$STATE/disks" && echo "$fstype $uuid" >"$(disk_file "$device")"
if [ "$fstype" = xfs ]; then
    echo "meta-data=$device              isize=512    agcount=4, agsize=6553600 blks"
else
    echo "mke2fs 1.47.0 (5-Feb-2023)"
    echo "Creating filesystem with 26214400 4k blocks and 6553600 inodes"
    echo "Filesystem UUID: $uuid"
    echo "Writing superblocks and filesystem accounting information: done"
fi
record "$TOOL $device"
"#;

const WIPEFS: &str = r#"
all=0 device=
for a in "$@"; do case "$a" in -a | --all) all=1 ;; -*) ;; *) device=$a ;; esac; done
is_root || { echo "wipefs: error: $device: probing initialization failed: Permission denied" >&2; exit 1; }
known_disk "$device" || { echo "wipefs: error: $device: probing initialization failed: No such file or directory" >&2; exit 1; }
current=$(fs_of "$device")
if [ "$all" = 1 ] && [ -n "$current" ]; then
    echo "$device: 2 bytes were erased at offset 0x00000438 ($current): 53 ef"
    : >"$(disk_file "$device")"
    record "wipefs -a $device"
elif [ -n "$current" ]; then
    echo "DEVICE OFFSET TYPE UUID LABEL"
    echo "$(basename "$device") 0x438 $current $(uuid_of "$device")"
fi
"#;

const BLKID: &str = r#"
tag= output=full devices= by_uuid=
while [ $# -gt 0 ]; do
    case "$1" in
        -s | --match-tag) shift; tag=${1:-} ;;
        -o | --output) shift; output=${1:-} ;;
        -U | --uuid) shift; by_uuid=${1:-} ;;
        -*) ;;
        *) devices="$devices $1" ;;
    esac
    shift
done
if [ -n "$by_uuid" ]; then
    resolve_device "UUID=$by_uuid" || exit 2
    exit 0
fi
if [ -z "$devices" ]; then
    for f in "$STATE"/disks/*; do [ -s "$f" ] && devices="$devices /dev/$(basename "$f")"; done
fi
rc=2
for device in $devices; do
    fs=$(fs_of "$device")
    [ -n "$fs" ] || continue
    rc=0
    uuid=$(uuid_of "$device")
    case "$output:$tag" in
        value:UUID) echo "$uuid" ;;
        value:TYPE) echo "$fs" ;;
        value:*) echo "$uuid"; echo "$fs" ;;
        export:*) printf 'DEVNAME=%s\nUUID=%s\nBLOCK_SIZE=4096\nTYPE=%s\n' "$device" "$uuid" "$fs" ;;
        *:UUID) echo "$device: UUID=\"$uuid\"" ;;
        *:TYPE) echo "$device: TYPE=\"$fs\"" ;;
        *) echo "$device: UUID=\"$uuid\" BLOCK_SIZE=\"4096\" TYPE=\"$fs\"" ;;
    esac
done
exit $rc
"#;

const MOUNT: &str = r#"
all=0 positional=
while [ $# -gt 0 ]; do
    case "$1" in
        -a | --all) all=1 ;;
        -t | --types | -o | --options) shift ;;
        -*) ;;
        *) positional="$positional $1" ;;
    esac
    shift
done
list() {
    [ -f "$STATE/mounts" ] && awk '{ printf "%s on %s type %s (rw,relatime)\n", $1, $2, $3 }' "$STATE/mounts"
    return 0
}
mount_one() {
    device=$(resolve_device "$1") || { echo "mount: $2: can't find $1." >&2; exit 32; }
    if ! known_disk "$device"; then
        echo "mount: $2: special device $1 does not exist." >&2
        exit 32
    fi
    if [ ! -d "$2" ]; then
        echo "mount: $2: mount point does not exist." >&2
        exit 32
    fi
    fs=$(fs_of "$device")
    if [ -z "$fs" ]; then
        echo "mount: $2: wrong fs type, bad option, bad superblock on $device, missing codepage or helper program, or other error." >&2
        exit 32
    fi
    if mounted_at "$2" >/dev/null; then
        echo "mount: $2: $device already mounted on $2." >&2
        exit 32
    fi
    echo "$device $2 $fs" >>"$STATE/mounts"
    record "mount $device $2"
}
# fstab lines for disks this node has; every other line is the machine's and already mounted.
fstab_entries() {
    grep -v '^[[:space:]]*#' /etc/fstab 2>/dev/null | while read -r spec dir _; do
        [ -n "$spec" ] || continue
        device=$(resolve_device "$spec") || continue
        known_disk "$device" && echo "$spec $dir"
    done
}
set -- $positional
if [ "$all" = 0 ] && [ $# -eq 0 ]; then
    list
    exit 0
fi
if ! is_root; then
    echo "mount: only root can do that." >&2
    exit 1
fi
if [ "$all" = 1 ]; then
    fstab_entries | while read -r spec dir; do
        mounted_at "$dir" >/dev/null || mount_one "$spec" "$dir"
    done
    exit 0
fi
if [ $# -eq 1 ]; then
    entry=$(fstab_entries | awk -v x="$1" '$1 == x || $2 == x { print; exit }')
    if [ -z "$entry" ]; then
        echo "mount: $1: can't find in /etc/fstab." >&2
        exit 1
    fi
    set -- $entry
fi
mount_one "$1" "$2"
"#;

const UMOUNT: &str = r#"
target=
for a in "$@"; do case "$a" in -*) ;; *) target=$a ;; esac; done
if ! is_root; then
    echo "umount: $target: must be superuser to unmount." >&2
    exit 32
fi
if ! awk -v t="$target" '$1 == t || $2 == t { found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; then
    echo "umount: $target: not mounted." >&2
    exit 32
fi
awk -v t="$target" '$1 != t && $2 != t' "$STATE/mounts" >"$STATE/mounts.new"
mv "$STATE/mounts.new" "$STATE/mounts"
record "umount $target"
"#;

const FINDMNT: &str = r#"
heading=1 columns=TARGET,SOURCE,FSTYPE,OPTIONS target=
while [ $# -gt 0 ]; do
    case "$1" in
        -n | --noheadings) heading=0 ;;
        -rn | -nr) heading=0 ;;
        -o | --output) shift; columns=${1:-} ;;
        --output=*) columns=${1#*=} ;;
        -no | -rno | -nro) heading=0; shift; columns=${1:-} ;;
        -T | --target | -M | --mountpoint | -S | --source) shift; target=${1:-} ;;
        -*) ;;
        *) target=$1 ;;
    esac
    shift
done
rows=$(awk -v t="$target" 't == "" || $1 == t || $2 == t' "$STATE/mounts" 2>/dev/null)
[ -n "$rows" ] || exit 1
if [ "$heading" = 1 ]; then echo "$columns" | tr ',' ' '; fi
printf '%s\n' "$rows" | while read -r device dir fs; do
    line=
    for column in $(echo "$columns" | tr ',' ' '); do
        case "$column" in
            TARGET) value=$dir ;;
            SOURCE) value=$device ;;
            FSTYPE) value=$fs ;;
            OPTIONS) value=rw,relatime ;;
            UUID) value=$(uuid_of "$device") ;;
            *) value= ;;
        esac
        line="$line${line:+ }$value"
    done
    echo "$line"
done
"#;
