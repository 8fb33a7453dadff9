//! Cluster members as operators see them: ids in hex, names, and the lookup by name or id.
//!
//! etcd's API and `etcdctl -w json` carry member ids as 64-bit integers (printed in decimal),
//! while `etcdctl member list` and `member remove/promote` speak hex. krun shows and accepts
//! hex everywhere so a value copied from a log line works as an argument.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A member id, displayed and parsed as lowercase hex without padding (etcdctl's form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl FromStr for MemberId {
    type Err = std::num::ParseIntError;

    /// Accepts `8e9e05c52164694d` and `0x8e9e05c52164694d`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        u64::from_str_radix(digits, 16).map(MemberId)
    }
}

impl Serialize for MemberId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One member of the cluster, as the member list reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: MemberId,
    /// Empty until the member has started and published its name.
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member has started.
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// etcd learns a member's name and client URLs only when it first starts.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// How logs and messages name the member: `m1 (8e9e05c52164694d)`.
    pub fn label(&self) -> String {
        if self.is_started() {
            format!("{} ({})", self.name, self.id)
        } else {
            format!(
                "unstarted member {} ({})",
                self.id,
                self.peer_urls.join(",")
            )
        }
    }
}

/// Why a name or id did not pick exactly one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    NotFound,
    /// The text is one member's name and another member's hex id.
    Ambiguous {
        by_name: MemberId,
        by_id: MemberId,
    },
}

/// Finds the member a playbook means by `name_or_id`: an exact name, or a hex id.
pub fn find<'a>(members: &'a [Member], name_or_id: &str) -> Result<&'a Member, Lookup> {
    let by_name = members
        .iter()
        .find(|m| !m.name.is_empty() && m.name == name_or_id);
    let by_id = name_or_id
        .parse::<MemberId>()
        .ok()
        .and_then(|id| members.iter().find(|m| m.id == id));
    match (by_name, by_id) {
        (Some(a), Some(b)) if a.id != b.id => Err(Lookup::Ambiguous {
            by_name: a.id,
            by_id: b.id,
        }),
        (Some(m), _) | (None, Some(m)) => Ok(m),
        (None, None) => Err(Lookup::NotFound),
    }
}

/// The membership as one line: `m0 (1a2b), m1 (3c4d, learner)`.
pub fn summary(members: &[Member]) -> String {
    if members.is_empty() {
        return "no members".to_owned();
    }
    members
        .iter()
        .map(|m| {
            let name = if m.is_started() {
                m.name.as_str()
            } else {
                "unstarted"
            };
            let role = if m.is_learner { ", learner" } else { "" };
            format!("{name} ({}{role})", m.id)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str) -> Member {
        Member {
            id: MemberId(id),
            name: name.to_owned(),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + id)],
            client_urls: vec![],
            is_learner: false,
        }
    }

    #[test]
    fn ids_print_and_parse_as_etcdctl_hex() {
        let id = MemberId(10276657743932975437);
        assert_eq!(id.to_string(), "8e9e05c52164694d");
        assert_eq!("8e9e05c52164694d".parse::<MemberId>().unwrap(), id);
        assert_eq!("0x8e9e05c52164694d".parse::<MemberId>().unwrap(), id);
        assert_eq!(MemberId(0xab).to_string(), "ab");
        assert!("m1".parse::<MemberId>().is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"8e9e05c52164694d\"");
    }

    #[test]
    fn finds_by_name_then_by_hex_id() {
        let members = [member(0x1a, "m0"), member(0x2b, "m1")];
        assert_eq!(find(&members, "m1").unwrap().id, MemberId(0x2b));
        assert_eq!(find(&members, "1a").unwrap().name, "m0");
        assert_eq!(find(&members, "0x2b").unwrap().name, "m1");
        assert_eq!(find(&members, "m9"), Err(Lookup::NotFound));
        assert_eq!(find(&members, "ff"), Err(Lookup::NotFound));
    }

    #[test]
    fn a_name_that_is_another_members_id_is_ambiguous() {
        let members = [member(0x1a, "2b"), member(0x2b, "m1")];
        assert_eq!(
            find(&members, "2b"),
            Err(Lookup::Ambiguous {
                by_name: MemberId(0x1a),
                by_id: MemberId(0x2b)
            })
        );
        // A member whose name is its own id is not ambiguous.
        let members = [member(0x1a, "1a")];
        assert_eq!(find(&members, "1a").unwrap().id, MemberId(0x1a));
    }

    #[test]
    fn unstarted_members_are_found_by_id_only() {
        let members = [member(0x1a, "")];
        assert_eq!(find(&members, ""), Err(Lookup::NotFound));
        assert!(!members[0].is_started());
        assert_eq!(
            members[0].label(),
            "unstarted member 1a (http://127.0.0.1:2406)"
        );
        assert_eq!(summary(&members), "unstarted (1a)");
    }
}
