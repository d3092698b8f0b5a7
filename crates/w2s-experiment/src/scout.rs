//! Is there a gap to recover? Before a sweep, `w2s scout` trains each model of a ladder on ground
//! truth and compares every weaker → stronger pair: a PGR means something only where the strong
//! ceiling beats the weak model by more than seed noise.
use crate::metrics::MeanCi;
use serde::{Deserialize, Serialize};

/// The smallest mean gap, in accuracy, called usable.
pub const MIN_USABLE_GAP: f64 = 0.03;

/// How far above chance (the test set's majority share) a weak model must be before its labels
/// are more than noise: below it (weak models at 51-59% on balanced sets), docs/results.md
/// measured students at or under the weak model even where the ceiling gap is usable.
pub const NEAR_CHANCE: f64 = 0.10;

/// Whether a weak model's mean test accuracy is within [`NEAR_CHANCE`] of `chance`.
pub fn near_chance(weak_acc: f64, chance: f64) -> bool {
    weak_acc < chance + NEAR_CHANCE
}

/// What a pair's ceiling − weak gap allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The 95% interval excludes 0 and the mean is at least 3 points: PGR is measurable.
    Usable,
    /// A positive mean gap, but within seed noise or under 3 points.
    Marginal,
    /// The ceiling does not beat the weak model on average.
    NoGap,
}

impl Verdict {
    /// The verdict on a gap measured over seeds (with a single seed the interval is unknown, so
    /// a gap is at best marginal).
    pub fn of(gap: &MeanCi) -> Verdict {
        if gap.mean.is_nan() || gap.mean <= 0.0 {
            Verdict::NoGap
        } else if gap.mean - gap.ci95 > 0.0 && gap.mean >= MIN_USABLE_GAP {
            Verdict::Usable
        } else {
            Verdict::Marginal
        }
    }

    /// How it is printed.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Usable => "usable",
            Verdict::Marginal => "marginal",
            Verdict::NoGap => "no gap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::mean_ci;

    #[test]
    fn verdicts_by_hand() {
        // gaps of 4, 5, 6 points: mean 5, CI 4.303 · 1/√3 · 1 point = 2.48 points → usable
        assert_eq!(Verdict::of(&mean_ci(&[0.04, 0.05, 0.06])), Verdict::Usable);
        // mean 2 points, interval excludes 0 but under 3 points → marginal
        assert_eq!(
            Verdict::of(&mean_ci(&[0.019, 0.02, 0.021])),
            Verdict::Marginal
        );
        // mean 5 points but CI 4.303 · 5/√3 = 12.4 points includes 0 → marginal
        assert_eq!(Verdict::of(&mean_ci(&[0.0, 0.05, 0.10])), Verdict::Marginal);
        assert_eq!(Verdict::of(&mean_ci(&[-0.01, 0.0, -0.02])), Verdict::NoGap);
        assert_eq!(Verdict::of(&mean_ci(&[0.0, 0.0])), Verdict::NoGap);
        // one seed: no interval, so never usable
        assert_eq!(Verdict::of(&mean_ci(&[0.2])), Verdict::Marginal);
    }

    #[test]
    fn near_chance_by_hand() {
        // winowhy in docs/journal.md (measured before its package was lost): MiniLM-L3 at 55.3% and MiniLM-L6 at 58.8% on a balanced
        // test set
        assert!(near_chance(0.553, 0.5));
        assert!(near_chance(0.588, 0.5));
        // pang-lee-sentences: 71.1%
        assert!(!near_chance(0.711, 0.5));
        // an unbalanced test set: 70% majority, so 79% is near chance and 81% is not
        assert!(near_chance(0.79, 0.70));
        assert!(!near_chance(0.81, 0.70));
    }
}
