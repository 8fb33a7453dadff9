use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl("1.33") else { return };
    let run = kubectl.run(&["get", "pods", "-A", "-o", "wide", "-v=6"]).await;
    println!("{}\n{}", run.stdout, run.stderr);
    let run = kubectl.run(&["get", "nodes", "-o", "wide"]).await;
    println!("{}\n{}", run.stdout, run.stderr);
    let run = kubectl.run(&["drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data", "-v=6"]).await;
    println!("{}\n{}", run.stdout, run.stderr);
    let run = kubectl.run(&["get", "pods", "-A", "-o", "wide"]).await;
    println!("{}\n{}", run.stdout, run.stderr);
}
