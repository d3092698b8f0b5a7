//! Pooled features for every row of a dataset, computed once and cached.
//!
//! The cache key covers everything the numbers depend on: the weights (their pinned sha256), the
//! dataset's content hash, the maximum length, the pooling and the input prefix. A second request
//! with the same key reads the file instead of running the model.
use crate::dtype::WeightDtype;
use crate::encoder::{Encoder, LoadRequest, Train};
use crate::error::{CandleContext, ModelError, Result};
use crate::registry::ModelSource;
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;
use w2s_data::Dataset;

/// Bumped when the feature computation changes in a way the key does not capture.
const FEATURE_VERSION: u32 = 1;

/// What to embed.
#[derive(Debug, Clone)]
pub struct FeatureRequest<'a> {
    /// The model.
    pub model: &'a ModelSource,
    /// The rows.
    pub dataset: &'a Dataset,
    /// Maximum tokens per row, special tokens included (the end of a text is kept).
    pub max_len: usize,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Precision of the weights and the forward pass.
    pub dtype: WeightDtype,
}

/// A `[rows, dim]` feature matrix in dataset row order.
#[derive(Debug, Clone)]
pub struct Features {
    /// Row-major values.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Embedding width.
    pub dim: usize,
    /// The cache file.
    pub path: PathBuf,
    /// True when read from the cache.
    pub from_cache: bool,
    /// Non-padding tokens processed (0 when cached).
    pub tokens: usize,
    /// Seconds spent computing (0 when cached).
    pub seconds: f64,
}

impl FeatureRequest<'_> {
    /// The cache key of features computed on the CPU: a hash of everything they depend on.
    pub fn key(&self) -> String {
        self.key_on(&Device::Cpu)
    }

    /// The cache key of features computed on `device`. A GPU's kernels round differently from
    /// the CPU's, so its features are kept apart; CPU keys carry no device field, which keeps
    /// caches made before this distinction valid.
    pub fn key_on(&self, device: &Device) -> String {
        let mut desc = serde_json::json!({
            "v": FEATURE_VERSION,
            "model": self.model.name,
            "weights": self.model.fingerprint,
            "prefix": self.model.prefix,
            "dataset": self.dataset.name,
            "data_version": self.dataset.version,
            "max_len": self.max_len,
            "pooling": self.model.pooling.name(),
            "truncation": "left",
        });
        if !device.is_cpu() {
            desc["device"] = format!("{:?}", device.location()).into();
        }
        if !self.dtype.is_default() {
            desc["dtype"] = self.dtype.name().into();
        }
        // bf16 products of f32 activations round differently from a forward pass all in bf16.
        if let Some(kernel) = self.dtype.bf16_products_on(device) {
            desc["bf16_products"] = kernel.into();
        }
        w2s_assets::cache::sha256_bytes(desc.to_string().as_bytes())[..16].to_string()
    }

    /// Where CPU features live under the cache root.
    pub fn path(&self, root: &Path) -> PathBuf {
        self.path_on(root, &Device::Cpu)
    }

    /// Where features computed on `device` live under the cache root.
    pub fn path_on(&self, root: &Path, device: &Device) -> PathBuf {
        let model = sanitize(&self.model.name);
        let data = sanitize(&self.dataset.name);
        root.join("features").join(model).join(format!(
            "{data}-len{}-{}.safetensors",
            self.max_len,
            self.key_on(device)
        ))
    }
}

fn sanitize(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    clean
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Returns the features, from the cache when present, else by running the model (and caching them).
/// `progress(done_rows, total_rows)` is called once before the first batch and after every batch.
pub fn cached_features(
    root: &Path,
    req: &FeatureRequest,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Features> {
    let path = req.path_on(root, device);
    if let Some(cached) = read_cached(&path, req.dataset.examples.len()) {
        return Ok(cached);
    }
    // Another worker computing the same features: wait for its file instead of computing twice.
    let claim_path = path.with_extension("claim");
    let _claim = w2s_assets::claim::claim_or_wait(&claim_path, &|| path.is_file(), &mut |who| {
        tracing::info!("waiting for {who}, which is computing {}", path.display())
    })
    .map_err(|e| ModelError::Cache {
        path: claim_path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(cached) = read_cached(&path, req.dataset.examples.len()) {
        return Ok(cached);
    }
    let start = Instant::now();
    let encoder = Encoder::load_with(
        req.model,
        &LoadRequest {
            device,
            dtype: req.dtype.load_dtype(device),
            train: Train::Nothing,
        },
    )?;
    let texts: Vec<&str> = req
        .dataset
        .examples
        .iter()
        .map(|e| e.text.as_str())
        .collect();
    let (values, tokens) = embed_all(&encoder, &texts, req.max_len, req.batch_size, progress)?;
    let seconds = start.elapsed().as_secs_f64();
    let (rows, dim) = (texts.len(), encoder.hidden);
    write(&path, &values, rows, dim)?;
    Ok(Features {
        values,
        rows,
        dim,
        path,
        from_cache: false,
        tokens,
        seconds,
    })
}

/// The cached features at `path`, when the file is there and holds `rows` rows (a damaged file
/// is reported and computed again).
fn read_cached(path: &Path, rows: usize) -> Option<Features> {
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
            seconds: 0.0,
        }),
        Err(e) => {
            tracing::warn!("{e}; computing the features again");
            None
        }
    }
}

/// Embeds texts in length-sorted batches (little padding), returning row-ordered values and the
/// number of real tokens processed.
pub fn embed_all(
    encoder: &Encoder,
    texts: &[&str],
    max_len: usize,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<f32>, usize)> {
    let ids = texts
        .iter()
        .map(|t| encoder.tokenizer.encode(t, max_len))
        .collect::<Result<Vec<_>>>()?;
    let tokens = ids.iter().map(Vec::len).sum();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let dim = encoder.hidden;
    let mut values = vec![0f32; texts.len() * dim];
    let mut done = 0;
    progress(0, texts.len());
    for chunk in order.chunks(batch_size.max(1)) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let pooled = encoder
            .embed_ids(&rows)?
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_vec2::<f32>())
            .context("reading embeddings")?;
        for (&i, v) in chunk.iter().zip(pooled) {
            values[i * dim..(i + 1) * dim].copy_from_slice(&v);
        }
        done += chunk.len();
        progress(done, texts.len());
    }
    Ok((values, tokens))
}

fn read(path: &Path, expected_rows: usize) -> Result<(Vec<f32>, usize, usize)> {
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
    if rows != expected_rows {
        return Err(err(format!(
            "{rows} rows cached, dataset has {expected_rows}"
        )));
    }
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| err(e.to_string()))?;
    Ok((values, rows, dim))
}

fn write(path: &Path, values: &[f32], rows: usize, dim: usize) -> Result<()> {
    let t =
        Tensor::from_slice(values, (rows, dim), &Device::Cpu).context("building feature tensor")?;
    write_atomically(path, |tmp| {
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("features".to_string(), t)]),
            tmp,
        )
        .map_err(|e| e.to_string())
    })
}

/// Writes `values` (`rows × dim`, row-major) to `path` for numpy and pandas: `.npy` (float32,
/// C order) or `.safetensors` (one tensor named `features`); through a temporary file renamed
/// into place, so an interrupted write never leaves a partial file.
pub fn save_features(path: &Path, values: &[f32], rows: usize, dim: usize) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "safetensors" => write(path, values, rows, dim),
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
fn npy_bytes(values: &[f32], rows: usize, dim: usize) -> Vec<u8> {
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

fn write_atomically(
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
    if let Err(reason) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::Cache {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let b = npy_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(
            header.contains("'shape': (2, 3)") && header.ends_with('\n'),
            "{header}"
        );
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(&b[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());
        assert_eq!(&b[b.len() - 4..], &6f32.to_le_bytes());
    }

    #[test]
    fn save_refuses_other_extensions_and_round_trips_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let err = save_features(&dir.path().join("f.csv"), &[0.0], 1, 1).unwrap_err();
        assert!(err.to_string().contains(".npy or .safetensors"));
        let p = dir.path().join("sub/f.safetensors");
        save_features(&p, &[1.0, 2.0], 1, 2).unwrap();
        assert_eq!(read(&p, 1).unwrap(), (vec![1.0, 2.0], 1, 2));
    }
}
