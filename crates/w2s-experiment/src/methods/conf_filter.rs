//! `conf-filter:T`: train only on the rows whose weak label is confident, max(p, 1 − p) ≥ T.
use super::{number, LabelStep, Labels, StepInput, StepKind};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "conf-filter",
    arg: "T",
    // Probe-trained weak models are often unsure: at 0.8 some seeds keep no row at all.
    default_arg: "0.6",
    help: "keep the rows whose label has max(p, 1-p) >= T (T in [0.5, 1])",
    build,
};

struct ConfFilter {
    threshold: f64,
}

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    let threshold: f64 = number(arg, KIND.default_arg, "a confidence threshold")?;
    if !(0.5..=1.0).contains(&threshold) {
        return Err(format!(
            "the threshold must lie in [0.5, 1], got {threshold}"
        ));
    }
    Ok(Box::new(ConfFilter { threshold }))
}

impl LabelStep for ConfFilter {
    fn name(&self) -> String {
        format!("{}:{}", KIND.name, self.threshold)
    }

    fn apply(&self, labels: Labels, _input: &StepInput) -> Result<Labels, String> {
        let (rows, probs) = labels
            .rows
            .iter()
            .zip(&labels.probs)
            .filter(|(_, &p)| f64::from(p.max(1.0 - p)) >= self.threshold)
            .map(|(&r, &p)| (r, p))
            .unzip();
        let rows: Vec<usize> = rows;
        if rows.is_empty() {
            let most = labels
                .probs
                .iter()
                .map(|&p| p.max(1.0 - p))
                .fold(0f32, f32::max);
            return Err(format!(
                "no row's weak label has confidence >= {} (the most confident of {} is {most:.3}); \
                 lower the threshold",
                self.threshold,
                labels.rows.len()
            ));
        }
        Ok(Labels { rows, probs })
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
        };
        let input = StepInput {
            features: None,
            seed: 0,
        };
        let out = step.apply(labels, &input).unwrap();
        // 0.9 and 0.15 (confidence 0.85) pass; 0.8 is exactly at the threshold; 0.79 and 0.5 fail.
        assert_eq!(out.rows, [3, 7, 9]);
        assert_eq!(out.probs, [0.9, 0.15, 0.8]);
        let unsure = Labels {
            rows: vec![1, 2],
            probs: vec![0.6, 0.3],
        };
        let err = step.apply(unsure, &input).unwrap_err();
        assert!(err.contains("most confident of 2 is 0.700"), "{err}");
        assert!(build(Some("0.4")).is_err());
        assert!(build(Some("x")).is_err());
    }
}
