//! Frozen weights packed once for reduced-precision products ([`crate::bf16`], [`crate::int8`]),
//! cached by tensor: a frozen weight's tensor lives as long as its model, and each weight is
//! packed once however many batches it sees.
use crate::matmul::SharedMut;
use candle_core::{Tensor, TensorId};
use rayon::prelude::*;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

impl<P: Packing> Default for Cache<P> {
    fn default() -> Self {
        Cache::new()
    }
}

/// A packing of a 2-D f32 weight `W [n, k]`.
pub trait Packing: Send + Sync + 'static {
    /// Packs `W [n, k]` whose element `(j, c)` is at `w[j·rs + c·cs]`.
    fn pack(w: &[f32], n: usize, k: usize, rs: usize, cs: usize) -> Self;
    /// Bytes held.
    fn bytes(&self) -> usize;
}

/// A cache empties itself when it would pass this (a ladder of models, one after another).
const LIMIT: usize = 4 << 30;

/// Packed weights by tensor id.
pub struct Cache<P>(Mutex<Option<HashMap<TensorId, Arc<P>>>>);

impl<P: Packing> Cache<P> {
    /// An empty cache (a `static` of each packing's module).
    pub const fn new() -> Self {
        Cache(Mutex::new(None))
    }

    /// The packing of the 2-D weight `w` (`[n, k]`, any strides), made on first use.
    pub fn packed(&self, w: &Tensor) -> candle_core::Result<Arc<P>> {
        let hit = self.0.lock().expect("packed-weight cache");
        if let Some(p) = hit.as_ref().and_then(|c| c.get(&w.id())) {
            return Ok(p.clone());
        }
        drop(hit);
        let (n, k) = w.dims2()?;
        let (storage, layout) = w.storage_and_layout();
        let all = crate::real::cpu_slice::<f32>(&storage, None, "pack a frozen weight")?;
        let s = layout.stride();
        let p = Arc::new(P::pack(&all[layout.start_offset()..], n, k, s[0], s[1]));
        let mut cache = self.0.lock().expect("packed-weight cache");
        let map = cache.get_or_insert_with(HashMap::new);
        if map.values().map(|p| p.bytes()).sum::<usize>() + p.bytes() > LIMIT {
            map.clear();
        }
        map.insert(w.id(), p.clone());
        Ok(p)
    }

    /// Forgets every packed weight (their models are gone).
    pub fn clear(&self) {
        *self.0.lock().expect("packed-weight cache") = None;
    }
}

/// `dst` as unwritten slots, for a kernel that writes every element of it.
pub(crate) fn as_slots(dst: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the kernels write only initialised values.
    unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `dst[m×n]` from `x[m×k]` in tasks of `rows` rows on all of rayon's threads. `task(x_rows,
/// dst_rows)` writes every element of its rows; `epilogue` then runs on them while they are still
/// in cache (a bias and activation cost no extra pass over memory).
pub(crate) fn by_row_tasks(
    x: &[f32],
    (k, n): (usize, usize),
    dst: &mut [MaybeUninit<f32>],
    rows: usize,
    epilogue: &(dyn Fn(&mut [f32]) + Sync),
    task: impl Fn(&[f32], &mut [MaybeUninit<f32>]) + Sync,
) {
    let m = x.len().checked_div(k).unwrap_or(dst.len() / n.max(1));
    assert!(x.len() == m * k && dst.len() == m * n, "matmul shapes");
    if m == 0 || n == 0 {
        return;
    }
    let out = SharedMut(dst.as_mut_ptr());
    (0..m.div_ceil(rows)).into_par_iter().for_each(|t| {
        let r0 = t * rows;
        let count = rows.min(m - r0);
        // SAFETY: each task writes only its own rows r0..r0+count of dst.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(r0 * n), count * n) };
        task(&x[r0 * k..(r0 + count) * k], dst);
        // SAFETY: the task wrote every element of its rows.
        epilogue(unsafe { crate::real::written(dst) });
    });
}
