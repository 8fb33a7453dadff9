"""What the kubeadm, kubelet, kubectl and CRI-O stand-ins share: their version and its data
file, the node's files, and the cluster's API (the simulator).

Each stand-in package installs this module beside its tool in /usr/lib/<package>/, with
`version.toml`: the data file of its minor (tests/standins/versions/1.NN.toml) and its exact
version. On the test machine (unit tests), STANDIN_VERSION and STANDIN_DATA_DIR say which data
file to read and STANDIN_ROOT is where the node's filesystem starts.
"""

import base64
import json
import os
import pathlib
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent


class Fatal(Exception):
    """Ends the tool with this message on stderr and exit code 1."""


def load_data():
    """The version's data: `version` (1.21.14) and the sections of its minor's file."""
    version = os.environ.get("STANDIN_VERSION")
    if version:
        directory = pathlib.Path(os.environ["STANDIN_DATA_DIR"])
        data = tomllib.loads((directory / f"{minor_key(version)}.toml").read_text())
        data["version"] = version.lstrip("v")
        return data
    return tomllib.loads((HERE / "version.toml").read_text())


def minor_key(version):
    major, minor = parse(version)[:2]
    return f"{major}.{minor}"


def parse(version):
    """`v1.21.14` -> (1, 21, 14); pre-release suffixes are ignored."""
    core = version.lstrip("v").split("-")[0].split("+")[0]
    parts = [int(p) for p in core.split(".")]
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts[:3])


def root():
    return pathlib.Path(os.environ.get("STANDIN_ROOT", "/"))


def path(inside):
    """A node path under the stand-in's root."""
    return root() / inside.lstrip("/")


def read(inside):
    try:
        return path(inside).read_text()
    except FileNotFoundError:
        return None


def write(inside, text, mode=0o644):
    target = path(inside)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, mode)


def kubeconfig_server(inside):
    """The API server URL of a kubeconfig file (kubeadm's files have exactly one cluster)."""
    text = read(inside)
    if text is None:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("server:"):
            return line.split(":", 1)[1].strip()
    return None


class Api:
    """The cluster's API and the simulator's control API beside it, over plain HTTP."""

    def __init__(self, server):
        self.server = server.rstrip("/")

    def request(self, method, url_path, body=None, content_type="application/json"):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + url_path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise Fatal(f"{method} {url_path}: {error.code} {error.read().decode()[:300]}")
        except urllib.error.URLError as error:
            raise Fatal(
                f"Get \"{self.server}{url_path}\": dial tcp: {error.reason}"
            )

    def get(self, url_path):
        return self.request("GET", url_path)

    def version(self):
        return self.get("/version")["gitVersion"]

    def nodes(self):
        return self.get("/api/v1/nodes")["items"]

    def pods(self, namespace, selector=""):
        query = f"?labelSelector={selector}" if selector else ""
        return self.get(f"/api/v1/namespaces/{namespace}/pods{query}")["items"]

    def config_map(self, namespace, name):
        return self.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    def create_config_map(self, namespace, name, data):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        }
        existing = self.config_map(namespace, name)
        try:
            if existing is None:
                self.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
            else:
                body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
                self.request("PUT", f"/api/v1/namespaces/{namespace}/configmaps/{name}", body)
        except Fatal as refused:
            # Simulator gap: it serves ConfigMaps read-only. Readers fall back (see kubeadm.py).
            if "read-only" not in str(refused):
                raise
            return False
        return True

    def node(self, name):
        return self.get(f"/api/v1/nodes/{name}")

    def annotate_node(self, name, key, value):
        self.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"metadata": {"annotations": {key: value}}},
            "application/strategic-merge-patch+json",
        )

    def secret(self, namespace, name):
        return self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def create_secret(self, namespace, name, kind, data):
        """A Secret with `data` (text values, base64-encoded here as the API stores them)."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": kind,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)

    def set_image(self, kind, namespace, name, container, image):
        plural = {"Deployment": "deployments", "DaemonSet": "daemonsets"}[kind]
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        self.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}",
            patch,
            "application/strategic-merge-patch+json",
        )

    def pod(self, namespace, name):
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def patch_pod_status(self, namespace, name, status):
        """What a kubelet writes to a static pod's mirror pod."""
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            "application/merge-patch+json",
        )

    def report_node(self, name, **fields):
        """What a kubelet reports about its node (`/sim/nodes/NAME`)."""
        self.request("PUT", f"/sim/nodes/{name}", fields)

    def move_control_plane(self, version, node):
        self.request("PUT", "/sim/control-plane", {"version": version, "node": node})


def unit_active(unit):
    """`systemctl is-active UNIT` on the node; unit tests on the test machine say it with
    STANDIN_ACTIVE_UNITS (space separated)."""
    listed = os.environ.get("STANDIN_ACTIVE_UNITS")
    if listed is not None:
        return unit in listed.split()
    result = subprocess.run(
        ["systemctl", "is-active", "--quiet", unit], check=False
    )
    return result.returncode == 0


def systemctl(action, unit):
    """`systemctl ACTION UNIT` on the node; a no-op in unit tests on the test machine
    (STANDIN_ROOT set), whose own services are none of a stand-in's business."""
    if os.environ.get("STANDIN_ROOT"):
        return
    subprocess.run(["systemctl", action, unit], check=False)


def log(message):
    print(message, flush=True)


def err(message):
    print(message, file=sys.stderr, flush=True)


def run_main(main):
    try:
        code = main(sys.argv[1:])
    except Fatal as fatal:
        err(str(fatal))
        code = 1
    sys.exit(code or 0)
