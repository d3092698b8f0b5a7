//! The chunks of one feature computation: which rows each holds (longest first, in whole
//! batches), whether it is on disk, and the assembly of the complete file.
use super::file::{load, Loaded};
use super::*;

/// The rows in the order they are embedded: longest first (little padding per batch); equal
/// lengths keep dataset order, so every process finds the same order.
pub(super) fn embedding_order(ids: &[Vec<u32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    order
}

/// The chunk files of one feature computation. Chunk `j` holds the rows at positions
/// `j·chunk_rows..` of the embedding order, with their dataset indices, so that assembling needs
/// neither the model nor its tokenizer.
pub(super) struct Chunks {
    /// The assembled file.
    pub(super) path: PathBuf,
    /// Where the chunks live; its name carries the batch size and the chunk size, because the
    /// rows a batch holds (and so the rounding of its padded products) depend on them.
    pub(super) dir: PathBuf,
    pub(super) rows: usize,
    pub(super) chunk_rows: usize,
}

impl Chunks {
    pub(super) fn new(req: &FeatureRequest, path: PathBuf) -> Chunks {
        Chunks::of(
            path,
            req.dataset.texts.len(),
            req.batch_size,
            req.chunk_rows,
        )
    }

    pub(super) fn of(path: PathBuf, rows: usize, batch_size: usize, chunk_rows: usize) -> Chunks {
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

    pub(super) fn count(&self) -> usize {
        self.rows.div_ceil(self.chunk_rows)
    }

    /// Positions in the embedding order that chunk `j` covers.
    pub(super) fn range(&self, j: usize) -> std::ops::Range<usize> {
        j * self.chunk_rows..((j + 1) * self.chunk_rows).min(self.rows)
    }

    pub(super) fn file(&self, j: usize) -> PathBuf {
        self.dir.join(format!("chunk-{j:06}.safetensors"))
    }

    pub(super) fn present(&self, j: usize) -> bool {
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

    pub(super) fn all_present(&self) -> bool {
        (0..self.count()).all(|j| self.present(j))
    }

    /// Chunk `j`'s dataset row indices and `[rows, dim]` values, checked for its length.
    pub(super) fn read(&self, j: usize) -> Result<(Vec<u32>, Vec<f32>, usize)> {
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
    pub(super) fn compute(
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

    pub(super) fn write(&self, j: usize, index: &[u32], values: &[f32], dim: usize) -> Result<()> {
        write(&self.file(j), values, index.len(), dim, Some(index))
    }

    /// Puts every chunk's rows back in dataset order and writes the cache file; `None` when a
    /// chunk is missing. The chunks are removed once the file is in place.
    pub(super) fn assemble(&self) -> Result<Option<Features>> {
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
