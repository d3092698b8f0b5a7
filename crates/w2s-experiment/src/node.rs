//! A node of the experiment graph: one trained model and its predictions, as the store keeps it.
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
    /// Class-1 probability for every row of the subset, in row order.
    pub probs: Vec<f32>,
    /// Training seconds.
    pub seconds: f64,
}

impl TrainedNode {
    /// Probabilities of `rows`.
    pub fn probs_of(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&r| self.probs[r] as f64).collect()
    }
}
