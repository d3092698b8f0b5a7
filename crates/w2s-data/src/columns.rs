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
    /// A `datasets` Image column: the file holds images, and the label column a class index.
    pub image: Option<String>,
}

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            text: "text".into(),
            label: "label".into(),
            group: None,
            id: None,
            image: None,
        }
    }
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
