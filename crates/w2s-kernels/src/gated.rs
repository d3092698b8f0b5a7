//! The gated MLP's product `act(g) ⊙ u` (SwiGLU and its kin) as one op with a backward pass.
//!
//! Composed, the gate's activation is a Linear epilogue and the product is candle's `mul`, whose
//! backward makes two more products, each into a fresh buffer. Here forward reads the gate's
//! pre-activation and `u` once, and backward writes `dg = grad ⊙ u ⊙ act′(g)` and
//! `du = grad ⊙ act(g)` in the same parallel pass.
use crate::linear::{with_act, Act};
use crate::real::{cpu_slice, Fresh, Real};
use crate::simd::fast;
use crate::tape::wants;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements a parallel task takes at a time.
const CHUNK: usize = 16 * 1024;

struct Gated {
    act: Act,
}

impl Gated {
    fn forward<T: Real>(&self, g: &[T], u: &[T]) -> Vec<T> {
        let mut y = Fresh::<T>::new(g.len());
        with_act!(self.act, |f| y
            .slots()
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| fast(
                #[inline(always)]
                || {
                    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                        y.write(f(g).0 * u);
                    }
                }
            )));
        // SAFETY: every element of y was written above.
        unsafe { y.assume_init() }
    }

    fn backward<T: Real>(&self, g: &[T], u: &[T], grad: &[T]) -> (Vec<T>, Vec<T>) {
        let (mut dg, mut du) = (Fresh::<T>::new(g.len()), Fresh::<T>::new(g.len()));
        with_act!(self.act, |f| dg
            .slots()
            .par_chunks_mut(CHUNK)
            .zip(du.slots().par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(((dg, du), (g, u)), grad)| fast(
                #[inline(always)]
                || {
                    for ((((dg, du), &g), &u), &d) in
                        dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(grad)
                    {
                        let (a, da) = f(g);
                        dg.write(d * u * da);
                        du.write(d * a);
                    }
                }
            )));
        // SAFETY: both buffers were written in full above.
        unsafe { (dg.assume_init(), du.assume_init()) }
    }

    /// [`Gated::backward`] on tensors: `(dg, du)` shaped as g and u.
    fn gradients<T: Real>(
        &self,
        g: &Tensor,
        u: &Tensor,
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.name();
        let grad = grad.contiguous()?;
        let (gs, gl) = g.storage_and_layout();
        let (us, ul) = u.storage_and_layout();
        let (ds, dl) = grad.storage_and_layout();
        let (dg, du) = self.backward(
            cpu_slice::<T>(&gs, Some(gl), n)?,
            cpu_slice::<T>(&us, Some(ul), n)?,
            cpu_slice::<T>(&ds, Some(dl), n)?,
        );
        Ok((
            Tensor::from_vec(dg, g.shape(), g.device())?,
            Tensor::from_vec(du, u.shape(), u.device())?,
        ))
    }
}

impl CustomOp2 for Gated {
    fn name(&self) -> &'static str {
        "fused-gated"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let y = match s1.dtype() {
            DType::F32 => {
                f32::wrap(self.forward(f32::contiguous(s1, l1, n)?, f32::contiguous(s2, l2, n)?))
            }
            DType::F64 => {
                f64::wrap(self.forward(f64::contiguous(s1, l1, n)?, f64::contiguous(s2, l2, n)?))
            }
            other => candle_core::bail!("{n}: no {other:?} kernel"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = match g.dtype() {
            DType::F32 => self.gradients::<f32>(g, u, grad)?,
            _ => self.gradients::<f64>(g, u, grad)?,
        };
        Ok((wants(g).then_some(dg), wants(u).then_some(du)))
    }
}

/// `act(g) ⊙ u` for same-shaped `g` (the gate's pre-activation) and `u`. Fused on the CPU in
/// f32/f64; composed elsewhere.
pub fn gated(g: &Tensor, u: &Tensor, act: Act) -> Result<Tensor> {
    if !crate::use_fused(&[g, u]) {
        crate::tape::bypass("composed gated product");
        return composed_gated(g, u, act);
    }
    fused_gated(g, u, act)
}

/// The fused op, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_gated(g: &Tensor, u: &Tensor, act: Act) -> Result<Tensor> {
    if g.shape() != u.shape() {
        candle_core::bail!("gated: gate {:?} and up {:?} differ", g.dims(), u.dims());
    }
    let (g, u) = (crate::tape::contiguous(g)?, crate::tape::contiguous(u)?);
    let keep = wants(&g) || wants(&u);
    crate::tape::apply2(&g, &u, 2, Gated { act }, keep)
}

/// The composed product (candle's activation and `mul`).
pub fn composed_gated(g: &Tensor, u: &Tensor, act: Act) -> Result<Tensor> {
    act.forward(g)? * u
}
