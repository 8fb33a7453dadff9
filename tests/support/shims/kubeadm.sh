
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
