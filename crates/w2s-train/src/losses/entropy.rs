//! `entropy`: cross-entropy plus an entropy penalty (EleutherAI w2s).
use super::{soft_ce, LossKind, LossSchedule, LossSettings, StudentLoss};
use candle_core::{Result, Tensor, D};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "entropy",
    help: "(1-a) CE + a H(student), a on the confidence schedule (EleutherAI w2s)",
    build,
};

/// The weight α follows the schedule.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
struct Entropy {
    schedule: LossSchedule,
}

fn build(settings: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Entropy {
        schedule: settings.schedule,
    })
}

impl StudentLoss for Entropy {
    fn params(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        entropy(logits, targets, self.schedule.alpha(step_frac))
    }
}

/// `(1−α)·CE(student, target) + α·H(student)`.
pub fn entropy(logits: &Tensor, targets: &Tensor, alpha: f64) -> Result<Tensor> {
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    let h = soft_ce(logits, &p)?;
    (soft_ce(logits, targets)? * (1.0 - alpha))? + (h * alpha)?
}
