//! `kl`: KL(target ‖ student); the gradient of `xent`, another value.
use super::{soft_ce_rows, LossKind, LossSettings, StudentLoss};
use candle_core::D;
use candle_core::{Result, Tensor};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "kl",
    help: "KL(weak labels || student)",
    build,
};

#[derive(Debug)]
struct Kl;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Kl)
}

impl StudentLoss for Kl {
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        kl(logits, targets)
    }
}

/// Mean KL(target ‖ softmax(logits)), with 0·log 0 = 0.
pub fn kl(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logt = targets.clamp(1e-12, 1.0)?.log()?;
    let t_logt = (targets * logt)?.sum(D::Minus1)?;
    (t_logt + soft_ce_rows(logits, targets)?)?.mean_all()
}
