//! A hop's verification as a section of the HTML report: every check with what it was at the
//! start of the run and what it is now, failures first.

use std::fmt::Write as _;

use super::markup::escape;
use crate::kube::health::{Status, Verification};

/// The section: a verdict line and a table of checks (failures, then notes, then passes).
pub fn section(verification: &Verification) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<h2>Verification at {}</h2><p class=\"verdict\">{}</p>",
        escape(&verification.version),
        if verification.ok {
            "ok: every check passed".to_owned()
        } else {
            format!(
                "FAILED: {} of {} checks",
                verification.failures().count(),
                verification.checks.len()
            )
        }
    );
    if !verification.baseline {
        out.push_str("<p>No baseline from the start of the run: ready replicas and failing pods are not compared with before.</p>");
    }
    out.push_str(
        "<table><tr><th>result</th><th>area</th><th>what</th><th>before</th><th>after</th></tr>",
    );
    for wanted in [Status::Fail, Status::Note, Status::Pass] {
        for check in verification.checks.iter().filter(|c| c.status == wanted) {
            let (class, shown) = match check.status {
                Status::Fail => ("block", "fail"),
                Status::Note => ("warn", "note"),
                Status::Pass => ("ok", "ok"),
            };
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td>{shown}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&check.area),
                escape(&check.subject),
                escape(check.before.as_deref().unwrap_or("")),
                escape(&check.after)
            );
        }
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::health::Check;

    #[test]
    fn failures_come_first_and_text_is_escaped() {
        let verification = Verification {
            version: "1.21.14".into(),
            ok: false,
            baseline: true,
            checks: vec![
                Check {
                    area: "nodes".into(),
                    subject: "m1".into(),
                    status: Status::Pass,
                    before: None,
                    after: "Ready".into(),
                },
                Check {
                    area: "workloads".into(),
                    subject: "shop/Deployment/<web>".into(),
                    status: Status::Fail,
                    before: Some("3 of 3 ready".into()),
                    after: "1 of 3 ready".into(),
                },
            ],
        };
        let html = section(&verification);
        assert!(html.contains("FAILED: 1 of 2 checks"), "{html}");
        assert!(html.contains("shop/Deployment/&lt;web&gt;"), "{html}");
        assert!(
            html.find("1 of 3 ready").unwrap() < html.find(">m1<").unwrap(),
            "{html}"
        );
    }
}
