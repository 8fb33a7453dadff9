//! The control plane's front door: every kube-apiserver answers `/readyz` on its own, and the
//! address krun (and every kubelet) uses answers too.
//!
//! Seed 000's worst incident: the "highly available" VIP had one live apiserver behind it, so
//! upgrading that control-plane node cut every worker off the API. An apiserver that does not
//! answer on its own address is exactly that situation waiting to happen: the load balancer has
//! fewer live backends than there are control-plane nodes, and the next control-plane upgrade
//! may take away the last one.
//!
//! The endpoints come from `--apiserver URL` or, on kubeadm clusters, from the
//! `kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint` annotation of the
//! kube-apiserver static pods. The probe sends no credentials (`/readyz` is readable
//! anonymously by default) and so does not verify the endpoint's certificate: it learns only
//! whether the endpoint answers "ok".

use std::time::Duration;

use super::{ClusterView, Finding, PreflightOptions, Severity};
use crate::kube::Kube;

const ENDPOINT_ANNOTATION: &str = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The apiserver endpoints to probe: given, or found on the static pods.
pub fn endpoints(view: &ClusterView, options: &PreflightOptions) -> Vec<String> {
    if !options.apiservers.is_empty() {
        return options.apiservers.clone();
    }
    let mut found: Vec<String> = view
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("component"))
                .is_some_and(|c| c == "kube-apiserver")
        })
        .filter_map(|p| {
            p.metadata
                .annotations
                .as_ref()?
                .get(ENDPOINT_ANNOTATION)
                .cloned()
        })
        .map(|endpoint| format!("https://{endpoint}"))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Probes every endpoint and the address krun itself uses; a silent one is a block.
pub async fn check(kube: &Kube, view: &ClusterView, options: &PreflightOptions) -> Vec<Finding> {
    let endpoints = endpoints(view, options);
    let control_planes = view
        .nodes
        .iter()
        .filter(|n| {
            n.metadata.labels.as_ref().is_some_and(|l| {
                l.contains_key("node-role.kubernetes.io/control-plane")
                    || l.contains_key("node-role.kubernetes.io/master")
            })
        })
        .count();
    let mut findings = Vec::new();
    if endpoints.is_empty() {
        findings.push(Finding::new(
            "apiserver-endpoints",
            "unknown",
            Severity::Info,
            "kube-apiserver",
            "the control-plane endpoints are not known (no kubeadm annotation on the apiserver pods), so each apiserver was not checked on its own",
            "pass each control-plane apiserver's own address with --apiserver (repeatable)",
        ));
        return findings;
    }
    let mut down = Vec::new();
    for endpoint in &endpoints {
        if let Err(why) = probe(endpoint).await {
            down.push((endpoint.clone(), why));
        }
    }
    let live = endpoints.len() - down.len();
    for (endpoint, why) in &down {
        findings.push(Finding::new(
            "apiserver-down",
            endpoint,
            Severity::Block,
            format!("kube-apiserver {endpoint}"),
            format!(
                "kube-apiserver at {endpoint} does not answer /readyz ({why}): {live} of {} apiservers answer, so the load balancer in front of them has at most {live} live backend(s); upgrading a control-plane node now can leave every kubelet without an API server",
                endpoints.len()
            ),
            "bring it back (systemctl status kubelet, crictl ps on that node) and check the load balancer's or keepalived's backend list before upgrading (--lb NODE reads it)",
        ));
    }
    if control_planes > endpoints.len() {
        findings.push(Finding::new(
            "apiserver-endpoints",
            "fewer-than-control-plane",
            Severity::Warn,
            "kube-apiserver",
            format!(
                "{} apiserver endpoint(s) known for {control_planes} control-plane nodes: the others were not checked",
                endpoints.len()
            ),
            "pass every control-plane endpoint with --apiserver",
        ));
    }
    // The address this run (and, normally, every kubelet) goes through: the VIP or LB.
    if let Err(why) = readyz(kube.client()).await {
        findings.push(Finding::new(
            "apiserver-down",
            "load-balancer",
            Severity::Block,
            "the API server address in use",
            format!("the API server address krun uses does not answer /readyz: {why}"),
            "check the load balancer / VIP in front of the control plane",
        ));
    }
    findings
}

async fn probe(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.accept_invalid_certs = true;
    config.default_retry = false;
    config.connect_timeout = Some(PROBE_TIMEOUT);
    config.read_timeout = Some(PROBE_TIMEOUT);
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    readyz(&client).await
}

async fn readyz(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(PROBE_TIMEOUT * 2, client.request_text(request))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if answer.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("answered {:?}", answer.trim()))
    }
}
