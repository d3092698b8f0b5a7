//! `zeroshot`: no training. The strong model (a decoder) reads each row inside a per-dataset
//! prompt and the student's class-1 probability is its next-token probability of the class-1
//! answer word against the class-0 one. It is the baseline that unsupervised elicitation is
//! measured against, reported in the same table (the weak model and the ceiling are trained as
//! usual, so it has a PGR too). The templates are in `zeroshot.toml` next to this file.
use super::{LabelStep, StepKind};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "zeroshot",
    arg: "",
    default_arg: "",
    help: "no training: the strong decoder's next-token answer after a prompt (alone, no loss)",
    build,
};

struct ZeroShot;

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    match arg {
        None => Ok(Box::new(ZeroShot)),
        Some(a) => Err(format!("takes no argument, got '{a}'")),
    }
}

impl LabelStep for ZeroShot {
    fn name(&self) -> String {
        KIND.name.to_string()
    }

    fn zero_shot(&self) -> bool {
        true
    }
}

/// A prompt and the two answers, class 0 first.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The prompt, with `{text}` where the row goes.
    pub template: String,
    /// The answer words of class 0 and class 1.
    pub answers: [String; 2],
}

impl Template {
    /// The prompt of one row.
    pub fn prompt(&self, text: &str) -> String {
        self.template.replace("{text}", text)
    }
}

/// The template of `dataset` (the `[default]` one for a dataset without its own).
pub fn template_for(dataset: &str) -> Template {
    let all: BTreeMap<String, Template> =
        toml::from_str(include_str!("zeroshot.toml")).expect("zeroshot.toml parses (tested)");
    all.get(dataset)
        .or_else(|| all.get("default"))
        .cloned()
        .expect("zeroshot.toml has a default (tested)")
}

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;

    #[test]
    fn templates_parse_and_every_dataset_gets_one() {
        let t = template_for("tweets");
        assert_eq!(t.answers, [" negative", " positive"]);
        assert!(t
            .prompt("I love it")
            .contains("self-driving cars: I love it\n"));
        assert_eq!(template_for("my-own.jsonl").answers, [" no", " yes"]);
        let m = Method::parse("zeroshot").unwrap();
        assert!(m.zero_shot());
        assert_eq!(m.name(), "zeroshot");
        assert!(Method::parse("zeroshot+xent").is_err());
        assert!(Method::parse("knn:3+zeroshot").is_err());
    }
}
