//! ConvNeXt (`model_type` "convnext"): a patchify stem with a channels-first LayerNorm, stages
//! of depthwise 7×7 blocks (LayerNorm, MLP, optional LayerScale, residual) with LayerNorm +
//! stride-2 downsampling between them. The image's feature is `pooler_output`: the final
//! LayerNorm of the global average of the last stage.
use super::layers::{global_average, layer_norm_channels_first, Conv2d, ConvSpec};
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use crate::nn::{linear, Activation, LayerNorm, Linear};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of a ConvNeXt `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "four")]
    pub patch_size: usize,
    pub hidden_sizes: Vec<usize>,
    pub depths: Vec<usize>,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
    #[serde(default = "scale")]
    pub layer_scale_init_value: f64,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn gelu() -> String {
    "gelu".into()
}
fn eps12() -> f64 {
    1e-12
}
fn scale() -> f64 {
    1e-6
}

/// The LayerNorms inside the network use 1e-6 whatever the config says; only the final one
/// reads `layer_norm_eps` (transformers hard-codes them so).
const INNER_EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Block {
    dwconv: Conv2d,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    gamma: Option<Tensor>,
    act: Activation,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.dwconv.forward(x)?.permute((0, 2, 3, 1))?;
        let y = self.norm.forward(&y)?;
        let mut y = self.fc2.forward(&self.fc1.forward_act(&y, self.act)?)?;
        if let Some(g) = &self.gamma {
            y = y.broadcast_mul(g)?;
        }
        x + y.permute((0, 3, 1, 2))?
    }
}

#[derive(Debug, Clone)]
struct Stage {
    down: Option<(LayerNorm, Conv2d)>,
    blocks: Vec<Block>,
}

/// A loaded ConvNeXt.
#[derive(Debug, Clone)]
pub struct ConvNext {
    stem: Conv2d,
    stem_norm: LayerNorm,
    stages: Vec<Stage>,
    norm: LayerNorm,
}

impl VisionBackbone for ConvNext {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = layer_norm_channels_first(&self.stem.forward(pixels)?, &self.stem_norm)?;
        for s in &self.stages {
            if let Some((ln, conv)) = &s.down {
                x = conv.forward(&layer_norm_channels_first(&x, ln)?)?;
            }
            for b in &s.blocks {
                x = b.forward(&x)?;
            }
        }
        self.norm.forward(&global_average(&x)?)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        None
    }
}

/// ConvNeXt's entry in [`super::VISION_ARCHITECTURES`].
pub struct ConvNextArch;

impl VisionArchitecture for ConvNextArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["convnext"]
    }
    fn anchor(&self) -> &'static str {
        "embeddings.patch_embeddings.weight"
    }
    fn pooled(&self) -> &'static str {
        "pooler_output (the final LayerNorm of the global average)"
    }
    fn dim(&self, config: &ConfigFile) -> Result<usize> {
        let cfg: Config = config.parse()?;
        cfg.hidden_sizes
            .last()
            .copied()
            .ok_or_else(|| config.error("hidden_sizes is empty"))
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn VisionBackbone>> {
        let cfg: Config = config.parse()?;
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        if cfg.hidden_sizes.len() != cfg.depths.len() || cfg.depths.is_empty() {
            return Err(config.error("hidden_sizes and depths must be non-empty and of one length"));
        }
        let load = || -> candle_core::Result<ConvNext> {
            let c0 = cfg.hidden_sizes[0];
            let emb = vb.pp("embeddings");
            let stem = Conv2d::load(
                ConvSpec::new(cfg.num_channels, c0, cfg.patch_size, cfg.patch_size),
                emb.pp("patch_embeddings"),
            )?;
            let stem_norm = LayerNorm::load(c0, INNER_EPS, emb.pp("layernorm"))?;
            let mut stages = Vec::new();
            let mut c_in = c0;
            for (s, (&c, &depth)) in cfg.hidden_sizes.iter().zip(&cfg.depths).enumerate() {
                let vs = vb.pp(format!("encoder.stages.{s}"));
                let stride = if s > 0 { 2 } else { 1 };
                let down = if c_in != c || stride > 1 {
                    let d = vs.pp("downsampling_layer");
                    Some((
                        LayerNorm::load(c_in, INNER_EPS, d.pp("0"))?,
                        Conv2d::load(ConvSpec::new(c_in, c, stride, stride), d.pp("1"))?,
                    ))
                } else {
                    None
                };
                let blocks = (0..depth)
                    .map(|j| {
                        let vl = vs.pp(format!("layers.{j}"));
                        Ok(Block {
                            dwconv: Conv2d::load(
                                ConvSpec {
                                    padding: 3,
                                    groups: c,
                                    ..ConvSpec::new(c, c, 7, 1)
                                },
                                vl.pp("dwconv"),
                            )?,
                            norm: LayerNorm::load(c, INNER_EPS, vl.pp("layernorm"))?,
                            fc1: linear(c, 4 * c, vl.pp("pwconv1"))?,
                            fc2: linear(4 * c, c, vl.pp("pwconv2"))?,
                            gamma: if cfg.layer_scale_init_value > 0.0 {
                                Some(vl.get(c, "layer_scale_parameter")?)
                            } else {
                                None
                            },
                            act,
                        })
                    })
                    .collect::<candle_core::Result<_>>()?;
                stages.push(Stage { down, blocks });
                c_in = c;
            }
            let norm = LayerNorm::load(c_in, cfg.layer_norm_eps, vb.pp("layernorm"))?;
            Ok(ConvNext {
                stem,
                stem_norm,
                stages,
                norm,
            })
        };
        Ok(Box::new(load().context(format!(
            "loading the ConvNeXt of {}",
            config.path.display()
        ))?))
    }
}
