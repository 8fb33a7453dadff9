//! The defaults the apiserver fills into workloads (`pkg/apis/apps/v1/defaults.go`) that
//! clients read back: the update strategy `kubectl rollout status` insists on, and the pod
//! management policy. The apiserver applies them when it decodes an object, from a request or
//! from storage, so a trimmed snapshot gets them at load as a created object does.

use serde_json::{Value, json};

use super::resource::Builtin;

/// Fills in what is missing of the defaults of `builtin`.
pub(crate) fn apply(builtin: Builtin, object: &mut Value) {
    let defaults = match builtin {
        Builtin::Deployment => {
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}})
        }
        Builtin::StatefulSet => json!({
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        }),
        Builtin::DaemonSet => {
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}})
        }
        _ => return,
    };
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, default) in defaults.as_object().expect("defaults are objects") {
        match spec.get_mut(field) {
            None => {
                spec.insert(field.clone(), default.clone());
            }
            // A strategy of another type gets no rollingUpdate defaults.
            Some(Value::Object(given)) => {
                let same_type = given
                    .get("type")
                    .is_none_or(|t| Some(t) == default.get("type"));
                if let Some(default) = default.as_object().filter(|_| same_type) {
                    for (key, value) in default {
                        given.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_are_defaulted_but_not_overridden() {
        let mut ds = json!({"spec": {}});
        apply(Builtin::DaemonSet, &mut ds);
        assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply(Builtin::Deployment, &mut recreate);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }
}
