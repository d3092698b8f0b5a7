//! Hugging Face datasets as they are saved: a Parquet file (`Dataset.to_parquet`, the Hub's own
//! format) or a `save_to_disk` folder (Arrow IPC stream files `data-*-of-*.arrow`, listed in
//! `state.json`, beside `dataset_info.json`). Both arrive as Arrow record batches; the columns
//! named by [`Columns`] become [`Example`]s.
use crate::columns::Columns;
use crate::{DataError, Example, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use std::path::{Path, PathBuf};

/// Reads a `.parquet` file.
pub fn load_parquet(path: &Path, cols: &Columns) -> Result<Vec<Example>> {
    contained(path, || load_parquet_unguarded(path, cols))
}

fn load_parquet_unguarded(path: &Path, cols: &Columns) -> Result<Vec<Example>> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| file_err(path, format!("not a readable Parquet file: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| file_err(path, format!("reading a row group: {e}")))?;
        examples_of(&batch, path, cols, &mut rows)?;
    }
    Ok(rows)
}

/// One data file and the record batches read from it.
pub type FileBatches = (PathBuf, Vec<RecordBatch>);

/// The record batches of a Parquet file or a `save_to_disk` folder, file by file, and the
/// dataset's `features` (from the Parquet schema's `huggingface` metadata, or
/// `dataset_info.json`) when it has them: where class names live.
pub fn batches_and_features(path: &Path) -> Result<(Vec<FileBatches>, Option<serde_json::Value>)> {
    contained(path, || batches_and_features_unguarded(path))
}

fn batches_and_features_unguarded(
    path: &Path,
) -> Result<(Vec<FileBatches>, Option<serde_json::Value>)> {
    if path.is_dir() {
        let features = std::fs::read_to_string(path.join("dataset_info.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("features").cloned());
        return Ok((saved_batches(path)?, features));
    }
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| file_err(path, format!("not a readable Parquet file: {e}")))?;
    let features = builder
        .schema()
        .metadata()
        .get("huggingface")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.pointer("/info/features").cloned());
    let reader = builder
        .build()
        .map_err(|e| file_err(path, format!("not a readable Parquet file: {e}")))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, format!("reading a row group: {e}")))?;
    Ok((vec![(path.to_path_buf(), batches)], features))
}

/// Reads a `save_to_disk` folder: its Arrow files in the order `state.json` lists them (by name
/// when it does not).
pub fn load_saved(dir: &Path, cols: &Columns) -> Result<Vec<Example>> {
    contained(dir, || load_saved_unguarded(dir, cols))
}

fn load_saved_unguarded(dir: &Path, cols: &Columns) -> Result<Vec<Example>> {
    let mut rows = Vec::new();
    for (f, batches) in saved_batches(dir)? {
        let before = rows.len();
        for batch in &batches {
            examples_of(batch, &f, cols, &mut rows)?;
        }
        tracing::debug!("{}: {} rows", f.display(), rows.len() - before);
    }
    Ok(rows)
}

/// The cells of `columns` in every row of a `save_to_disk` folder, as text, each row with the
/// file it came from (for converters that read more columns than a text and a label).
pub(crate) fn saved_rows(dir: &Path, columns: &[&str]) -> Result<Vec<(PathBuf, Vec<String>)>> {
    contained(dir, || saved_rows_unguarded(dir, columns))
}

fn saved_rows_unguarded(dir: &Path, columns: &[&str]) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let mut out = Vec::new();
    for (f, batches) in saved_batches(dir)? {
        let mut line = 0;
        for batch in &batches {
            let arrays = columns
                .iter()
                .map(|&name| column(batch, name, &f))
                .collect::<Result<Vec<&dyn Array>>>()?;
            for i in 0..batch.num_rows() {
                line += 1;
                let cells = arrays
                    .iter()
                    .zip(columns)
                    .map(|(a, name)| {
                        cell_text(*a, i).ok_or_else(|| DataError::Row {
                            path: f.clone(),
                            line,
                            reason: format!("'{name}' is null or not a string or number"),
                        })
                    })
                    .collect::<Result<Vec<String>>>()?;
                out.push((f.clone(), cells));
            }
        }
    }
    Ok(out)
}

/// The record batches of each Arrow file of a `save_to_disk` folder.
fn saved_batches(dir: &Path) -> Result<Vec<(PathBuf, Vec<RecordBatch>)>> {
    if !dir.join("dataset_info.json").is_file() && !dir.join("state.json").is_file() {
        return Err(file_err(
            dir,
            "not a `save_to_disk` folder (no dataset_info.json or state.json); for a DatasetDict, give one split's folder",
        ));
    }
    let files = arrow_files(dir)?;
    if files.is_empty() {
        return Err(file_err(dir, "no .arrow files"));
    }
    let mut out = Vec::new();
    for f in files {
        let bytes = crate::sources::read(&f)?;
        // `datasets` writes the stream format; accept the file format too.
        let batches: Vec<RecordBatch> =
            match arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&bytes), None) {
                Ok(r) => r
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| file_err(&f, format!("reading Arrow batches: {e}")))?,
                Err(_) => {
                    arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(&bytes), None)
                        .map_err(|e| file_err(&f, format!("not an Arrow IPC file: {e}")))?
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| file_err(&f, format!("reading Arrow batches: {e}")))?
                }
            };
        out.push((f, batches));
    }
    Ok(out)
}

/// The column `name` of a batch read from `path`; its absence is an error naming the columns
/// the batch has.
pub(crate) fn column<'b>(batch: &'b RecordBatch, name: &str, path: &Path) -> Result<&'b dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| DataError::MissingColumn {
            path: path.to_path_buf(),
            column: name.to_string(),
            found: batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The data files of a saved dataset, in order.
fn arrow_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if let Ok(text) = std::fs::read_to_string(dir.join("state.json")) {
        let state: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| file_err(&dir.join("state.json"), format!("invalid JSON: {e}")))?;
        if let Some(files) = state.get("_data_files").and_then(|f| f.as_array()) {
            return files
                .iter()
                .map(|f| {
                    f.get("filename")
                        .and_then(|n| n.as_str())
                        .map(|n| dir.join(n))
                        .ok_or_else(|| {
                            file_err(
                                &dir.join("state.json"),
                                "a _data_files entry has no filename",
                            )
                        })
                })
                .collect();
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs a reader of `path` whose arrow or parquet calls may panic on a malformed file (arrow's
/// buffer slicing does, found by w2s-fuzz): the panic becomes an error naming the file.
fn contained<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    w2s_assets::contain::contain(read)
        .unwrap_or_else(|panic| Err(file_err(path, format!("malformed file ({panic})"))))
}

fn file_err(path: &Path, reason: impl ToString) -> DataError {
    DataError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Appends the rows of one batch; row numbers count from 1 over the whole file.
fn examples_of(
    batch: &RecordBatch,
    path: &Path,
    cols: &Columns,
    out: &mut Vec<Example>,
) -> Result<()> {
    let text = column(batch, &cols.text, path)?;
    let label = column(batch, &cols.label, path)?;
    // Chosen columns must exist; without a choice, `group` and `id` are read when present.
    let optional = |chosen: Option<&str>, default: &str| -> Result<Option<&dyn Array>> {
        match chosen {
            Some(name) => column(batch, name, path).map(Some),
            None => Ok(batch.column_by_name(default).map(|c| c.as_ref())),
        }
    };
    let group = optional(cols.group.as_deref(), "group")?;
    let id = optional(cols.id.as_deref(), "id")?;
    let question = match &cols.question {
        Some(name) => Some(column(batch, name, path)?),
        None => None,
    };
    let first = out.len();
    for i in 0..batch.num_rows() {
        let row = first + i + 1;
        let err = |reason: String| DataError::Row {
            path: path.to_path_buf(),
            line: row,
            reason,
        };
        let text = cell_text(text, i)
            .ok_or_else(|| err(format!("'{}' is not a string or is null", cols.text)))?;
        let label = cols
            .label_of(&cell_text(label, i).unwrap_or_else(|| "null".into()))
            .map_err(|e| err(format!("'{}': {e}", cols.label)))?;
        let id = match id {
            Some(c) => cell_text(c, i).ok_or_else(|| err("the id is null".into()))?,
            None => format!("row-{row}"),
        };
        let question = match question {
            Some(c) => cell_text(c, i).ok_or_else(|| err("the question is null".into()))?,
            None => String::new(),
        };
        let group = match group {
            Some(c) => cell_text(c, i).ok_or_else(|| err("the group is null".into()))?,
            None => crate::columns::default_group(&id, &question),
        };
        out.push(Example {
            id,
            text,
            label,
            group,
            question,
        });
    }
    Ok(())
}

/// A cell as text: strings as they are, integers and booleans printed.
pub(crate) fn cell_text(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => a.as_string_view().value(i).to_string(),
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        _ => return None,
    })
}
