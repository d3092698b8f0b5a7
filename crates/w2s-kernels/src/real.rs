//! The element types the fused kernels run in: f32 for training and inference, f64 for the
//! finite-difference tests of their backward passes.
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Storage, StorageRef, WithDType};
use std::mem::MaybeUninit;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

/// A float the kernels compute in, with the maths they need and the bridge to candle storage.
pub trait Real:
    WithDType
    + Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
    + std::iter::Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// `v` rounded to this type.
    fn of(v: f64) -> Self;
    /// eˣ. In f32 a polynomial the compiler vectorises (within 2 ulp of `f32::exp`; tested).
    fn exp(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// erf(x). In f32 Abramowitz & Stegun 7.1.26 (absolute error below 5e-7 with f32 rounding; tested).
    fn erf(self) -> Self;
    /// tanh(x), through [`Real::exp`].
    fn tanh(self) -> Self {
        let e = (self + self).exp();
        Self::ONE - Self::of(2.0) / (e + Self::ONE)
    }
    /// The larger of two.
    fn larger(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }
    /// The contiguous elements of `storage` under `layout`, or an error naming `op`.
    fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [Self]> {
        let all = Self::all(storage, op)?;
        match layout.contiguous_offsets() {
            Some((a, b)) => Ok(&all[a..b]),
            None => candle_core::bail!("{op}: expects a contiguous input"),
        }
    }
    /// The whole buffer of `storage`, or an error naming `op` when its dtype is another.
    fn all<'a>(storage: &'a CpuStorage, op: &str) -> Result<&'a [Self]>;
    /// A buffer as candle storage.
    fn wrap(v: Vec<Self>) -> CpuStorage;
    /// The buffer as f32, when this is f32 (the bf16 products take f32 only).
    fn as_f32(v: &[Self]) -> Option<&[f32]>;
    /// The buffer as mutable f32, when this is f32.
    fn as_f32_mut(v: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn of(v: f64) -> f64 {
        v
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn erf(self) -> f64 {
        libm::erf(self)
    }
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    fn all<'a>(storage: &'a CpuStorage, op: &str) -> Result<&'a [f64]> {
        match storage {
            CpuStorage::F64(v) => Ok(v),
            other => candle_core::bail!("{op}: expected f64, got {:?}", other.dtype()),
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
    fn as_f32(_: &[f64]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn of(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        exp_f32(self)
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn erf(self) -> f32 {
        // A&S 7.1.26 on |x|, odd extension.
        let a = self.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * a);
        let poly = t
            * (0.254_829_6
                + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
        let y = 1.0 - poly * exp_f32(-a * a);
        y.copysign(self)
    }
    fn all<'a>(storage: &'a CpuStorage, op: &str) -> Result<&'a [f32]> {
        match storage {
            CpuStorage::F32(v) => Ok(v),
            other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
    fn as_f32(v: &[f32]) -> Option<&[f32]> {
        Some(v)
    }
    fn as_f32_mut(v: &mut [f32]) -> Option<&mut [f32]> {
        Some(v)
    }
}

/// The elements behind a tensor's storage guard, which must be on the CPU: the contiguous ones
/// under `layout`, or the whole buffer when there is none. Errors name `op`.
pub fn cpu_slice<'a, T: Real>(
    storage: &'a StorageRef<'_>,
    layout: Option<&Layout>,
    op: &str,
) -> Result<&'a [T]> {
    match (&**storage, layout) {
        (Storage::Cpu(c), Some(l)) => T::contiguous(c, l, op),
        (Storage::Cpu(c), None) => T::all(c, op),
        _ => candle_core::bail!("{op}: the fused op runs on the CPU only"),
    }
}

/// Independent accumulators of [`lane_sum`] and [`lane_max`]: a serial float reduction cannot be
/// reordered by the compiler and so never vectorises; eight lanes fill an AVX2 register.
const LANES: usize = 8;

/// Σ `f(i)` for `i` in `0..n`, summed in eight interleaved lanes so that the loop vectorises
/// (the result differs from a serial sum by rounding only).
#[inline(always)]
pub fn lane_sum<T: Real>(n: usize, f: impl Fn(usize) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let full = n / LANES * LANES;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += LANES;
    }
    let mut tail = T::ZERO;
    for j in full..n {
        tail += f(j);
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail
}

/// The largest element of a non-empty slice, in eight lanes (see [`lane_sum`]).
#[inline(always)]
pub fn lane_max<T: Real>(xs: &[T]) -> T {
    let mut acc = [xs[0]; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.larger(x);
        }
    }
    let m = chunks.remainder().iter().fold(acc[0], |m, &x| m.larger(x));
    acc[1..].iter().fold(m, |m, &x| m.larger(x))
}

/// eˣ in f32 without a libm call: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for
/// accuracy), eʳ by Cephes' degree-6 polynomial, 2ⁿ by building the exponent bits. Branch-free,
/// so loops over it vectorise.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Round to nearest by adding and removing 1.5·2²³ (no libm call, so the loop vectorises).
    // The sum's low mantissa bits hold n itself: reading them replaces `n as i32`, whose
    // saturating semantics compile to a scalar convert-and-cmov per lane.
    let shifted = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = shifted - 12_582_912.0;
    let n_int = shifted.to_bits() as i32 - 0x4B40_0000;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let er = 1.0 + r + r * r * p;
    // n is in [-126, 128] after the clamp; 2^128 is split as 2^127 · 2 so the bits stay finite.
    let half = n_int >> 1;
    let s1 = f32::from_bits(((half + 127) as u32) << 23);
    let s2 = f32::from_bits(((n_int - half + 127) as u32) << 23);
    er * s1 * s2
}

/// A kernel's output buffer that is not zero-filled first, because the kernel writes every
/// element before anything reads it.
///
/// `vec![0.0; n]` costs either a serial memset on the calling thread (a buffer reused from the
/// heap) or page faults, some of them copy-on-write faults of the zero page with a TLB shootdown
/// across cores (a fresh one); outside the parallel loops that then overwrite it. On a 2-core
/// Sapphire Rapids VM that was worth 15–19% of a MiniLM-L6 training step (docs/journal.md).
/// In debug builds and with the `poison` feature (on in this crate's tests) the buffer starts as
/// NaN, so an element a kernel forgets to write shows up in its tests.
pub(crate) struct Fresh<T>(Vec<MaybeUninit<T>>);

impl<T: Real> Fresh<T> {
    /// `n` unwritten elements.
    pub(crate) fn new(n: usize) -> Fresh<T> {
        if cfg!(any(test, debug_assertions, feature = "poison")) {
            return Fresh(vec![MaybeUninit::new(T::of(f64::NAN)); n]);
        }
        let mut v = Vec::with_capacity(n);
        // SAFETY: MaybeUninit needs no initialisation, and the capacity is n.
        unsafe { v.set_len(n) };
        Fresh(v)
    }

    /// The first element, for a product that writes through raw pointers.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr().cast()
    }

    /// How many elements.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The elements, to write with `MaybeUninit::write`.
    pub(crate) fn slots(&mut self) -> &mut [MaybeUninit<T>] {
        &mut self.0
    }

    /// The buffer, once written.
    ///
    /// # Safety
    /// Every element must have been written.
    pub(crate) unsafe fn assume_init(self) -> Vec<T> {
        let mut v = std::mem::ManuallyDrop::new(self.0);
        let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
        // SAFETY: MaybeUninit<T> has T's layout, and the caller vouches that all len are written.
        unsafe { Vec::from_raw_parts(ptr.cast(), len, cap) }
    }
}

/// `slots` set to zero, as the initialised slice they now are (a parallel task's accumulator,
/// zeroed by the task that uses it).
pub(crate) fn zeroed<T: Real>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    for s in slots.iter_mut() {
        s.write(T::ZERO);
    }
    // SAFETY: every element was just written.
    unsafe { written(slots) }
}

/// `slots` as the initialised slice they are once every element has been written.
///
/// # Safety
/// Every element must have been written.
pub(crate) unsafe fn written<T>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout, and the caller vouches for the writes.
    unsafe { &mut *(slots as *mut [MaybeUninit<T>] as *mut [T]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_and_lane_max_match_the_serial_loop() {
        for n in [1usize, 7, 8, 9, 31, 384] {
            let xs: Vec<f64> = (0..n)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.25)
                .collect();
            let serial: f64 = xs.iter().sum();
            assert!((lane_sum(n, |i| xs[i]) - serial).abs() < 1e-12, "n {n}");
            let max = xs.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(lane_max(&xs), max, "n {n}");
        }
        assert_eq!(lane_sum(0, |_| 1.0f32), 0.0);
        assert_eq!(lane_max(&[-3.0f32, -1.0, -2.0]), -1.0);
    }

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, e) = (exp_f32(x), x.exp());
            worst = worst.max(((a - e) / e).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1e9) >= 0.0 && exp_f32(-1e9) < 1e-37);
    }

    #[test]
    fn f32_erf_matches_libm_within_5e_7() {
        let mut worst = 0f64;
        let mut x = -6.0f64;
        while x < 6.0 {
            let a = Real::erf(x as f32) as f64;
            worst = worst.max((a - libm::erf(x as f32 as f64)).abs());
            x += 0.001;
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    #[test]
    fn tanh_through_exp_matches_std() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            assert!((Real::tanh(x) - x.tanh()).abs() < 3e-7, "{x}");
        }
    }
}
