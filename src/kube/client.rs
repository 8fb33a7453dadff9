//! Connecting to a cluster the way kubectl users expect: `--kubeconfig` (that file only),
//! else the files in `KUBECONFIG` (merged, missing ones ignored), else `~/.kube/config`, else
//! the in-cluster service account; `--context` picks a context from whichever was loaded.
//!
//! kube's client retries 429/503/504 on its own (up to 15 times with backoff), which would
//! hide a PodDisruptionBudget refusal for minutes; it is turned off here, and the eviction
//! loop owns retrying with the refusal in view.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::error::{KubeError, KubeResult};

/// Where the client configuration comes from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--kubeconfig`: this file and no other.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: a context of the loaded kubeconfig instead of its current-context.
    pub context: Option<String>,
}

/// The parts of the environment the choice depends on, so it can be tested.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The value of `KUBECONFIG`.
    pub kubeconfig_var: Option<OsString>,
    /// `$HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// Whether `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` are set.
    pub in_cluster: bool,
}

impl Environment {
    pub fn current() -> Self {
        Self {
            kubeconfig_var: std::env::var_os("KUBECONFIG"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                && std::env::var_os("KUBERNETES_SERVICE_PORT").is_some(),
        }
    }
}

/// The chosen source of configuration.
#[derive(Debug)]
pub enum Source {
    Kubeconfig {
        kubeconfig: Box<Kubeconfig>,
        /// The files it was read from, for messages.
        files: Vec<PathBuf>,
    },
    InCluster,
}

/// Picks the configuration source as kubectl does.
pub fn choose_source(options: &ClientOptions, env: &Environment) -> KubeResult<Source> {
    if let Some(path) = &options.kubeconfig {
        let kubeconfig = read(path)?;
        return Ok(Source::Kubeconfig {
            kubeconfig: Box::new(kubeconfig),
            files: vec![path.clone()],
        });
    }
    let listed: Vec<PathBuf> = env
        .kubeconfig_var
        .as_ref()
        .map(|value| {
            std::env::split_paths(value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let candidates = if listed.is_empty() {
        env.home
            .iter()
            .map(|home| home.join(".kube").join("config"))
            .collect()
    } else {
        listed
    };
    let mut merged: Option<Kubeconfig> = None;
    let mut files = Vec::new();
    for path in candidates.iter().filter(|p| p.exists()) {
        let next = read(path)?;
        merged = Some(match merged {
            None => next,
            Some(so_far) => so_far.merge(next).map_err(|e| KubeError::Config {
                source_desc: path.display().to_string(),
                message: e.to_string(),
            })?,
        });
        files.push(path.clone());
    }
    if let Some(kubeconfig) = merged {
        return Ok(Source::Kubeconfig {
            kubeconfig: Box::new(kubeconfig),
            files,
        });
    }
    if env.in_cluster && options.context.is_none() {
        return Ok(Source::InCluster);
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(KubeError::Config {
        source_desc: "none found".to_owned(),
        message: format!(
            "no kubeconfig at {} and not running inside a cluster; pass --kubeconfig or set KUBECONFIG",
            if tried.is_empty() {
                "~/.kube/config (HOME is not set)".to_owned()
            } else {
                tried.join(", ")
            }
        ),
    })
}

/// True when no cluster is configured at all: no `--kubeconfig`, none of the files kubectl
/// would read exists, and not running inside a cluster. A run then talks to nodes only.
pub fn nothing_configured(options: &ClientOptions, env: &Environment) -> bool {
    if options.kubeconfig.is_some() || env.in_cluster {
        return false;
    }
    let listed: Vec<PathBuf> = env
        .kubeconfig_var
        .as_ref()
        .map(|value| std::env::split_paths(value).collect())
        .unwrap_or_default();
    let listed: Vec<PathBuf> = listed
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if listed.is_empty() {
        env.home
            .as_ref()
            .is_none_or(|home| !home.join(".kube").join("config").exists())
    } else {
        listed.iter().all(|p| !p.exists())
    }
}

fn read(path: &Path) -> KubeResult<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|e| KubeError::Config {
        source_desc: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Builds the client configuration, with kube's automatic retries turned off.
pub async fn load_config(
    options: &ClientOptions,
    env: &Environment,
) -> KubeResult<(kube::Config, String)> {
    let (mut config, described) = match choose_source(options, env)? {
        Source::InCluster => {
            let config = kube::Config::incluster().map_err(|e| KubeError::Config {
                source_desc: "in-cluster service account".to_owned(),
                message: e.to_string(),
            })?;
            (config, "in-cluster service account".to_owned())
        }
        Source::Kubeconfig { kubeconfig, files } => {
            let files = files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            let contexts: Vec<String> =
                kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
            let kube_options = KubeConfigOptions {
                context: options.context.clone(),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(*kubeconfig, &kube_options)
                .await
                .map_err(|e| KubeError::Config {
                    source_desc: files.clone(),
                    message: explain(&e, &contexts),
                })?;
            let context = options
                .context
                .clone()
                .unwrap_or_else(|| "current-context".to_owned());
            (config, format!("{files} ({context})"))
        }
    };
    config.default_retry = false;
    Ok((config, described))
}

fn explain(error: &KubeconfigError, contexts: &[String]) -> String {
    match error {
        KubeconfigError::LoadContext(name) => format!(
            "context {name:?} not found; the kubeconfig has: {}",
            if contexts.is_empty() {
                "no contexts".to_owned()
            } else {
                contexts.join(", ")
            }
        ),
        KubeconfigError::CurrentContextNotSet => {
            "no current-context is set; pass --context".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(dir: &Path, file: &str, contexts: &[(&str, &str)], current: &str) -> PathBuf {
        let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (_, server) in contexts {
            text.push_str(&format!(
                "- name: {server}\n  cluster:\n    server: http://{server}:6443\n"
            ));
        }
        text.push_str("users:\n- name: u\n  user: {}\ncontexts:\n");
        for (name, server) in contexts {
            text.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {server}\n    user: u\n"
            ));
        }
        if !current.is_empty() {
            text.push_str(&format!("current-context: {current}\n"));
        }
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn server(options: &ClientOptions, env: &Environment) -> KubeResult<String> {
        runtime()
            .block_on(load_config(options, env))
            .map(|(config, _)| {
                assert!(!config.default_retry, "kube's own retries must be off");
                config.cluster_url.to_string()
            })
    }

    #[test]
    fn explicit_kubeconfig_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let a = kubeconfig(dir.path(), "a", &[("a", "alpha")], "a");
        let b = kubeconfig(dir.path(), "b", &[("b", "beta")], "b");
        let env = Environment {
            kubeconfig_var: Some(b.into_os_string()),
            ..Default::default()
        };
        let options = ClientOptions {
            kubeconfig: Some(a),
            context: None,
        };
        assert_eq!(server(&options, &env).unwrap(), "http://alpha:6443/");
    }

    #[test]
    fn kubeconfig_variable_merges_files_and_ignores_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = kubeconfig(dir.path(), "a", &[("a", "alpha")], "a");
        let b = kubeconfig(dir.path(), "b", &[("b", "beta")], "b");
        let missing = dir.path().join("missing");
        let var = std::env::join_paths([missing, a, b]).unwrap();
        let env = Environment {
            kubeconfig_var: Some(var),
            ..Default::default()
        };
        // The first file to set current-context wins.
        assert_eq!(
            server(&ClientOptions::default(), &env).unwrap(),
            "http://alpha:6443/"
        );
        // A context from the second file can be chosen.
        let options = ClientOptions {
            kubeconfig: None,
            context: Some("b".to_owned()),
        };
        assert_eq!(server(&options, &env).unwrap(), "http://beta:6443/");
    }

    #[test]
    fn default_path_is_under_home() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".kube")).unwrap();
        kubeconfig(&home.path().join(".kube"), "config", &[("h", "home")], "h");
        let env = Environment {
            home: Some(home.path().to_owned()),
            in_cluster: true,
            ..Default::default()
        };
        assert_eq!(
            server(&ClientOptions::default(), &env).unwrap(),
            "http://home:6443/"
        );
    }

    #[test]
    fn in_cluster_only_without_any_kubeconfig() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment {
            home: Some(home.path().to_owned()),
            in_cluster: true,
            ..Default::default()
        };
        assert!(matches!(
            choose_source(&ClientOptions::default(), &env),
            Ok(Source::InCluster)
        ));
    }

    #[test]
    fn unknown_context_names_the_ones_available() {
        let dir = tempfile::tempdir().unwrap();
        let a = kubeconfig(dir.path(), "a", &[("prod", "p"), ("lab", "l")], "lab");
        let options = ClientOptions {
            kubeconfig: Some(a),
            context: Some("staging".to_owned()),
        };
        let error = server(&options, &Environment::default()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("context \"staging\" not found; the kubeconfig has: prod, lab"),
            "{message}"
        );
        assert_eq!(error.kind(), crate::error::Kind::Input);
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment {
            home: Some(home.path().to_owned()),
            ..Default::default()
        };
        let message = server(&ClientOptions::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(message.contains(".kube/config"), "{message}");
        assert!(
            message.contains("not running inside a cluster"),
            "{message}"
        );
    }

    #[test]
    fn an_explicit_file_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let options = ClientOptions {
            kubeconfig: Some(dir.path().join("nope")),
            context: None,
        };
        let message = server(&options, &Environment::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("nope"), "{message}");
    }
}
