//! Kubernetes versions as package managers print them, and the path of versions an upgrade
//! passes through.
//!
//! kubeadm upgrades one minor at a time, so going from 1.20 to 1.23 means installing and
//! applying the newest patch of 1.21, then of 1.22, then 1.23. The versions come from the node's
//! repositories in whatever form its package manager prints them ("1.21.14-00" from apt,
//! "1.21.14-1.1" from pkgs.k8s.io, "1.21.14-0" from dnf, "1.21.14-1" from pacman, "v1.21.14"
//! from a release list); the path hands them back verbatim so they can be installed as printed.

pub mod addons;
pub mod skew;

use std::cmp::Ordering;
use std::fmt;

/// A Kubernetes version: `major.minor` with an optional patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KubeVersion {
    pub major: u64,
    pub minor: u64,
    /// `None` when only the minor was named ("1.22").
    pub patch: Option<u64>,
}

impl KubeVersion {
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch: Some(patch),
        }
    }

    /// Parses "1.21", "1.21.14", "v1.21.14", and package versions with an epoch or a
    /// revision ("1:1.21.14-00", "1.21.14-1.1", "1.21.14+k3s1").
    pub fn parse(text: &str) -> Option<Self> {
        let (version, _) = split_package_version(text)?;
        let mut parts = version.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            // "1.21.x": a minor whose patch is not known yet (a plan built without the node).
            Some("x") => None,
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// The same minor, for comparisons that ignore patches.
    pub fn minor_only(self) -> Self {
        Self {
            patch: None,
            ..self
        }
    }

    /// `1.21` — how the version-skew policy names versions.
    pub fn minor_text(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The release line, `(1, 21)`.
    pub fn minor_line(self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// How many minor releases `self` is behind `other` (negative: ahead), counting a major
    /// release as a hundred minors.
    pub fn minors_behind(self, other: Self) -> i64 {
        let line = |v: Self| {
            i64::try_from(v.major)
                .unwrap_or(i64::MAX / 200)
                .saturating_mul(100)
                .saturating_add(i64::try_from(v.minor).unwrap_or(0))
        };
        line(other) - line(self)
    }

    /// Minors `other` is behind `self` (negative when ahead); both must share a major.
    pub fn minors_ahead_of(self, other: Self) -> i64 {
        i64::try_from(self.minor).unwrap_or(i64::MAX) - i64::try_from(other.minor).unwrap_or(0)
    }

    fn key(self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch.unwrap_or(0))
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KubeVersion {
    /// A version without a patch sorts as its `.0`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then(self.patch.is_some().cmp(&other.patch.is_some()))
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "{}.{}.{patch}", self.major, self.minor),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// Splits "1:1.21.14-1.1" into the upstream version "1.21.14" and the packaging revision "1.1".
fn split_package_version(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let text = match text.split_once(':') {
        Some((epoch, rest)) if epoch.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => text,
    };
    let end = text.find(['-', '+', '~', '_']).unwrap_or(text.len());
    let (version, revision) = text.split_at(end);
    if version.is_empty() {
        return None;
    }
    Some((version, revision.get(1..).unwrap_or("")))
}

/// Orders packaging revisions numerically where they are numbers ("1.10" after "1.9").
fn revision_key(text: &str) -> Vec<(u64, String)> {
    let revision = split_package_version(text).map_or("", |(_, r)| r);
    revision
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|part| (part.parse().unwrap_or(0), part.to_owned()))
        .collect()
}

/// Why a path cannot be computed; always the user's input (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is not a Kubernetes version (expected e.g. 1.21 or 1.21.14)")]
    NotAVersion(String),
    #[error("{from} -> {to} changes the major version; kubeadm cannot do that")]
    MajorChange { from: KubeVersion, to: KubeVersion },
    #[error("{from} -> {to} is a downgrade; kubeadm upgrades only go forward")]
    Downgrade { from: KubeVersion, to: KubeVersion },
    #[error("no version of {minor} is available ({})", listing(available))]
    MissingMinor {
        minor: String,
        available: Vec<String>,
    },
    #[error("{wanted} is not available ({})", listing(available))]
    MissingPatch {
        wanted: String,
        available: Vec<String>,
    },
}

fn listing(available: &[String]) -> String {
    if available.is_empty() {
        "nothing is available".to_owned()
    } else {
        format!("available: {}", available.join(", "))
    }
}

/// `from` and `to` parsed, for a path that goes up within one major version.
fn endpoints(from: &str, to: &str) -> Result<(KubeVersion, KubeVersion), PathError> {
    let parse = |text: &str| {
        KubeVersion::parse(text).ok_or_else(|| PathError::NotAVersion(text.to_owned()))
    };
    let from_v = parse(from)?;
    let to_v = parse(to)?;
    if from_v.major != to_v.major {
        return Err(PathError::MajorChange {
            from: from_v,
            to: to_v,
        });
    }
    if to_v.minor < from_v.minor
        || (to_v.minor == from_v.minor && to_v.patch.is_some() && to_v < from_v)
    {
        return Err(PathError::Downgrade {
            from: from_v,
            to: to_v,
        });
    }
    Ok((from_v, to_v))
}

/// The versions to pass through from `from` to `to`, one minor at a time: the newest patch of
/// each minor after `from`'s up to `to`'s, as written in `available`. A `to` with a patch ends
/// the path at exactly that version; a `to` in `from`'s own minor is a patch upgrade (one entry,
/// none when `from` is already there).
pub fn version_path(from: &str, to: &str, available: &[String]) -> Result<Vec<String>, PathError> {
    let (from_v, to_v) = endpoints(from, to)?;
    let parsed: Vec<(KubeVersion, &String)> = available
        .iter()
        .filter_map(|text| {
            KubeVersion::parse(text)
                .filter(|v| v.patch.is_some() && v.major == from_v.major)
                .map(|v| (v, text))
        })
        .collect();
    let shown_available = || {
        let mut all: Vec<(KubeVersion, &String)> = parsed.clone();
        all.sort_by_key(|a| a.0);
        all.dedup_by(|a, b| a.0 == b.0);
        all.into_iter().map(|(v, _)| v.to_string()).collect()
    };
    let newest_of = |minor: u64, patch: Option<u64>| {
        parsed
            .iter()
            .filter(|(v, _)| v.minor == minor && patch.is_none_or(|p| v.patch == Some(p)))
            .max_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(revision_key(a.1).cmp(&revision_key(b.1)))
            })
            .map(|(v, text)| (*v, (*text).clone()))
    };
    let first_minor = if to_v.minor == from_v.minor {
        from_v.minor
    } else {
        from_v.minor + 1
    };
    let mut path = Vec::new();
    for minor in first_minor..=to_v.minor {
        let last = minor == to_v.minor;
        let pinned = if last { to_v.patch } else { None };
        match newest_of(minor, pinned) {
            Some((version, text)) => {
                let same_minor = minor == from_v.minor;
                if !same_minor || from_v.patch.is_none_or(|p| version.patch > Some(p)) {
                    path.push(text);
                }
            }
            None if pinned.is_some() && newest_of(minor, None).is_some() => {
                return Err(PathError::MissingPatch {
                    wanted: to_v.to_string(),
                    available: shown_available(),
                });
            }
            None => {
                return Err(PathError::MissingMinor {
                    minor: format!("{}.{minor}", from_v.major),
                    available: shown_available(),
                });
            }
        }
    }
    Ok(path)
}

/// The path when the available versions could not be observed (a dry-run without the node):
/// the same minors, each as `M.m.x`, and `to` itself when it names a patch. The same input
/// errors as [`version_path`].
pub fn unobserved_path(from: &str, to: &str) -> Result<Vec<String>, PathError> {
    let (from_v, to_v) = endpoints(from, to)?;
    if to_v.minor == from_v.minor && to_v.patch.is_some() && to_v.patch == from_v.patch {
        return Ok(Vec::new());
    }
    let first = if to_v.minor == from_v.minor {
        from_v.minor
    } else {
        from_v.minor + 1
    };
    Ok((first..=to_v.minor)
        .map(|minor| match to_v.patch {
            Some(_) if minor == to_v.minor => to_v.to_string(),
            _ => format!("{}.{minor}.x", from_v.major),
        })
        .collect())
}

/// kubelet flags a release removed (kubelet of that version or later exits on them: "unknown
/// flag"): the dockershim's network flags in 1.24 (kubernetes/kubernetes#106907),
/// `--container-runtime` in 1.27 (#114017).
pub const REMOVED_KUBELET_FLAGS: &[(&str, u64)] = &[
    ("network-plugin", 24),
    ("cni-bin-dir", 24),
    ("cni-conf-dir", 24),
    ("container-runtime", 27),
];

/// The kubelet flags kubelet `version` no longer has.
pub fn kubelet_flags_removed_by(version: KubeVersion) -> Vec<&'static str> {
    REMOVED_KUBELET_FLAGS
        .iter()
        .filter(|(_, minor)| version.major == 1 && version.minor >= *minor)
        .map(|(flag, _)| *flag)
        .collect()
}

/// The release that removed dockershim: a node still on `docker://` cannot run its kubelet.
pub const DOCKERSHIM_REMOVED: (u64, u64) = (1, 24);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn release_lines_and_minors_behind() {
        let v = |s| KubeVersion::parse(s).unwrap();
        assert_eq!(v("v1.29.0-rc.1+k3s1").to_string(), "1.29.0");
        assert!(KubeVersion::parse("latest").is_none());
        assert!(KubeVersion::parse("1.2.3.4").is_none());
        assert_eq!(v("1.21.14-00").minor_line(), (1, 21));
        assert_eq!(v("1.25.3").minors_behind(v("1.28.0")), 3);
        assert_eq!(v("1.29.0").minors_behind(v("1.28.0")), -1);
        assert_eq!(v("1.29").minors_behind(v("2.0")), 71);
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_what_package_managers_print() {
        for (text, expected) in [
            ("1.21.14-00", KubeVersion::new(1, 21, 14)),
            ("1.21.14-1.1", KubeVersion::new(1, 21, 14)),
            ("v1.21.14", KubeVersion::new(1, 21, 14)),
            ("1.21.14-1", KubeVersion::new(1, 21, 14)),
            ("1:1.28.2-1.1", KubeVersion::new(1, 28, 2)),
            (" 1.12.1-1 ", KubeVersion::new(1, 12, 1)),
        ] {
            assert_eq!(KubeVersion::parse(text), Some(expected), "{text}");
        }
        assert_eq!(
            KubeVersion::parse("1.22"),
            Some(KubeVersion {
                major: 1,
                minor: 22,
                patch: None
            })
        );
        for bad in ["", "v", "latest", "1", "1.x", "1.2.3.4", "-1.2"] {
            assert_eq!(KubeVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_minor_at_a_time_newest_patch_verbatim() {
        let available = strings(&[
            "1.23.17-00",
            "1.23.16-00",
            "1.22.17-00",
            "1.22.9-00",
            "1.21.14-00",
            "1.21.2-00",
            "1.20.15-00",
        ]);
        assert_eq!(
            version_path("1.20.15", "1.23", &available).unwrap(),
            ["1.21.14-00", "1.22.17-00", "1.23.17-00"]
        );
        assert_eq!(
            version_path("v1.20.15", "1.23.16", &available).unwrap(),
            ["1.21.14-00", "1.22.17-00", "1.23.16-00"]
        );
    }

    #[test]
    fn the_formats_of_each_package_manager() {
        let pkgs = strings(&["1.29.3-1.1", "1.29.10-1.1", "1.28.15-1.1"]);
        assert_eq!(
            version_path("1.28.15", "1.29", &pkgs).unwrap(),
            ["1.29.10-1.1"]
        );
        let pacman = strings(&["1.12.1-1", "1.11.3-1"]);
        assert_eq!(
            version_path("1.10.5", "1.12.1", &pacman).unwrap(),
            ["1.11.3-1", "1.12.1-1"]
        );
        let releases = strings(&["v1.21.14", "v1.21.1"]);
        assert_eq!(
            version_path("1.20", "1.21", &releases).unwrap(),
            ["v1.21.14"]
        );
        // The newest packaging revision of the newest patch.
        let revisions = strings(&["1.21.14-1.9", "1.21.14-1.10", "1.21.13-1.20"]);
        assert_eq!(
            version_path("1.20.1", "1.21", &revisions).unwrap(),
            ["1.21.14-1.10"]
        );
    }

    #[test]
    fn unobserved_paths_name_the_minors() {
        assert_eq!(
            unobserved_path("1.20.15", "1.23").unwrap(),
            ["1.21.x", "1.22.x", "1.23.x"]
        );
        assert_eq!(
            unobserved_path("1.20.15", "1.22.17").unwrap(),
            ["1.21.x", "1.22.17"]
        );
        assert!(unobserved_path("1.21.14", "1.21.14").unwrap().is_empty());
        assert!(matches!(
            unobserved_path("1.22.1", "1.21"),
            Err(PathError::Downgrade { .. })
        ));
        assert_eq!(
            KubeVersion::parse("1.21.x"),
            Some(KubeVersion {
                major: 1,
                minor: 21,
                patch: None
            })
        );
    }

    #[test]
    fn patch_upgrades_in_the_same_minor() {
        let available = strings(&["1.21.14-00", "1.21.5-00"]);
        assert_eq!(
            version_path("1.21.2", "1.21.14", &available).unwrap(),
            ["1.21.14-00"]
        );
        assert_eq!(
            version_path("1.21.2", "1.21", &available).unwrap(),
            ["1.21.14-00"]
        );
        assert!(
            version_path("1.21.14", "1.21", &available)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn input_errors_name_what_is_missing() {
        let available = strings(&["1.21.14-00", "1.23.17-00", "1.23.16-00"]);
        let error = version_path("1.20.15", "1.23", &available).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no version of 1.22 is available (available: 1.21.14, 1.23.16, 1.23.17)"
        );
        let error = version_path("1.20.15", "1.21.9", &available).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1.21.9 is not available (available: 1.21.14, 1.23.16, 1.23.17)"
        );
        assert!(matches!(
            version_path("1.22.1", "1.21", &available),
            Err(PathError::Downgrade { .. })
        ));
        assert!(matches!(
            version_path("1.21.14", "1.21.2", &available),
            Err(PathError::Downgrade { .. })
        ));
        assert!(matches!(
            version_path("1.21.1", "2.0", &available),
            Err(PathError::MajorChange { .. })
        ));
        assert!(matches!(
            version_path("latest", "1.21", &available),
            Err(PathError::NotAVersion(_))
        ));
        assert_eq!(
            version_path("1.20", "1.21", &[]).unwrap_err().to_string(),
            "no version of 1.21 is available (nothing is available)"
        );
    }

    fn formatted(version: KubeVersion, style: u8) -> String {
        let v = version;
        let p = v.patch.unwrap_or(0);
        match style % 4 {
            0 => format!("{}.{}.{p}-00", v.major, v.minor),
            1 => format!("{}.{}.{p}-1.1", v.major, v.minor),
            2 => format!("v{}.{}.{p}", v.major, v.minor),
            _ => format!("{}.{}.{p}-1", v.major, v.minor),
        }
    }

    proptest! {
        #[test]
        fn paths_step_one_minor_through_the_newest_patches(
            from_minor in 10u64..30,
            hops in 0u64..6,
            patches in proptest::collection::vec((0u64..8, 0u64..25, any::<u8>()), 1..60),
            pin_last in any::<bool>(),
        ) {
            let to_minor = from_minor + hops;
            let available: Vec<String> = patches
                .iter()
                .map(|(offset, patch, style)| formatted(KubeVersion::new(1, from_minor + offset, *patch), *style))
                .collect();
            let from = format!("1.{from_minor}.0");
            let newest = |minor: u64| available.iter()
                .filter_map(|t| KubeVersion::parse(t))
                .filter(|v| v.minor == minor)
                .max();
            let to = match (pin_last, newest(to_minor)) {
                (true, Some(v)) => v.to_string(),
                _ => format!("1.{to_minor}"),
            };
            match version_path(&from, &to, &available) {
                Ok(path) => {
                    let first = if hops == 0 { from_minor } else { from_minor + 1 };
                    let minors: Vec<u64> = path.iter().map(|t| KubeVersion::parse(t).unwrap().minor).collect();
                    let expected: Vec<u64> = (first..=to_minor)
                        .filter(|m| *m != from_minor || newest(*m).is_some_and(|v| v.patch > Some(0)))
                        .collect();
                    prop_assert_eq!(minors, expected);
                    for entry in &path {
                        prop_assert!(available.contains(entry), "{} is not verbatim", entry);
                        let v = KubeVersion::parse(entry).unwrap();
                        prop_assert_eq!(Some(v), newest(v.minor));
                    }
                    if pin_last && let Some(last) = path.last() {
                        prop_assert_eq!(KubeVersion::parse(last).unwrap().to_string(), to.clone());
                    }
                }
                Err(PathError::MissingMinor { minor, .. }) => {
                    let minor = KubeVersion::parse(&minor).unwrap().minor;
                    prop_assert!(newest(minor).is_none());
                    prop_assert!((from_minor..=to_minor).contains(&minor));
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn parse_reads_every_format(major in 0u64..3, minor in 0u64..40, patch in 0u64..40, style in any::<u8>()) {
            let version = KubeVersion::new(major, minor, patch);
            prop_assert_eq!(KubeVersion::parse(&formatted(version, style)), Some(version));
            prop_assert_eq!(KubeVersion::parse(&version.to_string()), Some(version));
        }
    }
}
