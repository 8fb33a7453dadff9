//! ssh to nodes: one reused connection per node, verified host keys, keys and agent, jump hosts.
