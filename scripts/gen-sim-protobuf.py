#!/usr/bin/env python3
"""Regenerates src/sim/protobuf/schema.rs: the protobuf field tables the simulator decodes
request bodies with (kubectl 1.32+ sends built-in objects as application/vnd.kubernetes.protobuf).

The tables come from the Go API types' struct tags (`json:"…" protobuf:"bytes,3,opt,name=…"`),
which is where Kubernetes' own generated.proto files come from, so no protoc is needed.

Usage: scripts/gen-sim-protobuf.py API_CHECKOUT APIMACHINERY_CHECKOUT
  API_CHECKOUT:          a checkout of github.com/kubernetes/api
  APIMACHINERY_CHECKOUT: a checkout of github.com/kubernetes/apimachinery
Writes src/sim/protobuf/schema.rs (relative to this repository); `mod.rs` declares it with
`#[rustfmt::skip]`, one line per field.
"""

import os
import re
import sys

# (group/version, path in its checkout, which checkout)
PACKAGES = [
    ("v1", "core/v1/types.go", "api"),
    ("apps/v1", "apps/v1/types.go", "api"),
    ("policy/v1", "policy/v1/types.go", "api"),
    ("policy/v1beta1", "policy/v1beta1/types.go", "api"),
    ("batch/v1", "batch/v1/types.go", "api"),
    ("coordination.k8s.io/v1", "coordination/v1/types.go", "api"),
    ("authorization.k8s.io/v1", "authorization/v1/types.go", "api"),
    ("autoscaling/v1", "autoscaling/v1/types.go", "api"),
    ("meta/v1", "pkg/apis/meta/v1/types.go", "apimachinery"),
]

# The kinds a request body may carry, by group/version.
ROOTS = {
    "v1": ["Namespace", "ConfigMap", "Secret", "Service", "Pod", "Node", "Event", "ServiceAccount"],
    "apps/v1": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
    "policy/v1": ["PodDisruptionBudget", "Eviction"],
    "policy/v1beta1": ["PodDisruptionBudget", "Eviction"],
    "batch/v1": ["Job"],
    "coordination.k8s.io/v1": ["Lease"],
    "authorization.k8s.io/v1": ["SelfSubjectAccessReview"],
    "autoscaling/v1": ["Scale"],
    "meta/v1": ["DeleteOptions"],
}

# Go package aliases the files use, to the group/version they name.
ALIASES = {"metav1": "meta/v1", "v1": "v1", "corev1": "v1", "apiv1": "v1"}

FIELD = re.compile(r'^\s+(?:(\w+)\s+)?([\w.\[\]*]+)\s+`([^`]*)`')
TAG = re.compile(r'(\w+):"([^"]*)"')


def parse(text):
    """Structs (name -> fields) and string types of one Go file."""
    structs, strings, current = {}, set(), None
    for line in text.splitlines():
        m = re.match(r"^type (\w+) string\b", line)
        if m:
            strings.add(m.group(1))
            continue
        m = re.match(r"^type (\w+) struct \{", line)
        if m:
            current = structs.setdefault(m.group(1), [])
            continue
        if current is not None and line.startswith("}"):
            current = None
            continue
        if current is None or line.strip().startswith("//"):
            continue
        m = FIELD.match(line)
        if not m:
            continue
        name, go_type, tags = m.groups()
        tags = dict(TAG.findall(tags))
        if "protobuf" not in tags:
            continue
        wire, number, *rest = tags["protobuf"].split(",")
        json_tag = tags.get("json", "").split(",")
        current.append(
            {
                "json": json_tag[0],
                "omitempty": "omitempty" in json_tag[1:] or "omitzero" in json_tag[1:],
                "type": go_type,
                "number": int(number),
                "repeated": "rep" in rest,
                "embedded": name is None,
            }
        )
    return structs, strings


def rust_name(gv, struct):
    prefix = re.sub(r"[^A-Za-z0-9]+", "_", gv).upper()
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", struct).upper()
    return f"{prefix}_{snake}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    roots = {"api": sys.argv[1], "apimachinery": sys.argv[2]}
    packages = {}
    for gv, path, checkout in PACKAGES:
        with open(os.path.join(roots[checkout], path)) as f:
            packages[gv] = parse(f.read())

    emitted, queue, out = set(), [], []

    def resolve(gv, go_type):
        """(kind, payload) for a Go type seen in package `gv`."""
        base = go_type.lstrip("*")
        if base in ("string", "types.UID"):
            return ("Str", None)
        if base == "bool":
            return ("Bool", None)
        if base in ("int32", "int64", "int", "uint32", "uint64"):
            return ("Int", None)
        if base == "[]byte":
            return (None, None)
        if base in ("metav1.Time", "Time", "metav1.MicroTime", "MicroTime"):
            return ("MicroTime" if "Micro" in base else "Time", None)
        if base == "intstr.IntOrString":
            return ("IntOrString", None)
        if base == "resource.Quantity":
            return ("Quantity", None)
        if base == "map[string]string":
            return ("StrMap", None)
        if base == "map[string][]byte":
            return ("BytesMap", None)
        if base in ("ResourceList", "v1.ResourceList", "corev1.ResourceList"):
            return ("QuantityMap", None)
        if base.startswith("[]"):
            return resolve(gv, base[2:])
        pkg, _, name = base.rpartition(".")
        target = ALIASES.get(pkg, gv) if pkg else gv
        if target not in packages:
            return (None, None)
        structs, strings = packages[target]
        if name in strings:
            return ("Str", None)
        if name in structs:
            return ("Message", (target, name))
        if name in ("Duration",):
            return (None, None)
        # Named integer types (`type Protocol int32` is rare; treat as unsupported).
        return (None, None)

    def emit(gv, struct):
        key = (gv, struct)
        if key in emitted:
            return
        emitted.add(key)
        queue.append(key)

    for gv, kinds in ROOTS.items():
        for kind in kinds:
            emit(gv, kind)

    while queue:
        gv, struct = queue.pop(0)
        fields = []
        for field in packages[gv][0][struct]:
            kind, payload = resolve(gv, field["type"])
            if kind is None:
                continue
            keep_zero = field["type"].startswith("*") or not field["omitempty"]
            if kind == "Message":
                emit(*payload)
                target = f"Kind::Message({rust_name(*payload).lower()})"
            else:
                target = f"Kind::{kind}"
            name = "" if field["embedded"] and field["json"] == "" else field["json"]
            fields.append(
                f'    Field {{ tag: {field["number"]}, name: "{name}", kind: {target}, '
                f'repeated: {str(field["repeated"] and kind not in ("StrMap", "BytesMap", "QuantityMap") and field["type"].startswith("[]")).lower()}, '
                f'keep_zero: {str(keep_zero).lower()} }},'
            )
        fn = rust_name(gv, struct).lower()
        out.append(f"pub(super) fn {fn}() -> &'static [Field] {{\n    &[\n" + "\n".join(fields) + "\n    ]\n}\n")

    root_arms = []
    for gv, kinds in ROOTS.items():
        api_version = "meta.k8s.io/v1" if gv == "meta/v1" else gv
        for kind in kinds:
            root_arms.append(f'        ("{api_version}", "{kind}") => {rust_name(gv, kind).lower()}(),')
    # Every group version registers DeleteOptions; a DELETE body names the resource's.
    for gv in ROOTS:
        if gv != "meta/v1":
            root_arms.append(f'        ("{gv}", "DeleteOptions") => meta_v1_delete_options(),')
    header = (
        "//! Generated by scripts/gen-sim-protobuf.py from the Kubernetes API types' struct tags;\n"
        "//! do not edit. Regenerate with `scripts/gen-sim-protobuf.py API APIMACHINERY`.\n\n"
        "use super::{Field, Kind};\n\n"
        "/// The message a body of `api_version`/`kind` is.\n"
        "pub(super) fn root(api_version: &str, kind: &str) -> Option<&'static [Field]> {\n"
        "    Some(match (api_version, kind) {\n" + "\n".join(root_arms) + "\n        _ => return None,\n    })\n}\n\n"
    )
    path = os.path.join(os.path.dirname(__file__), "..", "src", "sim", "protobuf", "schema.rs")
    with open(path, "w") as f:
        f.write(header + "\n".join(out))


if __name__ == "__main__":
    main()
