//! `act(x·Wᵀ + b)` as one op with a backward pass.
//!
//! Composed, candle's backward of `x.matmul(W.t())` comes back through the transpose as a strided
//! copy, the bias gradient is a serial reduction over rows, and GELU's backward is about a dozen
//! ops with a scalar erf. Here backward computes `dz = g ⊙ act′(z)` in one parallel pass,
//! `dx = dz·W`, `dW = dzᵀ·x` directly as `[out, in]`, and `db` as per-thread column sums.
use crate::matmul::{matmul, Mat, Threads};
use crate::real::{cpu_slice, Fresh, Real};
use crate::simd::fast;
use crate::tape::wants;
use crate::{bf16, int8};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

/// Rows a parallel element-wise task takes at a time.
const ROWS_PER_TASK: usize = 32;

/// The activation applied after the bias, named as in Hugging Face configs by [`Act::from_hf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None: a plain Linear.
    Identity,
    /// Exact GELU, `z·Φ(z)`.
    GeluErf,
    /// GELU's tanh approximation.
    GeluTanh,
    /// `z·σ(1.702z)`.
    QuickGelu,
    /// `z·σ(z)`.
    Silu,
    /// `max(z, 0)`.
    Relu,
}

impl Act {
    /// The activation called `name` in a config, or an error listing the known names.
    pub fn from_hf(name: &str) -> std::result::Result<Act, String> {
        Ok(match name {
            "gelu" | "gelu_python" => Act::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "quick_gelu" => Act::QuickGelu,
            "silu" | "swish" => Act::Silu,
            "relu" => Act::Relu,
            other => {
                return Err(format!(
                "unsupported activation {other:?}; supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, silu, swish, relu"
            ))
            }
        })
    }

    /// Applies the activation with composed candle ops.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Identity => Ok(x.clone()),
            Act::GeluErf => x.gelu_erf(),
            Act::GeluTanh => x.gelu(),
            Act::QuickGelu => x.broadcast_mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
            Act::Silu => x.silu(),
            Act::Relu => x.relu(),
        }
    }
}

/// Runs `$body` with `$f` bound to the activation's `z ↦ (act(z), act′(z))` as a plain
/// function, so each element loop is compiled (and vectorised) for one activation.
macro_rules! with_act {
    ($act:expr, |$f:ident| $body:expr) => {
        with_act!($act, T, |$f| $body)
    };
    ($act:expr, $t:ty, |$f:ident| $body:expr) => {
        match $act {
            Act::Identity => {
                let $f = $crate::linear::identity::<$t>;
                $body
            }
            Act::GeluErf => {
                let $f = $crate::linear::gelu_erf::<$t>;
                $body
            }
            Act::GeluTanh => {
                let $f = $crate::linear::gelu_tanh::<$t>;
                $body
            }
            Act::QuickGelu => {
                let $f = $crate::linear::quick_gelu::<$t>;
                $body
            }
            Act::Silu => {
                let $f = $crate::linear::silu::<$t>;
                $body
            }
            Act::Relu => {
                let $f = $crate::linear::relu::<$t>;
                $body
            }
        }
    };
}
pub(crate) use with_act;

#[inline(always)]
pub(crate) fn identity<T: Real>(z: T) -> (T, T) {
    (z, T::ONE)
}

#[inline(always)]
pub(crate) fn gelu_erf<T: Real>(z: T) -> (T, T) {
    let half = T::of(0.5);
    let cdf = half * (T::ONE + (z * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
    let pdf = (-half * z * z).exp() * T::of(0.398_942_280_401_432_7);
    (z * cdf, cdf + z * pdf)
}

#[inline(always)]
pub(crate) fn gelu_tanh<T: Real>(z: T) -> (T, T) {
    let (half, c, a) = (T::of(0.5), T::of(0.797_884_560_802_865_4), T::of(0.044_715));
    let th = (c * (z + a * z * z * z)).tanh();
    let y = half * z * (T::ONE + th);
    let dy = half * (T::ONE + th)
        + half * z * (T::ONE - th * th) * c * (T::ONE + T::of(3.0) * a * z * z);
    (y, dy)
}

#[inline(always)]
fn sigmoid_gate<T: Real>(z: T, k: T) -> (T, T) {
    let s = T::ONE / (T::ONE + (-(k * z)).exp());
    (z * s, s + k * z * s * (T::ONE - s))
}

#[inline(always)]
pub(crate) fn quick_gelu<T: Real>(z: T) -> (T, T) {
    sigmoid_gate(z, T::of(1.702))
}

#[inline(always)]
pub(crate) fn silu<T: Real>(z: T) -> (T, T) {
    sigmoid_gate(z, T::ONE)
}

#[inline(always)]
pub(crate) fn relu<T: Real>(z: T) -> (T, T) {
    if z > T::ZERO {
        (z, T::ONE)
    } else {
        (T::ZERO, T::ZERO)
    }
}

/// `row ← act(row + bias)` for each row of `rows` (rows of `bias.len()`), vectorised.
#[inline(always)]
fn bias_act_in_place<T: Real>(rows: &mut [T], bias: &[T], f: impl Fn(T) -> (T, T)) {
    fast(
        #[inline(always)]
        || {
            for row in rows.chunks_mut(bias.len()) {
                for (v, &bb) in row.iter_mut().zip(bias) {
                    *v = f(*v + bb).0;
                }
            }
        },
    )
}

/// A frozen weight packed for reduced-precision products ([`crate::bf16`], [`crate::int8`]).
enum Frozen {
    Bf16(bf16::Kernel, Arc<bf16::PackedWeight>),
    Int8(int8::Kernel, Arc<int8::PackedWeight>),
}

impl Frozen {
    fn matmul_into(
        &self,
        x: &[f32],
        dst: &mut [MaybeUninit<f32>],
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
    ) {
        match self {
            Frozen::Bf16(kernel, w) => bf16::matmul_into(*kernel, x, w, dst, epilogue),
            Frozen::Int8(kernel, w) => int8::matmul_into(*kernel, x, w, dst, epilogue),
        }
    }
}

struct Linear {
    act: Act,
    keep: bool,
    /// The pre-activation `z` (kept only when there is an activation).
    saved: Mutex<Option<CpuStorage>>,
    /// The frozen weight packed for bf16 or int8 products, when those are on.
    frozen: Option<Frozen>,
    /// The weight is stored `[in, out]` (GPT-2's Conv1D), and so is its gradient.
    in_out: bool,
}

/// A 2-D weight as the `[out, in]` matrix `W` with its widths `(out, in)`, whatever its strides
/// (frozen weights may be transposed views, as GPT-2's are); `in_out` when it is stored `[in, out]`.
fn weight_mat<T>(
    base: *const T,
    l: &Layout,
    in_out: bool,
    op: &str,
) -> Result<(Mat<T>, usize, usize)> {
    let [rows, cols] = l.dims() else {
        candle_core::bail!("{op}: the weight must be 2-D, got {:?}", l.dims())
    };
    let s = l.stride();
    let m = Mat {
        ptr: base.wrapping_add(l.start_offset()),
        rs: s[0] as isize,
        cs: s[1] as isize,
    };
    Ok(if in_out {
        (m.t(), *cols, *rows)
    } else {
        (m, *rows, *cols)
    })
}

impl Linear {
    fn forward<T: Real>(
        &self,
        (sx, lx): (&CpuStorage, &Layout),
        (sw, lw): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let n = "fused-linear";
        let x = T::contiguous(sx, lx, n)?;
        let (w, out_dim, in_dim) = weight_mat(T::all(sw, n)?.as_ptr(), lw, self.in_out, n)?;
        let b = match bias {
            Some((s, l)) => Some(T::contiguous(s, l, n)?),
            None => None,
        };
        let dims = lx.dims();
        if dims.last() != Some(&in_dim) || b.is_some_and(|b| b.len() != out_dim) {
            candle_core::bail!("{n}: input {dims:?} against a weight [{out_dim}, {in_dim}]");
        }
        let rows = x.len() / in_dim.max(1);
        let frozen = self.frozen.as_ref().zip(T::as_f32(x));
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("rank ≥ 1") = out_dim;
        let shape = Shape::from(shape);
        // Bias and activation go in place unless backward needs z itself, and need no pass at
        // all for a plain Linear without bias.
        let in_place = self.act == Act::Identity || !self.keep;
        let needs_pass = self.act != Act::Identity || b.is_some();
        let zeros;
        let bias: &[T] = match b {
            Some(b) => b,
            None => {
                zeros = vec![T::ZERO; out_dim];
                &zeros
            }
        };
        let mut z = if let Some((packed, x32)) = frozen {
            let mut z = Fresh::<T>::new(rows * out_dim);
            assert_eq!(T::DTYPE, DType::F32, "{n}: bf16 and int8 products need f32");
            // SAFETY: T is f32 (asserted), so z's slots are f32 slots; the product writes all.
            let z32 = unsafe {
                std::slice::from_raw_parts_mut(z.as_mut_ptr().cast::<MaybeUninit<f32>>(), z.len())
            };
            if in_place && needs_pass {
                // In the product's epilogue, while each task's rows are in cache.
                let bias32 = T::as_f32(bias).expect("f32 like x");
                with_act!(self.act, f32, |f| packed
                    .matmul_into(x32, z32, &|rows| bias_act_in_place(rows, bias32, f)));
                // SAFETY: written in full above.
                return Ok((T::wrap(unsafe { z.assume_init() }), shape));
            }
            packed.matmul_into(x32, z32, &|_| {});
            // SAFETY: written in full above.
            unsafe { z.assume_init() }
        } else {
            let mut z = Fresh::new(rows * out_dim);
            // SAFETY: x and W are live for the call and z is ours; the product writes all of z.
            unsafe {
                matmul(
                    rows,
                    out_dim,
                    in_dim,
                    z.as_mut_ptr(),
                    out_dim as isize,
                    false,
                    Mat::rows(x.as_ptr(), in_dim),
                    w.t(),
                    T::ONE,
                    Threads::All,
                );
                z.assume_init()
            }
        };
        let chunk = out_dim * ROWS_PER_TASK;
        if in_place {
            if needs_pass {
                with_act!(self.act, |f| z
                    .par_chunks_mut(chunk)
                    .for_each(|z| bias_act_in_place(z, bias, f)));
            }
            return Ok((T::wrap(z), shape));
        }
        let mut y = Fresh::new(z.len());
        with_act!(self.act, |f| y
            .slots()
            .par_chunks_mut(chunk)
            .zip(z.par_chunks_mut(chunk))
            .for_each(|(y, z)| fast(
                #[inline(always)]
                || {
                    for (yr, zr) in y.chunks_mut(out_dim).zip(z.chunks_mut(out_dim)) {
                        for ((y, z), &bb) in yr.iter_mut().zip(zr.iter_mut()).zip(bias) {
                            *z += bb;
                            y.write(f(*z).0);
                        }
                    }
                }
            )));
        // SAFETY: the loop wrote every row of y.
        let y = unsafe { y.assume_init() };
        *self.saved.lock().expect("linear state") = Some(T::wrap(z));
        Ok((T::wrap(y), shape))
    }

    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = "fused-linear";
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu_slice::<T>(&gs, Some(gl), n)?;
        let (out_dim, in_dim) = match w.dims2()? {
            (i, o) if self.in_out => (o, i),
            dims => dims,
        };
        let rows = g.len() / out_dim.max(1);
        // dz = g ⊙ act′(z), or g itself for a plain Linear.
        let dz_owned;
        let dz: &[T] = if self.act == Act::Identity {
            g
        } else {
            let Some(z) = self.saved.lock().expect("linear state").take() else {
                candle_core::bail!("{n}: backward without a saved forward (run twice?)")
            };
            let z = T::all(&z, n)?;
            let mut d = Fresh::new(g.len());
            let chunk = out_dim * ROWS_PER_TASK;
            with_act!(self.act, |f| d
                .slots()
                .par_chunks_mut(chunk)
                .zip(g.par_chunks(chunk))
                .zip(z.par_chunks(chunk))
                .for_each(|((d, g), z)| fast(
                    #[inline(always)]
                    || {
                        for ((d, &g), &z) in d.iter_mut().zip(g).zip(z) {
                            d.write(g * f(z).1);
                        }
                    }
                )));
            // SAFETY: the loop wrote every element of d.
            dz_owned = unsafe { d.assume_init() };
            &dz_owned
        };
        let dev = x.device();
        let dzm = Mat::rows(dz.as_ptr(), out_dim);
        let dx = if wants(x) {
            let (ws, wl) = w.storage_and_layout();
            let wall = cpu_slice::<T>(&ws, None, n)?;
            let (wm, _, _) = weight_mat(wall.as_ptr(), wl, self.in_out, n)?;
            let mut dx = Fresh::new(rows * in_dim);
            // SAFETY: dz and W are live and read-only, dx is ours and written in full.
            let dx = unsafe {
                matmul(
                    rows,
                    in_dim,
                    out_dim,
                    dx.as_mut_ptr(),
                    in_dim as isize,
                    false,
                    dzm,
                    wm,
                    T::ONE,
                    Threads::All,
                );
                dx.assume_init()
            };
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        let dw = if wants(w) {
            let (xs, xl) = x.storage_and_layout();
            let xv = cpu_slice::<T>(&xs, Some(xl), n)?;
            let mut dw = Fresh::new(out_dim * in_dim);
            let xm = Mat::rows(xv.as_ptr(), in_dim);
            // dW = dzᵀ·x as [out, in], or its transpose xᵀ·dz for a weight stored [in, out].
            let (m, k, a, b) = if self.in_out {
                (in_dim, out_dim, xm.t(), dzm)
            } else {
                (out_dim, in_dim, dzm.t(), xm)
            };
            // SAFETY: as above.
            let dw = unsafe {
                matmul(
                    m,
                    k,
                    rows,
                    dw.as_mut_ptr(),
                    k as isize,
                    false,
                    a,
                    b,
                    T::ONE,
                    Threads::All,
                );
                dw.assume_init()
            };
            crate::sink::divert(w, Some(Tensor::from_vec(dw, w.shape(), dev)?))?
        } else {
            None
        };
        let db = match b {
            Some(b) if wants(b) => {
                let db = Tensor::from_vec(column_sums(dz, out_dim), b.shape(), dev)?;
                crate::sink::divert(b, Some(db))?
            }
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

/// Σ over rows of a row-major `[rows, cols]` buffer, as per-task partial sums.
pub(crate) fn column_sums<T: Real>(m: &[T], cols: usize) -> Vec<T> {
    let chunk = cols * ROWS_PER_TASK * 4;
    let partial: Vec<Vec<T>> = m
        .par_chunks(chunk)
        .map(|c| {
            let mut acc = vec![T::ZERO; cols];
            for row in c.chunks(cols) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    let mut sum = vec![T::ZERO; cols];
    for p in partial {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    sum
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1.dtype() {
            DType::F32 => self.forward::<f32>((s1, l1), (s2, l2), Some((s3, l3))),
            DType::F64 => self.forward::<f64>((s1, l1), (s2, l2), Some((s3, l3))),
            other => candle_core::bail!("fused-linear: no {other:?} kernel"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.backward::<f32>(x, w, Some(b), grad),
            _ => self.backward::<f64>(x, w, Some(b), grad),
        }
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1.dtype() {
            DType::F32 => self.forward::<f32>((s1, l1), (s2, l2), None),
            DType::F64 => self.forward::<f64>((s1, l1), (s2, l2), None),
            other => candle_core::bail!("fused-linear: no {other:?} kernel"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = match x.dtype() {
            DType::F32 => self.backward::<f32>(x, w, None, grad)?,
            _ => self.backward::<f64>(x, w, None, grad)?,
        };
        Ok((dx, dw))
    }
}

/// `act(x·Wᵀ + b)` for `x [.., in]`, `W [out, in]`, `b [out]`. Fused on the CPU in f32/f64;
/// composed elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    dispatch(x, w, b, act, false)
}

/// `act(x·W + b)` for `W` stored `[in, out]`, as GPT-2's Conv1D stores it: its gradient comes
/// out `[in, out]` too, so a trained weight stored that way is a variable of its own (a
/// transposed view of it would make a taped layer fall back to candle's graph). Such a weight
/// takes the f32 product even with bf16 products on; frozen ones can go through [`linear`] as a
/// view.
pub fn linear_in_out(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    dispatch(x, w, b, act, true)
}

/// The fused op where it applies, else the composed path (on `Wᵀ` when `in_out`).
fn dispatch(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act, in_out: bool) -> Result<Tensor> {
    let mut all = vec![x, w];
    all.extend(b);
    if !crate::use_fused(&all) {
        crate::tape::bypass("composed linear");
        let w = if in_out { w.t()? } else { w.clone() };
        return composed_linear(x, &w, b, act);
    }
    fused(x, w, b, act, in_out)
}

/// The fused op, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    fused(x, w, b, act, false)
}

/// The fused op on a weight stored `[out, in]`, or `[in, out]` when `in_out`.
fn fused(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act, in_out: bool) -> Result<Tensor> {
    let x = crate::tape::contiguous(x)?;
    let keep = wants(&x) || wants(w) || b.is_some_and(wants);
    // Only frozen f32 weights take the bf16 or int8 products; trained ones stay f32 throughout.
    let frozen = if in_out || w.track_op() || w.dtype() != DType::F32 {
        None
    } else if let Some(kernel) = int8::active() {
        Some(Frozen::Int8(kernel, int8::packed(w)?))
    } else if let Some(kernel) = bf16::active() {
        Some(Frozen::Bf16(kernel, bf16::packed(w)?))
    } else {
        None
    };
    let op = Linear {
        act,
        keep,
        saved: Mutex::new(None),
        frozen,
        in_out,
    };
    match b {
        Some(b) => crate::tape::apply3(&x, w, b, 1, op, keep),
        None => crate::tape::apply2(&x, w, 1, op, keep),
    }
}

/// The composed path: one 2-D matmul (leading dimensions flattened: candle's broadcast matmul
/// would materialise a `[batch, in, out]` weight gradient), a broadcast bias, candle's activation.
pub fn composed_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    let dims = x.dims();
    let Some(&inner) = dims.last() else {
        candle_core::bail!("linear on a scalar")
    };
    let rows = x.elem_count() / inner.max(1);
    let mut out_shape = dims.to_vec();
    *out_shape.last_mut().expect("non-empty") = w.dim(0)?;
    let dt = x.dtype();
    let mut y = x.reshape((rows, inner))?.matmul(&w.to_dtype(dt)?.t()?)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.to_dtype(dt)?)?;
    }
    act.forward(&y)?.reshape(out_shape)
}
