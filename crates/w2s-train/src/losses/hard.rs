//! `hard`: cross-entropy on the argmax of the targets.
use super::{LossKind, LossSettings, StudentLoss};
use candle_core::{Result, Tensor};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "hard",
    help: "cross-entropy on the argmax of the weak labels",
    build,
};

#[derive(Debug)]
struct Hard;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Hard)
}

impl StudentLoss for Hard {
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        super::soft_ce(logits, &super::one_hot_argmax(targets)?)
    }
}
