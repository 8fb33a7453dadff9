//! containerd on a booted machine pulling from a real registry on loopback, and from the
//! proxy that answers 404 to manifests by digest (the field report's old registry).

use crate::support::fleet::Os;
use crate::support::machines::registry::{DigestRefusingProxy, Registry};
use crate::support::machines::{MachineSpec, Machines};

#[test]
fn containerd_pulls_from_the_registry_and_not_through_the_digest_refusing_proxy() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = registry.push("app/web", "1");
    // Another image for the proxy: a manifest already in containerd's store is not fetched.
    let other = registry.push("app/api", "1");
    let proxy = DigestRefusingProxy::start(&registry);
    let Some(machines) = Machines::builder()
        .machine(MachineSpec::new("c1", Os::Debian12))
        .start()
    else {
        return;
    };
    let c1 = machines.machine("c1");
    c1.sh("systemctl enable --now containerd");
    let direct = c1.exec(&format!("ctr -n k8s.io images pull {image}"));
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    let through = other.replace(&registry.host(), &proxy.host());
    let refused = c1.exec(&format!("ctr -n k8s.io images pull {through}"));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "pulled through the proxy: {said}"
    );
    // containerd resolved the tag, then could not fetch the manifest by its digest.
    assert!(
        said.contains("/manifests/sha256:") && said.contains("not found"),
        "{said}"
    );
}
