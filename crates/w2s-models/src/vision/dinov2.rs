//! DINOv2 (`model_type` "dinov2"): ViT's layout with LayerScale on both residual branches and
//! a position table that is resized (bicubic, as transformers does) to the image's patch grid.
//! The image's feature is the CLS token after the final LayerNorm.
use super::vit::{embed, no_mask, Layer, LayerNames, LayerShape, Side};
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use crate::nn::{Activation, LayerNorm};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of a DINOv2 `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "four")]
    pub mlp_ratio: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps6")]
    pub layer_norm_eps: f64,
    pub image_size: Side,
    pub patch_size: Side,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

fn four() -> f64 {
    4.0
}
fn gelu() -> String {
    "gelu".into()
}
fn eps6() -> f64 {
    1e-6
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// A loaded DINOv2.
#[derive(Debug, Clone)]
pub struct Dinov2 {
    projection: super::layers::Conv2d,
    cls: Tensor,
    /// `[1, 1 + g·g, hidden]` as stored.
    positions: Tensor,
    grid: usize,
    patch: usize,
    layers: Vec<Layer>,
    norm: LayerNorm,
}

impl Dinov2 {
    /// The position table for a `gh × gw` patch grid: the stored one when it fits and the image
    /// is square (transformers' condition), else its patch part resized bicubically.
    fn positions_for(&self, gh: usize, gw: usize) -> candle_core::Result<Tensor> {
        if gh * gw == self.grid * self.grid && gh == gw {
            return Ok(self.positions.clone());
        }
        let (_, n, dim) = self.positions.dims3()?;
        let dtype = self.positions.dtype();
        let table: Vec<f32> = self
            .positions
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let g = self.grid;
        let mut out = table[..dim].to_vec(); // the CLS position is kept
        out.extend(bicubic_resize(&table[dim..n * dim], g, g, dim, gh, gw));
        Tensor::from_vec(out, (1, 1 + gh * gw, dim), self.positions.device())?.to_dtype(dtype)
    }
}

/// PyTorch's `interpolate(mode="bicubic", align_corners=False)` of a `[h, w, dim]` grid to
/// `[oh, ow, dim]`: source coordinate `(i + ½)·in/out − ½`, Keys' kernel with a = −0.75, borders
/// clamped, no antialiasing.
pub fn bicubic_resize(
    grid: &[f32],
    h: usize,
    w: usize,
    dim: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    fn weights(t: f64) -> [f64; 4] {
        let a = -0.75;
        let c1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        let c2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
        [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)]
    }
    let taps = |o: usize, n_in: usize, n_out: usize| -> ([usize; 4], [f64; 4]) {
        let real = (o as f64 + 0.5) * (n_in as f64 / n_out as f64) - 0.5;
        let base = real.floor();
        let wts = weights(real - base);
        let idx = [0, 1, 2, 3].map(|k| (base as i64 - 1 + k).clamp(0, n_in as i64 - 1) as usize);
        (idx, wts)
    };
    let mut out = vec![0f32; oh * ow * dim];
    for y in 0..oh {
        let (ys, wy) = taps(y, h, oh);
        for x in 0..ow {
            let (xs, wx) = taps(x, w, ow);
            for d in 0..dim {
                let mut acc = 0.0;
                for (a, &yy) in ys.iter().enumerate() {
                    let mut row = 0.0;
                    for (b, &xx) in xs.iter().enumerate() {
                        row += wx[b] * grid[(yy * w + xx) * dim + d] as f64;
                    }
                    acc += wy[a] * row;
                }
                out[(y * ow + x) * dim + d] = acc as f32;
            }
        }
    }
    out
}

impl VisionBackbone for Dinov2 {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = pixels.dims4()?;
        let positions = self.positions_for(h / self.patch, w / self.patch)?;
        let mut x = embed(pixels, &self.projection, &self.cls, &positions)?;
        let bias = no_mask(&x)?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        self.norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        None
    }
}

/// DINOv2's entry in [`super::VISION_ARCHITECTURES`].
pub struct Dinov2Arch;

impl VisionArchitecture for Dinov2Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["dinov2"]
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
        if cfg.use_swiglu_ffn {
            return Err(
                config.error("use_swiglu_ffn (DINOv2-giant's feed-forward) is not supported yet")
            );
        }
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let (ph, pw) = cfg.patch_size.hw();
        let (ih, iw) = cfg.image_size.hw();
        if ph != pw || ih != iw {
            return Err(config.error("DINOv2 needs square patches and a square image_size"));
        }
        let grid = ih / ph;
        let h = cfg.hidden_size;
        let shape = LayerShape {
            hidden: h,
            ffn: (h as f64 * cfg.mlp_ratio) as usize,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps,
            qkv_bias: cfg.qkv_bias,
            act,
        };
        let names = LayerNames {
            attention: super::vit::HF_ATTENTION,
            norm1: "norm1",
            norm2: "norm2",
            fc1: "mlp.fc1",
            fc2: "mlp.fc2",
            scales: Some(("layer_scale1.lambda1", "layer_scale2.lambda1")),
        };
        let load = || -> candle_core::Result<Dinov2> {
            let emb = vb.pp("embeddings");
            Ok(Dinov2 {
                projection: super::layers::Conv2d::load(
                    super::layers::ConvSpec::new(cfg.num_channels, h, ph, ph),
                    emb.pp("patch_embeddings.projection"),
                )?,
                cls: emb.get((1, 1, h), "cls_token")?,
                positions: emb.get((1, grid * grid + 1, h), "position_embeddings")?,
                grid,
                patch: ph,
                layers: (0..cfg.num_hidden_layers)
                    .map(|i| Layer::load(&shape, &names, vb.pp(format!("encoder.layer.{i}"))))
                    .collect::<candle_core::Result<_>>()?,
                norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp("layernorm"))?,
            })
        };
        Ok(Box::new(load().context(format!(
            "loading the DINOv2 of {}",
            config.path.display()
        ))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same size is the identity (t = 0 gives weights 0, 1, 0, 0); halving a linear ramp with
    /// a = −0.75 and clamped borders, computed by hand for the first output.
    #[test]
    fn bicubic_matches_hand_values() {
        let ramp: Vec<f32> = (0..4).map(|i| i as f32).collect();
        assert_eq!(bicubic_resize(&ramp, 1, 4, 1, 1, 4), ramp);
        let out = bicubic_resize(&ramp, 1, 4, 1, 1, 2);
        // output 0: real = 0.5·2 − 0.5 = 0.5, taps −1..2 clamped → values 0, 0, 1, 2
        // weights at t = .5: c2(1.5), c1(.5), c1(.5), c2(1.5) = −0.09375, 0.59375, 0.59375, −0.09375
        let e0 = -0.09375 * 0.0 + 0.59375 * 0.0 + 0.59375 * 1.0 - 0.09375 * 2.0;
        assert!((out[0] as f64 - e0).abs() < 1e-6, "{} vs {e0}", out[0]);
    }
}
