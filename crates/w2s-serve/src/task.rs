//! A served task: its public rows, its hidden test labels and baselines, and the scoring of a
//! submission against the test split, the only split ever scored.
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// A row a student trains on, as served: no field tells its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainRow {
    /// The dataset's row id.
    pub id: String,
    /// The row's text.
    pub text: String,
    /// The weak supervisor's prediction: the probability of label 1 for a binary task, each
    /// class's probability for K classes.
    pub weak_label: Value,
}

/// A test row, as served: id and text only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestRow {
    /// The dataset's row id.
    pub id: String,
    /// The row's text.
    pub text: String,
}

/// Test accuracies of the reference models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracies {
    /// The weak supervisor (trained on A).
    pub weak: f64,
    /// The strong model trained on B's ground truth.
    pub ceiling: f64,
    /// The strong model trained on the weak labels of B with the task's method.
    pub naive_student: f64,
}

/// A task's baselines: at the served split's seed, against which submissions are scored, and the
/// mean over the seeds run from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    /// At the served split (the test rows submissions are scored on).
    pub split: Accuracies,
    /// Means over `seeds` seeds (each its own split).
    pub mean: Accuracies,
    /// Seeds in the mean.
    pub seeds: usize,
    /// The naive student's method.
    pub method: String,
}

/// One task, ready to serve.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its id in the API.
    pub id: String,
    /// The dataset, as the task file names it.
    pub dataset: String,
    /// The weak supervisor.
    pub weak: String,
    /// The strong student.
    pub strong: String,
    /// K.
    pub classes: usize,
    /// B and val with the weak labels.
    pub train: Vec<TrainRow>,
    /// The test rows.
    pub test: Vec<TestRow>,
    /// The test rows' ground truth, in `test`'s order; never served.
    pub labels: Vec<u8>,
    /// Reference accuracies.
    pub baselines: Baselines,
}

/// How many wrong entries a 422 message shows of each kind.
const SHOWN: usize = 5;

/// A scored submission, rounded to 0.001.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Test accuracy.
    pub accuracy: f64,
    /// `(accuracy − weak) / (ceiling − weak)` at the served split; `None` without a gap.
    pub pgr: Option<f64>,
}

/// Rounds to 0.001: the resolution of every score the server gives out.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Task {
    /// Scores predictions keyed by test id: for a binary task each the probability of label 1
    /// (class 1 when above 0.5), for K classes each a class index. An error, for a 422, when ids
    /// are missing or not test ids or a value is not a prediction, saying how many of each and
    /// showing a few.
    pub fn score(&self, predictions: &serde_json::Map<String, Value>) -> Result<Score, String> {
        let index: HashMap<&str, usize> = self
            .test
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut predicted = vec![None; self.test.len()];
        let mut present = vec![false; self.test.len()];
        let (mut unknown, mut bad_values) = (Vec::new(), Vec::new());
        for (id, value) in predictions {
            match index.get(id.as_str()) {
                None => unknown.push(id.as_str()),
                Some(&i) => {
                    present[i] = true;
                    match self.class_of(value) {
                        Some(c) => predicted[i] = Some(c),
                        None => bad_values.push(format!("{id}: {value}")),
                    }
                }
            }
        }
        let missing: Vec<&str> = self
            .test
            .iter()
            .zip(&present)
            .filter(|(_, &p)| !p)
            .map(|(r, _)| r.id.as_str())
            .collect();
        let mut problems = Vec::new();
        let mut report = |what: String, items: &[String]| {
            if !items.is_empty() {
                let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
                let more = if items.len() > SHOWN { ", …" } else { "" };
                problems.push(format!(
                    "{what}: {} ({}{more})",
                    items.len(),
                    shown.join(", ")
                ));
            }
        };
        let quote = |ids: &[&str]| ids.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>();
        report("test ids missing".into(), &quote(&missing));
        let train = unknown
            .iter()
            .filter(|id| self.train.iter().any(|r| r.id == **id))
            .count();
        let of_train = if train > 0 {
            format!(", {train} of them training rows")
        } else {
            String::new()
        };
        report(
            format!("ids that are not test ids{of_train}"),
            &quote(&unknown),
        );
        let expected = if self.classes == 2 {
            "a probability of label 1, in [0, 1]".to_string()
        } else {
            format!("a class index, 0 to {}", self.classes - 1)
        };
        report(format!("values that are not {expected}"), &bad_values);
        if !problems.is_empty() {
            return Err(format!(
                "predictions must cover exactly the {} test ids: {}",
                self.test.len(),
                problems.join("; ")
            ));
        }
        let correct = predicted
            .iter()
            .zip(&self.labels)
            .filter(|(p, &y)| **p == Some(y as usize))
            .count();
        let accuracy = correct as f64 / self.test.len().max(1) as f64;
        let b = self.baselines.split;
        let pgr = (b.ceiling > b.weak).then(|| round3((accuracy - b.weak) / (b.ceiling - b.weak)));
        Ok(Score {
            accuracy: round3(accuracy),
            pgr,
        })
    }

    /// The class a submitted value predicts, `None` when it is not a prediction.
    fn class_of(&self, value: &Value) -> Option<usize> {
        let x = value.as_f64()?;
        if self.classes == 2 {
            return (0.0..=1.0).contains(&x).then_some(usize::from(x > 0.5));
        }
        let c = value.as_u64()? as usize;
        (c < self.classes).then_some(c)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A binary task of 4 test rows, labels 1 0 1 1, weak 0.5 and ceiling 0.75 at the split.
    pub(crate) fn binary_task() -> Task {
        let acc = Accuracies {
            weak: 0.5,
            ceiling: 0.75,
            naive_student: 0.6,
        };
        Task {
            id: "t".into(),
            dataset: "d".into(),
            weak: "w".into(),
            strong: "s".into(),
            classes: 2,
            train: vec![TrainRow {
                id: "b1".into(),
                text: "train row".into(),
                weak_label: json!(0.8),
            }],
            test: ["a", "b", "c", "d"]
                .iter()
                .map(|id| TestRow {
                    id: id.to_string(),
                    text: format!("row {id}"),
                })
                .collect(),
            labels: vec![1, 0, 1, 1],
            baselines: Baselines {
                split: acc,
                mean: acc,
                seeds: 5,
                method: "xent".into(),
            },
        }
    }

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scores_by_hand() {
        let t = binary_task();
        // Classes 1 0 0 1 against 1 0 1 1: 3 of 4 right; PGR (0.75 − 0.5) / 0.25 = 1.
        let s = t
            .score(&map(json!({"a": 0.9, "b": 0.1, "c": 0.5, "d": 1})))
            .unwrap();
        assert_eq!(
            s,
            Score {
                accuracy: 0.75,
                pgr: Some(1.0)
            }
        );
        // All class 1: 3 of 4 again; all class 0: 1 of 4, PGR (0.25 − 0.5) / 0.25 = −1.
        let s = t
            .score(&map(json!({"a": 0, "b": 0, "c": 0, "d": 0})))
            .unwrap();
        assert_eq!(
            s,
            Score {
                accuracy: 0.25,
                pgr: Some(-1.0)
            }
        );
        // 0.5 is class 0, just above is class 1.
        let s = t
            .score(&map(json!({"a": 0.5000001, "b": 0.5, "c": 1.0, "d": 0.7})))
            .unwrap();
        assert_eq!(s.accuracy, 1.0);
        // No gap, no PGR.
        let mut flat = binary_task();
        flat.baselines.split.ceiling = 0.5;
        assert_eq!(
            flat.score(&map(json!({"a": 1, "b": 0, "c": 1, "d": 1})))
                .unwrap()
                .pgr,
            None
        );
        assert_eq!(round3(2.0 / 3.0), 0.667);
    }

    #[test]
    fn refuses_what_is_not_exactly_the_test_ids() {
        let t = binary_task();
        let err = t.score(&map(json!({"a": 1, "b": 0}))).unwrap_err();
        assert!(err.contains("test ids missing: 2 (\"c\", \"d\")"), "{err}");
        let err = t
            .score(&map(json!({"a": 1, "b": 0, "c": 1, "d": 1, "b1": 1})))
            .unwrap_err();
        assert!(
            err.contains("ids that are not test ids, 1 of them training rows: 1 (\"b1\")"),
            "{err}"
        );
        let err = t
            .score(&map(json!({"a": 1.5, "b": "x", "c": -0.1, "d": null})))
            .unwrap_err();
        assert!(
            err.contains("values that are not a probability of label 1, in [0, 1]: 4"),
            "{err}"
        );
        // Many wrong ids: five shown, the rest elided.
        let many: serde_json::Map<String, Value> =
            (0..9).map(|i| (format!("x{i}"), json!(0))).collect();
        let err = t.score(&many).unwrap_err();
        assert!(
            err.contains("ids that are not test ids: 9") && err.contains(", …"),
            "{err}"
        );
        assert!(err.contains("test ids missing: 4"), "{err}");
    }

    #[test]
    fn k_classes_take_class_indices() {
        let mut t = binary_task();
        t.classes = 3;
        t.labels = vec![2, 0, 1, 1];
        let s = t
            .score(&map(json!({"a": 2, "b": 0, "c": 2, "d": 1})))
            .unwrap();
        assert_eq!(s.accuracy, 0.75);
        let err = t
            .score(&map(json!({"a": 3, "b": 0.5, "c": 2, "d": 1})))
            .unwrap_err();
        assert!(
            err.contains("values that are not a class index, 0 to 2: 2"),
            "{err}"
        );
    }
}
