//! The cluster simulator, driven by the real kubectl binaries and by kube-rs.

mod clients;
mod conformance;
mod control;
mod kube_client;
mod kubectl;
mod loading;
mod semantics;
mod support;
