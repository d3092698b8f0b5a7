//! `window`: cross-entropy on the rows the student is unsure of.
use super::{soft_ce_rows, LossKind, LossSettings, StudentLoss};
use candle_core::{DType, Result, Tensor, D};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "window",
    help: "CE only on rows whose top student probability is below chance (0.5 for binary) + 0.15",
    build,
};

#[derive(Debug, serde::Serialize)]
struct Window {
    radius: f64,
}

/// Default radius (EleutherAI w2s).
pub const WINDOW_RADIUS: f64 = 0.15;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Window {
        radius: WINDOW_RADIUS,
    })
}

impl StudentLoss for Window {
    fn params(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        window(logits, targets, self.radius)
    }
}

/// Mean CE over rows whose top student probability is below `1/K + radius` (0 when there are
/// none): chance level plus the radius, `0.5 + radius` for binary.
pub fn window(logits: &Tensor, targets: &Tensor, radius: f64) -> Result<Tensor> {
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    let chance = 1.0 / logits.dim(D::Minus1)? as f64;
    let keep = p
        .max(D::Minus1)?
        .lt(chance + radius)?
        .to_dtype(logits.dtype())?
        .detach();
    let count = keep.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let total = (soft_ce_rows(logits, targets)? * keep)?.sum_all()?;
    total / count.max(1.0)
}
