//! What a user's file is read through, whatever its format: which columns hold the text, the
//! label, the group and the id, and the one rule that turns a label cell into 0 or 1. The
//! readers of every format (`user.rs` for JSONL and CSV, `hf.rs` for Parquet and Arrow) import
//! it, and neither imports the other's internals.

/// Which columns of a user's file hold the text, the label, the group and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// The text (default `text`).
    pub text: String,
    /// The 0/1 label (default `label`).
    pub label: String,
    /// Rows sharing a group never straddle a split (default: `group` when the file has one).
    pub group: Option<String>,
    /// A row id (default: `id` when the file has one, else the row number).
    pub id: Option<String>,
    /// The question a row is a candidate answer of, for a multiple-choice file (`question=COL`;
    /// `?choices` reads `question` unless another column is named).
    pub question: Option<String>,
    /// A `datasets` Image column: the file holds images, and the label column a class index.
    pub image: Option<String>,
    /// K, for a text file of K classes: labels are class indices 0..K-1 (`?classes=K`,
    /// `--classes K`). Without it a label is 0 or 1, so that a stray 2 in a binary file is an
    /// error rather than a third class.
    pub classes: Option<u8>,
}

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            text: "text".into(),
            label: "label".into(),
            group: None,
            id: None,
            question: None,
            image: None,
            classes: None,
        }
    }
}

impl Columns {
    /// A label cell written as text, by these columns' rule: 0 or 1 ([`label_from_text`]), or a
    /// class index below K when the file declares K classes. The error says what was expected.
    pub fn label_of(&self, s: &str) -> Result<u8, String> {
        match self.classes {
            None => label_from_text(s).ok_or_else(|| {
                format!(
                    "label '{}' is not 0 or 1 (a file of K classes says so: ?classes=K or --classes K)",
                    s.trim()
                )
            }),
            Some(k) => class_from_text(s)
                .filter(|&c| c < k)
                .ok_or_else(|| format!("label '{}' is not a class index 0 to {}", s.trim(), k - 1)),
        }
    }
}

/// A row's group when its file names none: its question (a question's candidates stay
/// together), else the row alone. Every reader's rule, whatever the format.
pub fn default_group(id: &str, question: &str) -> String {
    if question.is_empty() { id } else { question }.to_string()
}

/// A class index written as text: a whole number (`3`, `3.0`) below 256.
pub fn class_from_text(s: &str) -> Option<u8> {
    let s = s.trim();
    s.parse::<u8>().ok().or_else(|| {
        let x: f64 = s.parse().ok()?;
        (x.fract() == 0.0 && (0.0..256.0).contains(&x)).then_some(x as u8)
    })
}

/// A label written as text, the one rule for every format (a CSV cell, a JSON string, an Arrow
/// cell printed): `0`/`1`, `0.0`/`1.0` (a float column), `true`/`false` in any case (pandas
/// writes `True`), around any whitespace.
pub fn label_from_text(s: &str) -> Option<u8> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        return Some(1);
    }
    if s.eq_ignore_ascii_case("false") {
        return Some(0);
    }
    match s {
        "0" | "0.0" => Some(0),
        "1" | "1.0" => Some(1),
        _ => None,
    }
}
