//! `adaptconf`: an adaptive per-row confidence weight (Guo et al. 2024).
use super::{one_hot_argmax, soft_ce_rows, LossKind, LossSettings, StudentLoss};
use candle_core::{Result, Tensor, D};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "adaptconf",
    help: "per-row adaptive mix of CE on the labels and on the student's argmax (Guo et al.)",
    build,
};

#[derive(Debug, serde::Serialize)]
struct Adaptconf {
    temperature: f64,
}

/// Default temperature.
pub const ADAPTCONF_TEMPERATURE: f64 = 1.0;

fn build(_: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Adaptconf {
        temperature: ADAPTCONF_TEMPERATURE,
    })
}

impl StudentLoss for Adaptconf {
    fn params(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        let _ = step_frac;
        adaptconf(logits, targets, self.temperature)
    }
}

/// Adaptive confidence: per-row β from the two cross-entropies (detached), then the mixed CE.
pub fn adaptconf(logits: &Tensor, targets: &Tensor, temperature: f64) -> Result<Tensor> {
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    let hard = one_hot_argmax(&p)?;
    let ce_hard = soft_ce_rows(logits, &hard)?;
    let ce_soft = soft_ce_rows(logits, targets)?;
    // β = σ((CE_hard − CE_soft)/T), the two-way softmax of the exponentials.
    let beta = candle_nn::ops::sigmoid(&((&ce_hard - &ce_soft)? / temperature)?)?.detach();
    let rows = ((ce_soft * (1.0 - &beta)?)? + (ce_hard * beta)?)?;
    rows.mean_all()
}
