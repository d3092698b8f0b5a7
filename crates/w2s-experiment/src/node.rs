//! A node of the experiment graph: one trained model and its predictions, as the store keeps it.
use crate::kclass::Probs;
use serde::{Deserialize, Serialize};
use w2s_train::{FitReport, Loss};

/// What a stage node holds: one trained model and its predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedNode {
    /// The node's key.
    pub key: String,
    /// Model name.
    pub model: String,
    /// "ground-truth" or the key of the node whose predictions were the labels.
    pub supervision: String,
    /// Loss it was trained with.
    pub loss: Loss,
    /// Epoch log and selected epoch.
    pub fit: FitReport,
    /// Binary: class-1 probability for every row of the subset, in row order. K > 2 classes:
    /// every class's probability, row-major `[rows, K]`.
    pub probs: Vec<f32>,
    /// K, the number of classes; left out of the stored form for binary nodes, which keeps
    /// those written before K classes readable and unchanged.
    #[serde(default = "two", skip_serializing_if = "is_two")]
    pub classes: usize,
    /// Training seconds.
    pub seconds: f64,
}

fn two() -> usize {
    2
}

fn is_two(k: &usize) -> bool {
    *k == 2
}

impl TrainedNode {
    /// Class-1 probabilities of `rows` (binary nodes).
    pub fn probs_of(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&r| self.probs[r] as f64).collect()
    }

    /// Every class's probabilities of `rows`, for binary nodes too.
    pub fn classes_of(&self, rows: &[usize]) -> Probs {
        if self.classes == 2 {
            return Probs::binary(&self.probs_of(rows));
        }
        let k = self.classes;
        Probs::new(
            k,
            rows.iter()
                .flat_map(|&r| self.probs[r * k..(r + 1) * k].iter().map(|&p| p as f64))
                .collect(),
        )
    }

    /// Rows the node holds predictions for.
    pub fn rows(&self) -> usize {
        if self.classes == 2 {
            self.probs.len()
        } else {
            self.probs.len() / self.classes.max(1)
        }
    }
}
