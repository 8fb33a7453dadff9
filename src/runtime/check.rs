//! `krun check`: everything that can be known about a playbook without running it.
//!
//! Compiles with strict variables, resolves every import (recursively), and reports calls to
//! functions that exist nowhere — not as a primitive, not in the standard packages, not in the
//! playbook, not in the imported module — with a "did you mean". Nothing is executed: modules
//! are compiled, never evaluated.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use rhai::{AST, ASTNode, Engine, Expr, Position, Stmt};

use crate::error::Kind;
use crate::runtime::diagnostic::Diagnostic;
use crate::runtime::engine::{ModulePath, Resolver};

/// Keywords that parse as function calls but are implemented by the engine itself.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "this",
];

/// Names and arities of every function callable without a namespace.
pub struct Known {
    functions: BTreeMap<String, BTreeSet<usize>>,
}

impl Known {
    /// Everything the engine has registered (primitives and standard packages).
    pub fn from_engine(engine: &Engine) -> Self {
        let mut functions: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let json = engine.gen_fn_metadata_to_json(true).unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        for f in parsed["functions"].as_array().into_iter().flatten() {
            if let (Some(name), Some(n)) = (f["name"].as_str(), f["numParams"].as_u64()) {
                functions
                    .entry(name.to_owned())
                    .or_default()
                    .insert(n as usize);
            }
        }
        Self { functions }
    }

    fn with_script(&self, ast: &AST) -> BTreeMap<String, BTreeSet<usize>> {
        let mut all = self.functions.clone();
        for f in ast.iter_functions() {
            all.entry(f.name.to_owned())
                .or_default()
                .insert(f.params.len());
        }
        all
    }
}

/// Checks playbooks; returns one diagnostic per problem (empty: all good).
pub fn check_files(
    engine: &Engine,
    libs: &[std::path::PathBuf],
    allow_local: &[std::path::PathBuf],
    libraries: Option<&std::sync::Arc<crate::library::Libraries>>,
    files: &[std::path::PathBuf],
) -> Vec<Diagnostic> {
    let known = Known::from_engine(engine);
    let mut diagnostics = Vec::new();
    for file in files {
        let resolver = Resolver::new(
            ModulePath::new(libs, file)
                .allowing(allow_local)
                .with_libraries(libraries.cloned()),
        );
        let mut visited = HashSet::new();
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => check_source(
                engine,
                &known,
                &resolver,
                &name,
                &text,
                true,
                &mut visited,
                &mut diagnostics,
            ),
            Err(e) => diagnostics.push(plain(&name, format!("cannot read {name}: {e}"))),
        }
    }
    diagnostics
}

fn plain(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        kind: Kind::Input,
        message,
        file: Some(file.to_owned()),
        line: None,
        column: None,
        trace: Vec::new(),
        help: None,
        failure: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn check_source(
    engine: &Engine,
    known: &Known,
    resolver: &Resolver,
    file: &str,
    text: &str,
    is_playbook: bool,
    visited: &mut HashSet<String>,
    out: &mut Vec<Diagnostic>,
) {
    if !visited.insert(file.to_owned()) {
        return;
    }
    if let Some(oversized) = Diagnostic::oversized(file, text) {
        out.push(oversized);
        return;
    }
    let compiled = if is_playbook {
        crate::runtime::engine::compile(engine, Path::new(file), text)
    } else {
        engine.compile(text)
    };
    let ast = match compiled {
        Ok(ast) => ast,
        Err(e) => {
            out.push(Diagnostic::from_parse(&e, file));
            return;
        }
    };

    if is_playbook {
        match super::shape::Shape::read(engine, resolver, file, text, &ast) {
            Ok(shape) => out.extend(shape.undeclared_params(file, &ast)),
            Err(problem) => out.push(*problem),
        }
    }

    let mut imports: Vec<(String, String, Position)> = Vec::new();
    let mut calls: Vec<(Option<String>, String, usize, Position, bool)> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Import(import, position))) => {
                if let Expr::StringConstant(module, _) = &import.0 {
                    imports.push((module.to_string(), import.1.name.to_string(), *position));
                }
            }
            Some(
                ASTNode::Expr(Expr::FnCall(call, position))
                | ASTNode::Stmt(Stmt::FnCall(call, position)),
            ) if call.op_token.is_none() => {
                let namespace =
                    (!call.namespace.is_empty()).then(|| call.namespace.root().to_owned());
                calls.push((
                    namespace,
                    call.name.to_string(),
                    call.args.len(),
                    *position,
                    false,
                ));
            }
            Some(ASTNode::Expr(Expr::MethodCall(call, position))) => {
                calls.push((
                    None,
                    call.name.to_string(),
                    call.args.len() + 1,
                    *position,
                    true,
                ));
            }
            _ => {}
        }
        true
    });

    let local = known.with_script(&ast);
    let mut modules: BTreeMap<String, BTreeMap<String, BTreeSet<usize>>> = BTreeMap::new();
    for (import, alias, position) in imports {
        let Some((module_file, module_text)) = resolver.locate(&import) else {
            if let Some(why) = resolver.refused(&import) {
                out.push(located(file, position, format!("import `{import}`: {why}")));
                continue;
            }
            let mut d = located(file, position, format!("module not found: `{import}`"));
            d.help = Some(match resolver.library_of(&import) {
                Some(library) => format!("krun looked in {library}"),
                None => format!(
                    "krun looks in the stdlib, then each --lib DIR, KRUN_PATH and the playbook's directory for {import}.rhai"
                ),
            });
            out.push(d);
            continue;
        };
        if let Ok(module_ast) = engine.compile(&module_text) {
            let mut exported: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
            for f in module_ast
                .iter_functions()
                .filter(|f| f.access != rhai::FnAccess::Private)
            {
                exported
                    .entry(f.name.to_owned())
                    .or_default()
                    .insert(f.params.len());
            }
            modules.insert(alias, exported);
        }
        check_source(
            engine,
            known,
            resolver,
            &module_file,
            &module_text,
            false,
            visited,
            out,
        );
    }

    for (namespace, name, arity, position, method) in calls {
        if KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        let (table, shown) = match &namespace {
            Some(alias) => match modules.get(alias) {
                Some(table) => (table, format!("{alias}::{name}")),
                // An unresolved module was reported above.
                None => continue,
            },
            None => (&local, name.clone()),
        };
        match table.get(&name) {
            Some(arities) if arities.contains(&arity) => {}
            Some(arities) => {
                let (arity, arities) = if method {
                    (
                        arity - 1,
                        arities
                            .iter()
                            .map(|a| a.saturating_sub(1))
                            .collect::<BTreeSet<_>>(),
                    )
                } else {
                    (arity, arities.clone())
                };
                let takes: Vec<String> = arities.iter().map(ToString::to_string).collect();
                out.push(located(
                    file,
                    position,
                    format!(
                        "`{shown}` takes {} argument(s), this call passes {arity}",
                        takes.join(" or ")
                    ),
                ));
            }
            None => {
                let mut d = located(file, position, format!("unknown function `{shown}`"));
                let candidates = table
                    .keys()
                    .map(String::as_str)
                    .filter(|n| !n.contains('$'));
                d.help = Some(match crate::suggest::closest(&name, candidates) {
                    Some(close) => match &namespace {
                        Some(alias) => format!("did you mean `{alias}::{close}`?"),
                        None => format!("did you mean `{close}`?"),
                    },
                    None => "`krun doc` lists every primitive and stdlib function".to_owned(),
                });
                out.push(d);
            }
        }
    }
}

fn located(file: &str, position: Position, message: String) -> Diagnostic {
    Diagnostic {
        kind: Kind::Input,
        message,
        file: Some(file.to_owned()),
        line: position.line(),
        column: position.position(),
        trace: Vec::new(),
        help: None,
        failure: None,
    }
}
