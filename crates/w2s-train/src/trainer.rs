//! The training loop shared by every model (a probe on cached features now, a fine-tuned backbone
//! later): seeded shuffled minibatches, AdamW with a cosine or constant schedule, one of the
//! losses, and early stopping on a validation score chosen by the caller.
//!
//! Read top to bottom like nanoGPT's loop: for each epoch, shuffle, step over minibatches, then
//! score the validation rows and keep the parameters of the best epoch.
use crate::adamw::AdamW;
use crate::losses::{batch_loss, Configured, Loss, LossSettings};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ParamsAdamW;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss stopped being a finite number.
    #[error("loss is {value} at step {step} (epoch {epoch}) of {what}: lower the learning rate or check the inputs")]
    NonFinite {
        /// What was being trained.
        what: String,
        /// Global step (0-based).
        step: usize,
        /// Epoch (0-based).
        epoch: usize,
        /// The loss value.
        value: f64,
    },
    /// The inputs do not fit together.
    #[error("{0}")]
    Input(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from the base rate to 0 over all steps (after the warm-up, if any).
    Cosine,
}

/// Hyper-parameters of one training run (everything but the data and the seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per optimizer step.
    pub batch_size: usize,
    /// Rows per forward/backward pass (gradient accumulation); 0 = the whole batch.
    /// Left out of the serialized form when 0, so stage keys of earlier runs stay valid.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minibatch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Share of steps over which the rate rises linearly from 0 (0 = none).
    pub warmup_frac: f64,
    /// Keep the parameters of the epoch with the best validation score (else the last epoch's).
    pub early_stopping: bool,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

impl Default for TrainConfig {
    /// The probe defaults: Adam, lr 1e-3, batch 128, 20 epochs, cosine decay, no weight decay.
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 128,
            minibatch_size: 0,
            lr: 1e-3,
            weight_decay: 0.0,
            lr_schedule: LrSchedule::Cosine,
            warmup_frac: 0.0,
            early_stopping: true,
        }
    }
}

impl TrainConfig {
    /// Rows per forward/backward pass.
    pub fn minibatch(&self) -> usize {
        if self.minibatch_size == 0 {
            self.batch_size
        } else {
            self.minibatch_size.min(self.batch_size)
        }
    }

    /// Learning rate at `step` of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let total = total.max(1) as f64;
        let warm = (self.warmup_frac * total).round();
        let s = step as f64;
        if warm > 0.0 && s < warm {
            return self.lr * (s + 1.0) / warm;
        }
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let progress = ((s - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// A model the trainer can fit: logits over K classes (binary: 2) for rows of the dataset it
/// was built on.
pub trait Trainable {
    /// Logits `[rows.len(), K]` with the autograd graph attached.
    fn logits(&self, rows: &[usize]) -> candle_core::Result<Tensor>;
    /// The trainable parameters.
    fn vars(&self) -> Vec<Var>;

    /// K, the number of classes.
    fn classes(&self) -> usize {
        2
    }

    /// Parameter groups, each with a multiplier of the base learning rate (default: one group).
    fn param_groups(&self) -> Vec<(Vec<Var>, f64)> {
        vec![(self.vars(), 1.0)]
    }

    /// Class-1 probabilities for `rows`, without keeping a graph.
    fn predict(&self, rows: &[usize]) -> candle_core::Result<Vec<f64>> {
        let k = self.classes();
        let all = self.predict_classes(rows)?;
        Ok(all.chunks(k).map(|row| row[1]).collect())
    }

    /// Every class's probability for `rows`, row-major `[rows.len(), K]`, without keeping a graph.
    fn predict_classes(&self, rows: &[usize]) -> candle_core::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(rows.len() * self.classes());
        for chunk in rows.chunks(1024) {
            let p = candle_nn::ops::softmax(&self.logits(chunk)?.detach(), 1)?
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_device(&Device::Cpu)?
                .to_vec1::<f64>()?;
            out.extend(p);
        }
        Ok(out)
    }

    /// What [`Scored`] functions read: class-1 probabilities for a binary model, the row-major
    /// `[rows, K]` probabilities otherwise.
    fn predict_for_score(&self, rows: &[usize]) -> candle_core::Result<Vec<f64>> {
        if self.classes() == 2 {
            self.predict(rows)
        } else {
            self.predict_classes(rows)
        }
    }
}

/// Rows scored once per epoch by a caller-supplied function of the model's predictions: their
/// class-1 probabilities for a binary model, the row-major `[rows, K]` probabilities otherwise
/// (see [`Trainable::predict_for_score`]).
pub struct Scored<'a> {
    /// Row indices.
    pub rows: &'a [usize],
    /// Higher is better.
    pub score: &'a dyn Fn(&[f64]) -> f64,
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Validation score (selection metric), if there is a validation set.
    pub val_score: Option<f64>,
    /// Oracle score on the test rows: logged, never used for selection.
    pub oracle_score: Option<f64>,
    /// Seconds spent on the epoch's optimizer steps.
    #[serde(default)]
    pub train_seconds: f64,
    /// Seconds spent scoring validation and oracle rows.
    #[serde(default)]
    pub eval_seconds: f64,
}

/// The outcome of a fit; the model holds the selected parameters afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// 1-based epoch whose parameters were kept.
    pub best_epoch: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// One entry per epoch.
    pub epochs: Vec<EpochLog>,
}

impl FitReport {
    /// Best oracle score over epochs (what peeking at test labels would have given).
    pub fn oracle_best(&self) -> Option<f64> {
        self.epochs
            .iter()
            .filter_map(|e| e.oracle_score)
            .fold(None, |m, s| Some(m.map_or(s, |m: f64| m.max(s))))
    }
}

/// What [`fit`] trains, on what, and how.
#[derive(Clone, Copy)]
pub struct FitRequest<'a> {
    /// Names the run in error messages.
    pub what: &'a str,
    /// The model.
    pub model: &'a dyn Trainable,
    /// Training rows.
    pub rows: &'a [usize],
    /// Soft targets, K per row (row-major `[rows, K]`, K = the model's classes).
    pub targets: &'a [f32],
    /// The loss, with its parameters.
    pub loss: Configured,
    /// Optimizer, schedule, epochs, early stopping.
    pub cfg: &'a TrainConfig,
    /// Shuffling seed.
    pub seed: u64,
    /// Selects the epoch when `early_stopping` is on.
    pub val: Option<&'a Scored<'a>>,
    /// Only logged (never used for selection).
    pub oracle: Option<&'a Scored<'a>>,
}

/// Fits the request's model on its rows with soft targets under its loss.
pub fn fit(req: &FitRequest) -> Result<FitReport> {
    let FitRequest {
        what,
        model,
        rows,
        targets,
        loss,
        cfg,
        seed,
        val,
        oracle,
    } = *req;
    let k = model.classes();
    if rows.len() * k != targets.len() {
        return Err(TrainError::Input(format!(
            "{what}: {} training rows of {k} classes but {} target values",
            rows.len(),
            targets.len()
        )));
    }
    if rows.is_empty() || cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(TrainError::Input(format!(
            "{what}: nothing to train ({} rows, {} epochs, batch {})",
            rows.len(),
            cfg.epochs,
            cfg.batch_size
        )));
    }
    let vars = model.vars();
    let mut optimizers = model
        .param_groups()
        .into_iter()
        .filter(|(vars, _)| !vars.is_empty())
        .map(|(vars, scale)| {
            let opt = AdamW::new(
                vars,
                ParamsAdamW {
                    lr: cfg.lr * scale,
                    weight_decay: cfg.weight_decay,
                    ..ParamsAdamW::default()
                },
            )?;
            Ok((opt, scale))
        })
        .collect::<Result<Vec<_>>>()?;
    // Built once: a loss's parameters do not change during a fit.
    let loss = loss.build();
    let per_epoch = rows.len().div_ceil(cfg.batch_size);
    let total = per_epoch * cfg.epochs;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
    let mut logs = Vec::with_capacity(cfg.epochs);
    let mut step = 0;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let epoch_start = std::time::Instant::now();
        for batch in order.chunks(cfg.batch_size) {
            let batch_rows: Vec<usize> = batch.iter().map(|&i| rows[i]).collect();
            let batch_targets: Vec<f32> = batch
                .iter()
                .flat_map(|&i| &targets[i * k..(i + 1) * k])
                .copied()
                .collect();
            let step_frac = step as f64 / total as f64;
            let (grads, batch_loss) = batch_gradients(
                model,
                &vars,
                &batch_rows,
                &batch_targets,
                cfg.minibatch(),
                |logits, t| batch_loss(loss.as_ref(), logits, t, step_frac),
            )?;
            let grads = match grads {
                Some(g) if batch_loss.is_finite() => g,
                _ => {
                    return Err(TrainError::NonFinite {
                        what: what.to_string(),
                        step,
                        epoch,
                        value: batch_loss,
                    })
                }
            };
            loss_sum += batch_loss;
            for (opt, scale) in optimizers.iter_mut() {
                opt.set_learning_rate(cfg.lr_at(step, total) * *scale);
                opt.step(&grads)?;
            }
            step += 1;
        }
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        let eval_start = std::time::Instant::now();
        let score = |s: Option<&Scored>| -> Result<Option<f64>> {
            Ok(match s {
                Some(s) => Some((s.score)(&model.predict_for_score(s.rows)?)),
                None => None,
            })
        };
        let val_score = score(val)?;
        let oracle_score = score(oracle)?;
        logs.push(EpochLog {
            epoch: epoch + 1,
            train_loss: loss_sum / per_epoch as f64,
            val_score,
            oracle_score,
            train_seconds,
            eval_seconds: eval_start.elapsed().as_secs_f64(),
        });
        if cfg.early_stopping {
            if let Some(s) = val_score {
                // Strictly better only: ties keep the earlier (less fitted) epoch.
                if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
                    let snapshot = vars
                        .iter()
                        .map(|v| v.as_tensor().copy())
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    best = Some((s, epoch + 1, snapshot));
                }
            }
        }
    }
    let best_epoch = match best {
        Some((_, epoch, snapshot)) => {
            for (v, t) in vars.iter().zip(snapshot) {
                v.set(&t)?;
            }
            epoch
        }
        None => cfg.epochs,
    };
    Ok(FitReport {
        best_epoch,
        steps: step,
        epochs: logs,
    })
}

/// The gradient of the batch-mean loss over `rows`, and that loss, by gradient accumulation: one
/// backward per minibatch of `minibatch` rows, each loss weighted by its share of the batch, so
/// the summed gradient is the batch-mean gradient and only one minibatch's graph is alive at a
/// time. Stops at the first minibatch whose loss is not finite and returns no gradient and that
/// loss; no gradient either for no rows. `targets` holds the model's K classes per row.
pub fn batch_gradients(
    model: &dyn Trainable,
    vars: &[Var],
    rows: &[usize],
    targets: &[f32],
    minibatch: usize,
    loss: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
) -> Result<(Option<GradStore>, f64)> {
    let device = vars
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    let mut accumulated: Option<GradStore> = None;
    let mut batch_loss = 0.0;
    let size = minibatch.max(1);
    let k = model.classes();
    for (mini_rows, mini_targets) in rows.chunks(size).zip(targets.chunks(size * k)) {
        let t = Tensor::from_vec(mini_targets.to_vec(), (mini_rows.len(), k), &device)?;
        let value = loss(&model.logits(mini_rows)?, &t)?;
        let v = value.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !v.is_finite() {
            return Ok((None, v));
        }
        let share = mini_rows.len() as f64 / rows.len() as f64;
        batch_loss += v * share;
        let grads = w2s_kernels::backward(&(value * share)?)?;
        accumulated = Some(match accumulated {
            None => grads,
            Some(mut acc) => {
                for var in vars {
                    if let Some(g) = grads.get(var) {
                        let sum = match acc.remove(var) {
                            Some(a) => crate::adamw::accumulate(a, g)?,
                            None => g.clone(),
                        };
                        acc.insert(var, sum);
                    }
                }
                acc
            }
        });
    }
    Ok((accumulated, batch_loss))
}

/// [`fit`] without validation or oracle rows, with the default confidence-weight schedule.
pub fn fit_plain(
    what: &str,
    model: &dyn Trainable,
    rows: &[usize],
    targets: &[f32],
    loss: Loss,
    cfg: &TrainConfig,
    seed: u64,
) -> Result<FitReport> {
    fit(&FitRequest {
        what,
        model,
        rows,
        targets,
        loss: loss.with(&LossSettings::default()),
        cfg,
        seed,
        val: None,
        oracle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_by_hand() {
        let cfg = TrainConfig {
            lr: 1.0,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.lr_at(0, 10), 1.0);
        assert!((cfg.lr_at(5, 10) - 0.5).abs() < 1e-12);
        assert!(cfg.lr_at(10, 10).abs() < 1e-12);
        let warm = TrainConfig {
            warmup_frac: 0.2,
            ..cfg
        };
        // 2 warm-up steps: 0.5, 1.0, then cosine over the remaining 8.
        assert!((warm.lr_at(0, 10) - 0.5).abs() < 1e-12);
        assert!((warm.lr_at(1, 10) - 1.0).abs() < 1e-12);
        assert!((warm.lr_at(2, 10) - 1.0).abs() < 1e-12);
        assert!((warm.lr_at(6, 10) - 0.5).abs() < 1e-12);
        let constant = TrainConfig {
            lr_schedule: LrSchedule::Constant,
            ..cfg
        };
        assert_eq!(constant.lr_at(7, 10), 1.0);
    }
}
