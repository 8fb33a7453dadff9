"""The official Kubernetes Python client against the simulator (argv[1]: kubeconfig).

Each check asserts what a real apiserver answers; the upstream source is named beside it.
Prints one line per check; any failure raises and exits non-zero.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()


def check(name):
    print(f"ok {name}", flush=True)


# /version reports the control plane's version (the kube-apiserver image tag in the snapshot).
assert client.VersionApi().get_code().git_version == "v1.28.9"
check("version")

# pkg/registry/core/pod/storage/eviction.go: the budget allows one disruption of shop/web
# (minAvailable 2 of 3); the second eviction is 429 with the DisruptionBudget cause.
pods = core.list_namespaced_pod(
    "shop", label_selector="app=web", field_selector="spec.nodeName=worker-1"
).items
assert len(pods) == 2, [p.metadata.name for p in pods]
def evict(name):
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="shop"))
    return core.create_namespaced_pod_eviction(name, "shop", body)
evict(pods[0].metadata.name)
try:
    evict(pods[1].metadata.name)
    raise AssertionError("the second eviction was admitted")
except ApiException as e:
    assert e.status == 429, e
    import json
    status = json.loads(e.body)
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget.", status
    cause = status["details"]["causes"][0]
    assert cause["reason"] == "DisruptionBudget", cause
    assert cause["message"] == "The disruption budget web needs 2 healthy pods and has 2 currently", cause
check("eviction blocked by budget")

# A pod being deleted shows its deletion timestamp and is no longer Ready.
evicted = core.read_namespaced_pod(pods[0].metadata.name, "shop")
assert evicted.metadata.deletion_timestamp is not None
ready = [c for c in evicted.status.conditions if c.type == "Ready"][0]
assert ready.status == "False", ready
check("graceful deletion visible")

# pkg/controller/deployment: a template change rolls out; status tells when it is done.
apps.patch_namespaced_deployment(
    "web", "shop",
    {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.example.com/shop/web:2.0.0"}]}}}},
)
deadline = time.time() + 60
while True:
    d = apps.read_namespaced_deployment_status("web", "shop")
    s = d.status
    if (s.observed_generation >= d.metadata.generation and s.updated_replicas == 3
            and s.replicas == 3 and s.available_replicas == 3):
        break
    assert time.time() < deadline, s
    time.sleep(0.2)
images = {p.spec.containers[0].image for p in core.list_namespaced_pod("shop", label_selector="app=web").items
          if p.metadata.deletion_timestamp is None}
assert images == {"registry.example.com/shop/web:2.0.0"}, images
check("deployment rollout")

# ConfigMaps are writable; a paginated list is one consistent snapshot
# (k8s.io/apiserver/pkg/storage/etcd3/store.go GetList: later pages read at the first's revision).
for name in ("a", "b", "c"):
    core.create_namespaced_config_map("shop", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": name}))
page = core.list_namespaced_config_map("shop", limit=2)
assert [c.metadata.name for c in page.items] == ["a", "b"]
assert page.metadata.remaining_item_count == 1, page.metadata
core.delete_namespaced_config_map("c", "shop")
rest = core.list_namespaced_config_map("shop", limit=2, _continue=page.metadata._continue)
assert [c.metadata.name for c in rest.items] == ["c"], rest.items
check("consistent pagination")

# etcd3/store.go: "specifying resource version is not allowed when using continue" (400).
try:
    core.list_namespaced_config_map("shop", limit=2, _continue=page.metadata._continue, resource_version="1")
    raise AssertionError("continue with resourceVersion was accepted")
except ApiException as e:
    assert e.status == 400, e
check("continue with resourceVersion refused")

# A watch from a resourceVersion older than the server keeps is 410 Gone
# (k8s.io/apiserver/pkg/storage/cacher: "too old resource version").
try:
    for _ in watch.Watch().stream(core.list_namespaced_pod, "shop", resource_version="1", timeout_seconds=5):
        raise AssertionError("a watch from resourceVersion 1 replayed history")
    raise AssertionError("the watch ended without an error")
except ApiException as e:
    assert e.status == 410, e
check("watch too old is 410")
