//! The etcd service behind the boundary: performs [`crate::etcd::Call`]s, or previews them for
//! a dry-run.
//!
//! A dry-run cannot change the membership, yet the plan must show the membership after each
//! step and the guard must judge step 2 on the cluster as step 1 would leave it (a replacement
//! removes `m1` and then adds `m1` back as a learner — against the live cluster the add would
//! be refused as "name already used"). So the dry-run reads the real cluster once, then applies
//! each recorded change to its own copy of the view, with the same pure guard the live path uses.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::kube::KubeService;
use super::{Call, Effect, EffectError, Outcome, Recheck, Reply, Service};
use crate::etcd::{self, Call as EtcdCall, ClusterView, Health, Member, MemberId, MemberState};
use crate::inventory::{EtcdSection, Inventory};
use crate::ssh::{Endpoint, SshPool};

/// The name etcd calls give as their service, and steps as their target.
pub const SERVICE: &str = "etcd";

impl Call for EtcdCall {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn describe(&self) -> String {
        EtcdCall::describe(self)
    }

    /// How a resumed run settles this call if krun died while it ran: membership changes are
    /// read back from the member list (a removal that happened must not be retried: the name
    /// might by then belong to a re-added member), everything else runs again.
    fn recheck(&self) -> Recheck {
        fn members(done: impl Fn(&[Value]) -> bool + Send + Sync + 'static) -> Recheck {
            Recheck::ReadBack {
                probe: Box::new(Effect::call(EtcdCall::Members)),
                shown: "etcd member list".to_owned(),
                done: std::sync::Arc::new(move |outcome: &Outcome| {
                    outcome.data.as_array().is_some_and(|members| done(members))
                }),
            }
        }
        let names = |m: &Value, wanted: &str| {
            m["name"].as_str() == Some(wanted)
                || m["id"].as_str().is_some_and(|id| {
                    id.trim_start_matches("0x")
                        .eq_ignore_ascii_case(wanted.trim_start_matches("0x"))
                })
        };
        match self {
            EtcdCall::Remove { member, .. } => {
                let member = member.clone();
                members(move |list: &[Value]| !list.iter().any(|m| names(m, &member)))
            }
            EtcdCall::Add {
                name, peer_urls, ..
            } => {
                let (name, peer_urls) = (name.clone(), peer_urls.clone());
                members(move |list: &[Value]| {
                    list.iter().any(|m| {
                        m["name"].as_str() == Some(name.as_str())
                            || m["peer_urls"].as_array().is_some_and(|urls| {
                                urls.iter().any(|u| peer_urls.iter().any(|p| u == p))
                            })
                    })
                })
            }
            EtcdCall::Promote { member, .. } => {
                let member = member.clone();
                members(move |list: &[Value]| {
                    list.iter()
                        .any(|m| names(m, &member) && m["is_learner"] == false)
                })
            }
            _ => Recheck::Rerun,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The etcd cluster of the inventory, connected on first use.
pub struct EtcdService {
    section: Option<EtcdSection>,
    /// Without an `[etcd]` section, endpoints are read from the cluster's etcd static pods.
    kube: Option<Arc<KubeService>>,
    inventory: Arc<Inventory>,
    pool: SshPool,
    client: OnceCell<Arc<etcd::Client>>,
    /// The dry-run's copy of the cluster view, changed by recorded membership changes.
    simulated: Mutex<Option<ClusterView>>,
}

impl EtcdService {
    pub fn new(inventory: Arc<Inventory>, pool: SshPool, kube: Option<Arc<KubeService>>) -> Self {
        Self {
            section: inventory.etcd.clone(),
            kube,
            inventory,
            pool,
            client: OnceCell::new(),
            simulated: Mutex::new(None),
        }
    }

    /// kubeadm's etcd static pods announce their client URLs in an annotation; the certificates
    /// are kubeadm's, on the control-plane nodes, so krun goes through the first inventory node
    /// with the `control-plane` role when there is one.
    async fn derive_section(&self) -> Result<EtcdSection, EffectError> {
        let no_section = "the inventory has no [etcd] section";
        let kube = self.kube.as_ref().ok_or_else(|| {
            EffectError::Input(format!("{no_section}, and no cluster to derive it from"))
        })?;
        let client = kube.client().await.map_err(|e| {
            EffectError::Input(format!(
                "{no_section}, and the cluster cannot be reached to derive it: {e}"
            ))
        })?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client.client().clone(), "kube-system");
        let list = pods
            .list(&kube::api::ListParams::default().labels("component=etcd"))
            .await
            .map_err(|e| {
                EffectError::Input(format!(
                    "{no_section}, and listing etcd pods in kube-system failed: {e}"
                ))
            })?;
        let mut endpoints: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| {
                p.metadata
                    .annotations
                    .as_ref()?
                    .get("kubeadm.kubernetes.io/etcd.advertise-client-urls")
                    .cloned()
            })
            .flat_map(|urls| {
                urls.split(',')
                    .map(|u| u.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|u| !u.is_empty())
            .collect();
        endpoints.sort();
        endpoints.dedup();
        if endpoints.is_empty() {
            return Err(EffectError::Input(format!(
                "{no_section}, and no etcd static pod in kube-system announces its client URLs \
                 (kubeadm.kubernetes.io/etcd.advertise-client-urls); add [etcd] endpoints"
            )));
        }
        let via = self
            .inventory
            .nodes
            .values()
            .find(|n| n.roles.iter().any(|r| r == "control-plane"))
            .map(|n| n.name.clone());
        tracing::info!(
            "etcd endpoints from the cluster's etcd pods: {}{}",
            endpoints.join(", "),
            via.as_deref()
                .map(|v| format!(" (through {v})"))
                .unwrap_or_default()
        );
        Ok(EtcdSection {
            endpoints,
            via,
            ..EtcdSection::default()
        })
    }

    async fn client(&self) -> Result<Arc<etcd::Client>, EffectError> {
        self.client
            .get_or_try_init(|| self.connect())
            .await
            .cloned()
    }

    async fn connect(&self) -> Result<Arc<etcd::Client>, EffectError> {
        let section = match self.section.clone() {
            Some(section) => section,
            None => self.derive_section().await?,
        };
        let via = match &section.via {
            Some(name) => Some(self.endpoint(name)?),
            None => None,
        };
        let mut config = etcd::Config::new(section.endpoints.clone());
        if section.uses_tls() {
            let ca = self.read(via.as_ref(), section.ca_path()).await?;
            let cert = self.read(via.as_ref(), section.cert_path()).await?;
            let key = self.read(via.as_ref(), section.key_path()).await?;
            config = config.with_tls(etcd::TlsFiles {
                ca,
                identity: Some((cert, key)),
            });
        }
        let client = match via {
            Some(endpoint) => {
                let dialer = SshDialer {
                    pool: self.pool.clone(),
                    endpoint: Arc::new(endpoint),
                };
                etcd::Client::connect_with(config, Arc::new(dialer)).await
            }
            None => etcd::Client::connect(config).await,
        };
        client.map(Arc::new).map_err(etcd_error)
    }

    fn endpoint(&self, name: &str) -> Result<Endpoint, EffectError> {
        let spec = self
            .inventory
            .node(name)
            .map_err(|e| EffectError::Input(format!("[etcd] via: {}", e.message)))?;
        Ok(super::transport::endpoint(&self.inventory, spec))
    }

    /// A certificate file, from this machine or (with `via`) from that node.
    async fn read(
        &self,
        via: Option<&Endpoint>,
        path: &std::path::Path,
    ) -> Result<Vec<u8>, EffectError> {
        match via {
            None => std::fs::read(path).map_err(|e| {
                EffectError::Input(format!("[etcd] cannot read {}: {e}", path.display()))
            }),
            Some(endpoint) => {
                let command = format!(
                    "cat -- {}",
                    crate::quote::quote(&path.display().to_string())
                );
                let noop = |_: crate::ssh::OutputStream, _: &str| {};
                let request = crate::ssh::ExecRequest {
                    command: &command,
                    stdin: None,
                    timeout: Some(Duration::from_secs(30)),
                    cancel: tokio_util::sync::CancellationToken::new(),
                    on_output: &noop,
                };
                let output = self
                    .pool
                    .exec(endpoint, request)
                    .await
                    .map_err(|e| EffectError::Other(e.to_string()))?;
                if output.exit_code != Some(0) {
                    return Err(EffectError::Input(format!(
                        "[etcd] cannot read {} on {}: {}",
                        path.display(),
                        endpoint.name,
                        String::from_utf8_lossy(&output.stderr).trim()
                    )));
                }
                Ok(output.stdout)
            }
        }
    }

    /// Executes a call against the cluster.
    async fn live(&self, call: &EtcdCall) -> Result<Value, EffectError> {
        let client = self.client().await?;
        let value = match call {
            EtcdCall::Members => to_json(&client.members().await.map_err(etcd_error)?),
            EtcdCall::Status => to_json(&client.status().await),
            EtcdCall::Health => to_json(&client.health().await),
            EtcdCall::View => to_json(&client.cluster_view().await.map_err(etcd_error)?),
            EtcdCall::Snapshot { path } => {
                let info = client.snapshot(path).await.map_err(etcd_error)?;
                json!({ "path": path.display().to_string(), "size": info.size, "endpoint": info.endpoint, "sha256": info.sha256 })
            }
            EtcdCall::Remove { member, mode } => {
                let change = client
                    .remove_member(member, *mode)
                    .await
                    .map_err(etcd_error)?;
                log_change(&change.approval, false);
                to_json(&change)
            }
            EtcdCall::Add {
                name,
                peer_urls,
                learner,
                mode,
            } => {
                let change = client
                    .add_member(name, peer_urls, *learner, *mode)
                    .await
                    .map_err(etcd_error)?;
                log_change(&change.approval, false);
                to_json(&change)
            }
            EtcdCall::Promote { member, timeout } => {
                to_json(&client.promote(member, *timeout).await.map_err(etcd_error)?)
            }
            EtcdCall::WaitHealthy { timeout } => {
                to_json(&client.wait_healthy(*timeout).await.map_err(etcd_error)?)
            }
            EtcdCall::MoveLeader { member } => {
                to_json(&client.move_leader(member).await.map_err(etcd_error)?)
            }
        };
        Ok(value)
    }

    /// A read executes; a change is judged by the guard against the simulated view and applied
    /// to it, so the plan shows the membership after each step.
    async fn preview(&self, call: &EtcdCall) -> Result<Option<Value>, EffectError> {
        match call {
            EtcdCall::Members | EtcdCall::Status | EtcdCall::Health | EtcdCall::View => {
                let value = self.live(call).await?;
                // Reads show the simulated membership once changes have been recorded.
                if let Some(view) = self.simulated.lock().expect("view lock").as_ref() {
                    match call {
                        EtcdCall::Members => return Ok(Some(members_of(view))),
                        EtcdCall::View => return Ok(Some(to_json(view))),
                        _ => {}
                    }
                }
                Ok(Some(value))
            }
            EtcdCall::Remove { member, mode } => {
                let mut view = self.view().await?;
                let target = find(&view, member)?;
                let approval =
                    etcd::guard::check_remove(&view, target.id, *mode).map_err(refusal)?;
                view.members.retain(|s| s.member.id != target.id);
                log_change(&approval, true);
                let value = json!({
                    "approval": to_json(&approval),
                    "members_after": members_of(&view),
                    "simulated": true,
                });
                *self.simulated.lock().expect("view lock") = Some(view);
                Ok(Some(value))
            }
            EtcdCall::Add {
                name,
                peer_urls,
                learner,
                mode,
            } => {
                let mut view = self.view().await?;
                let approval = etcd::guard::check_add(&view, name, peer_urls, *learner, *mode)
                    .map_err(refusal)?;
                let id = MemberId(
                    view.members
                        .iter()
                        .map(|s| s.member.id.0)
                        .max()
                        .unwrap_or(0)
                        .wrapping_add(1),
                );
                let added = Member {
                    id,
                    name: name.clone(),
                    peer_urls: peer_urls.clone(),
                    client_urls: Vec::new(),
                    is_learner: *learner,
                };
                view.members.push(MemberState {
                    member: added.clone(),
                    // Assume the playbook starts it before the next membership change.
                    health: Health::Healthy,
                });
                log_change(&approval, true);
                // The same shape as a live add, so a playbook can hand `initial_cluster` to its
                // replacement hook and promote `added.id` in a dry-run too.
                let members: Vec<Member> = view.members.iter().map(|s| s.member.clone()).collect();
                let value = json!({
                    "approval": to_json(&approval),
                    "added": to_json(&added),
                    "members_after": to_json(&members),
                    "initial_cluster": etcd::initial_cluster(&members, id, name),
                    "simulated": true,
                });
                *self.simulated.lock().expect("view lock") = Some(view);
                Ok(Some(value))
            }
            EtcdCall::Promote { member, .. } => {
                let mut view = self.view().await?;
                let target = find(&view, member)?;
                for state in &mut view.members {
                    if state.member.id == target.id {
                        state.member.is_learner = false;
                    }
                }
                let value = json!({
                    "member": to_json(&Member { is_learner: false, ..target.clone() }),
                    "already_voter": !target.is_learner,
                    "members_after": members_of(&view),
                    "simulated": true,
                });
                *self.simulated.lock().expect("view lock") = Some(view);
                Ok(Some(value))
            }
            EtcdCall::Snapshot { .. }
            | EtcdCall::WaitHealthy { .. }
            | EtcdCall::MoveLeader { .. } => Ok(None),
        }
    }

    async fn view(&self) -> Result<ClusterView, EffectError> {
        if let Some(view) = self.simulated.lock().expect("view lock").clone() {
            return Ok(view);
        }
        let view = self
            .client()
            .await?
            .cluster_view()
            .await
            .map_err(etcd_error)?;
        Ok(view)
    }
}

impl Service for EtcdService {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn perform<'a>(&'a self, call: &'a dyn Call) -> BoxFuture<'a, Result<Reply, EffectError>> {
        Box::pin(async move { self.live(etcd_call(call)?).await.map(Reply::data) })
    }

    fn preview<'a>(
        &'a self,
        call: &'a dyn Call,
    ) -> BoxFuture<'a, Result<Option<Reply>, EffectError>> {
        Box::pin(async move { Ok(self.preview(etcd_call(call)?).await?.map(Reply::data)) })
    }
}

fn etcd_call(call: &dyn Call) -> Result<&EtcdCall, EffectError> {
    call.as_any()
        .downcast_ref::<EtcdCall>()
        .ok_or_else(|| EffectError::Other(format!("`{}` is not an etcd call", call.describe())))
}

fn find(view: &ClusterView, name_or_id: &str) -> Result<Member, EffectError> {
    let by_id: Option<MemberId> = name_or_id.parse().ok();
    view.members
        .iter()
        .map(|s| &s.member)
        .find(|m| m.name == name_or_id || Some(m.id) == by_id)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = view
                .members
                .iter()
                .map(|s| format!("{} ({})", s.member.name, s.member.id))
                .collect();
            EffectError::Input(format!(
                "no etcd member {name_or_id}; members: {}",
                known.join(", ")
            ))
        })
}

/// The members of a view, as `etcd_members()` returns them.
fn members_of(view: &ClusterView) -> Value {
    to_json(&view.members.iter().map(|s| &s.member).collect::<Vec<_>>())
}

fn log_change(approval: &etcd::Approval, simulated: bool) {
    let verb = if simulated { "would" } else { "will" };
    if approval.was_overridden() {
        tracing::warn!("etcd guard OVERRIDDEN: {verb} {approval}");
    } else {
        tracing::info!("etcd: {verb} {approval}");
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn refusal(refusal: Box<etcd::Refusal>) -> EffectError {
    EffectError::Refused(refusal.to_string())
}

fn etcd_error(error: etcd::EtcdError) -> EffectError {
    let error: crate::Error = error.into();
    match error.kind {
        crate::error::Kind::Refused => EffectError::Refused(error.message),
        crate::error::Kind::Input => EffectError::Input(error.message),
        _ => EffectError::Other(error.message),
    }
}

/// Reaches etcd endpoints through a node's ssh connection (direct-tcpip).
struct SshDialer {
    pool: SshPool,
    endpoint: Arc<Endpoint>,
}

impl etcd::Dialer for SshDialer {
    fn dial(&self, host: &str, port: u16) -> etcd::DialFuture {
        let (pool, endpoint, host) = (
            self.pool.clone(),
            Arc::clone(&self.endpoint),
            host.to_owned(),
        );
        Box::pin(async move {
            let stream = pool
                .tunnel(&endpoint, &host, port)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Box::new(stream) as Box<dyn etcd::Stream>)
        })
    }
}
