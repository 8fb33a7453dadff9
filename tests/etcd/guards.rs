//! The quorum guard against a real cluster: refusals change nothing and exit with code 3.

use krun::etcd::guard::Reason;
use krun::etcd::{EtcdError, GuardMode};

use super::healthy_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_while_another_is_down_is_refused() {
    let Some((mut cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    let before = cluster.etcdctl_members();
    cluster.stop("m1");

    let err = client
        .remove_member("m2", GuardMode::Enforce)
        .await
        .unwrap_err();
    let EtcdError::Refused(refusal) = &err else {
        panic!("expected a refusal, got {err}")
    };
    let refusal = refusal.clone();
    assert!(
        matches!(&refusal.reasons[0], Reason::NotFullyHealthy { unhealthy } if unhealthy[0].starts_with("m1 (")),
        "{refusal}"
    );
    assert!(matches!(
        refusal.reasons[1],
        Reason::BelowQuorum {
            healthy_voters_after: 1,
            quorum_after: 2,
            ..
        }
    ));
    let message = err.to_string();
    assert!(
        message.starts_with("refused to remove etcd member m2 ("),
        "{message}"
    );
    assert!(message.contains("Membership unchanged"), "{message}");
    let err: krun::Error = err.into();
    assert_eq!(err.exit_code(), 3);

    assert_eq!(cluster.etcdctl_members(), before, "membership unchanged");

    // An override is explicit and reported; planning it changes nothing either.
    let approval = client.plan_remove("m2", GuardMode::Override).await.unwrap();
    assert!(approval.was_overridden());
    assert_eq!(approval.overridden, refusal.reasons);
    assert!(
        approval.to_string().contains("GUARD OVERRIDDEN"),
        "{approval}"
    );
    assert_eq!(cluster.etcdctl_members(), before, "planning never writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_learner_blocks_another_add_and_voter_removal() {
    let Some((mut cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    let m3_peer = cluster.define("m3").peer_url.clone();
    let m4_peer = cluster.define("m4").peer_url.clone();

    let added = client
        .add_member("m3", &[m3_peer], true, GuardMode::Enforce)
        .await
        .unwrap();
    let learner = added.added.unwrap();
    let before = cluster.etcdctl_members();
    assert_eq!(before.len(), 4);

    let err = client
        .add_member("m4", &[m4_peer], true, GuardMode::Enforce)
        .await
        .unwrap_err();
    let EtcdError::Refused(refusal) = &err else {
        panic!("expected a refusal, got {err}")
    };
    let pending = refusal.reasons.iter().find_map(|r| match r {
        Reason::LearnerPending { learners } => Some(learners.clone()),
        _ => None,
    });
    assert_eq!(pending, Some(vec![learner.label()]), "{refusal}");
    assert_eq!(krun::Error::from(err).exit_code(), 3);

    let err = client
        .remove_member("m0", GuardMode::Enforce)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("a learner is still pending"),
        "{err}"
    );
    let err = client
        .move_leader(&learner.id.to_string())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("it is a learner"), "{err}");
    assert_eq!(krun::Error::from(err).exit_code(), 2);
    assert_eq!(cluster.etcdctl_members(), before, "membership unchanged");

    // Backing out of the replacement is allowed: the learner itself may go.
    let removed = client
        .remove_member(&learner.id.to_string(), GuardMode::Enforce)
        .await
        .unwrap();
    assert_eq!(removed.members_after.len(), 3);
    assert_eq!(cluster.etcdctl_members().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_members_are_input_errors_that_list_the_members() {
    let Some((_cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    let err = client
        .remove_member("m9", GuardMode::Override)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("etcd member \"m9\" not found (members: "),
        "{message}"
    );
    for name in ["m0 (", "m1 (", "m2 ("] {
        assert!(message.contains(name), "{message}");
    }
    assert_eq!(krun::Error::from(err).exit_code(), 2);
}
