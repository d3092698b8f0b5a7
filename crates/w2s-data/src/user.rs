//! User-supplied datasets: JSONL, CSV, Parquet or a Hugging Face `save_to_disk` folder, with a
//! text column, a 0/1 label column and optional id and group columns.

pub use crate::columns::Columns;
use crate::{DataError, Dataset, Example, Result};
use serde_json::Value;
use std::path::Path;

/// Loads a user file with the default columns.
pub fn load(path: &Path) -> Result<Dataset> {
    load_with(path, &Columns::default(), &path.display().to_string())
}

/// Loads a `.jsonl`, `.csv` or `.parquet` file or a `save_to_disk` folder, with `cols` naming
/// the columns, as the dataset `name`; every malformed row is reported with its row number.
pub fn load_with(path: &Path, cols: &Columns, name: &str) -> Result<Dataset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = if path.is_dir() {
        crate::hf::load_saved(path, cols)?
    } else {
        match ext.as_str() {
            "jsonl" | "json" => load_jsonl(path, cols)?,
            "csv" => load_csv(path, cols)?,
            "parquet" => crate::hf::load_parquet(path, cols)?,
            _ => {
                return Err(DataError::File {
                    path: path.to_path_buf(),
                    reason: "expected a .jsonl, .csv or .parquet file, or a save_to_disk folder"
                        .into(),
                })
            }
        }
    };
    if rows.is_empty() {
        return Err(DataError::File {
            path: path.to_path_buf(),
            reason: "no rows".into(),
        });
    }
    let mut ids = std::collections::HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        if !ids.insert(r.id.as_str()) {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("duplicate id '{}'", r.id),
            });
        }
    }
    let dataset = Dataset::new(name.to_string(), rows);
    let empty = dataset.empty_texts();
    if empty > 0 {
        tracing::warn!(
            "{}: {empty} of {} rows have an empty text (in column '{}'); they are kept, but carry no signal",
            path.display(),
            dataset.examples.len(),
            cols.text
        );
    }
    Ok(dataset)
}

/// A JSON label by the columns' rule: booleans and numbers are read as their text is.
fn label_of_json(v: &Value, cols: &Columns) -> std::result::Result<u8, String> {
    match v {
        Value::Bool(b) if cols.classes.is_none() => Ok(*b as u8),
        Value::Number(n) => cols.label_of(&n.to_string()),
        Value::String(s) => cols.label_of(s),
        other => cols.label_of(&other.to_string()),
    }
}

fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn load_jsonl(path: &Path, cols: &Columns) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (line, v) in crate::sources::jsonl(path)? {
        let err = |reason: String| DataError::Row {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if !v.is_object() {
            return Err(err("expected a JSON object".into()));
        }
        let text = v
            .get(&cols.text)
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("missing string field '{}'", cols.text)))?;
        let label = v
            .get(&cols.label)
            .ok_or_else(|| err(format!("missing field '{}'", cols.label)))?;
        let label = label_of_json(label, cols).map_err(err)?;
        let id_col = cols.id.as_deref().unwrap_or("id");
        let group_col = cols.group.as_deref().unwrap_or("group");
        let id = id_string(v.get(id_col)).unwrap_or_else(|| format!("row-{line}"));
        let question = match &cols.question {
            Some(c) => {
                id_string(v.get(c)).ok_or_else(|| err(format!("missing question field '{c}'")))?
            }
            None => String::new(),
        };
        let group = id_string(v.get(group_col))
            .unwrap_or_else(|| crate::columns::default_group(&id, &question));
        out.push(Example {
            id,
            text: text.to_string(),
            label,
            group,
            question,
        });
    }
    Ok(out)
}

fn load_csv(path: &Path, cols: &Columns) -> Result<Vec<Example>> {
    let bytes = crate::sources::read(path)?;
    let bytes = bytes
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(&bytes);
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| DataError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let missing = |column: &str| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        found: headers.iter().collect::<Vec<_>>().join(", "),
    };
    let text_col = col(&cols.text).ok_or_else(|| missing(&cols.text))?;
    let label_col = col(&cols.label).ok_or_else(|| missing(&cols.label))?;
    let id_col = match &cols.id {
        Some(c) => Some(col(c).ok_or_else(|| missing(c))?),
        None => col("id"),
    };
    let group_col = match &cols.group {
        Some(c) => Some(col(c).ok_or_else(|| missing(c))?),
        None => col("group"),
    };
    let question_col = match &cols.question {
        Some(c) => Some(col(c).ok_or_else(|| missing(c))?),
        None => None,
    };
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| DataError::Row {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let err = |reason: String| DataError::Row {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let text = rec
            .get(text_col)
            .ok_or_else(|| err(format!("missing '{}' value", cols.text)))?;
        let raw = rec
            .get(label_col)
            .ok_or_else(|| err(format!("missing '{}' value", cols.label)))?;
        let label = cols.label_of(raw).map_err(err)?;
        let id = id_col
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("row-{line}"), str::to_string);
        let question = match question_col {
            Some(c) => rec
                .get(c)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    err(format!(
                        "an empty '{}' value",
                        cols.question.as_deref().unwrap_or_default()
                    ))
                })?
                .to_string(),
            None => String::new(),
        };
        let group = group_col
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
            .map_or_else(
                || crate::columns::default_group(&id, &question),
                str::to_string,
            );
        out.push(Example {
            id,
            text: text.to_string(),
            label,
            group,
            question,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::label_from_text;

    /// A JSON label by the binary rule.
    fn parse_label(v: &Value) -> Option<u8> {
        label_of_json(v, &Columns::default()).ok()
    }

    fn write(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        (dir, p)
    }

    /// JSONL, CSV and the Arrow formats read a label through one rule, so a file converted from
    /// one format to another keeps its labels (they used to disagree on "1.0" and "True").
    #[test]
    fn every_format_reads_labels_alike() {
        for (text, want) in [
            ("1", Some(1)),
            ("0", Some(0)),
            ("1.0", Some(1)),
            ("0.0", Some(0)),
            ("true", Some(1)),
            ("True", Some(1)),
            ("FALSE", Some(0)),
            (" 1 ", Some(1)),
            ("2", None),
            ("0.5", None),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(label_from_text(text), want, "{text:?}");
            assert_eq!(parse_label(&Value::String(text.into())), want, "{text:?}");
            let (_d, p) = write("x.csv", &format!("text,label\nsome text,{text}\n"));
            let csv = load_csv(&p, &Columns::default()).ok().map(|r| r[0].label);
            assert_eq!(csv, want, "CSV cell {text:?}");
        }
        assert_eq!(parse_label(&serde_json::json!(1.0)), Some(1));
        assert_eq!(parse_label(&serde_json::json!(true)), Some(1));
        assert_eq!(parse_label(&serde_json::json!(2)), None);
    }

    #[test]
    fn empty_texts_are_counted() {
        let (_d, p) = write("e.csv", "text,label\ngood,1\n,0\n   ,1\nbad,0\n");
        let ds = load(&p).unwrap();
        assert_eq!(ds.examples.len(), 4);
        assert_eq!(ds.empty_texts(), 2);
    }

    #[test]
    fn jsonl_with_optional_columns() {
        let (_d, p) = write("x.jsonl", "{\"text\":\"good\",\"label\":1,\"group\":\"q1\"}\n\n{\"text\":\"bad\",\"label\":0,\"id\":7}\n");
        let ds = load(&p).unwrap();
        assert_eq!(ds.examples.len(), 2);
        assert_eq!(
            ds.examples[0],
            Example {
                id: "row-1".into(),
                text: "good".into(),
                label: 1,
                group: "q1".into(),
                ..Default::default()
            }
        );
        assert_eq!(ds.examples[1].id, "7");
        assert_eq!(ds.examples[1].group, "7");
    }

    #[test]
    fn a_question_column_is_read_and_groups_its_candidates() {
        let cols = Columns {
            question: Some("q".into()),
            ..Columns::default()
        };
        let (_d, p) = write("x.csv", "text,label,q\na,1,first\nb,0,first\nc,0,\n");
        let err = load_with(&p, &cols, "x").unwrap_err().to_string();
        assert!(
            err.contains(":4:") && err.contains("an empty 'q' value"),
            "{err}"
        );
        let (_d, p) = write("x.csv", "text,label,q\na,1,first\nb,0,first\n");
        let ds = load_with(&p, &cols, "x").unwrap();
        assert!(ds
            .examples
            .iter()
            .all(|e| e.question == "first" && e.group == "first"));
        let (_d, p) = write("x.jsonl", "{\"text\":\"a\",\"label\":1,\"q\":3}\n");
        let ds = load_with(&p, &cols, "x").unwrap();
        assert_eq!(
            (
                ds.examples[0].question.as_str(),
                ds.examples[0].group.as_str()
            ),
            ("3", "3")
        );
    }

    #[test]
    fn bad_label_names_the_line() {
        let (_d, p) = write(
            "x.jsonl",
            "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":2}\n",
        );
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("x.jsonl:2: label '2' is not 0 or 1"), "{err}");
        // The error says how a file of K classes is read.
        assert!(err.contains("?classes=K or --classes K"), "{err}");
    }

    /// A file that declares K classes reads class indices below K, in every text format, and
    /// refuses one at or above K naming the line.
    #[test]
    fn k_class_files_read_class_indices() {
        let three = Columns {
            classes: Some(3),
            ..Columns::default()
        };
        let (_d, p) = write(
            "k.jsonl",
            "{\"text\":\"a\",\"label\":2}\n{\"text\":\"b\",\"label\":0}\n{\"text\":\"c\",\"label\":\"1\"}\n{\"text\":\"d\",\"label\":1.0}\n",
        );
        let ds = load_with(&p, &three, "k").unwrap();
        let labels: Vec<u8> = ds.examples.iter().map(|e| e.label).collect();
        assert_eq!(labels, [2, 0, 1, 1]);
        assert_eq!(ds.classes(), 3);
        let (_d, p) = write("k.csv", "text,label\na,2\nb,0\nc,3\n");
        let err = load_with(&p, &three, "k").unwrap_err().to_string();
        assert!(
            err.contains("k.csv:4: label '3' is not a class index 0 to 2"),
            "{err}"
        );
        let (_d, p) = write("k.jsonl", "{\"text\":\"a\",\"label\":true}\n");
        assert!(
            load_with(&p, &three, "k").is_err(),
            "a boolean is no class index"
        );
        let (_d, p) = write("k.jsonl", "{\"text\":\"a\",\"label\":-1}\n");
        assert!(load_with(&p, &three, "k").is_err());
    }

    #[test]
    fn csv_missing_label_column_is_named() {
        let (_d, p) = write("x.csv", "text,score\nhello,1\n");
        let err = load(&p).unwrap_err().to_string();
        assert!(
            err.contains("no column 'label' (its columns: text, score)"),
            "{err}"
        );
        // Named with --label-column, it is found.
        let cols = Columns {
            label: "score".into(),
            ..Columns::default()
        };
        assert_eq!(load_with(&p, &cols, "x").unwrap().examples[0].label, 1);
    }

    #[test]
    fn csv_rows_and_bad_row_line() {
        let (_d, p) = write("x.csv", "id,text,label\na,\"hi, there\",1\nb,bye,0\n");
        let ds = load(&p).unwrap();
        assert_eq!(ds.examples[0].text, "hi, there");
        assert!((ds.positive_share() - 0.5).abs() < 1e-9);
        let (_d2, p2) = write("y.csv", "text,label\nok,1\nbad,yes\n");
        let err = load(&p2).unwrap_err().to_string();
        assert!(err.contains("y.csv:3"), "{err}");
    }
}
