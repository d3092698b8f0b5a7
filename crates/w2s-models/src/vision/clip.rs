//! CLIP's vision tower (`model_type` "clip_vision_model", or "clip" with a `vision_config`):
//! patch embedding without bias, a class embedding and learned positions, a LayerNorm before
//! the layers (`pre_layrnorm`, so spelt in transformers), pre-norm layers with quick-GELU, and
//! the pooled feature transformers returns as `pooler_output`: the CLS token after
//! `post_layernorm`.
use super::layers::{Conv2d, ConvSpec};
use super::vit::{embed, no_mask, Layer, LayerNames, LayerShape};
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use crate::nn::{Activation, LayerNorm};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of a CLIP vision config that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "three")]
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "eps5")]
    pub layer_norm_eps: f64,
}

fn three() -> usize {
    3
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn eps5() -> f64 {
    1e-5
}

impl Config {
    /// The vision config: the file itself, or its `vision_config` in a whole CLIP's config.
    fn of(file: &ConfigFile) -> Result<Config> {
        match file.value.get("vision_config") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| file.error(format!("vision_config: {e}"))),
            None => file.parse(),
        }
    }
}

/// A loaded CLIP vision tower.
#[derive(Debug, Clone)]
pub struct ClipVision {
    projection: Conv2d,
    cls: Tensor,
    positions: Tensor,
    pre_norm: LayerNorm,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
    grid: usize,
    patch: usize,
}

impl VisionBackbone for ClipVision {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = pixels.dims4()?;
        if (h / self.patch, w / self.patch) != (self.grid, self.grid) {
            candle_core::bail!(
                "a {h}x{w} image gives {}x{} patches but the position table is for {g}x{g}; set the processor's crop to the config's image_size",
                h / self.patch,
                w / self.patch,
                g = self.grid
            );
        }
        let mut x = embed(pixels, &self.projection, &self.cls, &self.positions)?;
        x = self.pre_norm.forward(&x)?;
        let bias = no_mask(&x)?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        self.post_norm.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        let side = self.grid * self.patch;
        Some((side, side))
    }
}

/// CLIP's entry in [`super::VISION_ARCHITECTURES`].
pub struct ClipArch;

impl VisionArchitecture for ClipArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["clip_vision_model", "clip"]
    }
    fn anchor(&self) -> &'static str {
        "embeddings.patch_embedding.weight"
    }
    fn pooled(&self) -> &'static str {
        "pooler_output: the CLS token after post_layernorm"
    }
    fn dim(&self, config: &ConfigFile) -> Result<usize> {
        Ok(Config::of(config)?.hidden_size)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn VisionBackbone>> {
        let cfg = Config::of(config)?;
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let grid = cfg.image_size / cfg.patch_size;
        let h = cfg.hidden_size;
        let shape = LayerShape {
            hidden: h,
            ffn: cfg.intermediate_size,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps,
            qkv_bias: true,
            act,
        };
        let names = LayerNames {
            attention: [
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.out_proj",
            ],
            norm1: "layer_norm1",
            norm2: "layer_norm2",
            fc1: "mlp.fc1",
            fc2: "mlp.fc2",
            scales: None,
        };
        let load = || -> candle_core::Result<ClipVision> {
            let emb = vb.pp("embeddings");
            let p = cfg.patch_size;
            Ok(ClipVision {
                projection: Conv2d::load(
                    ConvSpec {
                        bias: false,
                        ..ConvSpec::new(cfg.num_channels, h, p, p)
                    },
                    emb.pp("patch_embedding"),
                )?,
                cls: emb.get(h, "class_embedding")?,
                positions: emb
                    .get((grid * grid + 1, h), "position_embedding.weight")?
                    .unsqueeze(0)?,
                pre_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp("pre_layrnorm"))?,
                layers: (0..cfg.num_hidden_layers)
                    .map(|i| Layer::load(&shape, &names, vb.pp(format!("encoder.layers.{i}"))))
                    .collect::<candle_core::Result<_>>()?,
                post_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
                grid,
                patch: p,
            })
        };
        Ok(Box::new(load().context(format!(
            "loading the CLIP vision tower of {}",
            config.path.display()
        ))?))
    }
}
