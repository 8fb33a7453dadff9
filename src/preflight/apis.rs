//! API versions removed by the target release: objects the cluster serves only in such a
//! version, objects last applied in one (`kubectl.kubernetes.io/last-applied-configuration`),
//! and manifest files that use one. The table is data (`data/removed-apis.toml`), taken from
//! the Kubernetes deprecated-API migration guide.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{ClusterView, Finding, PreflightOptions, Severity, Version};
use crate::kube::survey::{ApiQuestion, Survey, last_applied_version};

const TABLE: &str = include_str!("../../data/removed-apis.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Removal {
    pub release: String,
    pub api_version: String,
    pub kinds: Vec<String>,
    pub replacement: String,
}

#[derive(Debug, Deserialize)]
struct Table {
    source: String,
    removed: Vec<Removal>,
}

/// The removals table and where it comes from.
pub fn table() -> (String, Vec<Removal>) {
    let table: Table = toml::from_str(TABLE).expect("data/removed-apis.toml is valid");
    (table.source, table.removed)
}

/// The removals that matter for an upgrade from `current` to `target`: removed after the
/// current release and at or before the target.
pub fn relevant(current: Option<Version>, target: Version) -> Vec<Removal> {
    let (_, removed) = table();
    removed
        .into_iter()
        .filter(|r| {
            Version::parse(&r.release).is_some_and(|release| {
                release.minor_line() <= target.minor_line()
                    && current.is_none_or(|c| release.minor_line() > c.minor_line())
            })
        })
        .collect()
}

/// The removal of `api_version`/`kind`, if the list has it.
fn removal_of<'a>(removals: &'a [Removal], api_version: &str, kind: &str) -> Option<&'a Removal> {
    removals
        .iter()
        .find(|r| r.api_version == api_version && r.kinds.iter().any(|k| k == kind))
}

/// The target to judge against: `--target`, else the next minor release (as a warning).
fn judged(view: &ClusterView, options: &PreflightOptions) -> Option<(Version, Severity)> {
    match (options.target, view.current_version()) {
        (Some(target), _) => Some((target, Severity::Block)),
        (None, Some(current)) => Some((
            Version::new(current.major, current.minor + 1, 0),
            Severity::Warn,
        )),
        (None, None) => None,
    }
}

fn finding(
    removal: &Removal,
    severity: Severity,
    target: Version,
    kind: &str,
    namespace: &str,
    name: &str,
    place: &str,
) -> Finding {
    let object = if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    };
    let fix = if removal.replacement.is_empty() {
        format!(
            "{} {kind} is removed in {} with no replacement: remove the object and its manifests",
            removal.api_version, removal.release
        )
    } else {
        format!(
            "rewrite it as {} {kind} (kubectl convert, or edit the manifest) and apply it again \
             before the upgrade",
            removal.replacement
        )
    };
    let key = format!("{}/{kind}/{namespace}/{name}", removal.api_version);
    Finding::new(
        "removed-api",
        &key,
        severity,
        object.clone(),
        format!(
            "{object} {place} {} {kind}, which Kubernetes {} no longer serves (target {target})",
            removal.api_version, removal.release
        ),
        fix,
    )
}

/// What the survey should read: every API version a release up to `target` removes (all of
/// them without a target: the judgement picks the next release once it knows the current one).
pub fn questions(target: Option<Version>) -> Vec<ApiQuestion> {
    let (_, removed) = table();
    removed
        .into_iter()
        .filter(|r| {
            target.is_none_or(|target| {
                Version::parse(&r.release)
                    .is_some_and(|release| release.minor_line() <= target.minor_line())
            })
        })
        .map(|r| ApiQuestion {
            api_version: r.api_version,
            kinds: r.kinds,
            replacement: r.replacement,
        })
        .collect()
}

/// Objects in the cluster that use a removed version.
pub fn served(survey: &Survey, options: &PreflightOptions) -> Vec<Finding> {
    let view = &survey.view;
    let Some((target, severity)) = judged(view, options) else {
        return Vec::new();
    };
    let removals = relevant(view.current_version(), target);
    let mut found = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for stored in &survey.stored {
        let Some(removal) = removal_of(&removals, &stored.api_version, &stored.kind) else {
            continue;
        };
        for object in &stored.objects {
            let uses = !stored.replaced
                || object.last_applied.as_deref() == Some(removal.api_version.as_str());
            if uses
                && seen.insert((
                    stored.kind.clone(),
                    object.namespace.clone(),
                    object.name.clone(),
                ))
            {
                let place = if stored.replaced {
                    "was last applied as"
                } else {
                    "is stored as"
                };
                found.push(finding(
                    removal,
                    severity,
                    target,
                    &stored.kind,
                    &object.namespace,
                    &object.name,
                    place,
                ));
            }
        }
    }
    // Workloads read anyway: their last-applied version.
    let applied = view
        .deployments
        .iter()
        .map(|o| ("Deployment", &o.metadata))
        .chain(
            view.statefulsets
                .iter()
                .map(|o| ("StatefulSet", &o.metadata)),
        )
        .chain(view.daemonsets.iter().map(|o| ("DaemonSet", &o.metadata)))
        .chain(
            view.pdbs
                .iter()
                .map(|o| ("PodDisruptionBudget", &o.metadata)),
        );
    for (kind, meta) in applied {
        let Some(version) = last_applied_version(meta) else {
            continue;
        };
        let Some(removal) = removal_of(&removals, &version, kind) else {
            continue;
        };
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        if seen.insert((kind.to_owned(), namespace.clone(), name.clone())) {
            found.push(finding(
                removal,
                severity,
                target,
                kind,
                &namespace,
                &name,
                "was last applied as",
            ));
        }
    }
    found
}

/// Manifest files (YAML or JSON, several documents each; directories are walked) that use a
/// removed version.
pub fn manifests(view: &ClusterView, options: &PreflightOptions) -> crate::Result<Vec<Finding>> {
    if options.manifests.is_empty() {
        return Ok(Vec::new());
    }
    let Some((target, severity)) = judged(view, options) else {
        return Ok(Vec::new());
    };
    let removals = relevant(view.current_version(), target);
    let mut files = Vec::new();
    for path in &options.manifests {
        collect(path, &mut files)?;
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| {
            crate::Error::input(format!("cannot read manifest {}: {e}", file.display()))
        })?;
        for (n, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let Ok(value) = serde_yaml_ng::Value::deserialize(document) else {
                continue;
            };
            let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
                continue;
            };
            let Some(removal) = removal_of(&removals, &api_version, &kind) else {
                continue;
            };
            let meta = value.get("metadata");
            let field = |key: &str| {
                meta.and_then(|m| m.get(key))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut f = finding(
                removal,
                severity,
                target,
                &kind,
                &field("namespace"),
                &field("name"),
                &format!("in {} (document {}) is written as", file.display(), n + 1),
            );
            f.id = format!("{}@{}#{}", f.id, file.display(), n + 1);
            found.push(f);
        }
    }
    Ok(found)
}

fn collect(path: &Path, files: &mut Vec<std::path::PathBuf>) -> crate::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| crate::Error::input(format!("cannot read {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let manifest = entry
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
            if entry.is_dir() || manifest {
                collect(&entry, files)?;
            }
        }
        Ok(())
    } else if path.is_file() {
        files.push(path.to_path_buf());
        Ok(())
    } else {
        Err(crate::Error::input(format!(
            "manifest path {} does not exist",
            path.display()
        )))
    }
}

/// Removals by release, for `krun preflight --help`-style listings and tests.
pub fn by_release() -> BTreeMap<String, Vec<Removal>> {
    let mut map: BTreeMap<String, Vec<Removal>> = BTreeMap::new();
    for removal in table().1 {
        map.entry(removal.release.clone())
            .or_default()
            .push(removal);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_loads_and_names_its_source() {
        let (source, removed) = table();
        assert!(source.contains("deprecation-guide"));
        assert!(removed.iter().any(|r| r.api_version == "policy/v1beta1"
            && r.kinds.contains(&"PodDisruptionBudget".to_owned())
            && r.release == "1.25"));
        assert!(by_release().contains_key("1.22"));
    }

    #[test]
    fn only_removals_between_current_and_target_count() {
        let v = |s| Version::parse(s).unwrap();
        let r = relevant(Some(v("1.20.4")), v("1.22.0"));
        assert!(r.iter().all(|r| r.release == "1.22"), "{r:?}");
        assert!(relevant(Some(v("1.25.0")), v("1.25.9")).is_empty());
        assert!(
            relevant(Some(v("1.24.0")), v("1.26.0"))
                .iter()
                .any(|r| r.api_version == "batch/v1beta1")
        );
    }
}
