//! The choice heads: multiple choice as a choice among K. One zero-initialised linear score
//! `w·x` is given to every candidate answer of a question (each candidate has its own frozen
//! features), and a question's logits are its candidates' scores, so one softmax picks among
//! them. The head is the same for every position, so it cannot learn "the answer is usually C";
//! a question with fewer candidates than the widest one has its missing positions masked out
//! (logit −10⁹: probability 0, no gradient), so K may vary between questions.
//!
//! Features are standardised, as the linear probe's are, with the statistics of the candidates
//! of the questions it is trained on ([`ChoiceProbe`], probe mode). In fine-tuning mode a
//! one-output [`EncoderClassifier`] scores the candidates ([`ChoiceClassifier`]), under the same
//! mask.
use crate::finetune::EncoderClassifier;
use crate::probe::column_stats;
use crate::trainer::Trainable;
use candle_core::{DType, Device, Result, Tensor, Var};

/// The logit of a missing candidate: far enough below any score that its probability is 0.
const MASKED: f32 = -1e9;

/// K of a choice head: the most candidates any question has (at least 2).
fn widest(questions: &[Vec<usize>]) -> usize {
    questions.iter().map(Vec::len).max().unwrap_or(0).max(2)
}

/// A shared scoring head `[dim → 1]` over the candidates of every question.
pub struct ChoiceProbe {
    /// Standardised candidate features, `[questions, K, dim]`, zero where a question has fewer.
    features: Tensor,
    /// 0 for a candidate, [`MASKED`] for a missing one: `[questions, K]`.
    mask: Tensor,
    weight: Var,
    k: usize,
}

/// The candidates of each question: rows of a candidate feature matrix.
pub struct ChoiceRows<'a> {
    /// Candidate features, `[candidates, dim]` row-major.
    pub values: &'a [f32],
    /// Their width.
    pub dim: usize,
    /// Per question, its candidates' rows in `values`, in choice order.
    pub questions: &'a [Vec<usize>],
}

impl ChoiceProbe {
    /// Builds the head over `rows`, standardising with the candidates of the questions
    /// `fit_questions`.
    pub fn new(rows: &ChoiceRows, fit_questions: &[usize], device: &Device) -> Result<ChoiceProbe> {
        let dim = rows.dim;
        let k = rows
            .questions
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(2);
        let fit_rows: Vec<usize> = fit_questions
            .iter()
            .flat_map(|&q| rows.questions[q].iter().copied())
            .collect();
        let (mean, std) = column_stats(rows.values, dim, &fit_rows);
        let n = rows.questions.len();
        let mut features = vec![0f32; n * k * dim];
        let mut mask = vec![MASKED; n * k];
        for (q, candidates) in rows.questions.iter().enumerate() {
            for (j, &r) in candidates.iter().enumerate() {
                let slot = &mut features[(q * k + j) * dim..(q * k + j + 1) * dim];
                let x = &rows.values[r * dim..(r + 1) * dim];
                for (((s, x), m), sd) in slot.iter_mut().zip(x).zip(&mean).zip(&std) {
                    *s = (x - m) / sd;
                }
                mask[q * k + j] = 0.0;
            }
        }
        Ok(ChoiceProbe {
            features: Tensor::from_vec(features, (n, k, dim), device)?,
            mask: Tensor::from_vec(mask, (n, k), device)?,
            weight: Var::zeros((dim, 1), DType::F32, device)?,
            k,
        })
    }
}

impl Trainable for ChoiceProbe {
    fn logits(&self, rows: &[usize]) -> Result<Tensor> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), self.features.device())?;
        let dim = self.features.dim(2)?;
        let x = self
            .features
            .index_select(&idx, 0)?
            .reshape((rows.len() * self.k, dim))?;
        x.matmul(self.weight.as_tensor())?
            .reshape((rows.len(), self.k))?
            .add(&self.mask.index_select(&idx, 0)?)
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone()]
    }

    fn classes(&self) -> usize {
        self.k
    }
}

/// `row ← softmax(row)`, in f64.
fn softmax_in_place(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Multiple choice as a choice among K in fine-tuning mode: an [`EncoderClassifier`] with one
/// output scores every candidate text, and a question's logits are its candidates' scores (missing
/// positions masked, as [`ChoiceProbe`] does with frozen features).
pub struct ChoiceClassifier {
    scorer: EncoderClassifier,
    questions: Vec<Vec<usize>>,
    k: usize,
}

impl ChoiceClassifier {
    /// `scorer` (built over the candidate texts with `classes: 1`) over `questions`: per
    /// question, its candidates' rows in choice order.
    pub fn new(scorer: EncoderClassifier, questions: Vec<Vec<usize>>) -> ChoiceClassifier {
        let k = widest(&questions);
        ChoiceClassifier {
            scorer,
            questions,
            k,
        }
    }

    /// The candidate rows of `rows` (questions), and where each question's scores go in a
    /// `[rows, K]` layout: a candidate's index among them, or `None` for a missing position.
    fn layout(&self, rows: &[usize]) -> (Vec<usize>, Vec<Option<usize>>) {
        let mut candidates = Vec::new();
        let mut at = Vec::with_capacity(rows.len() * self.k);
        for &q in rows {
            let c = &self.questions[q];
            at.extend((0..self.k).map(|j| (j < c.len()).then(|| candidates.len() + j)));
            candidates.extend(c);
        }
        (candidates, at)
    }
}

impl Trainable for ChoiceClassifier {
    fn logits(&self, rows: &[usize]) -> Result<Tensor> {
        let (candidates, at) = self.layout(rows);
        let scores = self.scorer.logits(&candidates)?.flatten_all()?;
        let device = scores.device().clone();
        // A zero after the scores stands in for every missing position; the mask then sends it
        // to MASKED.
        let padded = Tensor::cat(&[&scores, &Tensor::zeros(1, DType::F32, &device)?], 0)?;
        let idx: Vec<u32> = at
            .iter()
            .map(|a| a.unwrap_or(candidates.len()) as u32)
            .collect();
        let mask: Vec<f32> = at
            .iter()
            .map(|a| if a.is_some() { 0.0 } else { MASKED })
            .collect();
        let idx = Tensor::from_vec(idx, at.len(), &device)?;
        let mask = Tensor::from_vec(mask, (rows.len(), self.k), &device)?;
        padded
            .index_select(&idx, 0)?
            .reshape((rows.len(), self.k))?
            .add(&mask)
    }

    fn vars(&self) -> Vec<Var> {
        self.scorer.vars()
    }

    fn param_groups(&self) -> Vec<(Vec<Var>, f64)> {
        self.scorer.param_groups()
    }

    fn classes(&self) -> usize {
        self.k
    }

    fn predict_classes(&self, rows: &[usize]) -> Result<Vec<f64>> {
        let (candidates, at) = self.layout(rows);
        let scores = self.scorer.scores(&candidates)?;
        let mut out = Vec::with_capacity(at.len());
        for slots in at.chunks(self.k) {
            let mut p: Vec<f64> = slots.iter().flatten().map(|&c| scores[c]).collect();
            softmax_in_place(&mut p);
            let missing = self.k - p.len();
            out.extend(p);
            out.extend(std::iter::repeat_n(0.0, missing));
        }
        Ok(out)
    }
}

/// The head a probe-mode model trains over frozen features `values` (`[rows, dim]`): a choice
/// head when `questions` groups those rows into questions (the model's rows are then the
/// questions), else a linear probe with `classes` outputs. Standardised with `fit_rows`.
pub fn probe_head(
    values: &[f32],
    dim: usize,
    questions: Option<&[Vec<usize>]>,
    fit_rows: &[usize],
    classes: usize,
    device: &Device,
) -> Result<Box<dyn Trainable>> {
    Ok(match questions {
        Some(questions) => {
            let rows = ChoiceRows {
                values,
                dim,
                questions,
            };
            Box::new(ChoiceProbe::new(&rows, fit_rows, device)?)
        }
        None => Box::new(crate::LinearProbe::with_classes(
            values, dim, fit_rows, classes, device,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{soft_ce, Loss};
    use crate::trainer::{fit_plain, TrainConfig};

    /// Two questions: three candidates and two (the second question's third position is
    /// missing). Candidate features are 2-wide.
    fn two_questions() -> (Vec<f32>, Vec<Vec<usize>>) {
        let values = vec![1.0, 0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0, 8.0];
        (values, vec![vec![0, 1, 2], vec![3, 4]])
    }

    #[test]
    fn scores_by_hand_with_the_missing_candidate_masked() {
        let (values, questions) = two_questions();
        let rows = ChoiceRows {
            values: &values,
            dim: 2,
            questions: &questions,
        };
        // Standardised with the first question's candidates only: column 0 is 1, 3, 5 (mean 3,
        // std √(8/3)), column 1 is 0, 2, 4 (mean 2, std √(8/3)).
        let probe = ChoiceProbe::new(&rows, &[0], &Device::Cpu).unwrap();
        assert_eq!(probe.classes(), 3);
        // Zero weights: every present candidate is equally likely, the missing one impossible.
        let p = probe.predict_classes(&[0, 1]).unwrap();
        let third = 1.0 / 3.0;
        for (got, want) in p.iter().zip([third, third, third, 0.5, 0.5, 0.0]) {
            assert!((got - want).abs() < 1e-7, "{p:?}");
        }
        probe
            .weight
            .set(&Tensor::new(&[[1f32], [-2.0]], &Device::Cpu).unwrap())
            .unwrap();
        let s = (8f32 / 3.0).sqrt();
        let score = |x: f32, y: f32| ((x - 3.0) - 2.0 * (y - 2.0)) / s;
        let logits = probe.logits(&[1, 0]).unwrap().to_vec2::<f32>().unwrap();
        let want = [
            [score(7.0, 6.0), score(9.0, 8.0), MASKED],
            [score(1.0, 0.0), score(3.0, 2.0), score(5.0, 4.0)],
        ];
        for (got, want) in logits.iter().flatten().zip(want.iter().flatten()) {
            assert!((got - want).abs() < 1e-5, "{logits:?} vs {want:?}");
        }
    }

    /// The gradient of the soft cross-entropy through the gather and the mask, against central
    /// finite differences, on both weights.
    #[test]
    fn the_gradient_matches_finite_differences() {
        let (values, questions) = two_questions();
        let rows = ChoiceRows {
            values: &values,
            dim: 2,
            questions: &questions,
        };
        let probe = ChoiceProbe::new(&rows, &[0, 1], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[0.2f32, 0.5, 0.3], [0.9, 0.1, 0.0]], &Device::Cpu).unwrap();
        let loss_at = |w: [f32; 2]| {
            probe
                .weight
                .set(&Tensor::new(&[[w[0]], [w[1]]], &Device::Cpu).unwrap())
                .unwrap();
            soft_ce(&probe.logits(&[0, 1]).unwrap(), &targets).unwrap()
        };
        let w = [0.3f32, -0.7];
        let loss = loss_at(w);
        let grads = loss.backward().unwrap();
        let g = grads
            .get(probe.weight.as_tensor())
            .expect("the weight gets a gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let h = 1e-2;
        for i in 0..2 {
            let (mut up, mut down) = (w, w);
            up[i] += h;
            down[i] -= h;
            let f = |w| loss_at(w).to_scalar::<f32>().unwrap() as f64;
            let numeric = (f(up) - f(down)) / (2.0 * h as f64);
            assert!(
                (numeric - g[i] as f64).abs() < 1e-3,
                "weight {i}: {numeric} vs {}",
                g[i]
            );
            assert!(g[i].abs() > 1e-3);
        }
    }

    #[test]
    fn learns_to_pick_the_best_candidate_among_two_to_five() {
        // The right candidate is the one furthest along (1, -1, 0.5); questions have 2 to 5
        // candidates at pseudo-random points.
        let dim = 3;
        let mut values = Vec::new();
        let mut questions = Vec::new();
        let mut answers = Vec::new();
        let mut r = 0usize;
        let mut x = 0.37f32;
        for q in 0..120 {
            let k = 2 + q % 4;
            let mut best = (f32::MIN, 0);
            let mut rows = Vec::new();
            for j in 0..k {
                let mut p = [0f32; 3];
                for v in &mut p {
                    x = (x * 97.13 + 0.71).fract();
                    *v = x * 4.0 - 2.0;
                }
                let s = p[0] - p[1] + 0.5 * p[2];
                if s > best.0 {
                    best = (s, j);
                }
                values.extend(p);
                rows.push(r);
                r += 1;
            }
            questions.push(rows);
            answers.push(best.1);
        }
        let rows = ChoiceRows {
            values: &values,
            dim,
            questions: &questions,
        };
        let all: Vec<usize> = (0..questions.len()).collect();
        let probe = ChoiceProbe::new(&rows, &all, &Device::Cpu).unwrap();
        assert_eq!(probe.classes(), 5);
        let targets: Vec<f32> = answers
            .iter()
            .flat_map(|&a| (0..5).map(move |c| (c == a) as u8 as f32))
            .collect();
        let cfg = TrainConfig {
            epochs: 40,
            batch_size: 16,
            lr: 0.05,
            ..TrainConfig::default()
        };
        fit_plain("choice", &probe, &all, &targets, Loss::XENT, &cfg, 0).unwrap();
        let p = probe.predict_classes(&all).unwrap();
        let right = (0..all.len())
            .filter(|&q| crate::argmax(&p[q * 5..q * 5 + 5]) == answers[q])
            .count();
        assert!(right >= 114, "{right} of 120");
        // Missing positions stay impossible after training.
        for (q, c) in questions.iter().enumerate() {
            assert!(p[q * 5 + c.len()..q * 5 + 5].iter().all(|&v| v == 0.0));
        }
    }
}
