//! Labelled binary examples from real datasets: converters, user files, splits, balancing.
//!
//! Every source becomes rows of `{id, text, label, group}`. `group` ties together the rows made
//! from one multiple-choice question (one row per candidate answer), so that splits never put
//! one question's answers on both sides.
pub mod columns;
pub mod format;
pub mod hf;
pub mod images;
pub mod olmo;
pub mod orange;
pub mod questions;
pub mod reference;
pub mod registry;
pub mod scattertext;
pub mod sources;
pub mod split;
pub mod synthetic;
pub mod user;

pub use columns::Columns;
pub use reference::{choice_view_of, load_images, names_choices, names_images, DatasetRef};
pub use registry::{load, DatasetInfo, DATASETS};
pub use split::{balance, split, subset, Split, SplitConfig};

use std::path::PathBuf;

/// One binary classification example.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// Stable identifier, unique within the dataset.
    pub id: String,
    /// The model input: for answer-pair datasets, context, question and candidate answer.
    pub text: String,
    /// Binary sets: 1 for the positive class (correct answer, positive sentiment), 0 otherwise.
    /// K-class sets (`newsgroups-20`, images): the class index, below K.
    pub label: u8,
    /// Rows with the same group are always on the same side of a split.
    pub group: String,
    /// Multiple-choice sets: the question this row is a candidate answer of (its rows share
    /// it, in choice order, exactly one of them labelled 1); empty for other rows. A reference
    /// ending in `?choices` runs the question as a choice among its candidates
    /// ([`questions::Questions`]); otherwise each candidate is a binary row.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub question: String,
}

/// A loaded dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Name (built-in name or user file path).
    pub name: String,
    /// Content hash of the canonical rows: changes whenever any row changes.
    pub version: String,
    /// Rows in a fixed order.
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Builds a dataset and computes its version from the rows.
    pub fn new(name: impl Into<String>, examples: Vec<Example>) -> Dataset {
        let version = format::content_hash(&examples);
        Dataset {
            name: name.into(),
            version,
            examples,
        }
    }

    /// K: one more than the largest label, at least 2 (binary).
    pub fn classes(&self) -> usize {
        self.examples
            .iter()
            .map(|e| e.label as usize + 1)
            .max()
            .unwrap_or(0)
            .max(2)
    }

    /// Rows per label, in label order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for e in &self.examples {
            counts[e.label as usize] += 1;
        }
        counts
    }

    /// Share of label-1 rows.
    pub fn positive_share(&self) -> f64 {
        if self.examples.is_empty() {
            return 0.0;
        }
        self.examples.iter().filter(|e| e.label == 1).count() as f64 / self.examples.len() as f64
    }

    /// Rows whose text is empty or only whitespace: every model sees the same input for them,
    /// so they carry no signal and can make a task look trivially easy or impossible.
    pub fn empty_texts(&self) -> usize {
        self.examples
            .iter()
            .filter(|e| e.text.trim().is_empty())
            .count()
    }
}

/// Everything that can go wrong reading or converting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A row could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A required column is missing from a user file.
    #[error("{path}: no column '{column}' (its columns: {found}); name the columns with --text-column and --label-column (default text, label), and for images --image-column")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    /// The file is not in a supported format.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// Converted rows do not match the pinned count (a changed source or a converter bug).
    #[error("dataset {name}: converted {got} rows ({got_pos} positive), expected {want} ({want_pos} positive)")]
    Count {
        name: String,
        got: usize,
        got_pos: usize,
        want: usize,
        want_pos: usize,
    },
    /// A dataset named by a path that does not exist.
    #[error("{0}: no such file or folder (a dataset is a built-in name, see `w2s data list`, or an existing .jsonl, .csv or .parquet file or save_to_disk folder)")]
    NoSuchFile(PathBuf),
    /// A multiple-choice view whose rows do not make questions ([`questions::questions`]).
    #[error("{reason}")]
    Choices { name: String, reason: String },
    /// Unknown dataset name.
    #[error("unknown dataset '{0}': `w2s data list` shows the built-in ones; a path to a .jsonl or .csv file also works")]
    Unknown(String),
    /// The asset layer failed.
    #[error(transparent)]
    Asset(#[from] w2s_assets::AssetError),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
