//! `s2s:N`: strong-to-strong rounds. After the student trains on the weak labels, it labels its
//! own training rows and a fresh student (the same strong model from its pretrained weights)
//! trains on those labels; N times (EleutherAI w2s's strong-to-strong training). The run reports
//! the last round's student; round 0 is the plain method's student and is shared with it.
use super::{number, LabelStep, StepKind};

/// The registry entry.
pub const KIND: StepKind = StepKind {
    name: "s2s",
    arg: "N",
    default_arg: "2",
    help: "N rounds: the student relabels B, a fresh student trains on that",
    build,
};

struct StrongToStrong {
    rounds: usize,
}

fn build(arg: Option<&str>) -> Result<Box<dyn LabelStep>, String> {
    let rounds: usize = number(arg, KIND.default_arg, "a round count")?;
    if rounds == 0 {
        return Err("N must be at least 1".into());
    }
    Ok(Box::new(StrongToStrong { rounds }))
}

impl LabelStep for StrongToStrong {
    fn name(&self) -> String {
        format!("{}:{}", KIND.name, self.rounds)
    }

    fn rounds(&self) -> usize {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use super::super::Method;

    #[test]
    fn rounds_add_up_and_do_not_name_the_supervision() {
        let m = Method::parse("s2s:2+conf-filter:0.7+xent").unwrap();
        assert_eq!(m.rounds(), 2);
        assert_eq!(m.label_step_names(), ["conf-filter:0.7"]);
        assert_eq!(Method::parse("s2s+xent").unwrap().name(), "s2s:2+xent");
        assert!(Method::parse("s2s:0+xent").is_err());
        assert_eq!(Method::parse("xent").unwrap().rounds(), 0);
    }
}
