//! The per-configuration summary over seeds: mean accuracies, PGR with a 95% t-interval, the
//! gap's verdict, agreement and the mean training curves.
use crate::metrics::{self, mean_ci};
use crate::record::RunRecord;
use serde::{Deserialize, Serialize};

/// Mean and 95% CI over the seeds of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Dataset name.
    pub dataset: String,
    /// Weak supervisor.
    pub weak: String,
    /// Strong student.
    pub strong: String,
    /// Bootstrapping chain, if any.
    pub chain: Option<Vec<String>>,
    /// Student loss.
    pub loss: String,
    /// The method (label steps and loss).
    #[serde(default)]
    pub method: String,
    /// The configuration id its runs share.
    #[serde(default)]
    pub config: String,
    /// The row's label in tables and plots: the method, and `@config` after it when the runs of
    /// the same dataset and models hold more than one configuration.
    #[serde(default)]
    pub series: String,
    /// Weak label form.
    pub labels: String,
    /// Seeds summarised.
    pub n_seeds: usize,
    /// Mean weak accuracy.
    #[serde(with = "crate::record::nan_or_null")]
    pub weak_acc: f64,
    /// Mean ceiling accuracy.
    #[serde(with = "crate::record::nan_or_null")]
    pub ceiling_acc: f64,
    /// Mean student accuracy.
    #[serde(with = "crate::record::nan_or_null")]
    pub student_acc: f64,
    /// 95% CI half-width of the student accuracy.
    #[serde(with = "crate::record::nan_or_null")]
    pub student_acc_ci95: f64,
    /// Mean of the per-seed ceiling − weak gaps.
    #[serde(with = "crate::record::nan_or_null")]
    pub gap: f64,
    /// 95% CI half-width of the gap.
    #[serde(with = "crate::record::nan_or_null")]
    pub gap_ci95: f64,
    /// Mean per-seed PGR; `None` ("no gap") unless the ceiling beats the weak model in every seed.
    pub pgr_mean: Option<f64>,
    /// 95% CI half-width of the PGR.
    pub pgr_ci95: Option<f64>,
    /// Mean per-seed AUROC PGR (same rule on AUROC).
    pub pgr_auroc_mean: Option<f64>,
    /// True when the gap's 95% interval includes 0: the PGR is mostly noise.
    pub gap_within_noise: bool,
    /// Mean student–weak agreement.
    #[serde(with = "crate::record::nan_or_null")]
    pub agreement: f64,
    /// Mean agreement on the weak model's errors.
    #[serde(with = "crate::record::nan_or_null")]
    pub agreement_on_weak_errors: f64,
    /// For chains: mean accuracy of direct transfer on the same seeds.
    pub direct_student_acc: Option<f64>,
    /// Mean student test accuracy after each epoch over the seeds (see [`RunRecord::student_curve`]).
    #[serde(default, with = "crate::record::nan_or_null::vec")]
    pub student_curve: Vec<f64>,
    /// Mean ceiling test accuracy after each epoch over the seeds.
    #[serde(default, with = "crate::record::nan_or_null::vec")]
    pub ceiling_curve: Vec<f64>,
}

impl SummaryRow {
    /// `w2s scout`'s verdict on this row's ceiling − weak gap. The report's median PGR counts the
    /// usable pairs only, by the rule the scout and docs/results.md use.
    pub fn verdict(&self) -> crate::scout::Verdict {
        crate::scout::Verdict::of(&crate::metrics::MeanCi {
            mean: self.gap,
            ci95: self.gap_ci95,
            n: self.n_seeds,
        })
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Mean and CI of optional per-seed values, `None` unless every seed has one.
fn all_or_none(values: Vec<Option<f64>>) -> Option<metrics::MeanCi> {
    let v: Option<Vec<f64>> = values.into_iter().collect();
    v.filter(|v| !v.is_empty()).map(|v| mean_ci(&v))
}

/// Groups runs by configuration (all but the seed) in first-seen order and summarises each.
pub fn summarize(runs: &[RunRecord]) -> Vec<SummaryRow> {
    let method = |r: &RunRecord| {
        if r.method.is_empty() {
            r.loss.clone()
        } else {
            r.method.clone()
        }
    };
    let pair = |r: &RunRecord| format!("{}|{}|{}|{:?}", r.dataset, r.weak, r.strong, r.chain);
    // The configurations of each (pair, method): the id hashes the method too, so only several
    // ids for one method mean several settings.
    let mut configs: Vec<(String, Vec<&str>)> = Vec::new();
    for r in runs {
        let p = format!("{}|{}", pair(r), method(r));
        match configs.iter_mut().find(|(q, _)| *q == p) {
            Some((_, c)) if !c.contains(&r.config.as_str()) => c.push(&r.config),
            Some(_) => {}
            None => configs.push((p, vec![&r.config])),
        }
    }
    let several = |r: &RunRecord| {
        let p = format!("{}|{}", pair(r), method(r));
        configs.iter().any(|(q, c)| *q == p && c.len() > 1)
    };
    let mut groups: Vec<(String, Vec<&RunRecord>)> = Vec::new();
    for r in runs {
        let id = format!("{}|{}|{}|{}", pair(r), method(r), r.config, r.labels);
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, v)) => v.push(r),
            None => groups.push((id, vec![r])),
        }
    }
    groups
        .into_iter()
        .map(|(_, rs)| {
            let first = rs[0];
            let gaps: Vec<f64> = rs.iter().map(|r| r.ceiling_acc - r.weak_acc).collect();
            let gap = mean_ci(&gaps);
            let student = mean_ci(&rs.iter().map(|r| r.student_acc).collect::<Vec<_>>());
            let pgr = all_or_none(rs.iter().map(|r| r.pgr).collect());
            let pgr_auroc = all_or_none(rs.iter().map(|r| r.pgr_auroc).collect());
            let direct = all_or_none(rs.iter().map(|r| r.direct_student_acc).collect());
            SummaryRow {
                dataset: first.dataset.clone(),
                weak: first.weak.clone(),
                strong: first.strong.clone(),
                chain: first.chain.clone(),
                loss: first.loss.clone(),
                method: method(first),
                config: first.config.clone(),
                series: if several(first) {
                    let config = if first.config.is_empty() {
                        "earlier"
                    } else {
                        &first.config
                    };
                    format!("{} @{config}", method(first))
                } else {
                    method(first)
                },
                labels: first.labels.clone(),
                n_seeds: rs.len(),
                weak_acc: mean(rs.iter().map(|r| r.weak_acc)),
                ceiling_acc: mean(rs.iter().map(|r| r.ceiling_acc)),
                student_acc: student.mean,
                student_acc_ci95: student.ci95,
                gap: gap.mean,
                gap_ci95: gap.ci95,
                pgr_mean: pgr.map(|p| p.mean),
                pgr_ci95: pgr.map(|p| p.ci95),
                pgr_auroc_mean: pgr_auroc.map(|p| p.mean),
                gap_within_noise: gap.mean - gap.ci95 <= 0.0 || gap.ci95.is_nan(),
                agreement: mean(rs.iter().map(|r| r.agreement)),
                agreement_on_weak_errors: mean(rs.iter().map(|r| r.agreement_on_weak_errors)),
                direct_student_acc: direct.map(|d| d.mean),
                student_curve: mean_curve(rs.iter().map(|r| &r.student_curve)),
                ceiling_curve: mean_curve(rs.iter().map(|r| &r.ceiling_curve)),
            }
        })
        .collect()
}

/// The per-epoch mean of curves over seeds, as long as the shortest curve (seeds that stopped
/// early, or records without a curve, shorten it).
fn mean_curve<'a>(curves: impl Iterator<Item = &'a Vec<f64>>) -> Vec<f64> {
    let curves: Vec<&Vec<f64>> = curves.collect();
    let len = curves.iter().map(|c| c.len()).min().unwrap_or(0);
    (0..len)
        .map(|e| mean(curves.iter().map(|c| c[e])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::run;

    #[test]
    fn summary_pgr_is_the_mean_of_seed_pgrs() {
        // PGRs 0.5 and 0.25 → mean 0.375; t(1) = 12.706, sd = 0.1768, CI = 12.706·0.125 = 1.588
        let rows = summarize(&[run(0, 0.7, 0.8, 0.75), run(1, 0.7, 0.9, 0.75)]);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert!((r.pgr_mean.unwrap() - 0.375).abs() < 1e-12);
        assert!((r.pgr_ci95.unwrap() - 12.706 * 0.125).abs() < 1e-9);
        assert!((r.gap - 0.15).abs() < 1e-12);
        assert!(r.gap_within_noise); // two seeds, CI 12.706·0.05 > 0.15
    }

    #[test]
    fn curves_are_averaged_per_epoch_over_the_seeds() {
        let mut a = run(0, 0.6, 0.8, 0.7);
        let mut b = run(1, 0.6, 0.8, 0.7);
        a.student_curve = vec![0.60, 0.70, 0.75];
        b.student_curve = vec![0.64, 0.72];
        a.ceiling_curve = vec![0.8, 0.9];
        b.ceiling_curve = vec![0.7, 0.8];
        let rows = summarize(&[a, b]);
        let close = |x: &[f64], y: &[f64]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-12)
        };
        assert!(
            close(&rows[0].student_curve, &[0.62, 0.71]),
            "{:?}",
            rows[0].student_curve
        );
        assert!(close(&rows[0].ceiling_curve, &[0.75, 0.85]));
        // A record without a curve (written before curves were kept) leaves none to average.
        let mut old = run(2, 0.6, 0.8, 0.7);
        old.student_curve.clear();
        let rows = summarize(&[run(0, 0.6, 0.8, 0.7), old]);
        assert!(rows[0].student_curve.is_empty());
    }

    #[test]
    fn one_seed_without_a_gap_makes_the_summary_no_gap() {
        let rows = summarize(&[run(0, 0.7, 0.8, 0.75), run(1, 0.7, 0.69, 0.75)]);
        assert_eq!(rows[0].pgr_mean, None);
        assert_eq!(rows[0].pgr_ci95, None);
    }

    #[test]
    fn runs_of_different_configurations_are_never_merged() {
        let mut other = run(0, 0.7, 0.8, 0.78);
        other.config = "12345678".into();
        let rows = summarize(&[run(0, 0.7, 0.8, 0.75), run(1, 0.7, 0.9, 0.75), other]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].n_seeds, 2);
        assert_eq!(rows[0].series, "xent @c0ffee00");
        assert_eq!(rows[1].series, "xent @12345678");
        assert_eq!(rows[1].student_acc, 0.78);
        // One configuration per method: the series is the method alone, although every method
        // has an id of its own.
        let mut logconf = run(0, 0.7, 0.8, 0.76);
        logconf.method = "logconf".into();
        logconf.config = "0badcafe".into();
        let rows = summarize(&[run(0, 0.7, 0.8, 0.75), logconf]);
        assert_eq!(rows[0].series, "xent");
        assert_eq!(rows[1].series, "logconf");
    }
}
