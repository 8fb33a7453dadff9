//! The Rhai engine krun runs playbooks in: a sandbox with limits, the primitives, and module
//! resolution (stdlib embedded in the binary, `--lib` dirs, `KRUN_PATH`, the playbook's dir).
//!
//! The optimizer stays at its default level: `OptimizationLevel::Full` would evaluate constant
//! calls at compile time, i.e. run side effects during `krun check`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::ModuleResolver;
use rhai::{AST, Engine, EvalAltResult, Module, Position, Scope};

type SharedModule = Arc<Module>;
use tokio_util::sync::CancellationToken;

use crate::local::LocalFiles;
use crate::primitives::RunContext;

/// Limits that turn a runaway playbook into a clear error instead of a hang.
pub const MAX_OPERATIONS: u64 = 50_000_000;
const MAX_CALL_LEVELS: usize = 64;
const MAX_STRING_SIZE: usize = 64 << 20;
const MAX_ARRAY_SIZE: usize = 1_000_000;
const MAX_MAP_SIZE: usize = 100_000;

/// The stdlib modules compiled into the binary: (import path, file name, source).
pub const STDLIB: &[(&str, &str, &str)] = &[
    (
        "versions",
        "stdlib/versions.rhai",
        include_str!("../../stdlib/versions.rhai"),
    ),
    (
        "guards",
        "stdlib/guards.rhai",
        include_str!("../../stdlib/guards.rhai"),
    ),
    (
        "node",
        "stdlib/node.rhai",
        include_str!("../../stdlib/node.rhai"),
    ),
    (
        "kubeadm",
        "stdlib/kubeadm.rhai",
        include_str!("../../stdlib/kubeadm.rhai"),
    ),
    (
        "runtime",
        "stdlib/runtime.rhai",
        include_str!("../../stdlib/runtime.rhai"),
    ),
    (
        "crio",
        "stdlib/crio.rhai",
        include_str!("../../stdlib/crio.rhai"),
    ),
    ("os", "stdlib/os.rhai", include_str!("../../stdlib/os.rhai")),
    (
        "addons",
        "stdlib/addons.rhai",
        include_str!("../../stdlib/addons.rhai"),
    ),
];

/// Where `import` looks for modules, in order, and what else on the operator's machine a
/// playbook may read (`--allow-local`).
#[derive(Debug, Clone, Default)]
pub struct ModulePath {
    pub dirs: Vec<PathBuf>,
    pub allow: Vec<PathBuf>,
    /// The repository's locked libraries: `import "teamlib/drain"` resolves through them.
    pub libraries: Option<Arc<crate::library::Libraries>>,
}

impl ModulePath {
    /// `--lib` dirs, then `KRUN_PATH`, then the playbook's own directory.
    pub fn new(libs: &[PathBuf], playbook: &Path) -> Self {
        let mut dirs = libs.to_vec();
        if let Some(path) = std::env::var_os("KRUN_PATH") {
            dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
        }
        dirs.push(
            playbook
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        );
        Self {
            dirs,
            allow: Vec::new(),
            libraries: None,
        }
    }

    /// With the `--allow-local` paths.
    pub fn allowing(mut self, allow: &[PathBuf]) -> Self {
        self.allow = allow.to_vec();
        self
    }

    /// The local files a playbook on this path may read (see [`LocalFiles`]).
    pub fn local_files(&self) -> LocalFiles {
        LocalFiles::new(&self.dirs, &self.allow)
    }

    pub fn with_libraries(mut self, libraries: Option<Arc<crate::library::Libraries>>) -> Self {
        self.libraries = libraries;
        self
    }
}

/// Source text of a module or playbook, for diagnostics.
pub fn source_text(file: &str) -> Option<String> {
    STDLIB
        .iter()
        .find(|(_, name, _)| *name == file)
        .map(|(_, _, text)| (*text).to_owned())
        .or_else(|| std::fs::read_to_string(file).ok())
}

/// Resolves `import "x"` against the stdlib and then the module path; each module is compiled
/// once per engine and named by its real file path in errors.
pub struct Resolver {
    path: ModulePath,
    local: LocalFiles,
    cache: Mutex<HashMap<String, SharedModule>>,
}

impl Resolver {
    pub fn new(path: ModulePath) -> Self {
        Self {
            local: path.local_files(),
            path,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn file_name(import: &str) -> String {
        if import.ends_with(".rhai") {
            import.to_owned()
        } else {
            format!("{import}.rhai")
        }
    }

    /// Why `import` is not searched for: an absolute path or a `..` leading out of the search
    /// directories, unless `--allow-local` allows it.
    pub fn refused(&self, import: &str) -> Option<String> {
        let file = Self::file_name(import);
        let mut first = None;
        for dir in &self.path.dirs {
            match self.local.resolve(dir, &file) {
                Ok(_) => return None,
                Err(why) => {
                    first.get_or_insert(why);
                }
            }
        }
        first
    }

    /// Finds a module's file name and source without compiling it.
    pub fn locate(&self, import: &str) -> Option<(String, String)> {
        if let Some((_, name, text)) = STDLIB.iter().find(|(path, _, _)| *path == import) {
            return Some(((*name).to_owned(), (*text).to_owned()));
        }
        if let Some(file) = self.path.libraries.as_ref().and_then(|l| l.locate(import)) {
            let text = std::fs::read_to_string(&file).ok()?;
            return Some((file.display().to_string(), text));
        }
        let file = Self::file_name(import);
        self.path
            .dirs
            .iter()
            .filter(|dir| self.local.resolve(dir, &file).is_ok())
            .map(|dir| dir.join(&file))
            .find(|p| p.is_file())
            .and_then(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                Some((p.display().to_string(), text))
            })
    }

    /// The library an import's first segment names, as it reads in messages.
    pub fn library_of(&self, import: &str) -> Option<String> {
        self.path
            .libraries
            .as_ref()
            .and_then(|l| l.describe(import))
    }

    fn searched(&self, import: &str) -> String {
        if let Some(library) = self.library_of(import) {
            return library;
        }
        let mut places = vec!["the stdlib".to_owned()];
        places.extend(self.path.dirs.iter().map(|d| d.display().to_string()));
        places.join(", ")
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        position: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some(module) = self.cache.lock().expect("module cache").get(path) {
            return Ok(module.clone());
        }
        let Some((file, text)) = self.locate(path) else {
            if let Some(why) = self.refused(path) {
                return Err(
                    EvalAltResult::ErrorModuleNotFound(format!("{path}: {why}"), position).into(),
                );
            }
            return Err(EvalAltResult::ErrorModuleNotFound(
                format!("{path} (searched {})", self.searched(path)),
                position,
            )
            .into());
        };
        let mut ast = engine.compile(&text).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                file.clone(),
                e.into(),
                position,
            ))
        })?;
        ast.set_source(file.as_str());
        let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(file.clone(), e, position)))?;
        module.set_id(file.as_str());
        let module: SharedModule = module.into();
        self.cache
            .lock()
            .expect("module cache")
            .insert(path.to_owned(), module.clone());
        Ok(module)
    }
}

/// A sandboxed engine without primitives (for compiling and listing metadata).
pub fn sandbox(path: ModulePath, cancel: Option<CancellationToken>) -> Engine {
    // The standard library is built once and shared by every engine: a run with `--batch 50`
    // builds 50 engines, and each private copy of the packages cost about 1 MB.
    static STANDARD: std::sync::OnceLock<rhai::Shared<Module>> = std::sync::OnceLock::new();
    let standard = STANDARD.get_or_init(|| {
        use rhai::packages::Package;
        rhai::packages::StandardPackage::new().as_shared_module()
    });
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard.clone());
    engine
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(128, 64)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_modules(256)
        .set_module_resolver(Resolver::new(path));
    engine.disable_symbol("eval");
    engine.on_print(|text| tracing::info!(target: "krun::playbook", "{text}"));
    engine.on_debug(|text, source, position| {
        tracing::debug!(target: "krun::playbook", "{}:{position}: {text}", source.unwrap_or("playbook"));
    });
    if let Some(cancel) = cancel {
        engine.on_progress(move |_| cancel.is_cancelled().then(|| "interrupted".into()));
    }
    engine
}

/// The engine for one run: the sandbox plus every primitive bound to the run.
pub fn for_run(path: ModulePath, context: &Arc<RunContext>) -> Engine {
    let cancel = context.host.effects.cancel_token().clone();
    let mut engine = sandbox(path, Some(cancel));
    crate::primitives::register_all(&mut engine, context);
    engine
}

/// The scope a playbook starts with: `node`, the run's node (unit for cluster-level runs).
pub fn initial_scope(node: Option<crate::primitives::node::Node>) -> Scope<'static> {
    let mut scope = Scope::new();
    match node {
        Some(node) => scope.push_constant("node", node),
        None => scope.push_constant("node", ()),
    };
    scope
}

/// Compiles a playbook file with strict variables; the AST is named by the file's path.
pub fn compile(engine: &Engine, file: &Path, text: &str) -> Result<AST, rhai::ParseError> {
    // `node` must not be a constant here: the optimizer would fold its compile-time value in.
    let mut scope = Scope::new();
    scope.push("node", ());
    let mut ast = engine.compile_with_scope(&scope, text)?;
    ast.set_source(file.display().to_string());
    Ok(ast)
}
