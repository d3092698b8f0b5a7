//! Runs an element loop compiled for the widest vector unit the CPU has (detected at run time,
//! once): AVX-512 (16 lanes), else AVX2 + FMA (8), else baseline x86-64 (SSE2, 4). The crate is
//! built for the baseline, so without this the exp/erf polynomials of softmax and GELU run four
//! lanes wide.
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not detected yet; 1: AVX2 + FMA; 2: baseline; 3: AVX-512 (F, BW, DQ, VL) + AVX2 + FMA.
static LEVEL: AtomicU8 = AtomicU8::new(0);

fn level() -> u8 {
    match LEVEL.load(Ordering::Relaxed) {
        0 => {
            #[cfg(target_arch = "x86_64")]
            let level = if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
                2
            } else if std::env::var("W2S_SIMD").is_ok_and(|v| v == "avx2") {
                1
            } else if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
            {
                3
            } else {
                1
            };
            #[cfg(not(target_arch = "x86_64"))]
            let level = 2;
            LEVEL.store(level, Ordering::Relaxed);
            level
        }
        level => level,
    }
}

/// The vector unit the element loops use: "avx512", "avx2" or "baseline" (`W2S_SIMD=avx2` caps
/// it at AVX2, for comparisons).
pub fn level_name() -> &'static str {
    match level() {
        3 => "avx512",
        1 => "avx2",
        _ => "baseline",
    }
}

/// `body()`, inlined into a function compiled for the widest vector unit the CPU has.
#[inline(always)]
pub fn fast<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the features were detected on this CPU.
        3 => return unsafe { with_avx512(body) },
        1 => return unsafe { with_avx2(body) },
        _ => {}
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn with_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}
