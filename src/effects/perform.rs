//! The performers: how effects are carried out. [`Live`] executes everything; [`DryRun`]
//! executes reads and records changes; [`Rehearse`] is a dry-run whose cluster calls really
//! happen, on a stand-in cluster (the simulator). The command's wiring picks one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::transport::Transport;
use super::{Access, Call, Effect, EffectError, Outcome, Reply, Services};
use crate::inventory::NodeSpec;

/// How effects are carried out.
pub trait Performer: Send + Sync {
    fn perform<'a>(
        &'a self,
        access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>>;
}

/// What a performer reports back: the outcome, and for file writes in dry-run the file as it is.
#[derive(Debug, Default)]
pub struct Performed {
    pub outcome: Outcome,
    /// For a recorded file write: the node's current content, when it could be read.
    pub previous_content: Option<Option<String>>,
}

impl Performed {
    fn observed(reply: Reply) -> Self {
        Performed {
            outcome: Outcome {
                observed: true,
                data: reply.data,
                detail: reply.detail,
                ..Outcome::default()
            },
            previous_content: None,
        }
    }

    /// A call previewed: reads are observations, a judged change is not.
    fn previewed(access: Access, reply: Option<Reply>) -> Self {
        let reply = reply.unwrap_or_default();
        Performed {
            outcome: Outcome {
                observed: access == Access::Read,
                data: reply.data,
                detail: reply.detail,
                ..Outcome::default()
            },
            previous_content: None,
        }
    }
}

/// Per-step plumbing handed to a performer.
pub struct PerformContext {
    pub cancel: CancellationToken,
    pub on_output: Box<dyn Fn(&str) + Send + Sync>,
}

/// Executes every effect.
pub struct Live {
    pub transport: Arc<dyn Transport>,
    pub services: Services,
}

impl Performer for Live {
    fn perform<'a>(
        &'a self,
        _access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>> {
        Box::pin(async move {
            match effect {
                Effect::Call(call) => {
                    let service = self.services.get(call.as_ref()).ok_or_else(|| {
                        EffectError::Other(format!(
                            "no {} service is configured for `{}`",
                            call.service(),
                            call.describe()
                        ))
                    })?;
                    let reply = until_cancelled(context, service.perform(call.as_ref())).await?;
                    Ok(Performed::observed(reply))
                }
                _ => Ok(Performed {
                    outcome: execute(self.transport.as_ref(), effect, context).await?,
                    previous_content: None,
                }),
            }
        })
    }
}

/// Executes reads, records changes.
pub struct DryRun {
    /// `None` when offline: nothing is contacted, every read is unobserved.
    pub transport: Option<Arc<dyn Transport>>,
    /// The services reads go to and changes are previewed on; empty when offline.
    pub services: Services,
}

impl DryRun {
    /// Nothing is contacted: every read is unobserved, every change recorded.
    pub fn offline() -> Self {
        DryRun {
            transport: None,
            services: Services::default(),
        }
    }

    async fn call(
        &self,
        access: Access,
        call: &dyn Call,
        context: &PerformContext,
    ) -> Result<Performed, EffectError> {
        match self.services.get(call) {
            Some(service) => {
                let reply = until_cancelled(context, service.preview(call)).await?;
                Ok(Performed::previewed(access, reply))
            }
            None => Ok(Performed::default()),
        }
    }

    async fn node(
        &self,
        access: Access,
        effect: &Effect,
        context: &PerformContext,
    ) -> Result<Performed, EffectError> {
        let Some(transport) = &self.transport else {
            return Ok(Performed::default());
        };
        match (access, effect) {
            (Access::Read, _) => match execute(transport.as_ref(), effect, context).await {
                Ok(outcome) => Ok(Performed {
                    outcome,
                    previous_content: None,
                }),
                Err(EffectError::Transport(e)) if e.is_unreachable() => {
                    tracing::warn!("{e}; later steps depend on unobserved state");
                    Ok(Performed::default())
                }
                Err(e) => Err(e),
            },
            (_, Effect::WriteFile { node, path, .. }) => {
                let previous = read_file(transport.as_ref(), node, path, context).await;
                Ok(Performed {
                    outcome: Outcome::default(),
                    previous_content: Some(previous),
                })
            }
            (Access::Change | Access::Wait, _) => Ok(Performed::default()),
        }
    }
}

impl Performer for DryRun {
    fn perform<'a>(
        &'a self,
        access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>> {
        Box::pin(async move {
            match effect {
                Effect::Call(call) => self.call(access, call.as_ref(), context).await,
                _ => self.node(access, effect, context).await,
            }
        })
    }
}

/// A dry-run of the nodes whose cluster calls really happen on stand-ins of the cluster's
/// services (the simulator for the Kubernetes API): drains evict, budgets hold, nodes become
/// Ready, so the plan shows what the cluster would do.
pub struct Rehearse {
    /// What happens on the nodes and on services without a stand-in.
    pub dry_run: DryRun,
    /// The services whose calls are performed.
    pub stand_ins: Services,
}

impl Performer for Rehearse {
    fn perform<'a>(
        &'a self,
        access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>> {
        Box::pin(async move {
            match effect {
                Effect::Call(call) => match self.stand_ins.get(call.as_ref()) {
                    Some(service) => {
                        let reply =
                            until_cancelled(context, service.perform(call.as_ref())).await?;
                        Ok(Performed::observed(reply))
                    }
                    None => self.dry_run.call(access, call.as_ref(), context).await,
                },
                _ => self.dry_run.node(access, effect, context).await,
            }
        })
    }
}

/// A service call that stops when the run is interrupted: a drain waiting on a budget, an
/// eviction's retries, a wait for Ready or for etcd's health all end with the run, whatever the
/// service does inside. What the call had done by then stays done (a cordon, the evictions
/// already admitted); the step is recorded as interrupted.
async fn until_cancelled<T>(
    context: &PerformContext,
    call: impl std::future::Future<Output = Result<T, EffectError>>,
) -> Result<T, EffectError> {
    tokio::select! {
        biased;
        () = context.cancel.cancelled() => Err(EffectError::Cancelled),
        result = call => result,
    }
}

/// The current content of a file on a node, or `None` when it does not exist or cannot be read.
async fn read_file(
    transport: &dyn Transport,
    node: &NodeSpec,
    path: &str,
    context: &PerformContext,
) -> Option<String> {
    let command = format!("cat -- {}", crate::quote::quote(path));
    let output = transport
        .exec(
            node,
            &command,
            None,
            Some(Duration::from_secs(30)),
            &context.cancel,
            &|_| {},
        )
        .await
        .ok()?;
    (output.exit_code == 0).then_some(output.stdout)
}

/// Executes a node effect over the transport.
async fn execute(
    transport: &dyn Transport,
    effect: &Effect,
    context: &PerformContext,
) -> Result<Outcome, EffectError> {
    match effect {
        Effect::Exec {
            node,
            command,
            timeout,
        } => Ok(transport
            .exec(
                node,
                command,
                None,
                *timeout,
                &context.cancel,
                &*context.on_output,
            )
            .await?),
        Effect::WriteFile {
            node,
            path,
            content,
            mode,
        } => {
            let command = crate::quote::write_file_command(path, *mode);
            Ok(transport
                .exec(
                    node,
                    &command,
                    Some(content),
                    Some(Duration::from_secs(600)),
                    &context.cancel,
                    &|_| {},
                )
                .await?)
        }
        Effect::Call(call) => Err(EffectError::Other(format!(
            "`{}` is a {} call, not a node command",
            call.describe(),
            call.service()
        ))),
        Effect::Poll {
            node,
            command,
            interval,
            timeout,
        } => {
            let deadline = Instant::now() + *timeout;
            loop {
                let outcome = transport
                    .exec(
                        node,
                        command,
                        None,
                        Some(*interval + Duration::from_secs(30)),
                        &context.cancel,
                        &|_| {},
                    )
                    .await?;
                if outcome.exit_code == 0 || Instant::now() + *interval > deadline {
                    return Ok(outcome);
                }
                tokio::select! {
                    () = tokio::time::sleep(*interval) => {}
                    () = context.cancel.cancelled() => return Err(EffectError::Cancelled),
                }
            }
        }
    }
}
