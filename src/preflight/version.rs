//! Kubernetes release numbers: preflight uses krun's one version type ([`KubeVersion`]), and
//! the version-skew policy from [`crate::skew`].

pub use crate::versions::KubeVersion as Version;
