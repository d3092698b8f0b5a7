//! What one experiment is: the shared settings and the runs (dataset × chain × method × seed).
use crate::methods::Method;
use serde::{Deserialize, Serialize};
use w2s_train::{LossSchedule, LossSettings, TrainConfig};

/// How the weak model's predictions become the student's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelForm {
    /// The weak model's probabilities (the paper).
    Soft,
    /// One-hot of the weak model's argmax.
    Hard,
}

impl LabelForm {
    /// Command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            LabelForm::Soft => "soft",
            LabelForm::Hard => "hard",
        }
    }
}

/// How models are trained on labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Frozen backbone, cached pooled features, linear head.
    Probe,
    /// The backbone trains with the head, end to end (or its top layers).
    Finetune,
}

/// Settings of fine-tuning mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// What trains besides the head: every parameter, the top k layers, or LoRA adapters.
    pub adapt: w2s_train::Adapt,
    /// The head's learning rate is the base rate times this (the zero-initialised head needs
    /// a larger step than the pretrained backbone).
    pub head_lr_scale: f64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            adapt: w2s_train::Adapt::All,
            head_lr_scale: 20.0,
        }
    }
}

/// Settings shared by every run of an experiment; all of them are part of every stage's key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Training mode.
    pub mode: Mode,
    /// Balance each dataset 50/50 by undersampling before anything else.
    pub balance: bool,
    /// Keep at most this many rows per dataset (whole groups; 0 = all).
    pub max_rows: usize,
    /// Seed of the balancing and the row cap: fixed, so all split seeds share rows and features.
    pub data_seed: u64,
    /// Share of rows in the test set.
    pub test_frac: f64,
    /// Share of B held out for early stopping on weak labels.
    pub val_frac: f64,
    /// Maximum tokens per row.
    pub max_len: usize,
    /// Student targets.
    pub labels: LabelForm,
    /// Warm-up of the confidence weight of `logconf` and `entropy`.
    pub loss_schedule: LossSchedule,
    /// Optimizer, schedule, epochs.
    pub train: TrainConfig,
    /// Fine-tuning settings (used in `Mode::Finetune`).
    pub finetune: FinetuneConfig,
    /// Precision of frozen weights and of the forward pass (trained weights stay f32).
    pub dtype: w2s_models::WeightDtype,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            mode: Mode::Probe,
            balance: true,
            max_rows: 6000,
            data_seed: 0,
            test_frac: 0.2,
            val_frac: 0.1,
            max_len: 128,
            labels: LabelForm::Soft,
            loss_schedule: LossSchedule::default(),
            train: TrainConfig::default(),
            finetune: FinetuneConfig::default(),
            dtype: w2s_models::WeightDtype::F32,
        }
    }
}

/// The models of `a+b` (one for a plain name).
fn members(model: &str) -> Vec<&str> {
    model.split('+').collect()
}

/// One run: a dataset, a chain of models from weak to strong, a method and a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Built-in dataset name or a .jsonl/.csv path.
    pub dataset: String,
    /// `[weak, strong]` for direct transfer, `[weak, m1, ..., strong]` for bootstrapping.
    pub chain: Vec<String>,
    /// The student's label steps and loss (every link of a chain uses it).
    pub method: Method,
    /// Split and training seed.
    pub seed: u64,
}

impl RunSpec {
    /// The weak supervisor, as written: one model, or `a+b` for the mean of several.
    pub fn weak(&self) -> &str {
        &self.chain[0]
    }

    /// The models the weak supervisor averages (one for a single model): the one place that
    /// reads the `a+b` form.
    pub fn weak_members(&self) -> Vec<&str> {
        members(self.weak())
    }

    /// Every model the run reads, ensemble members one by one, in chain order.
    pub fn models(&self) -> Vec<&str> {
        self.chain.iter().flat_map(|m| members(m)).collect()
    }

    /// Whether a model after the weak one is written as an average, which only the weak
    /// supervisor may be.
    pub fn averages_a_student(&self) -> bool {
        self.chain[1..].iter().any(|m| members(m).len() > 1)
    }

    /// The strong student.
    pub fn strong(&self) -> &str {
        &self.chain[self.chain.len() - 1]
    }

    /// `weak → strong on dataset (method, seed N)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} on {} ({}, seed {})",
            self.chain.join(" → "),
            self.dataset,
            self.method.name(),
            self.seed
        )
    }

    /// True for a bootstrapping chain (at least one intermediate model).
    pub fn is_chain(&self) -> bool {
        self.chain.len() > 2
    }
}

impl ExperimentConfig {
    /// A short hash of everything that distinguishes the runs of one configuration and method
    /// (all settings and the method with its parameters; the dataset, models and seed are named
    /// separately): run records with different ids are never merged or overwritten.
    pub fn config_id(&self, method: &Method) -> String {
        let mut settings = serde_json::json!(self);
        // The schedule counts through the loss's own parameters, for the losses that read it.
        settings["loss_schedule"] = serde_json::Value::Null;
        let loss = self.loss(method.loss()).params();
        let key = crate::store::key_of(&serde_json::json!({
            "settings": settings, "method": method.name(), "loss": loss,
        }));
        key[..8].to_string()
    }

    /// `loss` with the parameters these settings give it: the one place where the confidence
    /// schedule joins a loss.
    pub fn loss(&self, loss: w2s_train::Loss) -> w2s_train::Configured {
        loss.with(&self.loss_settings())
    }

    /// What the losses are built with.
    pub fn loss_settings(&self) -> LossSettings {
        LossSettings {
            schedule: self.loss_schedule,
        }
    }

    /// Defaults for fine-tuning on a CPU: fewer rows (2,000), 3 epochs, batch 32, lr 5e-5.
    pub fn finetune_defaults() -> Self {
        let mut cfg = ExperimentConfig {
            mode: Mode::Finetune,
            max_rows: 2000,
            ..ExperimentConfig::default()
        };
        cfg.train.epochs = 3;
        cfg.train.batch_size = 32;
        cfg.train.lr = 5e-5;
        cfg
    }
}
