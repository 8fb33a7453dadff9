//! The cluster objects kubeadm itself reads and writes, added to a simulated cluster so the
//! kubeadm stand-in finds what the real one would: `kube-system/kubeadm-config` (the
//! ClusterConfiguration with its `kubernetesVersion`) and the kubelet ConfigMap
//! (`kubelet-config-1.X` until 1.23, `kubelet-config` from 1.24).

use serde_json::{Value, json};

/// Adds kubeadm's ConfigMaps for a cluster at `version` (`1.21.14`) whose kubelets use
/// `kubelet_config` to the List `list`.
pub fn add_kubeadm_config_maps(
    list: &mut Value,
    version: &str,
    image_repository: &str,
    kubelet_config: &str,
) {
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("a version");
    let kubelet_name = if minor <= 23 {
        format!("kubelet-config-1.{minor}")
    } else {
        "kubelet-config".to_string()
    };
    let cluster_configuration = format!(
        "apiServer:\n  timeoutForControlPlane: 4m0s\napiVersion: kubeadm.k8s.io/v1beta2\n\
         certificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: 127.0.0.1:6443\n\
         dns:\n  type: CoreDNS\netcd:\n  local:\n    dataDir: /var/lib/etcd\n\
         imageRepository: {image_repository}\nkind: ClusterConfiguration\nkubernetesVersion: v{version}\n\
         networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n\
         scheduler: {{}}\n"
    );
    let items = list["items"].as_array_mut().expect("a List");
    items.push(config_map(
        "kubeadm-config",
        json!({ "ClusterConfiguration": cluster_configuration }),
    ));
    items.push(config_map(
        &kubelet_name,
        json!({ "kubelet": kubelet_config }),
    ));
}

fn config_map(name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system"},
        "data": data,
    })
}

/// Sets every listed node's kubelet version (`v1.20.15`) in the List.
pub fn set_kubelet_versions(list: &mut Value, versions: &[(&str, &str)]) {
    for item in list["items"].as_array_mut().expect("a List") {
        if item["kind"] != "Node" {
            continue;
        }
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some((_, version)) = versions.iter().find(|(n, _)| *n == name) {
            item["status"]["nodeInfo"]["kubeletVersion"] = json!(version);
        }
    }
}

/// A kubeconfig for `user` at `server` that carries the cluster's CA, as kubeadm writes
/// admin.conf (`kubeadm token create --print-join-command` pins the CA from it).
pub fn kubeconfig_with_ca(server: &str, user: &str, ca: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    \
         certificate-authority-data: {ca}\n    server: {server}\ncontexts:\n- name: \
         {user}@kubernetes\n  context:\n    cluster: kubernetes\n    user: {user}\n\
         current-context: {user}@kubernetes\nusers:\n- name: {user}\n  user: {{}}\n"
    )
}

/// Publishes `kube-public/cluster-info` as `kubeadm init` does: the cluster's address and CA
/// for nodes that join with a bootstrap token (each token's signature is added when the token
/// is created).
pub fn publish_cluster_info(url: &str, ca: &str) {
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    \
         server: {url}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\n\
         preferences: {{}}\nusers: null\n",
        {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(ca)
        }
    );
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig},
    });
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .arg("-d")
        .arg(body.to_string())
        .arg(format!("{url}/api/v1/namespaces/kube-public/configmaps"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "cannot publish cluster-info: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
