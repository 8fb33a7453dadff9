//! The control plane's front door: every kube-apiserver answers `/readyz` on its own, and the
//! address krun (and every kubelet) uses answers too.
//!
//! Seed 000's worst incident: the "highly available" VIP had one live apiserver behind it, so
//! upgrading that control-plane node cut every worker off the API. An apiserver that does not
//! answer on its own address is exactly that situation waiting to happen: the load balancer has
//! fewer live backends than there are control-plane nodes, and the next control-plane upgrade
//! may take away the last one.
//!
//! The probes are read by [`crate::kube::Survey`]; this module judges them.

use super::{Finding, Severity};
use crate::kube::Survey;

/// Judges the probes of every endpoint and of the address krun itself uses; a silent one is a
/// block.
pub fn check(survey: &Survey) -> Vec<Finding> {
    let view = &survey.view;
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
    if survey.readyz.is_empty() {
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
    let endpoints: Vec<&String> = survey.readyz.iter().map(|(e, _)| e).collect();
    let down: Vec<(String, String)> = survey
        .readyz
        .iter()
        .filter_map(|(endpoint, answer)| {
            answer
                .as_ref()
                .err()
                .map(|why| (endpoint.clone(), why.clone()))
        })
        .collect();
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
    if let Some(why) = &survey.in_use {
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
