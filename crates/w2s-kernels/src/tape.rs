//! A transformer layer's backward pass replayed by w2s instead of candle's graph.
//!
//! candle's backward adds every gradient an op returns into a `zeros_like` of the op's input and
//! then an `add` into a fresh buffer, even for an activation with a single consumer: for a
//! MiniLM-L6 layer about 40 MB of memset and 160 MB of adds every step. Inside a [`region`] (one
//! layer), the fused ops record themselves on a per-thread tape instead of growing candle's graph,
//! and candle sees the whole layer as one op. Its backward replays the tape: a gradient with one
//! consumer is moved on, a second one is added in place, and each op's saved state is dropped as
//! soon as its backward has run. Trained weights' gradients go to the [`crate::sink`], so a layer
//! taped this way needs [`crate::backward`] (a plain `Tensor::backward` gets a clear error).
//!
//! Every op that touches an activation inside a region must be taped: the fused entry points, and
//! [`add`] and [`map`] for residuals and reshapes. An op the tape cannot follow (a composed
//! fallback, LoRA's candle products, a weight that is a view of a variable) calls [`bypass`], and
//! the region runs the layer again with candle's graph.
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Result, Shape, Tensor,
    TensorId,
};
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// An op's backward as the tape replays it.
pub(crate) trait Backward: Send + Sync {
    /// The gradients of `inputs` (`None` where not wanted), given the output and its gradient.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;

    /// Whether the gradients are buffers of their own, which a later gradient may be added to in
    /// place (not `grad` itself or a view of it).
    fn fresh(&self) -> bool {
        true
    }

    /// `Some((dim, start))` when the only input's gradient is the output's gradient placed at
    /// `start` along `dim` (a slice's): the tape adds it there, in place, instead of padding it.
    fn slice_of_input(&self) -> Option<(usize, usize)> {
        None
    }
}

/// One recorded op.
struct Entry {
    op: Box<dyn Backward>,
    inputs: Vec<Tensor>,
    output: Tensor,
}

/// What a region's forward has recorded so far.
#[derive(Default)]
struct Recording {
    entries: Vec<Entry>,
    /// Region inputs and taped outputs: the activations the tape can follow.
    seen: HashSet<TensorId>,
    /// The activations that want a gradient.
    live: HashSet<TensorId>,
    /// A variable the layer reads (candle needs a tracked input to call the region's backward).
    anchor: Option<Tensor>,
    /// Why the tape cannot follow this layer, if it cannot.
    bypassed: Option<String>,
}

thread_local! {
    /// `Some` while a region's forward runs on this thread.
    static RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
    /// The live activations while a region's backward replays its tape on this thread.
    static REPLAYING: RefCell<Option<Arc<HashSet<TensorId>>>> = const { RefCell::new(None) };
    /// How many layers this thread has run as taped regions (a silent fallback would not count).
    static TAPED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many layers this thread has run taped so far; tests read it to see that a model's layers
/// did not fall back to candle's graph.
pub fn taped_layers() -> usize {
    TAPED.with(|t| t.get())
}

/// Whether `t` wants a gradient: candle tracks it, or it is a live activation of a region.
pub(crate) fn wants(t: &Tensor) -> bool {
    t.track_op()
        || RECORDING.with(|r| {
            r.borrow()
                .as_ref()
                .is_some_and(|r| r.live.contains(&t.id()))
        })
        || REPLAYING.with(|r| r.borrow().as_ref().is_some_and(|l| l.contains(&t.id())))
}

/// Whether a region's forward is recording on this thread.
pub fn recording() -> bool {
    RECORDING.with(|r| r.borrow().is_some())
}

/// Tells the recording region that an op it cannot follow touched its activations; the region
/// then runs its layer again with candle's graph. A no-op outside a region.
pub fn bypass(why: &str) {
    RECORDING.with(|r| {
        if let Some(r) = r.borrow_mut().as_mut() {
            r.bypassed.get_or_insert_with(|| why.to_string());
        }
    })
}

/// Records `op`, already applied without a graph node to give `output`, when a region is
/// recording and an input wants a gradient; the first `acts` inputs are activations, which
/// must come from the region's inputs or from taped ops. Returns false when nothing recorded
/// (no region).
fn push(
    name: &str,
    op: Box<dyn Backward>,
    inputs: &[&Tensor],
    acts: usize,
    output: &Tensor,
) -> Result<bool> {
    RECORDING.with(|r| {
        let mut guard = r.borrow_mut();
        let Some(rec) = guard.as_mut() else {
            return Ok(false);
        };
        if rec.bypassed.is_some() {
            // The layer will run again in candle's graph; nothing recorded now is used.
            return Ok(true);
        }
        for t in &inputs[..acts] {
            if !rec.seen.contains(&t.id()) && !t.track_op() {
                candle_core::bail!(
                    "{name}: an input inside a taped layer comes from an op the tape did not \
                     record; use the w2s-kernels ops (add, map) or call w2s_kernels::tape::bypass"
                )
            }
        }
        for t in inputs {
            if t.track_op() && !t.is_variable() {
                // A view or cast of a variable, or an activation from outside the layer: only
                // candle's graph can carry its gradient on.
                rec.bypassed
                    .get_or_insert_with(|| format!("{name} reads a tracked non-variable tensor"));
            }
        }
        let live = inputs
            .iter()
            .any(|t| t.track_op() || rec.live.contains(&t.id()));
        rec.seen.insert(output.id());
        if !live {
            return Ok(true);
        }
        if rec.anchor.is_none() {
            rec.anchor = inputs
                .iter()
                .find(|t| t.is_variable())
                .map(|t| (*t).clone());
        }
        rec.live.insert(output.id());
        rec.entries.push(Entry {
            op,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            output: output.clone(),
        });
        Ok(true)
    })
}

/// A unary custom op's backward, for the tape.
struct Op1<O>(O);
/// A binary custom op's backward, for the tape.
struct Op2<O>(O);
/// A ternary custom op's backward, for the tape.
struct Op3<O>(O);

impl<O: CustomOp1 + Send + Sync> Backward for Op1<O> {
    fn backward(&self, i: &[Tensor], out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![self.0.bwd(&i[0], out, g)?])
    }
}

impl<O: CustomOp2 + Send + Sync> Backward for Op2<O> {
    fn backward(&self, i: &[Tensor], out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = self.0.bwd(&i[0], &i[1], out, g)?;
        Ok(vec![a, b])
    }
}

impl<O: CustomOp3 + Send + Sync> Backward for Op3<O> {
    fn backward(&self, i: &[Tensor], out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b, c) = self.0.bwd(&i[0], &i[1], &i[2], out, g)?;
        Ok(vec![a, b, c])
    }
}

/// Applies a unary op: taped inside a region, a candle node when `keep`, else no node.
pub(crate) fn apply1<O: CustomOp1 + Send + Sync + 'static>(
    x: &Tensor,
    op: O,
    keep: bool,
) -> Result<Tensor> {
    if recording() {
        let y = x.apply_op1_no_bwd(&op)?;
        push(op.name(), Box::new(Op1(op)), &[x], 1, &y)?;
        return Ok(y);
    }
    if keep {
        x.apply_op1(op)
    } else {
        x.apply_op1_no_bwd(&op)
    }
}

/// Applies a binary op whose first `acts` inputs are activations (see [`apply1`]).
pub(crate) fn apply2<O: CustomOp2 + Send + Sync + 'static>(
    a: &Tensor,
    b: &Tensor,
    acts: usize,
    op: O,
    keep: bool,
) -> Result<Tensor> {
    if recording() {
        let y = a.apply_op2_no_bwd(b, &op)?;
        push(op.name(), Box::new(Op2(op)), &[a, b], acts, &y)?;
        return Ok(y);
    }
    if keep {
        a.apply_op2(b, op)
    } else {
        a.apply_op2_no_bwd(b, &op)
    }
}

/// Applies a ternary op whose first `acts` inputs are activations (see [`apply1`]).
pub(crate) fn apply3<O: CustomOp3 + Send + Sync + 'static>(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    acts: usize,
    op: O,
    keep: bool,
) -> Result<Tensor> {
    if recording() {
        let y = a.apply_op3_no_bwd(b, c, &op)?;
        push(op.name(), Box::new(Op3(op)), &[a, b, c], acts, &y)?;
        return Ok(y);
    }
    if keep {
        a.apply_op3(b, c, op)
    } else {
        a.apply_op3_no_bwd(b, c, &op)
    }
}

/// A sum's backward: the gradient passes to both terms.
struct Sum;

impl Backward for Sum {
    fn backward(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.clone()), Some(g.clone())])
    }

    fn fresh(&self) -> bool {
        false
    }
}

/// `a + b` of one shape (a residual connection), taped inside a region.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !recording() {
        return a + b;
    }
    if a.shape() != b.shape() {
        bypass("add of two shapes");
        return a + b;
    }
    let y = (a + b)?;
    push("add", Box::new(Sum), &[a, b], 2, &y)?;
    Ok(y)
}

/// A linear map's backward given as its adjoint.
struct Adjoint<F>(F);

impl<F: Fn(&Tensor) -> Result<Tensor> + Send + Sync> Backward for Adjoint<F> {
    fn backward(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some((self.0)(g)?)])
    }

    fn fresh(&self) -> bool {
        false
    }
}

/// `forward(x)` for a linear map of candle ops (a reshape, a transpose, a copy), taped inside a
/// region with `adjoint` (the map's transpose, applied to the output's gradient) as its backward.
/// Outside a region candle differentiates `forward` itself.
pub fn map(
    x: &Tensor,
    forward: impl Fn(&Tensor) -> Result<Tensor>,
    adjoint: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
) -> Result<Tensor> {
    let y = forward(x)?;
    if recording() && y.id() != x.id() {
        push("map", Box::new(Adjoint(adjoint)), &[x], 1, &y)?;
    }
    Ok(y)
}

/// `x` laid out contiguously; a copy made inside a region is taped.
pub fn contiguous(x: &Tensor) -> Result<Tensor> {
    map(x, |x| x.contiguous(), |g| Ok(g.clone()))
}

/// A slice's backward: the gradient padded with zeros to the input's extent.
struct Slice {
    dim: usize,
    start: usize,
    after: usize,
}

impl Backward for Slice {
    fn backward(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(
            g.pad_with_zeros(self.dim, self.start, self.after)?,
        )])
    }

    fn slice_of_input(&self) -> Option<(usize, usize)> {
        Some((self.dim, self.start))
    }
}

/// `x.narrow(dim, start, len)` (a view), taped inside a region: how the thirds of a fused q/k/v
/// projection reach the attention.
pub fn narrow(x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
    let y = x.narrow(dim, start, len)?;
    if recording() && y.id() != x.id() {
        let after = x.dim(dim)? - start - len;
        push("narrow", Box::new(Slice { dim, start, after }), &[x], 1, &y)?;
    }
    Ok(y)
}

/// Clears the recording when a region's forward returns or unwinds.
struct Recorder;

impl Drop for Recorder {
    fn drop(&mut self) {
        RECORDING.with(|r| r.borrow_mut().take());
    }
}

/// Clears the live set when a region's backward returns or unwinds.
struct Replayer;

impl Drop for Replayer {
    fn drop(&mut self) {
        REPLAYING.with(|r| r.borrow_mut().take());
    }
}

/// The layer as candle sees it: inputs in, the layer's output out, the tape as its backward.
struct Region {
    entries: Mutex<Vec<Entry>>,
    live: Arc<HashSet<TensorId>>,
    /// The region inputs as the layer saw them (detached).
    inner: Vec<Tensor>,
    /// The layer's output, until candle's forward copies it into the region's own node.
    output: Mutex<Option<Tensor>>,
}

impl Region {
    fn forward(&self) -> Result<(CpuStorage, Shape)> {
        let Some(y) = self.output.lock().expect("region output").take() else {
            candle_core::bail!("taped layer: forward run twice")
        };
        let (s, l) = y.storage_and_layout();
        let copy = match &*s {
            candle_core::Storage::Cpu(s) => match s {
                CpuStorage::F32(_) => CpuStorage::F32(copy_out::<f32>(s, l)?),
                CpuStorage::F64(_) => CpuStorage::F64(copy_out::<f64>(s, l)?),
                other => candle_core::bail!("taped layer: no {:?} output", other.dtype()),
            },
            _ => candle_core::bail!("taped layer: output not on the CPU"),
        };
        Ok((copy, y.shape().clone()))
    }

    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let entries = std::mem::take(&mut *self.entries.lock().expect("region tape"));
        let Some(last) = entries.last() else {
            return Ok(vec![None; self.inner.len()]);
        };
        REPLAYING.with(|r| *r.borrow_mut() = Some(self.live.clone()));
        let _replaying = Replayer;
        let mut grads: HashMap<TensorId, (Tensor, bool)> = HashMap::new();
        grads.insert(last.output.id(), (grad.clone(), false));
        let mut entries = entries;
        while let Some(entry) = entries.pop() {
            let Some((g, _)) = grads.remove(&entry.output.id()) else {
                continue;
            };
            if let (Some((dim, start)), [input]) = (entry.op.slice_of_input(), &entry.inputs[..]) {
                if self.live.contains(&input.id()) {
                    // The thirds of a fused q/k/v projection share one gradient buffer.
                    add_into_slice(&mut grads, input, &g, dim, start)?;
                    continue;
                }
            }
            let given = entry.op.backward(&entry.inputs, &entry.output, &g)?;
            for (input, gi) in entry.inputs.iter().zip(given) {
                let Some(gi) = gi else { continue };
                // A gradient passed through as is (BiasGradient's) is not the tape's to add to.
                let fresh = entry.op.fresh() && gi.id() != g.id();
                if self.live.contains(&input.id()) {
                    accumulate(&mut grads, input.id(), gi, fresh)?;
                } else if input.is_variable() {
                    candle_core::bail!(
                        "a taped layer's weight gradients need w2s_kernels::backward(&loss) \
                         (a plain Tensor::backward would drop them)"
                    )
                }
            }
        }
        Ok(self
            .inner
            .iter()
            .map(|t| grads.remove(&t.id()).map(|(g, _)| g))
            .collect())
    }
}

/// A contiguous copy of `s` as laid out by `l`.
fn copy_out<T: Real>(s: &CpuStorage, l: &Layout) -> Result<Vec<T>> {
    Ok(T::contiguous(s, l, "taped layer")?.to_vec())
}

/// Adds `g` to the gradient collected for `id`: moved in if it is the first, added in place
/// into a buffer of the tape's own, or summed into a new one.
fn accumulate(
    grads: &mut HashMap<TensorId, (Tensor, bool)>,
    id: TensorId,
    g: Tensor,
    fresh: bool,
) -> Result<()> {
    match grads.remove(&id) {
        None => {
            grads.insert(id, (g, fresh));
        }
        Some((acc, true)) if acc.is_contiguous() && g.shape() == acc.shape() => {
            add_assign(&acc, &g)?;
            grads.insert(id, (acc, true));
        }
        Some((acc, _)) => {
            grads.insert(id, ((acc + g)?, true));
        }
    }
    Ok(())
}

/// Adds a slice's gradient `g` into the gradient collected for `input`, at `start` along `dim`:
/// in place when that is a buffer of the tape's own, else into a new one (zeros, plus what was
/// collected), so the slices of one tensor fill one buffer instead of each padding its own.
fn add_into_slice(
    grads: &mut HashMap<TensorId, (Tensor, bool)>,
    input: &Tensor,
    g: &Tensor,
    dim: usize,
    start: usize,
) -> Result<()> {
    let acc = match grads.remove(&input.id()) {
        Some((acc, true)) if acc.is_contiguous() && acc.shape() == input.shape() => acc,
        Some((acc, _)) if acc.is_contiguous() => acc.copy()?,
        Some((acc, _)) => acc.contiguous()?,
        None => Tensor::zeros(input.shape(), input.dtype(), input.device())?,
    };
    acc.inplace_op2(&g.contiguous()?, &AddAssign { dim, start })?;
    grads.insert(input.id(), (acc, true));
    Ok(())
}

/// `acc += g` in place, in parallel, for contiguous f32 or f64 tensors of one size on the CPU;
/// `acc` must be a buffer its caller owns (a gradient), never one shared with a model.
pub fn add_assign(acc: &Tensor, g: &Tensor) -> Result<()> {
    acc.inplace_op2(g, &AddAssign { dim: 0, start: 0 })
}

/// `a[.., start..start + len, ..] += b` along `dim` in place, in parallel, where `b` is as wide
/// as `a` in every other dimension (`len` is `b`'s extent along `dim`); a plain `a += b` when
/// the two have one shape.
struct AddAssign {
    dim: usize,
    start: usize,
}

impl InplaceOp2 for AddAssign {
    fn name(&self) -> &'static str {
        "add-assign"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        /// Each of `a`'s rows of `width` gets `b`'s next `len` elements added from `offset` on.
        fn run<T: Real>(a: &mut [T], b: &[T], (width, offset, len): (usize, usize, usize)) {
            let add = |a: &mut [T], b: &[T]| {
                for (a, &b) in a.iter_mut().zip(b) {
                    *a += b;
                }
            };
            if width == len {
                let chunk = 16 * 1024;
                a.par_chunks_mut(chunk)
                    .zip(b.par_chunks(chunk))
                    .for_each(|(a, b)| add(a, b));
            } else {
                a.par_chunks_mut(width)
                    .zip(b.par_chunks(len))
                    .with_min_len((16 * 1024 / len.max(1)).max(1))
                    .for_each(|(a, b)| add(&mut a[offset..offset + len], b));
            }
        }
        let (sum, part) = (l1.dims(), l2.dims());
        let (dim, start) = (self.dim, self.start);
        let fits =
            sum.len() == part.len()
                && sum.iter().zip(part).enumerate().all(|(i, (&s, &p))| {
                    if i == dim {
                        start + p <= s
                    } else {
                        s == p
                    }
                });
        if !fits || (dim >= sum.len() && !sum.is_empty()) {
            candle_core::bail!("add-assign: {part:?} does not fit {sum:?} at {start} along {dim}")
        }
        let Some((from, to)) = l1.contiguous_offsets() else {
            candle_core::bail!("add-assign: the sum is not contiguous")
        };
        let inner: usize = sum.iter().skip(dim + 1).product();
        let width = sum.get(dim).map_or(1, |s| s * inner);
        let len = part.get(dim).map_or(1, |p| p * inner);
        let (rows, name) = ((width, start * inner, len), self.name());
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(_)) => {
                run(&mut a[from..to], f32::contiguous(s2, l2, name)?, rows)
            }
            (CpuStorage::F64(a), CpuStorage::F64(_)) => {
                run(&mut a[from..to], f64::contiguous(s2, l2, name)?, rows)
            }
            (a, b) => candle_core::bail!("add-assign: {:?} += {:?}", a.dtype(), b.dtype()),
        }
        Ok(())
    }
}

macro_rules! region_op {
    ($ty:ident, $trait:ident, $($arg:ident $s:ident $l:ident),+) => {
        /// A region with this many inputs, as the candle op it is.
        struct $ty(Region);

        impl $trait for $ty {
            fn name(&self) -> &'static str {
                "taped-layer"
            }

            fn cpu_fwd(&self, $($s: &CpuStorage, $l: &Layout),+) -> Result<(CpuStorage, Shape)> {
                let _ = ($($s, $l),+);
                self.0.forward()
            }

            #[allow(clippy::type_complexity)]
            fn bwd(&self, $($arg: &Tensor,)+ _res: &Tensor, grad: &Tensor)
                -> Result<region_op!(@ret $($arg)+)> {
                let _ = ($($arg),+);
                let mut g = self.0.backward(grad)?.into_iter();
                Ok(region_op!(@tuple g $($arg)+))
            }
        }
    };
    (@ret $a:ident) => { Option<Tensor> };
    (@ret $a:ident $b:ident) => { (Option<Tensor>, Option<Tensor>) };
    (@ret $a:ident $b:ident $c:ident) => { (Option<Tensor>, Option<Tensor>, Option<Tensor>) };
    (@tuple $g:ident $a:ident) => { $g.next().flatten() };
    (@tuple $g:ident $a:ident $b:ident) => { ($g.next().flatten(), $g.next().flatten()) };
    (@tuple $g:ident $a:ident $b:ident $c:ident) => {
        ($g.next().flatten(), $g.next().flatten(), $g.next().flatten())
    };
}

region_op!(Region1, CustomOp1, a s1 l1);
region_op!(Region2, CustomOp2, a s1 l1, b s2 l2);
region_op!(Region3, CustomOp3, a s1 l1, b s2 l2, c s3 l3);

/// Runs `layer` on `inputs` (at most two: the layer's input and, say, a trained attention bias)
/// with its ops taped, so that candle sees one op whose backward replays the tape (see the
/// module docs). Outside the fused CPU path, nested, or when an op bypasses the tape, `layer`
/// runs on `inputs` as given, in candle's graph.
pub fn region(inputs: &[&Tensor], layer: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<Tensor> {
    let plain = || layer(&inputs.iter().map(|t| (*t).clone()).collect::<Vec<_>>());
    let dtype_ok = inputs
        .iter()
        .all(|t| t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64));
    if !crate::enabled() || recording() || inputs.len() > 2 || !dtype_ok {
        return plain();
    }
    let inner: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let mut rec = Recording::default();
    for (outer, t) in inputs.iter().zip(&inner) {
        rec.seen.insert(t.id());
        if outer.track_op() {
            rec.live.insert(t.id());
        }
    }
    RECORDING.with(|r| *r.borrow_mut() = Some(rec));
    let recorder = Recorder;
    let y = layer(&inner)?;
    let rec = RECORDING
        .with(|r| r.borrow_mut().take())
        .unwrap_or_default();
    drop(recorder);
    if let Some(why) = &rec.bypassed {
        tracing::debug!("taped layer bypassed ({why}); candle's graph instead");
        return plain();
    }
    let tracked = inputs.iter().any(|t| t.track_op());
    if rec.entries.is_empty() {
        // Nothing in the layer wants a gradient (or the tape saw none of it: run it in candle).
        return if tracked || y.track_op() {
            plain()
        } else {
            Ok(y)
        };
    }
    if !rec.live.contains(&y.id()) {
        tracing::debug!("taped layer ends in an untaped op; candle's graph instead");
        return plain();
    }
    let region = Region {
        entries: Mutex::new(rec.entries),
        live: Arc::new(rec.live),
        inner,
        output: Mutex::new(Some(y)),
    };
    TAPED.with(|t| t.set(t.get() + 1));
    match (inputs, rec.anchor) {
        ([x], _) if x.track_op() => x.apply_op1(Region1(region)),
        ([x, b], _) if tracked => x.apply_op2(b, Region2(region)),
        ([x], Some(w)) => x.apply_op2(&w, Region2(region)),
        ([x, b], Some(w)) => x.apply_op3(b, &w, Region3(region)),
        _ => plain(),
    }
}
