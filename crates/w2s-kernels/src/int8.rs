//! Matrix products of frozen weights in 8-bit integers: `x·Wᵀ` with `W` held as int8 in blocks of
//! 32 along `k`, each block with its own f32 scale, and each row of `x` quantized per product to
//! int8 in the same blocks (llama.cpp's Q8_0 for activations). Each block's dot product is exact
//! in int32; the f32 sum over blocks of `dot · (scale_x · scale_w)` is the only rounding after
//! quantization. The AVX-512 VNNI kernel (`vpdpbusd`, Ice Lake, Zen 4 and later) and the portable
//! one do the same f32 operations in the same order, so they give the same bits on every CPU.
//!
//! Weights come from a model's (dequantized) f32 tensors, so any frozen weight can be packed. A
//! block of a GGUF file's Q8_0, Q5_0 or Q4_0 tensor is packed exactly: its values are `q·d` with
//! small integers `q`, and one of the two scales tried per block (`max|w|/127`, for Q8_0, or
//! `-max/128`, a power-of-two fraction of Q4_0's and Q5_0's `d`) reproduces them. Other blocks
//! (k-quants, f32 weights) take the scale with the smaller worst error: under half a step of
//! `max|w|/127`, a quarter of a Q4_K step.
//!
//! `vpdpbusd` multiplies unsigned bytes by signed ones, so activations are stored as `q + 128`
//! (0..=255) and each packed block carries `-128·Σ q_w` to start its dot product from.
use candle_core::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Elements of `k` that share one scale.
pub const BLOCK: usize = 32;
/// Columns per packed group: one 512-bit register of int32 sums.
const COLS: usize = 16;
/// Rows per micro-tile: 6 rows × 2 column groups = 12 int32 and 12 f32 accumulators.
const MR: usize = 6;
/// Rows each task quantizes and multiplies (8 micro-tiles).
const ROWS: usize = 8 * MR;
/// Bytes of one packed block of a column group: 8 steps of 4 `k` × 16 columns.
const GROUP_BLOCK: usize = BLOCK * COLS;

/// Where column `c`'s element `e` (0..32) of a block lies in the block's packed bytes: 8 steps of
/// 4 consecutive `k` for each of the 16 columns (one `vpdpbusd` operand per step).
#[inline(always)]
fn at(c: usize, e: usize) -> usize {
    (e / 4) * COLS * 4 + c * 4 + e % 4
}

/// Which int8 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI dot products (`vpdpbusd`).
    Vnni,
    /// Scalar code with the same arithmetic: every CPU, and the reference of the tests.
    Portable,
}

impl Kernel {
    /// Name as `W2S_INT8_KERNEL` spells it and the bench prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Vnni => "avx512-vnni",
            Kernel::Portable => "portable",
        }
    }

    /// True when this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Kernel::Vnni => crate::peak::vnni_detected(),
            Kernel::Portable => true,
        }
    }
}

const KERNELS: [Kernel; 2] = [Kernel::Vnni, Kernel::Portable];

/// The fastest kernel this CPU has; `W2S_INT8_KERNEL=avx512-vnni|portable` picks one if
/// available.
pub fn best_kernel() -> Kernel {
    if let Ok(name) = std::env::var("W2S_INT8_KERNEL") {
        if let Some(k) = KERNELS
            .into_iter()
            .find(|k| k.name() == name && k.available())
        {
            return k;
        }
    }
    KERNELS
        .into_iter()
        .find(|k| k.available())
        .unwrap_or(Kernel::Portable)
}

/// 0 while int8 products are off, else 1 + the kernel's index in [`KERNELS`].
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// Turns int8 products of frozen weights on or off for the whole process; returns the kernel
/// that will run.
pub fn set_active(on: bool) -> Option<Kernel> {
    let kernel = on.then(best_kernel);
    let code = kernel.map_or(0, |k| 1 + KERNELS.iter().position(|&c| c == k).unwrap_or(1));
    ACTIVE.store(code as u8, Ordering::Relaxed);
    kernel
}

/// The kernel frozen products use now, if int8 products are on.
pub fn active() -> Option<Kernel> {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => None,
        code => KERNELS.get(usize::from(code) - 1).copied(),
    }
}

/// `W [n, k]` as int8 blocks: column groups of 16, each block of 32 `k` stored as 8 steps of
/// 4 consecutive `k` per column (one `vpdpbusd` operand), with per-column scales and offsets.
pub struct PackedWeight {
    /// Output columns (`W`'s rows).
    pub n: usize,
    /// Reduction length (`W`'s columns).
    pub k: usize,
    /// Blocks of 32 along `k` (the last zero-padded).
    kb: usize,
    /// Column groups of 16, rounded up to an even count (the kernel takes two at a time).
    groups: usize,
    /// `[groups][kb][8][16][4]`, zero where `n` or `k` is padding.
    q: Vec<i8>,
    /// `[groups][kb][16]`: each block's scale.
    scale: Vec<f32>,
    /// `[groups][kb][16]`: `-128 · Σ q` over the block, undoing the activations' offset.
    offset: Vec<i32>,
}

/// The scale of a block of weights and its integers: of `max|w|/127` and `-max/128` (`max` the
/// value of largest magnitude, signed), the one that reproduces the block exactly (Q8_0: the
/// first; Q4_0 and Q5_0, whose `max` is `-8·d` or `-16·d`: the second), else the one with the
/// smaller worst error.
#[inline(always)]
pub fn quantize_block(w: &[f32], q: &mut [i8]) -> f32 {
    // The value of largest magnitude, with its sign: Q4_0 and Q5_0 give it the integer -8 or -16.
    let max = w
        .iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let amax = max.abs();
    if amax == 0.0 || !amax.is_finite() {
        q.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let error = |d: f32| -> Option<f32> {
        let mut worst = 0f32;
        for &v in w {
            let r = (v / d).round_ties_even();
            if !(-128.0..=127.0).contains(&r) {
                return None;
            }
            worst = worst.max((v - r * d).abs());
        }
        Some(worst)
    };
    let (d127, d128) = (amax / 127.0, -max / 128.0);
    let d = match (error(d127), error(d128)) {
        (Some(e1), Some(e2)) if e2 < e1 => d128,
        (None, Some(_)) => d128,
        _ => d127,
    };
    for (q, &v) in q.iter_mut().zip(w) {
        *q = (v / d).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
    d
}

impl crate::packed::Packing for PackedWeight {
    fn pack(w: &[f32], n: usize, k: usize, rs: usize, cs: usize) -> PackedWeight {
        PackedWeight::pack(w, n, k, rs, cs)
    }

    fn bytes(&self) -> usize {
        PackedWeight::bytes(self)
    }
}

impl PackedWeight {
    /// Packs `W [n, k]` whose element `(j, c)` is at `w[j·rs + c·cs]`.
    pub fn pack(w: &[f32], n: usize, k: usize, rs: usize, cs: usize) -> PackedWeight {
        let kb = k.div_ceil(BLOCK);
        let groups = n.div_ceil(2 * COLS) * 2;
        let mut q = vec![0i8; groups * kb * GROUP_BLOCK];
        let mut scale = vec![0f32; groups * kb * COLS];
        let mut offset = vec![0i32; groups * kb * COLS];
        q.par_chunks_mut(kb * GROUP_BLOCK)
            .zip(scale.par_chunks_mut(kb * COLS))
            .zip(offset.par_chunks_mut(kb * COLS))
            .enumerate()
            .for_each(|(g, ((q, scale), offset))| {
                // Compiled for the CPU's vector unit: the rounding is then one instruction.
                crate::simd::fast(
                    #[inline(always)]
                    || {
                        let mut vals = [0f32; BLOCK];
                        let mut ints = [0i8; BLOCK];
                        for c in 0..COLS {
                            let j = g * COLS + c;
                            if j >= n {
                                break;
                            }
                            for b in 0..kb {
                                for (e, v) in vals.iter_mut().enumerate() {
                                    let kk = b * BLOCK + e;
                                    *v = if kk < k { w[j * rs + kk * cs] } else { 0.0 };
                                }
                                scale[b * COLS + c] = quantize_block(&vals, &mut ints);
                                offset[b * COLS + c] =
                                    -128 * ints.iter().map(|&v| i32::from(v)).sum::<i32>();
                                for (e, &v) in ints.iter().enumerate() {
                                    q[b * GROUP_BLOCK + at(c, e)] = v;
                                }
                            }
                        }
                    },
                )
            });
        PackedWeight {
            n,
            k,
            kb,
            groups,
            q,
            scale,
            offset,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * (self.scale.len() + self.offset.len())
    }

    /// Column `j`'s weight at `kk` as packed, and its block's scale: `q · scale` is the value the
    /// products use.
    pub fn get(&self, j: usize, kk: usize) -> (i8, f32) {
        let (g, c, b, e) = (j / COLS, j % COLS, kk / BLOCK, kk % BLOCK);
        let gb = g * self.kb + b;
        (
            self.q[gb * GROUP_BLOCK + at(c, e)],
            self.scale[gb * COLS + c],
        )
    }
}

/// Rows of `x` quantized per block of 32: bytes `q + 128` and a scale per block.
struct QuantRows {
    /// `[rows][kb·32]`.
    a: Vec<u8>,
    /// `[rows][kb]`.
    d: Vec<f32>,
}

/// Quantizes `x` (`k` values) into `a` (`kb·32` bytes, `q + 128`) and `d` (`kb` scales):
/// `d = max|x|/127`, `q = round(x · 127/max|x|)`, ties to even, as the tests recompute by hand.
fn quantize_row(x: &[f32], a: &mut [u8], d: &mut [f32]) {
    for (b, (a, d)) in a.chunks_mut(BLOCK).zip(d.iter_mut()).enumerate() {
        let x = &x[(b * BLOCK).min(x.len())..((b + 1) * BLOCK).min(x.len())];
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        *d = amax / 127.0;
        for (i, a) in a.iter_mut().enumerate() {
            let v = x.get(i).map_or(0.0, |v| (v * inv).round_ties_even());
            *a = (v.clamp(-127.0, 127.0) as i32 + 128) as u8;
        }
    }
}

/// [`quantize_row`] with AVX-512: the same operations (`vcvtps2dq` rounds ties to even), so the
/// same bytes; the partial last block goes through [`quantize_row`].
///
/// # Safety
/// The CPU must have AVX-512F; `a` is `kb·32` bytes and `d` `kb` scales for `x`'s `k` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_row_avx512(x: &[f32], a: &mut [u8], d: &mut [f32]) {
    use std::arch::x86_64::*;
    let whole = x.len() / BLOCK;
    for (b, d) in d.iter_mut().enumerate().take(whole) {
        let p = x.as_ptr().add(b * BLOCK);
        let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        *d = amax / 127.0;
        let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
        let out = a.as_mut_ptr().add(b * BLOCK);
        for (h, v) in [v0, v1].into_iter().enumerate() {
            let q = _mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(inv)));
            let q = _mm512_add_epi32(
                _mm512_min_epi32(_mm512_max_epi32(q, lo), hi),
                _mm512_set1_epi32(128),
            );
            _mm_storeu_si128(out.add(h * 16) as *mut __m128i, _mm512_cvtepi32_epi8(q));
        }
    }
    if whole * BLOCK < x.len() || whole < d.len() {
        quantize_row(
            &x[whole * BLOCK..],
            &mut a[whole * BLOCK..],
            &mut d[whole..],
        );
    }
}

/// Packed frozen weights by tensor, so each is quantized once however many batches it sees.
static CACHE: crate::packed::Cache<PackedWeight> = crate::packed::Cache::new();

/// The packing of the 2-D weight `w` (`[n, k]`, any strides), made on first use and cached by
/// tensor id (a frozen weight's tensor lives as long as its model).
pub fn packed(w: &Tensor) -> candle_core::Result<Arc<PackedWeight>> {
    CACHE.packed(w)
}

/// Forgets every packed weight (their models are gone).
pub fn clear_cache() {
    CACHE.clear()
}

/// Measured rate of `kernel`'s products `[m, k]·[n, k]ᵀ` in GFLOP/s (median of `reps` after a
/// warm-up, every thread of the pool); quantizing the activations is timed, packing is not.
pub fn rate(kernel: Kernel, m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let x = crate::probe_matrix(m, k, 17);
    let w = PackedWeight::pack(&crate::probe_matrix(n, k, 13), n, k, k, 1);
    let mut dst = vec![0f32; m * n];
    crate::product_rate(m, n, k, reps, || matmul(kernel, &x, &w, &mut dst, &|_| {}))
}

/// `dst[m×n] = x[m×k] · Wᵀ` in int8 as the module says, on all of rayon's threads; then
/// `epilogue` on each task's finished rows (a whole number of rows of `n`) while in cache.
pub fn matmul(
    kernel: Kernel,
    x: &[f32],
    w: &PackedWeight,
    dst: &mut [f32],
    epilogue: &(dyn Fn(&mut [f32]) + Sync),
) {
    matmul_into(kernel, x, w, crate::packed::as_slots(dst), epilogue);
}

/// [`matmul`] into an unwritten buffer, which it writes in full (a fused op's fresh output).
pub(crate) fn matmul_into(
    kernel: Kernel,
    x: &[f32],
    w: &PackedWeight,
    dst: &mut [MaybeUninit<f32>],
    epilogue: &(dyn Fn(&mut [f32]) + Sync),
) {
    let (k, kp) = (w.k, w.kb * BLOCK);
    crate::packed::by_row_tasks(x, (k, w.n), dst, ROWS, epilogue, |x, dst| {
        let rows = x.len() / k.max(1);
        // The task's rows quantized, padded with zero rows (bytes 128, scale 0) to whole tiles.
        let mut q = QuantRows {
            a: vec![128u8; ROWS * kp],
            d: vec![0f32; ROWS * w.kb],
        };
        for (i, row) in x.chunks(k).enumerate() {
            let (a, d) = (
                &mut q.a[i * kp..(i + 1) * kp],
                &mut q.d[i * w.kb..(i + 1) * w.kb],
            );
            match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Vnni => unsafe { quantize_row_avx512(row, a, d) },
                _ => quantize_row(row, a, d),
            }
        }
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => unsafe { vnni_rows(&q, w, rows, dst) },
            _ => portable_rows(&q, w, rows, dst),
        }
    });
}

/// Block by block: the exact integer dot product, then `acc = fma(dot, d_x · d_w, acc)`, the
/// order and operations of the VNNI kernel.
fn portable_rows(q: &QuantRows, w: &PackedWeight, rows: usize, dst: &mut [MaybeUninit<f32>]) {
    let (n, kb) = (w.n, w.kb);
    let kp = kb * BLOCK;
    crate::simd::fast(
        #[inline(always)]
        || {
            for i in 0..rows {
                let a = &q.a[i * kp..(i + 1) * kp];
                for j in 0..n {
                    let (g, c) = (j / COLS, j % COLS);
                    let mut acc = 0f32;
                    for b in 0..kb {
                        let gb = g * kb + b;
                        let blk = &w.q[gb * GROUP_BLOCK..(gb + 1) * GROUP_BLOCK];
                        let mut dot = w.offset[gb * COLS + c];
                        for e in 0..BLOCK {
                            let wq = blk[at(c, e)];
                            dot += i32::from(a[b * BLOCK + e]) * i32::from(wq);
                        }
                        let s = q.d[i * kb + b] * w.scale[gb * COLS + c];
                        acc = (dot as f32).mul_add(s, acc);
                    }
                    dst[i * n + j].write(acc);
                }
            }
        },
    )
}

/// One task's rows with `vpdpbusd`: 6 rows × 2 column groups at a time; per block, 8 steps of
/// 4 `k` (each row's 4 bytes broadcast), then each int32 sum scaled into its f32 accumulator.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512 VNNI; `q` holds `ROWS` rows; `dst` is `[rows][n]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni_rows(q: &QuantRows, w: &PackedWeight, rows: usize, dst: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let (n, kb) = (w.n, w.kb);
    let kp = kb * BLOCK;
    let mask = |j0: usize| -> __mmask16 {
        match n.saturating_sub(j0) {
            0 => 0,
            c if c >= COLS => !0,
            c => (1u16 << c) - 1,
        }
    };
    for g in (0..w.groups).step_by(2) {
        let q0 = w.q.as_ptr().add(g * kb * GROUP_BLOCK);
        let q1 = w.q.as_ptr().add((g + 1) * kb * GROUP_BLOCK);
        let s0 = w.scale.as_ptr().add(g * kb * COLS);
        let s1 = w.scale.as_ptr().add((g + 1) * kb * COLS);
        let o0 = w.offset.as_ptr().add(g * kb * COLS);
        let o1 = w.offset.as_ptr().add((g + 1) * kb * COLS);
        let j0 = g * COLS;
        let masks = [mask(j0), mask(j0 + COLS)];
        for i0 in (0..rows).step_by(MR) {
            let a = q.a.as_ptr().add(i0 * kp);
            let d = q.d.as_ptr().add(i0 * kb);
            let mut f = [[_mm512_setzero_ps(); 2]; MR];
            for b in 0..kb {
                let init = [
                    _mm512_loadu_si512(o0.add(b * COLS) as *const _),
                    _mm512_loadu_si512(o1.add(b * COLS) as *const _),
                ];
                let mut acc = [init; MR];
                for step in 0..BLOCK / 4 {
                    // The step's 64 bytes: 4 `k` of all 16 columns.
                    let step_at = b * GROUP_BLOCK + at(0, step * 4);
                    let w0 = _mm512_loadu_si512(q0.add(step_at) as *const _);
                    let w1 = _mm512_loadu_si512(q1.add(step_at) as *const _);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_set1_epi32(
                            (a.add(r * kp + b * BLOCK + step * 4) as *const i32).read_unaligned(),
                        );
                        acc[0] = _mm512_dpbusd_epi32(acc[0], x, w0);
                        acc[1] = _mm512_dpbusd_epi32(acc[1], x, w1);
                    }
                }
                let sw = [
                    _mm512_loadu_ps(s0.add(b * COLS)),
                    _mm512_loadu_ps(s1.add(b * COLS)),
                ];
                for (r, (f, acc)) in f.iter_mut().zip(&acc).enumerate() {
                    let dx = _mm512_set1_ps(*d.add(r * kb + b));
                    for h in 0..2 {
                        f[h] = _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(acc[h]),
                            _mm512_mul_ps(dx, sw[h]),
                            f[h],
                        );
                    }
                }
            }
            // Rows past `rows` are the task's zero padding: not stored.
            for (r, f) in f.iter().enumerate().take(rows.saturating_sub(i0)) {
                let row = dst.as_mut_ptr().cast::<f32>().add((i0 + r) * n + j0);
                for (h, (&v, &m)) in f.iter().zip(&masks).enumerate() {
                    if m != 0 {
                        _mm512_mask_storeu_ps(row.add(h * COLS), m, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen_range(-2.0f32..2.0)).collect()
    }

    /// Blocks of Q8_0, Q5_0 and Q4_0 values (`q · d`, `d` an f16 value) are packed exactly.
    #[test]
    fn gguf_blocks_are_packed_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // (lowest q, highest q): the ranges of Q8_0, Q5_0 and Q4_0 as llama.cpp fills them (its
        // d makes the value of largest magnitude q = 127 for Q8_0, q = -16 or -8 otherwise).
        for (lo, hi, extreme) in [(-127, 127, 127), (-16, 15, -16), (-8, 7, -8)] {
            for _ in 0..200 {
                // A half-precision scale of either sign.
                let d = f32::from(rng.gen_range(1u16..2048)) * 2f32.powi(rng.gen_range(-20..-8));
                let d = if rng.gen_bool(0.5) { -d } else { d };
                let mut w: Vec<f32> = (0..BLOCK)
                    .map(|_| rng.gen_range(lo..=hi) as f32 * d)
                    .collect();
                w[rng.gen_range(0..BLOCK)] = extreme as f32 * d;
                let mut q = [0i8; BLOCK];
                let s = quantize_block(&w, &mut q);
                for (v, q) in w.iter().zip(q) {
                    assert_eq!(f32::from(q) * s, *v, "range {lo}..{hi}, d {d}");
                }
            }
        }
        // Anything else: within half a step of max|w|/127.
        let w = random(BLOCK, 9);
        let mut q = [0i8; BLOCK];
        let s = quantize_block(&w, &mut q);
        let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (v, q) in w.iter().zip(q) {
            assert!((f32::from(q) * s - v).abs() <= amax / 127.0 * 0.5 + 1e-6);
        }
        assert_eq!(quantize_block(&[0.0; BLOCK], &mut q), 0.0);
    }

    /// Activations by hand: max|x| = 2, so the scale is 2/127 and x · 63.5 rounds to even.
    #[test]
    fn activations_quantize_per_block_by_hand() {
        let mut x = vec![0f32; 40];
        x[0] = 2.0;
        x[1] = -1.0; // -63.5 → -64 (ties to even)
        x[2] = 0.5; // 31.75 → 32
        x[3] = 0.0625; // 3.96875 → 4
        x[32] = -0.25; // second block: max 0.25 → -127
        x[33] = 0.125; // 63.5 → 64
        let (mut a, mut d) = (vec![0u8; 64], vec![0f32; 2]);
        quantize_row(&x, &mut a, &mut d);
        assert_eq!(&a[..5], &[255, 64, 160, 132, 128]);
        assert_eq!((a[32], a[33], a[34], a[63]), (1, 192, 128, 128));
        assert_eq!(d, vec![2.0 / 127.0, 0.25 / 127.0]);
    }

    /// The AVX-512 quantizer writes the portable one's bytes and scales, partial blocks included.
    #[test]
    fn vector_quantizer_matches_the_portable_one() {
        if !Kernel::Vnni.available() {
            eprintln!("no AVX-512 VNNI on this CPU: the vector quantizer is not used here");
            return;
        }
        for k in [1, 31, 32, 33, 96, 100] {
            let mut x = random(k, k as u64);
            x[k / 2] = 0.0;
            let kb = k.div_ceil(BLOCK);
            let (mut a1, mut d1) = (vec![7u8; kb * BLOCK], vec![7f32; kb]);
            let (mut a2, mut d2) = (vec![9u8; kb * BLOCK], vec![9f32; kb]);
            quantize_row(&x, &mut a1, &mut d1);
            // SAFETY: VNNI (and so AVX-512F) detected above.
            unsafe { quantize_row_avx512(&x, &mut a2, &mut d2) };
            assert_eq!((a1, d1), (a2, d2), "k = {k}");
        }
    }

    /// The product by hand on one block: Σ q_x q_w · d_x d_w.
    #[test]
    fn product_by_hand() {
        // x = [1, 0, .., 0, -1]: q_x = ±127, d_x = 1/127. w = [1, 2, .., 32]: -max/128 = -1/4
        // reproduces it (q_w = -4, -8, .., -128), so that scale is taken.
        let mut x = vec![0f32; BLOCK];
        x[0] = 1.0;
        x[31] = -1.0;
        let w: Vec<f32> = (1..=BLOCK).map(|v| v as f32).collect();
        let p = PackedWeight::pack(&w, 1, BLOCK, BLOCK, 1);
        assert_eq!(p.get(0, 0), (-4, -0.25));
        assert_eq!(p.get(0, 31), (-128, -0.25));
        let mut out = vec![0f32];
        matmul(Kernel::Portable, &x, &p, &mut out, &|_| {});
        let want = ((127 * -4 + -127 * -128) as f32).mul_add((1.0 / 127.0) * -0.25, 0.0);
        assert_eq!(out[0], want);
        assert!((out[0] - (1.0 - 32.0)).abs() < 0.01);
    }

    /// Odd shapes (rows, columns and `k` off every tile size): the VNNI kernel gives the portable
    /// kernel's bits, and both stay near the f32 product.
    #[test]
    fn kernels_agree_bit_for_bit_and_near_f32() {
        for &(m, n, k) in &[(1, 1, 1), (7, 33, 70), (49, 48, 96), (100, 130, 257)] {
            let x = random(m * k, 1 + m as u64);
            let w = random(n * k, 2 + n as u64);
            let p = PackedWeight::pack(&w, n, k, k, 1);
            let mut portable = vec![f32::NAN; m * n];
            matmul(Kernel::Portable, &x, &p, &mut portable, &|_| {});
            let mut err = 0f64;
            let mut norm = 0f64;
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|c| f64::from(x[i * k + c]) * f64::from(w[j * k + c]))
                        .sum();
                    err += (f64::from(portable[i * n + j]) - exact).powi(2);
                    norm += exact.powi(2);
                }
            }
            // Two roundings to 1/127 of a block's largest value per term, on uniform values:
            // about 0.3–0.5% of the product's size here (1.3% with the offset off by one step).
            let rel = (err / norm).sqrt();
            assert!(rel < 0.008, "({m}, {n}, {k}): relative error {rel}");
            if Kernel::Vnni.available() {
                let mut vnni = vec![f32::NAN; m * n];
                matmul(Kernel::Vnni, &x, &p, &mut vnni, &|_| {});
                let same = portable
                    .iter()
                    .zip(&vnni)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "({m}, {n}, {k}): VNNI differs from portable");
            } else {
                eprintln!("no AVX-512 VNNI on this CPU: only the portable kernel was checked");
            }
        }
    }

    /// Strided (transposed) weights pack like their contiguous copy.
    #[test]
    fn strides_are_followed() {
        let (n, k) = (5, 40);
        let w = random(n * k, 4);
        let mut t = vec![0f32; n * k];
        for j in 0..n {
            for c in 0..k {
                t[c * n + j] = w[j * k + c];
            }
        }
        let a = PackedWeight::pack(&w, n, k, k, 1);
        let b = PackedWeight::pack(&t, n, k, 1, n);
        assert_eq!(a.q, b.q);
        assert_eq!(a.scale, b.scale);
        assert_eq!(a.offset, b.offset);
    }
}
