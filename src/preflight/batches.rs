//! Batch plans: `--batch N`, `--batch N%` and `--batch auto`.
//!
//! `auto` builds each batch greedily from the nodes left, one role and one zone at a time:
//! a node joins when, with it, no workload loses more pods than its budget allows now (all
//! but one ready replica when it has no budget) and no critical or ingress workload has pods
//! on two of the batch's nodes. The batch is then played in the forecast model; if it still
//! blocks (a replacement with nowhere to go), the last node added leaves until it does not.
//! Control-plane nodes go one at a time (etcd quorum), and so does a node whose drain cannot
//! finish now (a pod its budget will not let go): it would only hold the others up.

use std::collections::{BTreeMap, BTreeSet};

use super::ClusterView;
use super::forecast::{Forecast, ForecastOptions, Model};

/// How the nodes are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSpec {
    /// N nodes at a time.
    Fixed(usize),
    /// N% of the nodes at a time (rounded up, at least one).
    Percent(u32),
    /// Chosen from the cluster: as large as possible without any workload going below its
    /// budget.
    Auto,
}

impl BatchSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(BatchSpec::Auto);
        }
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(BatchSpec::Percent(p)),
                _ => Err(format!(
                    "--batch {text}: a percentage must be between 1% and 100%"
                )),
            };
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(BatchSpec::Fixed(n)),
            _ => Err(format!(
                "--batch {text}: expected a number of nodes (3), a percentage (10%) or auto"
            )),
        }
    }

    /// How many nodes run at once for `count` nodes (`auto`: decided per batch; 1 here).
    pub fn size(self, count: usize) -> usize {
        match self {
            BatchSpec::Fixed(n) => n,
            BatchSpec::Percent(p) => (count * p as usize).div_ceil(100).max(1),
            BatchSpec::Auto => 1,
        }
    }

    /// Fixed batches of `nodes`, in order.
    pub fn fixed(self, nodes: &[String]) -> Vec<Vec<String>> {
        nodes
            .chunks(self.size(nodes.len()).max(1))
            .map(<[String]>::to_vec)
            .collect()
    }
}

impl std::fmt::Display for BatchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSpec::Fixed(n) => write!(f, "{n}"),
            BatchSpec::Percent(p) => write!(f, "{p}%"),
            BatchSpec::Auto => f.write_str("auto"),
        }
    }
}

fn role(model: &Model, node: &str) -> &'static str {
    let has = |label: &str| model.node_label(node, label).is_some();
    if has("node-role.kubernetes.io/control-plane") || has("node-role.kubernetes.io/master") {
        "control-plane"
    } else if has("node-role.kubernetes.io/ingress") {
        "ingress"
    } else {
        "worker"
    }
}

fn zone(model: &Model, node: &str) -> String {
    model
        .node_label(node, "topology.kubernetes.io/zone")
        .or_else(|| model.node_label(node, "failure-domain.beta.kubernetes.io/zone"))
        .unwrap_or_default()
}

/// Why `node` may not join a batch that already disrupts `counts` and holds the critical
/// workloads `critical`; `None` when it may.
fn objection(
    model: &Model,
    node: &str,
    counts: &BTreeMap<usize, i32>,
    critical: &BTreeSet<usize>,
) -> Option<String> {
    for (w, c) in model.disrupted_by(node) {
        let label = model.workload_label(w);
        if model.workload_is_critical(w) && critical.contains(&w) {
            return Some(format!(
                "{node}: {label} is critical and already has a node in this batch"
            ));
        }
        let total = counts.get(&w).copied().unwrap_or(0) + c;
        let ready = model.workload_ready(w);
        if !model.workload_has_budget(w) && ready <= 1 {
            continue; // a single replica goes down whichever batch takes it
        }
        let allowance = model.allowance(w);
        if total > allowance {
            return Some(if model.workload_has_budget(w) {
                format!(
                    "{node}: {label} would lose {total} pod{}; its PodDisruptionBudget allows {allowance} now",
                    if total == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{node}: {label} would lose {total} of {ready} ready replicas (no PodDisruptionBudget)"
                )
            });
        }
    }
    None
}

/// One candidate batch: its nodes, why others were left out, its forecast, and the model
/// after it (`None` when it was played on the model itself).
struct Choice {
    batch: Vec<String>,
    left_out: Vec<String>,
    model: Option<Model>,
    result: super::forecast::BatchForecast,
}

/// The greedy batch from `order` (nodes of one role and zone), and why nodes were left out.
fn pick(model: &Model, role: &str, order: &[String]) -> (Vec<String>, Vec<String>) {
    let mut batch: Vec<String> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    if role == "control-plane" {
        batch.push(order[0].clone());
    } else if let Some(reason) = model.never_drains(&order[0]) {
        batch.push(order[0].clone());
        left_out.push(format!(
            "{} goes alone: its drain cannot finish ({reason})",
            order[0]
        ));
    } else {
        let mut counts: BTreeMap<usize, i32> = BTreeMap::new();
        let mut critical_taken: BTreeSet<usize> = BTreeSet::new();
        for node in order {
            if role == "ingress" && !batch.is_empty() {
                left_out.push(format!("{node}: one ingress node at a time"));
                continue;
            }
            let reason = objection(model, node, &counts, &critical_taken).or_else(|| {
                model
                    .never_drains(node)
                    .map(|why| format!("{node}: its drain cannot finish ({why})"))
            });
            match reason {
                Some(reason) if !batch.is_empty() => {
                    left_out.push(format!("left for later: {reason}"))
                }
                _ => {
                    for (w, c) in model.disrupted_by(node) {
                        *counts.entry(w).or_default() += c;
                        if model.workload_is_critical(w) {
                            critical_taken.insert(w);
                        }
                    }
                    batch.push(node.clone());
                }
            }
        }
    }
    (batch, left_out)
}

/// Plays `batch` in a copy of the model, shrinking it while it blocks; a batch of one that is
/// the only candidate (`decided`) is played on the model itself.
fn play(
    model: &mut Model,
    index: usize,
    mut batch: Vec<String>,
    mut left_out: Vec<String>,
    decided: bool,
) -> Choice {
    if decided && batch.len() == 1 {
        let result = model.run_batch(index, &batch);
        return Choice {
            batch,
            left_out,
            model: None,
            result,
        };
    }
    loop {
        let mut trial = model.clone();
        let result = trial.run_batch(index, &batch);
        if !result.blocked() || batch.len() == 1 {
            return Choice {
                batch,
                left_out,
                model: Some(trial),
                result,
            };
        }
        let dropped = batch.pop().expect("a batch of two or more");
        left_out.insert(
            0,
            format!(
                "left for later: {dropped}: with it the batch would block ({})",
                result.blocks.join("; ")
            ),
        );
    }
}

/// Chooses batches for `nodes` and forecasts them.
pub fn auto(
    view: &ClusterView,
    critical: &[String],
    nodes: &[String],
    options: &ForecastOptions,
) -> Forecast {
    let mut model = Model::new(view, critical, options.clone());
    let mut remaining: Vec<String> = nodes.to_vec();
    // Control planes first, then ingress nodes, then workers; zones together; the given
    // order within each.
    let rank = |r: &str| match r {
        "control-plane" => 0,
        "ingress" => 1,
        _ => 2,
    };
    remaining.sort_by_cached_key(|n| (rank(role(&model, n)), zone(&model, n)));
    let mut results = Vec::new();
    let mut upgraded: BTreeSet<String> = BTreeSet::new();
    while !remaining.is_empty() {
        let first = remaining[0].clone();
        let group = (role(&model, &first), zone(&model, &first));
        let candidates: Vec<String> = remaining
            .iter()
            .filter(|n| (role(&model, n), zone(&model, n)) == group)
            .cloned()
            .collect();
        let index = results.len() + 1;
        // Starting from each candidate in turn (a few whose drain can finish; control planes in
        // the given order), the first batch that neither blocks nor piles a workload's replicas
        // onto one node still to come; else the first tried.
        let mut starts: Vec<usize> = if group.0 == "control-plane" {
            Vec::new()
        } else {
            (0..candidates.len())
                .filter(|&i| model.never_drains(&candidates[i]).is_none())
                .take(8)
                .collect()
        };
        if starts.is_empty() {
            starts.push(0);
        }
        let mut chosen: Option<Choice> = None;
        for &attempt in &starts {
            let mut order = candidates.clone();
            order.rotate_left(attempt);
            let (batch, left_out) = pick(&model, group.0, &order);
            // Only the workloads with pods on the batch's nodes can newly pile up.
            let touched: BTreeSet<usize> = batch
                .iter()
                .flat_map(|n| model.disrupted_by(n).into_keys())
                .collect();
            let before = model.piles(|n| upgraded.contains(n), &touched);
            let choice = play(&mut model, index, batch, left_out, starts.len() == 1);
            let in_batch = |n: &str| choice.batch.iter().any(|b| b == n);
            let piled: Vec<usize> = choice
                .model
                .as_ref()
                .unwrap_or(&model)
                .piles(|n| upgraded.contains(n) || in_batch(n), &touched)
                .difference(&before)
                .copied()
                .collect();
            let clean = !choice.result.blocked() && piled.is_empty();
            let mut choice = choice;
            if !piled.is_empty() {
                choice.left_out.push(format!(
                    "(this batch leaves every replica of {} on one node)",
                    piled
                        .iter()
                        .map(|&w| model.workload_label(w).to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if clean {
                if attempt > 0 {
                    choice.left_out.push(format!(
                        "started from {} so that no workload's replicas pile onto one node",
                        order[0]
                    ));
                }
                chosen = Some(choice);
                break;
            }
            if chosen.is_none() {
                chosen = Some(choice);
            }
        }
        let Choice {
            batch,
            left_out,
            model: next,
            mut result,
        } = chosen.expect("at least one attempt");
        let place = format!(
            "{} node{}{}",
            group.0,
            if batch.len() == 1 { "" } else { "s" },
            if group.1.is_empty() {
                String::new()
            } else {
                format!(" of {}", group.1)
            }
        );
        let alone_blocked = batch.len() == 1 && result.blocked();
        let mut explanation = if group.0 == "control-plane" {
            "control-plane nodes go one at a time (etcd quorum)".to_owned()
        } else if alone_blocked {
            format!("1 {place}")
        } else {
            format!(
                "{} {place}: every workload stays within its PodDisruptionBudget (or keeps a ready replica), \
                 no critical workload loses two nodes at once",
                batch.len()
            )
        };
        if !left_out.is_empty() {
            let shown: Vec<&str> = left_out.iter().take(3).map(String::as_str).collect();
            explanation.push_str(&format!("; {}", shown.join("; ")));
            if left_out.len() > 3 {
                explanation.push_str(&format!(" (and {} more)", left_out.len() - 3));
            }
        }
        if result.hold_seconds > 0.0 && batch.len() == 1 && !alone_blocked {
            explanation.push_str("; this node alone already waits on a budget");
        }
        result.explanation = Some(explanation);
        if let Some(next) = next {
            model = next;
        }
        upgraded.extend(batch.iter().cloned());
        remaining.retain(|n| !batch.contains(n));
        results.push(result);
    }
    Forecast::finish("auto".to_owned(), results)
}

/// The batches of a fixed plan, or of `auto`, with their forecast.
pub fn plan(
    view: &ClusterView,
    critical: &[String],
    nodes: &[String],
    spec: BatchSpec,
    options: &ForecastOptions,
) -> Forecast {
    match spec {
        BatchSpec::Auto => auto(view, critical, nodes, options),
        fixed => super::forecast::forecast(
            view,
            critical,
            &fixed.to_string(),
            &fixed.fixed(nodes),
            options,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(BatchSpec::parse("3"), Ok(BatchSpec::Fixed(3)));
        assert_eq!(BatchSpec::parse("10%"), Ok(BatchSpec::Percent(10)));
        assert_eq!(BatchSpec::parse("AUTO"), Ok(BatchSpec::Auto));
        assert!(BatchSpec::parse("0").is_err());
        assert!(BatchSpec::parse("0%").is_err());
        assert!(BatchSpec::parse("lots").is_err());
        assert_eq!(BatchSpec::Percent(10).size(25), 3);
        assert_eq!(BatchSpec::Percent(20).size(3), 1);
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        assert_eq!(BatchSpec::Fixed(2).fixed(&nodes).len(), 3);
    }
}
