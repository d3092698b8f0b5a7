//! A synthetic task with a known ground truth, generated in milliseconds: the testbed of
//! teacher–student analyses of weak-to-strong generalisation (e.g. Medvedev et al. 2025,
//! arXiv 2503.02877, on random features).
//!
//! Each row is a point `x ~ N(0, I_dim)`, written as its coordinates (the row's text), and its
//! label is the side of a fixed random hyperplane, `1[w·x > 0]`, flipped with probability
//! `flip` (so that no model reaches 100%). The `synthetic` models of `w2s-experiment` read the
//! coordinates back as their features: the strong one exactly, weak ones through noise.
//!
//! A reference is `synthetic` or `synthetic?rows=4000&dim=32&flip=0.1&seed=0` (any subset of
//! the keys, in any order).
use crate::{DataError, Example, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The name every synthetic reference starts with.
pub const NAME: &str = "synthetic";

/// What a synthetic dataset is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Synthetic {
    /// Rows.
    pub rows: usize,
    /// Coordinates per row.
    pub dim: usize,
    /// Probability that a row's label is flipped.
    pub flip: f64,
    /// Seed of the hyperplane, the points and the flips.
    pub seed: u64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            rows: 4000,
            dim: 32,
            flip: 0.1,
            seed: 0,
        }
    }
}

impl Synthetic {
    /// The settings of `reference`, or `None` when it is not a synthetic reference.
    pub fn parse(reference: &str) -> Option<Result<Synthetic>> {
        let query = match reference.strip_prefix(NAME)? {
            "" => "",
            rest => rest.strip_prefix('?')?,
        };
        let bad = |reason: String| {
            Some(Err(DataError::File {
                path: reference.into(),
                reason,
            }))
        };
        let mut s = Synthetic::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return bad(format!("`{pair}`: write KEY=VALUE (rows, dim, flip, seed)"));
            };
            let parsed = match key {
                "rows" => value.parse().map(|v| s.rows = v).is_ok(),
                "dim" => value.parse().map(|v| s.dim = v).is_ok(),
                "flip" => value.parse().map(|v| s.flip = v).is_ok(),
                "seed" => value.parse().map(|v| s.seed = v).is_ok(),
                _ => return bad(format!("unknown key `{key}` (rows, dim, flip, seed)")),
            };
            if !parsed {
                return bad(format!("`{value}` is not a valid {key}"));
            }
        }
        if s.rows < 20 || s.dim == 0 || !(0.0..0.5).contains(&s.flip) {
            return bad(format!(
                "rows must be at least 20 (got {}), dim at least 1 (got {}), flip in [0, 0.5) (got {})",
                s.rows, s.dim, s.flip
            ));
        }
        Some(Ok(s))
    }

    /// The rows: ids `row-I`, each its own group.
    pub fn examples(&self) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let w: Vec<f64> = (0..self.dim).map(|_| gaussian(&mut rng)).collect();
        (0..self.rows)
            .map(|i| {
                let x: Vec<f64> = (0..self.dim).map(|_| gaussian(&mut rng)).collect();
                // Rounded as written, so that the label is the side of the text's own point.
                let x: Vec<f64> = x.iter().map(|v| (v * 1e4).round() / 1e4).collect();
                let side = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() > 0.0;
                let flipped = rng.gen::<f64>() < self.flip;
                let text = x
                    .iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                Example {
                    id: format!("row-{i}"),
                    text,
                    label: (side != flipped) as u8,
                    group: format!("row-{i}"),
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// A standard normal draw (Box–Muller).
pub fn gaussian(rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let v: f64 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_into_settings() {
        assert_eq!(
            Synthetic::parse("synthetic").unwrap().unwrap(),
            Synthetic::default()
        );
        let s = Synthetic::parse("synthetic?dim=8&rows=100&flip=0&seed=3")
            .unwrap()
            .unwrap();
        assert_eq!((s.rows, s.dim, s.flip, s.seed), (100, 8, 0.0, 3));
        assert!(Synthetic::parse("tweets").is_none());
        assert!(Synthetic::parse("synthetics").is_none());
        for bad in [
            "synthetic?dim=x",
            "synthetic?size=3",
            "synthetic?rows=5",
            "synthetic?flip=0.5",
            "synthetic?dim",
        ] {
            assert!(Synthetic::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_the_side_of_one_hyperplane_up_to_the_flips() {
        let s = Synthetic {
            rows: 2000,
            dim: 4,
            flip: 0.0,
            seed: 1,
        };
        let rows = s.examples();
        assert_eq!(rows, s.examples(), "deterministic");
        assert_eq!(rows.len(), 2000);
        let x: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.text.split(' ').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert!(x.iter().all(|p| p.len() == 4));
        // Without flips the classes are linearly separable: a perceptron finds a separator.
        let mut w = [0.0f64; 4];
        for _ in 0..200 {
            for (p, r) in x.iter().zip(&rows) {
                let y = if r.label == 1 { 1.0 } else { -1.0 };
                if y * p.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() <= 0.0 {
                    for k in 0..4 {
                        w[k] += y * p[k];
                    }
                }
            }
        }
        let errors = x
            .iter()
            .zip(&rows)
            .filter(|(p, r)| {
                (p.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() > 0.0) != (r.label == 1)
            })
            .count();
        assert!(errors <= 2, "{errors} rows on the wrong side");
        let positives = rows.iter().filter(|r| r.label == 1).count();
        assert!((800..1200).contains(&positives), "{positives}");
        // With flips, about that share of labels disagrees with the separable ones.
        let noisy = Synthetic { flip: 0.2, ..s }.examples();
        let flipped = noisy
            .iter()
            .zip(&rows)
            .filter(|(a, b)| a.label != b.label)
            .count();
        assert!(
            (320..480).contains(&flipped),
            "{flipped} of 2000 flipped at 0.2"
        );
    }
}
