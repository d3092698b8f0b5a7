//! Metrics of a binary weak-to-strong run, on class-1 probabilities `p` and 0/1 labels (K classes:
//! [`crate::kclass`]).
//!
//! Definitions (also in docs/metrics.md):
//! - accuracy: share of rows where `p > 0.5` equals the label (ties at 0.5 predict class 0);
//! - AUROC: probability that a random positive outranks a random negative (ties count ½);
//! - ECE: 10 equal-width bins over the confidence `max(p, 1−p)`, the row-weighted mean of
//!   |accuracy − mean confidence| per bin;
//! - PGR: `(student − weak) / (ceiling − weak)`, only when `ceiling > weak`;
//! - agreement: share of rows where two models predict the same class;
//! - misfit: mean squared difference between the student's and the supervisor's probabilities
//!   (Charikar et al. 2024 state the gain bound with this distance).
use serde::{Deserialize, Serialize};

/// The hard prediction of a class-1 probability.
pub fn predict(p: f64) -> u8 {
    (p > 0.5) as u8
}

/// Share of correct hard predictions.
pub fn accuracy(p: &[f64], labels: &[u8]) -> f64 {
    assert_eq!(
        p.len(),
        labels.len(),
        "predictions and labels differ in length"
    );
    if p.is_empty() {
        return f64::NAN;
    }
    p.iter()
        .zip(labels)
        .filter(|(p, l)| predict(**p) == **l)
        .count() as f64
        / p.len() as f64
}

/// Area under the ROC curve (Mann–Whitney U with average ranks for ties); NaN with one class only.
pub fn auroc(p: &[f64], labels: &[u8]) -> f64 {
    assert_eq!(
        p.len(),
        labels.len(),
        "predictions and labels differ in length"
    );
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut ranks = vec![0.0; p.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = avg;
        }
        i = j + 1;
    }
    let n_pos = labels.iter().filter(|&&l| l == 1).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == 1)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Expected calibration error with `bins` equal-width confidence bins.
pub fn ece(p: &[f64], labels: &[u8], bins: usize) -> f64 {
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut correct = vec![0.0; bins];
    for (&p, &l) in p.iter().zip(labels) {
        let c = p.max(1.0 - p);
        // confidence lies in [0.5, 1]; bins span [0, 1] as usual
        let b = ((c * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += c;
        correct[b] += (predict(p) == l) as u8 as f64;
    }
    let n = p.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (correct[b] - conf[b]).abs() / n)
        .sum()
}

/// Performance gap recovered, or `None` ("no gap") when the ceiling does not beat the weak model.
pub fn pgr(weak: f64, ceiling: f64, student: f64) -> Option<f64> {
    (ceiling > weak).then(|| (student - weak) / (ceiling - weak))
}

/// Share of rows on which two models predict the same class; with `mask`, only rows where it is true.
pub fn agreement(a: &[f64], b: &[f64], mask: Option<&[bool]>) -> f64 {
    let rows: Vec<usize> = (0..a.len())
        .filter(|&i| mask.is_none_or(|m| m[i]))
        .collect();
    if rows.is_empty() {
        return f64::NAN;
    }
    rows.iter()
        .filter(|&&i| predict(a[i]) == predict(b[i]))
        .count() as f64
        / rows.len() as f64
}

/// Mean squared distance between two models' class-1 probabilities.
pub fn misfit(student: &[f64], supervisor: &[f64]) -> f64 {
    student
        .iter()
        .zip(supervisor)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / student.len() as f64
}

/// Mean and 95% confidence half-width (Student's t) of per-seed values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Mean over seeds.
    pub mean: f64,
    /// Half-width of the 95% interval (NaN with a single seed).
    pub ci95: f64,
    /// Number of values.
    pub n: usize,
}

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and t-based 95% interval of `values`.
pub fn mean_ci(values: &[f64]) -> MeanCi {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanCi {
            mean,
            ci95: f64::NAN,
            n,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T975.get(n - 2).copied().unwrap_or(1.96);
    MeanCi {
        mean,
        ci95: t * (var / n as f64).sqrt(),
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_by_hand() {
        assert_eq!(accuracy(&[0.9, 0.2, 0.5, 0.7], &[1, 0, 1, 0]), 0.5);
    }

    #[test]
    fn auroc_by_hand_with_ties() {
        // positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4), (0.8>0.1), (0.4=0.4 → ½), (0.4>0.1) = 3.5/4
        assert_eq!(auroc(&[0.8, 0.4, 0.4, 0.1], &[1, 1, 0, 0]), 0.875);
        assert_eq!(auroc(&[0.1, 0.9], &[1, 0]), 0.0);
        assert!(auroc(&[0.1, 0.9], &[1, 1]).is_nan());
    }

    #[test]
    fn ece_by_hand() {
        // confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct): bin 9: |1 - 1.8|/3, bin 6: |1 - 0.6|/3
        let e = ece(&[0.9, 0.1, 0.6], &[1, 1, 1], 10);
        assert!((e - (0.8 + 0.4) / 3.0).abs() < 1e-12, "{e}");
    }

    #[test]
    fn pgr_by_hand_and_no_gap() {
        assert_eq!(pgr(0.80, 0.85, 0.82), Some((0.82 - 0.80) / (0.85 - 0.80)));
        assert_eq!(pgr(0.80, 0.80, 0.82), None);
        assert_eq!(pgr(0.80, 0.79, 0.82), None);
        assert!(pgr(0.8, 0.9, 0.75).unwrap() < 0.0);
    }

    #[test]
    fn agreement_overall_and_on_a_mask() {
        let a = [0.9, 0.2, 0.7, 0.4];
        let b = [0.8, 0.6, 0.1, 0.3];
        assert_eq!(agreement(&a, &b, None), 0.5);
        assert_eq!(agreement(&a, &b, Some(&[true, true, false, false])), 0.5);
        assert_eq!(agreement(&a, &b, Some(&[false, false, false, true])), 1.0);
    }

    #[test]
    fn misfit_by_hand() {
        assert!((misfit(&[0.9, 0.5], &[0.6, 0.5]) - 0.045).abs() < 1e-12);
    }

    #[test]
    fn mean_ci_by_hand() {
        let m = mean_ci(&[1.0, 2.0, 3.0]);
        assert_eq!(m.mean, 2.0);
        // sd 1, n 3, t(2) 4.303 → 4.303/√3
        assert!((m.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(mean_ci(&[1.0]).ci95.is_nan());
    }
}
