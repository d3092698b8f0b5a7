//! Multiple choice as a choice among K: the questions of a dataset whose rows are candidate
//! answers (one row per candidate, [`Example::question`] naming the question).
//!
//! The binary view asks of each candidate "is this the right answer?"; the choice view asks
//! "which of these K is right?", as the paper and most evaluations score these sets. A model
//! scores every candidate with one shared head, and the K scores of a question go through one
//! softmax: the label is the right candidate's position, and K may differ between questions
//! (ARC has 3 to 5). See `w2s_train::ChoiceProbe`.
use crate::{DataError, Example, Result};
use std::collections::HashMap;

/// One question: its candidate rows, in choice order, and which of them is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The question's id ([`Example::question`]).
    pub id: String,
    /// The group its rows share (splits keep it whole).
    pub group: String,
    /// Indices of its candidate rows in the dataset, in row order.
    pub rows: Vec<usize>,
    /// The position of the right candidate within `rows`.
    pub answer: usize,
}

/// The letter of a candidate's position: A, B, C, ...
pub fn letter(position: usize) -> char {
    (b'A' + position as u8) as char
}

/// Groups `rows` into questions, in the order each question first appears; an error names the
/// first row or question that does not make a question with exactly one right candidate.
pub fn questions(name: &str, rows: &[Example]) -> Result<Vec<Question>> {
    let bad = |reason: String| DataError::Choices {
        name: name.to_string(),
        reason,
    };
    let mut out: Vec<Question> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (i, e) in rows.iter().enumerate() {
        if e.question.is_empty() {
            return Err(bad(format!(
                "row {} ({}) is a candidate of no question: choices need a question for every row (the built-in multiple-choice sets have them; a file names its column with question=COL)",
                i + 1,
                e.id
            )));
        }
        if e.label > 1 {
            return Err(bad(format!(
                "row {} ({}) has label {}; a candidate is right (1) or wrong (0)",
                i + 1,
                e.id,
                e.label
            )));
        }
        let q = *at.entry(&e.question).or_insert_with(|| {
            out.push(Question {
                id: e.question.clone(),
                group: e.group.clone(),
                rows: Vec::new(),
                answer: usize::MAX,
            });
            out.len() - 1
        });
        let question = &mut out[q];
        if question.group != e.group {
            return Err(bad(format!(
                "question {}: its rows are in two groups ({} and {}, at row {}, id {}); a question must stay on one side of a split",
                question.id,
                question.group,
                e.group,
                i + 1,
                e.id
            )));
        }
        if e.label == 1 {
            if question.answer != usize::MAX {
                return Err(bad(format!(
                    "question {}: two right candidates (the second at row {}, id {})",
                    question.id,
                    i + 1,
                    e.id
                )));
            }
            question.answer = question.rows.len();
        }
        question.rows.push(i);
    }
    for q in &out {
        if q.answer == usize::MAX {
            return Err(bad(format!("question {}: no right candidate", q.id)));
        }
        if q.rows.len() < 2 || q.rows.len() > 255 {
            return Err(bad(format!(
                "question {}: {} candidates; a choice needs 2 to 255",
                q.id,
                q.rows.len()
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, question: &str, group: &str, label: u8) -> Example {
        Example {
            id: id.into(),
            text: id.into(),
            label,
            group: group.into(),
            question: question.into(),
        }
    }

    #[test]
    fn rows_become_questions_in_first_appearance_order_with_their_answer() {
        let rows = [
            row("a1", "a", "g", 0),
            row("b1", "b", "g", 0),
            row("a2", "a", "g", 1),
            row("b2", "b", "g", 1),
            row("b3", "b", "g", 0),
        ];
        let qs = questions("t", &rows).unwrap();
        assert_eq!(qs.len(), 2);
        assert_eq!((qs[0].rows.clone(), qs[0].answer), (vec![0, 2], 1));
        assert_eq!((qs[1].rows.clone(), qs[1].answer), (vec![1, 3, 4], 1));
    }

    #[test]
    fn malformed_questions_are_refused_by_name() {
        let err = |rows: &[Example]| questions("t", rows).unwrap_err().to_string();
        let e = err(&[row("a1", "a", "g", 1), row("a2", "a", "g", 1)]);
        assert!(
            e.contains("question a: two right candidates (the second at row 2, id a2)"),
            "{e}"
        );
        let e = err(&[row("a1", "a", "g", 0), row("a2", "a", "g", 0)]);
        assert!(e.contains("question a: no right candidate"), "{e}");
        let e = err(&[row("a1", "a", "g", 1)]);
        assert!(e.contains("question a: 1 candidates"), "{e}");
        let e = err(&[row("a1", "a", "g", 1), row("a2", "a", "h", 0)]);
        assert!(e.contains("two groups"), "{e}");
        let e = err(&[row("a1", "", "g", 1)]);
        assert!(
            e.contains("row 1 (a1) is a candidate of no question"),
            "{e}"
        );
        let e = err(&[row("a1", "a", "g", 2)]);
        assert!(e.contains("has label 2"), "{e}");
    }
}
