"""CRI-O stand-in: `crio --version`, and as the `crio` service a listener on CRI-O's socket
with the cgroup manager of its configuration (kubeadm-facts.md §8), which kubelet checks."""

import os
import pathlib
import signal
import socket
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import standin  # noqa: E402
from standin import log  # noqa: E402

SOCKET = "/var/run/crio/crio.sock"


def notify_ready():
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect(address)
        notify.send(b"READY=1")


def main(args):
    version = standin.load_data()["version"]
    if args[:1] in (["--version"], ["version"], ["-v"]):
        log(f"crio version {version}")
        return 0
    path = standin.path(SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)

    def stop(_signum, _frame):
        path.unlink(missing_ok=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    log(f"CRI-O {version} listening on {SOCKET}")
    notify_ready()
    while True:
        connection, _ = server.accept()
        connection.close()


if __name__ == "__main__":
    standin.run_main(main)
