//! Metrics on K-class probabilities (`[n, K]` rows summing to 1) and labels `0..K`.
//!
//! Binary is the K = 2 case: with rows `(1 − p, p)` each function here gives what its binary
//! counterpart in [`crate::metrics`] gives on `p` (a test checks it on random data):
//! - the prediction is the argmax, ties going to the lowest class (binary: `p > 0.5`);
//! - accuracy: share of rows whose prediction is the label;
//! - ECE: 10 equal-width bins over the confidence, the largest probability;
//! - AUROC: the macro mean of one-vs-rest AUROCs over the classes present with both outcomes
//!   (for K = 2 both are the binary AUROC);
//! - agreement: share of rows where two models predict the same class.
use crate::metrics;

/// Probabilities of `n` rows over `k` classes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Probs {
    /// Classes.
    pub k: usize,
    /// `n · k` values.
    pub values: Vec<f64>,
}

impl Probs {
    /// Wraps `values` as rows of `k`; panics when the length is not a multiple of `k`.
    pub fn new(k: usize, values: Vec<f64>) -> Probs {
        assert!(
            k >= 2 && values.len().is_multiple_of(k),
            "{} values are not rows of {k}",
            values.len()
        );
        Probs { k, values }
    }

    /// The binary case: rows `(1 − p, p)`.
    pub fn binary(p: &[f64]) -> Probs {
        Probs::new(2, p.iter().flat_map(|&p| [1.0 - p, p]).collect())
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.k
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.k..(i + 1) * self.k]
    }

    /// Column `c`: every row's probability of class `c`.
    pub fn column(&self, c: usize) -> Vec<f64> {
        (0..self.rows()).map(|i| self.row(i)[c]).collect()
    }
}

/// The predicted class of a row: the argmax, the lowest class on ties.
pub fn predict(row: &[f64]) -> usize {
    w2s_train::argmax(row)
}

/// Share of rows predicted as their label; NaN with no rows.
pub fn accuracy(p: &Probs, labels: &[usize]) -> f64 {
    assert_eq!(
        p.rows(),
        labels.len(),
        "predictions and labels differ in length"
    );
    if labels.is_empty() {
        return f64::NAN;
    }
    (0..p.rows())
        .filter(|&i| predict(p.row(i)) == labels[i])
        .count() as f64
        / labels.len() as f64
}

/// Expected calibration error with `bins` equal-width bins over the largest probability.
pub fn ece(p: &Probs, labels: &[usize], bins: usize) -> f64 {
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut correct = vec![0.0; bins];
    for (i, &l) in labels.iter().enumerate() {
        let row = p.row(i);
        let c = row[predict(row)];
        let b = ((c * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += c;
        correct[b] += (predict(row) == l) as u8 as f64;
    }
    let n = labels.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (correct[b] - conf[b]).abs() / n)
        .sum()
}

/// Macro one-vs-rest AUROC over the classes that have both positives and negatives; NaN when
/// none has.
pub fn auroc(p: &Probs, labels: &[usize]) -> f64 {
    let scores: Vec<f64> = (0..p.k)
        .map(|c| {
            let is_c: Vec<u8> = labels.iter().map(|&l| (l == c) as u8).collect();
            metrics::auroc(&p.column(c), &is_c)
        })
        .filter(|a| !a.is_nan())
        .collect();
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().sum::<f64>() / scores.len() as f64
}

/// Share of rows (all, or those where `mask` is true) on which two models predict the same class.
pub fn agreement(a: &Probs, b: &Probs, mask: Option<&[bool]>) -> f64 {
    let rows: Vec<usize> = (0..a.rows())
        .filter(|&i| mask.is_none_or(|m| m[i]))
        .collect();
    if rows.is_empty() {
        return f64::NAN;
    }
    rows.iter()
        .filter(|&&i| predict(a.row(i)) == predict(b.row(i)))
        .count() as f64
        / rows.len() as f64
}

/// Half the mean squared distance between two models' probability rows: for K = 2 this is the
/// binary misfit `mean (p − q)²` on class 1.
pub fn misfit(a: &Probs, b: &Probs) -> f64 {
    let total: f64 = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    total / 2.0 / a.rows() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Three classes, four rows, worked by hand.
    #[test]
    fn three_classes_by_hand() {
        let p = Probs::new(
            3,
            vec![
                0.7, 0.2, 0.1, // predicts 0, label 0: right, confidence .7
                0.1, 0.3, 0.6, // predicts 2, label 1: wrong, .6
                0.4, 0.4, 0.2, // tie 0/1 → 0, label 1: wrong, .4
                0.2, 0.2, 0.6, // predicts 2, label 2: right, .6
            ],
        );
        let labels = [0, 1, 1, 2];
        assert_eq!(accuracy(&p, &labels), 0.5);
        // Bins: .7 → bin 7 (1 right), .6 ×2 → bin 6 (1 right), .4 → bin 4 (0 right).
        // |1 − .7| + |1 − 1.2| + |0 − .4| = .3 + .2 + .4 = .9, over 4 rows.
        assert!((ece(&p, &labels, 10) - 0.9 / 4.0).abs() < 1e-12);
        // Class 0 vs rest: scores (.7 | .1, .4, .2) → 3 of 3 pairs won: 1.
        // Class 1: positives (.3, .4) vs negatives (.2, .2): 4 of 4 won: 1.
        // Class 2: positive (.6) vs (.1, .6, .2): wins 2, tie ½ → 2.5 / 3.
        let want = (1.0 + 1.0 + 2.5 / 3.0) / 3.0;
        assert!((auroc(&p, &labels) - want).abs() < 1e-12);
        let q = Probs::new(
            3,
            vec![0.1, 0.8, 0.1, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.3, 0.3, 0.4],
        );
        // Predictions 1, 2, 0, 2 vs 0, 2, 0, 2.
        assert_eq!(agreement(&p, &q, None), 0.75);
        assert_eq!(agreement(&p, &q, Some(&[true, false, false, false])), 0.0);
        // Squared distances per row: .72, .26, .06, .06 → half their mean.
        assert!((misfit(&p, &q) - (0.72 + 0.26 + 0.06 + 0.06) / 8.0).abs() < 1e-12);
    }

    /// K = 2 gives the binary metrics on random probabilities, ties at 0.5 included.
    #[test]
    fn two_classes_are_the_binary_metrics() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let n = rng.gen_range(1..60);
            let p: Vec<f64> = (0..n)
                .map(|_| {
                    if rng.gen_bool(0.1) {
                        0.5
                    } else {
                        (rng.gen_range(0..20) as f64) / 19.0
                    }
                })
                .collect();
            let l: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
            let lk: Vec<usize> = l.iter().map(|&x| x as usize).collect();
            let q: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
            let (pk, qk) = (Probs::binary(&p), Probs::binary(&q));
            assert_eq!(accuracy(&pk, &lk), metrics::accuracy(&p, &l));
            assert!((ece(&pk, &lk, 10) - metrics::ece(&p, &l, 10)).abs() < 1e-12);
            let (a, b) = (auroc(&pk, &lk), metrics::auroc(&p, &l));
            assert!(
                a == b || (a - b).abs() < 1e-12 || (a.is_nan() && b.is_nan()),
                "{a} vs {b}"
            );
            assert_eq!(agreement(&pk, &qk, None), metrics::agreement(&p, &q, None));
            assert!((misfit(&pk, &qk) - metrics::misfit(&p, &q)).abs() < 1e-12);
        }
    }
}
