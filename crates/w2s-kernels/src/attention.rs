//! The attention core `softmax(q·kᵀ·scale + bias)·v` as one op with a backward pass.
//!
//! Composed from candle ops, a layer's attention runs the per-head products one after another on
//! one thread (each is below gemm's threading threshold), materialises scores, biased scores and
//! probabilities, and its softmax backward streams `[b, h, t, t]` through about a dozen ops.
//! Here each (batch, head) is one task of a parallel loop: two products and a softmax forward,
//! the probabilities kept for backward (and dropped once backward has used them), and four
//! products and one pass backward. q, k and v are read in place, from the projection's
//! `[b, t, heads·d]` output or from `[b, heads, t, d]`, and the result is written merged as
//! `[b, t, heads·d]`, so no split or merge copies are made. Grouped-query attention reads the
//! shared key/value head directly instead of repeating it.
use crate::matmul::{matmul, Mat, Shared, SharedMut, Threads};
use crate::real::{cpu_slice, lane_max, lane_sum, Fresh, Real};
use crate::simd::fast;
use crate::tape::wants;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// How a `[b, heads, t, d]` operand lies in memory (strides in elements).
#[derive(Debug, Clone, Copy)]
struct Heads {
    b: usize,
    heads: usize,
    t: usize,
    d: usize,
    offset: usize,
    sb: isize,
    sh: isize,
    st: isize,
    sd: isize,
}

impl Heads {
    /// Reads a rank-4 `[b, heads, t, d]` layout, or a rank-3 `[b, t, heads·d]` one.
    fn of(layout: &Layout, heads: usize, op: &str) -> Result<Heads> {
        let s: Vec<isize> = layout.stride().iter().map(|&s| s as isize).collect();
        let offset = layout.start_offset();
        match layout.dims() {
            &[b, h, t, d] => Ok(Heads {
                b,
                heads: h,
                t,
                d,
                offset,
                sb: s[0],
                sh: s[1],
                st: s[2],
                sd: s[3],
            }),
            &[b, t, hd] if heads > 0 && hd.is_multiple_of(heads) => {
                let d = hd / heads;
                Ok(Heads {
                    b,
                    heads,
                    t,
                    d,
                    offset,
                    sb: s[0],
                    sh: s[2] * d as isize,
                    st: s[1],
                    sd: s[2],
                })
            }
            dims => candle_core::bail!(
                "{op}: expected [b, heads, t, d] or [b, t, {heads}·d], got {dims:?}"
            ),
        }
    }

    /// The same logical shape laid out contiguously (how gradients are returned).
    fn contiguous(&self, rank: usize) -> Heads {
        let (h, t, d) = (self.heads as isize, self.t as isize, self.d as isize);
        let (sh, st) = if rank == 4 { (t * d, d) } else { (d, h * d) };
        Heads {
            offset: 0,
            sb: h * t * d,
            sh,
            st,
            sd: 1,
            ..*self
        }
    }

    fn len(&self) -> usize {
        self.b * self.heads * self.t * self.d
    }

    /// Head `h` of batch row `b` as a `[t, d]` matrix.
    fn mat<T>(&self, base: *const T, b: usize, h: usize) -> Mat<T> {
        let at = self.offset as isize + b as isize * self.sb + h as isize * self.sh;
        Mat {
            ptr: base.wrapping_offset(at),
            rs: self.st,
            cs: self.sd,
        }
    }
}

/// The additive bias, broadcast over the dimensions of size 1 of its `[b, h, t, t]` shape.
#[derive(Debug, Clone)]
struct Bias {
    /// Contiguous, in the op's dtype.
    values: Tensor,
    /// Strides of `[b, h, query]` (0 where broadcast); keys are contiguous.
    strides: [usize; 3],
}

impl Bias {
    fn new(bias: &Tensor, dtype: DType, (b, h, t): (usize, usize, usize)) -> Result<Bias> {
        let dims = bias.dims();
        let ok = dims.len() == 4
            && (dims[0] == 1 || dims[0] == b)
            && (dims[1] == 1 || dims[1] == h)
            && (dims[2] == 1 || dims[2] == t)
            && dims[3] == t;
        if !ok {
            candle_core::bail!(
                "attention: bias {dims:?} does not broadcast to [{b}, {h}, {t}, {t}]"
            );
        }
        let stride = |i: usize, inner: usize| if dims[i] == 1 { 0 } else { inner };
        let strides = [
            stride(0, dims[1] * dims[2] * t),
            stride(1, dims[2] * t),
            stride(2, t),
        ];
        Ok(Bias {
            values: bias.detach().to_dtype(dtype)?.contiguous()?,
            strides,
        })
    }
}

/// What the forward pass leaves for backward.
#[derive(Debug)]
struct Saved {
    /// Softmax probabilities, `[b, heads, t, t]`.
    probs: CpuStorage,
}

/// The fused op; `dbias` is where backward leaves the bias gradient when one is wanted.
struct Attention {
    heads: usize,
    kv_heads: usize,
    scale: f64,
    bias: Bias,
    keep: bool,
    saved: Mutex<Option<Saved>>,
    dbias: Option<Arc<Mutex<Option<Tensor>>>>,
}

impl Attention {
    fn layouts(&self, lq: &Layout, lk: &Layout, lv: &Layout) -> Result<(Heads, Heads, Heads)> {
        let q = Heads::of(lq, self.heads, "attention q")?;
        let k = Heads::of(lk, self.kv_heads, "attention k")?;
        let v = Heads::of(lv, self.kv_heads, "attention v")?;
        let same = k.b == q.b && v.b == q.b && k.t == q.t && v.t == q.t && k.d == q.d;
        if !same || k.heads != v.heads || k.heads == 0 || !q.heads.is_multiple_of(k.heads) {
            candle_core::bail!(
                "attention: q {:?}, k {:?} and v {:?} do not fit together",
                lq.dims(),
                lk.dims(),
                lv.dims()
            );
        }
        Ok((q, k, v))
    }

    fn forward<T: Real>(
        &self,
        (sq, lq): (&CpuStorage, &Layout),
        (sk, lk): (&CpuStorage, &Layout),
        (sv, lv): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = self.layouts(lq, lk, lv)?;
        let (qd, kd, vd) = (
            T::all(sq, "attention")?,
            T::all(sk, "attention")?,
            T::all(sv, "attention")?,
        );
        let (b, h, t, dv) = (q.b, q.heads, q.t, v.d);
        let groups = h / k.heads;
        let scale = T::of(self.scale);
        let mut out = Fresh::<T>::new(b * t * h * dv);
        let mut probs = Fresh::<T>::new(if self.keep { b * h * t * t } else { 0 });
        let bias_guard = self.bias.values.storage_and_layout();
        let bias_data = cpu_slice::<T>(&bias_guard.0, None, "attention bias")?;
        let bias_strides = self.bias.strides;
        let (pq, pk, pv) = (
            Shared(qd.as_ptr()),
            Shared(kd.as_ptr()),
            Shared(vd.as_ptr()),
        );
        let pout = SharedMut(out.as_mut_ptr());
        let pbias = Shared(bias_data.as_ptr());
        let keep = self.keep;
        // `p` is the task's `[t, t]` probabilities, unwritten until the first product.
        let task = |task: usize, p: *mut T| {
            let (bi, hi) = (task / h, task % h);
            let kh = hi / groups;
            // SAFETY: q/k/v are read-only for the call; each task writes only its own
            // probabilities and its own head's columns of `out`.
            unsafe {
                matmul(
                    t,
                    t,
                    q.d,
                    p,
                    t as isize,
                    false,
                    q.mat(pq.get(), bi, hi),
                    k.mat(pk.get(), bi, kh).t(),
                    scale,
                    Threads::One,
                );
            }
            // SAFETY: the product above wrote all t·t elements, and they are this task's.
            let p = unsafe { std::slice::from_raw_parts_mut(p, t * t) };
            for i in 0..t {
                let row = &mut p[i * t..(i + 1) * t];
                let at = bi * bias_strides[0] + hi * bias_strides[1] + i * bias_strides[2];
                // SAFETY: `Bias::new` checked the shape, so the row lies in the buffer.
                let brow = unsafe { std::slice::from_raw_parts(pbias.get().add(at), t) };
                for (x, &b) in row.iter_mut().zip(brow) {
                    *x += b;
                }
                fast(
                    #[inline(always)]
                    || softmax_in_place(row),
                );
            }
            unsafe {
                matmul(
                    t,
                    dv,
                    t,
                    pout.get().add(bi * t * h * dv + hi * dv),
                    (h * dv) as isize,
                    false,
                    Mat::rows(p.as_ptr(), t),
                    v.mat(pv.get(), bi, kh),
                    T::ONE,
                    Threads::One,
                );
            }
        };
        if keep {
            probs
                .slots()
                .par_chunks_mut(t * t)
                .enumerate()
                .for_each(|(i, p)| task(i, p.as_mut_ptr().cast()));
        } else {
            (0..b * h)
                .into_par_iter()
                .for_each_init(|| vec![T::ZERO; t * t], |p, i| task(i, p.as_mut_ptr()));
        }
        drop(bias_guard);
        // SAFETY: every (batch, head) task wrote its probabilities and its columns of `out`.
        let (out, probs) = unsafe { (out.assume_init(), probs.assume_init()) };
        if keep {
            *self.saved.lock().expect("attention state") = Some(Saved {
                probs: T::wrap(probs),
            });
        }
        Ok((T::wrap(out), Shape::from((b, t, h * dv))))
    }

    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        args: [&Tensor; 3],
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().expect("attention state").take();
        let Some(Saved { probs }) = saved else {
            candle_core::bail!("attention: backward without a saved forward (run twice?)")
        };
        let probs = T::all(&probs, "attention")?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let gdata = cpu_slice::<T>(&gs, Some(gl), "attention")?;
        let guards = args.map(|a| a.storage_and_layout());
        let datas = [
            cpu_slice::<T>(&guards[0].0, None, "attention")?,
            cpu_slice::<T>(&guards[1].0, None, "attention")?,
            cpu_slice::<T>(&guards[2].0, None, "attention")?,
        ];
        let (q, k, v) = self.layouts(guards[0].1, guards[1].1, guards[2].1)?;
        let (b, h, t, dv) = (q.b, q.heads, q.t, v.d);
        let kvh = k.heads;
        let groups = h / kvh;
        let scale = T::of(self.scale);
        let want = args.map(wants);
        let (gq, gk, gv) = (
            q.contiguous(args[0].rank()),
            k.contiguous(args[1].rank()),
            v.contiguous(args[2].rank()),
        );
        // Written in full by the products below: the first head of each group writes dk and dv
        // (later ones accumulate), and every head writes its own columns of dq.
        let mut dq = Fresh::<T>::new(if want[0] { q.len() } else { 0 });
        let mut dk = Fresh::<T>::new(if want[1] { k.len() } else { 0 });
        let mut dvv = Fresh::<T>::new(if want[2] { v.len() } else { 0 });
        // Each (batch, head) copies its score gradient in when one is wanted.
        let mut dbias = Fresh::<T>::new(if self.dbias.is_some() {
            b * h * t * t
        } else {
            0
        });
        let (pq, pk, pv) = (
            Shared(datas[0].as_ptr()),
            Shared(datas[1].as_ptr()),
            Shared(datas[2].as_ptr()),
        );
        let (pg, pp) = (Shared(gdata.as_ptr()), Shared(probs.as_ptr()));
        let (pdq, pdk, pdv, pdb) = (
            SharedMut(dq.as_mut_ptr()),
            SharedMut(dk.as_mut_ptr()),
            SharedMut(dvv.as_mut_ptr()),
            SharedMut(dbias.as_mut_ptr()),
        );
        let want_bias = self.dbias.is_some();
        (0..b * kvh).into_par_iter().for_each_init(
            || vec![T::ZERO; t * t],
            |ds, task| {
                let (bi, kh) = (task / kvh, task % kvh);
                for (g, hi) in (kh * groups..(kh + 1) * groups).enumerate() {
                    let p = Mat::rows(unsafe { pp.get().add((bi * h + hi) * t * t) }, t);
                    let go = Mat::rows(unsafe { pg.get().add(bi * t * h * dv + hi * dv) }, h * dv);
                    // SAFETY: inputs are read-only; dq rows of (bi, hi) and dk/dv rows of
                    // (bi, kh) belong to this task alone; `ds` is the task's scratch.
                    unsafe {
                        if want[2] {
                            let dst = gv.mat(pdv.get() as *const T, bi, kh).ptr as *mut T;
                            matmul(t, dv, t, dst, gv.st, g > 0, p.t(), go, T::ONE, Threads::One);
                        }
                        matmul(
                            t,
                            t,
                            dv,
                            ds.as_mut_ptr(),
                            t as isize,
                            false,
                            go,
                            v.mat(pv.get(), bi, kh).t(),
                            T::ONE,
                            Threads::One,
                        );
                    }
                    let prow = unsafe { std::slice::from_raw_parts(p.ptr, t * t) };
                    fast(
                        #[inline(always)]
                        || {
                            for i in 0..t {
                                let pr = &prow[i * t..(i + 1) * t];
                                let dr = &mut ds[i * t..(i + 1) * t];
                                let dot = lane_sum(t, |j| pr[j] * dr[j]);
                                for (d, &p) in dr.iter_mut().zip(pr) {
                                    *d = p * (*d - dot);
                                }
                            }
                        },
                    );
                    if want_bias {
                        let at = (bi * h + hi) * t * t;
                        unsafe {
                            std::ptr::copy_nonoverlapping(ds.as_ptr(), pdb.get().add(at), t * t);
                        }
                    }
                    let dsm = Mat::rows(ds.as_ptr(), t);
                    unsafe {
                        if want[0] {
                            let dst = gq.mat(pdq.get() as *const T, bi, hi).ptr as *mut T;
                            let km = k.mat(pk.get(), bi, kh);
                            matmul(t, q.d, t, dst, gq.st, false, dsm, km, scale, Threads::One);
                        }
                        if want[1] {
                            let dst = gk.mat(pdk.get() as *const T, bi, kh).ptr as *mut T;
                            let qm = q.mat(pq.get(), bi, hi);
                            matmul(
                                t,
                                k.d,
                                t,
                                dst,
                                gk.st,
                                g > 0,
                                dsm.t(),
                                qm,
                                scale,
                                Threads::One,
                            );
                        }
                    }
                }
            },
        );
        drop(guards);
        // SAFETY: see where they are made.
        let (dq, dk, dvv, dbias) = unsafe {
            (
                dq.assume_init(),
                dk.assume_init(),
                dvv.assume_init(),
                dbias.assume_init(),
            )
        };
        let dev = grad.device();
        let wrap = |buf: Vec<T>, want: bool, arg: &Tensor| -> Result<Option<Tensor>> {
            if !want {
                return Ok(None);
            }
            Ok(Some(Tensor::from_vec(buf, arg.shape(), dev)?))
        };
        if let Some(slot) = &self.dbias {
            let full = Tensor::from_vec(dbias, (b, h, t, t), dev)?;
            let dims = self.bias.values.dims().to_vec();
            let mut reduced = full;
            for (axis, &n) in dims.iter().enumerate().take(3) {
                if n == 1 {
                    reduced = reduced.sum_keepdim(axis)?;
                }
            }
            *slot.lock().expect("bias gradient slot") = Some(reduced);
        }
        Ok((
            wrap(dq, want[0], args[0])?,
            wrap(dk, want[1], args[1])?,
            wrap(dvv, want[2], args[2])?,
        ))
    }
}

/// Softmax of one row, in place; stable (the maximum is subtracted first).
#[inline(always)]
pub(crate) fn softmax_in_place<T: Real>(row: &mut [T]) {
    let max = lane_max(row);
    // Below e⁻⁸⁰ (2e-35) a weight is written as 0: masked scores would otherwise come out as
    // subnormal floats, and products with them are tens of times slower on Intel cores (a causal
    // mask made SmolLM2's attention products 80× slower than their FLOPs on Sapphire Rapids).
    let floor = T::of(-80.0);
    for x in row.iter_mut() {
        let d = *x - max;
        *x = if d < floor { T::ZERO } else { d.exp() };
    }
    let inv = T::ONE / lane_sum(row.len(), |i| row[i]);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
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
            DType::F32 => self.forward::<f32>((s1, l1), (s2, l2), (s3, l3)),
            DType::F64 => self.forward::<f64>((s1, l1), (s2, l2), (s3, l3)),
            other => candle_core::bail!("fused-attention: no {other:?} kernel"),
        }
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match q.dtype() {
            DType::F32 => self.backward::<f32>([q, k, v], grad),
            DType::F64 => self.backward::<f64>([q, k, v], grad),
            other => candle_core::bail!("fused-attention: no {other:?} kernel"),
        }
    }
}

/// Passes `q` through unchanged and, in backward, hands the attention's bias gradient (which the
/// attention op's backward, always run first, leaves in `slot`) to the bias: candle's custom ops
/// take at most three inputs, and the attention needs four when its bias is trained (MPNet's
/// relative-position bias).
struct BiasGradient {
    slot: Arc<Mutex<Option<Tensor>>>,
}

impl CustomOp2 for BiasGradient {
    fn name(&self) -> &'static str {
        "attention-bias-gradient"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let copy = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(f32::contiguous(s1, l1, self.name())?.to_vec()),
            CpuStorage::F64(_) => CpuStorage::F64(f64::contiguous(s1, l1, self.name())?.to_vec()),
            other => candle_core::bail!("{}: no {:?} kernel", self.name(), other.dtype()),
        };
        Ok((copy, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _q: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dbias = self.slot.lock().expect("bias gradient slot").take();
        Ok((Some(grad.clone()), dbias))
    }
}

/// Shapes of an attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` unless grouped-query attention).
    pub kv_heads: usize,
    /// Multiplies `q·kᵀ`, usually `1/√d`.
    pub scale: f64,
}

/// `softmax(q·kᵀ·scale + bias)·v`, merged as `[b, t, heads·d]`.
///
/// q is `[b, heads, t, d]` or `[b, t, heads·d]`; k and v the same with `kv_heads`; `bias` is
/// broadcastable to `[b, heads, t, t]`. On the CPU in f32/f64 this is the fused op; elsewhere
/// (CUDA, bf16/f16, or with fused kernels off) the composed path it replaces.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    shape: AttentionShape,
) -> Result<Tensor> {
    if !crate::use_fused(&[q, k, v, bias]) {
        crate::tape::bypass("composed attention");
        return composed_attention(q, k, v, bias, shape);
    }
    fused_attention(q, k, v, bias, shape)
}

/// The fused op, whatever [`crate::enabled`] says (CPU, f32/f64 only).
pub fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    shape: AttentionShape,
) -> Result<Tensor> {
    let (b, t) = match q.dims() {
        &[b, _, t, _] | &[b, t, _] => (b, t),
        dims => candle_core::bail!("attention: q has shape {dims:?}"),
    };
    let keep = wants(q) || wants(k) || wants(v) || wants(bias);
    let dbias = (keep && wants(bias)).then(|| Arc::new(Mutex::new(None)));
    let op = Attention {
        heads: shape.heads,
        kv_heads: shape.kv_heads,
        scale: shape.scale,
        bias: Bias::new(bias, q.dtype(), (b, shape.heads, t))?,
        keep,
        saved: Mutex::new(None),
        dbias: dbias.clone(),
    };
    let q = match dbias {
        Some(slot) => crate::tape::apply2(q, bias, 1, BiasGradient { slot }, true)?,
        None => q.clone(),
    };
    crate::tape::apply3(&q, k, v, 3, op, keep)
}

/// `[b, t, heads·d]` → `[b, heads, t, d]`; rank-4 inputs pass through.
fn to_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    match x.rank() {
        4 => Ok(x.clone()),
        _ => {
            let (b, t, hd) = x.dims3()?;
            x.reshape((b, t, heads, hd / heads))?
                .transpose(1, 2)?
                .contiguous()
        }
    }
}

/// The composed attention: candle ops with candle's autograd.
pub fn composed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    shape: AttentionShape,
) -> Result<Tensor> {
    let q = to_heads(q, shape.heads)?.contiguous()?;
    let groups = shape.heads / shape.kv_heads.max(1);
    let k = repeat_kv(&to_heads(k, shape.kv_heads)?, groups)?.contiguous()?;
    let v = repeat_kv(&to_heads(v, shape.kv_heads)?, groups)?.contiguous()?;
    let scores = (q.matmul(&k.t()?)? * shape.scale)?.broadcast_add(bias)?;
    let probs = if scores.track_op() {
        candle_nn::ops::softmax(&scores, D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&scores)?
    };
    let ctx = probs.matmul(&v)?;
    let (b, h, t, d) = ctx.dims4()?;
    ctx.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))
}

/// `[b, kv, t, d]` → `[b, kv·n, t, d]`, each key/value head serving `n` query heads.
pub fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, kv, n, t, d))?
        .contiguous()?
        .reshape((b, kv * n, t, d))
}

#[cfg(test)]
mod tests {
    use super::softmax_in_place;

    #[test]
    fn masked_scores_give_exact_zeros_not_subnormals() {
        // e^-87 / 2 would be a subnormal f32; a mask's -1e30 and a far score must give 0.
        let mut row = [0.0f32, 0.0, -87.0, -1e30, -79.0];
        softmax_in_place(&mut row);
        assert_eq!(&row[2..4], &[0.0, 0.0]);
        assert!(row.iter().all(|p| *p == 0.0 || p.is_normal()), "{row:?}");
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6 && (row[0] - 0.5).abs() < 1e-6);
        assert!(row[4] > 0.0, "a weight above e^-80 is kept");
    }
}
