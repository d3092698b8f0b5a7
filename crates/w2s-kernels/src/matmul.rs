//! One strided matrix product through the `gemm` crate, the kernel candle itself calls.
use crate::real::Real;
use gemm::Parallelism;

/// A matrix inside a buffer: element (i, j) is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct Mat<T> {
    /// First element.
    pub ptr: *const T,
    /// Row stride, in elements.
    pub rs: isize,
    /// Column stride, in elements.
    pub cs: isize,
}

impl<T> Mat<T> {
    /// Row-major `[rows, cols]` starting at `ptr`.
    pub fn rows(ptr: *const T, cols: usize) -> Mat<T> {
        Mat {
            ptr,
            rs: cols as isize,
            cs: 1,
        }
    }

    /// The transpose (same memory, strides swapped).
    pub fn t(self) -> Mat<T> {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// How many threads a product uses: all of rayon's pool, or one (inside a parallel loop).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The whole pool.
    All,
    /// The calling thread only.
    One,
}

/// `dst[m×n] = (accumulate ? dst : 0) + scale · a[m×k] · b[k×n]`.
///
/// # Safety
/// Every element the strides address must lie in live buffers; `dst` must not alias `a` or `b`,
/// and no other thread may touch the `dst` elements meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    accumulate: bool,
    a: Mat<T>,
    b: Mat<T>,
    scale: T,
    threads: Threads,
) {
    if m == 0 || n == 0 {
        return;
    }
    let par = match threads {
        Threads::One => Parallelism::None,
        Threads::All => match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            t => Parallelism::Rayon(t),
        },
    };
    // gemm computes dst = alpha·dst + beta·a·b, reading dst only when asked.
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs,
        accumulate,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        T::ONE,
        scale,
        false,
        false,
        false,
        par,
    );
}

/// A raw pointer that parallel tasks share, each writing its own disjoint elements.
#[derive(Clone, Copy)]
pub struct SharedMut<T>(pub *mut T);
// SAFETY: users write disjoint elements only (documented at each use).
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the wrapper and not the bare field).
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// A raw read-only pointer shared by parallel tasks.
#[derive(Clone, Copy)]
pub struct Shared<T>(pub *const T);
// SAFETY: the buffers behind it are only read while the tasks run.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so closures capture the wrapper and not the bare field).
    pub fn get(self) -> *const T {
        self.0
    }
}
