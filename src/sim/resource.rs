//! The resource types the simulator serves, as discovery describes them.
//!
//! Kinds that controllers act on are built in and writable; well-known kinds that an upgrade only
//! reads are always listed (empty unless the snapshot holds some) so that `kubectl get all` and
//! short names work as on a real cluster; any other kind found in a snapshot is registered from
//! its `apiVersion`/`kind` and served read-only.

use super::version::Version;

/// What the simulator knows how to do with a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    Node,
    Pod,
    Event,
    PodDisruptionBudget,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Lease,
    /// A kind no controller acts on, stored and served as clients write it (ConfigMaps,
    /// Secrets, Services, Jobs, RBAC, …).
    Plain,
    /// A kind met only in a snapshot: served read-only, exactly as loaded.
    Other,
    /// `SelfSubjectAccessReview`: only created, answered, never stored.
    AccessReview,
}

/// Index of a resource type in the [`Registry`].
pub(crate) type ResId = usize;

/// One resource type (a plural under a group/version).
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub builtin: Builtin,
    /// Every version the kind is served under, the preferred (stored) one first; empty when
    /// the cluster's version does not serve the kind at all.
    pub served_versions: Vec<String>,
    /// A PDB with an empty selector selects no pod (policy/v1beta1, before 1.21).
    pub empty_selector_selects_nothing: bool,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as error messages name a resource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `version` of the kind's group serves it.
    pub fn serves(&self, version: &str) -> bool {
        self.served_versions.iter().any(|v| v == version)
    }

    pub fn writable(&self) -> bool {
        !matches!(self.builtin, Builtin::Other | Builtin::AccessReview)
    }

    /// Whether the kind has a `scale` subresource (autoscaling/v1 `Scale`).
    pub fn has_scale(&self) -> bool {
        matches!(
            self.builtin,
            Builtin::Deployment | Builtin::ReplicaSet | Builtin::StatefulSet
        )
    }

    /// Whether the apiserver counts spec changes in `metadata.generation` for this kind.
    pub fn uses_generation(&self) -> bool {
        matches!(
            self.builtin,
            Builtin::PodDisruptionBudget
                | Builtin::Deployment
                | Builtin::ReplicaSet
                | Builtin::StatefulSet
                | Builtin::DaemonSet
        )
    }

    /// Whether the kind has a `status` subresource (the main resource then ignores status
    /// changes and the subresource ignores everything else).
    pub fn has_status(&self) -> bool {
        match self.builtin {
            Builtin::Other | Builtin::Event | Builtin::Lease | Builtin::AccessReview => false,
            Builtin::Plain => matches!(
                self.kind.as_str(),
                "Service"
                    | "Job"
                    | "CronJob"
                    | "PersistentVolumeClaim"
                    | "PersistentVolume"
                    | "ReplicationController"
                    | "ResourceQuota"
                    | "HorizontalPodAutoscaler"
                    | "Ingress"
                    | "CustomResourceDefinition"
            ),
            _ => true,
        }
    }

    /// Field selectors the real apiserver accepts for this kind (besides metadata.name and
    /// metadata.namespace, which every kind supports).
    pub fn selectable_fields(&self) -> &'static [&'static str] {
        match self.builtin {
            Builtin::Pod => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Builtin::Node => &["spec.unschedulable"],
            Builtin::Namespace => &["status.phase"],
            Builtin::Event => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            _ => &[],
        }
    }
}

struct Known {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    builtin: Builtin,
}

const ALL: &[&str] = &["all"];

#[rustfmt::skip]
const KNOWN: &[Known] = &[
    Known { api_version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false, short_names: &["ns"], categories: &[], builtin: Builtin::Namespace },
    Known { api_version: "v1", kind: "Node", plural: "nodes", namespaced: false, short_names: &["no"], categories: &[], builtin: Builtin::Node },
    Known { api_version: "v1", kind: "Pod", plural: "pods", namespaced: true, short_names: &["po"], categories: ALL, builtin: Builtin::Pod },
    Known { api_version: "v1", kind: "Event", plural: "events", namespaced: true, short_names: &["ev"], categories: &[], builtin: Builtin::Event },
    Known { api_version: "v1", kind: "Service", plural: "services", namespaced: true, short_names: &["svc"], categories: ALL, builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, short_names: &["cm"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "Secret", plural: "secrets", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true, short_names: &["sa"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "Endpoints", plural: "endpoints", namespaced: true, short_names: &["ep"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", namespaced: true, short_names: &["pvc"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "PersistentVolume", plural: "persistentvolumes", namespaced: false, short_names: &["pv"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "ReplicationController", plural: "replicationcontrollers", namespaced: true, short_names: &["rc"], categories: ALL, builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "LimitRange", plural: "limitranges", namespaced: true, short_names: &["limits"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "v1", kind: "ResourceQuota", plural: "resourcequotas", namespaced: true, short_names: &["quota"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: true, short_names: &["pdb"], categories: &[], builtin: Builtin::PodDisruptionBudget },
    Known { api_version: "apps/v1", kind: "Deployment", plural: "deployments", namespaced: true, short_names: &["deploy"], categories: ALL, builtin: Builtin::Deployment },
    Known { api_version: "apps/v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true, short_names: &["rs"], categories: ALL, builtin: Builtin::ReplicaSet },
    Known { api_version: "apps/v1", kind: "StatefulSet", plural: "statefulsets", namespaced: true, short_names: &["sts"], categories: ALL, builtin: Builtin::StatefulSet },
    Known { api_version: "apps/v1", kind: "DaemonSet", plural: "daemonsets", namespaced: true, short_names: &["ds"], categories: ALL, builtin: Builtin::DaemonSet },
    Known { api_version: "apps/v1", kind: "ControllerRevision", plural: "controllerrevisions", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "coordination.k8s.io/v1", kind: "Lease", plural: "leases", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Lease },
    Known { api_version: "batch/v1", kind: "Job", plural: "jobs", namespaced: true, short_names: &[], categories: ALL, builtin: Builtin::Plain },
    Known { api_version: "batch/v1", kind: "CronJob", plural: "cronjobs", namespaced: true, short_names: &["cj"], categories: ALL, builtin: Builtin::Plain },
    Known { api_version: "autoscaling/v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers", namespaced: true, short_names: &["hpa"], categories: ALL, builtin: Builtin::Plain },
    Known { api_version: "networking.k8s.io/v1", kind: "Ingress", plural: "ingresses", namespaced: true, short_names: &["ing"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "networking.k8s.io/v1", kind: "IngressClass", plural: "ingressclasses", namespaced: false, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "networking.k8s.io/v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true, short_names: &["netpol"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "discovery.k8s.io/v1", kind: "EndpointSlice", plural: "endpointslices", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "storage.k8s.io/v1", kind: "StorageClass", plural: "storageclasses", namespaced: false, short_names: &["sc"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "scheduling.k8s.io/v1", kind: "PriorityClass", plural: "priorityclasses", namespaced: false, short_names: &["pc"], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: false, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "rbac.authorization.k8s.io/v1", kind: "Role", plural: "roles", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", plural: "rolebindings", namespaced: true, short_names: &[], categories: &[], builtin: Builtin::Plain },
    Known { api_version: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview", plural: "selfsubjectaccessreviews", namespaced: false, short_names: &[], categories: &[], builtin: Builtin::AccessReview },
    Known { api_version: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", namespaced: false, short_names: &["crd", "crds"], categories: &[], builtin: Builtin::Plain },
];

/// All resource types served, in discovery order.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

/// How the API machinery orders versions: GA before beta before alpha, higher numbers first.
fn version_priority(version: &str) -> (u8, u32, u32) {
    let rest = version.strip_prefix('v').unwrap_or(version);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, number) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        (2, "")
    };
    (stage, major, number.parse().unwrap_or(0))
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The plural a kind most likely has, following the rules the API machinery applies to
/// kinds it has not seen (`Ingress` → `ingresses`, `Policy` → `policies`).
pub(crate) fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

impl Default for Registry {
    fn default() -> Self {
        let types = KNOWN
            .iter()
            .map(|known| {
                let (group, version) = split_api_version(known.api_version);
                ResourceType {
                    group: group.to_string(),
                    version: version.to_string(),
                    kind: known.kind.to_string(),
                    plural: known.plural.to_string(),
                    singular: known.kind.to_ascii_lowercase(),
                    namespaced: known.namespaced,
                    short_names: known.short_names.iter().map(|s| s.to_string()).collect(),
                    categories: known.categories.iter().map(|s| s.to_string()).collect(),
                    builtin: known.builtin,
                    served_versions: vec![version.to_string()],
                    empty_selector_selects_nothing: false,
                }
            })
            .collect();
        Self { types }
    }
}

impl Registry {
    pub fn get(&self, id: ResId) -> &ResourceType {
        &self.types[id]
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ResId, &ResourceType)> {
        self.types.iter().enumerate()
    }

    /// The built-in kind's id; built-ins are always registered.
    pub fn builtin(&self, builtin: Builtin) -> ResId {
        self.types
            .iter()
            .position(|t| t.builtin == builtin)
            .expect("built-in kinds are always registered")
    }

    /// The kind an object of `api_version`/`kind` is stored as: the same version, or, for a
    /// built-in kind, any version some Kubernetes release served it under.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResId> {
        let (group, version) = split_api_version(api_version);
        self.types.iter().position(|t| {
            t.group == group
                && t.kind == kind
                && (t.version == version
                    || (t.builtin != Builtin::Other
                        && Version::any_version_of(group, kind, version)))
        })
    }

    /// The kind served at `/apis/{group}/{version}/{plural}`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<ResId> {
        self.types
            .iter()
            .position(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    /// Serves each kind under the group versions `version` has (see `version.rs`).
    pub fn adapt_to(&mut self, version: &Version) {
        for t in &mut self.types {
            if t.builtin == Builtin::Other {
                continue;
            }
            if let Some(served) = version.served_versions(&t.group, &t.kind) {
                if let Some(preferred) = served.first() {
                    t.version = preferred.to_string();
                }
                t.served_versions = served.iter().map(|v| v.to_string()).collect();
            }
            t.empty_selector_selects_nothing = t.builtin == Builtin::PodDisruptionBudget
                && !version.empty_pdb_selector_selects_all();
        }
    }

    /// Registers a kind met in a snapshot and not known; it is served read-only.
    pub fn register_other(&mut self, api_version: &str, kind: &str, namespaced: bool) -> ResId {
        if let Some(id) = self.by_kind(api_version, kind) {
            return id;
        }
        let (group, version) = split_api_version(api_version);
        self.types.push(ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: guess_plural(kind),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            builtin: Builtin::Other,
            served_versions: vec![version.to_string()],
            empty_selector_selects_nothing: false,
        });
        self.types.len() - 1
    }

    /// Groups in discovery order (core excluded), each with its versions, the preferred
    /// first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            let index = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(index) => index,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            let versions = &mut groups[index].1;
            for version in &t.served_versions {
                if !versions.contains(version) {
                    versions.push(version.clone());
                }
            }
        }
        groups.retain(|(_, versions)| !versions.is_empty());
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_guesses_follow_the_api_machinery_rules() {
        assert_eq!(guess_plural("Ingress"), "ingresses");
        assert_eq!(guess_plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(guess_plural("Gateway"), "gateways");
        assert_eq!(guess_plural("Certificate"), "certificates");
        assert_eq!(guess_plural("Box"), "boxes");
    }

    #[test]
    fn unknown_kinds_are_registered_once_and_read_only() {
        let mut registry = Registry::default();
        let before = registry.len();
        let id = registry.register_other("cert-manager.io/v1", "Certificate", true);
        assert_eq!(
            registry.register_other("cert-manager.io/v1", "Certificate", true),
            id
        );
        assert_eq!(registry.len(), before + 1);
        let t = registry.get(id);
        assert_eq!(t.plural, "certificates");
        assert_eq!(t.group_resource(), "certificates.cert-manager.io");
        assert!(!t.writable());
        assert!(
            registry
                .groups()
                .iter()
                .any(|(g, v)| g == "cert-manager.io" && v == &["v1"])
        );
    }
}
