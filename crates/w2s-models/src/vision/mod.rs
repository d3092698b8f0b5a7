//! Vision backbones as frozen feature extractors: Hugging Face checkpoints of ViT, DINOv2,
//! ResNet, ConvNeXt and CLIP's vision tower (`config.json` + safetensors +
//! `preprocessor_config.json`), and the built-in EfficientNet-Lite, each in one file listed in
//! [`VISION_ARCHITECTURES`], and the image processing of [`preprocess`].
//!
//! An image's feature is the pooled output transformers defines for the architecture: for ViT
//! and DINOv2 the CLS token after the final LayerNorm, for ResNet, ConvNeXt and CLIP
//! `pooler_output`.
pub mod clip;
pub mod convnext;
pub mod dinov2;
pub mod efficientnet;
pub mod layers;
pub mod preprocess;
pub mod resnet;
pub mod vit;

pub use crate::arch::ConfigFile;
use crate::error::{CandleContext, ModelError, Result};
use crate::weights::{shards_of_index, Checkpoint, Loader};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
pub use preprocess::ImageProcessor;
use std::path::{Path, PathBuf};

/// A loaded vision backbone: `pixel_values` in, pooled features out.
pub trait VisionBackbone: Send + Sync {
    /// `[b, channels, h, w]` → `[b, dim]`.
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor>;
    /// The only input size the model accepts, when it has one (ViT's fixed position table).
    fn input_size(&self) -> Option<(usize, usize)>;
}

/// One vision architecture family: how to read its config and build its backbone.
pub trait VisionArchitecture: Sync {
    /// The `model_type` values of `config.json` this file reads (the first is its name).
    fn model_types(&self) -> &'static [&'static str];
    /// A tensor name below the model root that finds the root (`vit.`, `resnet.`, or none).
    fn anchor(&self) -> &'static str;
    /// What the feature is, for help and docs.
    fn pooled(&self) -> &'static str;
    /// Width of the features.
    fn dim(&self, config: &ConfigFile) -> Result<usize>;
    /// Builds the backbone (`vb` rooted at the model root).
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn VisionBackbone>>;
}

/// Every vision architecture.
pub static VISION_ARCHITECTURES: &[&dyn VisionArchitecture] = &[
    &vit::ViTArch,
    &dinov2::Dinov2Arch,
    &resnet::ResNetArch,
    &convnext::ConvNextArch,
    &efficientnet::EfficientNetLiteArch,
    &clip::ClipArch,
];

/// Every supported vision `model_type`, comma-separated (for errors and help).
pub fn supported_vision_types() -> String {
    VISION_ARCHITECTURES
        .iter()
        .flat_map(|a| a.model_types().iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A built-in vision backbone (fetched as an asset of the same name).
#[derive(Debug, Clone, Copy)]
pub struct VisionBuiltin {
    /// Command-line name and asset name.
    pub name: &'static str,
    /// Parameters, in millions (the report orders models by it).
    pub params_millions: f64,
}

/// The built-in vision backbones, weakest first.
pub const VISION_BUILTIN: &[VisionBuiltin] = &[
    VisionBuiltin {
        name: "efficientnet-lite0",
        params_millions: 4.7,
    },
    VisionBuiltin {
        name: "efficientnet-lite2",
        params_millions: 6.1,
    },
];

/// The built-in vision backbone `name`, if it is one.
pub fn vision_builtin(name: &str) -> Option<&'static VisionBuiltin> {
    VISION_BUILTIN.iter().find(|b| b.name == name)
}

/// The built-in vision backbones' names, comma-separated (for help and errors).
pub fn vision_builtin_names() -> String {
    VISION_BUILTIN
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The folder of a vision model: a built-in name (fetched if needed) or a Hugging Face vision
/// folder.
pub fn resolve_vision(name: &str, store: &w2s_assets::Store) -> Result<PathBuf> {
    if vision_builtin(name).is_some() {
        return Ok(store.ensure(name)?);
    }
    let dir = Path::new(name);
    if dir.is_dir() && is_vision_folder(dir) {
        return Ok(dir.to_path_buf());
    }
    Err(ModelError::Config {
        path: dir.to_path_buf(),
        reason: format!(
            "not a vision model: use {} or a folder with config.json (model_type one of {}), model.safetensors and preprocessor_config.json",
            vision_builtin_names(),
            supported_vision_types()
        ),
    })
}

/// Whether `dir` holds a vision checkpoint: a `config.json` whose `model_type` is a vision one.
pub fn is_vision_folder(dir: &Path) -> bool {
    ConfigFile::read(&dir.join("config.json"))
        .ok()
        .and_then(|c| c.model_type().ok().map(str::to_string))
        .is_some_and(|t| {
            VISION_ARCHITECTURES
                .iter()
                .any(|a| a.model_types().contains(&t.as_str()))
        })
}

/// A vision model ready to embed images.
pub struct VisionModel {
    backbone: Box<dyn VisionBackbone>,
    /// Its image processing.
    pub processor: ImageProcessor,
    /// Its architecture.
    pub arch: &'static dyn VisionArchitecture,
    /// Feature width.
    pub dim: usize,
    /// The folder it was read from.
    pub dir: PathBuf,
    device: Device,
}

impl VisionModel {
    /// Reads a Hugging Face vision folder: `config.json`, `model.safetensors` (or the shards of
    /// `model.safetensors.index.json`) and `preprocessor_config.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<VisionModel> {
        let config = ConfigFile::read(&dir.join("config.json"))?;
        let model_type = config.model_type()?;
        let arch = VISION_ARCHITECTURES
            .iter()
            .copied()
            .find(|a| a.model_types().contains(&model_type))
            .ok_or_else(|| {
                config.error(format!(
                    "model_type {model_type:?} is not a vision architecture w2s reads; supported: {}",
                    supported_vision_types()
                ))
            })?;
        let files = if dir.join("model.safetensors").is_file() {
            vec![dir.join("model.safetensors")]
        } else if dir.join("model.safetensors.index.json").is_file() {
            shards_of_index(&dir.join("model.safetensors.index.json"))?
        } else {
            return Err(ModelError::Config {
                path: dir.to_path_buf(),
                reason: "no model.safetensors or model.safetensors.index.json (PyTorch .bin files are not read: convert them to safetensors)".into(),
            });
        };
        let processor_file = dir.join("preprocessor_config.json");
        if !processor_file.is_file() {
            return Err(ModelError::Config {
                path: processor_file,
                reason: "missing: a vision model needs its image processing settings".into(),
            });
        }
        let processor = ImageProcessor::read(&processor_file)?;
        let checkpoint = Checkpoint::safetensors(&files, device)?;
        let root = checkpoint.root(arch.anchor())?;
        let loader = Loader::new(&checkpoint, root, DType::F32, None);
        let vb = VarBuilder::from_backend(Box::new(loader), DType::F32, device.clone());
        let backbone = arch.load(&config, vb)?;
        Ok(VisionModel {
            dim: arch.dim(&config)?,
            backbone,
            processor,
            arch,
            dir: dir.to_path_buf(),
            device: device.clone(),
        })
    }

    /// Pooled features of `images` as `[n, dim]` row-major. Images that come out of the
    /// processor at different sizes are run in separate batches.
    pub fn embed(&self, images: &[RgbImage]) -> Result<Vec<f32>> {
        let mut pixels = Vec::with_capacity(images.len());
        for img in images {
            pixels.push(self.processor.pixel_values(img)?);
        }
        let mut out = vec![0f32; images.len() * self.dim];
        let mut i = 0;
        while i < pixels.len() {
            let (_, h, w) = pixels[i];
            let mut j = i;
            while j < pixels.len() && (pixels[j].1, pixels[j].2) == (h, w) {
                j += 1;
            }
            let flat: Vec<f32> = pixels[i..j]
                .iter()
                .flat_map(|p| p.0.iter().copied())
                .collect();
            let x = Tensor::from_vec(flat, (j - i, 3, h, w), &self.device)
                .context("building pixel values")?;
            let y = self
                .backbone
                .forward(&x)
                .and_then(|y| y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
                .context(format!("embedding images with {}", self.dir.display()))?;
            out[i * self.dim..j * self.dim].copy_from_slice(&y);
            i = j;
        }
        Ok(out)
    }

    /// The size images must come out of the processor at, when the model has one.
    pub fn input_size(&self) -> Option<(usize, usize)> {
        self.backbone.input_size()
    }
}
