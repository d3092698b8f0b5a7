//! The store keys of the graph's stages: each is the hash of a description of everything the
//! stage depends on, and this file is the one place that writes those descriptions.
//!
//! An existing results folder must be reused node for node by later versions, so a setting added
//! after a key format was in use enters a description only when it differs from the value that
//! reproduces the old behaviour (`dtype` beside f32, `finetune` in fine-tuning mode, a minibatch
//! other than 0 through `TrainConfig`'s serde). The tests pin keys made by earlier versions: one
//! that changes means stored nodes would be trained again.
use crate::config::{FinetuneConfig, Mode};
use crate::methods::zeroshot::Template;
use crate::store::key_of;
use w2s_models::WeightDtype;
use w2s_train::{Configured, TrainConfig};

/// Bumped when a stage's computation changes in a way its key does not capture.
pub(crate) const STAGE_VERSION: u32 = 1;

/// What a trained node depends on.
pub(super) struct NodeDescription<'a> {
    pub(super) mode: Mode,
    /// The split's key ([`split_key`]).
    pub(super) split: &'a str,
    pub(super) model: &'a str,
    /// The model's weights fingerprint.
    pub(super) weights: &'a str,
    pub(super) max_len: usize,
    /// The rows it trains on.
    pub(super) rows: &'a [usize],
    /// `ground-truth`, or the labelling node's key with the label form and steps.
    pub(super) supervision: &'a str,
    /// The loss, with its parameters.
    pub(super) loss: Configured,
    pub(super) train: &'a TrainConfig,
    pub(super) seed: u64,
    pub(super) finetune: &'a FinetuneConfig,
    pub(super) dtype: WeightDtype,
}

/// The key of a trained node.
pub(super) fn node_key(d: &NodeDescription) -> String {
    let mut desc = serde_json::json!({
        "v": STAGE_VERSION, "mode": d.mode, "split": d.split, "model": d.model,
        "weights": d.weights, "max_len": d.max_len,
        "rows": key_of(&serde_json::json!(d.rows)), "supervision": d.supervision, "loss": d.loss.loss(),
        // The loss's parameters under the name they had when the schedule was the only one.
        "loss_schedule": d.loss.params(),
        "train": d.train, "seed": d.seed,
    });
    if d.mode == Mode::Finetune {
        desc["finetune"] = serde_json::json!(d.finetune);
    }
    if !d.dtype.is_default() {
        desc["dtype"] = d.dtype.name().into();
    }
    key_of(&desc)
}

/// The key of a split of a dataset's rows (`rows`: the rows' content hash).
pub(super) fn split_key(
    dataset: &str,
    rows: &str,
    test_frac: f64,
    val_frac: f64,
    seed: u64,
) -> String {
    key_of(&serde_json::json!({
        "v": STAGE_VERSION, "dataset": dataset, "rows": rows,
        "test_frac": test_frac, "val_frac": val_frac, "seed": seed,
    }))
}

/// The key of the mean of several weak models (never stored; students name it as their teacher).
pub(super) fn mean_key(members: &[&str]) -> String {
    key_of(&serde_json::json!({"v": STAGE_VERSION, "mean_of": members}))
}

/// The key of a zero-shot node: the prompt, the model and the rows.
pub(super) fn zero_shot_key(
    template: &Template,
    model: &str,
    weights: &str,
    rows: &str,
    max_len: usize,
    dtype: WeightDtype,
) -> String {
    let mut desc = serde_json::json!({
        "v": STAGE_VERSION, "zero_shot": template, "model": model,
        "weights": weights, "rows": rows, "max_len": max_len,
    });
    if !dtype.is_default() {
        desc["dtype"] = dtype.name().into();
    }
    key_of(&desc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExperimentConfig;
    use w2s_train::Loss;

    fn described(cfg: &ExperimentConfig, loss: Loss) -> String {
        node_key(&NodeDescription {
            mode: cfg.mode,
            split: "0123abcd",
            model: "minilm-l3",
            weights: "sha256:feed",
            max_len: cfg.max_len,
            rows: &[0, 2, 5],
            supervision: "ground-truth",
            loss: cfg.loss(loss),
            train: &cfg.train,
            seed: 3,
            finetune: &cfg.finetune,
            dtype: cfg.dtype,
        })
    }

    /// Keys made by the versions that wrote today's results folders. A change here means an old
    /// folder's nodes would be trained again: keep the old value for the old behaviour instead.
    #[test]
    fn keys_of_earlier_versions_are_unchanged() {
        let cfg = ExperimentConfig::default();
        assert_eq!(described(&cfg, Loss::XENT), "13c6c12d9992e3365fb4c00f");
        assert_eq!(described(&cfg, Loss::LOGCONF), "e96e5e5312a2b796d23391a6");
        let ft = ExperimentConfig::finetune_defaults();
        assert_eq!(described(&ft, Loss::XENT), "2f144788e970ac661b4eb835");
        assert_eq!(
            split_key("tweets", "v1rows", 0.2, 0.1, 0),
            "3f77e2cab4131695d49448a6"
        );
        assert_eq!(mean_key(&["aa", "bb"]), "6ab5941a491457f5180572b8");
        let t = Template {
            template: "Review: {text}\nSentiment:".into(),
            answers: [" negative".into(), " positive".into()],
        };
        assert_eq!(
            zero_shot_key(
                &t,
                "smollm2-135m",
                "sha256:feed",
                "v1rows",
                128,
                WeightDtype::F32
            ),
            "ae3cd48cb4ece65fce74b45f"
        );
    }

    /// Settings added later change a key only away from their old behaviour.
    #[test]
    fn new_settings_enter_keys_only_when_they_change_something() {
        let cfg = ExperimentConfig::default();
        let base = described(&cfg, Loss::XENT);
        let mut bf16 = cfg;
        bf16.dtype = WeightDtype::Bf16;
        assert_ne!(described(&bf16, Loss::XENT), base, "a non-default dtype");
        let mut minibatch = cfg;
        minibatch.train.minibatch_size = 32;
        assert_ne!(described(&minibatch, Loss::XENT), base, "a minibatch");
        let mut finetune_settings = cfg;
        finetune_settings.finetune.head_lr_scale *= 2.0;
        assert_eq!(
            described(&finetune_settings, Loss::XENT),
            base,
            "fine-tuning settings do not reach probe nodes"
        );
        let mut epochs = cfg;
        epochs.train.epochs += 1;
        assert_ne!(
            described(&epochs, Loss::XENT),
            base,
            "every training setting counts"
        );
    }
}
