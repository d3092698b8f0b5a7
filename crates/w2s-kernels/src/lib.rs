//! Fused CPU kernels with a backward pass, as candle custom ops.
//!
//! candle 0.11's CPU backend composes attention, norms and activations from many small ops, each
//! allocating its output, several single-threaded, and has no backward for its own fused norms and
//! softmax. Each op here computes forward in one or two parallel passes, keeps what its backward
//! needs (softmax probabilities, a norm's per-row statistics, a pre-activation), and computes
//! every input gradient directly. They run on the CPU in f32 (and f64, for the finite-difference
//! tests); on CUDA and in bf16/f16 each entry point takes the composed path it replaces, which
//! stays here too so that tests compare the two.
//!
//! `W2S_FUSED=0` (or [`set_enabled`]) switches every entry point to the composed path: `w2s
//! bench` measures both in one invocation.
pub mod attention;
pub mod bf16;
pub mod embedding;
pub mod gated;
pub mod int8;
pub mod linear;
mod matmul;
pub mod norm;
pub mod packed;
pub mod peak;
pub mod real;
pub mod rope;
mod simd;
pub mod sink;
pub mod tape;

pub use attention::{attention, composed_attention, fused_attention, AttentionShape};
pub use embedding::{composed_embedding, embedding, fused_embedding};
pub use gated::{composed_gated, fused_gated, gated};
pub use linear::{composed_linear, fused_linear, linear, linear_in_out, Act};
pub use norm::{
    composed_layer_norm, composed_rms_norm, fused_layer_norm, fused_rms_norm, layer_norm, rms_norm,
};
pub use rope::{composed_rotary, fused_rotary, rotary};
pub use simd::level_name as simd_level;
pub use sink::backward;
pub use tape::{add, contiguous, map, narrow, region};

use candle_core::{DType, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet; 1: on; 2: off.
static ENABLED: AtomicU8 = AtomicU8::new(0);

/// Whether the entry points use the fused kernels (default on; `W2S_FUSED=0` turns them off).
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("W2S_FUSED").map_or(true, |v| v != "0");
            ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the fused kernels on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// True when the fused kernels are on and every tensor is on the CPU in the same f32/f64 dtype.
pub(crate) fn use_fused(tensors: &[&Tensor]) -> bool {
    let Some(first) = tensors.first() else {
        return false;
    };
    let dtype = first.dtype();
    enabled()
        && matches!(dtype, DType::F32 | DType::F64)
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == dtype)
}

/// Measured f32 matrix-product rate of the kernels' gemm, in GFLOP/s: the median of `reps` timed
/// products `[m, k]·[n, k]ᵀ` (a Linear's forward) after one warm-up, on every thread of the pool.
pub fn gemm_rate(m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let a = probe_matrix(m, k, 17);
    let b = probe_matrix(n, k, 13);
    let mut c = vec![0f32; m * n];
    product_rate(m, n, k, reps, || {
        // SAFETY: the three buffers have exactly the sizes the strides address.
        unsafe {
            matmul::matmul(
                m,
                n,
                k,
                c.as_mut_ptr(),
                n as isize,
                false,
                matmul::Mat::rows(a.as_ptr(), k),
                matmul::Mat::rows(b.as_ptr(), k).t(),
                1.0,
                matmul::Threads::All,
            );
        }
    })
}

/// A `[rows, cols]` matrix of small values with period `period` (no zeros to shortcut on).
pub(crate) fn probe_matrix(rows: usize, cols: usize, period: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i % period) as f32 - (period / 2) as f32) * 0.01)
        .collect()
}

/// GFLOP/s of an `[m, k]·[k, n]` product run by `product`: the median of `reps` timed calls
/// after one warm-up.
pub(crate) fn product_rate(
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
    mut product: impl FnMut(),
) -> f64 {
    let mut times = Vec::with_capacity(reps);
    for rep in 0..=reps.max(1) {
        let start = std::time::Instant::now();
        product();
        if rep > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    2.0 * (m * n * k) as f64 / times[times.len() / 2] / 1e9
}
