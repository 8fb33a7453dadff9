//! The calls krun makes on etcd, as data: what the effects boundary records, shows in the plan
//! and hands to the etcd service.

use std::path::PathBuf;
use std::time::Duration;

use super::GuardMode;

/// One call on the etcd cluster.
#[derive(Debug, Clone)]
pub enum Call {
    Members,
    Status,
    Health,
    /// The membership with each member's health, as the quorum guard sees it.
    View,
    Snapshot {
        path: PathBuf,
    },
    Remove {
        member: String,
        mode: GuardMode,
    },
    Add {
        name: String,
        peer_urls: Vec<String>,
        learner: bool,
        mode: GuardMode,
    },
    Promote {
        member: String,
        timeout: Duration,
    },
    WaitHealthy {
        timeout: Duration,
    },
    MoveLeader {
        member: String,
    },
}

impl Call {
    /// How the plan shows the call.
    pub fn describe(&self) -> String {
        let guard = |mode: &GuardMode| {
            if *mode == GuardMode::Override {
                " (GUARD OVERRIDE)"
            } else {
                ""
            }
        };
        match self {
            Self::Members => "etcd member list".into(),
            Self::Status => "etcd endpoint status".into(),
            Self::Health => "etcd endpoint health".into(),
            Self::View => "etcd member list and each member's health".into(),
            Self::Snapshot { path } => format!("etcd snapshot save {}", path.display()),
            Self::Remove { member, mode } => format!("etcd member remove {member}{}", guard(mode)),
            Self::Add {
                name,
                peer_urls,
                learner,
                mode,
            } => format!(
                "etcd member add {name} --peer-urls={}{}{}",
                peer_urls.join(","),
                if *learner { " --learner" } else { "" },
                guard(mode)
            ),
            Self::Promote { member, timeout } => {
                format!(
                    "etcd member promote {member} (retry until in sync, at most {})",
                    humantime::format_duration(*timeout)
                )
            }
            Self::WaitHealthy { timeout } => format!(
                "wait until every etcd member is healthy (at most {})",
                humantime::format_duration(*timeout)
            ),
            Self::MoveLeader { member } => format!("etcd move-leader {member}"),
        }
    }
}
