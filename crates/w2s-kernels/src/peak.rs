//! This core's peak multiply–accumulate rates: f32 FMA against the AVX2 int8 forms a quantized
//! product is built from. They bound what a quantized feature path can gain on this CPU before any
//! kernel is written, which is the measurement behind keeping f32 for frozen decoders
//! (`w2s bench qmatmul` prints them).
//!
//! Without AVX-VNNI, an int8 dot product of 32 pairs on AVX2 is `vpmaddubsw` (u8 × i8 → 16 × i16)
//! then `vpmaddwd` against ones (→ 8 × i32) then an add. Weights and activations that both carry a
//! sign need one `vpsignb` more, and llama.cpp's 32-element blocks, each with its own scale, need
//! an int→float conversion and an FMA per block. Each loop below keeps 6–12 independent
//! accumulators, so it measures throughput, not latency; an empty `asm!` makes one operand opaque
//! every iteration, so the compiler cannot hoist the products out of the loop.
//!
//! With AVX-512 VNNI, `vpdpbusd` does the u8 × i8 → i32 dot product of 64 pairs in one
//! instruction; its forms are measured beside an AVX-512 FMA loop, since PyTorch's f32 kernels use
//! 512-bit FMAs on such CPUs (on Zen 4 both are double-pumped 256-bit units, so the f32 rates match).

/// Peak rates of one core, in GMAC/s (one multiply–accumulate per element pair).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peaks {
    /// f32 `vfmadd` (8 lanes, AVX2 + FMA).
    pub f32_fma: f64,
    /// int8 with per-row scales: `vpmaddubsw` + `vpmaddwd` + `vpaddd` per 32 pairs.
    pub int8_pure: f64,
    /// As `int8_pure`, with signed activations (one `vpsignb` more).
    pub int8_signed: f64,
    /// llama.cpp's `Q8_0`-style blocks: `int8_pure` plus a conversion and an FMA by the block's
    /// scale every 32 pairs.
    pub int8_blocks: f64,
    /// The VNNI forms, on CPUs with AVX-512 VNNI.
    pub vnni: Option<Vnni>,
}

/// Peak rates of the AVX-512 VNNI forms, in GMAC/s per core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vnni {
    /// f32 `vfmadd` on 16 lanes (AVX-512F), the f32 peak PyTorch's kernels see on this CPU.
    pub f32_fma512: f64,
    /// `vpdpbusd` on 64 pairs, per-row scales: one instruction per 64 multiply–accumulates.
    pub int8_pure: f64,
    /// `vpdpbusd` with llama.cpp's 32-element block scales: a fresh dot product per 64 pairs
    /// (two blocks), converted and scaled by an FMA (the two scales of a register's halves are
    /// one vector).
    pub int8_blocks: f64,
}

/// Measures [`Peaks`] on the calling thread, about 0.1 s per form; `None` without AVX2 + FMA.
pub fn peaks() -> Option<Peaks> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        // ~0.1 s each at 3 GHz; the first call of each form is a warm-up.
        const ITERS: usize = 12_000_000;
        let rate = |macs_per_iter: usize, run: &dyn Fn(usize)| {
            run(ITERS / 16);
            let start = std::time::Instant::now();
            run(ITERS);
            (ITERS * macs_per_iter) as f64 / start.elapsed().as_secs_f64() / 1e9
        };
        // SAFETY (every call below): AVX2 and FMA were detected above.
        let f32_fma = rate(F32_ACC * 8, &|n| {
            std::hint::black_box(unsafe { x86::f32_fma(n, 1.0, 1.0) });
        });
        let int8 = |form: x86::Int8| {
            rate(INT8_ACC * 32, &|n| {
                std::hint::black_box(unsafe { x86::int8(n, form, 1, 1.0) });
            })
        };
        Some(Peaks {
            f32_fma,
            int8_pure: int8(x86::Int8::Pure),
            int8_signed: int8(x86::Int8::Signed),
            int8_blocks: int8(x86::Int8::Blocks),
            vnni: vnni_detected().then(|| Vnni {
                // SAFETY (these three): AVX-512F and AVX-512 VNNI were detected.
                f32_fma512: rate(F32_ACC * 16, &|n| {
                    std::hint::black_box(unsafe { x86_512::f32_fma512(n, 1.0, 1.0) });
                }),
                int8_pure: rate(INT8_ACC * 64, &|n| {
                    std::hint::black_box(unsafe { x86_512::vnni::<false>(n, 1, 1.0) });
                }),
                int8_blocks: rate(INT8_ACC * 64, &|n| {
                    std::hint::black_box(unsafe { x86_512::vnni::<true>(n, 1, 1.0) });
                }),
            }),
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Whether the CPU has AVX-512F and AVX-512 VNNI (the 512-bit `vpdpbusd`).
pub fn vnni_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Independent f32 accumulators (two FMA pipes × latency 4, with room).
const F32_ACC: usize = 12;
/// Independent int8 accumulators.
const INT8_ACC: usize = 6;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{F32_ACC, INT8_ACC};
    use std::arch::asm;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub enum Int8 {
        Pure,
        Signed,
        Blocks,
    }

    /// `iters` rounds of one FMA into each of the accumulators, `acc += a·b`; returns the sum of
    /// every lane of every accumulator, `iters · 12 · 8 · a · b`.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f32_fma(iters: usize, a: f32, b: f32) -> f64 {
        let mut acc = [_mm256_setzero_ps(); F32_ACC];
        let mut va = _mm256_set1_ps(a);
        let vb = _mm256_set1_ps(b);
        for _ in 0..iters {
            asm!("/* {0} */", inout(ymm_reg) va, options(nomem, nostack, preserves_flags));
            for acc in acc.iter_mut() {
                *acc = _mm256_fmadd_ps(va, vb, *acc);
            }
        }
        let mut lanes = [0f32; 8];
        let mut total = 0.0;
        for acc in acc {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            total += lanes.iter().map(|&x| x as f64).sum::<f64>();
        }
        total
    }

    /// `iters` rounds of a 32-pair int8 dot product into each accumulator, activations all
    /// `a` against weights all `-(j + 1)` in accumulator `j`, then summed over every lane:
    /// `iters · 32 · a · Σⱼ −(j + 1)`, times `scale` for the block form. `a` must be 0..=127
    /// except in the signed form. One function per form, each with only the registers it needs:
    /// a shared body spills its accumulators and under-reports the rate.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    pub unsafe fn int8(iters: usize, form: Int8, a: i8, scale: f32) -> f64 {
        match form {
            Int8::Pure => int8_ints::<false>(iters, a),
            Int8::Signed => int8_ints::<true>(iters, a),
            Int8::Blocks => int8_blocks(iters, a, scale),
        }
    }

    fn weights() -> [i8; INT8_ACC] {
        core::array::from_fn(|j| -(j as i8) - 1)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn int8_ints<const SIGNED: bool>(iters: usize, a: i8) -> f64 {
        let mut acc = [_mm256_setzero_si256(); INT8_ACC];
        let mut va = _mm256_set1_epi8(a);
        let w = weights().map(|w| _mm256_set1_epi8(w));
        let ones = _mm256_set1_epi16(1);
        for _ in 0..iters {
            asm!("/* {0} */", inout(ymm_reg) va, options(nomem, nostack, preserves_flags));
            // |a| against sign(a)·w: how llama.cpp multiplies two signed blocks.
            let ua = if SIGNED { _mm256_abs_epi8(va) } else { va };
            for (acc, &w) in acc.iter_mut().zip(&w) {
                let w = if SIGNED { _mm256_sign_epi8(w, va) } else { w };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ua, w), ones);
                *acc = _mm256_add_epi32(*acc, p);
            }
        }
        let mut lanes = [0i32; 8];
        let mut total = 0.0;
        for acc in acc {
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc);
            total += lanes.iter().map(|&x| x as f64).sum::<f64>();
        }
        total
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn int8_blocks(iters: usize, a: i8, scale: f32) -> f64 {
        let mut acc = [_mm256_setzero_ps(); INT8_ACC];
        let mut va = _mm256_set1_epi8(a);
        let w = weights().map(|w| _mm256_set1_epi8(w));
        let ones = _mm256_set1_epi16(1);
        let vscale = _mm256_set1_ps(scale);
        for _ in 0..iters {
            asm!("/* {0} */", inout(ymm_reg) va, options(nomem, nostack, preserves_flags));
            for (acc, &w) in acc.iter_mut().zip(&w) {
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(va, w), ones);
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), vscale, *acc);
            }
        }
        let mut lanes = [0f32; 8];
        let mut total = 0.0;
        for acc in acc {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            total += lanes.iter().map(|&x| x as f64).sum::<f64>();
        }
        total
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_512 {
    use super::{F32_ACC, INT8_ACC};
    use std::arch::asm;
    use std::arch::x86_64::*;

    /// As [`super::x86::f32_fma`] on 16 lanes: `iters · 12 · 16 · a · b`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_fma512(iters: usize, a: f32, b: f32) -> f64 {
        let mut acc = [_mm512_setzero_ps(); F32_ACC];
        let mut va = _mm512_set1_ps(a);
        let vb = _mm512_set1_ps(b);
        for _ in 0..iters {
            asm!("/* {0} */", inout(zmm_reg) va, options(nomem, nostack, preserves_flags));
            for acc in acc.iter_mut() {
                *acc = _mm512_fmadd_ps(va, vb, *acc);
            }
        }
        acc.iter()
            .map(|&acc| _mm512_reduce_add_ps(acc) as f64)
            .sum()
    }

    /// `iters` rounds of a 64-pair `vpdpbusd` into each accumulator, activations all `a` (0..=127)
    /// against weights all `-(j + 1)` in accumulator `j`: `iters · 64 · a · Σⱼ −(j + 1)`. With
    /// `BLOCKS`, each round's dot product starts from zero and is converted and scaled into an f32
    /// accumulator (times `scale`), as a kernel with 32-element block scales must.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vnni<const BLOCKS: bool>(iters: usize, a: i8, scale: f32) -> f64 {
        let w: [__m512i; INT8_ACC] = core::array::from_fn(|j| _mm512_set1_epi8(-(j as i8) - 1));
        let mut va = _mm512_set1_epi8(a);
        if BLOCKS {
            let mut acc = [_mm512_setzero_ps(); INT8_ACC];
            let vscale = _mm512_set1_ps(scale);
            for _ in 0..iters {
                asm!("/* {0} */", inout(zmm_reg) va, options(nomem, nostack, preserves_flags));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), va, w);
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), vscale, *acc);
                }
            }
            acc.iter()
                .map(|&acc| _mm512_reduce_add_ps(acc) as f64)
                .sum()
        } else {
            let mut acc = [_mm512_setzero_si512(); INT8_ACC];
            for _ in 0..iters {
                asm!("/* {0} */", inout(zmm_reg) va, options(nomem, nostack, preserves_flags));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_dpbusd_epi32(*acc, va, w);
                }
            }
            acc.iter()
                .map(|&acc| _mm512_reduce_add_epi32(acc) as f64)
                .sum()
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// The timed loops compute what they claim (so a rate is of real products): sums by hand.
    #[test]
    fn loops_compute_their_products() {
        // The build machines all have AVX2 + FMA; a CPU without them would leave these loops
        // unchecked, so that is a failure, not a skip.
        assert!(avx2(), "this test needs AVX2 + FMA");
        // SAFETY: detected just above.
        unsafe {
            // 10 rounds × 12 accumulators × 8 lanes × 1.5 × 2.
            assert_eq!(x86::f32_fma(10, 1.5, 2.0), 2880.0);
            // Σⱼ −(j + 1) over 6 accumulators = −21; 7 rounds × 32 pairs × 3 × −21.
            assert_eq!(x86::int8(7, x86::Int8::Pure, 3, 1.0), -14112.0);
            assert_eq!(x86::int8(7, x86::Int8::Signed, 3, 1.0), -14112.0);
            // A negative activation only works through the sign trick: (−3)·(−(j+1)).
            assert_eq!(x86::int8(7, x86::Int8::Signed, -3, 1.0), 14112.0);
            assert_eq!(x86::int8(7, x86::Int8::Blocks, 3, 0.5), -7056.0);
        }
        let p = peaks().expect("AVX2 + FMA");
        for rate in [p.f32_fma, p.int8_pure, p.int8_signed, p.int8_blocks] {
            assert!(rate.is_finite() && rate > 0.0, "{p:?}");
        }
        assert_eq!(p.vnni.is_some(), vnni_detected());
        if let Some(v) = p.vnni {
            for rate in [v.f32_fma512, v.int8_pure, v.int8_blocks] {
                assert!(rate.is_finite() && rate > 0.0, "{v:?}");
            }
        }
    }

    /// The VNNI loops by hand, on CPUs that have VNNI (elsewhere there is nothing to run, and
    /// `peaks` reports no VNNI forms, which the test above checks).
    #[test]
    fn vnni_loops_compute_their_products() {
        if !vnni_detected() {
            return;
        }
        // SAFETY: detected just above.
        unsafe {
            // 10 rounds × 12 accumulators × 16 lanes × 1.5 × 2.
            assert_eq!(x86_512::f32_fma512(10, 1.5, 2.0), 5760.0);
            // 7 rounds × 64 pairs × 3 × −21.
            assert_eq!(x86_512::vnni::<false>(7, 3, 1.0), -28224.0);
            assert_eq!(x86_512::vnni::<true>(7, 3, 0.5), -14112.0);
        }
    }
}
