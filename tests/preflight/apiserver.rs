//! Seed 000's "highly available" VIP with one live apiserver behind it, as two simulators
//! standing in for two control-plane apiservers, one of which goes down.

use crate::support::sim::Sim;

use super::snapshot;

async fn preflight(apiservers: &[String]) -> crate::cli::Output {
    // The scenario's own block is not what this test is about.
    let mut args: Vec<String> = ["--accept", "critical-without-pdb", "--output", "json"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for url in apiservers {
        args.extend(["--apiserver".to_owned(), url.clone()]);
    }
    super::preflight_cli_async("prometheus-without-pdb", args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_that_does_not_answer_on_its_own_is_a_block() {
    let yaml = std::fs::read_to_string(snapshot("prometheus-without-pdb")).unwrap();
    let first = Sim::start(&yaml, 1.0).await;
    let second = Sim::start(&yaml, 1.0).await;
    let urls = vec![first.server.url(), second.server.url()];

    // Both answer: nothing to report about the control plane's front door.
    let out = preflight(&urls).await;
    out.code(0);
    let found = super::finding_ids(&out);
    assert!(
        !found.iter().any(|id| id.starts_with("apiserver")),
        "{found:?}"
    );

    // One goes down: the load balancer has one live backend left, a block.
    let down = second.server.url();
    second.server.shutdown().await;
    let out = preflight(&urls).await;
    out.code(3);
    let found = super::finding_ids(&out);
    assert!(
        found.contains(&format!("apiserver-down/{down}")),
        "{found:?}"
    );
    let json = out.json();
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == format!("apiserver-down/{down}"))
        .unwrap();
    assert_eq!(finding["severity"], "block");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("1 of 2 apiservers answer"),
        "{finding}"
    );
    drop(first);
}
