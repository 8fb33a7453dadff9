//! Taints and tolerations, as the scheduler's `TaintToleration` plugin and the DaemonSet
//! controller match them (`k8s.io/api/core/v1/toleration.go`, `ToleratesTaint`).

use serde_json::Value;

/// A node's taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl Taint {
    /// Whether the scheduler keeps pods that do not tolerate it off the node.
    pub fn repels(&self) -> bool {
        self.effect == "NoSchedule" || self.effect == "NoExecute"
    }
}

/// One toleration of a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `operator: Exists` (else `Equal`).
    pub exists: bool,
    pub value: String,
    /// Empty: every effect.
    pub effect: String,
}

impl Toleration {
    /// An empty key with `Exists` tolerates every taint; an empty effect every effect.
    pub fn tolerates(&self, key: &str, value: &str, effect: &str) -> bool {
        let effect_ok = self.effect.is_empty() || self.effect == effect;
        let key_ok = (self.key.is_empty() && self.exists) || self.key == key;
        let value_ok = self.exists || self.value == value;
        effect_ok && key_ok && value_ok
    }
}

/// The tolerations of a pod spec as JSON (`spec.tolerations`).
pub fn tolerations_of(spec: &Value) -> Vec<Toleration> {
    let text = |t: &Value, field: &str| {
        t.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    spec.get("tolerations")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|t| Toleration {
                    key: text(t, "key"),
                    exists: t.get("operator").and_then(Value::as_str) == Some("Exists"),
                    value: text(t, "value"),
                    effect: text(t, "effect"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any of `tolerations` tolerates the taint.
pub fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| t.tolerates(key, value, effect))
}

/// Whether every taint that repels pods is tolerated.
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint]) -> bool {
    taints
        .iter()
        .all(|t| !t.repels() || tolerates(tolerations, &t.key, &t.value, &t.effect))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerations_match_like_the_scheduler() {
        let spec = json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
        ]});
        let t = tolerations_of(&spec);
        assert!(tolerates(&t, "dedicated", "db", "NoSchedule"));
        assert!(!tolerates(&t, "dedicated", "web", "NoSchedule"));
        assert!(!tolerates(&t, "dedicated", "db", "NoExecute"));
        assert!(tolerates(
            &t,
            "node.kubernetes.io/unschedulable",
            "",
            "NoSchedule"
        ));
        let all = tolerations_of(&json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(tolerates(&all, "anything", "x", "NoExecute"));
        let prefer = Taint {
            key: "x".into(),
            value: String::new(),
            effect: "PreferNoSchedule".into(),
        };
        assert!(tolerates_all(&[], &[prefer]));
    }
}
