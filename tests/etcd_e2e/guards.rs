//! The quorum guard as an operator meets it: exit 3, the arithmetic in the message, and the
//! membership exactly as it was.

use super::{Files, etcd_section, three_members};
use crate::support::etcd::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_while_another_is_down_is_refused() {
    let Some(mut cluster) = three_members().await else {
        return;
    };
    let before = cluster.etcdctl_members();
    cluster.stop("m2");
    let files = Files::new(&etcd_section(&cluster));
    let playbook = files.write("remove.rhai", "etcd_remove_member(\"m1\");\n");

    let out = files.krun(&playbook, &[]);
    out.code(3)
        .stderr_has("refused to remove etcd member m1")
        .stderr_has("Membership unchanged")
        // Two healthy voters of three; without m1 one would be left, below the quorum of 2.
        .stderr_has("voters 3 -> 2, healthy voters 2 -> 1, quorum 2 -> 2");
    assert_eq!(cluster.etcdctl_members(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_learner_blocks_a_second_add() {
    let Some(cluster) = three_members().await else {
        return;
    };
    let before = cluster.etcdctl_members();
    let files = Files::new(&etcd_section(&cluster));
    let playbook = files.write(
        "add.rhai",
        r#"
etcd_add_member("m3", [param("first")], #{ learner: true });
etcd_add_member("m4", [param("second")], #{ learner: true });
"#,
    );
    let first = format!("first=http://127.0.0.1:{}", free_port());
    let second = format!("second=http://127.0.0.1:{}", free_port());

    let out = files.krun(&playbook, &["--set", &first, "--set", &second]);
    out.code(3)
        .stderr_has("refused to add etcd member m4")
        .stderr_has("learner");
    let after = cluster.etcdctl_members();
    let learners: Vec<_> = after.iter().filter(|m| m.2).collect();
    assert_eq!(learners.len(), 1, "{after:?}");
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    for member in &before {
        assert!(after.contains(member), "{member:?} is gone: {after:?}");
    }
}
