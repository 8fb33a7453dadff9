//! Kubernetes rules as pure functions, shared by everything in krun that has to agree with a
//! real cluster: the simulator that plays one, the forecast that predicts one, and the client
//! that talks to one.
//!
//! - [`selector`]: label selectors (the `a=b,c in (d)` syntax and `LabelSelector` objects) and
//!   node-affinity terms;
//! - [`budget`]: PodDisruptionBudget arithmetic and the eviction subresource's verdict;
//! - [`taints`]: which taints a pod's tolerations tolerate;
//! - [`quantity`]: resource quantities (`250m`, `1.5Gi`).
//!
//! Nothing here does I/O or imports from krun: the rules are kept where they can be tested
//! against the Kubernetes documentation one by one.

pub mod budget;
pub mod quantity;
pub mod selector;
pub mod taints;
