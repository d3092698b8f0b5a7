//! Every loss a student can be trained with, on logits `[n, K]` and soft targets `[n, K]` (the
//! weak model's probabilities, or one-hot ground truth); binary is K = 2. All return the batch mean. One file
//! per loss, each a [`StudentLoss`] whose parameters are its serde fields (hashed into the store
//! key of every model trained with it), registered in [`Loss::ALL`]:
//!
//! - `xent`: soft-target cross-entropy, the paper's naive baseline.
//! - `hard`: cross-entropy on the argmax of the targets.
//! - `kl`: KL(target ‖ student); same gradient as `xent`, different value.
//! - `logconf`: the paper's auxiliary confidence loss: CE against `(1−α)·target + α·hardened`,
//!   where `hardened` is the student's own prediction thresholded so that the share of class 1
//!   equals the targets' mean class-1 mass in the batch (K > 2: the student's argmax).
//! - `product`: CE against the normalised product `student · target` (detached).
//! - `entropy`: `(1−α)·CE(student, target) + α·H(student)` (EleutherAI w2s).
//! - `window`: CE only on rows where the student's top probability is below `1/K + radius`.
//! - `adaptconf`: per-row weight β = e^{CE(f,ĥ)/T} / (e^{CE(f,ĥ)/T} + e^{CE(f,t)/T}) (detached),
//!   loss `(1−β)·CE(f, t) + β·CE(f, ĥ)` with ĥ the student's argmax (Guo et al. 2024).
mod adaptconf;
mod entropy;
mod hard;
mod kl;
mod logconf;
mod product;
mod window;
mod xent;

pub use adaptconf::{adaptconf, ADAPTCONF_TEMPERATURE};
pub use entropy::entropy;
pub use kl::kl;
pub use logconf::logconf;
pub use product::product;
pub use window::{window, WINDOW_RADIUS};

use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// How the confidence weight α of `logconf` and `entropy` grows during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LossSchedule {
    /// α rises linearly from 0 to `alpha_max` over the first `warmup_frac` of steps (the paper).
    Linear {
        /// Final weight.
        alpha_max: f64,
        /// Share of training spent warming up.
        warmup_frac: f64,
    },
    /// The official code's schedule: `alpha_max · step_frac` while `step_frac ≤ warmup_frac`,
    /// then `alpha_max` — a jump from 0.05 to 0.5 with the defaults (for comparison only).
    OpenAi {
        /// Final weight.
        alpha_max: f64,
        /// Share of training before the jump.
        warmup_frac: f64,
    },
}

impl Default for LossSchedule {
    fn default() -> Self {
        LossSchedule::Linear {
            alpha_max: 0.5,
            warmup_frac: 0.2,
        }
    }
}

impl LossSchedule {
    /// The official code's defaults (α 0.5, warm-up 10%).
    pub fn openai() -> Self {
        LossSchedule::OpenAi {
            alpha_max: 0.5,
            warmup_frac: 0.1,
        }
    }

    /// α at `step_frac` ∈ [0, 1] of training.
    pub fn alpha(&self, step_frac: f64) -> f64 {
        match *self {
            LossSchedule::Linear {
                alpha_max,
                warmup_frac,
            } => {
                if warmup_frac <= 0.0 {
                    alpha_max
                } else {
                    alpha_max * (step_frac / warmup_frac).clamp(0.0, 1.0)
                }
            }
            LossSchedule::OpenAi {
                alpha_max,
                warmup_frac,
            } => {
                alpha_max
                    * if step_frac <= warmup_frac {
                        step_frac
                    } else {
                        1.0
                    }
            }
        }
    }
}

/// What a loss may be built with: the experiment's settings that losses read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossSettings {
    /// The confidence weight's schedule (`logconf`, `entropy`).
    pub schedule: LossSchedule,
}

/// One loss, built with its parameters.
pub trait StudentLoss {
    /// Its parameters as JSON (`null` for none): they are hashed into the key of every model
    /// trained with the loss, so a parameter cannot be left out of the key.
    fn params(&self) -> serde_json::Value;
    /// The batch-mean loss of `logits [n,2]` against soft `targets [n,2]` at `step_frac` of training.
    fn compute(&self, logits: &Tensor, targets: &Tensor, step_frac: f64) -> Result<Tensor>;
}

/// A loss's entry in the registry.
#[derive(Debug)]
pub struct LossKind {
    /// Command-line name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Builds the loss from the settings it reads.
    pub build: fn(&LossSettings) -> Box<dyn StudentLoss>,
}

/// A loss, by name: a handle on its registry entry (cheap to copy, compared and serialised by
/// name).
#[derive(Clone, Copy)]
pub struct Loss(&'static LossKind);

impl Loss {
    /// Soft-target cross-entropy.
    pub const XENT: Loss = Loss(&xent::KIND);
    /// Cross-entropy on argmax targets.
    pub const HARD: Loss = Loss(&hard::KIND);
    /// The auxiliary confidence loss (Burns et al.).
    pub const LOGCONF: Loss = Loss(&logconf::KIND);

    /// Every loss, in display order: `--help`, `all`, the report's order and the every-loss
    /// tests iterate it. A new loss is one file and one line here.
    pub const ALL: &'static [Loss] = &[
        Loss::XENT,
        Loss::HARD,
        Loss(&kl::KIND),
        Loss::LOGCONF,
        Loss(&product::KIND),
        Loss(&entropy::KIND),
        Loss(&window::KIND),
        Loss(&adaptconf::KIND),
    ];

    /// Command-line name.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// One line of help.
    pub fn help(&self) -> &'static str {
        self.0.help
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Loss> {
        Loss::ALL.iter().copied().find(|l| l.name() == name)
    }

    /// The loss built with `settings`.
    pub fn build(&self, settings: &LossSettings) -> Box<dyn StudentLoss> {
        (self.0.build)(settings)
    }

    /// The loss with its parameters, to carry to a store key and to a fit as one value.
    pub fn with(&self, settings: &LossSettings) -> Configured {
        Configured {
            loss: *self,
            settings: *settings,
        }
    }

    /// Its parameters under `settings` (see [`StudentLoss::params`]).
    pub fn params(&self, settings: &LossSettings) -> serde_json::Value {
        self.build(settings).params()
    }

    /// The batch-mean loss of `logits [n,2]` against soft `targets [n,2]` at `step_frac` of training.
    pub fn compute(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        step_frac: f64,
        schedule: &LossSchedule,
    ) -> Result<Tensor> {
        let built = self.build(&LossSettings {
            schedule: *schedule,
        });
        batch_loss(built.as_ref(), logits, targets, step_frac)
    }
}

/// A loss together with the settings it is built with: what a node is trained with and keyed by,
/// so that the parameters never travel apart from the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Configured {
    loss: Loss,
    settings: LossSettings,
}

impl Configured {
    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// Its parameters (see [`StudentLoss::params`]).
    pub fn params(&self) -> serde_json::Value {
        self.build().params()
    }

    /// The loss, built.
    pub fn build(&self) -> Box<dyn StudentLoss> {
        self.loss.build(&self.settings)
    }
}

/// `loss` of `logits [n,2]` against soft `targets [n,2]` (in any float dtype: they are cast to
/// the logits') at `step_frac` of training.
pub fn batch_loss(
    loss: &dyn StudentLoss,
    logits: &Tensor,
    targets: &Tensor,
    step_frac: f64,
) -> Result<Tensor> {
    loss.compute(logits, &targets.to_dtype(logits.dtype())?, step_frac)
}

impl PartialEq for Loss {
    fn eq(&self, other: &Loss) -> bool {
        self.name() == other.name()
    }
}

impl std::fmt::Debug for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Loss {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Loss {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Loss, D::Error> {
        let name = String::deserialize(d)?;
        Loss::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown loss '{name}'")))
    }
}

/// Per-row soft cross-entropy `−Σ_c t_c log softmax(z)_c`, shape `[n]`.
pub(crate) fn soft_ce_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    (targets * logp)?.sum(D::Minus1)?.neg()
}

/// Mean soft-target cross-entropy.
pub fn soft_ce(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    soft_ce_rows(logits, targets)?.mean_all()
}

/// One-hot of each row's argmax (ties go to the lowest class), detached.
pub(crate) fn one_hot_argmax(p: &Tensor) -> Result<Tensor> {
    let (n, k) = p.dims2()?;
    if k != 2 {
        let rows = p.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut hot = vec![0f32; n * k];
        for (i, row) in rows.iter().enumerate() {
            hot[i * k + argmax(row)] = 1.0;
        }
        return Tensor::from_vec(hot, (n, k), p.device())?.to_dtype(p.dtype());
    }
    // Binary: the comparison in the tensor's own dtype, as before K classes existed.
    let cls1 = p
        .narrow(1, 1, 1)?
        .gt(&p.narrow(1, 0, 1)?)?
        .to_dtype(p.dtype())?;
    Tensor::cat(&[(1.0 - &cls1)?, cls1], 1)?
        .detach()
        .contiguous()
}

/// The first index of the largest value (ties go to the lowest index): the one argmax of every
/// K-class prediction, in losses, label targets and metrics.
pub fn argmax<T: PartialOrd>(row: &[T]) -> usize {
    let mut best = 0;
    for (c, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = c;
        }
    }
    best
}

/// Linear-interpolated quantile of `values` at `q` ∈ [0, 1] (as `torch.quantile`).
pub fn quantile(values: &[f32], q: f64) -> f32 {
    let mut v: Vec<f32> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f32::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = (pos - lo as f64) as f32;
    v[lo] + (v[hi] - v[lo]) * frac
}

/// The student's hardened predictions. Binary (the paper's): class 1 where `p_0 < t`, with `t`
/// the quantile of `p_0` at the targets' mean class-1 mass, so the batch's hardened class balance
/// matches the targets'. K > 2 classes: the one-hot of the student's argmax (the official code
/// has no K-class threshold; a prior-matching assignment over K classes is not unique).
pub fn hardened(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.dim(1)? != 2 {
        return one_hot_argmax(&candle_nn::ops::softmax(logits, D::Minus1)?.detach());
    }
    let p0: Vec<f32> = candle_nn::ops::softmax(logits, D::Minus1)?
        .narrow(1, 0, 1)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?;
    let prior = targets
        .narrow(1, 1, 1)?
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    let t = quantile(&p0, prior);
    let cls1: Vec<f32> = p0.iter().map(|&p| if p < t { 1.0 } else { 0.0 }).collect();
    let n = cls1.len();
    let cls1 = Tensor::from_vec(cls1, (n, 1), logits.device())?.to_dtype(logits.dtype())?;
    Tensor::cat(&[(1.0 - &cls1)?, cls1], 1)?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (rows.len(), 2), &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f64 {
        x.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    /// log softmax of [0, ln 3] = [ln 1/4, ln 3/4]: p = (0.25, 0.75).
    fn quarter() -> Tensor {
        t(&[[0.0, 3f32.ln()]])
    }

    #[test]
    fn xent_by_hand() {
        // −(0.6 ln 0.25 + 0.4 ln 0.75)
        let want = -(0.6 * 0.25f64.ln() + 0.4 * 0.75f64.ln());
        close(
            scalar(
                Loss::XENT
                    .compute(&quarter(), &t(&[[0.6, 0.4]]), 0.0, &LossSchedule::default())
                    .unwrap(),
            ),
            want,
        );
    }

    #[test]
    fn hard_uses_argmax() {
        // target argmax is class 0 → −ln 0.25
        close(
            scalar(
                Loss::HARD
                    .compute(&quarter(), &t(&[[0.6, 0.4]]), 0.0, &LossSchedule::default())
                    .unwrap(),
            ),
            -(0.25f64.ln()),
        );
    }

    #[test]
    fn kl_by_hand_and_zero_at_match() {
        let want = 0.6 * (0.6f64 / 0.25).ln() + 0.4 * (0.4f64 / 0.75).ln();
        close(scalar(kl(&quarter(), &t(&[[0.6, 0.4]])).unwrap()), want);
        close(scalar(kl(&quarter(), &t(&[[0.25, 0.75]])).unwrap()), 0.0);
        // 0·log 0 = 0 for one-hot targets: KL = −ln 0.75
        close(
            scalar(kl(&quarter(), &t(&[[0.0, 1.0]])).unwrap()),
            -(0.75f64.ln()),
        );
    }

    #[test]
    fn quantile_interpolates_like_torch() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.0), 1.0);
        assert!((quantile(&[0.0, 10.0], 0.25) - 2.5).abs() < 1e-6);
    }

    #[test]
    fn logconf_by_hand() {
        // Students p0 = [0.9, 0.2, 0.6, 0.4]; weak targets with class-1 mean 0.5 → t = quantile(p0, 0.5) = 0.5
        // → hardened class 1 where p0 < 0.5: rows 2 and 4.
        let p0 = [0.9f64, 0.2, 0.6, 0.4];
        let logits: Vec<[f32; 2]> = p0
            .iter()
            .map(|&p| [0.0, ((1.0 - p) / p).ln() as f32])
            .collect();
        let targets = [[0.7f32, 0.3], [0.4, 0.6], [0.6, 0.4], [0.3, 0.7]];
        let alpha = 0.5;
        let hard = [0.0, 1.0, 0.0, 1.0];
        let mut want = 0.0;
        for i in 0..4 {
            let y1 = (1.0 - alpha) * targets[i][1] as f64 + alpha * hard[i];
            want += -((1.0 - y1) * p0[i].ln() + y1 * (1.0 - p0[i]).ln());
        }
        want /= 4.0;
        let got = scalar(logconf(&t(&logits), &t(&targets), alpha).unwrap());
        close(got, want);
        // α = 0 is plain xent
        close(
            scalar(logconf(&t(&logits), &t(&targets), 0.0).unwrap()),
            scalar(soft_ce(&t(&logits), &t(&targets)).unwrap()),
        );
    }

    #[test]
    fn logconf_threshold_follows_the_weak_prior_not_50_50() {
        // Weak labels put 25% mass on class 1 → exactly one of four rows is hardened to class 1.
        let logits = t(&[[0.0, 0.1], [0.0, 0.2], [0.0, 0.3], [0.0, 0.4]]);
        let targets = t(&[[0.75, 0.25], [0.75, 0.25], [0.75, 0.25], [0.75, 0.25]]);
        let h = hardened(&logits, &targets)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let ones: Vec<f32> = h.iter().map(|r| r[1]).collect();
        assert_eq!(ones, vec![0.0, 0.0, 0.0, 1.0]);
    }

    /// One row of three classes with softmax (1/6, 2/6, 3/6): logits ln 1, ln 2, ln 3.
    fn sixths() -> Tensor {
        Tensor::new(&[[0f32, 2f32.ln(), 3f32.ln()]], &Device::Cpu).unwrap()
    }

    fn t3(rows: &[[f32; 3]]) -> Tensor {
        Tensor::from_vec(rows.as_flattened().to_vec(), (rows.len(), 3), &Device::Cpu).unwrap()
    }

    #[test]
    fn three_class_losses_by_hand() {
        let p = [1.0f64 / 6.0, 2.0 / 6.0, 3.0 / 6.0];
        let target = [[0.5f32, 0.3, 0.2]];
        let ce = |t: [f64; 3]| -(0..3).map(|c| t[c] * p[c].ln()).sum::<f64>();
        let s = LossSchedule::default();
        let at = |loss: Loss, step: f64| {
            scalar(loss.compute(&sixths(), &t3(&target), step, &s).unwrap())
        };
        close(at(Loss::XENT, 0.0), ce([0.5, 0.3, 0.2]));
        // The targets' argmax is class 0.
        close(at(Loss::HARD, 0.0), ce([1.0, 0.0, 0.0]));
        close(
            scalar(kl(&sixths(), &t3(&target)).unwrap()),
            ce([0.5, 0.3, 0.2]) + [0.5f64, 0.3, 0.2].iter().map(|t| t * t.ln()).sum::<f64>(),
        );
        // logconf hardens the student's argmax (class 2): at α = 0.5 (step 0.2 of the default
        // schedule) the target is (0.25, 0.15, 0.6).
        close(at(Loss::LOGCONF, 0.2), ce([0.25, 0.15, 0.6]));
        let h = hardened(&sixths(), &t3(&target))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(h, vec![vec![0.0, 0.0, 1.0]]);
        // product: p·t = (1/12, 0.1, 0.1) normalised.
        let prod = [1.0 / 12.0, 0.1, 0.1];
        let z: f64 = prod.iter().sum();
        close(
            scalar(product(&sixths(), &t3(&target)).unwrap()),
            ce([prod[0] / z, prod[1] / z, prod[2] / z]),
        );
        // window: the top probability 0.5 is below 1/3 + 0.2 but not below 1/3 + 0.15.
        close(
            scalar(window(&sixths(), &t3(&target), 0.2).unwrap()),
            ce([0.5, 0.3, 0.2]),
        );
        close(scalar(window(&sixths(), &t3(&target), 0.15).unwrap()), 0.0);
    }

    #[test]
    fn three_class_argmax_ties_go_to_the_lowest_class() {
        let h = one_hot_argmax(&t3(&[[0.2, 0.4, 0.4], [0.5, 0.1, 0.4]]))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(h, vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]);
    }

    #[test]
    fn schedules() {
        let lin = LossSchedule::default();
        close(lin.alpha(0.0), 0.0);
        close(lin.alpha(0.1), 0.25);
        close(lin.alpha(0.2), 0.5);
        close(lin.alpha(0.9), 0.5);
        let oai = LossSchedule::openai();
        close(oai.alpha(0.1), 0.05);
        close(oai.alpha(0.1001), 0.5);
    }

    #[test]
    fn product_by_hand() {
        // p = (0.25, 0.75), t = (0.6, 0.4): product ∝ (0.15, 0.3) = (1/3, 2/3)
        let want = -(1.0 / 3.0 * 0.25f64.ln() + 2.0 / 3.0 * 0.75f64.ln());
        close(
            scalar(product(&quarter(), &t(&[[0.6, 0.4]])).unwrap()),
            want,
        );
    }

    #[test]
    fn entropy_by_hand() {
        let ce = -(0.6 * 0.25f64.ln() + 0.4 * 0.75f64.ln());
        let h = -(0.25 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        close(
            scalar(entropy(&quarter(), &t(&[[0.6, 0.4]]), 0.3).unwrap()),
            0.7 * ce + 0.3 * h,
        );
    }

    #[test]
    fn window_keeps_only_uncertain_rows() {
        // row 1: p = (0.25, 0.75) → max 0.75 ≥ 0.65, dropped; row 2: p = (0.5, 0.5) kept.
        let logits = t(&[[0.0, 3f32.ln()], [0.0, 0.0]]);
        let targets = t(&[[1.0, 0.0], [0.2, 0.8]]);
        close(
            scalar(window(&logits, &targets, 0.15).unwrap()),
            -(0.5f64.ln()),
        );
        // no uncertain row → 0
        close(
            scalar(window(&t(&[[0.0, 5.0]]), &t(&[[1.0, 0.0]]), 0.15).unwrap()),
            0.0,
        );
    }

    #[test]
    fn adaptconf_by_hand() {
        // p = (0.25, 0.75): ĥ = class 1, CE_hard = −ln .75; t = (0.6, 0.4): CE_soft as in xent.
        let ce_hard = -(0.75f64.ln());
        let ce_soft = -(0.6 * 0.25f64.ln() + 0.4 * 0.75f64.ln());
        let beta = ce_hard.exp() / (ce_hard.exp() + ce_soft.exp());
        close(
            scalar(adaptconf(&quarter(), &t(&[[0.6, 0.4]]), 1.0).unwrap()),
            (1.0 - beta) * ce_soft + beta * ce_hard,
        );
    }

    #[test]
    fn a_losss_parameters_are_what_it_reads_and_keep_the_old_store_keys() {
        let paper = LossSettings::default();
        let official = LossSettings {
            schedule: LossSchedule::openai(),
        };
        let reads_schedule: Vec<&str> = Loss::ALL
            .iter()
            .filter(|l| l.params(&paper) != l.params(&official))
            .map(|l| l.name())
            .collect();
        assert_eq!(reads_schedule, ["logconf", "entropy"]);
        // Stores written before the loss trait keyed logconf by its schedule and xent by null.
        assert_eq!(
            Loss::LOGCONF.params(&paper),
            serde_json::json!(LossSchedule::default())
        );
        assert_eq!(Loss::XENT.params(&paper), serde_json::Value::Null);
        let window = Loss::parse("window").unwrap();
        assert_eq!(window.params(&paper), serde_json::json!({"radius": 0.15}));
        assert_eq!(serde_json::to_string(&Loss::XENT).unwrap(), "\"xent\"");
        assert_eq!(
            serde_json::from_str::<Loss>("\"logconf\"").unwrap(),
            Loss::LOGCONF
        );
        assert!(serde_json::from_str::<Loss>("\"nope\"").is_err());
    }

    #[test]
    fn every_loss_has_a_finite_gradient() {
        let z = Var::new(
            &[[0.3f32, -0.2], [1.0, 0.5], [-0.7, 0.1], [0.0, 0.0]],
            &Device::Cpu,
        )
        .unwrap();
        let targets = t(&[[0.7, 0.3], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]]);
        for &loss in Loss::ALL {
            let l = loss
                .compute(z.as_tensor(), &targets, 0.5, &LossSchedule::default())
                .unwrap();
            let g = l.backward().unwrap();
            let g = g
                .get(z.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(g.is_finite() && g > 0.0, "{}: gradient {g}", loss.name());
            assert_eq!(Loss::parse(loss.name()), Some(loss));
        }
    }
}
