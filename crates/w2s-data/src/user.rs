//! User-supplied datasets: JSONL or CSV with `text`, `label` (0/1) and optional `id`, `group`.
use crate::{DataError, Dataset, Example, Result};
use serde_json::Value;
use std::path::Path;

/// Loads a `.jsonl` or `.csv` file; every malformed row is reported with its line number.
pub fn load(path: &Path) -> Result<Dataset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = match ext.as_str() {
        "jsonl" | "json" => load_jsonl(path)?,
        "csv" => load_csv(path)?,
        _ => {
            return Err(DataError::File {
                path: path.to_path_buf(),
                reason: "expected a .jsonl or .csv file".into(),
            })
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
    Ok(Dataset::new(path.display().to_string(), rows))
}

fn parse_label(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(b) => Some(*b as u8),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(0),
            Some(1.0) => Some(1),
            _ => None,
        },
        Value::String(s) => match s.trim() {
            "0" | "false" => Some(0),
            "1" | "true" => Some(1),
            _ => None,
        },
        _ => None,
    }
}

fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn load_jsonl(path: &Path) -> Result<Vec<Example>> {
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
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing string field 'text'".into()))?;
        let label = v
            .get("label")
            .ok_or_else(|| err("missing field 'label'".into()))?;
        let label =
            parse_label(label).ok_or_else(|| err(format!("label {label} is not 0 or 1")))?;
        let id = id_string(v.get("id")).unwrap_or_else(|| format!("row-{line}"));
        let group = id_string(v.get("group")).unwrap_or_else(|| id.clone());
        out.push(Example {
            id,
            text: text.to_string(),
            label,
            group,
        });
    }
    Ok(out)
}

fn load_csv(path: &Path) -> Result<Vec<Example>> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
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
    let text_col = col("text").ok_or_else(|| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: "text".into(),
    })?;
    let label_col = col("label").ok_or_else(|| DataError::MissingColumn {
        path: path.to_path_buf(),
        column: "label".into(),
    })?;
    let (id_col, group_col) = (col("id"), col("group"));
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
            .ok_or_else(|| err("missing 'text' value".into()))?;
        let raw = rec
            .get(label_col)
            .ok_or_else(|| err("missing 'label' value".into()))?;
        let label = parse_label(&Value::String(raw.to_string()))
            .ok_or_else(|| err(format!("label '{raw}' is not 0 or 1")))?;
        let id = id_col
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("row-{line}"), str::to_string);
        let group = group_col
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
            .map_or_else(|| id.clone(), str::to_string);
        out.push(Example {
            id,
            text: text.to_string(),
            label,
            group,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        (dir, p)
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
                group: "q1".into()
            }
        );
        assert_eq!(ds.examples[1].id, "7");
        assert_eq!(ds.examples[1].group, "7");
    }

    #[test]
    fn bad_label_names_the_line() {
        let (_d, p) = write(
            "x.jsonl",
            "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":2}\n",
        );
        let err = load(&p).unwrap_err().to_string();
        assert!(err.ends_with("x.jsonl:2: label 2 is not 0 or 1"), "{err}");
    }

    #[test]
    fn csv_missing_label_column_is_named() {
        let (_d, p) = write("x.csv", "text,score\nhello,1\n");
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("missing column 'label'"), "{err}");
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
