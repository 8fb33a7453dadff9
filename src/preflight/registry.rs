//! The registry canary's judgement: an image the canary could not pull is a block.

use super::{Finding, Severity};
use crate::host::images::PullReport;

const CHECK: &str = "registry-pull";

/// A blocking finding per image the canary could not pull; in a dry-run, one finding that
/// says the registries were not checked.
pub fn findings(report: &PullReport) -> Vec<Finding> {
    let client = report.client;
    let runtime = report.runtime;
    let command = |image: &str| report.pulled_with.pull_command(image);
    if !report.observed {
        return vec![Finding::new(
            CHECK,
            &report.node,
            Severity::Info,
            format!("node/{}", report.node),
            format!(
                "the pulls of {} images on {} with {runtime} are shown, not run: the \
                 registries are not checked in a dry-run",
                report.images.len(),
                report.node
            ),
            "run without --dry-run; the pulls change nothing but the canary's image store",
        )];
    }
    report
        .failed
        .iter()
        .map(|failed| {
            let reason = failed.stderr.lines().last().unwrap_or("").trim();
            Finding::new(
                CHECK,
                &failed.image,
                Severity::Block,
                format!("image {}", failed.image),
                format!(
                    "{} cannot pull {} from registry {} with {runtime} ({client}): {reason}",
                    report.node, failed.image, failed.registry
                ),
                format!(
                    "make registry {} serve {runtime} (upgrade it, or set a mirror in the \
                     runtime's registry configuration) and check with `{}` on {}",
                    failed.registry,
                    command(&failed.image),
                    report.node
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::images::{Client, FailedPull, Runtime};

    #[test]
    fn every_failed_pull_is_a_blocking_finding() {
        let report = PullReport {
            node: "w2".into(),
            runtime: "containerd",
            client: "crictl",
            images: vec!["old.example.com/web:1".into(), "nginx:1.25".into()],
            pulled: vec!["nginx:1.25".into()],
            failed: vec![FailedPull {
                image: "old.example.com/web:1".into(),
                registry: "old.example.com".into(),
                stderr: "E1123 noise\nFATA[0000] pulling image: not found".into(),
            }],
            observed: true,
            pulled_with: Client::Crictl {
                endpoint: Runtime::Containerd.socket().into(),
            },
        };
        let findings = findings(&report);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.id, "registry-pull/old.example.com/web:1");
        assert!(finding.blocks());
        assert_eq!(
            finding.message,
            "w2 cannot pull old.example.com/web:1 from registry old.example.com with containerd \
             (crictl): FATA[0000] pulling image: not found"
        );
        assert!(
            finding.fix.contains(
                "`crictl --runtime-endpoint unix:///run/containerd/containerd.sock pull old.example.com/web:1` on w2"
            ),
            "{}",
            finding.fix
        );
    }
}
