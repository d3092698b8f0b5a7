//! A table lookup `table[ids]` (token and position embeddings) as one op with a dense backward.
//!
//! candle's `index_select` builds the table's gradient as `zeros.index_add(ids, grad)`: two fresh
//! table-sized buffers and a serial copy of the whole table on the calling thread while the other
//! cores wait; for BERT's 30,522 × 384 word embeddings that is 47 MB each, every training step.
//! Here the gradient is one buffer, and each slice of table rows is zeroed and filled with the
//! gradient rows of its ids by its own parallel task, adding them in position order (as
//! `index_add` does, so the sums are the same).
use crate::real::{cpu_slice, zeroed, Fresh, Real};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Table rows a backward task zeroes and fills.
const ROWS_PER_TASK: usize = 256;

/// Lookup rows a forward task copies.
const LOOKUPS_PER_TASK: usize = 64;

/// The op: the ids, checked against the table's rows.
struct Lookup {
    ids: Vec<usize>,
}

impl Lookup {
    fn forward<T: Real>(&self, table: &[T], rows: usize, dim: usize) -> Vec<T> {
        let mut out = Fresh::<T>::new(self.ids.len() * dim);
        if dim > 0 {
            out.slots()
                .par_chunks_mut(dim * LOOKUPS_PER_TASK)
                .zip(self.ids.par_chunks(LOOKUPS_PER_TASK))
                .for_each(|(out, ids)| {
                    for (o, &id) in out.chunks_mut(dim).zip(ids) {
                        debug_assert!(id < rows);
                        for (o, &v) in o.iter_mut().zip(&table[id * dim..(id + 1) * dim]) {
                            o.write(v);
                        }
                    }
                });
        }
        // SAFETY: each id's row of `dim` elements was copied in (nothing to write when dim = 0).
        unsafe { out.assume_init() }
    }

    fn backward<T: Real>(&self, grad: &[T], rows: usize, dim: usize) -> Vec<T> {
        // Positions sorted by id (stable, so each id's gradient rows are added in order).
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        order.sort_by_key(|&i| self.ids[i]);
        let ids = &self.ids;
        let mut dt = Fresh::<T>::new(rows * dim);
        if dim > 0 {
            dt.slots()
                .par_chunks_mut(dim * ROWS_PER_TASK)
                .enumerate()
                .for_each(|(c, slots)| {
                    let first = c * ROWS_PER_TASK;
                    let last = first + slots.len() / dim;
                    let block = zeroed(slots);
                    let start = order.partition_point(|&i| ids[i] < first);
                    for &i in order[start..].iter().take_while(|&&i| ids[i] < last) {
                        let at = (ids[i] - first) * dim;
                        let g = &grad[i * dim..(i + 1) * dim];
                        for (d, &g) in block[at..at + dim].iter_mut().zip(g) {
                            *d += g;
                        }
                    }
                });
        }
        // SAFETY: every task zeroed its block of rows first (nothing to write when dim = 0).
        unsafe { dt.assume_init() }
    }

    /// [`Lookup::backward`] on tensors: the `[rows, dim]` gradient of `table`.
    fn table_gradient<T: Real>(&self, table: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let (rows, dim) = table.dims2()?;
        let grad = grad.contiguous()?;
        let (s, l) = grad.storage_and_layout();
        let v = self.backward(cpu_slice::<T>(&s, Some(l), self.name())?, rows, dim);
        Tensor::from_vec(v, (rows, dim), table.device())
    }
}

impl CustomOp1 for Lookup {
    fn name(&self) -> &'static str {
        "fused-embedding"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, dim) = l.shape().dims2()?;
        let out = match s.dtype() {
            DType::F32 => f32::wrap(self.forward(f32::contiguous(s, l, self.name())?, rows, dim)),
            DType::F64 => f64::wrap(self.forward(f64::contiguous(s, l, self.name())?, rows, dim)),
            other => candle_core::bail!("fused-embedding: no {other:?} kernel"),
        };
        Ok((out, Shape::from((self.ids.len(), dim))))
    }

    fn bwd(&self, table: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dt = match grad.dtype() {
            DType::F32 => self.table_gradient::<f32>(table, grad)?,
            _ => self.table_gradient::<f64>(table, grad)?,
        };
        crate::sink::divert(table, Some(dt))
    }
}

/// The rows of a `[rows, dim]` table at `ids` (any shape), as `[ids.len(), dim]`. Fused on the
/// CPU in f32/f64; `index_select` elsewhere.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if !crate::use_fused(&[table]) || table.rank() != 2 {
        return composed_embedding(table, ids);
    }
    fused_embedding(table, ids)
}

/// The fused op, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let rows = table.dim(0)?;
    let raw = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let ids: Vec<usize> = raw.iter().map(|&i| i as usize).collect();
    if let Some(bad) = ids.iter().find(|&&i| i >= rows) {
        candle_core::bail!("embedding: id {bad} is out of range for a table of {rows} rows");
    }
    let table = table.contiguous()?;
    let op = Lookup { ids };
    if table.track_op() {
        table.apply_op1(op)
    } else {
        table.apply_op1_no_bwd(&op)
    }
}

/// The composed lookup (candle's `index_select`).
pub fn composed_embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    table.index_select(&ids.flatten_all()?, 0)
}
