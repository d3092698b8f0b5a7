//! `product`: CE against the detached, normalised product of student and labels.
use super::{soft_ce, LossKind, LossSettings, StudentLoss};
use candle_core::{Result, Tensor, D};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "product",
    help: "CE against the normalised product of student and labels (detached)",
    build,
};

#[derive(Debug)]
struct Product;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Product)
}

impl StudentLoss for Product {
    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        product(logits, targets)
    }
}

/// CE against the detached, normalised product of the student's and the targets' distributions.
pub fn product(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    let prod = (p * targets)?;
    let norm = prod.sum_keepdim(D::Minus1)?.clamp(1e-12, f64::INFINITY)?;
    soft_ce(logits, &prod.broadcast_div(&norm)?.detach())
}
