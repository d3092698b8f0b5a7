//! What a grid of runs needs before anything is trained: the inputs that cannot be had, and the
//! plan of features and nodes a dry run finds ([`crate::Runner::plan`]).
use crate::config::RunSpec;
use serde::Serialize;
use std::collections::BTreeMap;

/// What kind of input a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A built-in dataset name or a user file.
    Dataset,
    /// A built-in model name, `hf:ORG/NAME`, a model folder or a `.gguf` file.
    Model,
}

impl InputKind {
    /// "dataset" or "model".
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Dataset => "dataset",
            InputKind::Model => "model",
        }
    }
}

/// A dataset or model that cannot be had, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// Dataset or model.
    pub kind: InputKind,
    /// As the runs name it.
    pub name: String,
    /// The loading error, which says what to do where it can.
    pub reason: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind.name(), self.name, self.reason)
    }
}

/// One message naming every missing input.
pub fn describe_missing(missing: &[Missing]) -> String {
    let mut text = format!(
        "{} input{} cannot be had, so nothing was trained:",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" }
    );
    for m in missing {
        text.push_str(&format!("\n  - {m}"));
    }
    text
}

/// Splits `specs` into the runs whose every input can be had and those that read a missing one.
pub fn without_missing(specs: &[RunSpec], missing: &[Missing]) -> (Vec<RunSpec>, Vec<RunSpec>) {
    let is_missing =
        |kind: InputKind, name: &str| missing.iter().any(|m| m.kind == kind && m.name == name);
    specs.iter().cloned().partition(|s| {
        !is_missing(InputKind::Dataset, &s.dataset)
            && !s
                .models()
                .into_iter()
                .any(|m| is_missing(InputKind::Model, m))
    })
}

/// Pooled features a grid reads, and whether they are cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFeatures {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Already in the feature cache.
    pub cached: bool,
}

/// One node of the graph (a trained model, or a zero-shot pass) a grid needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedNode {
    /// Its store key. A student whose teacher is not stored yet gets a provisional key: its label
    /// steps may drop rows by the teacher's predictions, which are not known before training.
    pub key: String,
    /// "weak", "ceiling", "student" or "zero-shot".
    pub role: String,
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Split seed.
    pub seed: u64,
    /// Already in the store.
    pub stored: bool,
}

/// Everything a grid would compute, found without training anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Runs in the grid.
    pub runs: usize,
    /// Feature sets it reads, each once.
    pub features: Vec<PlannedFeatures>,
    /// Nodes it needs, each once.
    pub nodes: Vec<PlannedNode>,
}

impl Plan {
    /// Per role: (nodes to train, nodes stored), roles in the order the graph reaches them.
    pub fn nodes_by_role(&self) -> Vec<(String, usize, usize)> {
        let order = ["weak", "ceiling", "student", "zero-shot"];
        let mut counts: BTreeMap<usize, (String, usize, usize)> = BTreeMap::new();
        for n in &self.nodes {
            let rank = order
                .iter()
                .position(|r| *r == n.role)
                .unwrap_or(order.len());
            let e = counts.entry(rank).or_insert_with(|| (n.role.clone(), 0, 0));
            if n.stored {
                e.2 += 1;
            } else {
                e.1 += 1;
            }
        }
        counts.into_values().collect()
    }

    /// Nodes to train.
    pub fn to_train(&self) -> usize {
        self.nodes.iter().filter(|n| !n.stored).count()
    }

    /// Feature sets to compute.
    pub fn to_embed(&self) -> usize {
        self.features.iter().filter(|f| !f.cached).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dataset: &str, chain: &[&str]) -> RunSpec {
        RunSpec {
            dataset: dataset.into(),
            chain: chain.iter().map(|s| s.to_string()).collect(),
            method: crate::Method::parse("xent").unwrap(),
            seed: 0,
        }
    }

    #[test]
    fn runs_reading_a_missing_input_are_set_apart() {
        let specs = [
            spec("tweets", &["a", "b"]),
            spec("gone", &["a", "b"]),
            spec("tweets", &["a+lost", "b"]),
            spec("tweets", &["a", "lost", "b"]),
        ];
        let missing = [
            Missing {
                kind: InputKind::Dataset,
                name: "gone".into(),
                reason: "unknown".into(),
            },
            Missing {
                kind: InputKind::Model,
                name: "lost".into(),
                reason: "unknown".into(),
            },
        ];
        let (kept, skipped) = without_missing(&specs, &missing);
        assert_eq!(kept, specs[..1]);
        assert_eq!(skipped, specs[1..]);
        let text = describe_missing(&missing);
        assert_eq!(
            text,
            "2 inputs cannot be had, so nothing was trained:\n  - dataset gone: unknown\n  - model lost: unknown"
        );
    }

    #[test]
    fn nodes_are_counted_by_role_in_graph_order() {
        let node = |role: &str, stored| PlannedNode {
            key: String::new(),
            role: role.into(),
            model: "m".into(),
            dataset: "d".into(),
            seed: 0,
            stored,
        };
        let plan = Plan {
            runs: 1,
            features: vec![],
            nodes: vec![
                node("student", false),
                node("weak", true),
                node("ceiling", false),
                node("student", true),
                node("student", false),
            ],
        };
        assert_eq!(
            plan.nodes_by_role(),
            vec![
                ("weak".to_string(), 0, 1),
                ("ceiling".to_string(), 1, 0),
                ("student".to_string(), 2, 1)
            ]
        );
        assert_eq!(plan.to_train(), 3);
    }
}
