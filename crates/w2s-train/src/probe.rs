//! The probe head: a zero-initialised linear layer on frozen features, standardised with the mean and
//! standard deviation of the rows it is trained on (so no statistics leak from test rows).
//!
//! Zero initialisation (as in the paper) makes every model start at 0.5 / 0.5.
use crate::trainer::Trainable;
use candle_core::{DType, Device, Result, Tensor, Var};

/// A linear head `[dim → K]` over a fixed feature matrix.
pub struct LinearProbe {
    /// Standardised features of every row, `[rows, dim]`.
    features: Tensor,
    weight: Var,
    bias: Var,
}

impl LinearProbe {
    /// Builds a binary head over `values` (`rows × dim`, row-major), standardising every row with
    /// the statistics of `fit_rows`.
    pub fn new(
        values: &[f32],
        dim: usize,
        fit_rows: &[usize],
        device: &Device,
    ) -> Result<LinearProbe> {
        LinearProbe::with_classes(values, dim, fit_rows, 2, device)
    }

    /// [`LinearProbe::new`] with `classes` outputs.
    pub fn with_classes(
        values: &[f32],
        dim: usize,
        fit_rows: &[usize],
        classes: usize,
        device: &Device,
    ) -> Result<LinearProbe> {
        let rows = values.len() / dim.max(1);
        let (mean, std) = column_stats(values, dim, fit_rows);
        let mut standardised = Vec::with_capacity(values.len());
        for r in 0..rows {
            let row = &values[r * dim..(r + 1) * dim];
            standardised.extend(
                row.iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((x, m), s)| (x - m) / s),
            );
        }
        Ok(LinearProbe {
            features: Tensor::from_vec(standardised, (rows, dim), device)?,
            weight: Var::zeros((classes, dim), DType::F32, device)?,
            bias: Var::zeros(classes, DType::F32, device)?,
        })
    }
}

/// Per-column mean and standard deviation over `rows` (a zero deviation becomes 1).
pub(crate) fn column_stats(values: &[f32], dim: usize, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len().max(1) as f64;
    let mut sum = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for &r in rows {
        for (j, &x) in values[r * dim..(r + 1) * dim].iter().enumerate() {
            sum[j] += x as f64;
            sq[j] += (x as f64) * (x as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| {
            let var = (s / n - m * m).max(0.0);
            if var > 1e-12 {
                var.sqrt() as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

impl Trainable for LinearProbe {
    fn logits(&self, rows: &[usize]) -> Result<Tensor> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), self.features.device())?;
        let x = self.features.index_select(&idx, 0)?;
        x.matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }

    fn classes(&self) -> usize {
        self.bias.dim(0).unwrap_or(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::Loss;
    use crate::trainer::{fit, fit_plain, FitRequest, Scored, TrainConfig};

    #[test]
    fn standardises_with_the_fit_rows_only() {
        // Column 0 over rows {0, 1}: mean 2, std 1. Row 2 (10) is not used for the statistics.
        let (mean, std) = column_stats(&[1.0, 5.0, 3.0, 5.0, 10.0, 0.0], 2, &[0, 1]);
        assert_eq!(mean, vec![2.0, 5.0]);
        assert_eq!(std, vec![1.0, 1.0]); // column 1 is constant: std falls back to 1
    }

    #[test]
    fn starts_at_one_half_and_learns_a_separable_problem() {
        // x > 0 ⇒ class 1, on 200 points of a line.
        let values: Vec<f32> = (0..200).map(|i| (i as f32 - 99.5) / 10.0).collect();
        let labels: Vec<u8> = values.iter().map(|&x| (x > 0.0) as u8).collect();
        let rows: Vec<usize> = (0..200).collect();
        let probe = LinearProbe::new(&values, 1, &rows, &Device::Cpu).unwrap();
        assert!(probe
            .predict(&rows)
            .unwrap()
            .iter()
            .all(|&p| (p - 0.5).abs() < 1e-12));
        let targets: Vec<[f32; 2]> = labels.iter().map(|&l| [1.0 - l as f32, l as f32]).collect();
        let acc = |p: &[f64]| {
            p.iter()
                .zip(&labels)
                .filter(|(p, l)| ((**p > 0.5) as u8) == **l)
                .count() as f64
                / p.len() as f64
        };
        let val = Scored {
            rows: &rows,
            score: &acc,
        };
        let cfg = TrainConfig {
            epochs: 30,
            batch_size: 32,
            lr: 0.05,
            ..TrainConfig::default()
        };
        let report = fit(&FitRequest {
            what: "test probe",
            model: &probe,
            rows: &rows,
            targets: targets.as_flattened(),
            loss: Loss::XENT.with(&Default::default()),
            cfg: &cfg,
            seed: 1,
            val: Some(&val),
            oracle: None,
        })
        .unwrap();
        assert!(acc(&probe.predict(&rows).unwrap()) >= 0.99, "{report:?}");
        assert_eq!(report.steps, 30 * 7);
    }

    #[test]
    fn a_three_class_head_starts_uniform_and_learns_three_clusters() {
        // Class c sits around the point (cos 2πc/3, sin 2πc/3): linearly separable.
        let n = 150;
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let values: Vec<f32> = (0..n)
            .flat_map(|i| {
                let a = 2.0 * std::f32::consts::PI * labels[i] as f32 / 3.0;
                let jitter = (i as f32 * 0.37).sin() * 0.2;
                [a.cos() + jitter, a.sin() - jitter]
            })
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let probe = LinearProbe::with_classes(&values, 2, &rows, 3, &Device::Cpu).unwrap();
        assert_eq!(probe.classes(), 3);
        let start = probe.predict_classes(&rows).unwrap();
        assert!(start.iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-6));
        let targets: Vec<f32> = labels
            .iter()
            .flat_map(|&l| (0..3).map(move |c| (c == l) as u8 as f32))
            .collect();
        let cfg = TrainConfig {
            epochs: 30,
            batch_size: 32,
            lr: 0.05,
            ..TrainConfig::default()
        };
        fit_plain("three", &probe, &rows, &targets, Loss::LOGCONF, &cfg, 0).unwrap();
        let p = probe.predict_classes(&rows).unwrap();
        let right = (0..n)
            .filter(|&i| {
                let row = &p[i * 3..i * 3 + 3];
                (0..3).all(|c| row[labels[i]] >= row[c])
            })
            .count();
        assert_eq!(right, n);
        // Wrong-sized targets are refused.
        assert!(fit_plain("three", &probe, &rows, &targets[3..], Loss::XENT, &cfg, 0).is_err());
    }

    fn fit_once(values: &[f32], seed: u64) -> std::result::Result<Vec<f64>, crate::TrainError> {
        let rows: Vec<usize> = (0..values.len()).collect();
        let probe = LinearProbe::new(values, 1, &rows, &Device::Cpu)?;
        let targets: Vec<[f32; 2]> = values
            .iter()
            .map(|&x| if x > 0.0 { [0.2, 0.8] } else { [0.7, 0.3] })
            .collect();
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 16,
            ..TrainConfig::default()
        };
        fit_plain(
            "probe",
            &probe,
            &rows,
            targets.as_flattened(),
            Loss::LOGCONF,
            &cfg,
            seed,
        )?;
        Ok(probe.predict(&rows)?)
    }

    #[test]
    fn same_seed_same_numbers() {
        let values: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32 - 50.0).collect();
        assert_eq!(fit_once(&values, 3).unwrap(), fit_once(&values, 3).unwrap());
        assert_ne!(fit_once(&values, 3).unwrap(), fit_once(&values, 4).unwrap());
    }

    #[test]
    fn a_nan_loss_stops_training_with_where_it_happened() {
        let mut values: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
        values[7] = f32::NAN;
        let err = fit_once(&values, 0).unwrap_err().to_string();
        assert!(
            err.contains("loss is NaN at step 0 (epoch 0) of probe"),
            "{err}"
        );
    }

    #[test]
    fn gradient_accumulation_matches_the_whole_batch() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 37) % 64) as f32 - 32.0).collect();
        let rows: Vec<usize> = (0..64).collect();
        let targets: Vec<[f32; 2]> = values
            .iter()
            .map(|&x| if x > 3.0 { [0.2, 0.8] } else { [0.7, 0.3] })
            .collect();
        let run = |minibatch_size: usize| {
            let probe = LinearProbe::new(&values, 1, &rows, &Device::Cpu).unwrap();
            let cfg = TrainConfig {
                epochs: 3,
                batch_size: 32,
                minibatch_size,
                lr: 0.05,
                ..TrainConfig::default()
            };
            fit_plain(
                "acc",
                &probe,
                &rows,
                targets.as_flattened(),
                Loss::XENT,
                &cfg,
                2,
            )
            .unwrap();
            probe.predict(&rows).unwrap()
        };
        let whole = run(0);
        let accumulated = run(8);
        for (a, b) in whole.iter().zip(&accumulated) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(
            whole.iter().any(|p| (p - 0.5).abs() > 0.1),
            "training moved the head"
        );
    }

    /// Adam hides a wrongly scaled gradient (its update is scale-free), so the accumulated
    /// gradient itself is compared with the whole batch's.
    #[test]
    fn accumulated_gradient_equals_the_batch_mean_gradient() {
        let values: Vec<f32> = (0..30).map(|i| ((i * 37) % 30) as f32 - 15.0).collect();
        let rows: Vec<usize> = (0..30).collect();
        let targets: Vec<[f32; 2]> = values
            .iter()
            .map(|&x| if x > 3.0 { [0.2, 0.8] } else { [0.7, 0.3] })
            .collect();
        let probe = LinearProbe::new(&values, 1, &rows, &Device::Cpu).unwrap();
        let vars = probe.vars();
        let grads = |minibatch: usize| {
            let (g, loss) = crate::trainer::batch_gradients(
                &probe,
                &vars,
                &rows,
                targets.as_flattened(),
                minibatch,
                crate::losses::soft_ce,
            )
            .unwrap();
            let g = g.unwrap();
            let flat: Vec<f32> = vars
                .iter()
                .flat_map(|v| {
                    g.get(v)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                })
                .collect();
            (flat, loss)
        };
        let (whole, whole_loss) = grads(30);
        // 8 + 8 + 8 + 6 rows: unequal minibatches must be weighted by their share.
        let (accumulated, accumulated_loss) = grads(8);
        assert!((whole_loss - accumulated_loss).abs() < 1e-6);
        assert!(whole.iter().any(|g| g.abs() > 1e-3));
        for (a, b) in whole.iter().zip(&accumulated) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
