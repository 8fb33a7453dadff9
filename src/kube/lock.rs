//! The cluster lock: one upgrade at a time per cluster.
//!
//! A run that changes a cluster holds a `coordination.k8s.io/v1` Lease (default
//! `kube-system/krun-upgrade`) for as long as it works, renewed in the background. The Lease
//! says who holds it (user, host, process, run id, playbook) and since when, so a colleague's
//! second krun refuses with a message that names them. A holder that died (laptop closed,
//! `kill -9`) stops renewing and the Lease expires after [`LEASE_SECONDS`]. Its own
//! `krun resume` takes it over at once when it can prove the holder dead (same machine, the
//! process gone); while the holder may still be working, a resume is refused like anyone
//! else, so two processes never work on the same run. Anyone else waits for the expiry or
//! breaks it with `krun unlock --force`.
//!
//! kured, the reboot daemon, has its own lock (an annotation on its DaemonSet); krun will not
//! start while kured is rebooting a node, since both would drain nodes.
//!
//! The decision is a pure function ([`decide`]) of the Lease, the caller and the time, so it is
//! tested without a cluster; the API calls are optimistic (resourceVersion) and retried on
//! conflict, so two krun processes racing for a free Lease cannot both win.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::kube::Kube;
use crate::kube::retry::transient_error;

/// The Lease used when the inventory or command line names none.
pub const DEFAULT_LOCK: &str = "kube-system/krun-upgrade";
/// How long a Lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 60;
/// How often the holder renews (a third of the lease: two renewals may fail in a row).
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// The annotation carrying the holder as JSON (the `holderIdentity` string is for people).
const HOLDER_ANNOTATION: &str = "krun.io/holder";
/// Set when a lock was broken by `krun unlock --force`: who broke whose lock, when.
const BROKEN_ANNOTATION: &str = "krun.io/broken";
/// kured's reboot lock on its DaemonSet.
pub const KURED_ANNOTATION: &str = "weave.works/kured-node-lock";

/// Where the Lease lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockName {
    pub namespace: String,
    pub name: String,
}

impl LockName {
    /// Parses `NAMESPACE/NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((namespace, name))
                if is_dns_label(namespace) && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Self {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!(
                "invalid lock {text:?}: expected NAMESPACE/NAME, e.g. {DEFAULT_LOCK}"
            )),
        }
    }
}

impl Default for LockName {
    fn default() -> Self {
        Self::parse(DEFAULT_LOCK).expect("the default lock name parses")
    }
}

impl std::fmt::Display for LockName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Who holds (or wants) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    /// The run's journal id (`krun runs show ID`).
    pub run_id: String,
    pub playbook: String,
    /// The run this one resumes, if any: a resume may take over its predecessor's lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<String>,
    /// The holder's process id on `host`, so that a resume on the same machine can tell a
    /// holder that died from one that is still working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Holder {
    /// The Lease's `holderIdentity`: readable in `kubectl get lease -o yaml`.
    pub fn identity(&self) -> String {
        format!(
            "{}@{} run {} ({})",
            self.user, self.host, self.run_id, self.playbook
        )
    }
}

/// What the Lease says now, as far as the decision goes.
#[derive(Debug, Clone, Default)]
pub struct LeaseView {
    pub identity: Option<String>,
    pub holder: Option<Holder>,
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    pub duration_seconds: Option<i32>,
}

impl LeaseView {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(HOLDER_ANNOTATION))
            .and_then(|json| serde_json::from_str(json).ok());
        Self {
            identity: spec.holder_identity.filter(|s| !s.is_empty()),
            holder,
            acquired: spec.acquire_time.map(|t| t.0),
            renewed: spec.renew_time.map(|t| t.0),
            duration_seconds: spec.lease_duration_seconds,
        }
    }

    /// When the Lease stops being valid; `None` when nobody holds it.
    pub fn expires(&self) -> Option<Timestamp> {
        self.identity.as_ref()?;
        let since = self.renewed.or(self.acquired)?;
        let seconds = i64::from(self.duration_seconds.unwrap_or(LEASE_SECONDS).max(0));
        since.checked_add(SignedDuration::from_secs(seconds)).ok()
    }

    /// "alice@laptop run … (playbooks/worker.rhai), holding it since 23:10:04 UTC, last renewed
    /// 12 s ago, expires in 48 s".
    pub fn describe(&self, now: Timestamp) -> String {
        let who = self.identity.clone().unwrap_or_else(|| "nobody".to_owned());
        let mut text = who;
        if let Some(acquired) = self.acquired {
            text.push_str(&format!(", holding it since {}", clock(acquired)));
        }
        if let Some(renewed) = self.renewed {
            text.push_str(&format!(", last renewed {} ago", ago(renewed, now)));
        }
        match self.expires() {
            Some(at) if at > now => text.push_str(&format!(", expires in {}", ago(now, at))),
            Some(at) => text.push_str(&format!(", expired {} ago", ago(at, now))),
            None => {}
        }
        text
    }
}

impl LeaseView {
    /// What the renewals of an unexpired lock say of its holder, and what to do: a live run
    /// renews every [`RENEW_EVERY`], so a lock that missed a renewal is probably left by a run
    /// that stopped (killed, its machine gone), while a fresh one may well be alive.
    pub fn liveness(&self, now: Timestamp) -> String {
        let every = RENEW_EVERY.as_secs();
        let last = self.renewed.or(self.acquired);
        let since = last.map(|at| now.duration_since(at).as_secs().max(0));
        let expiry = self
            .expires()
            .map(|at| {
                format!(
                    "it expires in {}, then `krun unlock` clears it",
                    ago(now, at)
                )
            })
            .unwrap_or_else(|| "it does not expire by itself".to_owned());
        match since {
            // One renewal missed, with a few seconds of slack for a slow API server.
            Some(seconds) if seconds > i64::try_from(every).unwrap_or(20) + 5 => format!(
                "it has not been renewed for {seconds} s, and a live run renews it every {every} s: \
                 its run has probably stopped. {expiry}; or, once sure, break it now with \
                 `krun unlock --force`"
            ),
            _ => format!(
                "a live run renews it every {every} s, so its run may be alive. Make sure it is not \
                 (or wait: {expiry}), then break it with `krun unlock --force`"
            ),
        }
    }
}

fn clock(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn ago(from: Timestamp, to: Timestamp) -> String {
    let seconds = to.duration_since(from).as_secs().max(0);
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 7200 {
        format!("{} min", seconds / 60)
    } else {
        format!("{} h", seconds / 3600)
    }
}

/// What to do with a Lease found in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: take it.
    Free,
    /// Its holder stopped renewing and the lease ran out: take it over (logged).
    Expired,
    /// Held by this very run, or by the run this one resumes, whose process is gone: take it
    /// over at once.
    Ours,
    /// Held by the run this one resumes, which may still be working (its process is alive, or
    /// it runs on another machine) and renews the lease: refuse.
    ResumedStillAlive,
    /// Held by someone else: refuse.
    Held,
}

/// The rule, without a cluster. `holder_alive` is whether the holder's process is alive, when
/// this machine can tell (it is the holder's host): `None` when it cannot.
pub fn decide(
    lease: &LeaseView,
    me: &Holder,
    now: Timestamp,
    holder_alive: Option<bool>,
) -> Decision {
    if lease.identity.is_none() {
        return Decision::Free;
    }
    let expired = lease.expires().is_some_and(|at| at <= now);
    if let Some(holder) = &lease.holder {
        if holder.run_id == me.run_id {
            return Decision::Ours;
        }
        let resumed = me.resumes.as_deref() == Some(holder.run_id.as_str())
            || (me.resumes.is_some() && me.resumes == holder.resumes);
        if resumed && !expired {
            return match holder_alive {
                Some(false) => Decision::Ours,
                _ => Decision::ResumedStillAlive,
            };
        }
    }
    if expired {
        Decision::Expired
    } else {
        Decision::Held
    }
}

/// Whether the holder's process is alive, when this machine is the holder's host and the
/// holder recorded its process id: the process exists and runs the same program as this one.
pub fn holder_alive(holder: &Holder) -> Option<bool> {
    let pid = holder.pid?;
    if holder.host != crate::journal::hostname() {
        return None;
    }
    let program = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    let theirs = program(&pid.to_string());
    Some(theirs.is_some() && theirs == program("self"))
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the cluster is locked by another upgrade: lease {lock} is held by {description}. \
         Wait for it to finish; if its holder is gone, the lock expires by itself, or break \
         it now with `krun unlock --force`"
    )]
    Held { lock: LockName, description: String },

    #[error(
        "the run this one resumes is still alive: lease {lock} is held by {description}. Two \
         processes must not work on one run: stop that one first (Ctrl-C releases the lock), or, \
         if it is gone, resume again when the lease has expired"
    )]
    ResumedStillAlive { lock: LockName, description: String },

    #[error(
        "kured is rebooting nodes: its lock ({KURED_ANNOTATION} on DaemonSet {daemonset}) is \
         held for {holders}; wait until it is released (the annotation disappears) or stop \
         kured before upgrading"
    )]
    Kured { daemonset: String, holders: String },

    #[error(
        "cannot take the cluster lock {lock}: {message}. krun holds a lock while it changes a \
         cluster so that no second upgrade runs at the same time; pass --no-lock to run \
         without it (logged)"
    )]
    Unavailable { lock: LockName, message: String },
}

impl From<LockError> for crate::Error {
    fn from(error: LockError) -> Self {
        crate::Error::refused(error.to_string())
    }
}

/// A held lock. Renewed in the background until [`ClusterLock::release`].
pub struct ClusterLock {
    api: Api<Lease>,
    name: LockName,
    identity: String,
    stop: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
    on_lost: CancellationToken,
}

/// Confirms, before a change, that the lock is still held: the renewal notices a lost lock
/// within [`RENEW_EVERY`], which is too late for the next change (`krun unlock --force` by a
/// colleague, a renewal gap longer than the lease). One read of the Lease per change.
pub struct LockGuard {
    api: Api<Lease>,
    name: LockName,
    identity: String,
    lost: Arc<AtomicBool>,
    on_lost: CancellationToken,
}

impl LockGuard {
    /// `Ok` when the Lease is still this run's; otherwise marks the lock lost (the run starts
    /// no further step) and says who holds it now.
    pub async fn confirm(&self) -> Result<(), String> {
        let lost = |now_held_by: String| {
            self.lost.store(true, Ordering::SeqCst);
            self.on_lost.cancel();
            format!(
                "lost the cluster lock {}: it is now held by {now_held_by}; this run makes no \
                 further change",
                self.name
            )
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost("someone else".to_owned()));
        }
        let lease = self.api.get_opt(&self.name.name).await.map_err(|e| {
            format!(
                "cannot confirm the cluster lock {}: {}",
                self.name,
                describe_error(&e)
            )
        })?;
        let view = lease.as_ref().map(LeaseView::of).unwrap_or_default();
        if view.identity.as_deref() != Some(self.identity.as_str()) {
            return Err(lost(view.describe(Timestamp::now())));
        }
        Ok(())
    }
}

impl ClusterLock {
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// What the effects boundary checks before every change.
    pub fn guard(&self) -> LockGuard {
        LockGuard {
            api: self.api.clone(),
            name: self.name.clone(),
            identity: self.identity.clone(),
            lost: Arc::clone(&self.lost),
            on_lost: self.on_lost.clone(),
        }
    }

    /// Whether another holder took the Lease while this run held it.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing and clears the holder, so the next run need not wait for the expiry.
    pub async fn release(mut self) {
        self.stop.cancel();
        let _ = (&mut self.renewer).await;
        if self.lost() {
            return;
        }
        match self.clear_holder().await {
            Ok(true) => tracing::info!("released the cluster lock {}", self.name),
            Ok(false) => {}
            Err(why) => tracing::warn!(
                "cannot release the cluster lock {}: {why}; it expires by itself within {LEASE_SECONDS} s",
                self.name
            ),
        }
    }

    /// Clears the Lease's holder if it is still this run; false when it no longer was.
    async fn clear_holder(&self) -> Result<bool, String> {
        for _ in 0..3 {
            let Some(mut lease) = self
                .api
                .get_opt(&self.name.name)
                .await
                .map_err(|e| describe_error(&e))?
            else {
                return Ok(false);
            };
            if LeaseView::of(&lease).identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
            if let Some(annotations) = lease.metadata.annotations.as_mut() {
                annotations.remove(HOLDER_ANNOTATION);
            }
            match self
                .api
                .replace(&self.name.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if is_conflict(&e) => continue,
                Err(e) if transient_error(&e) => {
                    tokio::time::sleep(TRANSIENT_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(describe_error(&e)),
            }
        }
        Err("the Lease kept changing (three conflicts in a row)".to_owned())
    }
}

/// Takes the lock for `me`, or says who has it. `on_lost` is cancelled if another holder
/// takes the Lease while this run works (after `krun unlock --force`, or after a renewal gap
/// longer than the lease), so the run starts no further step.
pub async fn acquire(
    kube: &Kube,
    name: &LockName,
    me: &Holder,
    on_lost: CancellationToken,
) -> Result<ClusterLock, LockError> {
    let api: Api<Lease> = Api::namespaced(kube.client().clone(), &name.namespace);
    let unavailable = |e: &kube::Error| LockError::Unavailable {
        lock: name.clone(),
        message: describe_error(e),
    };
    let identity = me.identity();
    for _ in 0..5 {
        let now = Timestamp::now();
        let existing = api.get_opt(&name.name).await.map_err(|e| unavailable(&e))?;
        let result = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.name.clone()),
                        namespace: Some(name.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                };
                api.create(&PostParams::default(), &take(lease, me, now, false))
                    .await
            }
            Some(lease) => {
                let view = LeaseView::of(&lease);
                let alive = view.holder.as_ref().and_then(holder_alive);
                match decide(&view, me, now, alive) {
                    Decision::Held => {
                        return Err(LockError::Held {
                            lock: name.clone(),
                            description: view.describe(now),
                        });
                    }
                    Decision::ResumedStillAlive => {
                        return Err(LockError::ResumedStillAlive {
                            lock: name.clone(),
                            description: view.describe(now),
                        });
                    }
                    Decision::Expired => tracing::warn!(
                        "taking over the cluster lock {name} from {}",
                        view.describe(now)
                    ),
                    Decision::Ours => tracing::info!(
                        "taking over the cluster lock {name} from the run this one resumes, whose process is gone ({})",
                        view.identity.as_deref().unwrap_or_default()
                    ),
                    Decision::Free => {}
                }
                let transition = view.identity.is_some();
                api.replace(
                    &name.name,
                    &PostParams::default(),
                    &take(lease, me, now, transition),
                )
                .await
            }
        };
        match result {
            Ok(_) => {
                tracing::info!("holding the cluster lock {name} as {identity}");
                let stop = CancellationToken::new();
                let lost = Arc::new(AtomicBool::new(false));
                let renewer = tokio::spawn(renew(
                    api.clone(),
                    name.clone(),
                    identity.clone(),
                    stop.clone(),
                    Arc::clone(&lost),
                    on_lost.clone(),
                ));
                return Ok(ClusterLock {
                    api,
                    name: name.clone(),
                    identity,
                    stop,
                    renewer,
                    lost,
                    on_lost,
                });
            }
            // Someone else changed the Lease between our read and write: read it again.
            Err(e) if is_conflict(&e) || is_already_exists(&e) => continue,
            // The write may or may not have been applied: the Lease, read again, says (a lease
            // already ours is taken again).
            Err(e) if transient_error(&e) => {
                tracing::debug!(
                    "taking the cluster lock {name}: {}; trying again",
                    describe_error(&e)
                );
                tokio::time::sleep(TRANSIENT_PAUSE).await;
                continue;
            }
            Err(e) => return Err(unavailable(&e)),
        }
    }
    Err(LockError::Unavailable {
        lock: name.clone(),
        message: "the Lease kept changing under us (five conflicts in a row)".to_owned(),
    })
}

/// The Lease, now held by `me`.
fn take(mut lease: Lease, me: &Holder, now: Timestamp, transition: bool) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(me.identity());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    if transition {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    lease.metadata.annotations.get_or_insert_default().insert(
        HOLDER_ANNOTATION.to_owned(),
        serde_json::to_string(me).unwrap_or_default(),
    );
    lease
}

async fn renew(
    api: Api<Lease>,
    name: LockName,
    identity: String,
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
    on_lost: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
        let lease = match api.get_opt(&name.name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(
                    "cannot renew the cluster lock {name}: {}; retrying",
                    describe_error(&e)
                );
                continue;
            }
        };
        let view = lease.as_ref().map(LeaseView::of).unwrap_or_default();
        let Some(mut lease) = lease.filter(|_| view.identity.as_deref() == Some(&identity)) else {
            tracing::error!(
                "lost the cluster lock {name}: it is now held by {}; no further step starts",
                view.describe(Timestamp::now())
            );
            lost.store(true, Ordering::SeqCst);
            on_lost.cancel();
            return;
        };
        lease.spec.get_or_insert_with(LeaseSpec::default).renew_time =
            Some(MicroTime(Timestamp::now()));
        if let Err(e) = api
            .replace(&name.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(
                "cannot renew the cluster lock {name}: {}; retrying",
                describe_error(&e)
            );
        }
    }
}

/// What `krun unlock` did.
#[derive(Debug)]
pub enum Unlocked {
    /// Nobody held the lock.
    NotHeld,
    /// The holder's lease had expired: cleared.
    Expired(String),
    /// A live holder's lock was broken (`--force`).
    Broken(String),
}

/// Clears the lock. A live holder's lock is only broken with `force`; breaking is recorded on
/// the Lease (annotation) and logged.
pub async fn unlock(
    kube: &Kube,
    name: &LockName,
    force: bool,
    by: &str,
) -> crate::Result<Unlocked> {
    let api: Api<Lease> = Api::namespaced(kube.client().clone(), &name.namespace);
    for _ in 0..5 {
        let now = Timestamp::now();
        let Some(mut lease) = api.get_opt(&name.name).await.map_err(|e| {
            crate::Error::runtime(format!(
                "cannot read the lock {name}: {}",
                describe_error(&e)
            ))
        })?
        else {
            return Ok(Unlocked::NotHeld);
        };
        let view = LeaseView::of(&lease);
        if view.identity.is_none() {
            return Ok(Unlocked::NotHeld);
        }
        let description = view.describe(now);
        let expired = view.expires().is_some_and(|at| at <= now);
        if !expired && !force {
            return Err(crate::Error::refused(format!(
                "the lock {name} is held by {description}; {}",
                view.liveness(now)
            )));
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        let annotations = lease.metadata.annotations.get_or_insert_default();
        annotations.remove(HOLDER_ANNOTATION);
        annotations.insert(
            BROKEN_ANNOTATION.to_owned(),
            format!("by {by} at {}: was held by {description}", clock(now)),
        );
        match api
            .replace(&name.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) if expired => return Ok(Unlocked::Expired(description)),
            Ok(_) => return Ok(Unlocked::Broken(description)),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => {
                return Err(crate::Error::runtime(format!(
                    "cannot clear the lock {name}: {}",
                    describe_error(&e)
                )));
            }
        }
    }
    Err(crate::Error::runtime(format!(
        "cannot clear the lock {name}: it kept changing (five conflicts in a row)"
    )))
}

/// Refuses while kured holds its reboot lock on any DaemonSet of the cluster.
pub async fn check_kured(kube: &Kube) -> Result<(), LockError> {
    let api: Api<DaemonSet> = Api::all(kube.client().clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| LockError::Unavailable {
            lock: LockName::default(),
            message: format!(
                "cannot list DaemonSets to check kured's reboot lock: {}",
                describe_error(&e)
            ),
        })?;
    for daemonset in list.items {
        let meta = &daemonset.metadata;
        let Some(value) = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(KURED_ANNOTATION))
        else {
            continue;
        };
        if let Some(holders) = kured_holders(value) {
            return Err(LockError::Kured {
                daemonset: format!(
                    "{}/{}",
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default()
                ),
                holders,
            });
        }
    }
    Ok(())
}

/// The nodes kured's lock annotation names, or `None` when it is released. kured writes
/// `{"nodeID":"n1","created":"…",…}` (one holder) or `{"maxOwners":2,"locks":[{"nodeID":…}]}`
/// (`--concurrency`), and an empty `nodeID` or no annotation when free. A value it cannot
/// parse counts as held: better to ask than to reboot two nodes at once.
pub fn kured_holders(value: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct One {
        #[serde(rename = "nodeID", default)]
        node_id: String,
        #[serde(default)]
        created: Option<String>,
    }
    #[derive(Deserialize)]
    struct Many {
        #[serde(default)]
        locks: Vec<One>,
    }
    let describe = |one: &One| match &one.created {
        Some(created) => format!("node {} (since {created})", one.node_id),
        None => format!("node {}", one.node_id),
    };
    if value.trim().is_empty() {
        return None;
    }
    if let Ok(many) = serde_json::from_str::<Many>(value)
        && value.contains("\"locks\"")
    {
        let held: Vec<String> = many
            .locks
            .iter()
            .filter(|l| !l.node_id.is_empty())
            .map(describe)
            .collect();
        return (!held.is_empty()).then(|| held.join(", "));
    }
    match serde_json::from_str::<One>(value) {
        Ok(one) if one.node_id.is_empty() => None,
        Ok(one) => Some(describe(&one)),
        Err(_) => Some(format!("an annotation krun cannot read ({value:?})")),
    }
}

/// The pause before a lock write that got a "try again" (or no answer) is tried again.
const TRANSIENT_PAUSE: Duration = Duration::from_millis(300);

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason != "AlreadyExists")
}

fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

fn describe_error(error: &kube::Error) -> String {
    crate::kube::error::api_message(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_tells_a_stale_lock_from_a_fresh_one() {
        let now = Timestamp::now();
        let fresh = held_by(&me("r1", None), now - SignedDuration::from_secs(5));
        let said = fresh.liveness(now);
        assert!(
            said.contains("may be alive") && !said.contains("still being renewed"),
            "{said}"
        );
        let stale = held_by(&me("r1", None), now - SignedDuration::from_secs(45));
        let said = stale.liveness(now);
        assert!(
            said.contains("has not been renewed for 45 s") && said.contains("probably stopped"),
            "{said}"
        );
        assert!(said.contains("it expires in 15 s"), "{said}");
    }

    fn me(run: &str, resumes: Option<&str>) -> Holder {
        Holder {
            user: "alice".into(),
            host: "laptop".into(),
            run_id: run.into(),
            playbook: "playbooks/worker.rhai".into(),
            resumes: resumes.map(Into::into),
            pid: Some(4242),
        }
    }

    fn held_by(holder: &Holder, renewed: Timestamp) -> LeaseView {
        LeaseView {
            identity: Some(holder.identity()),
            holder: Some(holder.clone()),
            acquired: Some(renewed),
            renewed: Some(renewed),
            duration_seconds: Some(LEASE_SECONDS),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_free_lease_is_taken() {
        assert_eq!(
            decide(&LeaseView::default(), &me("r2", None), at(0), None),
            Decision::Free
        );
    }

    #[test]
    fn a_live_holder_is_respected_until_its_lease_runs_out() {
        let bob = Holder {
            user: "bob".into(),
            ..me("r1", None)
        };
        let lease = held_by(&bob, at(0));
        assert_eq!(
            decide(&lease, &me("r2", None), at(59), Some(false)),
            Decision::Held
        );
        assert_eq!(
            decide(&lease, &me("r2", None), at(60), Some(true)),
            Decision::Expired
        );
    }

    #[test]
    fn a_resume_takes_over_a_predecessor_proven_dead_at_once() {
        let first = me("r1", None);
        let lease = held_by(&first, at(0));
        let dead = Some(false);
        assert_eq!(
            decide(&lease, &me("r2", Some("r1")), at(1), dead),
            Decision::Ours
        );
        // A second resume of the same run (the first resume died too).
        let second = me("r2", Some("r1"));
        let lease = held_by(&second, at(0));
        assert_eq!(
            decide(&lease, &me("r3", Some("r2")), at(1), dead),
            Decision::Ours
        );
        assert_eq!(
            decide(&lease, &me("r3", Some("r1")), at(1), dead),
            Decision::Ours
        );
        // An unrelated run is not "ours".
        assert_eq!(
            decide(&lease, &me("r3", Some("r9")), at(1), dead),
            Decision::Held
        );
    }

    #[test]
    fn a_resume_never_takes_over_a_predecessor_that_may_be_alive() {
        let lease = held_by(&me("r1", None), at(0));
        let resume = me("r2", Some("r1"));
        // Its process is alive, or this machine cannot tell (another host, no pid).
        assert_eq!(
            decide(&lease, &resume, at(1), Some(true)),
            Decision::ResumedStillAlive
        );
        assert_eq!(
            decide(&lease, &resume, at(59), None),
            Decision::ResumedStillAlive
        );
        // Once it stopped renewing, the lease expires and the resume may take it.
        assert_eq!(decide(&lease, &resume, at(60), None), Decision::Expired);
    }

    #[test]
    fn this_process_is_alive_and_a_stranger_on_another_host_is_unknown() {
        let mine = Holder {
            host: crate::journal::hostname(),
            pid: Some(std::process::id()),
            ..me("r1", None)
        };
        assert_eq!(holder_alive(&mine), Some(true));
        let gone = Holder {
            pid: Some(u32::MAX - 1),
            ..mine.clone()
        };
        assert_eq!(holder_alive(&gone), Some(false));
        let elsewhere = Holder {
            host: "some-other-machine".into(),
            ..mine
        };
        assert_eq!(holder_alive(&elsewhere), None);
    }

    #[test]
    fn a_lease_without_krun_annotation_is_judged_by_time_only() {
        let lease = LeaseView {
            identity: Some("someone else".into()),
            holder: None,
            acquired: None,
            renewed: Some(at(0)),
            duration_seconds: Some(15),
        };
        assert_eq!(
            decide(&lease, &me("r1", None), at(10), None),
            Decision::Held
        );
        assert_eq!(
            decide(&lease, &me("r1", None), at(15), None),
            Decision::Expired
        );
    }

    #[test]
    fn the_description_names_holder_and_times() {
        let lease = held_by(&me("r1", None), at(0));
        let text = lease.describe(at(12));
        assert!(
            text.starts_with("alice@laptop run r1 (playbooks/worker.rhai)"),
            "{text}"
        );
        assert!(text.contains("last renewed 12 s ago"), "{text}");
        assert!(text.contains("expires in 48 s"), "{text}");
    }

    #[test]
    fn kured_annotations_of_every_version() {
        assert_eq!(kured_holders(""), None);
        assert_eq!(
            kured_holders(
                r#"{"nodeID":"","metadata":{"unschedulable":false},"created":"0001-01-01T00:00:00Z"}"#
            ),
            None
        );
        assert_eq!(
            kured_holders(r#"{"nodeID":"w3","metadata":{"unschedulable":false},"created":"2026-11-22T01:02:03Z","TTL":0}"#)
                .as_deref(),
            Some("node w3 (since 2026-11-22T01:02:03Z)")
        );
        assert_eq!(
            kured_holders(
                r#"{"maxOwners":2,"locks":[{"nodeID":"w1","created":"x"},{"nodeID":"w2"}]}"#
            )
            .as_deref(),
            Some("node w1 (since x), node w2")
        );
        assert_eq!(kured_holders(r#"{"maxOwners":2,"locks":[]}"#), None);
        assert!(kured_holders("garbage").is_some());
    }

    #[test]
    fn lock_names() {
        assert_eq!(LockName::default().to_string(), DEFAULT_LOCK);
        assert_eq!(
            LockName::parse("ops/upgrade-lock").unwrap(),
            LockName {
                namespace: "ops".into(),
                name: "upgrade-lock".into()
            }
        );
        for bad in ["", "krun-upgrade", "/x", "Kube-System/x", "a/b/c", "a/"] {
            assert!(LockName::parse(bad).is_err(), "{bad}");
        }
    }
}
