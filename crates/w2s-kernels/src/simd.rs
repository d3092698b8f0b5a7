//! Runs an element loop compiled for AVX2 + FMA when the CPU has them (detected at run time,
//! once), and for baseline x86-64 (SSE2) otherwise: the crate is built for the baseline, so
//! without this the exp/erf polynomials of softmax and GELU run four lanes wide.
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not detected yet; 1: AVX2 + FMA; 2: baseline.
static LEVEL: AtomicU8 = AtomicU8::new(0);

fn has_avx2_fma() -> bool {
    match LEVEL.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            #[cfg(target_arch = "x86_64")]
            let yes = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            #[cfg(not(target_arch = "x86_64"))]
            let yes = false;
            LEVEL.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

/// `body()`, inlined into a function compiled with AVX2 + FMA where the CPU has them.
#[inline(always)]
pub fn fast<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were detected on this CPU.
        return unsafe { with_avx2(body) };
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}
