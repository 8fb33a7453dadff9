//! Label selectors as krun's client uses them (a drain's `pod_selector`, the budgets that
//! cover a pod). The rules are shared with the simulator and the forecast and live in
//! [`crate::model::selector`]; parsing a selector before the node is cordoned lets a bad one
//! fail first, and keeps the drain plan a pure function of the pod list.

pub use crate::model::selector::{Selector, SelectorError, pdb_selects};
