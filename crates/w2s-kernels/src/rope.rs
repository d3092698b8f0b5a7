//! Rotary position embeddings `x·cos + rotate_half(x)·sin` as one op with a backward pass.
//!
//! Composed, each rotation narrows, negates, concatenates and multiplies (six fresh buffers of
//! q's or k's size, forward and again backward). Here it is one pass each way; backward is the
//! inverse rotation.
use crate::real::{cpu_slice, Fresh, Real};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// The op: `cos`/`sin` tables `[t, rot]` in the input's dtype.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// `inverse`: the transposed rotation (backward).
    fn apply<T: Real>(&self, x: &[T], dims: &[usize], inverse: bool) -> Result<Vec<T>> {
        let (t, d) = match dims {
            [.., t, d] => (*t, *d),
            _ => candle_core::bail!("fused-rotary: expected [.., t, d], got {dims:?}"),
        };
        let (ct, rot) = self.cos.dims2()?;
        if ct != t || rot > d || rot % 2 != 0 {
            candle_core::bail!("fused-rotary: tables [{ct}, {rot}] against input {dims:?}");
        }
        let (cos_guard, sin_guard) = (self.cos.storage_and_layout(), self.sin.storage_and_layout());
        let cos = cpu_slice::<T>(&cos_guard.0, None, "fused-rotary")?;
        let sin = cpu_slice::<T>(&sin_guard.0, None, "fused-rotary")?;
        let half = rot / 2;
        let mut out = Fresh::<T>::new(x.len());
        out.slots()
            .par_chunks_mut(d * t)
            .zip(x.par_chunks(d * t))
            .for_each(|(out, x)| {
                for (p, (y, x)) in out.chunks_mut(d).zip(x.chunks(d)).enumerate() {
                    let (c, s) = (&cos[p * rot..(p + 1) * rot], &sin[p * rot..(p + 1) * rot]);
                    for j in 0..half {
                        let (a, b) = (x[j], x[j + half]);
                        if inverse {
                            y[j].write(a * c[j] + b * s[j + half]);
                            y[j + half].write(b * c[j + half] - a * s[j]);
                        } else {
                            y[j].write(a * c[j] - b * s[j]);
                            y[j + half].write(b * c[j + half] + a * s[j + half]);
                        }
                    }
                    for (y, &x) in y[rot..].iter_mut().zip(&x[rot..]) {
                        y.write(x);
                    }
                }
            });
        // SAFETY: rot is even, so the loops above wrote all d elements of every row.
        Ok(unsafe { out.assume_init() })
    }
}

impl CustomOp1 for Rotary {
    fn name(&self) -> &'static str {
        "fused-rotary"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s.dtype() {
            DType::F32 => {
                f32::wrap(self.apply(f32::contiguous(s, l, self.name())?, l.dims(), false)?)
            }
            DType::F64 => {
                f64::wrap(self.apply(f64::contiguous(s, l, self.name())?, l.dims(), false)?)
            }
            other => candle_core::bail!("fused-rotary: no {other:?} kernel"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let (s, l) = grad.storage_and_layout();
        let dx = match grad.dtype() {
            DType::F32 => {
                let v = self.apply(cpu_slice::<f32>(&s, Some(l), self.name())?, l.dims(), true)?;
                Tensor::from_vec(v, x.shape(), x.device())?
            }
            _ => {
                let v = self.apply(cpu_slice::<f64>(&s, Some(l), self.name())?, l.dims(), true)?;
                Tensor::from_vec(v, x.shape(), x.device())?
            }
        };
        Ok(Some(dx))
    }
}

/// Rotates the first `rot` dimensions of `x [.., t, d]` by tables `cos`, `sin` of `[t, rot]`
/// (frequency i pairs dimension i with i + rot/2, as Hugging Face's `rotate_half`); the rest pass
/// through. Fused on the CPU in f32/f64; composed elsewhere.
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !crate::use_fused(&[x, cos, sin]) || cos.rank() != 2 {
        crate::tape::bypass("composed rotary");
        return composed_rotary(x, cos, sin);
    }
    fused_rotary(x, cos, sin)
}

/// The fused op, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = crate::tape::contiguous(x)?;
    let op = Rotary {
        cos: cos.detach().contiguous()?,
        sin: sin.detach().contiguous()?,
    };
    let keep = crate::tape::wants(&x);
    crate::tape::apply1(&x, op, keep)
}

/// The composed rotation (candle ops).
pub fn composed_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let rot = cos.dim(D::Minus1)?;
    let (x_rot, x_pass) = if rot < dim {
        (
            x.narrow(D::Minus1, 0, rot)?,
            Some(x.narrow(D::Minus1, rot, dim - rot)?),
        )
    } else {
        (x.clone(), None)
    };
    let x1 = x_rot.narrow(D::Minus1, 0, rot / 2)?;
    let x2 = x_rot.narrow(D::Minus1, rot / 2, rot / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let y = (x_rot.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?;
    match x_pass {
        Some(p) => Tensor::cat(&[&y, &p], D::Minus1),
        None => Ok(y),
    }
}
