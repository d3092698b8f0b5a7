//! Pooled features of images, cached and committed in chunks exactly as text features are (the
//! same [`Chunks`], so a killed pass resumes after its last chunk).
//!
//! An image model is a vision backbone (built in or a Hugging Face folder, see
//! [`crate::vision`]) or `pixels`: the image itself, resized to [`PIXELS_SIDE`]² RGB and scaled
//! to [0, 1]. A linear probe on raw pixels is the weak supervisor the paper's vision setting
//! needs: no pretraining, and weak by construction.
use super::{
    fill_chunks, sanitize, share_of, whole, Chunks, EmbedProgress, Features, Filled, Share,
    ShareReport, FEATURE_VERSION,
};
use crate::error::{ModelError, Result};
use crate::vision::{resolve_vision, VisionModel};
use candle_core::Device;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The name of the raw-pixel image model.
pub const PIXELS: &str = "pixels";
/// The side, in pixels, images are resized to for [`PIXELS`] (Fashion-MNIST's own size).
pub const PIXELS_SIDE: u32 = 28;

/// An image model, resolved: where its weights are and their identity.
#[derive(Debug, Clone)]
pub struct ImageModel {
    /// The name it was given.
    pub name: String,
    /// The backbone's folder; `None` for [`PIXELS`].
    pub dir: Option<PathBuf>,
    /// Identity of the weights and image processing, for cache and store keys.
    pub fingerprint: String,
}

impl ImageModel {
    /// `pixels`, a built-in vision backbone (fetched if needed) or a Hugging Face vision folder.
    pub fn resolve(name: &str, store: &w2s_assets::Store) -> Result<ImageModel> {
        if name == PIXELS {
            return Ok(ImageModel {
                name: name.to_string(),
                dir: None,
                fingerprint: format!("pixels-{PIXELS_SIDE}-triangle"),
            });
        }
        let dir = resolve_vision(name, store)?;
        let mut files = vec![dir.join("preprocessor_config.json")];
        files.extend(
            ["model.safetensors", "model.safetensors.index.json"]
                .iter()
                .map(|f| dir.join(f))
                .filter(|f| f.is_file()),
        );
        Ok(ImageModel {
            name: name.to_string(),
            fingerprint: crate::registry::fingerprint(&dir.join("config.json"), &files)?,
            dir: Some(dir),
        })
    }

    /// Whether `name` names an image model without resolving it: `pixels`, a built-in vision
    /// backbone or a vision folder.
    pub fn is_image_model(name: &str) -> bool {
        name == PIXELS
            || crate::vision::vision_builtin(name).is_some()
            || crate::vision::is_vision_folder(Path::new(name))
    }
}

/// The images to embed, as the cache sees them.
pub struct ImageRows<'a> {
    /// The dataset's name.
    pub name: &'a str,
    /// The hash of its rows' content (the images' bytes included).
    pub version: &'a str,
    /// How many rows.
    pub count: usize,
    /// Row `i`'s image; an error names the file.
    pub load: &'a dyn Fn(usize) -> std::result::Result<RgbImage, String>,
}

/// What to embed.
pub struct ImageFeatureRequest<'a> {
    /// The model.
    pub model: &'a ImageModel,
    /// The rows.
    pub dataset: ImageRows<'a>,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Rows per committed chunk (see [`super::DEFAULT_CHUNK_ROWS`]).
    pub chunk_rows: usize,
}

impl ImageFeatureRequest<'_> {
    /// The cache key: a hash of everything the features depend on.
    pub fn key_on(&self, device: &Device) -> String {
        let mut desc = serde_json::json!({
            "v": FEATURE_VERSION,
            "images": true,
            "model": self.model.name,
            "weights": self.model.fingerprint,
            "dataset": self.dataset.name,
            "data_version": self.dataset.version,
        });
        if !device.is_cpu() && self.model.dir.is_some() {
            desc["device"] = format!("{:?}", device.location()).into();
        }
        w2s_assets::cache::sha256_bytes(desc.to_string().as_bytes())[..16].to_string()
    }

    /// Where the features live under the cache root.
    pub fn path_on(&self, root: &Path, device: &Device) -> PathBuf {
        root.join("features")
            .join(sanitize(&self.model.name))
            .join(format!(
                "{}-images-{}.safetensors",
                sanitize(self.dataset.name),
                self.key_on(device)
            ))
    }
}

/// The features of every image, from the cache when present, else computed chunk by chunk
/// (resuming after the last complete chunk of a killed pass) and cached.
pub fn cached_image_features(
    root: &Path,
    req: &ImageFeatureRequest,
    device: &Device,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<Features> {
    let chunks = req.chunks(root, device);
    whole(&chunks, &mut |chunks, share| {
        fill_images(chunks, req, device, share, progress)
    })
}

/// One share of the image features (see [`Share`]), assembled into the cached file when every
/// share's chunks are there, as [`super::feature_share`] does for texts.
pub fn image_feature_share(
    root: &Path,
    req: &ImageFeatureRequest,
    device: &Device,
    share: Share,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<ShareReport> {
    let chunks = req.chunks(root, device);
    share_of(&chunks, share, &mut |chunks, share| {
        fill_images(chunks, req, device, share, progress)
    })
}

impl ImageFeatureRequest<'_> {
    /// How many chunks the computation is committed in.
    pub fn chunk_count(&self) -> usize {
        Chunks::of(
            PathBuf::new(),
            self.dataset.count,
            self.batch_size,
            self.chunk_rows,
        )
        .count()
    }

    /// The chunk files of the computation.
    fn chunks(&self, root: &Path, device: &Device) -> Chunks {
        Chunks::of(
            self.path_on(root, device),
            self.dataset.count,
            self.batch_size,
            self.chunk_rows,
        )
    }
}

/// Embeds the chunks of `share` not on disk yet, loading the backbone only when one is missing.
fn fill_images(
    chunks: &Chunks,
    req: &ImageFeatureRequest,
    device: &Device,
    share: Share,
    progress: &mut dyn FnMut(EmbedProgress),
) -> Result<Filled> {
    let what = format!("{} on {}", req.model.name, req.dataset.name);
    fill_chunks(chunks, share, &what, progress, &mut |missing, on_batch| {
        let backbone = match &req.model.dir {
            Some(dir) => Some(VisionModel::load(dir, device)?),
            None => None,
        };
        // Every row is one "token" long, so the chunks keep dataset order.
        let ids: Vec<Vec<u32>> = (0..req.dataset.count as u32).map(|i| vec![i]).collect();
        let mut embed = |batch: &[Vec<u32>]| -> Result<Vec<Vec<f32>>> {
            let images = batch
                .iter()
                .map(|i| {
                    (req.dataset.load)(i[0] as usize).map_err(|reason| ModelError::Cache {
                        path: PathBuf::from(req.dataset.name),
                        reason,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(match &backbone {
                Some(model) => {
                    let flat = model.embed(&images)?;
                    flat.chunks(model.dim).map(<[f32]>::to_vec).collect()
                }
                None => images.iter().map(pixel_features).collect(),
            })
        };
        chunks.compute(&ids, missing, req.batch_size, &mut embed, on_batch)
    })
}

/// `pixels`' features: the image resized to [`PIXELS_SIDE`]² (triangle filter), RGB in [0, 1].
pub fn pixel_features(img: &RgbImage) -> Vec<f32> {
    let small = if img.dimensions() == (PIXELS_SIDE, PIXELS_SIDE) {
        img.clone()
    } else {
        image::imageops::resize(
            img,
            PIXELS_SIDE,
            PIXELS_SIDE,
            image::imageops::FilterType::Triangle,
        )
    };
    small.as_raw().iter().map(|&v| v as f32 / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_features_are_the_scaled_pixels_at_their_own_size() {
        let img = RgbImage::from_fn(PIXELS_SIDE, PIXELS_SIDE, |x, y| {
            image::Rgb([x as u8, y as u8, 255])
        });
        let f = pixel_features(&img);
        assert_eq!(f.len(), (PIXELS_SIDE * PIXELS_SIDE * 3) as usize);
        // Row 1, column 2: (2, 1, 255) / 255.
        let at = ((PIXELS_SIDE + 2) * 3) as usize;
        assert_eq!(&f[at..at + 3], &[2.0 / 255.0, 1.0 / 255.0, 1.0]);
        // Another size is resized to the same width.
        assert_eq!(pixel_features(&RgbImage::new(50, 40)).len(), f.len());
    }

    #[test]
    fn features_resume_after_a_lost_chunk_and_match_a_clean_pass() {
        let dir = tempfile::tempdir().unwrap();
        let model = ImageModel {
            name: PIXELS.into(),
            dir: None,
            fingerprint: "p".into(),
        };
        let load = |i: usize| -> std::result::Result<RgbImage, String> {
            Ok(RgbImage::from_fn(PIXELS_SIDE, PIXELS_SIDE, |x, y| {
                image::Rgb([(x * 7 + i as u32) as u8, y as u8, (i * 3) as u8])
            }))
        };
        let req = ImageFeatureRequest {
            model: &model,
            dataset: ImageRows {
                name: "toy",
                version: "v1",
                count: 10,
                load: &load,
            },
            batch_size: 2,
            chunk_rows: 4,
        };
        let mut events = Vec::new();
        let first =
            cached_image_features(dir.path(), &req, &Device::Cpu, &mut |p| events.push(p)).unwrap();
        assert!(!first.from_cache);
        assert_eq!((first.rows, first.dim), (10, 2352));
        assert_eq!(
            first.values[2352 * 3..2352 * 4],
            pixel_features(&load(3).unwrap())
        );
        // A second request reads the file.
        let again = cached_image_features(dir.path(), &req, &Device::Cpu, &mut |_| {}).unwrap();
        assert!(again.from_cache);
        assert_eq!(again.values, first.values);
        // A pass killed after its first chunk: the rerun resumes it and gives the same numbers.
        let path = req.path_on(dir.path(), &Device::Cpu);
        std::fs::remove_file(&path).unwrap();
        let chunks = Chunks::of(path.clone(), 10, 2, 4);
        let index: Vec<u32> = (0..4).collect();
        chunks
            .write(0, &index, &first.values[..4 * 2352], 2352)
            .unwrap();
        let mut resumed = Vec::new();
        let third = cached_image_features(dir.path(), &req, &Device::Cpu, &mut |p| resumed.push(p))
            .unwrap();
        assert_eq!(third.resumed, 4);
        assert_eq!(resumed[0].resumed, 4);
        assert_eq!(third.values, first.values);
        // Two shares, each computed alone: the second to finish assembles the same features.
        std::fs::remove_file(&path).unwrap();
        let half = |index| Share {
            index,
            count: 2,
            offset: 0,
        };
        let one =
            image_feature_share(dir.path(), &req, &Device::Cpu, half(1), &mut |_| {}).unwrap();
        assert!(one.features.is_none());
        assert_eq!((one.rows, one.computed), (4, 4));
        let zero =
            image_feature_share(dir.path(), &req, &Device::Cpu, half(0), &mut |_| {}).unwrap();
        assert_eq!(zero.rows, 6);
        assert_eq!(zero.features.unwrap().values, first.values);
        assert!(image_feature_share(dir.path(), &req, &Device::Cpu, half(2), &mut |_| {}).is_err());
        // An unreadable image is an error that says so.
        let bad = |_: usize| -> std::result::Result<RgbImage, String> {
            Err("x.png: not a readable image".into())
        };
        let req = ImageFeatureRequest {
            dataset: ImageRows {
                name: "bad",
                version: "v1",
                count: 3,
                load: &bad,
            },
            ..req
        };
        let err = cached_image_features(dir.path(), &req, &Device::Cpu, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
    }
}
