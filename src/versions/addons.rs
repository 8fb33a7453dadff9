//! The addons kubeadm deploys with a release, and when an upgrade moves them.

use super::KubeVersion;

/// The CoreDNS image tag kubeadm deploys for a minor (kubeadm's `constants.CoreDNSVersion`;
/// from 1.21 the image is `coredns/coredns` and the tag has a `v`). `None` for a minor this
/// table does not know: the verification then says it did not check CoreDNS's version.
pub fn coredns(version: KubeVersion) -> Option<&'static str> {
    if version.major != 1 {
        return None;
    }
    Some(match version.minor {
        11 => "1.1.3",
        12 => "1.2.2",
        13 => "1.2.6",
        14 | 15 => "1.3.1",
        16 => "1.6.2",
        17 => "1.6.5",
        18 => "1.6.7",
        19 | 20 => "1.7.0",
        21 => "v1.8.0",
        22 => "v1.8.4",
        23 | 24 => "v1.8.6",
        25 | 26 => "v1.9.3",
        27 | 28 => "v1.10.1",
        29 | 30 => "v1.11.1",
        31 | 32 => "v1.11.3",
        33 => "v1.12.0",
        _ => return None,
    })
}

/// The kube-proxy image tag kubeadm deploys for `version`.
pub fn kube_proxy(version: KubeVersion) -> String {
    format!("v{version}")
}

/// From 1.28 kubeadm upgrades CoreDNS and kube-proxy only once every control-plane node's
/// kube-apiserver runs the new version, i.e. with the last control-plane node's
/// `kubeadm upgrade node`; before, `kubeadm upgrade apply` does it (kubeadm-facts §2).
pub fn addons_follow_last_control_plane(target: KubeVersion) -> bool {
    target.major == 1 && target.minor >= 28
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredns_follows_kubeadms_constants() {
        let v = |m| KubeVersion::new(1, m, 0);
        assert_eq!(coredns(v(20)), Some("1.7.0"));
        assert_eq!(coredns(v(21)), Some("v1.8.0"));
        assert_eq!(coredns(v(28)), Some("v1.10.1"));
        assert_eq!(coredns(v(40)), None);
        assert!(!addons_follow_last_control_plane(v(27)));
        assert!(addons_follow_last_control_plane(v(28)));
        assert_eq!(kube_proxy(KubeVersion::new(1, 21, 14)), "v1.21.14");
    }
}
