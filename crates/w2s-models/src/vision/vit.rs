//! ViT (`model_type` "vit"): patch embedding, CLS token, learned positions, pre-norm layers,
//! final LayerNorm. The image's feature is the CLS token after that norm, as transformers'
//! `ViTForImageClassification` reads it.
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use crate::nn::{attend, linear_b, Activation, AttentionShape, LayerNorm, Linear};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// A side length given as one number or as `[height, width]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Side {
    /// Square.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Side {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Side::One(s) => (s, s),
            Side::Two([h, w]) => (h, w),
        }
    }
}

/// The fields of a ViT `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
    pub image_size: Side,
    pub patch_size: Side,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
}

fn gelu() -> String {
    "gelu".into()
}
fn eps12() -> f64 {
    1e-12
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// Tensor names of a pre-norm transformer layer (ViT, DINOv2 and CLIP differ only in these).
pub struct LayerNames {
    /// The query, key, value and output projections.
    pub attention: [&'static str; 4],
    pub norm1: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
    /// Per-channel scales of the two residual branches (DINOv2's LayerScale), if any.
    pub scales: Option<(&'static str, &'static str)>,
}

/// The attention projections of transformers' ViT and DINOv2 layers.
pub const HF_ATTENTION: [&str; 4] = [
    "attention.attention.query",
    "attention.attention.key",
    "attention.attention.value",
    "attention.output.dense",
];

/// The shapes of a pre-norm transformer layer.
pub struct LayerShape {
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub eps: f64,
    pub qkv_bias: bool,
    pub act: Activation,
}

/// A pre-norm transformer layer: `x + s1·attn(norm1 x)`, then `x + s2·mlp(norm2 x)`.
#[derive(Debug, Clone)]
pub struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    scales: Option<(Tensor, Tensor)>,
    heads: usize,
    act: Activation,
}

impl Layer {
    /// Loads layer weights below `vb` (the `encoder.layer.N` folder).
    pub fn load(s: &LayerShape, names: &LayerNames, vb: VarBuilder) -> candle_core::Result<Layer> {
        let h = s.hidden;
        let [q, k, v, o] = names.attention;
        Ok(Layer {
            q: linear_b(h, h, s.qkv_bias, vb.pp(q))?,
            k: linear_b(h, h, s.qkv_bias, vb.pp(k))?,
            v: linear_b(h, h, s.qkv_bias, vb.pp(v))?,
            o: linear_b(h, h, true, vb.pp(o))?,
            norm1: LayerNorm::load(h, s.eps, vb.pp(names.norm1))?,
            norm2: LayerNorm::load(h, s.eps, vb.pp(names.norm2))?,
            fc1: linear_b(h, s.ffn, true, vb.pp(names.fc1))?,
            fc2: linear_b(s.ffn, h, true, vb.pp(names.fc2))?,
            scales: match names.scales {
                Some((a, b)) => Some((vb.get(h, a)?, vb.get(h, b)?)),
                None => None,
            },
            heads: s.heads,
            act: s.act,
        })
    }

    /// `[b, t, h]` → `[b, t, h]`; every token sees every token.
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.norm1.forward(x)?;
        let (q, k, v) = (
            self.q.forward(&y)?,
            self.k.forward(&y)?,
            self.v.forward(&y)?,
        );
        let d = x.dim(2)? / self.heads;
        let shape = AttentionShape {
            heads: self.heads,
            kv_heads: self.heads,
            scale: 1.0 / (d as f64).sqrt(),
        };
        let mut a = self.o.forward(&attend(&q, &k, &v, bias, shape)?)?;
        if let Some((s1, _)) = &self.scales {
            a = a.broadcast_mul(s1)?;
        }
        let x = (x + a)?;
        let y = self.norm2.forward(&x)?;
        let mut m = self.fc2.forward(&self.fc1.forward_act(&y, self.act)?)?;
        if let Some((_, s2)) = &self.scales {
            m = m.broadcast_mul(s2)?;
        }
        x + m
    }
}

/// Patch embedding + CLS token + positions: `[b, c, h, w]` → `[b, 1 + patches, hidden]`, with
/// the position table resized by `positions` when the image is not the configured size.
pub fn embed(
    pixels: &Tensor,
    projection: &super::layers::Conv2d,
    cls: &Tensor,
    positions: &Tensor,
) -> candle_core::Result<Tensor> {
    let p = projection.forward(pixels)?; // [b, hidden, gh, gw]
    let (b, hidden, _, _) = p.dims4()?;
    let p = p.flatten_from(2)?.transpose(1, 2)?; // [b, gh·gw, hidden]
    let cls = cls.reshape((1, 1, hidden))?.broadcast_as((b, 1, hidden))?;
    Tensor::cat(&[&cls, &p], 1)?.broadcast_add(positions)
}

/// The additive attention bias of unmasked tokens.
pub fn no_mask(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    Tensor::zeros((b, 1, 1, t), x.dtype(), x.device())
}

/// A loaded ViT.
#[derive(Debug, Clone)]
pub struct ViT {
    projection: super::layers::Conv2d,
    cls: Tensor,
    positions: Tensor,
    layers: Vec<Layer>,
    norm: LayerNorm,
    grid: (usize, usize),
    patch: (usize, usize),
}

impl VisionBackbone for ViT {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = pixels.dims4()?;
        let grid = (h / self.patch.0, w / self.patch.1);
        if grid != self.grid {
            candle_core::bail!(
                "a {h}x{w} image gives {grid:?} patches but the position table is for {:?}; set the processor's size to the config's image_size",
                self.grid
            );
        }
        let mut x = embed(pixels, &self.projection, &self.cls, &self.positions)?;
        let bias = no_mask(&x)?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        self.norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        Some((self.grid.0 * self.patch.0, self.grid.1 * self.patch.1))
    }
}

/// The ViT family's entry in [`super::VISION_ARCHITECTURES`].
pub struct ViTArch;

impl VisionArchitecture for ViTArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["vit"]
    }
    fn anchor(&self) -> &'static str {
        "embeddings.patch_embeddings.projection.weight"
    }
    fn pooled(&self) -> &'static str {
        "the CLS token after the final LayerNorm"
    }
    fn dim(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<Config>()?.hidden_size)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn VisionBackbone>> {
        let cfg: Config = config.parse()?;
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let (ph, pw) = cfg.patch_size.hw();
        let (ih, iw) = cfg.image_size.hw();
        if ph != pw {
            return Err(config.error("non-square patches are not supported"));
        }
        let grid = (ih / ph, iw / pw);
        let h = cfg.hidden_size;
        let shape = LayerShape {
            hidden: h,
            ffn: cfg.intermediate_size,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps,
            qkv_bias: cfg.qkv_bias,
            act,
        };
        let names = LayerNames {
            attention: HF_ATTENTION,
            norm1: "layernorm_before",
            norm2: "layernorm_after",
            fc1: "intermediate.dense",
            fc2: "output.dense",
            scales: None,
        };
        let load = || -> candle_core::Result<ViT> {
            let emb = vb.pp("embeddings");
            Ok(ViT {
                projection: super::layers::Conv2d::load(
                    super::layers::ConvSpec::new(cfg.num_channels, h, ph, ph),
                    emb.pp("patch_embeddings.projection"),
                )?,
                cls: emb.get((1, 1, h), "cls_token")?,
                positions: emb.get((1, grid.0 * grid.1 + 1, h), "position_embeddings")?,
                layers: (0..cfg.num_hidden_layers)
                    .map(|i| Layer::load(&shape, &names, vb.pp(format!("encoder.layer.{i}"))))
                    .collect::<candle_core::Result<_>>()?,
                norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp("layernorm"))?,
                grid,
                patch: (ph, pw),
            })
        };
        Ok(Box::new(load().context(format!(
            "loading the ViT of {}",
            config.path.display()
        ))?))
    }
}
