"""kubeadm stand-in: `version`, `upgrade plan|apply|node` as the version in its data file
behaves (kubeadm-facts.md §1-§3), and `token create`, `join` and `reset` (below, each rule with
its source), against the cluster's API (the simulator).

Static pods are real files in /etc/kubernetes/manifests, upgraded with kubeadm's backups under
/etc/kubernetes/tmp; the simulator's control API is told when a node's control plane moved.
A static pod only restarts while kubelet runs: with kubelet stopped, the upgrade times out and
rolls back, as the real one does after five minutes (here `static_pod_timeout` seconds).
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import standin  # noqa: E402
from standin import Fatal, err, log, parse  # noqa: E402

STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


def gv(version):
    """`1.21.14` -> `v1.21.14`."""
    return "v" + version.lstrip("v")


def fatal(*lines):
    raise Fatal("\n".join(lines + (STACK_HINT,)))


class Flags:
    """cobra-style flags: `--name=value`, `--name value`, `-y`; booleans take `=true|false`."""

    def __init__(self, args, booleans, values, command):
        self.set = {}
        self.positional = []
        aliases = {"y": "yes", "f": "force", "k": "experimental-kustomize"}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                self.positional.extend(args[i + 1 :])
                break
            if arg.startswith("-") and arg != "-":
                name, _, value = arg.lstrip("-").partition("=")
                name = aliases.get(name, name) if not arg.startswith("--") else name
                if name in booleans:
                    self.set[name] = value.lower() != "false" if value else True
                elif name in values:
                    if not value and "=" not in arg:
                        i += 1
                        if i >= len(args):
                            fatal(f"flag needs an argument: --{name}")
                        value = args[i]
                    self.set[name] = value
                else:
                    shown = arg.split("=")[0]
                    raise Fatal(
                        f"unknown flag: {shown}\n"
                        f"Run '{command} --help' for usage.\n{STACK_HINT}"
                    )
            else:
                self.positional.append(arg)
            i += 1

    def on(self, name):
        return bool(self.set.get(name, False))

    def get(self, name, default=None):
        return self.set.get(name, default)


class Kubeadm:
    def __init__(self):
        self.data = standin.load_data()
        self.version = self.data["version"]
        self.rules = self.data["kubeadm"]

    # -- the cluster -----------------------------------------------------------------------

    def api(self, kubeconfig):
        if standin.read(kubeconfig) is None:
            fatal(
                f"couldn't create a Kubernetes client from file \"{kubeconfig}\": failed to load "
                f"admin kubeconfig: open {kubeconfig}: no such file or directory"
            )
        return standin.Api(standin.kubeconfig_server(kubeconfig))

    def cluster_configuration(self, api, prefix):
        config_map = api.config_map("kube-system", "kubeadm-config")
        if config_map is None:
            fatal(
                f"{prefix}the ConfigMap \"kubeadm-config\" in the kube-system namespace was not found"
            )
        text = config_map.get("data", {}).get("ClusterConfiguration", "")
        fields = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith(" "):
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        return config_map, fields

    def image_repository(self, fields):
        return fields.get("imageRepository") or self.rules["image_repository"]

    def not_ready_control_planes(self, api):
        label = self.rules["control_plane_label"]
        names = []
        for node in api.nodes():
            if label not in node["metadata"].get("labels", {}):
                continue
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
            if not ready:
                names.append(node["metadata"]["name"])
        return names

    def health_checks(self, api, ignored):
        errors = []
        not_ready = self.not_ready_control_planes(api)
        if not_ready and "controlplanenodesready" not in ignored:
            errors.append(
                "[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the "
                f"cluster: [{' '.join(not_ready)}]"
            )
        missing = [
            c for c in COMPONENTS if standin.read(f"/etc/kubernetes/manifests/{c}.yaml") is None
        ]
        if missing and "staticpodmanifest" not in ignored:
            errors.append(
                "[ERROR StaticPodManifest]: The control plane seems to be Static Pod-hosted, "
                "but some of the manifests don't seem to exist on disk. This probably means "
                "you're running 'kubeadm' on a node that is not a control plane node."
            )
        if errors:
            lines = ["[upgrade/health] FATAL: [preflight] Some fatal errors occurred:"]
            lines += ["\t" + e for e in errors]
            lines.append(
                "[preflight] If you know what you are doing, you can make a check non-fatal "
                "with `--ignore-preflight-errors=...`"
            )
            fatal(*lines)

    # -- kubeadm-facts §1 ------------------------------------------------------------------

    def version_policies(self, cluster, target, kubelets, flags):
        """(mandatory, skippable) errors of EnforceVersionPolicies."""
        mandatory, skippable = [], []
        kubeadm = parse(self.version)
        new = parse(target)
        current = parse(cluster)
        pre_release = "-" in target.lstrip("v")
        minimum = (kubeadm[0], kubeadm[1] - 1, 0)
        if new < minimum:
            mandatory.append(
                f"Specified version to upgrade to \"{gv(target)}\" is equal to or lower than the "
                f"minimum supported version \"{gv(cluster)}\". Please specify a higher version to "
                "upgrade to"
            )
        upgrade_skip = new[1] > current[1] + 1
        downgrade_skip = new[1] < current[1] - 1
        if upgrade_skip:
            (skippable if pre_release else mandatory).append(
                f"Specified version to upgrade to \"{gv(target)}\" is too high; kubeadm can "
                "upgrade only 1 minor version at a time"
            )
        if downgrade_skip:
            (skippable if pre_release else mandatory).append(
                f"Specified version to downgrade to \"{gv(target)}\" is too low; kubeadm can "
                "downgrade only 1 minor version at a time"
            )
        if new[1] > kubeadm[1]:
            (skippable if pre_release else mandatory).append(
                f"Specified version to upgrade to \"{gv(target)}\" is at least one minor release "
                f"higher than the kubeadm minor release ({new[1]} > {kubeadm[1]}). Such an "
                "upgrade is not supported"
            )
        elif new > kubeadm:
            skippable.append(
                f"Specified version to upgrade to \"{gv(target)}\" is higher than the kubeadm "
                f"version \"{gv(self.version)}\". Upgrade kubeadm first using the tool you used to "
                "install kubeadm"
            )
        if kubeadm[1] > new[1]:
            skippable.append(
                f"Kubeadm version {gv(self.version)} can only be used to upgrade to Kubernetes "
                f"version {kubeadm[0]}.{kubeadm[1]}"
            )
        if pre_release:
            allowed = flags.on("allow-experimental-upgrades") or (
                "-rc" in target and flags.on("allow-release-candidate-upgrades")
            )
            if not allowed:
                skippable.append(
                    f"Specified version to upgrade to \"{gv(target)}\" is an unstable version and "
                    "such upgrades weren't allowed via setting the --allow-*-upgrades flags"
                )
        too_old = sorted(
            {k for k in kubelets if new[1] > parse(k)[1] + self.rules["kubelet_skew"]},
            key=parse,
        )
        if too_old:
            skippable.append(
                "There are kubelets in this cluster that are too old that have these versions "
                f"[{' '.join(too_old)}]"
            )
        return mandatory, skippable

    def enforce(self, cluster, target, kubelets, flags):
        mandatory, skippable = self.version_policies(cluster, target, kubelets, flags)
        if mandatory:
            fatal(
                "[upgrade/version] FATAL: the --version argument is invalid due to these fatal "
                "errors:",
                "",
                *[f"\t- {e}" for e in mandatory + skippable],
                "",
                "Please fix the misalignments highlighted above and try upgrading again",
            )
        if skippable and not flags.on("force"):
            fatal(
                "[upgrade/version] FATAL: the --version argument is invalid due to these errors:",
                "",
                *[f"\t- {e}" for e in skippable],
                "",
                "Can be bypassed if you pass the --force flag",
            )
        if skippable:
            log(
                f"[upgrade/version] Found {len(skippable)} potential version compatibility errors "
                "but skipping since the --force flag is set: "
            )
            log("")
            for e in skippable:
                log(f"\t- {e}")

    # -- static pods, kubeadm-facts §2 -------------------------------------------------------

    def upgrade_static_pods(self, version, repository, etcd_upgrade, node_name, api):
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
        backup = f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}"
        upgraded = f"/etc/kubernetes/tmp/kubeadm-upgraded-manifests{os.getpid()}"
        standin.path(upgraded).mkdir(parents=True, exist_ok=True)
        log(f"[upgrade/staticpods] Writing new Static Pod manifests to \"{upgraded}\"")
        if not standin.unit_active("kubelet"):
            # Nothing restarts the new pods: kubeadm waits for the mirror pod's hash to change,
            # gives up and puts the old manifests back.
            time.sleep(self.rules["static_pod_timeout"])
            fatal(
                "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to "
                "recover everything into the earlier state. Errors faced: static Pod hash for "
                "component kube-apiserver on Node "
                f"{node_name} did not change after {self.rules['static_pod_timeout']}s: timed out "
                "waiting for the condition"
            )
        components = list(COMPONENTS)
        etcd_manifest = standin.read("/etc/kubernetes/manifests/etcd.yaml")
        if etcd_upgrade and etcd_manifest is not None:
            components.insert(0, "etcd")
            etcd_backup = f"/etc/kubernetes/tmp/kubeadm-backup-etcd-{stamp}/etcd"
            source = standin.path("/var/lib/etcd")
            target = standin.path(etcd_backup)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
        for component in components:
            manifest = f"/etc/kubernetes/manifests/{component}.yaml"
            old = standin.read(manifest)
            if old is None:
                continue
            if component == "etcd":
                tag = self.rules["etcd"]
                current_tag = image_tag(old)
                if current_tag and etcd_tag_newer(current_tag, tag):
                    log(
                        f"[upgrade/etcd] Current and new etcd images differ: etcd version "
                        f"\"{current_tag}\" is newer than \"{tag}\". Won't downgrade etcd, instead "
                        "just continue"
                    )
                    continue
            else:
                tag = gv(version)
            new = replace_image(old, component, f"{repository}/{component}:{tag}")
            if new == old:
                log(
                    f"[upgrade/staticpods] current and new manifests of {component} are equal, "
                    "skipping upgrade"
                )
                continue
            standin.write(f"{upgraded}/{component}.yaml", new, 0o600)
            standin.write(f"{backup}/{component}.yaml", old, 0o600)
            standin.write(manifest, new, 0o600)
            log(
                f"[upgrade/staticpods] Moved new manifest to \"{manifest}\" and backed up old "
                f"manifest to \"{backup}/{component}.yaml\""
            )
            log(f"[upgrade/staticpods] Component \"{component}\" upgraded successfully!")
        api.move_control_plane(gv(version), node_name)

    def kubelet_config_map_name(self, version):
        if self.rules["kubelet_config_map_versioned"]:
            major, minor, _ = parse(version)
            return f"kubelet-config-{major}.{minor}"
        return "kubelet-config"

    def kubelet_config_map(self, api, version):
        """The kubelet ConfigMap for `version`. Simulator gap: while it cannot store the map
        `upgrade apply` creates for the new minor, the newest older versioned map stands in."""
        name = self.kubelet_config_map_name(version)
        found = api.config_map("kube-system", name)
        if found is not None or not self.rules["kubelet_config_map_versioned"]:
            return name, found
        major, minor, _ = parse(version)
        for older in range(minor - 1, minor - 4, -1):
            found = api.config_map("kube-system", f"kubelet-config-{major}.{older}")
            if found is not None:
                return name, found
        return name, None

    def write_kubelet_config(self, api, version, prefix=""):
        name, config_map = self.kubelet_config_map(api, version)
        if config_map is None:
            fatal(f"{prefix}configmaps \"{name}\" not found")
        standin.write("/var/lib/kubelet/config.yaml", config_map["data"]["kubelet"])
        log(
            "[kubelet-start] Writing kubelet configuration to file "
            "\"/var/lib/kubelet/config.yaml\""
        )

    def clean_flags_file(self):
        """kubeadm-facts §5: 1.26 removes `--container-runtime=remote` from the flags file."""
        if not self.rules["strips_container_runtime_remote"]:
            return
        text = standin.read("/var/lib/kubelet/kubeadm-flags.env")
        if text is None or "--container-runtime=remote" not in text:
            return
        cleaned = text.replace(" --container-runtime=remote", "").replace(
            "--container-runtime=remote ", ""
        ).replace("--container-runtime=remote", "")
        standin.write("/var/lib/kubelet/kubeadm-flags.env", cleaned)

    def upgrade_addons(self, api, version, repository):
        proxy = f"{repository}/kube-proxy:{gv(version)}"
        api.set_image("DaemonSet", "kube-system", "kube-proxy", "kube-proxy", proxy)
        coredns = self.rules.get("coredns")
        if coredns:
            path = "coredns/coredns" if self.rules["coredns_nested"] else "coredns"
            api.set_image(
                "Deployment", "kube-system", "coredns", "coredns", f"{repository}/{path}:{coredns}"
            )
        log("[addons] Applied essential addon: CoreDNS")
        log("[addons] Applied essential addon: kube-proxy")

    def control_planes_behind(self, api, version):
        """Nodes whose kube-apiserver is not at `version` yet (kubeadm-facts §2, 1.28+)."""
        pods = api.pods("kube-system", "component%3Dkube-apiserver")
        return sorted(
            p["spec"].get("nodeName", p["metadata"]["name"])
            for p in pods
            if any(image_tag(c.get("image", "")) != gv(version) for c in p["spec"]["containers"])
        )

    # -- bootstrap tokens, join and reset ------------------------------------------------------
    #
    # Sources: kubeadm reference docs (kubeadm token, kubeadm join, kubeadm reset);
    # cmd/kubeadm/app/cmd/token.go (the join command printed on one line, its line continuations
    # removed); cmd/kubeadm/app/cmd/util/join.go (host:port from the kubeconfig's server, one
    # --discovery-token-ca-cert-hash per CA); discovery/token/token.go (cluster-info fetched
    # until it carries a JWS signature for the token, or the discovery timeout); k/k#81056
    # (1.18: join refuses while a Ready Node has the same name); phases/join/kubelet.go (kubelet
    # configuration and flags written, kubelet restarted, kubelet.conf awaited after the TLS
    # bootstrap, bootstrap-kubelet.conf removed, the CRI socket annotated on the Node).
    # Simulator gaps, said where they matter: no bootstrap signer (token create signs
    # cluster-info itself), plain HTTP (the endpoint of a join command is reached over http).
    #
    # kubeadm-facts.md has rows for a few of the refusals below (§1 KubeletVersion, §2
    # IsPrivilegedUser, the `[ERROR <Name>]` failure shape and the reset prompt) and for what
    # join writes (§5: kubeadm-flags.env, config.yaml, the cri-socket annotation); join's
    # configuration, discovery, file checks and the Ready-name rule have none: each says so
    # where it refuses, with the source it follows.

    def token_command(self, args):
        if not args or args[0] != "create":
            fatal(f"unknown command \"{args[0] if args else ''}\" for \"kubeadm token\"")
        flags = Flags(
            args[1:],
            {"print-join-command", "dry-run"},
            {"ttl", "description", "groups", "usages", "kubeconfig", "certificate-key", "config", "v"},
            "kubeadm token create",
        )
        if flags.positional:
            token = flags.positional[0]
            if not TOKEN.fullmatch(token):
                fatal(f"the bootstrap token \"{token}\" was not of the form {TOKEN_FORM}")
        else:
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
            token = (
                "".join(secrets.choice(alphabet) for _ in range(6))
                + "."
                + "".join(secrets.choice(alphabet) for _ in range(16))
            )
        token_id, token_secret = token.split(".")
        kubeconfig = flags.get("kubeconfig", "/etc/kubernetes/admin.conf")
        api = self.api(kubeconfig)
        ttl = go_duration(flags.get("ttl", "24h0m0s"))
        data = {
            "token-id": token_id,
            "token-secret": token_secret,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": flags.get("groups", "system:bootstrappers:kubeadm:default-node-token"),
        }
        if ttl > 0:
            data["expiration"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ttl))
        if flags.get("description"):
            data["description"] = flags.get("description")
        api.create_secret(
            "kube-system", f"bootstrap-token-{token_id}", "bootstrap.kubernetes.io/token", data
        )
        # The bootstrap signer of kube-controller-manager signs cluster-info for every signing
        # token; the simulator runs none, so the stand-in signs here.
        info = api.config_map("kube-public", "cluster-info")
        if info is None:
            fatal("configmaps \"cluster-info\" not found")
        info["data"][f"jws-kubeconfig-{token_id}"] = detached_jws(
            info["data"]["kubeconfig"], token_id, token_secret
        )
        api.create_config_map("kube-public", "cluster-info", info["data"])
        if not flags.on("print-join-command"):
            log(token)
            return 0
        server, ca = kubeconfig_cluster(standin.read(kubeconfig) or "")
        if not ca:
            fatal("failed to get join command: no CA certificates found in kubeconfig")
        host_port = re.sub(r"^https?://", "", server)
        log(
            f"kubeadm join {host_port} --token {token} "
            f"--discovery-token-ca-cert-hash {public_key_pin(ca)} "
        )
        return 0

    def join(self, args):
        flags = Flags(
            args,
            {"discovery-token-unsafe-skip-ca-verification", "dry-run", "control-plane"},
            {
                "token", "discovery-token", "tls-bootstrap-token", "discovery-token-ca-cert-hash",
                "discovery-file", "node-name", "cri-socket", "ignore-preflight-errors", "config",
                "certificate-key", "apiserver-advertise-address", "apiserver-bind-port", "v",
                "patches", "experimental-patches",
            },
            "kubeadm join",
        )
        ignored = {e.lower() for e in (flags.get("ignore-preflight-errors") or "").split(",") if e}
        node_name = flags.get("node-name") or node_name_here()
        # The configuration is validated before any phase runs, so these refusals carry no
        # "error execution phase" prefix. No kubeadm-facts.md row covers join's configuration;
        # source: the JoinConfiguration validation (ValidateDiscoveryBootstrapToken) and the
        # token format of the cluster-bootstrap library. UNCONFIRMED against the design doc.
        token = flags.get("discovery-token") or flags.get("token")
        if not flags.positional or not token:
            fatal("discovery: Invalid value: \"\": bootstrapToken or file must be set")
        pins = [p for p in (flags.get("discovery-token-ca-cert-hash") or "").split(",") if p]
        if not pins and not flags.on("discovery-token-unsafe-skip-ca-verification"):
            fatal(
                "discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based "
                "discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as "
                "true in your kubeadm config file or pass "
                "--discovery-token-unsafe-skip-ca-verification flag to continue"
            )
        if not TOKEN.fullmatch(token):
            fatal(f"the bootstrap token \"{token}\" was not of the form {TOKEN_FORM}")
        log("[preflight] Running pre-flight checks")
        errors = self.join_preflight(flags, ignored)
        if errors:
            # The failure's shape is kubeadm-facts.md §2's (`[preflight] Some fatal errors
            # occurred: … [ERROR <Name>]: …`, each check ignorable by name), here inside the
            # join's preflight phase.
            fatal(
                "error execution phase preflight: [preflight] Some fatal errors occurred:",
                *["\t" + e for e in errors],
                "[preflight] If you know what you are doing, you can make a check non-fatal with "
                "`--ignore-preflight-errors=...`",
            )
        token_id, token_secret = token.split(".")
        # Discovery (no kubeadm-facts.md row; source: discovery/token/token.go). Simulator gap:
        # the API is plain HTTP.
        api = standin.Api("http://" + flags.positional[0])
        cluster_kubeconfig = self.discover(api, token_id, token_secret)
        server, ca = kubeconfig_cluster(cluster_kubeconfig)
        if pins and public_key_pin(ca) not in pins:
            # The CA in cluster-info is not the one the join command pinned: another cluster,
            # or a man in the middle (discovery/token/token.go validateClusterCA; no row).
            fatal(
                "error execution phase preflight: couldn't validate the identity of the API "
                "Server: cluster CA found in cluster-info ConfigMap is invalid: none of the "
                f"public keys \"{public_key_pin(ca)}\" are pinned"
            )
        api = standin.Api(server)
        log("[preflight] Reading configuration from the cluster...")
        log(
            "[preflight] FYI: You can look at this config file with "
            "'kubectl -n kube-system get cm kubeadm-config -o yaml'"
        )
        _, fields = self.cluster_configuration(api, "error execution phase preflight: ")
        cluster = (fields.get("kubernetesVersion") or api.version()).lstrip("v")
        if flags.on("dry-run"):
            log("[dryrun] Finished dryrunning successfully!")
            return 0
        # No kubeadm-facts.md row; source: k/k#81056 (kubeadm 1.18, phases/join/kubelet.go):
        # a machine may not take the name of a Node that is Ready, as a second kubelet would
        # then post that Node's status. A NotReady Node (a reinstalled machine's) is taken over.
        if self.rules.get("join_refuses_ready_node", parse(self.version)[1] >= 18):
            existing = api.node(node_name)
            if existing is not None and node_ready(existing):
                fatal(
                    f"error execution phase kubelet-start: a Node with name \"{node_name}\" and "
                    "status \"Ready\" already exists in the cluster. You must delete the existing "
                    "Node or change the name of this new joining Node"
                )
        standin.write("/etc/kubernetes/pki/ca.crt", ca)
        standin.write(
            "/etc/kubernetes/bootstrap-kubelet.conf",
            node_kubeconfig(server, ca, "tls-bootstrap-token-user", token=token),
            0o600,
        )
        self.write_kubelet_config(api, cluster, "error execution phase kubelet-start: ")
        socket = flags.get("cri-socket") or detect_cri_socket()
        flags_env = self.kubelet_flags(socket, node_name, flags.get("node-name"))
        standin.write("/var/lib/kubelet/kubeadm-flags.env", flags_env)
        log(
            "[kubelet-start] Writing kubelet environment file with flags to file "
            "\"/var/lib/kubelet/kubeadm-flags.env\""
        )
        log("[kubelet-start] Starting the kubelet")
        standin.systemctl("restart", "kubelet")
        log("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...")
        deadline = time.time() + self.rules.get("tls_bootstrap_timeout", 20)
        while standin.read("/etc/kubernetes/kubelet.conf") is None:
            if time.time() > deadline:
                fatal("error execution phase kubelet-start: timed out waiting for the condition")
            time.sleep(0.2)
        standin.path("/etc/kubernetes/bootstrap-kubelet.conf").unlink(missing_ok=True)
        log(
            f"[patchnode] Uploading the CRI Socket information \"{socket}\" to the Node API "
            f"object \"{node_name}\" as an annotation"
        )
        api.annotate_node(node_name, "kubeadm.alpha.kubernetes.io/cri-socket", socket)
        log("")
        log("This node has joined the cluster:")
        log("* Certificate signing request was sent to apiserver and a response was received.")
        log("* The Kubelet was informed of the new secure connection details.")
        log("")
        log("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")
        return 0

    def join_preflight(self, flags, ignored):
        """The host checks of `kubeadm join` on a worker (RunJoinNodeChecks): root, no kubeadm
        files left behind, an empty manifests directory, a running container runtime, a kubelet
        kubeadm supports."""
        errors = []

        def check(name, failed, message):
            if failed and name.lower() not in ignored and "all" not in ignored:
                errors.append(f"[ERROR {name}]: {message}")

        # kubeadm-facts.md §2, preflight row `IsPrivilegedUser` (root check).
        check("IsPrivilegedUser", os.geteuid() != 0, "user is not running as root")
        # What `kubeadm init`/`join` left behind and `kubeadm reset` removes. No kubeadm-facts.md
        # row; source: preflight/checks.go (DirAvailableCheck, FileAvailableCheck: the check's
        # name is the path with "/" made "-", dots kept, as field reports of these errors show).
        manifests = standin.path("/etc/kubernetes/manifests")
        check(
            "DirAvailable--etc-kubernetes-manifests",
            manifests.is_dir() and any(manifests.iterdir()),
            "/etc/kubernetes/manifests is not empty",
        )
        for file in [
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/bootstrap-kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
        ]:
            name = "FileAvailable-" + file.replace("/", "-")
            check(name, standin.read(file) is not None, f"{file} already exists")
        # No row; source: preflight/checks.go (CRICheck). The socket kubeadm-facts.md §5 and §8
        # name for each runtime must answer.
        socket = flags.get("cri-socket") or detect_cri_socket()
        check(
            "CRI",
            socket is None,
            "container runtime is not running: no CRI socket found (containerd, CRI-O or "
            "Docker)",
        )
        # kubeadm-facts.md §1, last paragraph: the join preflight's `KubeletVersion` check
        # moved from n-1 to n-3 with k/k#120825 (kubeadm 1.29), as the kubelet skew rule
        # of the same section (N=1 for kubeadm <=1.28, N=3 for >=1.29). Only minors count.
        # A worker's join compares the kubelet with kubeadm only: the control plane's version
        # is not known before discovery.
        kubelet = installed_kubelet_version()
        major, minor, _ = parse(self.version)
        lowest = minor - (3 if minor >= 29 else 1)
        if kubelet:
            kubelet_major, kubelet_minor, _ = parse(kubelet)
            check(
                "KubeletVersion",
                (kubelet_major, kubelet_minor) < (major, lowest),
                f"Kubelet version \"{kubelet}\" is lower than kubeadm can support. Please "
                "upgrade kubelet",
            )
        return errors

    def discover(self, api, token_id, token_secret):
        """cluster-info's kubeconfig once it carries the token's JWS signature; until the
        discovery timeout (five minutes in the real kubeadm) it is asked again."""
        deadline = time.time() + self.rules.get("discovery_timeout", 5)
        while True:
            info = api.config_map("kube-public", "cluster-info")
            data = (info or {}).get("data", {})
            signature = data.get(f"jws-kubeconfig-{token_id}")
            if signature:
                if detached_jws(data["kubeconfig"], token_id, token_secret) != signature:
                    fatal(
                        "error execution phase preflight: couldn't validate the identity of the "
                        "API Server: failed to verify JWS signature of received cluster info "
                        "object, can't trust this API Server"
                    )
                return data["kubeconfig"]
            if time.time() > deadline:
                # The retrying discovery ends with the last reason it retried; the one-shot
                # discovery of older releases said the token id was invalid. The release that
                # switched (1.19 here) is UNCONFIRMED; no kubeadm-facts.md row.
                if parse(self.version)[1] >= 19:
                    fatal(
                        "error execution phase preflight: couldn't validate the identity of the "
                        "API Server: could not find a JWS signature in the cluster-info ConfigMap "
                        f"for token ID \"{token_id}\""
                    )
                fatal(
                    "error execution phase preflight: couldn't validate the identity of the API "
                    f"Server: token id \"{token_id}\" is invalid for this cluster or it has "
                    "expired. Use \"kubeadm token create\" on the control-plane node to create a "
                    "new valid token"
                )
            time.sleep(0.5)

    def kubelet_flags(self, socket, node_name, explicit_name):
        """kubeadm-flags.env as join writes it for this version (kubeadm-facts §5)."""
        minor = parse(self.version)[1]
        repository = self.rules["image_repository"]
        args = []
        if "docker" in socket and minor < 24:
            args.append("--network-plugin=cni")
        else:
            if minor < 26:
                args.append("--container-runtime=remote")
            endpoint = socket if minor < 24 or socket.startswith("unix://") else "unix://" + socket
            args.append(f"--container-runtime-endpoint={endpoint}")
        if explicit_name:
            args.append(f"--hostname-override={node_name}")
        args.append(f"--pod-infra-container-image={repository}/pause:{self.rules.get('pause', '3.2')}")
        return f"KUBELET_KUBEADM_ARGS=\"{' '.join(args)}\"\n"

    def reset(self, args):
        flags = Flags(
            args,
            {"force", "dry-run", "cleanup-tmp-dir"},
            {"cert-dir", "cri-socket", "ignore-preflight-errors", "kubeconfig", "skip-phases", "config", "v"},
            "kubeadm reset",
        )
        ignored = {e.lower() for e in (flags.get("ignore-preflight-errors") or "").split(",") if e}
        # kubeadm-facts.md §2, preflight row `IsPrivilegedUser`: reset checks for root first.
        if os.geteuid() != 0 and "isprivilegeduser" not in ignored and "all" not in ignored:
            fatal(
                "[preflight] Some fatal errors occurred:",
                "\t[ERROR IsPrivilegedUser]: user is not running as root",
            )
        # kubeadm-facts.md §2, prompt row: the same `[y/N]` confirmation and refusal as
        # `upgrade apply` (that reset shares the helper is not in the row itself); `-f` skips it.
        if not (flags.on("force") or flags.on("dry-run")):
            log(
                "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' "
                "will be reverted."
            )
            print("[reset] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
            if sys.stdin.readline().strip().lower() != "y":
                fatal("won't proceed; the user didn't answer (Y|y) in order to continue")
        log("[preflight] Running pre-flight checks")
        if flags.on("dry-run"):
            log("[dryrun] Would stop the kubelet service and delete kubeadm's files")
            return 0
        log("[reset] Stopping the kubelet service")
        standin.systemctl("stop", "kubelet")
        log("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"")
        cert_dir = flags.get("cert-dir", "/etc/kubernetes/pki")
        config_dirs = ["/etc/kubernetes/manifests", cert_dir]
        for directory in config_dirs:
            empty_directory(directory)
        log(f"[reset] Deleting contents of config directories: [{' '.join(config_dirs)}]")
        files = [
            f"/etc/kubernetes/{name}.conf"
            for name in ["admin", "kubelet", "bootstrap-kubelet", "controller-manager", "scheduler"]
        ]
        for file in files:
            standin.path(file).unlink(missing_ok=True)
        log(f"[reset] Deleting files: [{' '.join(files)}]")
        stateful = ["/var/lib/kubelet", "/var/lib/etcd"]
        for directory in stateful:
            empty_directory(directory)
        log(f"[reset] Deleting contents of stateful directories: [{' '.join(stateful)}]")
        if flags.on("cleanup-tmp-dir"):
            empty_directory("/etc/kubernetes/tmp")
        log("")
        log("The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d")
        log("")
        log("The reset process does not reset or clean up iptables rules or IPVS tables.")
        log("If you wish to reset iptables, you must do so manually by using the \"iptables\" command.")
        log("")
        log("The reset process does not clean your kubeconfig files and you must remove them manually.")
        log("Please, check the contents of the $HOME/.kube/config file.")
        return 0

    # -- commands ----------------------------------------------------------------------------

    def version_command(self, args):
        flags = Flags(args, set(), {"output", "o"}, "kubeadm version")
        output = flags.get("output") or flags.get("o")
        major, minor, _ = parse(self.version)
        if output == "short":
            log(gv(self.version))
        else:
            log(
                f"kubeadm version: &version.Info{{Major:\"{major}\", Minor:\"{minor}\", "
                f"GitVersion:\"{gv(self.version)}\", GitTreeState:\"clean\", "
                f"GoVersion:\"go1.20\", Compiler:\"gc\", Platform:\"linux/amd64\"}}"
            )

    def apply_flag_sets(self):
        booleans = {
            "yes",
            "force",
            "dry-run",
            "etcd-upgrade",
            "allow-experimental-upgrades",
            "allow-release-candidate-upgrades",
            "print-config",
        }
        values = {"config", "ignore-preflight-errors", "kubeconfig", "v"}
        booleans.update(self.rules.get("apply_bool_flags", []))
        values.update(self.rules.get("apply_value_flags", []))
        return booleans, values

    def upgrade_apply(self, args):
        booleans, values = self.apply_flag_sets()
        flags = Flags(args, booleans, values, "kubeadm upgrade apply")
        kubeconfig = flags.get("kubeconfig", "/etc/kubernetes/admin.conf")
        ignored = {e.lower() for e in (flags.get("ignore-preflight-errors") or "").split(",") if e}
        if os.geteuid() != 0 and "isprivilegeduser" not in ignored and "all" not in ignored:
            fatal(
                "[preflight] Some fatal errors occurred:",
                "\t[ERROR IsPrivilegedUser]: user is not running as root",
            )
        if not flags.positional:
            fatal(
                "[upgrade/version] FATAL: missing one or more required arguments. Required "
                "arguments: [version]"
            )
        target = gv(flags.positional[0])
        api = self.api(kubeconfig)
        log("[upgrade/config] Making sure the configuration is correct:")
        log("[upgrade/config] Reading configuration from the cluster...")
        _, fields = self.cluster_configuration(api, self.rules["config_error_prefix"])
        log("[preflight] Running pre-flight checks.")
        log("[upgrade] Running cluster health checks")
        self.health_checks(api, ignored | ({"all"} if "all" in ignored else set()))
        cluster = api.version()
        kubelets = [n["status"]["nodeInfo"]["kubeletVersion"] for n in api.nodes()]
        log(f"[upgrade/version] You have chosen to change the cluster version to \"{target}\"")
        log(f"[upgrade/versions] Cluster version: {cluster}")
        log(f"[upgrade/versions] kubeadm version: {gv(self.version)}")
        self.enforce(cluster, target, kubelets, flags)
        if not (flags.on("yes") or flags.on("force") or flags.on("dry-run")):
            print(
                "[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: ",
                end="",
                flush=True,
            )
            answer = sys.stdin.readline().strip().lower()
            if answer != "y":
                fatal("won't proceed; the user didn't answer (Y|y) in order to continue")
        if flags.on("dry-run"):
            log("[dryrun] Finished dryrunning successfully!")
            return 0
        repository = self.image_repository(fields)
        log(f"[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{target}\"...")
        node_name = node_name_here()
        self.upgrade_static_pods(
            target, repository, flags.get("etcd-upgrade", True), node_name, api
        )
        log("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace")
        config_map, _ = self.cluster_configuration(api, "")
        text = config_map["data"]["ClusterConfiguration"]
        config_map["data"]["ClusterConfiguration"] = "\n".join(
            f"kubernetesVersion: {target}" if l.startswith("kubernetesVersion:") else l
            for l in text.splitlines()
        ) + "\n"
        api.create_config_map("kube-system", "kubeadm-config", config_map["data"])
        current_name, source = self.kubelet_config_map(api, cluster)
        if source is None:
            fatal(f"configmaps \"{current_name}\" not found")
        new_name = self.kubelet_config_map_name(target)
        api.create_config_map("kube-system", new_name, source["data"])
        log(f"[kubelet] Creating a ConfigMap \"{new_name}\" in namespace kube-system with the configuration for the kubelets in the cluster")
        self.write_kubelet_config(api, target)
        self.clean_flags_file()
        behind = self.control_planes_behind(api, target)
        if self.rules["addons_after_last_control_plane"] and behind:
            log(
                "[upgrade/addons] skip upgrade addons because control plane instances "
                f"[{' '.join(behind)}] have not been upgraded"
            )
        else:
            self.upgrade_addons(api, target, repository)
        log("")
        log(f"[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!")
        log("")
        log(
            "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with "
            "upgrading your kubelets if you haven't already done so."
        )
        return 0

    def upgrade_node(self, args):
        subcommands = self.rules["upgrade_node_subcommands"]
        if args and not args[0].startswith("-"):
            sub = args[0]
            if sub == "config" and "config" in subcommands:
                return self.upgrade_node_config(args[1:])
            if sub == "phase" and self.rules["upgrade_node_bare"]:
                return self.upgrade_node_bare(args[2:], only=args[1] if len(args) > 1 else None)
            if sub not in subcommands:
                fatal(f"unknown command \"{sub}\" for \"kubeadm upgrade node\"")
        if not self.rules["upgrade_node_bare"]:
            log("Upgrade commands for a node in the cluster. Currently only supports upgrading the configuration, not the kubelet itself.")
            log("")
            log("Usage:\n  kubeadm upgrade node [command]")
            log("")
            log("Available Commands:")
            for sub in subcommands:
                log(f"  {sub}")
            return 0
        return self.upgrade_node_bare(args)

    def upgrade_node_config(self, args):
        flags = Flags(args, {"dry-run"}, {"kubelet-version", "kubeconfig", "v"}, "kubeadm upgrade node config")
        kubelet_version = flags.get("kubelet-version")
        if not kubelet_version:
            fatal("the --kubelet-version argument is required")
        api = self.api(flags.get("kubeconfig", "/etc/kubernetes/kubelet.conf"))
        if flags.on("dry-run"):
            log("[dryrun] Finished dryrunning successfully!")
            return 0
        self.write_kubelet_config(api, kubelet_version)
        log("[upgrade] The configuration for this node was successfully updated!")
        log("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
        return 0

    def upgrade_node_bare(self, args, only=None):
        booleans = {"dry-run", "etcd-upgrade"}
        values = {"kubeconfig", "ignore-preflight-errors", "v"}
        booleans.update(self.rules.get("node_bool_flags", []))
        values.update(self.rules.get("node_value_flags", []))
        flags = Flags(args, booleans, values, "kubeadm upgrade node")
        if os.geteuid() != 0:
            fatal(
                "[preflight] Some fatal errors occurred:",
                "\t[ERROR IsPrivilegedUser]: user is not running as root",
            )
        control_plane = standin.read("/etc/kubernetes/manifests/kube-apiserver.yaml") is not None
        default = "/etc/kubernetes/admin.conf" if control_plane else "/etc/kubernetes/kubelet.conf"
        api = self.api(flags.get("kubeconfig", default))
        log("[upgrade] Reading configuration from the cluster...")
        log("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'")
        _, fields = self.cluster_configuration(api, "")
        version = fields.get("kubernetesVersion") or api.version()
        # Simulator gap: it cannot store the kubernetesVersion `upgrade apply` wrote; the API
        # server's version, which apply moved, says the same.
        served = api.version()
        if parse(served) > parse(version):
            version = served
        if self.rules.get("node_preflight", True):
            log("[preflight] Running pre-flight checks")
        if flags.on("dry-run"):
            log("[dryrun] Finished dryrunning successfully!")
            return 0
        repository = self.image_repository(fields)
        if control_plane and only in (None, "control-plane"):
            log(f"[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"{version}\"...")
            self.upgrade_static_pods(
                version, repository, flags.get("etcd-upgrade", True), node_name_here(), api
            )
            log("[upgrade] The control plane instance for this node was successfully updated!")
            if self.rules["addons_after_last_control_plane"] and not self.control_planes_behind(api, version):
                self.upgrade_addons(api, version, repository)
        elif not control_plane:
            log("[upgrade] Skipping phase. Not a control plane node.")
        if only in (None, "kubelet-config"):
            kubelet_version = flags.get("kubelet-version") or version
            self.write_kubelet_config(api, kubelet_version)
            self.clean_flags_file()
        log("[upgrade] The configuration for this node was successfully updated!")
        log("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
        return 0

    def upgrade_plan(self, args):
        flags = Flags(args, {"allow-experimental-upgrades", "allow-release-candidate-upgrades", "print-config"}, {"config", "kubeconfig", "ignore-preflight-errors", "v", "output", "o"}, "kubeadm upgrade plan")
        api = self.api(flags.get("kubeconfig", "/etc/kubernetes/admin.conf"))
        log("[upgrade/config] Making sure the configuration is correct:")
        log("[upgrade/config] Reading configuration from the cluster...")
        self.cluster_configuration(api, self.rules["config_error_prefix"])
        log("[preflight] Running pre-flight checks.")
        log("[upgrade] Running cluster health checks")
        self.health_checks(api, set())
        cluster = api.version()
        log("[upgrade] Fetching available versions to upgrade to")
        log(f"[upgrade/versions] Cluster version: {cluster}")
        log(f"[upgrade/versions] kubeadm version: {gv(self.version)}")
        if parse(self.version) > parse(cluster):
            log("")
            log("You can now apply the upgrade by executing the following command:")
            log("")
            log(f"\tkubeadm upgrade apply {gv(self.version)}")
        else:
            log("")
            log("Awesome, you're up-to-date! Enjoy!")
        return 0

    def main(self, args):
        if not args:
            log("kubeadm: easily bootstrap a secure Kubernetes cluster")
            return 0
        command, rest = args[0], args[1:]
        if command == "version":
            return self.version_command(rest)
        if command == "token":
            return self.token_command(rest)
        if command == "join":
            return self.join(rest)
        if command == "reset":
            return self.reset(rest)
        if command == "upgrade":
            if not rest:
                log("Upgrade your cluster smoothly to a newer version with this command")
                return 0
            sub, rest = rest[0], rest[1:]
            if sub == "apply":
                return self.upgrade_apply(rest)
            if sub == "node":
                return self.upgrade_node(rest)
            if sub == "plan":
                return self.upgrade_plan(rest)
            fatal(f"unknown command \"{sub}\" for \"kubeadm upgrade\"")
        fatal(f"unknown command \"{command}\" for \"kubeadm\"")
        return 1


def image_tag(manifest_or_image):
    for line in manifest_or_image.splitlines() or [manifest_or_image]:
        line = line.strip()
        if line.startswith("image:"):
            line = line.split(":", 1)[1].strip()
        if ":" in line and "/" in line:
            return line.rsplit(":", 1)[1]
    return None


def etcd_tag_newer(current, new):
    def key(tag):
        core, _, revision = tag.partition("-")
        return parse(core) + (int(revision or 0),)

    try:
        return key(current) > key(new)
    except ValueError:
        return False


def replace_image(manifest, component, image):
    lines = []
    for line in manifest.splitlines():
        stripped = line.strip()
        if stripped.startswith("image:") and f"/{component}:" in stripped:
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}image: {image}"
        lines.append(line)
    return "\n".join(lines) + "\n"


TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
# The token format as kubeadm names it in its refusal: the cluster-bootstrap library's
# BootstrapTokenPattern, quoted as Go's %q quotes it.
TOKEN_FORM = r'"\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z"'


def go_duration(text):
    """Seconds of a Go duration (`24h0m0s`, `30m`, `1h30m`, `0`)."""
    if text.strip() in ("0", ""):
        return 0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        fatal(f"invalid argument \"{text}\" for \"--ttl\" flag: time: invalid duration \"{text}\"")
    return sum(float(n) * units[u] for n, u in parts)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_jws(payload, token_id, token_secret):
    """The detached JWS (HS256, the token secret as key) the bootstrap signer puts in
    cluster-info: `header..signature`."""
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    body = b64url(payload.encode())
    signature = hmac.new(token_secret.encode(), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}..{b64url(signature.digest())}"


def kubeconfig_cluster(text):
    """(server, CA PEM) of a kubeconfig's first cluster; the CA from certificate-authority-data
    or the file certificate-authority names."""
    import yaml

    config = yaml.safe_load(text) or {}
    cluster = ((config.get("clusters") or [{}])[0] or {}).get("cluster") or {}
    ca = None
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        ca = standin.read(cluster["certificate-authority"])
    return cluster.get("server", ""), ca


def public_key_pin(ca_pem):
    """`sha256:` of the CA's SubjectPublicKeyInfo, as --discovery-token-ca-cert-hash wants."""
    der = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout"],
        input=ca_pem.encode(),
        capture_output=True,
        check=True,
    ).stdout
    spki = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"],
        input=der,
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def node_kubeconfig(server, ca, user, token=None):
    auth = f"\n    token: {token}" if token else " {}"
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n"
        f"    certificate-authority-data: {base64.b64encode(ca.encode()).decode()}\n"
        f"    server: {server}\n"
        f"contexts:\n- name: {user}@kubernetes\n  context:\n    cluster: kubernetes\n"
        f"    user: {user}\ncurrent-context: {user}@kubernetes\n"
        f"users:\n- name: {user}\n  user:{auth}\n"
    )


def detect_cri_socket():
    """The CRI socket that listens: containerd, CRI-O, or Docker's (dockershim)."""
    import socket as sockets

    def listens(path):
        probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        try:
            probe.connect(str(standin.path(path)))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    if listens("/var/run/docker.sock"):
        return "/var/run/dockershim.sock"
    for path in ["/run/containerd/containerd.sock", "/var/run/crio/crio.sock"]:
        if listens(path):
            return path
    return None


def installed_kubelet_version():
    """`kubelet --version` of the node; on the test machine (STANDIN_ROOT set) the version a
    test gives in STANDIN_KUBELET_VERSION, as the host's own kubelet is none of the node's."""
    if os.environ.get("STANDIN_ROOT"):
        return os.environ.get("STANDIN_KUBELET_VERSION")
    try:
        out = subprocess.run(["kubelet", "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    words = out.stdout.split()
    return words[-1].lstrip("v") if words else None


def node_ready(node):
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", [])
    )


def empty_directory(inside):
    directory = standin.path(inside)
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def node_name_here():
    override = os.environ.get("STANDIN_NODE_NAME")
    if override:
        return override
    return os.uname().nodename


def main(args):
    return Kubeadm().main(args)


if __name__ == "__main__":
    standin.run_main(main)
