//! Matrix products of frozen weights in bfloat16: `x·Wᵀ` with `x` and `W` rounded to bf16 and
//! products accumulated in f32, on AMX tiles or AVX512-BF16 dot products, whichever the CPU has
//! (detected at run time).
//!
//! A frozen weight is rounded and packed once ([`PackedWeight`], cached by tensor in
//! [`packed`]): columns of `Wᵀ` in blocks of 16, each row of a block holding one pair of
//! consecutive `k` (the "VNNI" layout). One 16-pair run of a block is exactly an AMX B tile, and
//! each row of it is one AVX512-BF16 operand, so both kernels read the same packing. The input is
//! rounded per product, 32 rows at a time. Everything else (norms, softmax, the activations,
//! gradients and trained weights) stays f32: this is autocast for frozen matmuls.
use candle_core::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Rows of the input each task rounds and multiplies (two AMX tiles tall).
const ROWS: usize = 32;
/// Columns per block of the packed weight (one AMX tile or one 512-bit register wide).
const COLS: usize = 16;
/// The reduction depth of one AMX tile (32 bf16 = 64 bytes a row).
const DEPTH: usize = 32;

/// Which bf16 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel AMX tiles (`tdpbf16ps`): Sapphire Rapids and later.
    Amx,
    /// AVX512-BF16 dot products (`vdpbf16ps`): Cooper Lake, Zen 4 and later.
    Avx512,
    /// Scalar code with the same rounding: the reference the tests compare against.
    Portable,
}

impl Kernel {
    /// Name as `W2S_BF16_KERNEL` spells it and the bench prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Avx512 => "avx512-bf16",
            Kernel::Portable => "portable",
        }
    }

    /// True when this CPU (and, for AMX, the kernel's permission) can run it.
    pub fn available(self) -> bool {
        match self {
            Kernel::Amx => amx_usable(),
            Kernel::Avx512 => avx512_bf16(),
            Kernel::Portable => true,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512_bf16() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_bf16() -> bool {
    false
}

/// 0: not asked yet; 1: usable; 2: not.
static AMX: AtomicU8 = AtomicU8::new(0);

/// AMX needs the CPU flags and, on Linux, the process's permission to use the 8 KiB tile state
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), asked for once.
fn amx_usable() -> bool {
    match AMX.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let ok = amx_request();
            AMX.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_request() -> bool {
    // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE (std's detection of them is unstable);
    // leaf 7 is asked for only where it exists.
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain syscall; it only changes which register state the kernel saves for us.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_request() -> bool {
    false
}

/// The fastest kernel this CPU has, or `None` (then bf16 products are not offered).
/// `W2S_BF16_KERNEL=amx|avx512-bf16|portable` picks one, if available.
pub fn best_kernel() -> Option<Kernel> {
    if let Ok(name) = std::env::var("W2S_BF16_KERNEL") {
        let pick = KERNELS.into_iter().find(|k| k.name() == name);
        return pick.filter(|k| k.available());
    }
    [Kernel::Amx, Kernel::Avx512]
        .into_iter()
        .find(|k| k.available())
}

/// Measured rate of `kernel`'s products `[m, k]·[n, k]ᵀ` in GFLOP/s, the median of `reps` after
/// a warm-up, on every thread of the pool; rounding the activations is timed (it is part of every
/// product), packing the weight is not (it happens once per weight).
pub fn rate(kernel: Kernel, m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let x = crate::probe_matrix(m, k, 17);
    let w = PackedWeight::pack(&crate::probe_matrix(n, k, 13), n, k, k, 1);
    let mut dst = vec![0f32; m * n];
    crate::product_rate(m, n, k, reps, || matmul(kernel, &x, &w, &mut dst, &|_| {}))
}

/// bf16 and f32 rates (GFLOP/s) at a shape typical of a base-size encoder's batch
/// (`[2048, 768]·[768, 768]ᵀ`), when `kernel`'s products are measurably slower than f32 gemm on
/// this CPU: there `--dtype bf16` costs time instead of saving it. On an Intel core without AMX
/// `vdpbf16ps` issues at half the FMA rate, so its two products per lane buy nothing and the
/// rounding is extra (measured on an Emerald Rapids Xeon: 0.6× f32). Takes about 0.2 s; callers
/// ask once per process.
pub fn slower_than_f32(kernel: Kernel) -> Option<(f64, f64)> {
    let (m, n, k) = (2048, 768, 768);
    let (bf16, f32) = (rate(kernel, m, n, k, 4), crate::gemm_rate(m, n, k, 4));
    tracing::debug!(
        "bf16 probe ({}): {bf16:.0} GFLOP/s, f32 {f32:.0}",
        kernel.name()
    );
    (bf16 < 0.9 * f32).then_some((bf16, f32))
}

/// The kernel frozen products use: 0 while off, else 1 + its index in [`KERNELS`].
static ACTIVE: AtomicU8 = AtomicU8::new(0);
const KERNELS: [Kernel; 3] = [Kernel::Amx, Kernel::Avx512, Kernel::Portable];

/// Turns bf16 products of frozen weights on or off for the whole process. Returns the kernel
/// that will run, or `None` (and stays off) when the CPU has neither AMX nor AVX512-BF16.
pub fn set_active(on: bool) -> Option<Kernel> {
    let kernel = if on { best_kernel() } else { None };
    let code = kernel.map_or(0, |k| 1 + KERNELS.iter().position(|&c| c == k).unwrap_or(0));
    ACTIVE.store(code as u8, Ordering::Relaxed);
    kernel
}

/// The kernel frozen products use now, if bf16 products are on.
pub fn active() -> Option<Kernel> {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => None,
        code => KERNELS.get(usize::from(code) - 1).copied(),
    }
}

/// f32 → bf16 bits, rounding to nearest even (what `vcvtneps2bf16` does); NaN stays NaN.
#[inline(always)]
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline(always)]
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `Wᵀ` for `W [n, k]`, rounded to bf16 in blocks of 16 columns, pairs of `k` interleaved.
pub struct PackedWeight {
    /// Output columns (`W`'s rows).
    pub n: usize,
    /// Reduction length (`W`'s columns).
    pub k: usize,
    /// `k` rounded up to a whole AMX tile depth.
    kp: usize,
    /// Blocks of 16 columns, rounded up to an even count (the AMX kernel takes two at a time).
    blocks: usize,
    /// `[blocks][kp / 2][16][2]`, zero where `n` or `k` is padding.
    data: Vec<u16>,
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
        let kp = k.div_ceil(DEPTH) * DEPTH;
        let blocks = n.div_ceil(2 * COLS) * 2;
        let block_len = kp * COLS;
        let mut data = vec![0u16; blocks * block_len];
        data.par_chunks_mut(block_len)
            .enumerate()
            .for_each(|(b, block)| {
                for c in 0..COLS {
                    let j = b * COLS + c;
                    if j >= n {
                        break;
                    }
                    for kk in 0..k {
                        block[(kk / 2) * 2 * COLS + c * 2 + kk % 2] = to_bf16(w[j * rs + kk * cs]);
                    }
                }
            });
        PackedWeight {
            n,
            k,
            kp,
            blocks,
            data,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }

    /// Block `b`'s pairs, starting at pair `p`.
    fn block(&self, b: usize, p: usize) -> *const u16 {
        self.data[(b * self.kp / 2 + p) * 2 * COLS..].as_ptr()
    }
}

/// Packed frozen weights by tensor, so each is rounded once however many batches it sees.
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

/// `dst[m×n] = x[m×k] · Wᵀ` with `x` row-major and both rounded to bf16, f32 accumulation, on all
/// of rayon's threads; then `epilogue` on each task's finished rows (a whole number of rows of
/// `n`) while they are still in cache: a bias and activation cost no extra pass over memory.
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
    let k = w.k;
    crate::packed::by_row_tasks(x, (k, w.n), dst, ROWS, epilogue, |x, dst| {
        let rows = x.len() / k.max(1);
        // The task's rows in bf16, zero-padded to 32 rows of kp.
        let mut a = vec![0u16; ROWS * w.kp];
        for (i, row) in x.chunks(k).enumerate() {
            round_row(row, &mut a[i * w.kp..i * w.kp + k]);
        }
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => unsafe { amx_rows(&a, w, rows, dst) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { avx512_rows(&a, w, rows, dst) },
            _ => portable_rows(&a, w, rows, dst),
        }
    });
}

fn round_row(src: &[f32], dst: &mut [u16]) {
    crate::simd::fast(
        #[inline(always)]
        || {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = to_bf16(s);
            }
        },
    )
}

/// Scalar products of the rounded values; the order of the f32 sums is the only difference from
/// the fast kernels.
fn portable_rows(a: &[u16], w: &PackedWeight, rows: usize, dst: &mut [MaybeUninit<f32>]) {
    let n = w.n;
    for i in 0..rows {
        for j in 0..n {
            let (b, c) = (j / COLS, j % COLS);
            let mut acc = 0f32;
            for kk in 0..w.k {
                let wv = w.data[(b * w.kp / 2 + kk / 2) * 2 * COLS + c * 2 + kk % 2];
                acc += from_bf16(a[i * w.kp + kk]) * from_bf16(wv);
            }
            dst[i * n + j].write(acc);
        }
    }
}

/// The AMX tile configuration: tmm0–3 hold 16×16 f32 results, tmm4–5 16 rows × 32 bf16 of the
/// input, tmm6–7 16 pairs × 16 columns of the weight; all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row
            c[48 + t] = 16; // rows
        }
        TileConfig(c)
    }
}

/// One task's 32 rows against every column block, 32×32 results at a time.
///
/// # Safety
/// The CPU must have AMX and the permission ([`Kernel::available`]); `a` is `[32][kp]`.
#[cfg(target_arch = "x86_64")]
unsafe fn amx_rows(a: &[u16], w: &PackedWeight, rows: usize, dst: &mut [MaybeUninit<f32>]) {
    use std::arch::asm;
    let n = w.n;
    let cfg = TileConfig::new();
    let a_stride = w.kp * 2;
    let a0 = a.as_ptr();
    let a1 = a[16 * w.kp..].as_ptr();
    let mut c = [0f32; ROWS * 2 * COLS];
    let c_stride = 2 * COLS * 4;
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack));
    for b in (0..w.blocks).step_by(2) {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for d in 0..w.kp / DEPTH {
            let b0 = w.block(b, d * DEPTH / 2);
            let b1 = w.block(b + 1, d * DEPTH / 2);
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0.add(d * DEPTH),
                a1 = in(reg) a1.add(d * DEPTH),
                b0 = in(reg) b0,
                b1 = in(reg) b1,
                sa = in(reg) a_stride,
                sb = in(reg) 2 * COLS * 2,
                options(nostack, readonly)
            );
        }
        let cp = c.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c0 = in(reg) cp,
            c1 = in(reg) cp.add(COLS),
            c2 = in(reg) cp.add(16 * 2 * COLS),
            c3 = in(reg) cp.add(16 * 2 * COLS + COLS),
            s = in(reg) c_stride,
            options(nostack)
        );
        copy_out(&c, b * COLS, rows, n, dst);
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// Copies a `[32][32]` result block to columns `j0..` of the task's rows, cut to `n`.
fn copy_out(c: &[f32], j0: usize, rows: usize, n: usize, dst: &mut [MaybeUninit<f32>]) {
    let cols = (2 * COLS).min(n.saturating_sub(j0));
    for i in 0..rows {
        let src = &c[i * 2 * COLS..i * 2 * COLS + cols];
        for (d, &v) in dst[i * n + j0..i * n + j0 + cols].iter_mut().zip(src) {
            d.write(v);
        }
    }
}

/// Rows per AVX512-BF16 micro-tile: 8 rows × 32 columns = 16 accumulator registers.
const MICRO: usize = 8;

/// One task's 32 rows with `vdpbf16ps`: 8 rows × 2 column blocks at a time, one pair of `k` per
/// step, the pair of each row broadcast. Results go straight to `dst` through masked stores
/// instead of through a staging block and a copy.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16; `a` is `[32][kp]`, `dst` is `[rows][n]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn avx512_rows(a: &[u16], w: &PackedWeight, rows: usize, dst: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let n = w.n;
    let pairs = w.kp / 2;
    // Lanes of a 16-column block that lie inside n.
    let mask = |j0: usize| -> __mmask16 {
        match n.saturating_sub(j0) {
            0 => 0,
            c if c >= COLS => !0,
            c => (1u16 << c) - 1,
        }
    };
    for b in (0..w.blocks).step_by(2) {
        let b0 = w.block(b, 0);
        let b1 = w.block(b + 1, 0);
        let j0 = b * COLS;
        let masks = [mask(j0), mask(j0 + COLS)];
        for i0 in (0..rows).step_by(MICRO) {
            let mut acc = [[_mm512_setzero_ps(); 2]; MICRO];
            let ap = a.as_ptr().add(i0 * w.kp) as *const i32;
            for p in 0..pairs {
                let w0: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b0.add(p * 2 * COLS) as *const _));
                let w1: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b1.add(p * 2 * COLS) as *const _));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*ap.add(r * pairs + p)));
                    acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
                }
            }
            // Rows past `rows` are the zero padding of `a`: not stored.
            for (r, acc) in acc.iter().enumerate().take(rows - i0) {
                let row = dst.as_mut_ptr().cast::<f32>().add((i0 + r) * n + j0);
                for (h, (&v, &m)) in acc.iter().zip(&masks).enumerate() {
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

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2⁻⁸ is halfway between bf16 1.0 and 1 + 2⁻⁷: ties go to the even mantissa (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: up to the even one.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn packing_places_pairs_of_k_side_by_side() {
        // W [3, 5]: W[j][c] = 10j + c, exact in bf16.
        let w: Vec<f32> = (0..15).map(|i| (10 * (i / 5) + i % 5) as f32).collect();
        let p = PackedWeight::pack(&w, 3, 5, 5, 1);
        assert_eq!((p.kp, p.blocks), (32, 2));
        let at = |kk: usize, j: usize| from_bf16(p.data[(kk / 2) * 32 + j * 2 + kk % 2]);
        assert_eq!(at(0, 0), 0.0);
        assert_eq!(at(1, 0), 1.0);
        assert_eq!(at(4, 2), 24.0);
        assert_eq!(at(3, 1), 13.0);
        // Padding is zero: column 3 (n = 3) and k = 5.
        assert_eq!(at(0, 3), 0.0);
        assert_eq!(at(5, 0), 0.0);
    }
}
