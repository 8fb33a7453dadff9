"""kubelet stand-in: a long-running service that starts as the version in its data file does
(kubeadm-facts.md §5) and then reports its node to the cluster (the simulator).

systemd gives it its real command line, built by the real unit and drop-in from the real flag
files (`kubeadm-flags.env`, `/etc/default/kubelet`, `/etc/sysconfig/kubelet`, Arch's
`/etc/kubernetes/kubelet.env`). It refuses what that version refuses, in this order: a flag
the version no longer has, a missing config file, no runtime endpoint, a runtime socket nobody
listens on, a cgroup driver other than the runtime's. Then it reports NotReady at its version,
and Ready `ready_delay` seconds later; stopped, it reports NotReady.

It runs the node's kube-apiserver static pod as far as the cluster can see it: a manifest that
does not load as a Pod with an image leaves the mirror pod in CrashLoopBackOff (not Ready); a
loadable one makes it Running and Ready again, and when its image's version is not the one the
mirror pod shows (a manifest put back by hand, not by kubeadm), the simulator's control plane
moves to it, as the node's apiserver would answer with that version.
"""

import base64
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import tomllib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import standin  # noqa: E402
from standin import Fatal, err, log, parse  # noqa: E402

BOOLEAN_FLAGS = {"version", "help", "h", "v", "register-node", "fail-swap-on"}


def parse_flags(args):
    flags = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq and name not in BOOLEAN_FLAGS and i + 1 < len(args) and not args[i + 1].startswith("-"):
            i += 1
            value = args[i]
        flags[name] = value if (eq or value) else "true"
        i += 1
    return flags


def config_field(config, name):
    return config.get(name) if isinstance(config, dict) else None


def containerd_cgroup_driver():
    """containerd's runc cgroup driver, from the config file it was started with."""
    text = standin.read("/etc/containerd/config.toml") or ""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "cgroupfs"
    plugins = config.get("plugins", {})
    for key in ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"):
        cri = plugins.get(key, {})
        runc = cri.get("containerd", cri).get("runtimes", {}).get("runc", {})
        if runc.get("options", {}).get("SystemdCgroup") is True:
            return "systemd"
    return "cgroupfs"


def crio_cgroup_driver():
    """CRI-O's cgroup_manager (default systemd), the drop-ins winning over crio.conf."""
    manager = "systemd"
    files = [standin.path("/etc/crio/crio.conf")]
    conf_d = standin.path("/etc/crio/crio.conf.d")
    if conf_d.is_dir():
        files += sorted(conf_d.glob("*.conf"))
    for file in files:
        try:
            config = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        value = config.get("crio", {}).get("runtime", {}).get("cgroup_manager")
        if value:
            manager = value
    return manager


def docker_cgroup_driver():
    """dockerd's cgroup driver: `native.cgroupdriver` in daemon.json's exec-opts, else cgroupfs."""
    import json

    try:
        config = json.loads(standin.read("/etc/docker/daemon.json") or "{}")
    except ValueError:
        return "cgroupfs"
    for option in config.get("exec-opts", []):
        if option.startswith("native.cgroupdriver="):
            return option.split("=", 1)[1]
    return "cgroupfs"


def runtime_of(endpoint):
    if "containerd" in endpoint:
        return "containerd"
    if "crio" in endpoint:
        return "crio"
    if "docker" in endpoint:
        return "docker"
    return "unknown"


def runtime_version(runtime):
    command = {
        "containerd": ["containerd", "--version"],
        "crio": ["crio", "--version"],
        "docker": ["docker", "version", "--format", "{{.Server.Version}}"],
    }.get(runtime)
    if not command:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return None
    for word in out.split():
        core = word.split("~")[0].split("-")[0].split("+")[0].lstrip("v")
        if core[:1].isdigit() and core.count(".") >= 1:
            name = "cri-o" if runtime == "crio" else runtime
            return f"{name}://{core}"
    return None


def socket_listens(address):
    path = address[len("unix://"):] if address.startswith("unix://") else address
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(standin.path(path)))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class Kubelet:
    def __init__(self):
        self.data = standin.load_data()
        self.version = self.data["version"]
        self.rules = self.data["kubelet"]

    def check(self, args):
        """The start-up checks; returns what the node will report, or raises Fatal."""
        flags = parse_flags(args)
        for arg in args:
            name = arg.split("=")[0]
            if name in self.rules["removed_flags"]:
                raise Fatal(f"Error: failed to parse kubelet flag: unknown flag: {name}")
        config = {}
        config_path = flags.get("config")
        if config_path:
            text = standin.read(config_path)
            if text is None:
                raise Fatal(
                    f"E0101 00:00:00.000000 run.go:74] \"command failed\" err=\"failed to load "
                    f"kubelet config file, path: {config_path}, error: failed to load Kubelet "
                    f"config file {config_path}, error failed to read kubelet config file "
                    f"\\\"{config_path}\\\", error: open {config_path}: no such file or directory\""
                )
            import yaml

            config = yaml.safe_load(text) or {}
            if config.get("kind") != "KubeletConfiguration":
                raise Fatal(f"failed to load Kubelet config file {config_path}: no kind \"KubeletConfiguration\"")
        kubeconfig = flags.get("kubeconfig")
        bootstrap = None
        if not kubeconfig or standin.read(kubeconfig) is None:
            bootstrap = flags.get("bootstrap-kubeconfig")
            if not bootstrap or standin.read(bootstrap) is None:
                raise Fatal(
                    "failed to run Kubelet: unable to load bootstrap kubeconfig: stat "
                    f"{bootstrap or '/etc/kubernetes/bootstrap-kubelet.conf'}: no such file or directory"
                )
        runtime_flag = flags.get("container-runtime", "docker" if self.rules["dockershim"] else "remote")
        endpoint = flags.get("container-runtime-endpoint") or config_field(config, "containerRuntimeEndpoint") or ""
        if runtime_flag != "remote" and self.rules["dockershim"]:
            # dockershim inside kubelet talks to dockerd's socket; the flag's endpoint is
            # dockershim's own (default unix:///var/run/dockershim.sock).
            endpoint = "unix:///var/run/docker.sock"
        if not endpoint:
            raise Fatal(
                "E0101 00:00:00.000000 run.go:74] \"command failed\" err=\"failed to validate "
                "kubelet flags: the container runtime endpoint address was not specified or "
                "empty, use --container-runtime-endpoint to set\""
            )
        if not socket_listens(endpoint) and runtime_of(endpoint) == "docker":
            raise Fatal(
                "failed to run Kubelet: failed to create kubelet: failed to get docker version: "
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the "
                "docker daemon running?"
            )
        if not socket_listens(endpoint):
            path = endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint
            raise Fatal(
                "E0101 00:00:00.000000 run.go:74] \"command failed\" err=\"failed to run "
                "Kubelet: validate service connection: validate CRI v1 runtime API for "
                f"endpoint \\\"{endpoint}\\\": rpc error: code = Unavailable desc = connection "
                f"error: desc = \\\"transport: Error while dialing: dial unix {path}: connect: "
                "no such file or directory\\\"\""
            )
        runtime = runtime_of(endpoint)
        kubelet_driver = flags.get("cgroup-driver") or config_field(config, "cgroupDriver") or "cgroupfs"
        runtime_driver = {
            "containerd": containerd_cgroup_driver,
            "crio": crio_cgroup_driver,
            "docker": docker_cgroup_driver,
        }.get(
            runtime, lambda: kubelet_driver
        )()
        if kubelet_driver != runtime_driver:
            raise Fatal(
                "E0101 00:00:00.000000 run.go:74] \"command failed\" err=\"failed to run "
                f"Kubelet: misconfiguration: kubelet cgroup driver: \\\"{kubelet_driver}\\\" is "
                f"different from {runtime} cgroup driver: \\\"{runtime_driver}\\\"\""
            )
        name = flags.get("hostname-override") or os.uname().nodename
        return {
            "name": name,
            "server": standin.kubeconfig_server(bootstrap or kubeconfig),
            "runtime": runtime_version(runtime),
            "bootstrap": (bootstrap, kubeconfig) if bootstrap else None,
        }

    def tls_bootstrap(self, report):
        """The TLS bootstrap: the bootstrap kubeconfig's token authenticates as the API server's
        token authenticator does (the Secret `bootstrap-token-<id>` in kube-system: its secret,
        its expiry, its usage); then the node's own kubeconfig is written where --kubeconfig
        says. The signed client certificate is a placeholder (the simulator checks none)."""
        bootstrap, kubeconfig = report["bootstrap"]
        text = standin.read(bootstrap) or ""
        token = ""
        for line in text.splitlines():
            if line.strip().startswith("token:"):
                token = line.split(":", 1)[1].strip()
        token_id, _, token_secret = token.partition(".")
        api = standin.Api(report["server"])
        secret = api.secret("kube-system", f"bootstrap-token-{token_id}") if token_id else None
        data = {
            k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data") or {}).items()
        }
        expiration = data.get("expiration")
        valid = (
            secret is not None
            and data.get("token-secret") == token_secret
            and data.get("usage-bootstrap-authentication") == "true"
            and (not expiration or expiration > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        )
        if not valid:
            raise Fatal(
                "E0101 00:00:00.000000 run.go:74] \"command failed\" err=\"failed to run "
                "Kubelet: cannot create certificate signing request: Unauthorized\""
            )
        certificate = "/var/lib/kubelet/pki/kubelet-client-current.pem"
        standin.write(certificate, "-----BEGIN CERTIFICATE-----\n(signed by the cluster)\n", 0o600)
        node_config = []
        for line in text.splitlines():
            if line.strip().startswith("token:"):
                indent = line[: len(line) - len(line.lstrip())]
                node_config.append(f"{indent}client-certificate: {certificate}")
                node_config.append(f"{indent}client-key: {certificate}")
            else:
                node_config.append(line.replace("tls-bootstrap-token-user", "default-auth"))
        standin.write(kubeconfig or "/etc/kubernetes/kubelet.conf", "\n".join(node_config) + "\n", 0o600)
        log(f"kubelet: TLS bootstrap done; wrote {kubeconfig}")

    def serve(self, report):
        api = standin.Api(report["server"])
        fields = {"kubeletVersion": "v" + self.version}
        if report["runtime"]:
            fields["containerRuntimeVersion"] = report["runtime"]

        def stop(_signum, _frame):
            try:
                api.report_node(report["name"], ready=False)
            finally:
                sys.exit(0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        api.report_node(report["name"], ready=False, **fields)
        log(f"kubelet v{self.version} started; node {report['name']} NotReady until the runtime and network settle")
        self.static_pods(api, report["name"])
        time.sleep(self.rules["ready_delay"])
        api.report_node(report["name"], ready=True)
        log(f"node {report['name']} Ready")
        while True:
            time.sleep(3600)

    def static_pods(self, api, node):
        text = standin.read("/etc/kubernetes/manifests/kube-apiserver.yaml")
        if text is None:
            return
        import yaml

        name = f"kube-apiserver-{node}"
        mirror = api.pod("kube-system", name)
        if mirror is None:
            return
        image = None
        try:
            manifest = yaml.safe_load(text)
            if isinstance(manifest, dict) and manifest.get("kind") == "Pod":
                image = manifest["spec"]["containers"][0]["image"]
        except (yaml.YAMLError, KeyError, IndexError, TypeError):
            image = None
        shown = mirror["spec"]["containers"][0].get("image", "")
        if image is None or ":" not in image:
            log(f"static pod {name}: cannot run /etc/kubernetes/manifests/kube-apiserver.yaml")
            api.patch_pod_status("kube-system", name, {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                    {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
                ],
                "containerStatuses": [{
                    "name": "kube-apiserver", "image": shown, "imageID": "", "ready": False,
                    "restartCount": 5, "started": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off 5m0s restarting failed container"}},
                }],
            })
            return
        crashing = any(
            s.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            for s in mirror.get("status", {}).get("containerStatuses", [])
        )
        if crashing:
            api.patch_pod_status("kube-system", name, {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                ],
                "containerStatuses": [{
                    "name": "kube-apiserver", "image": image, "imageID": "", "ready": True,
                    "restartCount": 6, "started": True, "state": {"running": {}},
                }],
            })
        tag = image.rsplit(":", 1)[1]
        if tag.startswith("v") and shown.rsplit(":", 1)[-1] != tag:
            api.move_control_plane(tag, node)

    def main(self, args):
        if "--version" in args or "version" in args[:1]:
            log(f"Kubernetes v{self.version}")
            return 0
        report = self.check(args)
        if os.environ.get("STANDIN_CHECK_ONLY"):
            log(f"kubelet v{self.version} would start: {report}")
            return 0
        if report["bootstrap"]:
            self.tls_bootstrap(report)
        self.serve(report)
        return 0


def main(args):
    return Kubelet().main(args)


if __name__ == "__main__":
    standin.run_main(main)
