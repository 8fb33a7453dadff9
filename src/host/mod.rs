//! What krun knows of a node's software, as pure functions: package managers and how to drive
//! them, systemctl, kubelet's flags and configuration, containerd's configuration.

pub mod backup;
pub mod containerd;
pub mod images;
pub mod kubelet_config;
pub mod packages;
pub mod systemd;
