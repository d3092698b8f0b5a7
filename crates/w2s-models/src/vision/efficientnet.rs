//! EfficientNet-Lite (`model_type` "efficientnet-lite", the built-in vision ladder): the
//! TensorFlow-Lite variants of EfficientNet (ReLU6, no squeeze-and-excitation, stem and head not
//! scaled) in the PyTorch port's tensor names (`_conv_stem`, `_blocks.N._depthwise_conv`, …).
//! Convolutions pad as TensorFlow's "SAME" does (the extra row or column on the bottom/right).
//! The image's feature is the global average of the head's 1280 channels, before the classifier.
//!
//! The blocks are read off the weights: a block expands when it has `_expand_conv`, its kernel is
//! its depthwise kernel's, its channels its projection's. Strides are not in the weights: the
//! first block of each of the 7 stages (a stage starts where the output width changes) takes the
//! stage's stride from EfficientNet's table.
use super::layers::{global_average, BatchNorm, Conv2d, ConvSpec};
use super::{ConfigFile, VisionArchitecture, VisionBackbone};
use crate::error::{CandleContext, Result};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of the `config.json` written at fetch time.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The input size the model was trained at.
    pub image_size: usize,
    /// Batch-norm epsilon (the TensorFlow port's 1e-3).
    #[serde(default = "eps3")]
    pub batch_norm_eps: f64,
}

fn eps3() -> f64 {
    1e-3
}

/// Strides of EfficientNet's 7 stages.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// A convolution with TensorFlow "SAME" padding, then batch norm (folded into the convolution).
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    kernel: usize,
    stride: usize,
}

impl ConvBn {
    fn load(
        spec: ConvSpec,
        eps: f64,
        conv: VarBuilder,
        bn: VarBuilder,
    ) -> candle_core::Result<ConvBn> {
        let norm = BatchNorm::load_eps(spec.c_out, eps, bn)?;
        Ok(ConvBn {
            conv: Conv2d::load(
                ConvSpec {
                    bias: false,
                    padding: 0,
                    ..spec
                },
                conv,
            )?
            .fold(&norm)?,
            kernel: spec.kernel,
            stride: spec.stride,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let pad = |n: usize| {
            let out = n.div_ceil(self.stride);
            ((out - 1) * self.stride + self.kernel).saturating_sub(n)
        };
        let (ph, pw) = (pad(h), pad(w));
        let x = x
            .pad_with_zeros(2, ph / 2, ph - ph / 2)?
            .pad_with_zeros(3, pw / 2, pw - pw / 2)?;
        self.conv.forward(&x)
    }
}

fn relu6(x: &Tensor) -> candle_core::Result<Tensor> {
    x.clamp(0f32, 6f32)
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = relu6(&e.forward(&y)?)?;
        }
        y = relu6(&self.depthwise.forward(&y)?)?;
        y = self.project.forward(&y)?;
        if self.skip {
            y = (y + x)?;
        }
        Ok(y)
    }
}

/// A loaded EfficientNet-Lite.
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
}

impl VisionBackbone for EfficientNetLite {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = relu6(&self.stem.forward(pixels)?)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        global_average(&relu6(&self.head.forward(&x)?)?)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        None
    }
}

/// EfficientNet-Lite's entry in [`super::VISION_ARCHITECTURES`].
pub struct EfficientNetLiteArch;

impl VisionArchitecture for EfficientNetLiteArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["efficientnet-lite"]
    }
    fn anchor(&self) -> &'static str {
        "_conv_stem.weight"
    }
    fn pooled(&self) -> &'static str {
        "the global average of the head (1280 channels)"
    }
    fn dim(&self, _config: &ConfigFile) -> Result<usize> {
        Ok(1280)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn VisionBackbone>> {
        let cfg: Config = config.parse()?;
        let eps = cfg.batch_norm_eps;
        let load = || -> candle_core::Result<EfficientNetLite> {
            let stem_w = vb.get_unchecked("_conv_stem.weight")?;
            let stem_out = stem_w.dim(0)?;
            let stem = ConvBn::load(
                ConvSpec::new(3, stem_out, 3, 2),
                eps,
                vb.pp("_conv_stem"),
                vb.pp("_bn0"),
            )?;
            let mut blocks = Vec::new();
            let (mut c_in, mut stage, mut prev_out) = (stem_out, 0usize, None);
            let mut i = 0;
            while vb.contains_tensor(&format!("_blocks.{i}._depthwise_conv.weight")) {
                let b = vb.pp(format!("_blocks.{i}"));
                let dw = b.get_unchecked("_depthwise_conv.weight")?;
                let (mid, kernel) = (dw.dim(0)?, dw.dim(2)?);
                let c_out = b.get_unchecked("_project_conv.weight")?.dim(0)?;
                if prev_out.is_some_and(|p| p != c_out) {
                    stage += 1;
                }
                let first_of_stage = prev_out != Some(c_out);
                let stride = if first_of_stage {
                    *STAGE_STRIDES.get(stage).ok_or_else(|| {
                        candle_core::Error::Msg(format!("block {i}: more than 7 stages"))
                    })?
                } else {
                    1
                };
                let expand = if b.contains_tensor("_expand_conv.weight") {
                    Some(ConvBn::load(
                        ConvSpec::new(c_in, mid, 1, 1),
                        eps,
                        b.pp("_expand_conv"),
                        b.pp("_bn0"),
                    )?)
                } else {
                    None
                };
                let depthwise = ConvBn::load(
                    ConvSpec {
                        groups: mid,
                        ..ConvSpec::new(mid, mid, kernel, stride)
                    },
                    eps,
                    b.pp("_depthwise_conv"),
                    b.pp("_bn1"),
                )?;
                let project = ConvBn::load(
                    ConvSpec::new(mid, c_out, 1, 1),
                    eps,
                    b.pp("_project_conv"),
                    b.pp("_bn2"),
                )?;
                blocks.push(Block {
                    expand,
                    depthwise,
                    project,
                    skip: stride == 1 && c_in == c_out,
                });
                c_in = c_out;
                prev_out = Some(c_out);
                i += 1;
            }
            if blocks.is_empty() {
                candle_core::bail!("no _blocks.0._depthwise_conv.weight: not an EfficientNet");
            }
            let head = ConvBn::load(
                ConvSpec::new(c_in, 1280, 1, 1),
                eps,
                vb.pp("_conv_head"),
                vb.pp("_bn1"),
            )?;
            Ok(EfficientNetLite { stem, blocks, head })
        };
        Ok(Box::new(load().context(format!(
            "loading the EfficientNet-Lite of {}",
            config.path.display()
        ))?))
    }
}
