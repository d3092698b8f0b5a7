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

mod chunks;
mod file;
pub mod images;

#[cfg(test)]
use chunks::embedding_order;
use chunks::Chunks;
pub use file::save_features;
use file::{read_cached, write};

/// Bumped when the feature computation changes in a way the key does not capture.
const FEATURE_VERSION: u32 = 1;

/// The rows to embed, as the cache sees them: the dataset's name and content hash (both part of
/// the key) and each row's text, in dataset order. (Whoever holds a dataset makes one; this crate
/// needs nothing else of it.)
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    /// The dataset's name.
    pub name: &'a str,
    /// The hash of its rows' content.
    pub version: &'a str,
    /// Each row's text.
    pub texts: Vec<&'a str>,
}

/// What to embed.
#[derive(Debug, Clone)]
pub struct FeatureRequest<'a> {
    /// The model.
    pub model: &'a ModelSource,
    /// The rows.
    pub dataset: Rows<'a>,
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
        let data = sanitize(self.dataset.name);
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
    let chunks = Chunks::new(req, req.path_on(root, device));
    whole(&chunks, &mut |chunks, share| {
        fill(chunks, req, device, share, progress)
    })
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
    let chunks = Chunks::new(req, req.path_on(root, device));
    share_of(&chunks, share, &mut |chunks, share| {
        fill(chunks, req, device, share, progress)
    })
}

/// Embeds the missing chunks of a share (text or images).
type Fill<'a> = dyn FnMut(&Chunks, Share) -> Result<Filled> + 'a;

/// The features of `chunks`' file: read when it is there, else every chunk filled (under a claim,
/// so that two processes never compute them twice) and assembled.
fn whole(chunks: &Chunks, fill: &mut Fill) -> Result<Features> {
    let path = &chunks.path;
    if let Some(cached) = read_cached(path, chunks.rows) {
        return Ok(cached);
    }
    // Another worker computing the same features: wait for its file instead of computing twice.
    let _claim = claim(&path.with_extension("claim"), path)?;
    if let Some(cached) = read_cached(path, chunks.rows) {
        return Ok(cached);
    }
    let done = fill(chunks, Share::ALL)?;
    let mut feats = chunks.assemble()?.ok_or_else(|| ModelError::Cache {
        path: chunks.dir.clone(),
        reason: "a chunk vanished while the features were assembled".into(),
    })?;
    // Chunks left complete by a killed pass are assembled without embedding anything.
    feats.from_cache = done.computed == 0;
    (feats.tokens, feats.seconds, feats.resumed) = (done.tokens, done.seconds, done.resumed);
    Ok(feats)
}

/// One share of `chunks` filled, and the file assembled when every share's chunks are there.
fn share_of(chunks: &Chunks, share: Share, fill: &mut Fill) -> Result<ShareReport> {
    let path = &chunks.path;
    if share.count == 0 || share.index >= share.count {
        return Err(ModelError::Cache {
            path: path.clone(),
            reason: format!(
                "share {}/{}: the index must be below the count",
                share.index, share.count
            ),
        });
    }
    let rows = (0..chunks.count())
        .filter(|&j| share.has(j))
        .map(|j| chunks.range(j).len())
        .sum();
    if let Some(cached) = read_cached(path, chunks.rows) {
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
        let _claim = claim(&claim_path, path)?;
        fill(chunks, share)?
    };
    let features = if path.is_file() || chunks.all_present() {
        let _claim = claim(&path.with_extension("claim"), path)?;
        match read_cached(path, chunks.rows) {
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
    let what = format!("{} on {}", req.model.name, req.dataset.name);
    fill_chunks(chunks, share, &what, progress, &mut |missing, on_batch| {
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
            .texts
            .iter()
            .map(|text| encoder.tokenizer.encode(text, req.max_len))
            .collect::<Result<Vec<_>>>()?;
        let mut embed = |rows: &[Vec<u32>]| -> Result<Vec<Vec<f32>>> {
            encoder
                .embed_ids(rows)?
                .to_device(&Device::Cpu)
                .and_then(|t| t.to_vec2::<f32>())
                .context("reading embeddings")
        };
        chunks.compute(&ids, missing, req.batch_size, &mut embed, on_batch)
    })
}

/// Computes the missing chunks of a share: `run(missing, on_batch)` loads the model (only when a
/// chunk is missing), embeds them and returns the rows and tokens it embedded.
type RunChunks<'a> = dyn FnMut(&[usize], &mut dyn FnMut(usize)) -> Result<(usize, usize)> + 'a;

/// The part of a fill every kind of input shares: which of the share's chunks are missing, the
/// resumed rows, progress before the first batch and after each one.
fn fill_chunks(
    chunks: &Chunks,
    share: Share,
    what: &str,
    progress: &mut dyn FnMut(EmbedProgress),
    run: &mut RunChunks,
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
        tracing::info!("{what}: {resumed} of {total} rows already computed, resuming");
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
    let (computed, tokens) = run(&missing, &mut |rows| {
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

#[cfg(test)]
mod tests {
    use super::file::{npy_bytes, read};
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
