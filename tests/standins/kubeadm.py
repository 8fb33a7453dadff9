"""kubeadm stand-in: `version`, `upgrade plan|apply|node` as the version in its data file
behaves (kubeadm-facts.md §1-§3), against the cluster's API (the simulator).

Static pods are real files in /etc/kubernetes/manifests, upgraded with kubeadm's backups under
/etc/kubernetes/tmp; the simulator's control API is told when a node's control plane moved.
A static pod only restarts while kubelet runs: with kubelet stopped, the upgrade times out and
rolls back, as the real one does after five minutes (here `static_pod_timeout` seconds).
"""

import os
import pathlib
import shutil
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


def node_name_here():
    override = os.environ.get("STANDIN_NODE_NAME")
    if override:
        return override
    return os.uname().nodename


def main(args):
    return Kubeadm().main(args)


if __name__ == "__main__":
    standin.run_main(main)
