//! The `node` value playbooks see: name, address, roles and labels of one inventory node.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map};

use crate::inventory::NodeSpec;

/// A node as a Rhai value. Cheap to clone; primitives take it as their first argument, so
/// `sh(node, cmd)` and `node.sh(cmd)` both work.
#[derive(Debug, Clone)]
pub struct Node(pub Arc<NodeSpec>);

impl Node {
    pub fn spec(&self) -> &Arc<NodeSpec> {
        &self.0
    }
}

/// Registers the `Node` type and its properties.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Node>("Node")
        .register_get("name", |n: &mut Node| n.0.name.clone())
        .register_get("host", |n: &mut Node| n.0.host.clone())
        .register_get("port", |n: &mut Node| i64::from(n.0.port))
        .register_get("user", |n: &mut Node| n.0.user.clone())
        .register_get("roles", |n: &mut Node| {
            n.0.roles
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<Array>()
        })
        .register_get("labels", |n: &mut Node| {
            n.0.labels
                .iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v.clone())))
                .collect::<Map>()
        })
        .register_fn("has_role", |n: &mut Node, role: &str| {
            n.0.roles.iter().any(|r| r == role)
        })
        .register_fn("to_string", |n: &mut Node| n.0.name.clone())
        .register_fn("to_debug", |n: &mut Node| {
            format!("node {} ({}:{})", n.0.name, n.0.host, n.0.port)
        })
        .register_fn("==", |a: Node, b: Node| a.0.name == b.0.name)
        .register_fn("!=", |a: Node, b: Node| a.0.name != b.0.name);
}
