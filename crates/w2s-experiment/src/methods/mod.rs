//! Methods: what a student is trained on and how. A method is zero or more label steps followed
//! by a loss, written as one string: `xent`, `logconf`, `conf-filter:0.8+xent`,
//! `knn:10+conf-filter:0.7+logconf`. Each label step takes the weak labels of B (the rows and the
//! teacher's class-1 probability of each, or its K class probabilities) and returns the rows and
//! probabilities the student trains on. Adding a step is one file with a [`StepKind`] and one line in [`LABEL_STEPS`]
//! (docs/methods.md).
mod bag;
mod conf_filter;
mod knn;
mod logreg_relabel;
mod s2s;
pub mod zeroshot;

pub use bag::resample;
use serde::{Deserialize, Serialize};
use w2s_train::Loss;

/// Every label step, in display order: `--help`, `all`, the report and the tests iterate it.
pub const LABEL_STEPS: &[StepKind] = &[
    conf_filter::KIND,
    knn::KIND,
    logreg_relabel::KIND,
    s2s::KIND,
    bag::KIND,
    zeroshot::KIND,
];

/// A label step's entry in the registry.
pub struct StepKind {
    /// The name before the `:` (`conf-filter`).
    pub name: &'static str,
    /// What the argument is (`T`), empty for a step without one.
    pub arg: &'static str,
    /// The argument `all` runs the step with.
    pub default_arg: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Builds the step from its argument (`None` when the method string has no `:arg`).
    pub build: BuildStep,
}

/// Builds a step from its argument, or says why the argument is wrong.
pub type BuildStep = fn(Option<&str>) -> Result<Box<dyn LabelStep>, String>;

/// The labels a student trains on: rows of the dataset and each row's label.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Dataset rows.
    pub rows: Vec<usize>,
    /// The label of each row, [`Labels::width`] values a row: binary, its class-1 probability
    /// (soft, or 0/1); K > 2 classes, its K class probabilities.
    pub probs: Vec<f32>,
    /// K, the number of classes.
    pub classes: usize,
}

impl Labels {
    /// Values per row: 1 for binary labels (the class-1 probability), K otherwise.
    pub fn width(&self) -> usize {
        width(self.classes)
    }

    /// Row `i`'s values ([`Labels::width`] of them).
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.probs[i * w..(i + 1) * w]
    }

    /// Row `i`'s confidence: its largest class probability (binary: `max(p, 1 − p)`).
    pub fn confidence(&self, i: usize) -> f32 {
        match self.row(i) {
            [p] => p.max(1.0 - p),
            row => row.iter().copied().fold(0f32, f32::max),
        }
    }
}

/// Values a row of labels holds for `classes` classes: 1 for binary, K otherwise.
pub fn width(classes: usize) -> usize {
    if classes == 2 {
        1
    } else {
        classes
    }
}

/// What a step may read besides the labels.
pub struct StepInput<'a> {
    /// The strong model's pooled features of every row of the dataset (row-major), when some
    /// step of the method asked for them ([`LabelStep::needs_features`]).
    pub features: Option<(&'a [f32], usize)>,
    /// A choice view's questions: row i's candidates are rows `questions[i]` of `features`
    /// (`None`: row i's features are row i).
    pub questions: Option<&'a [Vec<usize>]>,
    /// The run's seed.
    pub seed: u64,
}

/// One label step.
pub trait LabelStep {
    /// Canonical form, `name` or `name:arg`; part of the method string and of the store key.
    fn name(&self) -> String;
    /// True when the step reads the strong model's features.
    fn needs_features(&self) -> bool {
        false
    }
    /// The labels after the step (steps that act elsewhere, through the hooks below, return
    /// them unchanged).
    fn apply(&self, labels: Labels, _input: &StepInput) -> Result<Labels, String> {
        Ok(labels)
    }
    /// Strong-to-strong rounds: after the student trains, it relabels its rows and a fresh
    /// student trains on those labels, this many times.
    fn rounds(&self) -> usize {
        0
    }
    /// Weak models trained on bootstrap resamples of A whose labels are averaged (0: the one
    /// weak model trained on A).
    fn bagged_weak_models(&self) -> usize {
        0
    }
    /// No student is trained: the strong model answers zero-shot (a method of this step alone).
    fn zero_shot(&self) -> bool {
        false
    }
}

/// A method: label steps, then a loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Method {
    /// The steps' canonical forms (each parses with [`LABEL_STEPS`]).
    steps: Vec<String>,
    loss: Loss,
}

impl Method {
    /// The method of a loss alone.
    pub fn loss_only(loss: Loss) -> Method {
        Method {
            steps: Vec::new(),
            loss,
        }
    }

    /// Parses `step:arg+...+loss`.
    pub fn parse(text: &str) -> Result<Method, String> {
        let parts: Vec<&str> = text.split('+').map(str::trim).collect();
        let (loss_name, steps) = parts.split_last().ok_or("an empty method")?;
        if let Ok(step) = build_step(loss_name) {
            if step.zero_shot() {
                if !steps.is_empty() {
                    return Err(format!("method '{text}': {} stands alone", step.name()));
                }
                // No student trains, so the loss is never used.
                return Ok(Method {
                    steps: vec![step.name()],
                    loss: Loss::XENT,
                });
            }
        }
        let loss = Loss::parse(loss_name).ok_or_else(|| {
            format!(
                "method '{text}': '{loss_name}' is not a loss (a method ends with one of {})",
                Loss::ALL
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let steps = steps
            .iter()
            .map(|s| match build_step(s) {
                Ok(step) if step.zero_shot() => Err(format!("{} stands alone", step.name())),
                Ok(step) => Ok(step.name()),
                Err(e) => Err(e),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("method '{text}': {e}"))?;
        Ok(Method { steps, loss })
    }

    /// Every loss alone, then every label step with its default argument before `xent`. Not the
    /// zero-shot baseline, which needs a decoder (`all` is used with encoder ladders).
    pub fn all() -> Vec<Method> {
        let mut all: Vec<Method> = Loss::ALL.iter().copied().map(Method::loss_only).collect();
        for kind in LABEL_STEPS.iter().filter(|k| k.name != zeroshot::KIND.name) {
            let arg = (!kind.default_arg.is_empty()).then_some(kind.default_arg);
            let text = match arg {
                Some(a) => format!("{}:{a}+xent", kind.name),
                None => format!("{}+xent", kind.name),
            };
            all.push(Method::parse(&text).expect("registry defaults parse"));
        }
        all
    }

    /// True for the zero-shot baseline (no student is trained).
    pub fn zero_shot(&self) -> bool {
        self.label_steps().iter().any(|s| s.zero_shot())
    }

    /// The canonical string.
    pub fn name(&self) -> String {
        if self.zero_shot() {
            return self.steps.join("+");
        }
        let mut parts = self.steps.clone();
        parts.push(self.loss.name().to_string());
        parts.join("+")
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The label steps' canonical forms (empty for a plain loss).
    pub fn step_names(&self) -> &[String] {
        &self.steps
    }

    /// The label steps, built.
    pub fn label_steps(&self) -> Vec<Box<dyn LabelStep>> {
        self.steps
            .iter()
            .map(|s| build_step(s).expect("steps were checked when the method was parsed"))
            .collect()
    }

    /// Strong-to-strong rounds after each student (the sum over the steps).
    pub fn rounds(&self) -> usize {
        self.label_steps().iter().map(|s| s.rounds()).sum()
    }

    /// Bagged weak models (0: one weak model on A).
    pub fn bagged_weak_models(&self) -> usize {
        self.label_steps()
            .iter()
            .map(|s| s.bagged_weak_models())
            .max()
            .unwrap_or(0)
    }

    /// The forms of the steps that change a student's labels, which name its supervision (rounds
    /// and bagging change the teacher instead, whose key is part of it anyway).
    pub fn label_step_names(&self) -> Vec<String> {
        self.label_steps()
            .iter()
            .filter(|s| s.rounds() == 0 && s.bagged_weak_models() == 0)
            .map(|s| s.name())
            .collect()
    }

    /// Position in the display order: by loss, then plain losses before methods with steps.
    pub fn rank(text: &str) -> (usize, usize, String) {
        match Method::parse(text) {
            Ok(m) => (
                Loss::ALL
                    .iter()
                    .position(|l| *l == m.loss)
                    .unwrap_or(usize::MAX),
                m.steps.len(),
                text.to_string(),
            ),
            Err(_) => (usize::MAX, 0, text.to_string()),
        }
    }
}

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(s: String) -> Result<Method, String> {
        Method::parse(&s)
    }
}

impl From<Method> for String {
    fn from(m: Method) -> String {
        m.name()
    }
}

/// Parses a comma-separated list of methods; `all` expands to [`Method::all`].
pub fn parse_methods(names: &[String]) -> Result<Vec<Method>, String> {
    let mut out: Vec<Method> = Vec::new();
    for n in names.iter().flat_map(|n| n.split(',')) {
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        let new = if n == "all" {
            Method::all()
        } else {
            vec![Method::parse(n)?]
        };
        for m in new {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        return Err("no method given".into());
    }
    Ok(out)
}

/// One line per label step, for `--help`.
pub fn steps_help() -> String {
    LABEL_STEPS
        .iter()
        .map(|k| {
            let form = if k.arg.is_empty() {
                k.name.to_string()
            } else {
                format!("{}:{}", k.name, k.arg)
            };
            format!("  {form:<16} {}", k.help)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn build_step(text: &str) -> Result<Box<dyn LabelStep>, String> {
    let (name, arg) = match text.split_once(':') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (text.trim(), None),
    };
    let kind = LABEL_STEPS.iter().find(|k| k.name == name).ok_or_else(|| {
        format!(
            "unknown label step '{name}'; choose from {}",
            LABEL_STEPS
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    (kind.build)(arg).map_err(|e| format!("{name}: {e}"))
}

/// Parses a step's numeric argument, or its default when none is given.
fn number<T: std::str::FromStr>(arg: Option<&str>, default: &str, what: &str) -> Result<T, String> {
    let text = arg.unwrap_or(default);
    text.parse().map_err(|_| format!("'{text}' is not {what}"))
}

/// Runs `steps` (a method's [`Method::label_steps`]) over `labels`, in order.
pub fn apply_steps(
    steps: &[Box<dyn LabelStep>],
    mut labels: Labels,
    input: &StepInput,
) -> Result<Labels, String> {
    for step in steps {
        labels = step
            .apply(labels, input)
            .map_err(|e| format!("label step {}: {e}", step.name()))?;
        if labels.rows.is_empty() {
            return Err(format!(
                "label step {} left no rows to train on",
                step.name()
            ));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_to_a_canonical_string() {
        let m = Method::parse(" conf-filter:0.80 + knn:10+logconf").unwrap();
        assert_eq!(m.name(), "conf-filter:0.8+knn:10+logconf");
        assert_eq!(m.loss(), Loss::LOGCONF);
        assert_eq!(
            Method::parse("xent").unwrap(),
            Method::loss_only(Loss::XENT)
        );
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"conf-filter:0.8+knn:10+logconf\"");
        assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
    }

    #[test]
    fn bad_methods_say_what_is_wrong() {
        let e = Method::parse("conf-filter:0.8").unwrap_err();
        assert!(e.contains("'conf-filter:0.8' is not a loss"), "{e}");
        let e = Method::parse("nope:3+xent").unwrap_err();
        assert!(e.contains("unknown label step 'nope'"), "{e}");
        let e = Method::parse("conf-filter:high+xent").unwrap_err();
        assert!(e.contains("conf-filter"), "{e}");
        assert!(parse_methods(&[" , ".into()]).is_err());
    }

    #[test]
    fn all_covers_every_loss_and_every_step_of_the_registry() {
        let all = parse_methods(&["all".into()]).unwrap();
        for &loss in Loss::ALL {
            assert!(all.contains(&Method::loss_only(loss)), "{}", loss.name());
        }
        for kind in LABEL_STEPS {
            let reached = all
                .iter()
                .any(|m| m.step_names().iter().any(|s| s.starts_with(kind.name)));
            // The zero-shot baseline needs a decoder, and `all` runs on encoder ladders too.
            assert_eq!(reached, kind.name != zeroshot::KIND.name, "{}", kind.name);
            assert!(steps_help().contains(kind.name));
        }
        assert_eq!(all.len(), Loss::ALL.len() + LABEL_STEPS.len() - 1);
        let twice = parse_methods(&["xent,all".into(), "xent".into()]).unwrap();
        assert_eq!(twice.len(), all.len(), "duplicates are dropped");
    }

    #[test]
    fn display_order_is_by_loss_then_plain_first() {
        let mut v = vec!["knn:10+xent", "logconf", "xent", "conf-filter:0.8+logconf"];
        v.sort_by_key(|m| Method::rank(m));
        assert_eq!(
            v,
            ["xent", "knn:10+xent", "logconf", "conf-filter:0.8+logconf"]
        );
    }
}
