//! A live copy of a set of objects, kept current by one LIST and one WATCH, that waiters
//! can ask "is it so yet?" after every change instead of polling the API server.
//!
//! The watch restarts by itself when the server drops it (an API server restart, a
//! load-balancer timeout): it resumes from the last resourceVersion, or re-lists when that is
//! too old, and the copy is swapped in whole once the new list is complete, so a waiter never
//! sees a half-listed world and never concludes "gone" from a list still in progress.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// How long a watch may fail without a single success before waiters give up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// How often waiters re-check their condition without a change, for conditions that depend
/// on the clock (a pod terminating for longer than a limit). Local only: no request.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
struct Health {
    /// Bumped on every event, so waiters wake up.
    generation: u64,
    /// The first complete list has arrived.
    ready: bool,
    failing_since: Option<Instant>,
    last_error: Option<String>,
    /// How many times the watch had to be re-established after an error.
    restarts: u64,
    /// An answer that retrying cannot change (401, 403, 404 on the first list): waiters stop.
    fatal: Option<String>,
}

/// Why a wait ended without its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    TimedOut {
        last_error: Option<String>,
    },
    /// The watch has failed for too long (or stopped): the message of its last error.
    Watch(String),
}

/// A watched set of objects of kind `K`. Dropping it stops the watch.
pub struct Mirror<K: 'static + Resource + Clone>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    health: tokio::sync::watch::Receiver<Health>,
    task: tokio::task::JoinHandle<()>,
    what: String,
}

impl<K: 'static + Resource + Clone> Drop for Mirror<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Mirror<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// Starts listing and watching; `what` names the set in messages (`pods on node n1`).
    pub fn start(api: Api<K>, config: watcher::Config, what: String) -> Self {
        let (store, writer) = reflector::store();
        let (tx, health) = tokio::sync::watch::channel(Health::default());
        let events =
            reflector::reflector(writer, watcher(api, config).backoff(RetryBackoff::new()));
        let label = what.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => tx.send_modify(|h| {
                        h.generation += 1;
                        h.failing_since = None;
                        if matches!(event, watcher::Event::InitDone) {
                            h.ready = true;
                        }
                    }),
                    Err(error) => {
                        tracing::debug!("watch of {label} failed, restarting: {error}");
                        let fatal = permanent(&error);
                        tx.send_modify(|h| {
                            h.generation += 1;
                            h.restarts += 1;
                            h.last_error = Some(error.to_string());
                            h.failing_since.get_or_insert_with(Instant::now);
                            if fatal && !h.ready {
                                h.fatal = Some(error.to_string());
                            }
                        });
                    }
                }
            }
        });
        Self {
            store,
            health,
            task,
            what,
        }
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Whether the first complete list arrived (the set is known, not just empty).
    pub fn is_ready(&self) -> bool {
        self.health.borrow().ready
    }

    /// Waits for the first complete list.
    pub async fn ready(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        self.wait_until(deadline, |_| true).await
    }

    /// The object as last seen, if present. Only meaningful once [`Self::ready`].
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut key = ObjectRef::new(name);
        if let Some(namespace) = namespace {
            key = key.within(namespace);
        }
        self.store.get(&key)
    }

    pub fn all(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// How often the watch has had to recover from an error so far.
    pub fn restarts(&self) -> u64 {
        self.health.borrow().restarts
    }

    /// A receiver that changes whenever the watched set may have changed.
    pub fn changes(&self) -> Changes {
        Changes(self.health.clone())
    }

    /// Waits until `condition` holds for the watched set (checked after the first complete
    /// list and after every change), or until `deadline`.
    pub async fn wait_until(
        &self,
        deadline: Option<Instant>,
        condition: impl Fn(&Store<K>) -> bool,
    ) -> Result<(), WaitError> {
        let mut health = self.health.clone();
        loop {
            let now_health = health.borrow_and_update().clone();
            if now_health.ready && condition(&self.store) {
                return Ok(());
            }
            if let Some(error) = now_health.fatal {
                return Err(WaitError::Watch(format!("{}: {error}", self.what)));
            }
            if let Some(since) = now_health.failing_since
                && since.elapsed() > GIVE_UP_AFTER
            {
                return Err(WaitError::Watch(format!(
                    "{} for {}: {}",
                    self.what,
                    humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                    now_health.last_error.unwrap_or_default()
                )));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(WaitError::TimedOut {
                    last_error: now_health.last_error,
                });
            }
            let nap = deadline.map_or(RECHECK, |d| RECHECK.min(d - now));
            tokio::select! {
                changed = health.changed() => {
                    if changed.is_err() {
                        return Err(WaitError::Watch(format!(
                            "the watch of {} stopped",
                            self.what
                        )));
                    }
                }
                () = tokio::time::sleep(nap) => {}
            }
        }
    }
}

/// Whether a watch error is one retrying will not fix: no permission, or no such resource.
fn permanent(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => {
            matches!(status.code, 401 | 403 | 404)
        }
        _ => false,
    }
}

/// Wakes a waiter when a [`Mirror`] sees an event.
pub struct Changes(tokio::sync::watch::Receiver<Health>);

impl Changes {
    /// Returns after the next event, or after `at_most`.
    pub async fn next(&mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.0.changed()).await;
    }
}

/// Reconnects quickly at first (a dropped watch usually comes straight back), then backs
/// off to at most 5 s so a struggling API server is not hammered.
struct RetryBackoff {
    next: Duration,
}

impl RetryBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}
