//! `logconf`: the paper's auxiliary confidence loss.
use super::{hardened, soft_ce, LossKind, LossSchedule, LossSettings, StudentLoss};
use candle_core::{Result, Tensor};

/// The registry entry.
pub const KIND: LossKind = LossKind {
    name: "logconf",
    help: "CE against labels mixed with the student's hardened predictions (Burns et al.)",
    build,
};

/// The weight α follows the schedule.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
struct Logconf {
    schedule: LossSchedule,
}

fn build(settings: &LossSettings) -> Box<dyn StudentLoss> {
    Box::new(Logconf {
        schedule: settings.schedule,
    })
}

impl StudentLoss for Logconf {
    fn params(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor> {
        logconf(logits, targets, self.schedule.alpha(step_frac))
    }
}

/// The auxiliary confidence loss with weight `alpha`.
pub fn logconf(logits: &Tensor, targets: &Tensor, alpha: f64) -> Result<Tensor> {
    let hard = hardened(logits, targets)?;
    let mixed = ((targets * (1.0 - alpha))? + (hard * alpha)?)?;
    soft_ce(logits, &mixed)
}
