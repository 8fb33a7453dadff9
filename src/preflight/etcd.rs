//! etcd before an upgrade: every member healthy, a quorum margin for the rolling restart, and a
//! recent snapshot to go back to.
//!
//! A rolling upgrade (kubeadm's, or `etcd-rolling.rhai`) takes each member down once. With `N`
//! voters of which `M` are healthy, the cluster keeps quorum while one more goes down only when
//! `M - 1 >= quorum(N)`: the margin `M - quorum(N)` must be at least 1. A member already down, a
//! two-member cluster or a single member all leave no margin, and the upgrade would stop the
//! cluster's writes (and with them the API server) part-way.
//!
//! The reads go through the effects boundary like `etcd_members()` (the `[etcd]` section, or
//! endpoints derived from the cluster's etcd pods), and "take one" is the `etcd_snapshot`
//! step itself, so a dry-run records it instead of taking it and the journal shows it as any
//! snapshot. The age of a snapshot is judged from the file's modification time on this machine,
//! where `etcd_snapshot` writes them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{Finding, Severity, Steps};
use crate::effects::{Access, Effect};
use crate::error::Kind;
use crate::etcd::Call as EtcdCall;
use crate::etcd::guard::quorum;

/// The default for how old the newest snapshot may be.
pub const DEFAULT_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What the etcd check is asked to do.
#[derive(Debug, Clone)]
pub struct EtcdCheck {
    /// Skip the check (`etcd: false`, `--skip-etcd`).
    pub skip: bool,
    /// A snapshot file, or a directory of them, whose newest must be recent.
    pub snapshot: Option<PathBuf>,
    pub snapshot_max_age: Duration,
    /// Take a snapshot to this path as part of preflight.
    pub take_snapshot: Option<PathBuf>,
}

impl Default for EtcdCheck {
    fn default() -> Self {
        EtcdCheck {
            skip: false,
            snapshot: None,
            snapshot_max_age: DEFAULT_SNAPSHOT_MAX_AGE,
            take_snapshot: None,
        }
    }
}

/// One member as the check judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    pub name: String,
    pub id: String,
    pub learner: bool,
    /// Why it is not healthy; `None` when healthy.
    pub problem: Option<String>,
}

impl MemberHealth {
    fn label(&self) -> String {
        if self.name.is_empty() {
            format!("unstarted member {}", self.id)
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }

    fn key(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// The quorum margin: how many more voters may go down at once without losing quorum.
/// Negative when quorum is already lost.
pub fn quorum_margin(voters: usize, healthy_voters: usize) -> i64 {
    healthy_voters as i64 - quorum(voters) as i64
}

/// Reads the etcd cluster (and takes a snapshot when asked) and judges it.
pub fn check(steps: &Steps, configured: bool, options: &EtcdCheck) -> Vec<Finding> {
    if options.skip {
        return Vec::new();
    }
    let view = EtcdCall::View;
    let read = steps.perform(
        "preflight",
        "etcd",
        Access::Read,
        view.describe(),
        Effect::call(view),
        false,
    );
    // Whether etcd answered: only then is a missing snapshot worth a warning of its own.
    let (mut found, answered) = match read {
        Ok(outcome) if !outcome.observed => (
            vec![not_checked(
                "offline",
                "etcd was not read (offline, or not reachable in this dry-run), so its health \
                 and quorum margin were not checked",
            )],
            false,
        ),
        Ok(outcome) => match members(&outcome.data) {
            Some(members) => (judge(&members), true),
            None => (
                vec![Finding::new(
                    "etcd-unreadable",
                    "etcd",
                    Severity::Block,
                    "etcd",
                    "etcd's member list could not be understood",
                    "check the etcd endpoints krun reaches (the inventory's [etcd] section)",
                )],
                false,
            ),
        },
        Err(failure) if failure.kind == Kind::Input && !configured => (
            vec![not_checked(
                "no-connection",
                &format!(
                    "etcd was not checked: no connection to it is configured and none could be \
                     derived ({})",
                    super::failure_reason(&failure)
                ),
            )],
            false,
        ),
        Err(failure) if failure.kind == Kind::Interrupted => (
            vec![not_checked(
                "interrupted",
                "etcd was not checked: interrupted",
            )],
            false,
        ),
        // Endpoints the inventory names must answer; ones derived from the cluster's etcd pods
        // may simply not be reachable from here.
        Err(failure) => (
            vec![Finding::new(
                "etcd-unreachable",
                "etcd",
                if configured {
                    Severity::Block
                } else {
                    Severity::Warn
                },
                "etcd",
                format!(
                    "etcd could not be read{}: {}",
                    if configured {
                        ""
                    } else {
                        " at the endpoints its pods announce"
                    },
                    super::failure_reason(&failure)
                ),
                "bring etcd back, or fix the inventory's [etcd] section (endpoints, \
                 certificates, via); an upgrade must not start without knowing that etcd has \
                 quorum to spare",
            )],
            false,
        ),
    };
    if let Some(path) = &options.take_snapshot {
        found.push(take_snapshot(steps, path));
    }
    if let Some(path) = &options.snapshot {
        found.push(snapshot_age(
            path,
            newest_snapshot(path),
            options.snapshot_max_age,
            SystemTime::now(),
        ));
    } else if options.take_snapshot.is_none() && answered {
        found.push(Finding::new(
            "etcd-snapshot",
            "unknown",
            Severity::Warn,
            "etcd snapshots",
            "no snapshot was named, so preflight cannot tell whether a recent one exists: \
             without one, a failed etcd or control-plane upgrade has nothing to go back to",
            snapshot_fix(options.snapshot_max_age),
        ));
    }
    found
}

fn not_checked(key: &str, message: &str) -> Finding {
    Finding::new(
        "etcd-not-checked",
        key,
        Severity::Info,
        "etcd",
        message,
        "give the inventory an [etcd] section (endpoints, certificates), or run where the \
         cluster's etcd pods announce their client URLs, to have etcd checked",
    )
}

fn snapshot_fix(max_age: Duration) -> String {
    format!(
        "take one first: `etcd_snapshot(path)` in the playbook, `take_snapshot: \"path\"` in \
         preflight's options, or `krun preflight --take-snapshot PATH`; name existing ones with \
         `snapshot` / `--snapshot` (a file or a directory; the newest must be younger than {})",
        humantime::format_duration(max_age)
    )
}

/// Takes the snapshot through the `etcd_snapshot` step.
fn take_snapshot(steps: &Steps, path: &Path) -> Finding {
    let call = EtcdCall::Snapshot {
        path: path.to_path_buf(),
    };
    let shown = path.display().to_string();
    match steps.perform(
        "etcd_snapshot",
        "etcd",
        Access::Change,
        call.describe(),
        Effect::call(call),
        false,
    ) {
        Ok(outcome) if !outcome.observed => Finding::new(
            "etcd-snapshot",
            &shown,
            Severity::Info,
            format!("etcd snapshot {shown}"),
            format!("a snapshot would be saved to {shown} (recorded, not taken, in a dry-run)"),
            "nothing to do",
        ),
        Ok(outcome) => Finding::new(
            "etcd-snapshot",
            &shown,
            Severity::Info,
            format!("etcd snapshot {shown}"),
            format!(
                "saved a snapshot to {shown} ({} bytes, from {})",
                outcome.data["size"],
                outcome.data["endpoint"].as_str().unwrap_or("etcd")
            ),
            "keep it until the upgrade is done (etcdutl snapshot restore brings it back)",
        ),
        Err(failure) => Finding::new(
            "etcd-snapshot",
            &shown,
            Severity::Block,
            format!("etcd snapshot {shown}"),
            format!(
                "the snapshot to {shown} failed: {}",
                super::failure_reason(&failure)
            ),
            "fix the cause (disk space, permissions, etcd's health) and take a snapshot before \
             upgrading",
        ),
    }
}

/// The members of an `EtcdCall::View` answer.
pub fn members(data: &Value) -> Option<Vec<MemberHealth>> {
    data["members"]
        .as_array()?
        .iter()
        .map(|state| {
            let member = &state["member"];
            let health = &state["health"];
            Some(MemberHealth {
                name: member["name"].as_str()?.to_owned(),
                id: member["id"].as_str()?.to_owned(),
                learner: member["is_learner"].as_bool()?,
                problem: match health["state"].as_str()? {
                    "healthy" => None,
                    _ => Some(health["reason"].as_str().unwrap_or("unhealthy").to_owned()),
                },
            })
        })
        .collect()
}

/// Health, learners and the quorum margin of a membership.
pub fn judge(members: &[MemberHealth]) -> Vec<Finding> {
    let mut found = Vec::new();
    for member in members {
        if let Some(problem) = &member.problem {
            found.push(Finding::new(
                "etcd-unhealthy",
                member.key(),
                Severity::Block,
                format!("etcd member {}", member.label()),
                format!("etcd member {} is not healthy: {problem}", member.label()),
                "bring the member back (its node, its static pod or service, its disk) or \
                 replace it before upgrading: a rolling upgrade takes every member down once",
            ));
        }
        if member.learner {
            found.push(Finding::new(
                "etcd-learner",
                member.key(),
                Severity::Warn,
                format!("etcd member {}", member.label()),
                format!(
                    "etcd member {} is a learner: it does not vote, and membership changes are \
                     refused while it is pending",
                    member.label()
                ),
                format!(
                    "promote it once it has caught up (`etcd_promote(\"{}\", \"2m\")`) or remove \
                     it (`etcd_remove_member(\"{}\")`)",
                    member.key(),
                    member.key()
                ),
            ));
        }
    }
    let voters = members.iter().filter(|m| !m.learner).count();
    if voters == 0 {
        return found;
    }
    let healthy = members
        .iter()
        .filter(|m| !m.learner && m.problem.is_none())
        .count();
    let margin = quorum_margin(voters, healthy);
    let arithmetic = format!(
        "{voters} voter{}, {healthy} healthy, quorum {}",
        if voters == 1 { "" } else { "s" },
        quorum(voters)
    );
    if margin < 1 {
        found.push(Finding::new(
            "etcd-quorum",
            "margin",
            Severity::Block,
            "etcd",
            format!(
                "a rolling upgrade takes each member down once; with {voters} voters and \
                 {healthy} healthy, taking one more down loses quorum ({arithmetic}, margin \
                 {margin})"
            ),
            if voters < 3 {
                "run at least three voters before a rolling upgrade (add members one at a time \
                 with etcd_add_member), or accept that etcd and the API server stop while its \
                 member restarts"
            } else {
                "bring the unhealthy members back first, so that one member can be down while \
                 the rest keep quorum"
            },
        ));
    } else {
        found.push(Finding::new(
            "etcd-quorum",
            "margin",
            Severity::Info,
            "etcd",
            format!(
                "etcd quorum margin {margin}: {arithmetic}; up to {margin} member{} may be down \
                 at once without losing quorum",
                if margin == 1 { "" } else { "s" }
            ),
            "nothing to do; upgrade one member at a time",
        ));
    }
    found
}

/// The newest snapshot at `path`: the file itself, or the newest regular file in the
/// directory. `Ok(None)` when there is none.
pub fn newest_snapshot(path: &Path) -> std::io::Result<Option<(PathBuf, SystemTime)>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        return Ok(Some((path.to_path_buf(), meta.modified()?)));
    }
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        // `etcd_snapshot` writes a `.part` file first and renames it when verified.
        let name = entry.file_name();
        if !meta.is_file() || name.to_string_lossy().ends_with(".part") {
            continue;
        }
        let modified = meta.modified()?;
        if newest.as_ref().is_none_or(|(_, t)| modified > *t) {
            newest = Some((entry.path(), modified));
        }
    }
    Ok(newest)
}

/// Whether the newest snapshot found at `path` is recent enough at `now`.
pub fn snapshot_age(
    path: &Path,
    newest: std::io::Result<Option<(PathBuf, SystemTime)>>,
    max_age: Duration,
    now: SystemTime,
) -> Finding {
    let shown = path.display().to_string();
    let object = format!("etcd snapshot {shown}");
    let limit = humantime::format_duration(max_age);
    match newest {
        Err(e) => Finding::new(
            "etcd-snapshot",
            &shown,
            Severity::Warn,
            object,
            format!("the snapshots at {shown} cannot be read: {e}"),
            snapshot_fix(max_age),
        ),
        Ok(None) => Finding::new(
            "etcd-snapshot",
            &shown,
            Severity::Warn,
            object,
            format!("there is no etcd snapshot at {shown}"),
            snapshot_fix(max_age),
        ),
        Ok(Some((file, modified))) => {
            let age = now.duration_since(modified).unwrap_or_default();
            // Whole minutes read better than nanoseconds.
            let shown_age =
                humantime::format_duration(Duration::from_secs(age.as_secs() / 60 * 60));
            if age > max_age {
                Finding::new(
                    "etcd-snapshot",
                    &shown,
                    Severity::Warn,
                    object,
                    format!(
                        "the newest etcd snapshot, {}, is {shown_age} old, older than {limit}",
                        file.display()
                    ),
                    snapshot_fix(max_age),
                )
            } else {
                Finding::new(
                    "etcd-snapshot",
                    &shown,
                    Severity::Info,
                    object,
                    format!(
                        "the newest etcd snapshot, {}, is {shown_age} old (at most {limit})",
                        file.display()
                    ),
                    "keep it until the upgrade is done",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, learner: bool, problem: Option<&str>) -> MemberHealth {
        MemberHealth {
            name: name.to_owned(),
            id: format!("{name}-id"),
            learner,
            problem: problem.map(str::to_owned),
        }
    }

    #[test]
    fn the_margin_is_healthy_voters_above_quorum() {
        assert_eq!(quorum_margin(3, 3), 1);
        assert_eq!(quorum_margin(3, 2), 0);
        assert_eq!(quorum_margin(5, 5), 2);
        assert_eq!(quorum_margin(5, 4), 1);
        assert_eq!(quorum_margin(1, 1), 0);
        assert_eq!(quorum_margin(2, 2), 0);
        assert_eq!(quorum_margin(3, 1), -1);
    }

    #[test]
    fn a_down_member_blocks_and_says_why_and_the_margin() {
        let found = judge(&[
            member("m0", false, None),
            member("m1", false, Some("connection refused")),
            member("m2", false, None),
        ]);
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["etcd-unhealthy/m1", "etcd-quorum/margin"]);
        assert!(found.iter().all(|f| f.severity == Severity::Block));
        assert!(found[0].message.contains("connection refused"));
        assert!(
            found[1]
                .message
                .contains("with 3 voters and 2 healthy, taking one more down loses quorum"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn a_healthy_cluster_reports_its_margin_and_learners_warn() {
        let found = judge(&[
            member("m0", false, None),
            member("m1", false, None),
            member("m2", false, None),
            member("m3", true, None),
        ]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].id, "etcd-learner/m3");
        assert_eq!(found[0].severity, Severity::Warn);
        assert_eq!(found[1].severity, Severity::Info);
        assert!(
            found[1]
                .message
                .starts_with("etcd quorum margin 1: 3 voters, 3 healthy, quorum 2")
        );
    }

    #[test]
    fn a_single_member_has_no_margin() {
        let found = judge(&[member("m0", false, None)]);
        assert_eq!(found[0].severity, Severity::Block);
        assert!(found[0].fix.contains("at least three voters"));
    }

    #[test]
    fn snapshot_age_against_the_limit() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let path = Path::new("/backups");
        let at = |age: u64| Ok(Some((path.join("s.db"), now - Duration::from_secs(age))));
        let day = DEFAULT_SNAPSHOT_MAX_AGE;
        let fresh = snapshot_age(path, at(3600), day, now);
        assert_eq!(fresh.severity, Severity::Info);
        assert!(
            fresh.message.contains("is 1h old (at most 1day)"),
            "{}",
            fresh.message
        );
        let old = snapshot_age(path, at(2 * 86400), day, now);
        assert_eq!(old.severity, Severity::Warn);
        assert!(
            old.message.contains("2days old, older than 1day"),
            "{}",
            old.message
        );
        assert!(old.fix.contains("etcd_snapshot(path)"));
        let missing = snapshot_age(path, Ok(None), day, now);
        assert_eq!(missing.severity, Severity::Warn);
        assert_eq!(missing.id, "etcd-snapshot//backups");
        // A file written a moment "after" now (clock skew) counts as new.
        assert_eq!(
            snapshot_age(
                path,
                Ok(Some((path.into(), now + Duration::from_secs(5)))),
                day,
                now
            )
            .severity,
            Severity::Info
        );
    }

    #[test]
    fn the_newest_file_of_a_directory_is_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(newest_snapshot(&dir.path().join("none")).unwrap().is_none());
        assert!(newest_snapshot(dir.path()).unwrap().is_none());
        let old = dir.path().join("a.db");
        std::fs::write(&old, "a").unwrap();
        let file = std::fs::File::options().write(true).open(&old).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        std::fs::write(dir.path().join("b.db"), "b").unwrap();
        std::fs::write(dir.path().join(".krun-snapshot-x.part"), "c").unwrap();
        let (newest, _) = newest_snapshot(dir.path()).unwrap().unwrap();
        assert_eq!(newest, dir.path().join("b.db"));
        assert_eq!(newest_snapshot(&old).unwrap().unwrap().0, old);
    }

    #[test]
    fn members_are_read_from_the_view_answer() {
        let data = serde_json::json!({ "members": [
            { "member": { "id": "1a", "name": "m0", "peer_urls": [], "client_urls": [], "is_learner": false },
              "health": { "state": "healthy" } },
            { "member": { "id": "2b", "name": "m1", "peer_urls": [], "client_urls": [], "is_learner": true },
              "health": { "state": "unhealthy", "reason": "deadline exceeded" } },
        ]});
        let members = members(&data).unwrap();
        assert_eq!(members[0], member_with("m0", "1a", false, None));
        assert_eq!(
            members[1],
            member_with("m1", "2b", true, Some("deadline exceeded"))
        );
    }

    fn member_with(name: &str, id: &str, learner: bool, problem: Option<&str>) -> MemberHealth {
        MemberHealth {
            name: name.to_owned(),
            id: id.to_owned(),
            learner,
            problem: problem.map(str::to_owned),
        }
    }
}
