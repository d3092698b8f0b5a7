//! `logreg-relabel`: fits a logistic probe on the strong model's features to the weak labels of
//! the training rows, and replaces those labels with the probe's predictions on the same rows.
//! A linear probe cannot fit labels that the strong representation does not support, so the
//! weak model's idiosyncratic errors tend to be overruled (EleutherAI w2s's logistic relabelling).
use super::{LabelStep, Labels, StepInput, StepKind};
use w2s_train::{fit_plain, Loss, TrainConfig};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "logreg-relabel",
    arg: "",
    default_arg: "",
    help: "relabel by a logistic probe on the strong features fit to the labels",
    build,
};

struct LogregRelabel;

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    match arg {
        None => Ok(Box::new(LogregRelabel)),
        Some(a) => Err(format!("takes no argument, got '{a}'")),
    }
}

impl LabelStep for LogregRelabel {
    fn name(&self) -> String {
        KIND.name.to_string()
    }

    fn needs_features(&self) -> bool {
        true
    }

    fn apply(&self, labels: Labels, input: &StepInput) -> Result<Labels, String> {
        let (values, dim) = input.features.ok_or("needs the strong model's features")?;
        let err = |e: &dyn std::fmt::Display| format!("fitting the probe: {e}");
        let probe = w2s_train::probe_head(
            values,
            dim,
            input.questions,
            &labels.rows,
            labels.classes,
            &candle_core::Device::Cpu,
        )
        .map_err(|e| err(&e))?;
        let targets: Vec<f32> = if labels.classes == 2 {
            labels.probs.iter().flat_map(|&p| [1.0 - p, p]).collect()
        } else {
            labels.probs.clone()
        };
        // Fit to convergence, whatever the experiment's mode trains with: the relabelling is a
        // logistic regression, not a model selected on held-out rows.
        let cfg = TrainConfig {
            epochs: 50,
            batch_size: 32,
            lr: 1e-2,
            early_stopping: false,
            ..TrainConfig::default()
        };
        fit_plain(
            "logreg-relabel",
            probe.as_ref(),
            &labels.rows,
            &targets,
            Loss::XENT,
            &cfg,
            input.seed,
        )
        .map_err(|e| err(&e))?;
        let probs = probe
            .predict_for_score(&labels.rows)
            .map_err(|e| err(&e))?
            .into_iter()
            .map(|p| p as f32)
            .collect();
        Ok(Labels {
            rows: labels.rows,
            probs,
            classes: labels.classes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_overrules_a_label_the_features_do_not_support() {
        // 40 rows: the first feature's sign is the class; row 7's weak label says the opposite.
        let n = 40;
        let mut values = Vec::new();
        let mut probs = Vec::new();
        for i in 0..n {
            let class = i % 2;
            let sign = if class == 1 { 1.0 } else { -1.0 };
            values.extend([sign * (1.0 + (i % 5) as f32 * 0.1), (i % 3) as f32 * 0.1]);
            probs.push(if i == 7 {
                0.05
            } else if class == 1 {
                0.9
            } else {
                0.1
            });
        }
        let labels = Labels {
            rows: (0..n).collect(),
            probs,
            classes: 2,
        };
        let input = StepInput {
            features: Some((&values, 2)),
            questions: None,
            seed: 0,
        };
        let out = build(None).unwrap().apply(labels, &input).unwrap();
        assert_eq!(out.rows.len(), n);
        assert!(
            out.probs[7] > 0.5,
            "row 7 relabelled to class 1: {}",
            out.probs[7]
        );
        for (i, &p) in out.probs.iter().enumerate() {
            assert_eq!(p > 0.5, i % 2 == 1, "row {i}: {p}");
        }
        assert!(build(Some("3")).is_err());
    }
}
