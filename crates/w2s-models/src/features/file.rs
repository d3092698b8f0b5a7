//! The feature files: one safetensors tensor `features` (and `rows`, a chunk's dataset rows),
//! read back with their shape checked, and written through a temporary file renamed into place;
//! `.npy` for `w2s embed --save`.
use super::*;

/// The cached features at `path`, when the file is there and holds `rows` rows (a damaged file
/// is reported and computed again).
pub(super) fn read_cached(path: &Path, rows: usize) -> Option<Features> {
    if !path.is_file() {
        return None;
    }
    match read(path, rows) {
        Ok((values, rows, dim)) => Some(Features {
            values,
            rows,
            dim,
            path: path.to_path_buf(),
            from_cache: true,
            tokens: 0,
            resumed: 0,
            seconds: 0.0,
        }),
        Err(e) => {
            // Removed, so that chunk writers do not take it for a finished file.
            tracing::warn!("{e}; computing the features again");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

pub(super) fn read(path: &Path, expected_rows: usize) -> Result<(Vec<f32>, usize, usize)> {
    let Loaded {
        values, rows, dim, ..
    } = load(path)?;
    if rows != expected_rows {
        return Err(ModelError::Cache {
            path: path.to_path_buf(),
            reason: format!("{rows} rows cached, dataset has {expected_rows}"),
        });
    }
    Ok((values, rows, dim))
}

/// A safetensors file's `features` matrix and all its tensors.
pub(super) struct Loaded {
    /// Row-major values of `features`.
    pub(super) values: Vec<f32>,
    pub(super) rows: usize,
    pub(super) dim: usize,
    pub(super) tensors: HashMap<String, Tensor>,
}

pub(super) fn load(path: &Path) -> Result<Loaded> {
    let err = |reason: String| ModelError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    let tensors =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| err(e.to_string()))?;
    let t = tensors
        .get("features")
        .ok_or_else(|| err("no 'features' tensor".into()))?;
    let (rows, dim) = t.dims2().map_err(|e| err(e.to_string()))?;
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| err(e.to_string()))?;
    Ok(Loaded {
        values,
        rows,
        dim,
        tensors,
    })
}

/// Writes `values` as the tensor `features` (`rows × dim`), with `index` as the tensor `rows`
/// when given (a chunk's dataset rows), through a temporary file renamed into place.
pub(super) fn write(
    path: &Path,
    values: &[f32],
    rows: usize,
    dim: usize,
    index: Option<&[u32]>,
) -> Result<()> {
    let mut tensors = HashMap::from([(
        "features".to_string(),
        Tensor::from_slice(values, (rows, dim), &Device::Cpu).context("building feature tensor")?,
    )]);
    if let Some(index) = index {
        let t = Tensor::from_slice(index, rows, &Device::Cpu).context("building a chunk's rows")?;
        tensors.insert("rows".to_string(), t);
    }
    write_atomically(path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(|e| e.to_string())
    })
}

/// Writes `values` (`rows × dim`, row-major) to `path` for numpy and pandas: `.npy` (float32,
/// C order) or `.safetensors` (one tensor named `features`); through a temporary file renamed
/// into place, so an interrupted write never leaves a partial file.
pub fn save_features(path: &Path, values: &[f32], rows: usize, dim: usize) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "safetensors" => write(path, values, rows, dim, None),
        "npy" => write_atomically(path, |tmp| {
            std::fs::write(tmp, npy_bytes(values, rows, dim)).map_err(|e| e.to_string())
        }),
        _ => Err(ModelError::Cache {
            path: path.to_path_buf(),
            reason: "the file name must end in .npy or .safetensors".into(),
        }),
    }
}

/// A NumPy format 1.0 file: magic, header dict padded to a multiple of 64, little-endian f4.
pub(super) fn npy_bytes(values: &[f32], rows: usize, dim: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    let tmp = w2s_assets::cache::temp_sibling(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ModelError::Cache {
            path: parent.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    let res = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    w2s_assets::cache::temp_done(&tmp);
    if let Err(reason) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::Cache {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(())
}
