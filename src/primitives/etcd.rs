//! etcd primitives: membership, health, snapshots — every membership change behind the quorum
//! guard (exit 3 when refused; `#{ override: true }` overrides it, loudly).

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, duration_value, option, primitive, raise};
use crate::effects::{Access, Effect, StepFailure};
use crate::error::Kind;
use crate::etcd::Call as EtcdCall;
use crate::etcd::GuardMode;
use crate::primitives::node::Node;

const TARGET: &str = "etcd";

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    for (name, call, doc) in [
        (
            "etcd_members",
            EtcdCall::Members,
            "The etcd members: `[#{ id, name, peer_urls, client_urls, is_learner }]`, ids in hex.\nRuns in a dry-run (and then shows the membership as the recorded changes leave it).",
        ),
        (
            "etcd_status",
            EtcdCall::Status,
            "Per endpoint: `#{ endpoint, status: #{ version, leader, raft_index, db_size, … }, error }`. Runs in a dry-run.",
        ),
        (
            "etcd_health",
            EtcdCall::Health,
            "Per endpoint, like `etcdctl endpoint health`: `#{ endpoint, healthy, error, … }`. Runs in a dry-run.",
        ),
    ] {
        let ctx = Arc::clone(context);
        primitive(name, &["Array"], doc).register_into_engine(
            engine,
            move |call_ctx: NativeCallContext| -> RhaiResult<Dynamic> {
                let outcome = ctx.step_on(
                    &call_ctx,
                    name,
                    TARGET,
                    Access::Read,
                    call.describe(),
                    Effect::call(call.clone()),
                )?;
                to_dynamic(&outcome.data)
            },
        );
    }

    let ctx = Arc::clone(context);
    primitive(
        "etcd_snapshot",
        &["path: &str", "Map"],
        "Saves a snapshot of etcd to `path` on this machine (checksum verified, written atomically);\nreturns `#{ path, size, endpoint, sha256 }`. Recorded, not taken, in a dry-run.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, path: &str| -> RhaiResult<Dynamic> {
        let effect = EtcdCall::Snapshot { path: path.into() };
        let outcome = ctx.step_on(&call, "etcd_snapshot", TARGET, Access::Change, effect.describe(), Effect::call(effect))?;
        to_dynamic(&outcome.data)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_snapshot_info",
        &["path: &str", "Map"],
        "Reads the snapshot file `path` on this machine (relative to the playbook; elsewhere with\n\
         --allow-local PATH) and checks it whole against the SHA-256 etcd appends: `#{ path, size,\n\
         sha256 }`. A truncated or corrupted file is refused (exit 3) before anything is restored\n\
         from it. Reads only; runs in a dry-run.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, path: &str| -> RhaiResult<Map> {
        let local = ctx.local_path(&call, "etcd_snapshot_info", path)?;
        let refuse = |message: String| raise(call.call_position(), ctx.failure("etcd_snapshot_info", Kind::Refused, message));
        let content = std::fs::read(&local).map_err(|e| {
            raise(call.call_position(), ctx.failure("etcd_snapshot_info", Kind::Input, format!("cannot read the snapshot {}: {e}", local.display())))
        })?;
        let sha256 = crate::etcd::verify_snapshot(&content)
            .map_err(|why| refuse(format!("the snapshot {} is not whole: {why}", local.display())))?;
        let mut map = Map::new();
        map.insert("path".into(), local.display().to_string().into());
        map.insert("size".into(), (content.len() as i64).into());
        map.insert("sha256".into(), sha256.into());
        Ok(map)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_restore_member",
        &["node: Node", "opts: Map", "Map"],
        "Restores one etcd member's data directory on `node` from a snapshot on this machine: copies\n\
         it to the node (`opts.dest`, default /var/lib/krun/etcd-restore/<sha256>.db), then runs\n\
         `etcdutl snapshot restore` (or etcd 3.4's `etcdctl snapshot restore`) into a new directory\n\
         with the member's `name`, `peer_urls` (array), the whole cluster's `initial_cluster` and a\n\
         new cluster `token`, moves the old `data_dir` aside (`<data_dir>.before-restore-…`, never\n\
         deleted) and the new one into its place. `opts`: `snapshot` (a local path, as\n\
         `etcd_snapshot_info` reads it), `name`, `peer_urls`, `initial_cluster`, `token`,\n\
         `data_dir`, `tool` (default: etcdutl, else etcdctl, on the node's PATH), `dest`. The member\n\
         must be stopped. Recorded in a dry-run.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, node: Node, opts: Map| -> RhaiResult<Map> {
        restore_member(&ctx, &call, &node, &opts)
    });

    const REMOVE_DOC: &str = "Removes a member (by name or hex id) if the quorum guard allows it: refused (exit 3) when the\n\
         cluster is not fully healthy, when it is the last voter, when fewer healthy voters than the\n\
         new quorum would remain, or while a learner is pending. `#{ override: true }` overrides\n\
         the guard and logs it loudly. Logs the membership before/after and the quorum arithmetic.";
    let ctx = Arc::clone(context);
    primitive("etcd_remove_member", &["member: &str", "Map"], REMOVE_DOC).register_into_engine(
        engine,
        move |call: NativeCallContext, member: &str| -> RhaiResult<Dynamic> {
            remove(&ctx, &call, member, &Map::new())
        },
    );
    let ctx = Arc::clone(context);
    primitive(
        "etcd_remove_member",
        &["member: &str", "opts: Map", "Map"],
        REMOVE_DOC,
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, member: &str, opts: Map| -> RhaiResult<Dynamic> {
            remove(&ctx, &call, member, &opts)
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "etcd_add_member",
        &["name: &str", "peer_urls: string | array", "opts: Map", "Map"],
        "Adds a member with `peer_urls` if the quorum guard allows it (refused while another learner\n\
         is pending, or when the cluster is not fully healthy). `opts`: `learner` (default true:\n\
         add as a learner, then `etcd_promote`), `override`. Returns the change, including the\n\
         `initial_cluster` the new member must start with (`--initial-cluster-state existing`).",
    )
    .register_into_engine(engine, move |call: NativeCallContext, name: &str, peers: Dynamic, opts: Map| -> RhaiResult<Dynamic> {
        let position = call.call_position();
        let peer_urls: Vec<String> = if peers.is_array() {
            peers.cast::<Array>().into_iter().map(|p| p.to_string()).collect()
        } else {
            peers.to_string().split(',').map(str::to_owned).collect()
        };
        let learner = option::<bool>(&opts, "learner", &ctx, "etcd_add_member", position)?.unwrap_or(true);
        let mode = guard_mode(&ctx, &opts, "etcd_add_member", position)?;
        let effect = EtcdCall::Add { name: name.to_owned(), peer_urls, learner, mode };
        let outcome = ctx.step_on(&call, "etcd_add_member", TARGET, Access::Change, effect.describe(), Effect::call(effect))?;
        to_dynamic(&outcome.data)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_promote",
        &["member: &str", "timeout: string | int", "Map"],
        "Promotes a learner to a voter, retrying while etcd says it is not yet in sync with the\nleader, for at most `timeout` (\"2m\" or seconds). A member that is already a voter is left as it is.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, member: &str, timeout: Dynamic| -> RhaiResult<Dynamic> {
        let timeout = timeout_arg(&ctx, &timeout, "etcd_promote", &call)?;
        let effect = EtcdCall::Promote { member: member.to_owned(), timeout };
        let outcome = ctx.step_on(&call, "etcd_promote", TARGET, Access::Change, effect.describe(), Effect::call(effect))?;
        to_dynamic(&outcome.data)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_wait_healthy",
        &["timeout: string | int", "Map"],
        "Waits until every member answers healthy, for at most `timeout`; fails the step otherwise.\nRecorded, not run, in a dry-run.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, timeout: Dynamic| -> RhaiResult<Dynamic> {
        let timeout = timeout_arg(&ctx, &timeout, "etcd_wait_healthy", &call)?;
        let effect = EtcdCall::WaitHealthy { timeout };
        let outcome = ctx.step_on(&call, "etcd_wait_healthy", TARGET, Access::Wait, effect.describe(), Effect::call(effect))?;
        to_dynamic(&outcome.data)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_wait_healthy",
        &["timeout: string | int", "opts: Map", "Map"],
        "Like `etcd_wait_healthy(timeout)`; with `opts.allow_fail: true` a cluster that stays unhealthy\n\
         returns `#{ healthy: false, error }` instead of failing the step, so a playbook can stop\n\
         with its own message. Returns `#{ healthy: true, view }` otherwise.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, timeout: Dynamic, opts: Map| -> RhaiResult<Map> {
        let timeout = timeout_arg(&ctx, &timeout, "etcd_wait_healthy", &call)?;
        let allow_fail = option::<bool>(&opts, "allow_fail", &ctx, "etcd_wait_healthy", call.call_position())?.unwrap_or(false);
        let effect = EtcdCall::WaitHealthy { timeout };
        let outcome = ctx.step_on(&call, "etcd_wait_healthy", TARGET, Access::Wait, effect.describe(), Effect::call(effect));
        let mut result = Map::new();
        match outcome {
            Ok(outcome) => {
                result.insert("healthy".into(), true.into());
                result.insert("error".into(), Dynamic::UNIT);
                result.insert("view".into(), to_dynamic(&outcome.data)?);
            }
            Err(error) => match unhealthy(&error) {
                Some(message) if allow_fail => {
                    result.insert("healthy".into(), false.into());
                    result.insert("error".into(), message.into());
                    result.insert("view".into(), Dynamic::UNIT);
                }
                _ => return Err(error),
            },
        }
        Ok(result)
    });

    let ctx = Arc::clone(context);
    primitive(
        "etcd_move_leader",
        &["member: &str", "Map"],
        "Transfers etcd leadership to a voter (e.g. away from the member about to be upgraded).",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, member: &str| -> RhaiResult<Dynamic> {
            let effect = EtcdCall::MoveLeader {
                member: member.to_owned(),
            };
            let outcome = ctx.step_on(
                &call,
                "etcd_move_leader",
                TARGET,
                Access::Change,
                effect.describe(),
                Effect::call(effect),
            )?;
            to_dynamic(&outcome.data)
        },
    );
}

fn restore_member(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    opts: &Map,
) -> RhaiResult<Map> {
    const ACTION: &str = "etcd_restore_member";
    let position = call.call_position();
    super::check_options(
        ctx,
        opts,
        &[
            "snapshot",
            "name",
            "peer_urls",
            "initial_cluster",
            "token",
            "data_dir",
            "tool",
            "dest",
        ],
        ACTION,
        position,
    )?;
    let text = |key: &str| -> RhaiResult<String> {
        match option::<rhai::ImmutableString>(opts, key, ctx, ACTION, position)? {
            Some(value) if !value.is_empty() => Ok(value.to_string()),
            _ => Err(raise(
                position,
                ctx.failure(
                    ACTION,
                    Kind::Input,
                    format!("{ACTION}: option `{key}` is required"),
                ),
            )),
        }
    };
    let snapshot = text("snapshot")?;
    let local = ctx.local_path(call, ACTION, &snapshot)?;
    let content = std::fs::read(&local).map_err(|e| {
        raise(
            position,
            ctx.failure(
                ACTION,
                Kind::Input,
                format!("cannot read the snapshot {}: {e}", local.display()),
            ),
        )
    })?;
    let sha256 = crate::etcd::verify_snapshot(&content).map_err(|why| {
        raise(
            position,
            ctx.failure(
                ACTION,
                Kind::Refused,
                format!("the snapshot {} is not whole: {why}", local.display()),
            ),
        )
    })?;
    let tag = sha256[..12].to_owned();
    let peer_urls: Vec<String> = match opts.get("peer_urls") {
        Some(urls) if urls.is_array() => urls
            .clone()
            .cast::<Array>()
            .into_iter()
            .map(|u| u.to_string())
            .collect(),
        Some(urls) if !urls.is_unit() => urls.to_string().split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if peer_urls.is_empty() {
        return Err(raise(
            position,
            ctx.failure(
                ACTION,
                Kind::Input,
                format!("{ACTION}: option `peer_urls` is required"),
            ),
        ));
    }
    let dest = match option::<rhai::ImmutableString>(opts, "dest", ctx, ACTION, position)? {
        Some(dest) if !dest.is_empty() => dest.to_string(),
        _ => format!("/var/lib/krun/etcd-restore/{tag}.db"),
    };
    let restore = crate::etcd::restore::MemberRestore {
        snapshot: dest.clone(),
        name: text("name")?,
        initial_cluster: text("initial_cluster")?,
        token: text("token")?,
        peer_urls,
        data_dir: text("data_dir")?,
        tool: option::<rhai::ImmutableString>(opts, "tool", ctx, ACTION, position)?
            .map(|t| t.to_string())
            .unwrap_or_default(),
        tag,
    };
    let mut upload = ctx.new_step(call, ACTION, node, Access::Change);
    upload.hide_content = true;
    upload.recheck = crate::effects::Recheck::Rerun;
    let size = content.len();
    ctx.perform_step(
        call,
        upload,
        format!(
            "copy the snapshot {} ({size} bytes, sha256 {}) to {}:{dest}",
            local.display(),
            &sha256[..16],
            node.0.name
        ),
        Effect::WriteFile {
            node: Arc::clone(node.spec()),
            path: dest.clone(),
            content,
            mode: 0o600,
        },
    )?;
    let command = restore.command();
    let mut step = ctx.new_step(call, ACTION, node, Access::Change);
    step.recheck = crate::effects::Recheck::Rerun;
    let outcome = ctx.perform_step(
        call,
        step,
        command.clone(),
        Effect::Exec {
            node: Arc::clone(node.spec()),
            command: command.clone(),
            timeout: Some(Duration::from_secs(1800)),
        },
    )?;
    if outcome.observed && outcome.exit_code != 0 {
        return Err(ctx.command_failed(position, ACTION, node, &command, &outcome));
    }
    let mut map = Map::new();
    map.insert("node".into(), node.0.name.clone().into());
    map.insert("member".into(), restore.name.into());
    map.insert("data_dir".into(), restore.data_dir.into());
    map.insert("token".into(), restore.token.into());
    map.insert("observed".into(), outcome.observed.into());
    Ok(map)
}

fn remove(
    ctx: &RunContext,
    call: &NativeCallContext,
    member: &str,
    opts: &Map,
) -> RhaiResult<Dynamic> {
    let mode = guard_mode(ctx, opts, "etcd_remove_member", call.call_position())?;
    let effect = EtcdCall::Remove {
        member: member.to_owned(),
        mode,
    };
    let outcome = ctx.step_on(
        call,
        "etcd_remove_member",
        TARGET,
        Access::Change,
        effect.describe(),
        Effect::call(effect),
    )?;
    to_dynamic(&outcome.data)
}

fn guard_mode(
    ctx: &RunContext,
    opts: &Map,
    action: &str,
    position: rhai::Position,
) -> RhaiResult<GuardMode> {
    let overridden = option::<bool>(opts, "override", ctx, action, position)?.unwrap_or(false);
    Ok(if overridden {
        GuardMode::Override
    } else {
        GuardMode::Enforce
    })
}

fn timeout_arg(
    ctx: &RunContext,
    value: &Dynamic,
    action: &str,
    call: &NativeCallContext,
) -> RhaiResult<Duration> {
    duration_value(value).ok_or_else(|| {
        raise(
            call.call_position(),
            ctx.failure(
                action,
                Kind::Input,
                format!("{action}: timeout must be like \"2m\" or seconds, got {value}"),
            ),
        )
    })
}

/// The message of a step that failed at runtime (not a refusal, bad input or an interrupt,
/// which `allow_fail` must not swallow).
fn unhealthy(error: &rhai::EvalAltResult) -> Option<String> {
    let rhai::EvalAltResult::ErrorRuntime(value, _) = error else {
        return None;
    };
    let failure = value.clone().try_cast::<StepFailure>()?;
    (failure.kind == Kind::Runtime).then_some(failure.message)
}

fn to_dynamic(value: &serde_json::Value) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(value)
}
