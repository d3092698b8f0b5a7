//! `knn:K`: relabels every training row by the mean weak label of its K nearest neighbours among
//! the other training rows, by cosine similarity of the strong model's features (EleutherAI w2s's
//! kNN relabelling). Rows that the strong model represents alike get alike labels, which smooths
//! out the weak model's isolated mistakes.
use super::{number, LabelStep, Labels, StepInput, StepKind};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "knn",
    arg: "K",
    default_arg: "10",
    help: "relabel each row by the mean label of its K nearest rows (strong features)",
    build,
};

struct Knn {
    k: usize,
}

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    let k: usize = number(arg, KIND.default_arg, "a neighbour count")?;
    if k == 0 {
        return Err("K must be at least 1".into());
    }
    Ok(Box::new(Knn { k }))
}

/// `v / |v|` (zero stays zero).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter()
        .map(|x| if norm > 0.0 { x / norm } else { 0.0 })
        .collect()
}

impl LabelStep for Knn {
    fn name(&self) -> String {
        format!("{}:{}", KIND.name, self.k)
    }

    fn needs_features(&self) -> bool {
        true
    }

    fn apply(&self, labels: Labels, input: &StepInput) -> Result<Labels, String> {
        let (values, dim) = input.features.ok_or("needs the strong model's features")?;
        if input.questions.is_some() {
            // A question has one feature row per candidate, and its classes are answer
            // positions, which mean nothing from one question to the next.
            return Err(
                "compares rows by their features, and a question of a choice view has one per candidate; logreg-relabel works there"
                    .into(),
            );
        }
        let n = labels.rows.len();
        if n < 2 {
            return Err("needs at least two rows".into());
        }
        let k = self.k.min(n - 1);
        let feats: Vec<Vec<f32>> = labels
            .rows
            .iter()
            .map(|&r| unit(&values[r * dim..(r + 1) * dim]))
            .collect();
        let w = labels.width();
        let probs = (0..n)
            .flat_map(|i| {
                let mut sims: Vec<(f32, usize)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        let s: f32 = feats[i].iter().zip(&feats[j]).map(|(a, b)| a * b).sum();
                        (s, j)
                    })
                    .collect();
                // Most similar first; ties by position, so the result does not depend on sorting.
                sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                // Each class's probability averaged over the neighbours (binary: class 1's).
                let near = &sims[..k];
                (0..w)
                    .map(|c| near.iter().map(|&(_, j)| labels.row(j)[c]).sum::<f32>() / k as f32)
                    .collect::<Vec<_>>()
            })
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
    fn a_row_takes_the_mean_label_of_its_nearest_neighbours() {
        // Rows 0-2 point one way, rows 3-4 the other; row 2's weak label is wrong.
        let values = [
            1.0, 0.0, //
            0.9, 0.1, //
            0.8, 0.2, //
            0.0, 1.0, //
            0.1, 0.9,
        ];
        let labels = Labels {
            rows: vec![0, 1, 2, 3, 4],
            probs: vec![0.0, 0.2, 1.0, 1.0, 0.8],
            classes: 2,
        };
        let input = StepInput {
            features: Some((&values, 2)),
            questions: None,
            seed: 0,
        };
        let out = build(Some("2")).unwrap().apply(labels, &input).unwrap();
        assert_eq!(out.rows, [0, 1, 2, 3, 4]);
        // Row 0's two nearest are rows 1 and 2: (0.2 + 1.0) / 2; row 2's are rows 1 and 0: 0.1;
        // row 3's are row 4 and then row 2 (cosine 0.24 beats row 1's 0.11): (0.8 + 1.0) / 2;
        // row 4's are rows 3 and 2: 1.0.
        let want = [0.6, 0.5, 0.1, 0.9, 1.0];
        for (got, want) in out.probs.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?}", out.probs);
        }
        let no_feats = StepInput {
            features: None,
            questions: None,
            seed: 0,
        };
        let one = Labels {
            rows: vec![0],
            probs: vec![0.5],
            classes: 2,
        };
        assert!(build(None).unwrap().apply(one, &no_feats).is_err());
        assert!(build(Some("0")).is_err());
    }

    #[test]
    fn three_classes_average_whole_probability_rows() {
        // The same geometry with three-class labels: row 0's two nearest are rows 1 and 2.
        let values = [1.0, 0.0, 0.9, 0.1, 0.8, 0.2, 0.0, 1.0, 0.1, 0.9];
        let labels = Labels {
            rows: vec![0, 1, 2, 3, 4],
            probs: vec![
                1.0, 0.0, 0.0, //
                0.6, 0.2, 0.2, //
                0.0, 0.0, 1.0, //
                0.0, 1.0, 0.0, //
                0.2, 0.8, 0.0,
            ],
            classes: 3,
        };
        let input = StepInput {
            features: Some((&values, 2)),
            questions: None,
            seed: 0,
        };
        let out = build(Some("2")).unwrap().apply(labels, &input).unwrap();
        assert_eq!(out.classes, 3);
        let want = [0.3, 0.1, 0.6];
        for (got, want) in out.probs[..3].iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?}", out.probs);
        }
        // Every row still sums to one.
        for row in out.probs.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
