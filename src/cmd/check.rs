//! `krun check` and `krun doc`: compiling and listing, with a boundary that can execute
//! nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::app::{color, print};
use crate::cli::{CheckArgs, DescribeArgs, DocArgs, DocFormat};
use crate::inventory::Inventory;
use crate::plan::RunId;
use crate::primitives::{Host, RunContext};
use crate::runtime::engine::{self, ModulePath};

/// A host for compiling and listing: dry-run, offline, no nodes. Nothing can be executed.
fn inert_context(runtime: &tokio::runtime::Runtime, playbook: PathBuf) -> Arc<RunContext> {
    let effects = crate::wiring::inert(runtime.handle().clone());
    let host = Host::new(
        effects,
        Arc::new(Inventory::default()),
        BTreeMap::new(),
        playbook,
        Duration::from_secs(60),
    );
    Arc::new(RunContext {
        host: Arc::new(host),
        run: RunId(usize::MAX),
        node: None,
    })
}

pub fn check(runtime: &tokio::runtime::Runtime, args: &CheckArgs) -> crate::Result<u8> {
    let context = inert_context(runtime, PathBuf::from("."));
    let engine = engine::for_run(ModulePath::default(), &context);
    let mut diagnostics = Vec::new();
    // Playbooks of one repository share its libraries: resolved and verified once.
    let mut by_repository: BTreeMap<Option<PathBuf>, Option<Arc<crate::library::Libraries>>> =
        BTreeMap::new();
    for playbook in &args.playbooks {
        let repository = crate::library::find_root(playbook);
        let libraries = match by_repository.get(&repository) {
            Some(libraries) => libraries.clone(),
            None => {
                let libraries = super::lib::libraries_for(playbook, args.locked, args.offline)?;
                by_repository.insert(repository, libraries.clone());
                libraries
            }
        };
        diagnostics.extend(crate::runtime::check::check_files(
            &engine,
            &args.libs,
            &args.allow_local,
            libraries.as_ref(),
            std::slice::from_ref(playbook),
        ));
    }
    let color = color();
    for diagnostic in &diagnostics {
        let _ = write!(std::io::stderr(), "{}", diagnostic.render(color));
    }
    if diagnostics.is_empty() {
        print(&format!(
            "ok: {} playbook(s) checked\n",
            args.playbooks.len()
        ));
        Ok(0)
    } else {
        let _ = writeln!(std::io::stderr(), "{} problem(s) found", diagnostics.len());
        Ok(crate::error::Kind::Input.exit_code())
    }
}

pub fn doc(runtime: &tokio::runtime::Runtime, args: &DocArgs) -> crate::Result<u8> {
    let context = inert_context(runtime, PathBuf::from("."));
    let engine = engine::for_run(ModulePath::default(), &context);
    if let Some(name) = &args.lib {
        let doc = super::lib::library_doc(&engine, name)?;
        match args.format {
            DocFormat::Markdown => print(&crate::runtime::doc::library_markdown(&doc)),
            DocFormat::Json => print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).map_err(|e| Error::runtime(e.to_string()))?
            )),
        }
        return Ok(0);
    }
    let reference = crate::runtime::doc::reference(&engine);
    match args.format {
        DocFormat::Markdown => print(&crate::runtime::doc::markdown(&reference)),
        DocFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&reference).map_err(|e| Error::runtime(e.to_string()))?
        )),
    }
    Ok(0)
}

/// `krun describe PLAYBOOK`: its opening comment, its declared parameters, whether it runs per
/// node and whether it drains.
pub fn describe(runtime: &tokio::runtime::Runtime, args: &DescribeArgs) -> crate::Result<u8> {
    let context = inert_context(runtime, args.playbook.clone());
    let path = ModulePath::new(&args.libs, &args.playbook);
    let engine = engine::for_run(path.clone(), &context);
    let resolver = engine::Resolver::new(path);
    let shape = match crate::runtime::shape::describe(&engine, &resolver, &args.playbook) {
        Ok(shape) => shape,
        Err(diagnostic) => {
            let _ = write!(std::io::stderr(), "{}", diagnostic.render(color()));
            return Ok(crate::error::Kind::Input.exit_code());
        }
    };
    match crate::output::document(args.output, crate::output::DESCRIBE_SCHEMA, &shape)? {
        Some(document) => print(&document),
        None => print(&describe_text(&args.playbook.display().to_string(), &shape)),
    }
    Ok(0)
}

fn describe_text(file: &str, shape: &crate::runtime::shape::Shape) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{file}\n");
    if !shape.doc.is_empty() {
        for line in shape.doc.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Runs: {}",
        if shape.uses_node {
            "once per node (--node NAME, repeatable; --batch N runs N at once)"
        } else {
            "once, for the cluster"
        }
    );
    let _ = writeln!(
        out,
        "Drains: {}",
        if shape.drains {
            "yes: a run is judged before it starts (the nodes reached over ssh, preflight's findings for them and the target, the forecast of the batch plan)"
        } else {
            "no"
        }
    );
    match &shape.parameters {
        None => {
            let _ = writeln!(
                out,
                "Parameters: not declared (any --set is passed on; declare them with parameters(#{{ … }}))"
            );
        }
        Some(parameters) if parameters.is_empty() => {
            let _ = writeln!(out, "Parameters: none");
        }
        Some(parameters) => {
            let _ = writeln!(out, "Parameters:");
            let width = parameters.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in parameters {
                let given = match (&p.default, p.required) {
                    (_, true) => "required".to_owned(),
                    (Some(default), _) => format!("default {default}"),
                    (None, false) => "optional".to_owned(),
                };
                let _ = writeln!(out, "  --set {:<width$}  {given}: {}", p.name, p.doc);
            }
        }
    }
    out
}
