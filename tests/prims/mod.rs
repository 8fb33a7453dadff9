//! The compiled primitives of the upgrade playbooks: the version-skew guards against a
//! rehearsal cluster, kubelet's flags and configuration and containerd against real sshd nodes.

mod containerd;
mod kubelet;
mod operands;
mod skew;
