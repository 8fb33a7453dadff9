//! Events, as the components a real cluster runs record them (`kubectl get events`,
//! `kubectl describe`): the scheduler's `Scheduled` and `FailedScheduling`, the workload
//! controllers' `SuccessfulCreate`/`SuccessfulDelete` and `ScalingReplicaSet`, the kubelet's
//! `Killing`, `NodeNotSchedulable` and `NodeSchedulable`, the node controller's
//! `NodeNotReady`. Only the newest are kept, as the apiserver's one-hour TTL would.

use serde_json::json;

use crate::sim::object::Stored;
use crate::sim::resource::ResId;
use crate::sim::world::World;

/// How many events are kept; the oldest go first.
const EVENTS_KEPT: usize = 2000;

/// Whom an event is about.
pub(crate) struct Involved {
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

impl Involved {
    pub fn of(world: &World, res: ResId, object: &Stored) -> Involved {
        let rt = world.registry.get(res);
        Involved {
            kind: rt.kind.clone(),
            api_version: rt.api_version(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            resource_version: object.rv.to_string(),
        }
    }
}

impl World {
    /// Records an event (`Normal` unless `warning`) from `component` about `involved`.
    pub(crate) fn record_event(
        &mut self,
        involved: &Involved,
        warning: bool,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let namespace = if involved.namespace.is_empty() {
            "default".to_string()
        } else {
            involved.namespace.clone()
        };
        let suffix = self.new_uid().replace('-', "");
        let name = format!("{}.{}", involved.name, &suffix[..16]);
        let now = self.now_string();
        let mut source = json!({"component": component});
        if component == "kubelet" && involved.kind == "Node" {
            source["host"] = json!(involved.name);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "kind": involved.kind,
                "apiVersion": involved.api_version,
                "namespace": (!involved.namespace.is_empty()).then_some(&involved.namespace),
                "name": involved.name,
                "uid": involved.uid,
                "resourceVersion": involved.resource_version,
            },
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": if warning { "Warning" } else { "Normal" },
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        });
        if self.get(self.ids.namespace, &namespace).is_none() {
            return;
        }
        let stored = self.admit_object(self.ids.event, event);
        self.event_keys.push_back(stored.key.clone());
        while self.event_keys.len() > EVENTS_KEPT {
            if let Some(oldest) = self.event_keys.pop_front() {
                self.remove(self.ids.event, &oldest);
            }
        }
    }
}
