//! `bag:K`: K weak models, each trained on a bootstrap resample of A (|A| rows drawn with
//! replacement, seeded by the run's seed and the member's index), whose class-1 probabilities
//! are averaged into the weak labels (bagging). The run's weak accuracy is the ensemble's, so PGR
//! is measured against the supervisor the student actually had.
use super::{number, LabelStep, StepKind};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "bag",
    arg: "K",
    default_arg: "3",
    help: "K weak models on bootstrap resamples of A; their labels are averaged",
    build,
};

struct Bag {
    models: usize,
}

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    let models: usize = number(arg, KIND.default_arg, "a model count")?;
    if models < 2 {
        return Err("K must be at least 2".into());
    }
    Ok(Box::new(Bag { models }))
}

impl LabelStep for Bag {
    fn name(&self) -> String {
        format!("{}:{}", KIND.name, self.models)
    }

    fn bagged_weak_models(&self) -> usize {
        self.models
    }
}

/// The rows of bootstrap resample `member` of `rows`: `rows.len()` draws with replacement,
/// from a generator seeded by `(seed, member)`.
pub fn resample(rows: &[usize], seed: u64, member: usize) -> Vec<usize> {
    use rand::{Rng, SeedableRng};
    // ChaCha: the same stream on every platform and rand version, so resamples are reproducible.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (member as u64 + 1),
    );
    (0..rows.len())
        .map(|_| rows[rng.gen_range(0..rows.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;

    #[test]
    fn resamples_draw_from_the_rows_with_replacement_and_depend_on_seed_and_member() {
        let rows: Vec<usize> = (100..200).collect();
        let a = resample(&rows, 0, 0);
        assert_eq!(a.len(), rows.len());
        assert!(a.iter().all(|r| rows.contains(r)));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        // About 1 − 1/e ≈ 63% of the rows appear in a bootstrap resample.
        assert!((50..80).contains(&distinct.len()), "{}", distinct.len());
        assert_eq!(a, resample(&rows, 0, 0), "seeded");
        assert_ne!(a, resample(&rows, 0, 1));
        assert_ne!(a, resample(&rows, 1, 0));
        let m = Method::parse("bag:3+logconf").unwrap();
        assert_eq!(m.bagged_weak_models(), 3);
        assert!(m.label_step_names().is_empty());
        assert!(Method::parse("bag:1+xent").is_err());
    }
}
