//! The quorum guard: decides whether a membership change may run, from data alone.
//!
//! The field rule for etcd is one member at a time, remove before add, and never below quorum.
//! The rule lives here, as a pure function of the membership and each member's health, so it can
//! be tested exhaustively and shown in a dry-run plan without touching a cluster. An approval
//! carries the quorum arithmetic for the log; a refusal names every reason that applies. Each
//! refusal can be overridden explicitly, and the approval then says so, so the caller can log it
//! loudly. Refusals become exit code 3.
//!
//! Two choices go beyond the letter of "refuse while a learner is pending" and "refuse unless
//! fully healthy", because the strict reading would block the way out of a failed replacement:
//! removing the pending learner itself is allowed, and the member being removed may be the
//! unhealthy one (replacing a dead member is what remove is for), as long as the members that
//! stay are healthy and keep quorum.

use std::fmt;

use serde::Serialize;

use super::member::{Member, MemberId};

/// Whether a member answered through one of the endpoints krun can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Health {
    Healthy,
    /// Why krun could not confirm the member healthy.
    Unhealthy(String),
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

/// A member and its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberState {
    pub member: Member,
    pub health: Health,
}

/// The membership with each member's health: everything the guard decides from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ClusterView {
    pub members: Vec<MemberState>,
}

impl ClusterView {
    /// Members that krun could not confirm healthy, with the reason.
    pub fn unhealthy(&self) -> impl Iterator<Item = (&Member, &str)> {
        self.members.iter().filter_map(|s| match &s.health {
            Health::Healthy => None,
            Health::Unhealthy(why) => Some((&s.member, why.as_str())),
        })
    }

    pub fn is_fully_healthy(&self) -> bool {
        self.unhealthy().next().is_none()
    }

    fn seats(&self) -> Vec<Seat> {
        self.members.iter().map(Seat::from).collect()
    }
}

/// Whether refusals stop the change or are overridden (and reported as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuardMode {
    #[default]
    Enforce,
    /// Proceed despite refusals; the approval lists what was overridden.
    Override,
}

/// A membership change the guard is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    Remove {
        member: Member,
    },
    Add {
        name: String,
        peer_urls: Vec<String>,
        learner: bool,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Remove { member } => write!(f, "remove etcd member {}", member.label()),
            Change::Add {
                name,
                peer_urls,
                learner,
            } => {
                let role = if *learner { "learner" } else { "voter" };
                write!(
                    f,
                    "add etcd member {name} as a {role} ({})",
                    peer_urls.join(",")
                )
            }
        }
    }
}

/// One seat in a before/after membership; a member being added has no id yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seat {
    pub name: String,
    pub id: Option<MemberId>,
    pub is_learner: bool,
    pub healthy: bool,
}

impl From<&MemberState> for Seat {
    fn from(state: &MemberState) -> Self {
        Seat {
            name: state.member.name.clone(),
            id: Some(state.member.id),
            is_learner: state.member.is_learner,
            healthy: state.health.is_healthy(),
        }
    }
}

impl fmt::Display for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "unstarted"
        } else {
            &self.name
        };
        let role = if self.is_learner { "learner" } else { "voter" };
        let health = if self.healthy {
            "healthy"
        } else {
            "not healthy"
        };
        match self.id {
            Some(id) => write!(f, "{name} {id} {role} {health}"),
            None => write!(f, "{name} (new) {role} not started"),
        }
    }
}

/// The quorum arithmetic of a change, for the log and the dry-run plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arithmetic {
    pub before: Vec<Seat>,
    pub after: Vec<Seat>,
    pub voters_before: usize,
    pub voters_after: usize,
    pub healthy_voters_before: usize,
    pub healthy_voters_after: usize,
    pub quorum_before: usize,
    pub quorum_after: usize,
}

impl Arithmetic {
    fn new(before: Vec<Seat>, after: Vec<Seat>) -> Self {
        let voters = |seats: &[Seat]| seats.iter().filter(|s| !s.is_learner).count();
        let healthy = |seats: &[Seat]| seats.iter().filter(|s| !s.is_learner && s.healthy).count();
        Arithmetic {
            voters_before: voters(&before),
            voters_after: voters(&after),
            healthy_voters_before: healthy(&before),
            healthy_voters_after: healthy(&after),
            quorum_before: quorum(voters(&before)),
            quorum_after: quorum(voters(&after)),
            before,
            after,
        }
    }
}

impl fmt::Display for Arithmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |seats: &[Seat]| {
            let names: Vec<String> = seats.iter().map(Seat::to_string).collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        write!(
            f,
            "voters {} -> {}, healthy voters {} -> {}, quorum {} -> {}; before: [{}]; after: [{}]",
            self.voters_before,
            self.voters_after,
            self.healthy_voters_before,
            self.healthy_voters_after,
            self.quorum_before,
            self.quorum_after,
            list(&self.before),
            list(&self.after),
        )
    }
}

/// Votes needed for a Raft majority among `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Why the guard refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Members other than the one being removed are not healthy.
    NotFullyHealthy { unhealthy: Vec<String> },
    /// The member is the only voter; removing it ends the cluster.
    LastVoter,
    /// After the change fewer voters are healthy than the new size's quorum.
    BelowQuorum {
        healthy_voters_after: usize,
        quorum_after: usize,
        voters_after: usize,
    },
    /// A learner has not been promoted yet; finish (or remove) it first.
    LearnerPending { learners: Vec<String> },
    /// The member to remove is not in the membership. Never overridden.
    NotAMember,
    /// Another member already has this name, so it could no longer be named unambiguously.
    /// Never overridden.
    NameTaken { existing: String },
}

impl Reason {
    /// Whether an explicit override may set this reason aside.
    pub fn is_overridable(&self) -> bool {
        !matches!(self, Reason::NotAMember | Reason::NameTaken { .. })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotFullyHealthy { unhealthy } => {
                write!(
                    f,
                    "the cluster is not fully healthy: {}",
                    unhealthy.join("; ")
                )
            }
            Reason::LastVoter => f.write_str("it is the last voting member"),
            Reason::BelowQuorum {
                healthy_voters_after,
                quorum_after,
                voters_after,
            } => write!(
                f,
                "afterwards only {healthy_voters_after} of {voters_after} voters would be healthy, \
                 below the quorum of {quorum_after}"
            ),
            Reason::LearnerPending { learners } => write!(
                f,
                "a learner is still pending ({}); promote or remove it first",
                learners.join(", ")
            ),
            Reason::NotAMember => f.write_str("it is not a member of the cluster"),
            Reason::NameTaken { existing } => write!(f, "the name is already used by {existing}"),
        }
    }
}

/// The guard let the change through; log `arithmetic`, and `overridden` loudly if not empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub change: Change,
    pub arithmetic: Arithmetic,
    /// Refusal reasons that an explicit override set aside.
    pub overridden: Vec<Reason>,
}

impl Approval {
    pub fn was_overridden(&self) -> bool {
        !self.overridden.is_empty()
    }
}

impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.change, self.arithmetic)?;
        if self.was_overridden() {
            let reasons: Vec<String> = self.overridden.iter().map(Reason::to_string).collect();
            write!(
                f,
                "; GUARD OVERRIDDEN, it would have refused: {}",
                reasons.join("; ")
            )?;
        }
        Ok(())
    }
}

/// The guard refused the change; the membership was not touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Refusal {
    pub change: Change,
    pub arithmetic: Arithmetic,
    pub reasons: Vec<Reason>,
}

impl Refusal {
    /// Whether an explicit override would let the change through.
    pub fn is_overridable(&self) -> bool {
        self.reasons.iter().all(Reason::is_overridable)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self.reasons.iter().map(Reason::to_string).collect();
        write!(
            f,
            "refused to {}: {}. Membership unchanged",
            self.change,
            reasons.join("; ")
        )?;
        if self.is_overridable() {
            f.write_str(" (an explicit override would proceed anyway)")?;
        }
        write!(f, ". Quorum: {}", self.arithmetic)
    }
}

/// Decides whether removing member `id` is safe.
pub fn check_remove(
    view: &ClusterView,
    id: MemberId,
    mode: GuardMode,
) -> Result<Approval, Box<Refusal>> {
    let before = view.seats();
    let Some(target) = view.members.iter().find(|s| s.member.id == id) else {
        let placeholder = Member {
            id,
            name: String::new(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: false,
        };
        return Err(Box::new(Refusal {
            change: Change::Remove {
                member: placeholder,
            },
            arithmetic: Arithmetic::new(before.clone(), before),
            reasons: vec![Reason::NotAMember],
        }));
    };
    let after: Vec<Seat> = before
        .iter()
        .filter(|s| s.id != Some(id))
        .cloned()
        .collect();
    let arithmetic = Arithmetic::new(before, after);

    let mut reasons = Vec::new();
    let others_unhealthy: Vec<String> = view
        .unhealthy()
        .filter(|(m, _)| m.id != id)
        .map(|(m, why)| format!("{} is not healthy ({why})", m.label()))
        .collect();
    if !others_unhealthy.is_empty() {
        reasons.push(Reason::NotFullyHealthy {
            unhealthy: others_unhealthy,
        });
    }
    let is_voter = !target.member.is_learner;
    if is_voter && arithmetic.voters_before == 1 {
        reasons.push(Reason::LastVoter);
    } else if arithmetic.healthy_voters_after < arithmetic.quorum_after {
        reasons.push(Reason::BelowQuorum {
            healthy_voters_after: arithmetic.healthy_voters_after,
            quorum_after: arithmetic.quorum_after,
            voters_after: arithmetic.voters_after,
        });
    }
    let learners = pending_learners(view, Some(id));
    if !learners.is_empty() {
        reasons.push(Reason::LearnerPending { learners });
    }
    decide(
        Change::Remove {
            member: target.member.clone(),
        },
        arithmetic,
        reasons,
        mode,
    )
}

/// Decides whether adding a member named `name` (a learner or a voter) is safe.
///
/// The new member counts as not healthy until it starts, which is why adding a voter to a
/// cluster without spare healthy voters is refused: the cluster would lose quorum in between.
pub fn check_add(
    view: &ClusterView,
    name: &str,
    peer_urls: &[String],
    learner: bool,
    mode: GuardMode,
) -> Result<Approval, Box<Refusal>> {
    let before = view.seats();
    let mut after = before.clone();
    after.push(Seat {
        name: name.to_owned(),
        id: None,
        is_learner: learner,
        healthy: false,
    });
    let arithmetic = Arithmetic::new(before, after);

    let mut reasons = Vec::new();
    if let Some(existing) = view
        .members
        .iter()
        .find(|s| s.member.name == name && !name.is_empty())
    {
        reasons.push(Reason::NameTaken {
            existing: existing.member.label(),
        });
    }
    let unhealthy: Vec<String> = view
        .unhealthy()
        .map(|(m, why)| format!("{} is not healthy ({why})", m.label()))
        .collect();
    if !unhealthy.is_empty() {
        reasons.push(Reason::NotFullyHealthy { unhealthy });
    }
    if arithmetic.healthy_voters_after < arithmetic.quorum_after {
        reasons.push(Reason::BelowQuorum {
            healthy_voters_after: arithmetic.healthy_voters_after,
            quorum_after: arithmetic.quorum_after,
            voters_after: arithmetic.voters_after,
        });
    }
    let learners = pending_learners(view, None);
    if !learners.is_empty() {
        reasons.push(Reason::LearnerPending { learners });
    }
    let change = Change::Add {
        name: name.to_owned(),
        peer_urls: peer_urls.to_vec(),
        learner,
    };
    decide(change, arithmetic, reasons, mode)
}

fn pending_learners(view: &ClusterView, except: Option<MemberId>) -> Vec<String> {
    view.members
        .iter()
        .filter(|s| s.member.is_learner && Some(s.member.id) != except)
        .map(|s| s.member.label())
        .collect()
}

fn decide(
    change: Change,
    arithmetic: Arithmetic,
    reasons: Vec<Reason>,
    mode: GuardMode,
) -> Result<Approval, Box<Refusal>> {
    let overridable = reasons.iter().all(Reason::is_overridable);
    if reasons.is_empty() || (mode == GuardMode::Override && overridable) {
        Ok(Approval {
            change,
            arithmetic,
            overridden: reasons,
        })
    } else {
        Err(Box::new(Refusal {
            change,
            arithmetic,
            reasons,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member spec: (name, learner, healthy).
    type Spec = (&'static str, bool, bool);

    fn view(specs: &[Spec]) -> ClusterView {
        ClusterView {
            members: specs
                .iter()
                .enumerate()
                .map(|(i, &(name, learner, healthy))| MemberState {
                    member: Member {
                        id: MemberId(0xa0 + i as u64),
                        name: name.to_owned(),
                        peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + i)],
                        client_urls: vec![format!("http://127.0.0.1:{}", 2379 + i)],
                        is_learner: learner,
                    },
                    health: if healthy {
                        Health::Healthy
                    } else {
                        Health::Unhealthy("connection refused".to_owned())
                    },
                })
                .collect(),
        }
    }

    fn id_of(view: &ClusterView, name: &str) -> MemberId {
        view.members
            .iter()
            .find(|s| s.member.name == name)
            .unwrap()
            .member
            .id
    }

    fn peer(name: &str) -> Vec<String> {
        vec![format!("http://{name}.invalid:2380")]
    }

    const HEALTHY3: &[Spec] = &[
        ("m0", false, true),
        ("m1", false, true),
        ("m2", false, true),
    ];

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(
            (1..=7).map(quorum).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3, 4, 4]
        );
    }

    #[test]
    fn removing_from_a_healthy_three_member_cluster_is_allowed_with_arithmetic() {
        let v = view(HEALTHY3);
        let ok = check_remove(&v, id_of(&v, "m1"), GuardMode::Enforce).unwrap();
        assert!(!ok.was_overridden());
        let a = &ok.arithmetic;
        assert_eq!((a.voters_before, a.voters_after), (3, 2));
        assert_eq!((a.healthy_voters_before, a.healthy_voters_after), (3, 2));
        assert_eq!((a.quorum_before, a.quorum_after), (2, 2));
        assert_eq!(
            a.after.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["m0", "m2"]
        );
        assert_eq!(
            ok.to_string(),
            "remove etcd member m1 (a1): voters 3 -> 2, healthy voters 3 -> 2, quorum 2 -> 2; \
             before: [m0 a0 voter healthy, m1 a1 voter healthy, m2 a2 voter healthy]; \
             after: [m0 a0 voter healthy, m2 a2 voter healthy]"
        );
    }

    #[test]
    fn removing_a_healthy_member_while_another_is_down_is_refused() {
        let v = view(&[
            ("m0", false, true),
            ("m1", false, false),
            ("m2", false, true),
        ]);
        let no = check_remove(&v, id_of(&v, "m2"), GuardMode::Enforce).unwrap_err();
        assert_eq!(
            no.reasons,
            [
                Reason::NotFullyHealthy {
                    unhealthy: vec!["m1 (a1) is not healthy (connection refused)".to_owned()]
                },
                Reason::BelowQuorum {
                    healthy_voters_after: 1,
                    quorum_after: 2,
                    voters_after: 2
                },
            ]
        );
        assert!(no.is_overridable());
        let msg = no.to_string();
        assert!(msg.starts_with("refused to remove etcd member m2 (a2): the cluster is not fully healthy: m1 (a1) is not healthy (connection refused); afterwards only 1 of 2 voters would be healthy, below the quorum of 2. Membership unchanged (an explicit override would proceed anyway). Quorum: voters 3 -> 2"), "{msg}");
    }

    #[test]
    fn removing_the_dead_member_itself_is_allowed() {
        let v = view(&[
            ("m0", false, true),
            ("m1", false, false),
            ("m2", false, true),
        ]);
        let ok = check_remove(&v, id_of(&v, "m1"), GuardMode::Enforce).unwrap();
        assert_eq!(ok.arithmetic.healthy_voters_after, 2);
        assert_eq!(ok.arithmetic.quorum_after, 2);
    }

    #[test]
    fn removing_the_last_voter_is_refused() {
        let v = view(&[("m0", false, true)]);
        let no = check_remove(&v, id_of(&v, "m0"), GuardMode::Enforce).unwrap_err();
        assert_eq!(no.reasons, [Reason::LastVoter]);
        // The last voter stays the last voter even with a learner beside it.
        let v = view(&[("m0", false, true), ("m1", true, true)]);
        let no = check_remove(&v, id_of(&v, "m0"), GuardMode::Enforce).unwrap_err();
        assert!(no.reasons.contains(&Reason::LastVoter), "{no}");
    }

    #[test]
    fn two_member_cluster_may_shrink_to_one_when_both_are_healthy() {
        let v = view(&[("m0", false, true), ("m1", false, true)]);
        assert!(check_remove(&v, id_of(&v, "m1"), GuardMode::Enforce).is_ok());
    }

    #[test]
    fn a_pending_learner_blocks_removing_a_voter_but_not_itself() {
        let v = view(&[
            ("m0", false, true),
            ("m1", false, true),
            ("m2", false, true),
            ("m3", true, true),
        ]);
        let no = check_remove(&v, id_of(&v, "m1"), GuardMode::Enforce).unwrap_err();
        assert_eq!(
            no.reasons,
            [Reason::LearnerPending {
                learners: vec!["m3 (a3)".to_owned()]
            }]
        );
        let ok = check_remove(&v, id_of(&v, "m3"), GuardMode::Enforce).unwrap();
        assert_eq!(
            (ok.arithmetic.voters_before, ok.arithmetic.voters_after),
            (3, 3)
        );
    }

    #[test]
    fn an_unstarted_learner_is_pending_and_unhealthy() {
        let v = view(&[("m0", false, true), ("m1", false, true), ("", true, false)]);
        let no = check_add(&v, "m4", &peer("m4"), true, GuardMode::Enforce).unwrap_err();
        assert!(
            matches!(no.reasons[0], Reason::NotFullyHealthy { .. }),
            "{no}"
        );
        assert!(
            matches!(no.reasons[1], Reason::LearnerPending { .. }),
            "{no}"
        );
        assert!(
            no.to_string()
                .contains("unstarted member a2 (http://127.0.0.1:2382)"),
            "{no}"
        );
    }

    #[test]
    fn a_pending_learner_blocks_a_second_add() {
        let v = view(&[("m0", false, true), ("m1", false, true), ("m3", true, true)]);
        let no = check_add(&v, "m4", &peer("m4"), true, GuardMode::Enforce).unwrap_err();
        assert_eq!(
            no.reasons,
            [Reason::LearnerPending {
                learners: vec!["m3 (a2)".to_owned()]
            }]
        );
        let no = check_add(&v, "m4", &peer("m4"), false, GuardMode::Enforce).unwrap_err();
        assert!(
            no.reasons
                .iter()
                .any(|r| matches!(r, Reason::LearnerPending { .. }))
        );
    }

    #[test]
    fn adding_a_learner_to_a_healthy_cluster_is_allowed() {
        let v = view(&[("m0", false, true), ("m2", false, true)]);
        let ok = check_add(&v, "m1", &peer("m1"), true, GuardMode::Enforce).unwrap();
        let a = &ok.arithmetic;
        assert_eq!((a.voters_before, a.voters_after, a.quorum_after), (2, 2, 2));
        assert_eq!(
            a.after.last().unwrap().to_string(),
            "m1 (new) learner not started"
        );
        assert_eq!(
            ok.change.to_string(),
            "add etcd member m1 as a learner (http://m1.invalid:2380)"
        );
    }

    #[test]
    fn adding_a_voter_without_spare_healthy_voters_is_refused() {
        // 2 healthy voters + 1 unstarted voter: quorum 2 of 3 still holds.
        let v = view(&[("m0", false, true), ("m2", false, true)]);
        assert!(check_add(&v, "m1", &peer("m1"), false, GuardMode::Enforce).is_ok());
        // 1 healthy voter + 1 unstarted voter: quorum 2 of 2 is lost until it starts.
        let v = view(&[("m0", false, true)]);
        let no = check_add(&v, "m1", &peer("m1"), false, GuardMode::Enforce).unwrap_err();
        assert_eq!(
            no.reasons,
            [Reason::BelowQuorum {
                healthy_voters_after: 1,
                quorum_after: 2,
                voters_after: 2
            }]
        );
    }

    #[test]
    fn adding_to_an_unhealthy_cluster_is_refused() {
        let v = view(&[
            ("m0", false, true),
            ("m1", false, false),
            ("m2", false, true),
        ]);
        let no = check_add(&v, "m3", &peer("m3"), true, GuardMode::Enforce).unwrap_err();
        assert!(
            matches!(no.reasons.as_slice(), [Reason::NotFullyHealthy { .. }]),
            "{no}"
        );
    }

    #[test]
    fn override_proceeds_and_says_what_it_overrode() {
        let v = view(&[
            ("m0", false, true),
            ("m1", false, false),
            ("m2", false, true),
        ]);
        let enforced = check_remove(&v, id_of(&v, "m2"), GuardMode::Enforce).unwrap_err();
        let ok = check_remove(&v, id_of(&v, "m2"), GuardMode::Override).unwrap();
        assert!(ok.was_overridden());
        assert_eq!(ok.overridden, enforced.reasons);
        assert!(
            ok.to_string().contains(
                "GUARD OVERRIDDEN, it would have refused: the cluster is not fully healthy"
            ),
            "{ok}"
        );
        // Without reasons, an override changes nothing and is not reported.
        let v = view(HEALTHY3);
        assert!(
            !check_remove(&v, id_of(&v, "m0"), GuardMode::Override)
                .unwrap()
                .was_overridden()
        );
    }

    #[test]
    fn unknown_members_and_taken_names_cannot_be_overridden() {
        let v = view(HEALTHY3);
        let no = check_remove(&v, MemberId(0xdead), GuardMode::Override).unwrap_err();
        assert_eq!(no.reasons, [Reason::NotAMember]);
        assert!(!no.is_overridable());
        assert!(!no.to_string().contains("override"), "{no}");
        let no = check_add(&v, "m1", &peer("m1"), true, GuardMode::Override).unwrap_err();
        assert_eq!(
            no.reasons,
            [Reason::NameTaken {
                existing: "m1 (a1)".to_owned()
            }]
        );
    }

    #[test]
    fn refusals_serialize_for_plans() {
        let v = view(&[("m0", false, true)]);
        let no = check_remove(&v, id_of(&v, "m0"), GuardMode::Enforce).unwrap_err();
        let json = serde_json::to_value(&no).unwrap();
        assert_eq!(json["reasons"][0]["reason"], "last_voter");
        assert_eq!(json["change"]["op"], "remove");
        assert_eq!(json["change"]["member"]["id"], "a0");
        assert_eq!(json["arithmetic"]["voters_after"], 0);
    }

    /// Every cluster of up to five members, every voter/learner and healthy/unhealthy mix,
    /// every change: the guard's answer must match the rules stated independently here.
    #[test]
    fn exhaustive_small_clusters_follow_the_rules() {
        let names = ["m0", "m1", "m2", "m3", "m4"];
        let mut checked = 0;
        for size in 1..=5usize {
            for combo in 0..(1u32 << (2 * size)) {
                let specs: Vec<Spec> = (0..size)
                    .map(|i| {
                        let bits = combo >> (2 * i);
                        (names[i], bits & 1 == 1, bits & 2 == 0)
                    })
                    .collect();
                let v = view(&specs);
                let voters = specs.iter().filter(|s| !s.1).count();
                let healthy_voters = specs.iter().filter(|s| !s.1 && s.2).count();
                let learners = specs.iter().filter(|s| s.1).count();

                for (i, &(_, learner, healthy)) in specs.iter().enumerate() {
                    let id = MemberId(0xa0 + i as u64);
                    let others_healthy = specs.iter().enumerate().all(|(j, s)| j == i || s.2);
                    let voters_after = voters - usize::from(!learner);
                    let healthy_after = healthy_voters - usize::from(!learner && healthy);
                    let other_learners = learners - usize::from(learner);
                    let safe = others_healthy
                        && voters_after >= 1
                        && healthy_after >= quorum(voters_after)
                        && other_learners == 0;
                    let enforced = check_remove(&v, id, GuardMode::Enforce);
                    assert_eq!(
                        enforced.is_ok(),
                        safe,
                        "remove {i} from {specs:?}: {enforced:?}"
                    );
                    if let Err(refusal) = &enforced {
                        assert!(!refusal.reasons.is_empty());
                        assert_eq!(refusal.arithmetic.voters_after, voters_after);
                    }
                    let overridden = check_remove(&v, id, GuardMode::Override).unwrap();
                    assert_eq!(overridden.was_overridden(), !safe);
                    assert_eq!(overridden.arithmetic.healthy_voters_after, healthy_after);
                    checked += 1;
                }

                for learner in [true, false] {
                    let voters_after = voters + usize::from(!learner);
                    let safe = healthy_voters == voters
                        && learners == 0
                        && healthy_voters >= quorum(voters_after);
                    let enforced = check_add(&v, "new", &peer("new"), learner, GuardMode::Enforce);
                    assert_eq!(enforced.is_ok(), safe, "add learner={learner} to {specs:?}");
                    let overridden =
                        check_add(&v, "new", &peer("new"), learner, GuardMode::Override);
                    assert_eq!(overridden.unwrap().was_overridden(), !safe);
                    checked += 1;
                }
            }
        }
        assert_eq!(
            checked,
            1364 * 2 + (4 + 2 * 16 + 3 * 64 + 4 * 256 + 5 * 1024)
        );
    }
}
