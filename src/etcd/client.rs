//! The etcd operations krun's playbooks use, one method each.
//!
//! Every configured endpoint gets its own gRPC channel instead of one load-balanced channel:
//! status and health are per-member questions, a stopped member must show up as that member's
//! failure rather than be balanced away, and writes must go to a member just seen healthy.
//! Every request has a timeout, so a hung member costs seconds, not the run.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use tokio::io::AsyncWrite;

use super::config::Config;
use super::connect::{self, Dialer, TcpDialer};
use super::endpoint::{EndpointHealth, EndpointStatus, ServerStatus};
use super::error::{EtcdError, describe, server_message};
use super::guard::{self, Approval, Change, ClusterView, GuardMode, Health, MemberState};
use super::member::{self, Lookup, Member, MemberId};
use super::rpc::{self, Rpc};
use super::snapshot::{self, SnapshotInfo, StreamFailure};

/// etcd's answer while a learner's log is still behind the leader's.
const LEARNER_NOT_READY: &str = "can only promote a learner member which is in sync with leader";
/// etcd's answer to promoting a member that is already a voter.
const NOT_A_LEARNER: &str = "can only promote a learner member";
/// etcd's refusal of a membership change while its leader has not yet been connected to
/// every voter for its 5-second health interval.
const UNHEALTHY_CLUSTER: &str = "etcdserver: unhealthy cluster";
/// How long membership changes wait out that refusal: a bit over the health interval.
const RECONFIG_SETTLE: Duration = Duration::from_secs(15);
/// How often waits re-check the cluster.
const POLL: Duration = Duration::from_millis(500);

/// A client for one etcd cluster.
pub struct Client {
    config: Config,
    dialer: Arc<dyn Dialer>,
    conns: Vec<Conn>,
}

#[derive(Clone)]
struct Conn {
    url: String,
    client: Rpc,
}

/// A membership change that was made, with the guard's arithmetic for the log.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipChange {
    pub approval: Approval,
    /// The member that was added, with the id etcd assigned.
    pub added: Option<Member>,
    /// The membership as etcd reported it right after the change.
    pub members_after: Vec<Member>,
    /// For an add: the `--initial-cluster` value the new member must start with (together
    /// with `--initial-cluster-state existing`).
    pub initial_cluster: Option<String>,
}

/// The result of a promotion.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub member: Member,
    /// How many times etcd answered that the learner was not yet in sync.
    pub not_ready_retries: u32,
    /// The member was a voter when krun looked (possibly promoted by an earlier attempt whose
    /// answer was lost); this call changed nothing.
    pub already_voter: bool,
}

/// A leadership transfer.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderChange {
    pub from: MemberId,
    pub to: Member,
    /// The target already led; nothing was changed.
    pub already_leader: bool,
}

/// One health probe of an endpoint, with the status that came with it.
struct Probe {
    health: EndpointHealth,
    status: Option<ServerStatus>,
}

impl Client {
    /// Prepares channels to every endpoint over direct TCP. Nothing is dialled yet.
    pub async fn connect(config: Config) -> Result<Self, EtcdError> {
        Self::connect_with(config, Arc::new(TcpDialer)).await
    }

    /// Prepares channels that reach the endpoints through `dialer` (e.g. an ssh tunnel).
    pub async fn connect_with(config: Config, dialer: Arc<dyn Dialer>) -> Result<Self, EtcdError> {
        config.validate()?;
        let mut conns = Vec::with_capacity(config.endpoints.len());
        for url in &config.endpoints {
            let client = connect::client(url, &config, &dialer).await?;
            conns.push(Conn {
                url: url.clone(),
                client,
            });
        }
        Ok(Client {
            config,
            dialer,
            conns,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.config.endpoints
    }

    /// The membership, from the first endpoint that answers.
    pub async fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let mut attempts = Vec::new();
        for conn in &self.conns {
            match self.list_members(conn).await {
                Ok(members) => return Ok(members),
                Err(e) => attempts.push(e.to_string()),
            }
        }
        Err(EtcdError::NoEndpointAnswered {
            operation: "member list",
            attempts,
        })
    }

    /// Each endpoint's server status, in endpoint order.
    pub async fn status(&self) -> Vec<EndpointStatus> {
        join_all(self.conns.iter().map(|conn| async move {
            EndpointStatus {
                endpoint: conn.url.clone(),
                result: self.server_status(conn).await,
            }
        }))
        .await
    }

    /// Each endpoint's health (a linearizable read, like `etcdctl endpoint health`).
    pub async fn health(&self) -> Vec<EndpointHealth> {
        join_all(self.conns.iter().map(|conn| self.probe(conn)))
            .await
            .into_iter()
            .map(|p| p.health)
            .collect()
    }

    /// The membership and each member's health: what the quorum guard decides from.
    ///
    /// A member is healthy when an endpoint that reports that member's id passes the health
    /// check. Members no configured endpoint reaches are probed on their advertised client
    /// URLs through the same dialer, so a member added since the inventory was written counts.
    pub async fn cluster_view(&self) -> Result<ClusterView, EtcdError> {
        self.survey().await
    }

    /// Saves a snapshot to `path` on this machine: streamed from the first endpoint that
    /// answers, verified, then renamed into place.
    pub async fn snapshot(&self, path: &Path) -> Result<SnapshotInfo, EtcdError> {
        let fail = |detail: String| EtcdError::Snapshot {
            path: path.to_path_buf(),
            detail,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let part = tempfile::Builder::new()
            .prefix(".krun-snapshot-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| fail(format!("cannot create a file in {}: {e}", dir.display())))?;
        let file = part
            .reopen()
            .map_err(|e| fail(format!("cannot open {}: {e}", part.path().display())))?;
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        let mut info = self
            .snapshot_to(&mut out)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let file = out.into_inner().into_std().await;
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || persist(part, &file, &target))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)?;
        info.path = Some(path.to_path_buf());
        Ok(info)
    }

    /// Streams a snapshot into `out` (e.g. a file on a node, written over ssh) from the first
    /// endpoint that answers. The caller makes the result atomic on its side; an error means
    /// `out` holds nothing usable.
    pub async fn snapshot_to<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
    ) -> Result<SnapshotInfo, EtcdError> {
        let mut attempts = Vec::new();
        for conn in &self.conns {
            // A quick status first: skips a dead endpoint fast and names the member.
            let member_id = match self.server_status(conn).await {
                Ok(status) => status.member_id,
                Err(e) => {
                    attempts.push(e.to_string());
                    continue;
                }
            };
            // Nothing is written before the first data arrives, so trying the next endpoint
            // after an early failure is safe.
            match snapshot::stream(
                conn.client.clone(),
                &conn.url,
                out,
                self.config.request_timeout,
            )
            .await
            {
                Ok(mut info) => {
                    info.member_id = Some(member_id);
                    return Ok(info);
                }
                Err(StreamFailure::BeforeData(e)) => attempts.push(e.to_string()),
                Err(StreamFailure::Midway(e)) => return Err(e),
            }
        }
        Err(EtcdError::NoEndpointAnswered {
            operation: "snapshot",
            attempts,
        })
    }

    /// Asks the quorum guard about removing a member; reads only, changes nothing.
    pub async fn plan_remove(
        &self,
        name_or_id: &str,
        mode: GuardMode,
    ) -> Result<Approval, EtcdError> {
        let view = self.cluster_view().await?;
        let members: Vec<Member> = view.members.iter().map(|s| s.member.clone()).collect();
        let target = resolve(&members, name_or_id)?;
        Ok(guard::check_remove(&view, target.id, mode)?)
    }

    /// Asks the quorum guard about adding a member; reads only, changes nothing.
    pub async fn plan_add(
        &self,
        name: &str,
        peer_urls: &[String],
        learner: bool,
        mode: GuardMode,
    ) -> Result<Approval, EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::Config("a new member needs a name".to_owned()));
        }
        if peer_urls.is_empty() {
            return Err(EtcdError::Config(format!(
                "member {name} needs at least one peer URL"
            )));
        }
        for url in peer_urls {
            super::config::validate_endpoint(url, true).map_err(|_| {
                EtcdError::Config(format!(
                    "peer URL {url:?} of member {name} is not http(s)://host:port"
                ))
            })?;
        }
        let view = self.cluster_view().await?;
        Ok(guard::check_add(&view, name, peer_urls, learner, mode)?)
    }

    /// Carries out a change the guard approved.
    pub async fn apply(&self, approval: Approval) -> Result<MembershipChange, EtcdError> {
        match &approval.change {
            Change::Remove { member } => {
                let id = member.id;
                let response = self
                    .reconfigure("member remove", Some(id), |mut client| async move {
                        client.member_remove(id.0).await
                    })
                    .await?;
                let members_after = response.members.into_iter().map(convert_member).collect();
                Ok(MembershipChange {
                    approval,
                    added: None,
                    members_after,
                    initial_cluster: None,
                })
            }
            Change::Add {
                name,
                peer_urls,
                learner,
            } => {
                let learner = *learner;
                let response = self
                    .reconfigure("member add", None, |mut client| {
                        let urls = peer_urls.clone();
                        async move { client.member_add(urls, learner).await }
                    })
                    .await?;
                // etcd learns the name only when the member starts, so it reports it empty.
                let added = response.member.map(convert_member);
                let members_after: Vec<Member> =
                    response.members.into_iter().map(convert_member).collect();
                let initial_cluster = added
                    .as_ref()
                    .map(|new| initial_cluster(&members_after, new.id, name));
                Ok(MembershipChange {
                    approval,
                    added,
                    members_after,
                    initial_cluster,
                })
            }
        }
    }

    /// Removes a member if the quorum guard allows it (or `mode` overrides it).
    pub async fn remove_member(
        &self,
        name_or_id: &str,
        mode: GuardMode,
    ) -> Result<MembershipChange, EtcdError> {
        let approval = self.plan_remove(name_or_id, mode).await?;
        self.apply(approval).await
    }

    /// Adds a member (as a learner, normally) if the quorum guard allows it.
    pub async fn add_member(
        &self,
        name: &str,
        peer_urls: &[String],
        learner: bool,
        mode: GuardMode,
    ) -> Result<MembershipChange, EtcdError> {
        let approval = self.plan_add(name, peer_urls, learner, mode).await?;
        self.apply(approval).await
    }

    /// Promotes a learner to a voter, retrying while etcd says it is not yet in sync with the
    /// leader, until `timeout`. Promoting a member that is already a voter changes nothing.
    pub async fn promote(
        &self,
        name_or_id: &str,
        timeout: Duration,
    ) -> Result<Promotion, EtcdError> {
        let deadline = Instant::now() + timeout;
        let mut retries = 0;
        loop {
            let members = self.members().await?;
            let member = resolve(&members, name_or_id)?.clone();
            if !member.is_learner {
                return Ok(Promotion {
                    member,
                    not_ready_retries: retries,
                    already_voter: true,
                });
            }
            let (conn, _) = self.writable_conn(Some(member.id)).await?;
            let mut client = conn.client.clone();
            let outcome = tokio::time::timeout(
                self.config.request_timeout,
                client.member_promote(member.id.0),
            )
            .await;
            let last = match outcome {
                Ok(Ok(_)) => {
                    let mut member = member;
                    member.is_learner = false;
                    return Ok(Promotion {
                        member,
                        not_ready_retries: retries,
                        already_voter: false,
                    });
                }
                Ok(Err(e)) if server_message(&e).contains(LEARNER_NOT_READY) => describe(&e),
                Ok(Err(e)) if server_message(&e).ends_with(NOT_A_LEARNER) => {
                    // Promoted meanwhile (e.g. by an earlier attempt whose answer was lost).
                    let mut member = member;
                    member.is_learner = false;
                    return Ok(Promotion {
                        member,
                        not_ready_retries: retries,
                        already_voter: true,
                    });
                }
                Ok(Err(e)) => return Err(EtcdError::request(&conn.url, "member promote", &e)),
                Err(_) => format!(
                    "{} did not answer member promote within {:?}",
                    conn.url, self.config.request_timeout
                ),
            };
            retries += 1;
            if Instant::now() + POLL > deadline {
                return Err(EtcdError::PromoteTimedOut {
                    member: member.label(),
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every member is healthy, and returns that view.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<ClusterView, EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = match self.cluster_view().await {
                Ok(view) if view.is_fully_healthy() => return Ok(view),
                Ok(view) => view
                    .unhealthy()
                    .map(|(m, why)| format!("{}: {why}", m.label()))
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => e.to_string(),
            };
            if Instant::now() + POLL > deadline {
                return Err(EtcdError::NotHealthy {
                    after: timeout,
                    unhealthy: problem,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Hands leadership to a voter. The request goes to the current leader, as etcd requires.
    pub async fn move_leader(&self, name_or_id: &str) -> Result<LeaderChange, EtcdError> {
        let members = self.members().await?;
        let target = resolve(&members, name_or_id)?.clone();
        if target.is_learner {
            return Err(EtcdError::BadLeaderTarget {
                member: target.label(),
                reason: "it is a learner; promote it first".to_owned(),
            });
        }
        let (leader, leader_conn) = self.leader_conn(&members).await?;
        if leader == target.id {
            return Ok(LeaderChange {
                from: leader,
                to: target,
                already_leader: true,
            });
        }
        let mut client = leader_conn.client.clone();
        self.timed(
            &leader_conn.url,
            "move leader",
            client.move_leader(target.id.0),
        )
        .await?;
        Ok(LeaderChange {
            from: leader,
            to: target,
            already_leader: false,
        })
    }

    /// Sends a membership change once to a healthy voter other than `avoid`.
    ///
    /// etcd itself refuses changes ("unhealthy cluster") until its leader has been connected
    /// to every voter for 5 seconds, as happens right after a member restarts. That refusal
    /// comes before anything is proposed, so waiting and asking again is safe; any other
    /// failure is returned, never retried, since a retry could apply the change twice.
    async fn reconfigure<T, F, Fut>(
        &self,
        operation: &'static str,
        avoid: Option<MemberId>,
        mut request: F,
    ) -> Result<T, EtcdError>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + RECONFIG_SETTLE;
        loop {
            let (conn, _) = self.writable_conn(avoid).await?;
            match self
                .timed(&conn.url, operation, request(conn.client.clone()))
                .await
            {
                Err(EtcdError::Request { detail, .. })
                    if detail.contains(UNHEALTHY_CLUSTER) && Instant::now() + POLL < deadline =>
                {
                    tokio::time::sleep(POLL).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn list_members(&self, conn: &Conn) -> Result<Vec<Member>, EtcdError> {
        let mut client = conn.client.clone();
        let response = self
            .timed(&conn.url, "member list", client.member_list())
            .await?;
        Ok(response.members.into_iter().map(convert_member).collect())
    }

    async fn server_status(&self, conn: &Conn) -> Result<ServerStatus, EtcdError> {
        let mut client = conn.client.clone();
        let response = self.timed(&conn.url, "status", client.status()).await?;
        Ok(ServerStatus::from_response(response))
    }

    async fn probe(&self, conn: &Conn) -> Probe {
        let started = Instant::now();
        let unhealthy = |detail: String| EtcdError::Request {
            endpoint: conn.url.clone(),
            operation: "health check",
            detail,
        };
        let (result, status) = match self.server_status(conn).await {
            Err(e) => (Err(e), None),
            Ok(s) if !s.errors.is_empty() => (
                Err(unhealthy(format!("member reports {}", s.errors.join(", ")))),
                Some(s),
            ),
            Ok(s) if s.leader.0 == 0 => {
                (Err(unhealthy("member knows no leader".to_owned())), Some(s))
            }
            Ok(s) if s.is_learner => (Ok(()), Some(s)),
            Ok(s) => (self.linearizable_read(conn).await, Some(s)),
        };
        Probe {
            health: EndpointHealth {
                endpoint: conn.url.clone(),
                member_id: status.as_ref().map(|s| s.member_id),
                is_learner: status.as_ref().is_some_and(|s| s.is_learner),
                result,
                took: started.elapsed(),
            },
            status,
        }
    }

    /// A linearizable read needs the leader to confirm it still leads a quorum.
    async fn linearizable_read(&self, conn: &Conn) -> Result<(), EtcdError> {
        let mut client = conn.client.clone();
        let read = client.count("health");
        match tokio::time::timeout(self.config.request_timeout, read).await {
            Ok(Ok(_)) => Ok(()),
            // Reaching the permission check means the read went through Raft; etcdctl agrees.
            Ok(Err(e)) if server_message(&e).contains("permission denied") => Ok(()),
            Ok(Err(e)) => Err(EtcdError::request(
                &conn.url,
                "health check (linearizable read)",
                &e,
            )),
            Err(_) => Err(EtcdError::Timeout {
                endpoint: conn.url.clone(),
                operation: "health check (linearizable read)",
                after: self.config.request_timeout,
            }),
        }
    }

    /// Probes the configured endpoints and, for members none of them reaches, the members' own
    /// client URLs.
    async fn survey(&self) -> Result<ClusterView, EtcdError> {
        let mut probes: Vec<(Conn, Probe)> = join_all(
            self.conns
                .iter()
                .map(|c| async move { (c.clone(), self.probe(c).await) }),
        )
        .await;
        // etcd answers member list from the asked member's local state, and a member cut off
        // from the others may still hold an old membership: ask a healthy voter, the leader
        // when it is among them.
        let best = probes
            .iter()
            .filter(|(_, p)| p.health.is_healthy())
            .filter_map(|(c, p)| p.status.as_ref().map(|s| (c, s)))
            .filter(|(_, s)| !s.is_learner)
            .min_by_key(|(_, s)| !s.is_leader())
            .map(|(c, _)| c.clone());
        let members = match best {
            Some(conn) => match self.list_members(&conn).await {
                Ok(members) => members,
                Err(_) => self.members().await?,
            },
            None => self.members().await?,
        };

        let reached: BTreeSet<MemberId> = probes
            .iter()
            .filter_map(|(_, p)| p.health.member_id)
            .collect();
        let known: BTreeSet<&str> = self.conns.iter().map(|c| c.url.as_str()).collect();
        let extra_urls: Vec<String> = members
            .iter()
            .filter(|m| !reached.contains(&m.id))
            .flat_map(|m| m.client_urls.iter())
            .filter(|u| !known.contains(u.as_str()))
            .cloned()
            .collect();
        let extra = join_all(extra_urls.iter().map(|url| async move {
            let conn = Conn {
                url: url.clone(),
                client: connect::client(url, &self.config, &self.dialer).await?,
            };
            let probe = self.probe(&conn).await;
            Ok::<_, EtcdError>((conn, probe))
        }))
        .await;
        let mut setup_failures = Vec::new();
        for outcome in extra {
            match outcome {
                Ok(pair) => probes.push(pair),
                Err(e) => setup_failures.push(e.to_string()),
            }
        }

        let mut healthy: BTreeSet<MemberId> = BTreeSet::new();
        let mut failed_by_member: BTreeMap<MemberId, String> = BTreeMap::new();
        let mut failed_by_url: BTreeMap<String, String> = BTreeMap::new();
        for (conn, probe) in &probes {
            match (&probe.health.result, probe.health.member_id) {
                (Ok(()), Some(id)) => {
                    healthy.insert(id);
                }
                (Err(e), Some(id)) => {
                    failed_by_member.insert(id, e.to_string());
                }
                (Err(e), None) => {
                    failed_by_url.insert(conn.url.clone(), e.to_string());
                }
                (Ok(()), None) => {}
            }
        }
        let states = members
            .into_iter()
            .map(|member| {
                let health = if healthy.contains(&member.id) {
                    Health::Healthy
                } else {
                    Health::Unhealthy(unhealthy_reason(
                        &member,
                        &failed_by_member,
                        &failed_by_url,
                        &setup_failures,
                    ))
                };
                MemberState { member, health }
            })
            .collect();
        Ok(ClusterView { members: states })
    }

    /// A connection to a healthy voter other than `avoid`, for membership writes; the leader's
    /// when it is among them. Writes are sent once: a retry elsewhere could apply them twice.
    async fn writable_conn(&self, avoid: Option<MemberId>) -> Result<(Conn, MemberId), EtcdError> {
        let probes = join_all(
            self.conns
                .iter()
                .map(|c| async move { (c, self.probe(c).await) }),
        )
        .await;
        let mut candidates: Vec<(&Conn, &ServerStatus)> = probes
            .iter()
            .filter(|(_, p)| p.health.is_healthy())
            .filter_map(|(c, p)| p.status.as_ref().map(|s| (*c, s)))
            .filter(|(_, s)| !s.is_learner && Some(s.member_id) != avoid)
            .collect();
        candidates.sort_by_key(|(_, s)| !s.is_leader());
        match candidates.first() {
            Some((conn, status)) => Ok(((*conn).clone(), status.member_id)),
            None => Err(EtcdError::NoEndpointAnswered {
                operation: "finding a healthy voter to send the change to",
                attempts: probes
                    .iter()
                    .map(|(c, p)| match &p.health.result {
                        Err(e) => e.to_string(),
                        Ok(()) if p.health.is_learner => format!("{}: is a learner", c.url),
                        Ok(()) => format!("{}: is the member being changed", c.url),
                    })
                    .collect(),
            }),
        }
    }

    /// The current leader and a connection to it (configured endpoint, or its client URL).
    async fn leader_conn(&self, members: &[Member]) -> Result<(MemberId, Conn), EtcdError> {
        let statuses = join_all(
            self.conns
                .iter()
                .map(|c| async move { (c, self.server_status(c).await) }),
        )
        .await;
        let leader = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .map(|s| s.leader)
            .find(|l| l.0 != 0)
            .ok_or_else(|| EtcdError::NoLeader {
                endpoints: self.config.endpoints.join(", "),
            })?;
        if let Some((conn, _)) = statuses
            .iter()
            .find(|(_, s)| s.as_ref().is_ok_and(|s| s.member_id == leader))
        {
            return Ok((leader, (*conn).clone()));
        }
        let mut tried: Vec<String> = self.config.endpoints.clone();
        let urls = members
            .iter()
            .find(|m| m.id == leader)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default();
        for url in urls {
            let conn = Conn {
                url: url.clone(),
                client: connect::client(&url, &self.config, &self.dialer).await?,
            };
            if self
                .server_status(&conn)
                .await
                .is_ok_and(|s| s.member_id == leader)
            {
                return Ok((leader, conn));
            }
            tried.push(url);
        }
        Err(EtcdError::LeaderUnreachable {
            leader: leader.to_string(),
            tried: tried.join(", "),
        })
    }

    /// Runs one request against `endpoint` with the request timeout.
    async fn timed<T>(
        &self,
        endpoint: &str,
        operation: &'static str,
        request: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.config.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let mut detail = describe(&e);
                let from_etcd = server_message(&e).starts_with("etcdserver");
                let anonymous = self
                    .config
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.identity.is_none());
                if anonymous && endpoint.starts_with("https://") && !from_etcd {
                    detail.push_str(
                        " (no client certificate is configured; etcd run with \
                         --client-cert-auth, as kubeadm sets it up, drops such connections)",
                    );
                }
                Err(EtcdError::Request {
                    endpoint: endpoint.to_owned(),
                    operation,
                    detail,
                })
            }
            Err(_) => Err(EtcdError::Timeout {
                endpoint: endpoint.to_owned(),
                operation,
                after: self.config.request_timeout,
            }),
        }
    }
}

fn resolve<'a>(members: &'a [Member], name_or_id: &str) -> Result<&'a Member, EtcdError> {
    member::find(members, name_or_id).map_err(|lookup| match lookup {
        Lookup::NotFound => EtcdError::MemberNotFound {
            name_or_id: name_or_id.to_owned(),
            members: member::summary(members),
        },
        Lookup::Ambiguous { by_name, by_id } => EtcdError::AmbiguousMember {
            name_or_id: name_or_id.to_owned(),
            by_name,
            by_id,
        },
    })
}

fn convert_member(m: rpc::Member) -> Member {
    Member {
        id: MemberId(m.id),
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// `name=peer_url,...` for every peer URL, naming the new member (etcdctl's output).
pub fn initial_cluster(members: &[Member], new_id: MemberId, new_name: &str) -> String {
    members
        .iter()
        .flat_map(|m| {
            let name = if m.id == new_id {
                new_name
            } else {
                m.name.as_str()
            };
            m.peer_urls.iter().map(move |url| format!("{name}={url}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn unhealthy_reason(
    member: &Member,
    failed_by_member: &BTreeMap<MemberId, String>,
    failed_by_url: &BTreeMap<String, String>,
    setup_failures: &[String],
) -> String {
    if let Some(why) = failed_by_member.get(&member.id) {
        return why.clone();
    }
    if !member.is_started() {
        return "never started (added, but has not joined yet)".to_owned();
    }
    if let Some(why) = member.client_urls.iter().find_map(|u| failed_by_url.get(u)) {
        return why.clone();
    }
    let mut why = format!(
        "no endpoint answered for it (its client URLs: {})",
        member.client_urls.join(", ")
    );
    for failure in failed_by_url
        .values()
        .map(String::as_str)
        .chain(setup_failures.iter().map(String::as_str))
    {
        why.push_str("; ");
        why.push_str(failure);
    }
    why
}

/// fsyncs the finished file, renames it into place, and fsyncs the directory so the rename
/// survives a crash.
fn persist(
    part: tempfile::NamedTempFile,
    file: &std::fs::File,
    target: &Path,
) -> Result<(), String> {
    file.sync_all().map_err(|e| format!("fsync failed: {e}"))?;
    part.persist(target).map_err(|e| {
        format!(
            "cannot rename the finished snapshot into place: {}",
            e.error
        )
    })?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("fsync of {} failed: {e}", dir.display()))?;
    }
    Ok(())
}
