//! `conf-filter:T`: train only on the rows whose weak label is confident, max(p, 1 − p) ≥ T
//! (K classes: the largest class probability).
use super::{number, LabelStep, Labels, StepInput, StepKind};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "conf-filter",
    arg: "T",
    // Probe-trained weak models are often unsure: at 0.8 some seeds keep no row at all.
    default_arg: "0.6",
    help: "keep the rows whose label has max(p, 1-p) >= T (T in (0, 1]; K classes: the top probability)",
    build,
};

struct ConfFilter {
    threshold: f64,
}

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    let threshold: f64 = number(arg, KIND.default_arg, "a confidence threshold")?;
    // Binary confidences are at least 0.5, K-class ones at least 1/K: below that a threshold
    // keeps every row, which is allowed but says nothing.
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(format!(
            "the threshold must lie in (0, 1] (binary confidences are at least 0.5, K classes' at least 1/K), got {threshold}"
        ));
    }
    Ok(Box::new(ConfFilter { threshold }))
}

impl LabelStep for ConfFilter {
    fn name(&self) -> String {
        format!("{}:{}", KIND.name, self.threshold)
    }

    fn apply(&self, labels: Labels, _input: &StepInput) -> Result<Labels, String> {
        let keep: Vec<usize> = (0..labels.rows.len())
            .filter(|&i| f64::from(labels.confidence(i)) >= self.threshold)
            .collect();
        if keep.is_empty() {
            let most = (0..labels.rows.len())
                .map(|i| labels.confidence(i))
                .fold(0f32, f32::max);
            return Err(format!(
                "no row's weak label has confidence >= {} (the most confident of {} is {most:.3}); \
                 lower the threshold",
                self.threshold,
                labels.rows.len()
            ));
        }
        Ok(Labels {
            rows: keep.iter().map(|&i| labels.rows[i]).collect(),
            probs: keep.iter().flat_map(|&i| labels.row(i)).copied().collect(),
            classes: labels.classes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_confident_rows_of_either_class() {
        let step = build(Some("0.8")).unwrap();
        assert_eq!(step.name(), "conf-filter:0.8");
        let labels = Labels {
            rows: vec![3, 5, 7, 9, 11],
            probs: vec![0.9, 0.5, 0.15, 0.8, 0.79],
            classes: 2,
        };
        let input = StepInput {
            features: None,
            questions: None,
            seed: 0,
        };
        let out = step.apply(labels, &input).unwrap();
        // 0.9 and 0.15 (confidence 0.85) pass; 0.8 is exactly at the threshold; 0.79 and 0.5 fail.
        assert_eq!(out.rows, [3, 7, 9]);
        assert_eq!(out.probs, [0.9, 0.15, 0.8]);
        let unsure = Labels {
            rows: vec![1, 2],
            probs: vec![0.6, 0.3],
            classes: 2,
        };
        let err = step.apply(unsure, &input).unwrap_err();
        assert!(err.contains("most confident of 2 is 0.700"), "{err}");
        assert!(build(Some("0")).is_err());
        assert!(build(Some("1.2")).is_err());
        assert!(build(Some("x")).is_err());
    }

    #[test]
    fn three_classes_filter_on_the_top_probability_and_keep_whole_rows() {
        let step = build(Some("0.5")).unwrap();
        let labels = Labels {
            rows: vec![4, 6, 8],
            probs: vec![0.2, 0.5, 0.3, 0.4, 0.3, 0.3, 0.1, 0.1, 0.8],
            classes: 3,
        };
        let input = StepInput {
            features: None,
            questions: None,
            seed: 0,
        };
        let out = step.apply(labels, &input).unwrap();
        assert_eq!(out.rows, [4, 8]);
        assert_eq!(out.probs, [0.2, 0.5, 0.3, 0.1, 0.1, 0.8]);
        assert_eq!(out.classes, 3);
    }
}
