//! Kubernetes release numbers as far as preflight needs them: major.minor(.patch), ordered.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// `v1.28.9`, `1.28`, `v1.29.0-rc.1+k3s1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// The release line, `1.21`.
    pub fn minor_line(self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// How many minor releases `self` is behind `other` (negative: ahead).
    pub fn minors_behind(self, other: Version) -> i64 {
        (i64::from(other.major) - i64::from(self.major)) * 100 + i64::from(other.minor)
            - i64::from(self.minor)
    }

    /// How many minors a kubelet (or kube-proxy) may trail the API server: three since
    /// 1.28, two before (the version skew policy).
    pub fn kubelet_skew_allowed(apiserver: Version) -> i64 {
        if apiserver.minor_line() >= (1, 28) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(Version::parse("v1.28.9").unwrap().to_string(), "1.28.9");
        assert_eq!(Version::parse("1.21").unwrap().to_string(), "1.21.0");
        assert_eq!(
            Version::parse("v1.29.0-rc.1+k3s1").unwrap().to_string(),
            "1.29.0"
        );
        assert!(Version::parse("latest").is_none());
        assert!(Version::parse("1.2.3.4").is_none());
    }

    #[test]
    fn skew_counts_minors() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(v("1.25.3").minors_behind(v("1.28.0")), 3);
        assert_eq!(v("1.29.0").minors_behind(v("1.28.0")), -1);
        assert_eq!(Version::kubelet_skew_allowed(v("1.27.0")), 2);
        assert_eq!(Version::kubelet_skew_allowed(v("1.28.0")), 3);
    }
}
