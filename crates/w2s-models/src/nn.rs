//! Building blocks that keep the autograd graph intact.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` have no backward pass: a model built on them
//! silently trains only the layers above the last norm. These blocks call `w2s-kernels`, whose
//! fused CPU ops have a backward, and which composes differentiable candle ops on other devices
//! and dtypes.
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
/// Scaled dot-product attention `softmax(q·kᵀ·scale + bias)·v`, merged as `[b, t, heads·d]`;
/// q, k, v are `[b, heads, t, d]` or `[b, t, heads·d]` (see [`w2s_kernels::attention`]).
pub use w2s_kernels::attention as attend;
use w2s_kernels::Act;
pub use w2s_kernels::AttentionShape;

/// LayerNorm over the last dimension with weight and bias (HF names `weight`, `bias`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of size `dim`.
    pub fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        w2s_kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// `t` in `dtype`: a no-op when it already is; otherwise a cast that stays in the autograd graph,
/// so f32 trained weights used in a bf16 forward still receive their gradient.
pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    t.to_dtype(dtype)
}

/// A token or position embedding table (HF name `weight`, `[rows, dim]`).
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// Loads `weight` of shape `[rows, dim]`.
    pub fn load(rows: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Embedding {
            weight: vb.get((rows, dim), "weight")?,
        })
    }

    /// The rows of `ids` (any shape) as `[..ids, dim]` in `dtype`.
    pub fn forward(&self, ids: &Tensor, dtype: DType) -> Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.weight.dim(1)?);
        let rows = w2s_kernels::embedding(&self.weight, ids)?;
        cast(&rows, dtype)?.reshape(shape)
    }
}

/// A Linear layer with HF names (`weight` as `[out, in]`, `bias`), optionally with LoRA.
///
/// The product, bias and an activation run as one `w2s-kernels` op (one 2-D product over all
/// leading dimensions either way: candle's broadcast matmul would materialise a
/// `[batch, in, out]` weight gradient before summing it).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    /// A GPT-2 Conv1D's weight as stored, `[in, out]`, of which `weight` is the transposed view.
    in_out: Option<Tensor>,
    bias: Option<Tensor>,
    lora: Option<Lora>,
}

/// A low-rank update `scale · B·A` added to a frozen weight (Hu et al. 2021).
#[derive(Debug, Clone)]
pub struct Lora {
    /// `[r, in]`, random at the start.
    pub a: Tensor,
    /// `[out, r]`, zero at the start, so the adapted layer starts equal to the pretrained one.
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
}

impl Linear {
    /// Input and output widths.
    pub fn dims(&self) -> Result<(usize, usize)> {
        let (out, inp) = self.weight.dims2()?;
        Ok((inp, out))
    }

    /// Whether a LoRA adapter is attached (its products are candle ops, outside the tape).
    pub fn has_lora(&self) -> bool {
        self.lora.is_some()
    }

    /// Adds (or replaces) a LoRA adapter.
    pub fn set_lora(&mut self, lora: Option<Lora>) {
        self.lora = lora;
    }

    /// `act(x·Wᵀ + b)`, the activation fused into the same op when there is no adapter.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let Some(l) = &self.lora else {
            return match &self.in_out {
                // A trained view would make a taped layer fall back to candle's graph.
                Some(w) if w.track_op() => {
                    w2s_kernels::linear_in_out(x, w, self.bias.as_ref(), act)
                }
                _ => w2s_kernels::linear(x, &self.weight, self.bias.as_ref(), act),
            };
        };
        // The adapter's products are candle ops the tape cannot follow.
        w2s_kernels::tape::bypass("LoRA");
        let y = w2s_kernels::linear(x, &self.weight, self.bias.as_ref(), Act::Identity)?;
        let (rows, inner) = (x.elem_count() / x.dim(D::Minus1)?.max(1), x.dim(D::Minus1)?);
        let dt = x.dtype();
        let (a, b) = (cast(&l.a, dt)?, cast(&l.b, dt)?);
        let update = x.reshape((rows, inner))?.matmul(&a.t()?)?.matmul(&b.t()?)?;
        let update = (update.reshape(y.shape())? * l.scale)?;
        act.forward(&(y + update)?)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
    }
}

/// Runs `layer` on `x` as one taped op for candle ([`w2s_kernels::region`]), or straight in candle's
/// graph when one of its `linears` has a LoRA adapter (whose products bypass the tape, so a region
/// would only run the layer twice).
pub fn taped_layer(
    linears: &[&Linear],
    x: &Tensor,
    layer: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if linears.iter().any(|l| l.has_lora()) {
        return layer(x);
    }
    w2s_kernels::region(&[x], |xs| layer(&xs[0]))
}

/// Loads a GPT-2 `Conv1D` `in_dim → out_dim`, whose weight is stored `[in, out]` (the transpose
/// of a Linear's); the layer holds it and a transposed view, and a trained weight's gradient comes
/// out `[in, out]`.
pub fn conv1d(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let stored = vb.get((in_dim, out_dim), "weight")?;
    Ok(Linear {
        weight: stored.t()?,
        in_out: Some(stored),
        bias: Some(vb.get(out_dim, "bias")?),
        lora: None,
    })
}

/// Loads a [`Linear`] `in_dim → out_dim`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, true, vb)
}

/// Loads a [`Linear`] `in_dim → out_dim`, with a bias only if `bias`.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear {
        weight: vb.get((out_dim, in_dim), "weight")?,
        in_out: None,
        bias: if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        },
        lora: None,
    })
}

/// RMSNorm over the last dimension (Llama, Qwen2, Gemma3), written from differentiable primitives
/// when a gradient is needed (candle's fused `rms_norm` has no backward).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    /// Gemma stores `w` and scales by `1 + w`.
    plus_one: bool,
}

impl RmsNorm {
    /// Loads `weight` of size `dim`.
    pub fn load(dim: usize, eps: f64, plus_one: bool, vb: VarBuilder) -> Result<Self> {
        Ok(RmsNorm {
            weight: vb.get(dim, "weight")?,
            eps,
            plus_one,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        w2s_kernels::rms_norm(x, &self.weight, self.eps, self.plus_one)
    }
}

/// The additive bias that hides a key: large enough to zero it after softmax, finite (so a sum
/// of two stays finite and no row becomes NaN), and representable in `dtype`.
pub fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -3.0e4,
        _ => -1.0e9,
    }
}

/// Turns a `[batch, seq]` 0/1 mask into an additive `[batch, 1, 1, seq]` attention bias.
pub fn attention_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * -mask_value(dtype))?;
    bias.to_dtype(dtype)?.reshape((b, 1, 1, t))
}

/// Which keys a query may see in a decoder: `causal` hides later keys; `window` hides keys `w`
/// or more positions away (before the query; on both sides when not causal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    /// Keys after the query are hidden.
    pub causal: bool,
    /// Sliding-window width, if any.
    pub window: Option<usize>,
}

/// Additive attention bias `[b, 1, t, t]`: the key mask of [`attention_bias`] plus the pattern
/// of `vis` (the `[t, t]` pattern is built on the host, the per-row mask stays on the device).
pub fn decoder_bias(mask: &Tensor, vis: Visibility, dtype: DType) -> Result<Tensor> {
    let (_, t) = mask.dims2()?;
    let hidden = mask_value(dtype) as f32;
    let mut pattern = Vec::with_capacity(t * t);
    for i in 0..t {
        for j in 0..t {
            let visible = (!vis.causal || j <= i) && vis.window.is_none_or(|w| i.abs_diff(j) < w);
            pattern.push(if visible { 0f32 } else { hidden });
        }
    }
    let pattern = Tensor::from_vec(pattern, (1, 1, t, t), mask.device())?.to_dtype(dtype)?;
    attention_bias(mask, dtype)?.broadcast_add(&pattern)
}

/// Positions of RoBERTa-style models: `pad + 1, pad + 2, …` over the real tokens of each row,
/// `pad` on padding (Hugging Face's `create_position_ids_from_input_ids`, read off the mask).
pub fn positions_after_padding(mask: &Tensor, pad: u32) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let mut positions = Vec::with_capacity(b * t);
    for row in rows {
        let mut count = 0;
        for m in row {
            if m > 0.5 {
                count += 1;
                positions.push(pad + count);
            } else {
                positions.push(pad);
            }
        }
    }
    Tensor::from_vec(positions, (b, t), mask.device())
}

/// A feed-forward activation, named as in Hugging Face configs (the fused kernels' own type).
pub use w2s_kernels::Act as Activation;

/// HF names of the attention sub-modules of one encoder layer (they differ between BERT and MPNet).
pub struct AttentionNames {
    /// Query, key, value and output projections.
    pub q: &'static str,
    /// Key projection.
    pub k: &'static str,
    /// Value projection.
    pub v: &'static str,
    /// Output projection.
    pub o: &'static str,
    /// LayerNorm after the attention residual.
    pub norm: &'static str,
}

/// A post-LN transformer encoder layer: self-attention, residual + LayerNorm, GELU feed-forward,
/// residual + LayerNorm (BERT and MPNet share it; only the weight names differ).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    heads: usize,
    act: Activation,
}

impl EncoderLayer {
    /// Loads one layer of width `hidden` with `ffn` feed-forward units.
    pub fn load(
        hidden: usize,
        ffn: usize,
        heads: usize,
        eps: f64,
        act: Activation,
        names: &AttentionNames,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(EncoderLayer {
            q: linear(hidden, hidden, vb.pp(names.q))?,
            k: linear(hidden, hidden, vb.pp(names.k))?,
            v: linear(hidden, hidden, vb.pp(names.v))?,
            o: linear(hidden, hidden, vb.pp(names.o))?,
            attn_norm: LayerNorm::load(hidden, eps, vb.pp(names.norm))?,
            intermediate: linear(hidden, ffn, vb.pp("intermediate.dense"))?,
            output: linear(ffn, hidden, vb.pp("output.dense"))?,
            out_norm: LayerNorm::load(hidden, eps, vb.pp("output.LayerNorm"))?,
            heads,
            act,
        })
    }

    /// The layer's linear projections by name (query, key, value, attention output, the two
    /// feed-forward layers): what LoRA adapts.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 6] {
        [
            ("q", &mut self.q),
            ("k", &mut self.k),
            ("v", &mut self.v),
            ("o", &mut self.o),
            ("intermediate", &mut self.intermediate),
            ("output", &mut self.output),
        ]
    }

    /// The linears of every layer of a stack, by name: an encoder backbone's `layer_linears_mut`.
    pub fn stack_linears_mut(layers: &mut [EncoderLayer]) -> Vec<Vec<(&'static str, &mut Linear)>> {
        layers
            .iter_mut()
            .map(|l| l.linears_mut().into_iter().collect())
            .collect()
    }

    /// `x [b, t, h]` → `[b, t, h]`; `bias` is added to the attention scores (mask, position bias).
    ///
    /// The layer is one taped op for candle ([`w2s_kernels::region`]): its backward moves each
    /// activation gradient on instead of zero-filling and adding it.
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let linears = [
            &self.q,
            &self.k,
            &self.v,
            &self.o,
            &self.intermediate,
            &self.output,
        ];
        if linears.iter().any(|l| l.has_lora()) {
            return self.forward_taped(x, bias);
        }
        w2s_kernels::region(&[x, bias], |xs| self.forward_taped(&xs[0], &xs[1]))
    }

    /// The layer's ops: taped inside a region, candle's graph outside one.
    fn forward_taped(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        // q, k, v stay `[b, t, heads·d]`: the attention reads the heads in place.
        let (q, k, v) = (self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?);
        let scale = 1.0 / ((q.dim(D::Minus1)? / self.heads) as f64).sqrt();
        let shape = AttentionShape {
            heads: self.heads,
            kv_heads: self.heads,
            scale,
        };
        let ctx = attend(&q, &k, &v, bias, shape)?;
        let a = self
            .attn_norm
            .forward(&w2s_kernels::add(&self.o.forward(&ctx)?, x)?)?;
        let f = self
            .output
            .forward(&self.intermediate.forward_act(&a, self.act)?)?;
        self.out_norm.forward(&w2s_kernels::add(&f, &a)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn layer_norm_matches_hand_computation_and_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::new(&[[1f32, 2., 3., 6.]], &dev).unwrap();
        let w = Var::new(&[1f32, 1., 2., 1.], &dev).unwrap();
        let b = Var::new(&[0f32, 0., 0., 1.], &dev).unwrap();
        let ln = LayerNorm {
            weight: w.as_tensor().clone(),
            bias: b.as_tensor().clone(),
            eps: 0.0,
        };
        let y = ln.forward(x.as_tensor()).unwrap();
        // mean 3, var (4+1+0+9)/4 = 3.5
        let s = 3.5f32.sqrt();
        let expect = [-2.0 / s, -1.0 / s, 0.0, 3.0 / s + 1.0];
        for (a, e) in y
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .zip(expect)
        {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let g = grads
                .get(v.as_tensor())
                .expect("gradient reaches every input");
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
    }
}
