//! LayerNorm and RmsNorm over the last dimension as single ops with a backward pass.
//!
//! candle's fused norms have no backward, and the composed ones (`layer_norm_slow`) run about 25
//! ops backward. Here forward keeps each row's mean and 1/σ (two numbers a row), and backward is
//! one pass over the rows for the input gradient plus per-thread partial sums for the weight and
//! bias gradients.
use crate::real::{cpu_slice, lane_sum, zeroed, Fresh, Real};
use crate::simd::fast;
use crate::tape::wants;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::Mutex;

/// Rows a parallel task takes at a time.
const ROWS_PER_TASK: usize = 64;

/// Which normalisation: LayerNorm subtracts the mean and adds a bias; RmsNorm does neither.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Layer,
    /// `plus_one`: the weight is stored as `w` and applied as `1 + w` (Gemma).
    Rms {
        plus_one: bool,
    },
}

struct Norm {
    kind: Kind,
    eps: f64,
    keep: bool,
    /// Per row: mean (0 for RmsNorm) and 1/σ.
    saved: Mutex<Option<CpuStorage>>,
}

impl Norm {
    fn forward<T: Real>(
        &self,
        x: &[T],
        w: &[T],
        b: Option<&[T]>,
        shape: &Shape,
    ) -> Result<(CpuStorage, Shape)> {
        let dim = w.len();
        if dim == 0 || !x.len().is_multiple_of(dim) || b.is_some_and(|b| b.len() != dim) {
            candle_core::bail!("norm: input {shape:?} against a weight of {dim}");
        }
        let rows = x.len() / dim;
        let mut out = Fresh::<T>::new(x.len());
        let mut stats = Fresh::<T>::new(2 * rows);
        let (eps, kind) = (T::of(self.eps), self.kind);
        let inv_n = T::of(1.0 / dim as f64);
        out.slots()
            .par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(stats.slots().par_chunks_mut(2 * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(c, (out, stats))| {
                fast(
                    #[inline(always)]
                    || {
                        for (r, (y, st)) in out.chunks_mut(dim).zip(stats.chunks_mut(2)).enumerate()
                        {
                            let row = c * ROWS_PER_TASK + r;
                            let xr = &x[row * dim..(row + 1) * dim];
                            let mean = match kind {
                                Kind::Layer => lane_sum(dim, |i| xr[i]) * inv_n,
                                Kind::Rms { .. } => T::ZERO,
                            };
                            let var = lane_sum(dim, |i| (xr[i] - mean) * (xr[i] - mean)) * inv_n;
                            let rstd = T::ONE / (var + eps).sqrt();
                            st[0].write(mean);
                            st[1].write(rstd);
                            match (kind, b) {
                                (Kind::Layer, Some(b)) => {
                                    for i in 0..dim {
                                        y[i].write((xr[i] - mean) * rstd * w[i] + b[i]);
                                    }
                                }
                                (Kind::Rms { plus_one: true }, _) => {
                                    for i in 0..dim {
                                        y[i].write(xr[i] * rstd * (T::ONE + w[i]));
                                    }
                                }
                                _ => {
                                    for i in 0..dim {
                                        y[i].write((xr[i] - mean) * rstd * w[i]);
                                    }
                                }
                            }
                        }
                    },
                )
            });
        // SAFETY: every row wrote its statistics and all of its outputs.
        let (out, stats) = unsafe { (out.assume_init(), stats.assume_init()) };
        if self.keep {
            *self.saved.lock().expect("norm state") = Some(T::wrap(stats));
        }
        Ok((T::wrap(out), shape.clone()))
    }

    /// Gradients of x, w and (LayerNorm) b.
    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.saved.lock().expect("norm state").take() else {
            candle_core::bail!("norm: backward without a saved forward (run twice?)")
        };
        let stats = T::all(&stats, "norm")?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let g = cpu_slice::<T>(&gs, Some(gl), "norm")?;
        let xv = cpu_slice::<T>(&xs, Some(xl), "norm")?;
        let wv = cpu_slice::<T>(&ws, Some(wl), "norm")?;
        let dim = wv.len();
        let rows = xv.len() / dim;
        let inv_n = T::of(1.0 / dim as f64);
        let kind = self.kind;
        let want_x = wants(x);
        let mut dx = Fresh::<T>::new(if want_x { xv.len() } else { 0 });
        let scale = |i: usize| match kind {
            Kind::Rms { plus_one: true } => T::ONE + wv[i],
            _ => wv[i],
        };
        // Per task: Σ g·x̂ and Σ g over its rows, summed afterwards.
        let chunk = ROWS_PER_TASK * dim;
        let tasks = rows.div_ceil(ROWS_PER_TASK);
        // Zeroed by each task (a zero-filled buffer would be the zero page, copied on first write).
        let mut partial = Fresh::<T>::new(tasks * 2 * dim);
        let dx_chunks: Vec<&mut [MaybeUninit<T>]> = if want_x {
            dx.slots().chunks_mut(chunk).collect()
        } else {
            (0..tasks)
                .map(|_| <&mut [MaybeUninit<T>]>::default())
                .collect()
        };
        dx_chunks
            .into_par_iter()
            .zip(partial.slots().par_chunks_mut(2 * dim))
            .enumerate()
            .for_each(|(c, (dxc, acc))| {
                let acc = zeroed(acc);
                let (dw, db) = acc.split_at_mut(dim);
                let first = c * ROWS_PER_TASK;
                let last = (first + ROWS_PER_TASK).min(rows);
                fast(
                    #[inline(always)]
                    || {
                        for row in first..last {
                            let (xr, gr) = (
                                &xv[row * dim..(row + 1) * dim],
                                &g[row * dim..(row + 1) * dim],
                            );
                            let (mean, rstd) = (stats[2 * row], stats[2 * row + 1]);
                            let sum_gw = lane_sum(dim, |i| gr[i] * scale(i));
                            let sum_gwx =
                                lane_sum(dim, |i| gr[i] * scale(i) * ((xr[i] - mean) * rstd));
                            for i in 0..dim {
                                let xhat = (xr[i] - mean) * rstd;
                                dw[i] += gr[i] * xhat;
                                db[i] += gr[i];
                            }
                            if want_x {
                                let local = row - first;
                                let d = &mut dxc[local * dim..(local + 1) * dim];
                                let (m1, m2) = (sum_gw * inv_n, sum_gwx * inv_n);
                                for i in 0..dim {
                                    let xhat = (xr[i] - mean) * rstd;
                                    let gw = gr[i] * scale(i);
                                    d[i].write(match kind {
                                        Kind::Layer => rstd * (gw - m1 - xhat * m2),
                                        Kind::Rms { .. } => rstd * (gw - xhat * m2),
                                    });
                                }
                            }
                        }
                    },
                )
            });
        // SAFETY: when wanted, every row wrote its dx; every task zeroed its partial sums.
        let (dx, partial) = unsafe { (dx.assume_init(), partial.assume_init()) };
        let mut dw = vec![T::ZERO; dim];
        let mut db = vec![T::ZERO; dim];
        for acc in partial.chunks(2 * dim) {
            for i in 0..dim {
                dw[i] += acc[i];
                db[i] += acc[dim + i];
            }
        }
        drop((gs, xs, ws));
        let dev = x.device();
        let dx = if want_x {
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        let dw = if wants(w) {
            crate::sink::divert(w, Some(Tensor::from_vec(dw, w.shape(), dev)?))?
        } else {
            None
        };
        let db = match b {
            Some(b) if wants(b) => {
                crate::sink::divert(b, Some(Tensor::from_vec(db, b.shape(), dev)?))?
            }
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let n = CustomOp3::name(self);
        match s1.dtype() {
            DType::F32 => self.forward::<f32>(
                f32::contiguous(s1, l1, n)?,
                f32::contiguous(s2, l2, n)?,
                Some(f32::contiguous(s3, l3, n)?),
                l1.shape(),
            ),
            DType::F64 => self.forward::<f64>(
                f64::contiguous(s1, l1, n)?,
                f64::contiguous(s2, l2, n)?,
                Some(f64::contiguous(s3, l3, n)?),
                l1.shape(),
            ),
            other => candle_core::bail!("{n}: no {other:?} kernel"),
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

impl CustomOp2 for Norm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = CustomOp2::name(self);
        match s1.dtype() {
            DType::F32 => self.forward::<f32>(
                f32::contiguous(s1, l1, n)?,
                f32::contiguous(s2, l2, n)?,
                None,
                l1.shape(),
            ),
            DType::F64 => self.forward::<f64>(
                f64::contiguous(s1, l1, n)?,
                f64::contiguous(s2, l2, n)?,
                None,
                l1.shape(),
            ),
            other => candle_core::bail!("{n}: no {other:?} kernel"),
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

fn op(kind: Kind, eps: f64, inputs: &[&Tensor]) -> Norm {
    Norm {
        kind,
        eps,
        keep: inputs.iter().any(|t| wants(t)),
        saved: Mutex::new(None),
    }
}

/// LayerNorm over the last dimension: `(x − mean)/√(var + eps)·w + b`, statistics in f32 or
/// wider. Fused on the CPU in f32/f64; composed elsewhere.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if !crate::use_fused(&[x, w, b]) {
        crate::tape::bypass("composed layer norm");
        return composed_layer_norm(x, w, b, eps);
    }
    fused_layer_norm(x, w, b, eps)
}

/// The fused LayerNorm, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let x = crate::tape::contiguous(x)?;
    let op = op(Kind::Layer, eps, &[&x, w, b]);
    let keep = op.keep;
    crate::tape::apply3(&x, w, b, 1, op, keep)
}

/// The composed LayerNorm (candle's `layer_norm_slow`, statistics in f32; candle's
/// inference-only kernel when nothing needs a gradient).
pub fn composed_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let (w, b) = (w.to_dtype(x.dtype())?, b.to_dtype(x.dtype())?);
    let needs_grad = x.track_op() || w.track_op() || b.track_op();
    if needs_grad || x.dtype() != DType::F32 {
        candle_nn::ops::layer_norm_slow(x, &w, &b, eps as f32)
    } else {
        candle_nn::ops::layer_norm(x, &w, &b, eps as f32)
    }
}

/// RMSNorm over the last dimension: `x/√(mean(x²) + eps)·w` (`·(1 + w)` when `plus_one`, as
/// Gemma stores it). Fused on the CPU in f32/f64; composed elsewhere.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, plus_one: bool) -> Result<Tensor> {
    if !crate::use_fused(&[x, w]) {
        crate::tape::bypass("composed rms norm");
        return composed_rms_norm(x, w, eps, plus_one);
    }
    fused_rms_norm(x, w, eps, plus_one)
}

/// The fused RmsNorm, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_rms_norm(x: &Tensor, w: &Tensor, eps: f64, plus_one: bool) -> Result<Tensor> {
    let x = crate::tape::contiguous(x)?;
    let op = op(Kind::Rms { plus_one }, eps, &[&x, w]);
    let keep = op.keep;
    crate::tape::apply2(&x, w, 1, op, keep)
}

/// The composed RmsNorm: statistics in f32 as Hugging Face computes them for every dtype; Llama
/// scales after casting back, Gemma before (the two round differently in bf16).
pub fn composed_rms_norm(x: &Tensor, w: &Tensor, eps: f64, plus_one: bool) -> Result<Tensor> {
    let dtype = x.dtype();
    if !(x.track_op() || w.track_op()) && dtype == DType::F32 {
        let scale = if plus_one { (w + 1.0)? } else { w.clone() };
        return candle_nn::ops::rms_norm(x, &scale, eps as f32);
    }
    let xf = x.to_dtype(DType::F32)?;
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(ms + eps)?.sqrt()?)?;
    if plus_one {
        let scale = (w.to_dtype(DType::F32)? + 1.0)?;
        normed.broadcast_mul(&scale)?.to_dtype(dtype)
    } else {
        normed.to_dtype(dtype)?.broadcast_mul(&w.to_dtype(dtype)?)
    }
}
