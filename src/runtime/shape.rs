//! What a playbook is, read from its code without running it: the parameters it declares, its
//! opening comment, whether it runs on nodes (it uses `node`), and whether it can drain (a call
//! to `drain` or `evict` is reachable from its top level, through its own functions and the
//! modules it imports). `krun check`, `krun describe` and every run read it; a run that can drain
//! is judged before it starts.
//!
//! A playbook declares its parameters with one literal map at its top level:
//!
//! ```rhai
//! parameters(#{
//!     version: #{ doc: "the version to move to, e.g. 1.21.14", required: true },
//!     runtime: #{ doc: "\"containerd\" to switch from Docker too", value: "" },
//! });
//! ```
//!
//! Then an unknown `--set` key is refused before anything runs, with a "did you mean", a
//! required one that is missing too, and `param(NAME)` returns the declared `value` (the
//! default).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use rhai::{AST, ASTNode, Engine, Expr, Position, Stmt};

use super::diagnostic::Diagnostic;
use super::engine::Resolver;
use crate::error::Kind;
use crate::params::ParamValue;

/// The primitive a playbook declares its parameters with.
pub use crate::primitives::DECLARE_PARAMETERS as DECLARE;

/// Calls that take pods off a node: a playbook reaching one is judged before it runs.
const DRAINING: &[&str] = &["drain", "evict"];

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Parameter {
    pub name: String,
    pub doc: String,
    /// `None`: no default (then `param(NAME)` fails unless `--set` gives it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    pub required: bool,
}

impl Parameter {
    /// The default as `param` returns it.
    pub fn default_value(&self) -> Option<ParamValue> {
        match self.default.as_ref()? {
            serde_json::Value::Bool(b) => Some(ParamValue::Bool(*b)),
            serde_json::Value::Number(n) => n.as_i64().map(ParamValue::Int),
            serde_json::Value::String(s) => Some(ParamValue::Str(s.clone())),
            _ => None,
        }
    }
}

/// What a playbook is.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Shape {
    /// The playbook's opening comment, without the comment markers.
    pub doc: String,
    /// `None` when the playbook declares no parameters.
    pub parameters: Option<Vec<Parameter>>,
    /// Its top level uses `node`: it runs once per `--node`.
    pub uses_node: bool,
    /// A `drain` or `evict` is reachable from its top level.
    pub drains: bool,
}

impl Shape {
    /// Reads `ast` (the playbook `file`, compiled), following its imports through `resolver`.
    pub fn read(
        engine: &Engine,
        resolver: &Resolver,
        file: &str,
        text: &str,
        ast: &AST,
    ) -> Result<Self, Box<Diagnostic>> {
        Ok(Shape {
            doc: opening_comment(text),
            parameters: declared(file, ast)?,
            uses_node: uses_node(ast),
            drains: reaches(engine, resolver, ast, DRAINING),
        })
    }

    /// The `param("NAME")` calls naming no declared parameter (none without a declaration).
    pub fn undeclared_params(&self, file: &str, ast: &AST) -> Vec<Diagnostic> {
        let Some(declared) = &self.parameters else {
            return Vec::new();
        };
        let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
        let mut found = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(
                ASTNode::Expr(Expr::FnCall(call, position))
                | ASTNode::Stmt(Stmt::FnCall(call, position)),
            ) = path.last()
                && call.name.as_str() == "param"
                && call.namespace.is_empty()
                && let Some(Expr::StringConstant(name, _)) = call.args.first()
                && !names.contains(&name.as_str())
            {
                let mut d = problem(
                    file,
                    *position,
                    &format!("parameter `{name}` is not declared in {DECLARE}(…)"),
                );
                d.help = Some(match crate::suggest::closest(name, names.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`? Or declare `{name}`"),
                    None => format!("declare `{name}` in {DECLARE}(…) with its doc and default"),
                });
                found.push(*d);
            }
            true
        });
        found
    }

    /// Checks `--set` keys against the declaration (unknown keys, missing required ones) and
    /// fills in declared defaults. Without a declaration everything passes as it is.
    pub fn complete(
        &self,
        playbook: &str,
        given: &mut BTreeMap<String, ParamValue>,
    ) -> crate::Result<()> {
        let Some(declared) = &self.parameters else {
            return Ok(());
        };
        let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
        for key in given.keys() {
            if !names.contains(&key.as_str()) {
                let hint = match crate::suggest::closest(key, names.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("it takes: {}", names.join(", ")),
                };
                return Err(crate::Error::input(format!(
                    "--set {key}: {playbook} has no parameter `{key}`; {hint} (`krun describe {playbook}` lists them)"
                )));
            }
        }
        for parameter in declared {
            if given.contains_key(&parameter.name) {
                continue;
            }
            if parameter.required {
                return Err(crate::Error::input(format!(
                    "{playbook} needs --set {}=VALUE: {}",
                    parameter.name, parameter.doc
                )));
            }
            if let Some(value) = parameter.default_value() {
                given.insert(parameter.name.clone(), value);
            }
        }
        Ok(())
    }
}

/// The comment lines a file opens with (`//` or `//!`), markers stripped.
fn opening_comment(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_start)
        .take_while(|l| l.starts_with("//"))
        .map(|l| {
            l.trim_start_matches("//!")
                .trim_start_matches("//")
                .strip_prefix(' ')
                .unwrap_or_else(|| l.trim_start_matches('/').trim_start_matches('!'))
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// The top-level `parameters(#{ … })` declaration, read from the literal.
fn declared(file: &str, ast: &AST) -> Result<Option<Vec<Parameter>>, Box<Diagnostic>> {
    const SHAPE: &str =
        "parameters(…) takes one literal map: #{ name: #{ doc: \"…\", value: …, required: … }, … }";
    let mut found = None;
    for stmt in ast.statements() {
        let Stmt::FnCall(call, position) = stmt else {
            continue;
        };
        if call.name.as_str() != DECLARE || !call.namespace.is_empty() {
            continue;
        }
        let position = *position;
        if found.is_some() {
            return Err(problem(file, position, "parameters are declared twice"));
        }
        let map = match call.args.as_slice() {
            [arg] => constant(arg).and_then(|d| d.try_cast::<rhai::Map>()),
            _ => None,
        }
        .ok_or_else(|| problem(file, position, SHAPE))?;
        let mut parameters = Vec::new();
        for (name, spec) in map {
            let fields = spec.try_cast::<rhai::Map>().ok_or_else(|| {
                problem(
                    file,
                    position,
                    &format!("parameter `{name}`: expected #{{ doc: \"…\", value: … }}"),
                )
            })?;
            let mut parameter = Parameter {
                name: name.to_string(),
                doc: String::new(),
                default: None,
                required: false,
            };
            for (field, value) in fields {
                let bad =
                    |what: &str| problem(file, position, &format!("parameter `{name}`: {what}"));
                match field.as_str() {
                    "doc" => {
                        parameter.doc = value
                            .into_immutable_string()
                            .map_err(|_| bad("`doc` must be a string"))?
                            .to_string();
                    }
                    "required" => {
                        parameter.required = value
                            .as_bool()
                            .map_err(|_| bad("`required` must be true or false"))?;
                    }
                    "value" => {
                        parameter.default = Some(literal(&value).ok_or_else(|| {
                            bad("`value` (the default) must be a string, an integer or a boolean")
                        })?);
                    }
                    other => {
                        return Err(bad(&format!(
                            "`{other}` is not one of doc (a string), value (the default), required (a boolean)"
                        )));
                    }
                }
            }
            if parameter.required && parameter.default.is_some() {
                return Err(problem(
                    file,
                    position,
                    &format!("parameter `{name}` is required and has a value: choose one"),
                ));
            }
            parameters.push(parameter);
        }
        found = Some(parameters);
    }
    Ok(found)
}

/// The value of a constant expression (the optimizer may already have folded a literal map
/// into one constant), or `None` when it is not constant.
fn constant(expr: &Expr) -> Option<rhai::Dynamic> {
    match expr {
        Expr::DynamicConstant(value, _) => Some((**value).clone()),
        Expr::StringConstant(text, _) => Some(text.clone().into()),
        Expr::IntegerConstant(n, _) => Some((*n).into()),
        Expr::BoolConstant(b, _) => Some((*b).into()),
        Expr::Map(map, _) => {
            let mut out = rhai::Map::new();
            for (name, value) in &map.0 {
                out.insert(name.name.clone().into(), constant(value)?);
            }
            Some(out.into())
        }
        _ => None,
    }
}

fn literal(value: &rhai::Dynamic) -> Option<serde_json::Value> {
    if let Ok(b) = value.as_bool() {
        Some(b.into())
    } else if let Ok(n) = value.as_int() {
        Some(n.into())
    } else {
        value
            .clone()
            .into_immutable_string()
            .ok()
            .map(|s| s.to_string().into())
    }
}

fn problem(file: &str, position: Position, message: &str) -> Box<Diagnostic> {
    Box::new(Diagnostic {
        kind: Kind::Input,
        message: message.to_owned(),
        file: Some(file.to_owned()),
        line: position.line(),
        column: position.position(),
        trace: Vec::new(),
        help: Some(format!(
            "declare parameters once, at the top level: {DECLARE}(#{{ version: #{{ doc: \"…\", required: true }}, runtime: #{{ doc: \"…\", value: \"\" }} }});"
        )),
        failure: None,
    })
}

/// Whether the playbook's top level reads the variable `node` (its functions cannot see it,
/// and a closure that captures it is handed `node` at the top level) without ever asking
/// whether it is `()`: a playbook that compares `node` with `()` runs either way.
fn uses_node(ast: &AST) -> bool {
    let is_node = |e: &Expr| matches!(e, Expr::Variable(v, _, _) if v.1.as_str() == "node");
    let mut used = false;
    let mut asks = false;
    ast.clone_statements_only().walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(e)) if is_node(e) => used = true,
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)))
                if call.op_token.is_some()
                    && matches!(call.name.as_str(), "==" | "!=")
                    && call.args.iter().any(is_node)
                    && call.args.iter().any(|a| matches!(a, Expr::Unit(_))) =>
            {
                asks = true;
            }
            _ => {}
        }
        true
    });
    used && !asks
}

/// A function of one module: its key in the call graph.
type Site = (String, String);

/// A function body's span: its name, first and last (line, column).
type Body = (String, (usize, usize), (usize, usize));

/// Whether a call to one of `targets` is reachable from the playbook's top level: through its
/// own functions, the functions of the modules it imports (transitively), and every closure
/// it defines (a closure handed to `node::maintain` runs inside it).
fn reaches(engine: &Engine, resolver: &Resolver, ast: &AST, targets: &[&str]) -> bool {
    let mut graph: HashMap<Site, BTreeSet<Site>> = HashMap::new();
    let mut hits: HashSet<Site> = HashSet::new();
    let mut modules: HashMap<String, AST> = HashMap::new();
    modules.insert(String::new(), ast.clone());
    let mut pending = vec![String::new()];
    let mut seen_modules = HashSet::from([String::new()]);
    while let Some(module) = pending.pop() {
        let Some(ast) = modules.get(&module).cloned() else {
            continue;
        };
        let aliases = imports(&ast, resolver);
        for path in aliases.values() {
            if seen_modules.insert(path.clone())
                && let Some((_, text)) = resolver.locate(path)
                && let Ok(module_ast) = engine.compile(&text)
            {
                modules.insert(path.clone(), module_ast);
                pending.push(path.clone());
            }
        }
        let local: HashSet<String> = ast.iter_functions().map(|f| f.name.to_owned()).collect();
        // Each call belongs to the named function whose body holds its position; calls in the
        // top level and in closures belong to the top level, since a closure runs wherever it
        // is handed (`node::maintain(node, (), |node| …)`).
        let bodies: Vec<Body> = ast
            .iter_fn_def()
            .filter(|def| !def.name.starts_with("anon$"))
            .filter_map(|def| {
                let at = |p: Position| Some((p.line()?, p.position().unwrap_or(0)));
                Some((
                    def.name.to_string(),
                    at(def.body.start_position())?,
                    at(def.body.end_position())?,
                ))
            })
            .collect();
        let owner = |position: Position| -> String {
            let Some(line) = position.line() else {
                return String::new();
            };
            let at = (line, position.position().unwrap_or(0));
            bodies
                .iter()
                .find(|(_, start, end)| *start <= at && at <= *end)
                .map(|(name, ..)| name.clone())
                .unwrap_or_default()
        };
        ast.walk(&mut |path: &[ASTNode]| {
            let (call, position) = match path.last() {
                Some(
                    ASTNode::Expr(Expr::FnCall(call, position))
                    | ASTNode::Stmt(Stmt::FnCall(call, position)),
                ) => (call, *position),
                _ => return true,
            };
            let site = (module.clone(), owner(position));
            let name = call.name.to_string();
            if call.namespace.is_empty() {
                if targets.contains(&name.as_str()) {
                    hits.insert(site);
                } else if local.contains(&name) {
                    graph
                        .entry(site)
                        .or_default()
                        .insert((module.clone(), name));
                }
            } else if let Some(target) = aliases.get(call.namespace.root()) {
                graph
                    .entry(site)
                    .or_default()
                    .insert((target.clone(), name));
            }
            true
        });
    }
    // Walk from the playbook's top level.
    let start: Site = (String::new(), String::new());
    let mut stack = vec![start.clone()];
    let mut visited = HashSet::from([start]);
    while let Some(site) = stack.pop() {
        if hits.contains(&site) {
            return true;
        }
        for next in graph.get(&site).into_iter().flatten() {
            if visited.insert(next.clone()) {
                stack.push(next.clone());
                // A module's top level runs when it is imported.
                let module_top = (next.0.clone(), String::new());
                if visited.insert(module_top.clone()) {
                    stack.push(module_top);
                }
            }
        }
    }
    false
}

/// `import "path" as alias;` of one module: alias → path, for the paths the resolver finds.
fn imports(ast: &AST, resolver: &Resolver) -> BTreeMap<String, String> {
    let mut aliases = BTreeMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(import, _))) = path.last()
            && let Expr::StringConstant(module, _) = &import.0
            && resolver.locate(module).is_some()
        {
            aliases.insert(import.1.name.to_string(), module.to_string());
        }
        true
    });
    aliases
}

/// The shape of the playbook at `path`, for `krun describe`.
pub fn describe(
    engine: &Engine,
    resolver: &Resolver,
    path: &Path,
) -> Result<Shape, Box<Diagnostic>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Box::new(Diagnostic {
            kind: Kind::Input,
            message: format!("cannot read playbook {file}: {e}"),
            file: Some(file.clone()),
            line: None,
            column: None,
            trace: Vec::new(),
            help: None,
            failure: None,
        })
    })?;
    let ast = super::engine::compile(engine, path, &text)
        .map_err(|e| Box::new(Diagnostic::from_parse(&e, &file)))?;
    Shape::read(engine, resolver, &file, &text, &ast)
}
