//! Models of the synthetic task ([`w2s_data::synthetic`]): no weights, features read from the
//! row itself, so that a whole experiment (weak, ceiling, students, chains, every method) runs in
//! milliseconds, with no download, as a testbed for users and for the graph's own tests.
//!
//! `synthetic` sees a row's point `x` exactly; `synthetic:σ` sees `x + σ·ε`, with `ε ~ N(0, I)`
//! fixed per row (seeded by the row's text and σ). A noisier view is a weaker model: with the
//! point's true side given by a hyperplane through the origin, a linear probe on `x + σ·ε` is
//! right about `1 − arccos(1/√(1+σ²))/π` of the time (75% at σ = 1) before label flips, the
//! exact view nearly always. The noise is independent of `x`, so a strong student sees weak
//! labels whose errors it cannot predict from its own features: the setting in which
//! weak-to-strong generalisation is expected.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use w2s_data::Dataset;
use w2s_models::Features;

/// The name every synthetic model starts with.
pub const NAME: &str = "synthetic";

/// A synthetic model: the noise of its view of each row's point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticModel {
    /// Standard deviation of the Gaussian noise added to every coordinate (0: the exact point).
    pub noise: f64,
}

impl SyntheticModel {
    /// The model `name` refers to, or `None` when it is not a synthetic model.
    pub fn parse(name: &str) -> Option<Result<SyntheticModel, String>> {
        let noise = match name.strip_prefix(NAME)? {
            "" => return Some(Ok(SyntheticModel { noise: 0.0 })),
            rest => rest.strip_prefix(':')?,
        };
        Some(match noise.parse::<f64>() {
            Ok(noise) if noise.is_finite() && noise >= 0.0 => Ok(SyntheticModel { noise }),
            _ => Err(format!(
                "{name}: the noise after `synthetic:` must be a number ≥ 0 (e.g. synthetic:1.5)"
            )),
        })
    }

    /// The model's identity in store keys.
    pub fn fingerprint(&self) -> String {
        format!("synthetic-noise-{}", self.noise)
    }

    /// The features of every row of `data`: its coordinates, plus this model's noise.
    pub fn features(&self, data: &Dataset) -> Result<Features, String> {
        let mut values = Vec::new();
        let mut dim = None;
        for (i, e) in data.examples.iter().enumerate() {
            let x: Vec<f32> = e
                .text
                .split_whitespace()
                .map(|v| v.parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    format!(
                        "{}: row {} ({}) is not a list of numbers; synthetic models read rows of a `synthetic` dataset",
                        data.name,
                        i + 1,
                        e.id
                    )
                })?;
            if *dim.get_or_insert(x.len()) != x.len() || x.is_empty() {
                return Err(format!(
                    "{}: row {} ({}) has {} coordinates, the first row {}",
                    data.name,
                    i + 1,
                    e.id,
                    x.len(),
                    dim.unwrap_or(0)
                ));
            }
            if self.noise == 0.0 {
                values.extend(x);
                continue;
            }
            let seed =
                w2s_assets::cache::sha256_bytes(format!("{}|{}", self.noise, e.text).as_bytes());
            let seed = u64::from_str_radix(&seed[..16], 16).unwrap_or(0);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            values.extend(
                x.iter()
                    .map(|&v| v + (self.noise * w2s_data::synthetic::gaussian(&mut rng)) as f32),
            );
        }
        let dim = dim.unwrap_or(0);
        Ok(Features {
            rows: data.examples.len(),
            values,
            dim,
            path: Default::default(),
            from_cache: false,
            tokens: 0,
            resumed: 0,
            seconds: 0.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use w2s_data::synthetic::Synthetic;

    #[test]
    fn names_parse() {
        assert_eq!(
            SyntheticModel::parse("synthetic"),
            Some(Ok(SyntheticModel { noise: 0.0 }))
        );
        assert_eq!(
            SyntheticModel::parse("synthetic:1.5"),
            Some(Ok(SyntheticModel { noise: 1.5 }))
        );
        assert!(SyntheticModel::parse("synthetic:-1").unwrap().is_err());
        assert!(SyntheticModel::parse("synthetic:x").unwrap().is_err());
        assert!(SyntheticModel::parse("minilm-l3").is_none());
        assert!(SyntheticModel::parse("synthetic-ish").is_none());
    }

    #[test]
    fn the_exact_view_is_the_point_and_noise_is_fixed_per_row() {
        let data = Dataset::new(
            "synthetic",
            Synthetic {
                rows: 50,
                dim: 3,
                flip: 0.0,
                seed: 2,
            }
            .examples(),
        );
        let exact = SyntheticModel { noise: 0.0 }.features(&data).unwrap();
        assert_eq!((exact.rows, exact.dim), (50, 3));
        let first: Vec<f32> = data.examples[0]
            .text
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(&exact.values[..3], first.as_slice());
        let noisy = SyntheticModel { noise: 2.0 };
        let a = noisy.features(&data).unwrap();
        assert_eq!(
            a.values,
            noisy.features(&data).unwrap().values,
            "deterministic"
        );
        // The noise has about the asked standard deviation.
        let n = a.values.len() as f64;
        let var = a
            .values
            .iter()
            .zip(&exact.values)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / n;
        assert!((var.sqrt() - 2.0).abs() < 0.4, "noise sd {}", var.sqrt());
        let words = Dataset::new(
            "t",
            vec![w2s_data::Example {
                id: "a".into(),
                text: "not numbers".into(),
                label: 0,
                group: "a".into(),
                ..Default::default()
            }],
        );
        let err = noisy.features(&words).unwrap_err();
        assert!(err.contains("row 1 (a) is not a list of numbers"), "{err}");
    }
}
