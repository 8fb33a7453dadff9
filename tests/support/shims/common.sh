#!/bin/sh
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
