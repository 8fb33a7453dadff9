//! The cluster simulator, driven by the real kubectl binaries and by kube-rs.

mod smoke;
mod support;
