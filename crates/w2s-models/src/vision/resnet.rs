//! ResNet (`model_type` "resnet", transformers' layout): a 7×7 stem with max pooling, stages of
//! basic or bottleneck blocks with batch norm, global average pooling. The image's feature is
//! `pooler_output`, the pooled last stage, flattened.
use super::layers::{global_average, max_pool_padded, BatchNorm, Conv2d, ConvSpec};
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use crate::nn::Activation;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of a ResNet `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "three")]
    pub num_channels: usize,
    pub embedding_size: usize,
    pub hidden_sizes: Vec<usize>,
    pub depths: Vec<usize>,
    #[serde(default = "bottleneck")]
    pub layer_type: String,
    #[serde(default = "relu")]
    pub hidden_act: String,
    #[serde(default)]
    pub downsample_in_first_stage: bool,
    #[serde(default)]
    pub downsample_in_bottleneck: bool,
}

fn three() -> usize {
    3
}
fn bottleneck() -> String {
    "bottleneck".into()
}
fn relu() -> String {
    "relu".into()
}

/// Convolution (no bias, padding k/2), batch norm, optional activation.
#[derive(Debug, Clone)]
struct ConvLayer {
    conv: Conv2d,
    norm: BatchNorm,
    act: Option<Activation>,
}

impl ConvLayer {
    fn load(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        act: Option<Activation>,
        vb: VarBuilder,
    ) -> candle_core::Result<ConvLayer> {
        let spec = ConvSpec {
            padding: kernel / 2,
            bias: false,
            ..ConvSpec::new(c_in, c_out, kernel, stride)
        };
        Ok(ConvLayer {
            conv: Conv2d::load(spec, vb.pp("convolution"))?,
            norm: BatchNorm::load(c_out, vb.pp("normalization"))?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.norm.forward(&self.conv.forward(x)?)?;
        match self.act {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }
}

/// A residual block: `act(layers(x) + shortcut(x))`.
#[derive(Debug, Clone)]
struct Block {
    shortcut: Option<(Conv2d, BatchNorm)>,
    layers: Vec<ConvLayer>,
    act: Activation,
}

impl Block {
    fn load(
        cfg: &Config,
        c_in: usize,
        c_out: usize,
        stride: usize,
        act: Activation,
        vb: VarBuilder,
    ) -> candle_core::Result<Block> {
        let shortcut = if c_in != c_out || stride != 1 {
            let spec = ConvSpec {
                bias: false,
                ..ConvSpec::new(c_in, c_out, 1, stride)
            };
            let s = vb.pp("shortcut");
            Some((
                Conv2d::load(spec, s.pp("convolution"))?,
                BatchNorm::load(c_out, s.pp("normalization"))?,
            ))
        } else {
            None
        };
        // The inner layers use ReLU whatever hidden_act says: transformers builds them with
        // its default activation; only the stem and the block output follow the config.
        let relu = Some(Activation::Relu);
        let l = vb.pp("layer");
        let layers = if cfg.layer_type == "bottleneck" {
            let r = c_out / 4;
            let (s1, s2) = if cfg.downsample_in_bottleneck {
                (stride, 1)
            } else {
                (1, stride)
            };
            vec![
                ConvLayer::load(c_in, r, 1, s1, relu, l.pp("0"))?,
                ConvLayer::load(r, r, 3, s2, relu, l.pp("1"))?,
                ConvLayer::load(r, c_out, 1, 1, None, l.pp("2"))?,
            ]
        } else {
            vec![
                ConvLayer::load(c_in, c_out, 3, stride, relu, l.pp("0"))?,
                ConvLayer::load(c_out, c_out, 3, 1, None, l.pp("1"))?,
            ]
        };
        Ok(Block {
            shortcut,
            layers,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward(&y)?;
        }
        let residual = match &self.shortcut {
            Some((conv, norm)) => norm.forward(&conv.forward(x)?)?,
            None => x.clone(),
        };
        self.act.forward(&(y + residual)?)
    }
}

/// A loaded ResNet.
#[derive(Debug, Clone)]
pub struct ResNet {
    stem: ConvLayer,
    blocks: Vec<Block>,
}

impl VisionBackbone for ResNet {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = max_pool_padded(&self.stem.forward(pixels)?, 3, 2, 1)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        global_average(&x)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        None
    }
}

/// ResNet's entry in [`super::VISION_ARCHITECTURES`].
pub struct ResNetArch;

impl VisionArchitecture for ResNetArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["resnet"]
    }
    fn anchor(&self) -> &'static str {
        "embedder.embedder.convolution.weight"
    }
    fn pooled(&self) -> &'static str {
        "pooler_output (the global average of the last stage)"
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
        if !matches!(cfg.layer_type.as_str(), "basic" | "bottleneck") {
            return Err(config.error(format!(
                "layer_type {:?}: expected \"basic\" or \"bottleneck\"",
                cfg.layer_type
            )));
        }
        let load = || -> candle_core::Result<ResNet> {
            let stem = ConvLayer::load(
                cfg.num_channels,
                cfg.embedding_size,
                7,
                2,
                Some(act),
                vb.pp("embedder.embedder"),
            )?;
            let mut blocks = Vec::new();
            let mut c_in = cfg.embedding_size;
            for (s, (&c_out, &depth)) in cfg.hidden_sizes.iter().zip(&cfg.depths).enumerate() {
                let stride = if s > 0 || cfg.downsample_in_first_stage {
                    2
                } else {
                    1
                };
                for d in 0..depth {
                    let vb = vb.pp(format!("encoder.stages.{s}.layers.{d}"));
                    let (ci, st) = if d == 0 { (c_in, stride) } else { (c_out, 1) };
                    blocks.push(Block::load(&cfg, ci, c_out, st, act, vb)?);
                }
                c_in = c_out;
            }
            Ok(ResNet { stem, blocks })
        };
        Ok(Box::new(load().context(format!(
            "loading the ResNet of {}",
            config.path.display()
        ))?))
    }
}
