//! `krun sim gen`: deterministic synthetic clusters shaped like the ones in the field reports:
//! kubeadm control planes with static pods, workers across zones, kube-proxy and a CNI as
//! DaemonSets, dedicated ingress nodes running an ingress controller without a PDB, a
//! Prometheus with one, and team namespaces full of Deployments and StatefulSets with PDBs of
//! every shape (some allowing no disruption at all), emptyDir volumes and a few bare pods.
//!
//! Statuses are written exactly as the simulator's controllers compute them, so loading a
//! generated cluster changes nothing but resourceVersions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::clock::timestamp;
use crate::model::budget::{self, Budget, OwnerRef, PodView};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub nodes: usize,
    pub pods: usize,
    pub seed: u64,
    /// Control-plane nodes; 0 picks 3 for clusters of 5 nodes or more, else 1.
    pub control_planes: usize,
    pub zones: usize,
    /// Kubernetes version of the control plane and kubelets.
    pub version: String,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            nodes: 5,
            pods: 100,
            seed: 1,
            control_planes: 0,
            zones: 3,
            version: "v1.28.9".into(),
        }
    }
}

const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "catalog",
    "identity",
    "billing",
    "orders",
    "shipping",
    "media",
    "reviews",
    "ledger",
    "fraud",
    "notify",
    "profile",
    "pricing",
    "growth",
    "ads",
    "support",
    "analytics",
    "gateway",
];
const APPS: &[&str] = &[
    "api",
    "worker",
    "web",
    "cache",
    "consumer",
    "scheduler",
    "indexer",
    "proxy",
    "sync",
    "exporter",
    "renderer",
    "store",
];
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

struct NodeSlot {
    name: String,
    uid: String,
    ip: String,
    cidr_prefix: String,
    next_ip: u32,
    cpu_free: i64,
    memory_free: i64,
    pods_free: i64,
    control_plane: bool,
    ingress: bool,
}

struct Generator {
    options: GenOptions,
    rng: ChaCha8Rng,
    epoch: DateTime<Utc>,
    nodes: Vec<NodeSlot>,
    next_worker: usize,
    /// Serialized items by kind, in the order `kubectl get nodes,pods,pdb,…` prints them.
    out: BTreeMap<u8, Vec<String>>,
    pod_count: usize,
}

const ORDER_NAMESPACE: u8 = 0;
const ORDER_NODE: u8 = 1;
const ORDER_POD: u8 = 2;
const ORDER_PDB: u8 = 3;
const ORDER_DEPLOYMENT: u8 = 4;
const ORDER_REPLICASET: u8 = 5;
const ORDER_STATEFULSET: u8 = 6;
const ORDER_DAEMONSET: u8 = 7;

/// A workload's pod template, before it becomes pods.
struct Template {
    namespace: String,
    app: String,
    image: String,
    cpu_milli: i64,
    memory_mi: i64,
    empty_dir: bool,
    tolerate_all: bool,
    host_network: bool,
    node_selector: Option<(String, String)>,
    extra_labels: Vec<(String, String)>,
}

impl Generator {
    fn uid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        let hex = hex::encode(bytes);
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    fn suffix(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| SUFFIX_ALPHABET[self.rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
            .collect()
    }

    fn time(&self, minutes: i64) -> String {
        timestamp(self.epoch + Duration::minutes(minutes))
    }

    fn emit(&mut self, order: u8, value: &Value) {
        let yaml = serde_yaml_ng::to_string(value).expect("generated objects serialize");
        let mut item = String::with_capacity(yaml.len() + yaml.len() / 8);
        for (i, line) in yaml.lines().enumerate() {
            item.push_str(if i == 0 { "- " } else { "  " });
            item.push_str(line);
            item.push('\n');
        }
        self.out.entry(order).or_default().push(item);
    }

    fn namespace(&mut self, name: &str) {
        let uid = self.uid();
        let created = self.time(0);
        self.emit(
            ORDER_NAMESPACE,
            &json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"creationTimestamp": created, "labels": {"kubernetes.io/metadata.name": name}, "name": name, "resourceVersion": "1", "uid": uid},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }),
        );
    }

    fn node(&mut self, index: usize, control_plane: bool, ingress: bool, tainted: bool) {
        let name = if control_plane {
            format!("cp-{}", index + 1)
        } else {
            format!("worker-{:03}", index + 1)
        };
        let n = self.nodes.len();
        let ip = format!("192.168.{}.{}", n / 250, 10 + n % 250);
        let cidr_prefix = format!("10.{}.{}", 244 + n / 256, n % 256);
        let zone = format!(
            "zone-{}",
            (b'a' + (n % self.options.zones.max(1)) as u8) as char
        );
        let uid = self.uid();
        let (cpu, memory_gi, max_pods) = if control_plane {
            (4, 16, 110)
        } else {
            (16, 64, 110)
        };
        let max_pods = max_pods.max((self.options.pods / self.options.nodes.max(1)) as i64 * 2);
        let mut labels = json!({
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": if control_plane { "m5.xlarge" } else { "m5.4xlarge" },
            "topology.kubernetes.io/zone": zone,
        });
        if control_plane {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
        }
        if ingress {
            labels["node-role.kubernetes.io/ingress"] = json!("");
        }
        let created = self.time(n as i64);
        let heartbeat = self.time(60 * 24 * 30);
        let mut spec = json!({"podCIDR": format!("{cidr_prefix}.0/24"), "podCIDRs": [format!("{cidr_prefix}.0/24")]});
        if tainted {
            spec["taints"] =
                json!([{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]);
        }
        let condition = |kind: &str, status: &str, reason: &str, message: &str| json!({"lastHeartbeatTime": heartbeat, "lastTransitionTime": created, "message": message, "reason": reason, "status": status, "type": kind});
        let machine = hex::encode(self.rng.random::<[u8; 16]>());
        let version = self.options.version.clone();
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "annotations": {
                    "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
                "creationTimestamp": created,
                "labels": labels,
                "name": name,
                "resourceVersion": "1",
                "uid": uid,
            },
            "spec": spec,
            "status": {
                "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
                "allocatable": {"cpu": cpu.to_string(), "ephemeral-storage": "95551679124", "memory": format!("{}Ki", memory_gi * 1024 * 1024 - 102400), "pods": max_pods.to_string()},
                "capacity": {"cpu": cpu.to_string(), "ephemeral-storage": "103705148Ki", "memory": format!("{}Ki", memory_gi * 1024 * 1024), "pods": max_pods.to_string()},
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": self.uid(),
                    "containerRuntimeVersion": "containerd://1.7.13",
                    "kernelVersion": "5.15.0-105-generic",
                    "kubeProxyVersion": version,
                    "kubeletVersion": version,
                    "machineID": machine,
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.4 LTS",
                    "systemUUID": self.uid(),
                },
            },
        });
        self.emit(ORDER_NODE, &node);
        let memory_free = (memory_gi * 1024 - 100) * 1024 * 1024;
        self.nodes.push(NodeSlot {
            name,
            uid,
            ip,
            cidr_prefix,
            next_ip: 2,
            cpu_free: i64::from(cpu) * 1000,
            memory_free,
            pods_free: max_pods,
            control_plane,
            ingress,
        });
    }

    /// A worker with room for the pod, round-robin; `None` if the cluster is full.
    fn place(&mut self, template: &Template) -> Option<usize> {
        let count = self.nodes.len();
        for attempt in 0..count {
            let i = (self.next_worker + attempt) % count;
            let node = &self.nodes[i];
            let wanted = match &template.node_selector {
                Some((key, _)) if key == "node-role.kubernetes.io/ingress" => node.ingress,
                Some(_) => true,
                None => !node.control_plane || self.nodes.iter().all(|n| n.control_plane),
            };
            let fits = node.pods_free > 0
                && node.cpu_free >= template.cpu_milli
                && node.memory_free >= template.memory_mi * 1024 * 1024;
            if wanted && fits {
                self.next_worker = i + 1;
                return Some(i);
            }
        }
        None
    }

    fn template_spec(&self, t: &Template) -> Value {
        let mut container = json!({
            "image": t.image,
            "imagePullPolicy": "IfNotPresent",
            "name": t.app,
            "resources": {"limits": {"memory": format!("{}Mi", t.memory_mi * 2)}, "requests": {"cpu": format!("{}m", t.cpu_milli), "memory": format!("{}Mi", t.memory_mi)}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        });
        if !t.host_network {
            container["ports"] =
                json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}]);
        }
        let mut spec = json!({
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        });
        if t.empty_dir {
            spec["containers"][0]["volumeMounts"] =
                json!([{"mountPath": "/cache", "name": "cache"}]);
            spec["volumes"] = json!([{"emptyDir": {}, "name": "cache"}]);
        }
        if t.tolerate_all {
            spec["tolerations"] = json!([{"operator": "Exists"}]);
        }
        if t.host_network {
            spec["hostNetwork"] = json!(true);
            spec["dnsPolicy"] = json!("ClusterFirstWithHostNet");
            spec["priorityClassName"] = json!("system-node-critical");
        }
        if let Some((key, value)) = &t.node_selector {
            spec["nodeSelector"] = json!({key: value});
        }
        spec
    }

    fn labels(&self, t: &Template) -> serde_json::Map<String, Value> {
        let mut labels = serde_json::Map::new();
        labels.insert("app.kubernetes.io/name".into(), json!(t.app));
        for (k, v) in &t.extra_labels {
            labels.insert(k.clone(), json!(v));
        }
        labels
    }

    /// A Running, Ready pod on `node`.
    fn pod(
        &mut self,
        t: &Template,
        name: &str,
        node: usize,
        owner: Option<(&str, &str, &str)>,
        labels: serde_json::Map<String, Value>,
        minute: i64,
    ) -> Value {
        let uid = self.uid();
        let created = self.time(minute);
        let started = self.time(minute + 1);
        let slot = &mut self.nodes[node];
        slot.cpu_free -= t.cpu_milli;
        slot.memory_free -= t.memory_mi * 1024 * 1024;
        slot.pods_free -= 1;
        let ip = if t.host_network {
            slot.ip.clone()
        } else {
            slot.next_ip += 1;
            format!("{}.{}", slot.cidr_prefix, slot.next_ip % 254 + 1)
        };
        let host_ip = slot.ip.clone();
        let node_name = slot.name.clone();
        let mut spec = self.template_spec(t);
        let map = spec.as_object_mut().expect("object");
        map.insert("nodeName".into(), json!(node_name));
        map.insert("enableServiceLinks".into(), json!(true));
        map.insert("preemptionPolicy".into(), json!("PreemptLowerPriority"));
        map.insert(
            "priority".into(),
            json!(if t.host_network { 2000001000 } else { 0 }),
        );
        map.insert("serviceAccount".into(), json!("default"));
        map.insert("serviceAccountName".into(), json!("default"));
        let tolerations = map.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                list.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
            }
        }
        let mut metadata = json!({"creationTimestamp": created, "labels": labels, "name": name, "namespace": t.namespace, "resourceVersion": "1", "uid": uid});
        if let Some((kind, owner_name, owner_uid)) = owner {
            let api_version = if kind == "Node" { "v1" } else { "apps/v1" };
            metadata["ownerReferences"] = json!([{"apiVersion": api_version, "blockOwnerDeletion": true, "controller": true, "kind": kind, "name": owner_name, "uid": owner_uid}]);
            if kind == "ReplicaSet" || kind == "DaemonSet" {
                metadata["generateName"] = json!(format!("{owner_name}-"));
            }
        }
        let condition = |kind: &str| json!({"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": kind});
        let container_id = hex::encode(self.rng.random::<[u8; 32]>());
        let image_digest = hex::encode(self.rng.random::<[u8; 32]>());
        let repository = t
            .image
            .rsplit_once(':')
            .map_or(t.image.as_str(), |(r, _)| r);
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": spec,
            "status": {
                "conditions": [condition("Initialized"), condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
                "containerStatuses": [{
                    "containerID": format!("containerd://{container_id}"),
                    "image": t.image,
                    "imageID": format!("{repository}@sha256:{image_digest}"),
                    "lastState": {},
                    "name": t.app,
                    "ready": true,
                    "restartCount": 0,
                    "started": true,
                    "state": {"running": {"startedAt": started}},
                }],
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}],
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "qosClass": "Burstable",
                "startTime": created,
            },
        })
    }

    fn emit_pod(&mut self, pod: Value) {
        self.pod_count += 1;
        self.emit(ORDER_POD, &pod);
    }

    /// Static pods of a control-plane node, mirrored into the API.
    fn static_pods(&mut self, node: usize) {
        let version = self.options.version.clone();
        let node_name = self.nodes[node].name.clone();
        let node_uid = self.nodes[node].uid.clone();
        for (component, image) in [
            ("etcd", "registry.k8s.io/etcd:3.5.12-0".to_string()),
            (
                "kube-apiserver",
                format!("registry.k8s.io/kube-apiserver:{version}"),
            ),
            (
                "kube-controller-manager",
                format!("registry.k8s.io/kube-controller-manager:{version}"),
            ),
            (
                "kube-scheduler",
                format!("registry.k8s.io/kube-scheduler:{version}"),
            ),
        ] {
            let t = Template {
                namespace: "kube-system".into(),
                app: component.into(),
                image,
                cpu_milli: if component == "kube-apiserver" {
                    250
                } else {
                    100
                },
                memory_mi: 100,
                empty_dir: false,
                tolerate_all: true,
                host_network: true,
                node_selector: None,
                extra_labels: vec![],
            };
            let mut labels = serde_json::Map::new();
            labels.insert("component".into(), json!(component));
            labels.insert("tier".into(), json!("control-plane"));
            let name = format!("{component}-{node_name}");
            let mut pod = self.pod(
                &t,
                &name,
                node,
                Some(("Node", &node_name, &node_uid)),
                labels,
                node as i64,
            );
            let hash = hex::encode(self.rng.random::<[u8; 16]>());
            pod["metadata"]["annotations"] = json!({
                "kubernetes.io/config.hash": hash,
                "kubernetes.io/config.mirror": hash,
                "kubernetes.io/config.seen": self.time(node as i64),
                "kubernetes.io/config.source": "file",
            });
            self.emit_pod(pod);
        }
    }

    fn daemonset(&mut self, t: Template) {
        let uid = self.uid();
        let name = t.app.clone();
        let labels = self.labels(&t);
        let mut pods = 0usize;
        for node in 0..self.nodes.len() {
            let pod_name = format!("{name}-{}", self.suffix(5));
            let mut pod_labels = labels.clone();
            pod_labels.insert("controller-revision-hash".into(), json!("6d8c9b7f5"));
            pod_labels.insert("pod-template-generation".into(), json!("1"));
            let mut pod = self.pod(
                &t,
                &pod_name,
                node,
                Some(("DaemonSet", &name, &uid)),
                pod_labels,
                10 + node as i64,
            );
            let node_name = self.nodes[node].name.clone();
            pin_daemon_pod(&mut pod, &node_name);
            self.emit_pod(pod);
            pods += 1;
        }
        let mut spec_template =
            json!({"metadata": {"labels": labels}, "spec": self.template_spec(&t)});
        spec_template["metadata"]["creationTimestamp"] = Value::Null;
        let created = self.time(5);
        self.emit(
            ORDER_DAEMONSET,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"annotations": {"deprecated.daemonset.template.generation": "1"}, "creationTimestamp": created, "generation": 1, "labels": {"app.kubernetes.io/name": name}, "name": name, "namespace": t.namespace, "resourceVersion": "1", "uid": uid},
                "spec": {
                    "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "template": spec_template,
                    "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"},
                },
                "status": {
                    "currentNumberScheduled": pods,
                    "desiredNumberScheduled": pods,
                    "numberAvailable": pods,
                    "numberMisscheduled": 0,
                    "numberReady": pods,
                    "observedGeneration": 1,
                    "updatedNumberScheduled": pods,
                },
            }),
        );
    }

    /// A Deployment with its ReplicaSet and pods; returns the pods for PDB arithmetic.
    fn deployment(&mut self, t: &Template, replicas: usize, minute: i64) -> Vec<PodView> {
        let uid = self.uid();
        let rs_uid = self.uid();
        let name = t.app.clone();
        let hash = self.suffix(10);
        let rs_name = format!("{name}-{hash}");
        let labels = self.labels(t);
        let mut rs_labels = labels.clone();
        rs_labels.insert("pod-template-hash".into(), json!(hash));
        let mut views = Vec::new();
        for _ in 0..replicas {
            let Some(node) = self.place(t) else { break };
            let pod_name = format!("{rs_name}-{}", self.suffix(5));
            let pod = self.pod(
                t,
                &pod_name,
                node,
                Some(("ReplicaSet", &rs_name, &rs_uid)),
                rs_labels.clone(),
                minute,
            );
            self.emit_pod(pod);
            views.push(PodView {
                name: pod_name,
                ready: true,
                deleting: false,
                controller: Some(OwnerRef {
                    kind: "ReplicaSet".into(),
                    name: rs_name.clone(),
                    uid: rs_uid.clone(),
                }),
            });
        }
        let running = views.len();
        let spec = self.template_spec(t);
        let created = self.time(minute);
        let progressing = json!({"lastTransitionTime": created, "lastUpdateTime": created, "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed."), "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"});
        let available = json!({"lastTransitionTime": created, "lastUpdateTime": created, "message": "Deployment has minimum availability.", "reason": "MinimumReplicasAvailable", "status": "True", "type": "Available"});
        let mut deployment_status =
            json!({"conditions": [available, progressing], "observedGeneration": 1});
        if running > 0 {
            for field in [
                "availableReplicas",
                "readyReplicas",
                "replicas",
                "updatedReplicas",
            ] {
                deployment_status[field] = json!(running);
            }
        }
        if running < replicas {
            deployment_status["unavailableReplicas"] = json!(replicas - running);
            if running < replicas - replicas / 4 {
                deployment_status["conditions"][0] = json!({"lastTransitionTime": created, "lastUpdateTime": created, "message": "Deployment does not have minimum availability.", "reason": "MinimumReplicasUnavailable", "status": "False", "type": "Available"});
            }
        }
        let mut template_labels =
            json!({"metadata": {"creationTimestamp": null, "labels": labels}, "spec": spec});
        self.emit(
            ORDER_DEPLOYMENT,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}, "creationTimestamp": created, "generation": 1, "labels": {"app.kubernetes.io/name": name}, "name": name, "namespace": t.namespace, "resourceVersion": "1", "uid": uid},
                "spec": {
                    "progressDeadlineSeconds": 600,
                    "replicas": replicas,
                    "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                    "template": template_labels.clone(),
                },
                "status": deployment_status,
            }),
        );
        template_labels["metadata"]["labels"] = json!(rs_labels);
        let mut rs_status =
            json!({"fullyLabeledReplicas": running, "observedGeneration": 1, "replicas": running});
        if running > 0 {
            rs_status["availableReplicas"] = json!(running);
            rs_status["readyReplicas"] = json!(running);
        }
        self.emit(
            ORDER_REPLICASET,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(), "deployment.kubernetes.io/max-replicas": (replicas + replicas.div_ceil(4)).to_string(), "deployment.kubernetes.io/revision": "1"},
                    "creationTimestamp": created,
                    "generation": 1,
                    "labels": rs_labels,
                    "name": rs_name,
                    "namespace": t.namespace,
                    "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "Deployment", "name": name, "uid": uid}],
                    "resourceVersion": "1",
                    "uid": rs_uid,
                },
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name, "pod-template-hash": hash}}, "template": template_labels},
                "status": rs_status,
            }),
        );
        // PDBs of a Deployment count the Deployment's scale.
        for view in &mut views {
            view.controller = Some(OwnerRef {
                kind: "Deployment".into(),
                name: name.clone(),
                uid: uid.clone(),
            });
        }
        views
    }

    fn statefulset(&mut self, t: &Template, replicas: usize, minute: i64) -> Vec<PodView> {
        let uid = self.uid();
        let name = t.app.clone();
        let labels = self.labels(t);
        let revision = format!("{name}-{}", self.suffix(10));
        let mut views = Vec::new();
        for ordinal in 0..replicas {
            let Some(node) = self.place(t) else { break };
            let pod_name = format!("{name}-{ordinal}");
            let mut pod_labels = labels.clone();
            pod_labels.insert(
                "apps.kubernetes.io/pod-index".into(),
                json!(ordinal.to_string()),
            );
            pod_labels.insert("controller-revision-hash".into(), json!(revision));
            pod_labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
            let mut pod = self.pod(
                t,
                &pod_name,
                node,
                Some(("StatefulSet", &name, &uid)),
                pod_labels,
                minute,
            );
            pod["spec"]["hostname"] = json!(pod_name);
            pod["spec"]["subdomain"] = json!(name);
            self.emit_pod(pod);
            views.push(PodView {
                name: pod_name,
                ready: true,
                deleting: false,
                controller: Some(OwnerRef {
                    kind: "StatefulSet".into(),
                    name: name.clone(),
                    uid: uid.clone(),
                }),
            });
        }
        let running = views.len();
        let created = self.time(minute);
        let mut status = json!({"collisionCount": 0, "currentRevision": revision, "observedGeneration": 1, "replicas": running, "updateRevision": revision});
        if running > 0 {
            for field in [
                "availableReplicas",
                "currentReplicas",
                "readyReplicas",
                "updatedReplicas",
            ] {
                status[field] = json!(running);
            }
        }
        let spec = self.template_spec(t);
        self.emit(
            ORDER_STATEFULSET,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"creationTimestamp": created, "generation": 1, "labels": {"app.kubernetes.io/name": name}, "name": name, "namespace": t.namespace, "resourceVersion": "1", "uid": uid},
                "spec": {
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "podManagementPolicy": "OrderedReady",
                    "replicas": replicas,
                    "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "serviceName": name,
                    "template": {"metadata": {"creationTimestamp": null, "labels": labels}, "spec": spec},
                    "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                },
                "status": status,
            }),
        );
        views
    }

    /// A PDB over `app`, with its status as the disruption controller computes it.
    fn pdb(
        &mut self,
        namespace: &str,
        app: &str,
        spec_amount: (&str, Value),
        pods: &[PodView],
        scale: i32,
        minute: i64,
    ) {
        let uid = self.uid();
        let created = self.time(minute);
        let mut spec = json!({"selector": {"matchLabels": {"app.kubernetes.io/name": app}}});
        spec[spec_amount.0] = spec_amount.1.clone();
        let budget = Budget::from_spec(Some(&spec)).expect("generated budgets are valid");
        let scale_of = |owner: &OwnerRef| Some((owner.uid.clone(), scale));
        let computed = budget::compute(&budget, pods, &scale_of, &BTreeMap::new(), self.epoch)
            .expect("generated pods have scaled controllers");
        let (state, reason) = if computed.disruptions_allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        self.emit(
            ORDER_PDB,
            &json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"creationTimestamp": created, "generation": 1, "name": app, "namespace": namespace, "resourceVersion": "1", "uid": uid},
                "spec": spec,
                "status": {
                    "conditions": [{"lastTransitionTime": created, "message": "", "observedGeneration": 1, "reason": reason, "status": state, "type": "DisruptionAllowed"}],
                    "currentHealthy": computed.current_healthy,
                    "desiredHealthy": computed.desired_healthy,
                    "disruptionsAllowed": computed.disruptions_allowed,
                    "expectedPods": computed.expected_pods,
                    "observedGeneration": 1,
                },
            }),
        );
    }

    fn bare_pod(&mut self, t: &Template, minute: i64) {
        let Some(node) = self.place(t) else { return };
        let labels = self.labels(t);
        let name = t.app.clone();
        let pod = self.pod(t, &name, node, None, labels, minute);
        self.emit_pod(pod);
    }

    fn app_template(&mut self, namespace: &str, app: String) -> Template {
        let cpu_milli = [10, 25, 50, 100, 100, 150, 200][self.rng.random_range(0..7)];
        let memory_mi = [32, 64, 128, 128, 256, 384][self.rng.random_range(0..6)];
        let version = format!(
            "1.{}.{}",
            self.rng.random_range(0..20),
            self.rng.random_range(0..10)
        );
        Template {
            namespace: namespace.to_string(),
            image: format!("registry.example.com/{namespace}/{app}:{version}"),
            app,
            cpu_milli,
            memory_mi,
            empty_dir: self.rng.random_bool(0.3),
            tolerate_all: false,
            host_network: false,
            node_selector: None,
            extra_labels: vec![],
        }
    }

    fn system_template(namespace: &str, app: &str, image: &str, host_network: bool) -> Template {
        Template {
            namespace: namespace.into(),
            app: app.into(),
            image: image.into(),
            cpu_milli: 100,
            memory_mi: 64,
            empty_dir: false,
            tolerate_all: true,
            host_network,
            node_selector: None,
            extra_labels: vec![],
        }
    }
}

/// DaemonSet pods carry the node affinity the DaemonSet controller gives them.
fn pin_daemon_pod(pod: &mut Value, node: &str) {
    pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    ]}}});
}

/// The PDB shapes generated, in rotation: every field type, and two that allow nothing.
fn pdb_shape(index: usize, replicas: usize) -> Option<(&'static str, Value)> {
    match index % 10 {
        0 | 5 => None,
        1 => Some(("minAvailable", json!(replicas.saturating_sub(1).max(1)))),
        2 => Some(("maxUnavailable", json!(1))),
        3 => Some(("minAvailable", json!("50%"))),
        4 => Some(("maxUnavailable", json!("25%"))),
        6 => Some(("minAvailable", json!(1))),
        7 => Some(("maxUnavailable", json!("34%"))),
        8 => Some(("minAvailable", json!("100%"))),
        _ => Some(("maxUnavailable", json!(0))),
    }
}

/// Generates a cluster as a YAML `List`.
pub fn generate(options: &GenOptions) -> String {
    let nodes = options.nodes.max(1);
    let control_planes = match options.control_planes {
        0 if nodes >= 5 => 3,
        0 => 1,
        n => n.min(nodes),
    };
    let workers = nodes - control_planes;
    let mut g = Generator {
        options: options.clone(),
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        epoch: Utc
            .with_ymd_and_hms(2024, 3, 1, 8, 0, 0)
            .single()
            .expect("valid date"),
        nodes: Vec::new(),
        next_worker: 0,
        out: BTreeMap::new(),
        pod_count: 0,
    };

    let teams = (options.pods / 800).clamp(2, TEAMS.len());
    let mut namespaces = vec![
        "default".to_string(),
        "kube-node-lease".into(),
        "kube-public".into(),
        "kube-system".into(),
        "ingress-nginx".into(),
        "monitoring".into(),
    ];
    namespaces.extend(TEAMS[..teams].iter().map(|t| format!("team-{t}")));
    for namespace in &namespaces {
        g.namespace(namespace);
    }
    let ingress_nodes = if workers >= 6 { 3 } else { 0 };
    for i in 0..control_planes {
        g.node(i, true, false, workers > 0);
    }
    for i in 0..workers {
        g.node(i, false, i < ingress_nodes, false);
    }
    for node in 0..control_planes {
        g.static_pods(node);
    }
    let version = options.version.clone();
    let budget = options.pods;
    if g.pod_count + 2 * nodes <= budget {
        g.daemonset(Generator::system_template(
            "kube-system",
            "kube-proxy",
            &format!("registry.k8s.io/kube-proxy:{version}"),
            true,
        ));
        g.daemonset(Generator::system_template(
            "kube-system",
            "calico-node",
            "docker.io/calico/node:v3.27.3",
            true,
        ));
    }
    if g.pod_count + nodes + 10 <= budget {
        g.daemonset(Generator::system_template(
            "monitoring",
            "node-exporter",
            "quay.io/prometheus/node-exporter:v1.7.0",
            true,
        ));
    }
    let mut coredns = Generator::system_template(
        "kube-system",
        "coredns",
        "registry.k8s.io/coredns/coredns:v1.10.1",
        false,
    );
    coredns.tolerate_all = false;
    coredns.extra_labels = vec![("k8s-app".into(), "kube-dns".into())];
    if g.pod_count + 2 <= budget {
        g.deployment(&coredns, 2, 20);
    }
    if g.pod_count + 3 <= budget {
        let mut ingress = Generator::system_template(
            "ingress-nginx",
            "ingress-nginx-controller",
            "registry.k8s.io/ingress-nginx/controller:v1.9.6",
            false,
        );
        ingress.tolerate_all = false;
        if ingress_nodes > 0 {
            ingress.node_selector = Some(("node-role.kubernetes.io/ingress".into(), String::new()));
        }
        g.deployment(&ingress, 3, 30);
    }
    if g.pod_count + 6 <= budget {
        let mut prometheus = Generator::system_template(
            "monitoring",
            "prometheus-k8s",
            "quay.io/prometheus/prometheus:v2.51.2",
            false,
        );
        prometheus.tolerate_all = false;
        prometheus.empty_dir = true;
        let pods = g.statefulset(&prometheus, 2, 40);
        g.pdb(
            "monitoring",
            "prometheus-k8s",
            ("minAvailable", json!(1)),
            &pods,
            2,
            40,
        );
        let mut alertmanager = Generator::system_template(
            "monitoring",
            "alertmanager-main",
            "quay.io/prometheus/alertmanager:v0.27.0",
            false,
        );
        alertmanager.tolerate_all = false;
        g.statefulset(&alertmanager, 3, 41);
        let mut operator = Generator::system_template(
            "monitoring",
            "prometheus-operator",
            "quay.io/prometheus-operator/prometheus-operator:v0.72.0",
            false,
        );
        operator.tolerate_all = false;
        g.deployment(&operator, 1, 42);
    }

    // Team workloads fill the rest.
    let bare_pods = (budget.saturating_sub(g.pod_count) / 1000).max(2);
    let mut workload = 0usize;
    let mut full = false;
    while g.pod_count < budget && !full {
        let remaining = budget - g.pod_count;
        let namespace = format!("team-{}", TEAMS[workload % teams]);
        let app = format!(
            "{}-{}-{}",
            TEAMS[workload % teams],
            APPS[(workload / teams) % APPS.len()],
            workload / (teams * APPS.len())
        );
        let minute = 60 + workload as i64;
        let t = g.app_template(&namespace, app.clone());
        let before = g.pod_count;
        if workload % 47 == 13 && bare_pods > 0 && workload / 47 < bare_pods {
            g.bare_pod(&t, minute);
        } else if workload % 7 == 3 && remaining >= 3 {
            let replicas = [3, 3, 5, 1][g.rng.random_range(0..4)].min(remaining);
            let pods = g.statefulset(&t, replicas, minute);
            if let Some(shape) = pdb_shape(workload, replicas) {
                g.pdb(&namespace, &app, shape, &pods, replicas as i32, minute);
            }
        } else {
            let replicas =
                [1, 2, 2, 3, 3, 3, 4, 5, 6, 8, 10, 12][g.rng.random_range(0..12)].min(remaining);
            let pods = g.deployment(&t, replicas, minute);
            if let Some(shape) = pdb_shape(workload, replicas) {
                g.pdb(&namespace, &app, shape, &pods, replicas as i32, minute);
            }
        }
        full = g.pod_count == before && !(workload % 47 == 13 && workload / 47 < bare_pods);
        workload += 1;
    }

    let mut text =
        String::with_capacity(g.out.values().flatten().map(String::len).sum::<usize>() + 64);
    text.push_str("apiVersion: v1\nitems:\n");
    for items in g.out.values() {
        for item in items {
            text.push_str(item);
        }
    }
    let _ = write!(text, "kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Cluster;

    #[test]
    fn generation_is_deterministic_and_loads() {
        let options = GenOptions {
            nodes: 8,
            pods: 300,
            seed: 7,
            ..GenOptions::default()
        };
        let a = generate(&options);
        assert_eq!(a, generate(&options));
        assert_ne!(
            a,
            generate(&GenOptions {
                seed: 8,
                ..options.clone()
            })
        );
        let cluster = Cluster::load(&a).unwrap();
        let kinds: Vec<&str> = cluster
            .objects
            .iter()
            .map(|(res, _)| cluster.registry.get(*res).kind.as_str())
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == "Node").count(), 8);
        assert_eq!(kinds.iter().filter(|k| **k == "Pod").count(), 300);
        for kind in [
            "PodDisruptionBudget",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Namespace",
        ] {
            assert!(kinds.contains(&kind), "no {kind}");
        }
    }
}
