//! `os_facts`, `pkg_version`, `pkg_versions`, `pkg_install`: the node's package manager (apt,
//! dnf/yum or pacman, from `/etc/os-release`) driven as [`crate::host::packages`] says.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, RunContext, primitive, raise, tail};
use crate::effects::{Access, Effect, Recheck};
use crate::error::Kind;
use crate::host::packages::{FACTS_COMMAND, OsFacts, PackageManager, is_local_file};
use crate::primitives::node::Node;
use crate::quote::quote;

pub fn register(engine: &mut Engine, context: &Arc<RunContext>) {
    let ctx = Arc::clone(context);
    primitive(
        "os_facts",
        &["node: Node", "Map"],
        "`#{ id, id_like, version, pretty_name, arch, kernel, observed }` of `node`, from\n\
         /etc/os-release and uname. Runs in a dry-run; empty strings when not observed.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node| -> RhaiResult<Map> {
            Ok(facts_map(&facts(&ctx, &call, &node)?))
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "pkg_version",
        &["node: Node", "name: &str", "String"],
        "The installed version of package `name` on `node` (\"\" when not installed or not\n\
         observed), from dpkg, rpm or pacman. Runs in a dry-run.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, name: &str| -> RhaiResult<String> {
            let Some(manager) = manager(&ctx, &call, &node)? else {
                return Ok(String::new());
            };
            let command = manager.version_command(name);
            let outcome = ctx.step(
                &call,
                "pkg_version",
                &node,
                Access::Read,
                command.clone(),
                exec(&node, command),
            )?;
            Ok(if outcome.exit_code == 0 {
                manager.parse_version(&outcome.stdout)
            } else {
                String::new()
            })
        },
    );

    let ctx = Arc::clone(context);
    primitive(
        "pkg_versions",
        &["node: Node", "name: &str", "Array"],
        "Versions of package `name` the node's repositories offer, as the package manager\n\
         prints them (apt-cache madison, dnf list --showduplicates, pacman -Si). Runs in a dry-run.",
    )
    .register_into_engine(engine, move |call: NativeCallContext, node: Node, name: &str| -> RhaiResult<Array> {
        let Some(manager) = manager(&ctx, &call, &node)? else { return Ok(Array::new()) };
        let command = manager.available_command(name);
        let outcome = ctx.step(&call, "pkg_versions", &node, Access::Read, command.clone(), exec(&node, command))?;
        Ok(manager.parse_available(name, &outcome.stdout).into_iter().map(Dynamic::from).collect())
    });

    let ctx = Arc::clone(context);
    primitive(
        "pkg_repo_minor",
        &["node: Node", "minor: &str", "()"],
        "Points the node's pkgs.k8s.io repository (one per minor: `…/core:/stable:/v1.29/deb/`\n\
         or `…/rpm/`) at Kubernetes `minor` (\"1.29\") and refreshes its metadata. Sources\n\
         without such a path (the legacy repositories, Arch) are left as they are.",
    )
    .register_into_engine(
        engine,
        move |call: NativeCallContext, node: Node, minor: &str| -> RhaiResult<()> {
            repo_minor(&ctx, &call, &node, minor)
        },
    );

    for with_options in [false, true] {
        let ctx = Arc::clone(context);
        let params: &[&str] = if with_options {
            &[
                "node: Node",
                "name: &str",
                "version: &str",
                "opts: Map",
                "()",
            ]
        } else {
            &["node: Node", "name: &str", "version: &str", "()"]
        };
        let doc = "Installs package `name` at `version` (\"\" for the newest) with the node's package\n\
             manager: `apt-get install name=version`, `dnf install name-version`, `pacman -S name`.\n\
             A `name` that is a package file on the node (`/path/x.pkg.tar.zst`, `.deb`, `.rpm`)\n\
             is installed from that file (`pacman -U`). With pacman, which cannot pin versions, a\n\
             repository install fails when the installed version is not `version`.\n\
             Installing `kubelet` newer than the control plane is refused (version-skew policy;\n\
             `opts`: `allow_skew: true` overrides, loudly).";
        let register = primitive("pkg_install", params, doc);
        if with_options {
            register.register_into_engine(
                engine,
                move |call: NativeCallContext,
                      node: Node,
                      name: &str,
                      version: &str,
                      opts: Map|
                      -> RhaiResult<()> {
                    install(&ctx, &call, &node, name, version, &opts)
                },
            );
        } else {
            register.register_into_engine(
                engine,
                move |call: NativeCallContext,
                      node: Node,
                      name: &str,
                      version: &str|
                      -> RhaiResult<()> {
                    install(&ctx, &call, &node, name, version, &Map::new())
                },
            );
        }
    }
}

/// `pkg_repo_minor`: the package manager's repository switch, when it has one.
fn repo_minor(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    minor: &str,
) -> RhaiResult<()> {
    let position = call.call_position();
    let numbers: Vec<&str> = minor.trim_start_matches('v').split('.').collect();
    if numbers.len() != 2
        || numbers
            .iter()
            .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        let failure = ctx.failure(
            "pkg_repo_minor",
            Kind::Input,
            format!("pkg_repo_minor: minor must look like \"1.29\", got \"{minor}\""),
        );
        return Err(raise(position, failure));
    }
    let minor = numbers.join(".");
    let Some(manager) = manager(ctx, call, node)? else {
        let shown =
            format!("point the pkgs.k8s.io repository at v{minor} (package manager not observed)");
        ctx.step(
            call,
            "pkg_repo_minor",
            node,
            Access::Change,
            shown.clone(),
            exec(node, shown),
        )?;
        return Ok(());
    };
    let Some(command) = manager.repository_minor_command(&minor) else {
        return Ok(());
    };
    let outcome = ctx.step(
        call,
        "pkg_repo_minor",
        node,
        Access::Change,
        command.clone(),
        exec(node, command.clone()),
    )?;
    if outcome.exit_code != 0 {
        return Err(ctx.command_failed(position, "pkg_repo_minor", node, &command, &outcome));
    }
    Ok(())
}

/// `pkg_install`: the package manager's install command, after the kubelet skew guard.
pub(super) fn install(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
    name: &str,
    version: &str,
    opts: &Map,
) -> RhaiResult<()> {
    let position = call.call_position();
    let allow_skew =
        super::option::<bool>(opts, "allow_skew", ctx, "pkg_install", position)?.unwrap_or(false);
    let warnings = super::kubeadm::kubelet_guard(ctx, call, node, name, version, allow_skew)?;
    let Some(manager) = manager(ctx, call, node)? else {
        let shown = format!(
            "install {} {version} (package manager not observed)",
            quote(name)
        );
        ctx.step(
            call,
            "pkg_install",
            node,
            Access::Change,
            crate::journal::view::with_warnings(&shown, &warnings),
            exec(node, shown),
        )?;
        return Ok(());
    };
    let command = manager.install_command(name, version);
    let outcome = ctx.step_rechecked(
        call,
        "pkg_install",
        node,
        Access::Change,
        crate::journal::view::with_warnings(&command, &warnings),
        exec(node, command.clone()),
        install_recheck(manager, node, name, version),
    )?;
    if outcome.exit_code != 0 {
        return Err(ctx.command_failed(position, "pkg_install", node, &command, &outcome));
    }
    if manager == PackageManager::Pacman
        && !is_local_file(name)
        && !version.is_empty()
        && outcome.observed
    {
        let check = manager.version_command(name);
        let installed = ctx.step(
            call,
            "pkg_version",
            node,
            Access::Read,
            check.clone(),
            exec(node, check),
        )?;
        let installed = manager.parse_version(&installed.stdout);
        if !installed.starts_with(version) {
            let failure = ctx.failure(
                "pkg_install",
                Kind::Runtime,
                format!("pacman installed {name} {installed} on {}, but {version} was asked for; install the package file with pacman -U instead", node.0.name),
            );
            return Err(raise(position, failure));
        }
    }
    Ok(())
}

/// How a resumed run settles an install krun died during: a pinned version is read back (the
/// package is not installed twice), anything else is installed again, which package managers
/// treat as a no-op when it is in place.
fn install_recheck(manager: PackageManager, node: &Node, name: &str, version: &str) -> Recheck {
    if version.is_empty() || is_local_file(name) {
        return Recheck::Rerun;
    }
    let wanted = version.to_owned();
    Recheck::ReadBack {
        shown: manager.version_command(name),
        probe: Box::new(exec(node, manager.version_command(name))),
        done: Arc::new(move |outcome: &crate::effects::Outcome| {
            let installed = manager.parse_version(&outcome.stdout);
            outcome.exit_code == 0
                && installed
                    .strip_prefix(wanted.as_str())
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
        }),
    }
}

pub(super) fn exec(node: &Node, command: String) -> Effect {
    Effect::Exec {
        node: Arc::clone(node.spec()),
        command,
        timeout: Some(Duration::from_secs(1800)),
    }
}

/// The node's facts, read once per command and cached.
fn facts(ctx: &RunContext, call: &NativeCallContext, node: &Node) -> RhaiResult<OsFacts> {
    if let Some(facts) = ctx.host.facts.lock().expect("facts lock").get(&node.0.name) {
        return Ok(facts.clone());
    }
    let outcome = ctx.step(
        call,
        "os_facts",
        node,
        Access::Read,
        FACTS_COMMAND.to_owned(),
        exec(node, FACTS_COMMAND.to_owned()),
    )?;
    if !outcome.observed {
        // Not observable now; asking again in this run would not change that.
        ctx.host
            .facts
            .lock()
            .expect("facts lock")
            .insert(node.0.name.clone(), OsFacts::default());
        return Ok(OsFacts::default());
    }
    if outcome.exit_code != 0 {
        let failure = ctx.failure(
            "os_facts",
            Kind::Runtime,
            format!(
                "cannot read /etc/os-release on {}: {}",
                node.0.name,
                tail(&outcome.stderr, 5)
            ),
        );
        return Err(raise(call.call_position(), failure));
    }
    let facts = OsFacts::parse(&outcome.stdout);
    ctx.host
        .facts
        .lock()
        .expect("facts lock")
        .insert(node.0.name.clone(), facts.clone());
    Ok(facts)
}

/// The node's package manager; `None` when the node was not observed. An unknown distribution
/// is an error that names it.
pub(super) fn manager(
    ctx: &RunContext,
    call: &NativeCallContext,
    node: &Node,
) -> RhaiResult<Option<PackageManager>> {
    let facts = facts(ctx, call, node)?;
    if !facts.observed {
        return Ok(None);
    }
    facts.package_manager().map(Some).ok_or_else(|| {
        raise(
            call.call_position(),
            ctx.failure(
                "pkg",
                Kind::Runtime,
                format!("{}: no known package manager for ID={} ID_LIKE={} (krun knows apt, dnf/yum and pacman)", node.0.name, facts.id, facts.id_like),
            ),
        )
    })
}

/// `os_facts`' answer.
fn facts_map(facts: &OsFacts) -> Map {
    let mut map = Map::new();
    for (key, value) in [
        ("id", &facts.id),
        ("id_like", &facts.id_like),
        ("version", &facts.version),
        ("pretty_name", &facts.pretty_name),
        ("arch", &facts.arch),
        ("kernel", &facts.kernel),
    ] {
        map.insert(key.into(), value.clone().into());
    }
    map.insert("observed".into(), Dynamic::from_bool(facts.observed));
    map
}
