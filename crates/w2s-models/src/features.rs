//! Pooled features for every row of a dataset, computed once and cached.
//!
//! The cache key covers everything the numbers depend on: the weights (their pinned sha256), the
//! dataset's content hash, the maximum length, the pooling and the input prefix. A second request
//! with the same key reads the file instead of running the model.
//!
//! A computation commits its rows in chunks (see [`cached_features`]), so that a kill loses one
//! chunk at most, and can be split across workers by [`Share`]. The assembled file is one
//! safetensors tensor, as caches written before chunking are, so those stay readable.
use crate::dtype::WeightDtype;
use crate::encoder::{Encoder, LoadRequest, Train};
use crate::error::{CandleContext, ModelError, Result};
use crate::registry::ModelSource;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
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
    /// Rows per committed chunk (rounded up to whole batches); not part of the key, since the
    /// features do not depend on it. [`DEFAULT_CHUNK_ROWS`] unless a test wants small chunks.
    pub chunk_rows: usize,
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
    /// Non-padding tokens processed now (0 when cached).
    pub tokens: usize,
    /// Rows an earlier, interrupted pass had already computed (0 when cached or computed whole).
    pub resumed: usize,
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

    /// How many chunks the computation is committed in.
    pub fn chunk_count(&self) -> usize {
        Chunks::new(self, PathBuf::new()).count()
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

/// Rows per committed chunk of a feature computation when a request does not say: small enough
/// that a kill loses little (128 rows of a 1.5B decoder are a few minutes on 2 cores), large
/// enough that a big dataset is not thousands of files.
pub const DEFAULT_CHUNK_ROWS: usize = 128;

/// One share of a feature computation, so that several workers (a Slurm array, `--jobs`) split
/// one model's rows: the chunks `j` with `(j + offset) % count == index`. Chunks are dealt out in
/// turn rather than in ranges because rows are embedded longest first, so a range would give the
/// first worker the slowest rows. `offset` lets a list of computations continue the deal where the
/// previous one ended, so that small ones do not all land on the first workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This worker's index, `0..count`.
    pub index: usize,
    /// How many workers share the rows.
    pub count: usize,
    /// Where the deal starts: chunk 0 goes to worker `offset % count`.
    pub offset: usize,
}

impl Share {
    /// The whole computation.
    pub const ALL: Share = Share {
        index: 0,
        count: 1,
        offset: 0,
    };

    fn has(&self, chunk: usize) -> bool {
        (chunk + self.offset) % self.count.max(1) == self.index
    }
}

/// Progress of a feature computation, reported once before the first batch and after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedProgress {
    /// Rows ready, the resumed ones included.
    pub done: usize,
    /// Rows this computation covers (a share's rows, or the dataset's).
    pub total: usize,
    /// Rows found already computed by an earlier, interrupted pass (or another worker).
    pub resumed: usize,
}

/// What [`feature_share`] did.
#[derive(Debug, Clone)]
pub struct ShareReport {
    /// Rows in this share.
    pub rows: usize,
    /// Rows embedded now.
    pub computed: usize,
    /// Rows found already computed.
    pub resumed: usize,
    /// Non-padding tokens embedded now.
    pub tokens: usize,
    /// Seconds spent embedding.
    pub seconds: f64,
    /// The assembled features, when every share is done (this one finished last, or the file
    /// was already there).
    pub features: Option<Features>,
}

/// Returns the features, from the cache when present, else by running the model (and caching them).
///
/// The rows are embedded longest first, in batches of `batch_size`, and committed every
/// `chunk_rows` rows (a file per chunk, renamed into place). A pass killed halfway resumes after
/// its last complete chunk, and because a chunk boundary is a batch boundary, every batch holds
/// the same rows as in one uninterrupted pass: the assembled features are bit-identical to it.
pub fn cached_features(
    root: &Path,
    req: &FeatureRequest,
    device: &Device,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<Features> {
    let path = req.path_on(root, device);
    if let Some(cached) = read_cached(&path, req.dataset.examples.len()) {
        return Ok(cached);
    }
    // Another worker computing the same features: wait for its file instead of computing twice.
    let claim_path = path.with_extension("claim");
    let _claim = claim(&claim_path, &path)?;
    if let Some(cached) = read_cached(&path, req.dataset.examples.len()) {
        return Ok(cached);
    }
    let chunks = Chunks::new(req, path.clone());
    let done = fill(&chunks, req, device, Share::ALL, progress)?;
    let mut feats = chunks.assemble()?.ok_or_else(|| ModelError::Cache {
        path: chunks.dir.clone(),
        reason: "a chunk vanished while the features were assembled".into(),
    })?;
    // Chunks left complete by a killed pass are assembled without embedding anything.
    feats.from_cache = done.computed == 0;
    (feats.tokens, feats.seconds, feats.resumed) = (done.tokens, done.seconds, done.resumed);
    Ok(feats)
}

/// Computes one share of the features (see [`Share`]) and, when every share's chunks are there,
/// assembles them into the cached file that [`cached_features`] reads. Shares may run at once in
/// other processes, on other hosts sharing the folder, and before or after each other.
pub fn feature_share(
    root: &Path,
    req: &FeatureRequest,
    device: &Device,
    share: Share,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<ShareReport> {
    if share.count == 0 || share.index >= share.count {
        return Err(ModelError::Cache {
            path: root.to_path_buf(),
            reason: format!(
                "share {}/{}: the index must be below the count",
                share.index, share.count
            ),
        });
    }
    let path = req.path_on(root, device);
    let chunks = Chunks::new(req, path.clone());
    let rows = (0..chunks.count())
        .filter(|&j| share.has(j))
        .map(|j| chunks.range(j).len())
        .sum();
    if let Some(cached) = read_cached(&path, req.dataset.examples.len()) {
        return Ok(ShareReport {
            rows,
            computed: 0,
            resumed: rows,
            tokens: 0,
            seconds: 0.0,
            features: Some(cached),
        });
    }
    let done = {
        let claim_path = chunks
            .dir
            .join(format!("share-{}-of-{}.claim", share.index, share.count));
        std::fs::create_dir_all(&chunks.dir).map_err(|e| ModelError::Cache {
            path: chunks.dir.clone(),
            reason: e.to_string(),
        })?;
        let _claim = claim(&claim_path, &path)?;
        fill(&chunks, req, device, share, progress)?
    };
    let features = if path.is_file() || chunks.all_present() {
        let _claim = claim(&path.with_extension("claim"), &path)?;
        match read_cached(&path, req.dataset.examples.len()) {
            Some(f) => Some(f),
            None => chunks.assemble()?,
        }
    } else {
        None
    };
    Ok(ShareReport {
        rows,
        computed: done.computed,
        resumed: done.resumed,
        tokens: done.tokens,
        seconds: done.seconds,
        features,
    })
}

/// Waits for another process's claim on `claim_path` (or for `done` to appear) and takes it.
fn claim(claim_path: &Path, done: &Path) -> Result<Option<w2s_assets::claim::Claim>> {
    w2s_assets::claim::claim_or_wait(claim_path, &|| done.is_file(), &mut |who| {
        tracing::info!("waiting for {who}, which is computing {}", done.display())
    })
    .map_err(|e| ModelError::Cache {
        path: claim_path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// What [`fill`] did.
struct Filled {
    computed: usize,
    resumed: usize,
    tokens: usize,
    seconds: f64,
}

/// Embeds the chunks of `share` that are not on disk yet, loading the model only when one is
/// missing.
fn fill(
    chunks: &Chunks,
    req: &FeatureRequest,
    device: &Device,
    share: Share,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<Filled> {
    let mine: Vec<usize> = (0..chunks.count()).filter(|&j| share.has(j)).collect();
    let total = mine.iter().map(|&j| chunks.range(j).len()).sum();
    let missing: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&j| !chunks.present(j))
        .collect();
    let resumed = total
        - missing
            .iter()
            .map(|&j| chunks.range(j).len())
            .sum::<usize>();
    if resumed > 0 {
        tracing::info!(
            "{} on {}: {resumed} of {total} rows already computed, resuming",
            req.model.name,
            req.dataset.name
        );
    }
    let mut report = EmbedProgress {
        done: resumed,
        total,
        resumed,
    };
    progress(report);
    if missing.is_empty() {
        return Ok(Filled {
            computed: 0,
            resumed,
            tokens: 0,
            seconds: 0.0,
        });
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
    let ids = req
        .dataset
        .examples
        .iter()
        .map(|e| encoder.tokenizer.encode(&e.text, req.max_len))
        .collect::<Result<Vec<_>>>()?;
    let mut embed = |rows: &[Vec<u32>]| -> Result<Vec<Vec<f32>>> {
        encoder
            .embed_ids(rows)?
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_vec2::<f32>())
            .context("reading embeddings")
    };
    let (computed, tokens) =
        chunks.compute(&ids, &missing, req.batch_size, &mut embed, &mut |rows| {
            report.done += rows;
            progress(report);
        })?;
    Ok(Filled {
        computed,
        resumed,
        tokens,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A model's pooled rows for a batch of token ids.
type EmbedBatch<'a> = dyn FnMut(&[Vec<u32>]) -> Result<Vec<Vec<f32>>> + 'a;

/// The rows in the order they are embedded: longest first (little padding per batch); equal
/// lengths keep dataset order, so every process finds the same order.
fn embedding_order(ids: &[Vec<u32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    order
}

/// The chunk files of one feature computation. Chunk `j` holds the rows at positions
/// `j·chunk_rows..` of the embedding order, with their dataset indices, so that assembling needs
/// neither the model nor its tokenizer.
struct Chunks {
    /// The assembled file.
    path: PathBuf,
    /// Where the chunks live; its name carries the batch size and the chunk size, because the
    /// rows a batch holds (and so the rounding of its padded products) depend on them.
    dir: PathBuf,
    rows: usize,
    chunk_rows: usize,
}

impl Chunks {
    fn new(req: &FeatureRequest, path: PathBuf) -> Chunks {
        Chunks::of(
            path,
            req.dataset.examples.len(),
            req.batch_size,
            req.chunk_rows,
        )
    }

    fn of(path: PathBuf, rows: usize, batch_size: usize, chunk_rows: usize) -> Chunks {
        let batch = batch_size.max(1);
        // A chunk boundary must be a batch boundary.
        let chunk_rows = chunk_rows.max(1).div_ceil(batch) * batch;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.with_file_name(format!("{stem}.chunks-b{batch}-c{chunk_rows}"));
        Chunks {
            path,
            dir,
            rows,
            chunk_rows,
        }
    }

    fn count(&self) -> usize {
        self.rows.div_ceil(self.chunk_rows)
    }

    /// Positions in the embedding order that chunk `j` covers.
    fn range(&self, j: usize) -> std::ops::Range<usize> {
        j * self.chunk_rows..((j + 1) * self.chunk_rows).min(self.rows)
    }

    fn file(&self, j: usize) -> PathBuf {
        self.dir.join(format!("chunk-{j:06}.safetensors"))
    }

    fn present(&self, j: usize) -> bool {
        let file = self.file(j);
        if !file.is_file() {
            return false;
        }
        match self.read(j) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("{e}; computing the chunk again");
                false
            }
        }
    }

    fn all_present(&self) -> bool {
        (0..self.count()).all(|j| self.present(j))
    }

    /// Chunk `j`'s dataset row indices and `[rows, dim]` values, checked for its length.
    fn read(&self, j: usize) -> Result<(Vec<u32>, Vec<f32>, usize)> {
        let file = self.file(j);
        let err = |reason: String| ModelError::Cache {
            path: file.clone(),
            reason,
        };
        let Loaded {
            values,
            rows,
            dim,
            tensors,
        } = load(&file)?;
        let index = tensors
            .get("rows")
            .ok_or_else(|| err("no 'rows' tensor".into()))?
            .to_vec1::<u32>()
            .map_err(|e| err(e.to_string()))?;
        let expected = self.range(j).len();
        if rows != expected || index.len() != expected {
            return Err(err(format!("{rows} rows, the chunk covers {expected}")));
        }
        if let Some(bad) = index.iter().find(|&&i| i as usize >= self.rows) {
            return Err(err(format!(
                "row {bad} is beyond the dataset's {} rows",
                self.rows
            )));
        }
        Ok((index, values, dim))
    }

    /// Embeds chunks `todo` batch by batch and commits each one; `on_batch(rows)` after every
    /// batch. Returns the rows and real tokens embedded.
    fn compute(
        &self,
        ids: &[Vec<u32>],
        todo: &[usize],
        batch_size: usize,
        embed: &mut EmbedBatch,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<(usize, usize)> {
        let order = embedding_order(ids);
        let (mut rows, mut tokens) = (0, 0);
        for &j in todo {
            // Another worker finished everything meanwhile.
            if self.path.is_file() {
                break;
            }
            if self.present(j) {
                continue;
            }
            let members = &order[self.range(j)];
            let mut values = Vec::new();
            let mut dim = 0;
            for batch in members.chunks(batch_size.max(1)) {
                let batch_ids: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
                tokens += batch_ids.iter().map(Vec::len).sum::<usize>();
                for v in embed(&batch_ids)? {
                    dim = v.len();
                    values.extend(v);
                }
                on_batch(batch.len());
            }
            let index: Vec<u32> = members.iter().map(|&i| i as u32).collect();
            self.write(j, &index, &values, dim)?;
            rows += members.len();
        }
        Ok((rows, tokens))
    }

    fn write(&self, j: usize, index: &[u32], values: &[f32], dim: usize) -> Result<()> {
        write(&self.file(j), values, index.len(), dim, Some(index))
    }

    /// Puts every chunk's rows back in dataset order and writes the cache file; `None` when a
    /// chunk is missing. The chunks are removed once the file is in place.
    fn assemble(&self) -> Result<Option<Features>> {
        let mut values = Vec::new();
        let mut seen = vec![false; self.rows];
        let mut dim = 0;
        for j in 0..self.count() {
            if !self.file(j).is_file() {
                return Ok(None);
            }
            let (index, chunk, d) = self.read(j)?;
            if j == 0 {
                dim = d;
                values = vec![0f32; self.rows * dim];
            } else if d != dim {
                return Err(ModelError::Cache {
                    path: self.file(j),
                    reason: format!("{d} features a row, chunk 0 has {dim}"),
                });
            }
            for (k, &i) in index.iter().enumerate() {
                let i = i as usize;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(ModelError::Cache {
                        path: self.file(j),
                        reason: format!("row {i} is in two chunks"),
                    });
                }
                values[i * dim..(i + 1) * dim].copy_from_slice(&chunk[k * dim..(k + 1) * dim]);
            }
        }
        write(&self.path, &values, self.rows, dim, None)?;
        // Only the claim files of finished shares can remain; a failure to tidy loses nothing.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!("leaving {}: {e}", self.dir.display());
        }
        Ok(Some(Features {
            values,
            rows: self.rows,
            dim,
            path: self.path.clone(),
            from_cache: true,
            tokens: 0,
            resumed: 0,
            seconds: 0.0,
        }))
    }
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

fn read(path: &Path, expected_rows: usize) -> Result<(Vec<f32>, usize, usize)> {
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
struct Loaded {
    /// Row-major values of `features`.
    values: Vec<f32>,
    rows: usize,
    dim: usize,
    tensors: HashMap<String, Tensor>,
}

fn load(path: &Path) -> Result<Loaded> {
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
fn write(
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

    /// A stand-in model whose output depends on the whole batch (its longest row), as padded
    /// products can: a resumed pass only matches when every batch holds the same rows.
    fn fake_embed(rows: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0) as f32;
        rows.iter()
            .map(|r| {
                let sum: u32 = r.iter().sum();
                vec![sum as f32 * 0.37 + longest * 1e-3, r.len() as f32 / 7.0]
            })
            .collect()
    }

    fn fake_ids(n: usize) -> Vec<Vec<u32>> {
        (0..n)
            .map(|i| {
                (0..(i * 7919 % 13 + 1) as u32)
                    .map(|t| t * 31 + i as u32)
                    .collect()
            })
            .collect()
    }

    fn run_all(chunks: &Chunks, ids: &[Vec<u32>], share: Share, batch: usize) -> usize {
        let todo: Vec<usize> = (0..chunks.count())
            .filter(|&j| share.has(j) && !chunks.present(j))
            .collect();
        let mut calls = 0;
        chunks
            .compute(
                ids,
                &todo,
                batch,
                &mut |rows| {
                    calls += 1;
                    Ok(fake_embed(rows))
                },
                &mut |_| {},
            )
            .unwrap();
        calls
    }

    #[test]
    fn an_interrupted_pass_resumes_to_the_same_bits_and_shares_assemble_the_same() {
        let ids = fake_ids(37);
        let dir = tempfile::tempdir().unwrap();
        let clean = Chunks::of(dir.path().join("clean.safetensors"), 37, 3, 7);
        assert_eq!(clean.chunk_rows, 9, "rounded up to whole batches");
        assert_eq!(clean.count(), 5);
        assert_eq!(
            run_all(&clean, &ids, Share::ALL, 3),
            13,
            "37 rows in batches of 3"
        );
        let reference = clean.assemble().unwrap().unwrap();
        assert!(!clean.dir.exists(), "the chunks go once assembled");
        let mut expected = vec![0f32; 37 * 2];
        let order = embedding_order(&ids);
        for batch in order.chunks(3) {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            for (&i, v) in batch.iter().zip(fake_embed(&rows)) {
                expected[i * 2..i * 2 + 2].copy_from_slice(&v);
            }
        }
        assert_eq!(reference.values, expected, "one pass, in dataset order");
        assert_eq!(read(&clean.path, 37).unwrap().0, expected);

        // Killed during its 8th batch: the first two chunks (6 batches) are committed.
        let broken = Chunks::of(dir.path().join("killed.safetensors"), 37, 3, 7);
        let mut calls = 0;
        let all: Vec<usize> = (0..broken.count()).collect();
        let err = broken.compute(
            &ids,
            &all,
            3,
            &mut |rows| {
                calls += 1;
                if calls == 8 {
                    return Err(ModelError::Cache {
                        path: PathBuf::new(),
                        reason: "killed".into(),
                    });
                }
                Ok(fake_embed(rows))
            },
            &mut |_| {},
        );
        assert!(err.is_err());
        assert!(broken.present(0) && broken.present(1) && !broken.present(2));
        assert!(
            broken.assemble().unwrap().is_none(),
            "incomplete chunks are not assembled"
        );
        // A damaged chunk is computed again, not trusted.
        std::fs::write(broken.file(1), b"torn").unwrap();
        assert_eq!(run_all(&broken, &ids, Share::ALL, 3), 13 - 3);
        let resumed = broken.assemble().unwrap().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&resumed.values), bits(&reference.values));

        // Three shares, dealt from an offset, in any order: the last one completes the set.
        let shared = Chunks::of(dir.path().join("shared.safetensors"), 37, 3, 7);
        let share = |index| Share {
            index,
            count: 3,
            offset: 1,
        };
        assert_eq!(
            (0..5).filter(|&j| share(2).has(j)).collect::<Vec<_>>(),
            [1, 4]
        );
        run_all(&shared, &ids, share(2), 3);
        run_all(&shared, &ids, share(0), 3);
        assert!(!shared.all_present());
        run_all(&shared, &ids, share(1), 3);
        assert!(shared.all_present());
        let assembled = shared.assemble().unwrap().unwrap();
        assert_eq!(bits(&assembled.values), bits(&reference.values));
    }

    #[test]
    fn a_chunk_with_foreign_rows_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = Chunks::of(dir.path().join("f.safetensors"), 4, 2, 2);
        chunks.write(0, &[0, 9], &[1.0, 2.0], 1).unwrap();
        let err = chunks.read(0).unwrap_err().to_string();
        assert!(
            err.contains("row 9 is beyond the dataset's 4 rows"),
            "{err}"
        );
        chunks.write(0, &[0], &[1.0], 1).unwrap();
        let err = chunks.read(0).unwrap_err().to_string();
        assert!(err.contains("1 rows, the chunk covers 2"), "{err}");
        chunks.write(0, &[0, 1], &[1.0, 2.0], 1).unwrap();
        chunks.write(1, &[1, 2], &[1.0, 2.0], 1).unwrap();
        let err = chunks.assemble().unwrap_err().to_string();
        assert!(err.contains("row 1 is in two chunks"), "{err}");
    }

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
