//! Helpers shared by the integration tests of this crate (each test file includes the ones it
//! uses; the rest are dead code there).
#![allow(dead_code)]
use candle_core::backprop::GradStore;
use candle_core::{DType, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde_json::Value;
use std::path::{Path, PathBuf};
use w2s_models::Encoder;

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Gradients of a two-class cross-entropy through a randomly initialised head (in `varmap`, as
/// `head.*`) on the pooled outputs of `rows`. With the paper's zero head the backbone's first
/// gradient would be 0.
pub fn classification_grads(
    enc: &Encoder,
    varmap: &VarMap,
    rows: &[Vec<u32>],
    labels: &[u32],
) -> GradStore {
    let dev = enc.device().clone();
    let head = candle_nn::linear(
        enc.hidden,
        2,
        VarBuilder::from_varmap(varmap, DType::F32, &dev).pp("head"),
    )
    .unwrap();
    let (ids, mask) = enc.pad_batch(rows).unwrap();
    let pooled = enc
        .pool(&enc.hidden_states(&ids, &mask).unwrap(), &mask)
        .unwrap();
    let labels = Tensor::new(labels, &dev).unwrap();
    let loss = candle_nn::loss::cross_entropy(&head.forward(&pooled).unwrap(), &labels).unwrap();
    w2s_kernels::backward(&loss).unwrap()
}

/// The variables of `varmap` whose gradient is missing, zero or not finite, as `name (|g|₁)`,
/// sorted.
pub fn without_gradient(varmap: &VarMap, grads: &GradStore) -> Vec<String> {
    let data = varmap.data().lock().unwrap();
    let mut missing: Vec<String> = data
        .iter()
        .filter_map(|(name, var)| {
            let norm = grads
                .get(var.as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                })
                .unwrap_or(0.0);
            (!(norm > 0.0 && norm.is_finite())).then(|| format!("{name} ({norm})"))
        })
        .collect();
    missing.sort();
    missing
}

/// The tiny Hugging Face checkpoints under tests/reference/hf/ (each with its reference.json),
/// sorted.
pub fn hf_fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/hf");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The first `n` texts of the demo's `tweets` dataset (fetched into the cache).
pub fn tweets(n: usize) -> Vec<String> {
    let ds = w2s_data::load("tweets", &w2s_assets::Store::open()).expect("dataset fetched");
    ds.examples.into_iter().take(n).map(|r| r.text).collect()
}

/// Cosine of two vectors, in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

/// Pooled features of `texts` (≤ 128 tokens) by the built-in `model` loaded frozen in `dtype`,
/// as f32 values and the feature width; the process-wide product switches are put back to f32's
/// afterwards.
pub fn features_in(
    model: &str,
    texts: &[&str],
    dtype: w2s_models::WeightDtype,
) -> (Vec<f32>, usize) {
    let dev = candle_core::Device::Cpu;
    let source = w2s_models::resolve(model, &w2s_assets::Store::open()).expect("model fetched");
    let load = w2s_models::LoadRequest {
        device: &dev,
        dtype: dtype.load_dtype(&dev),
        train: w2s_models::Train::Nothing,
    };
    let enc = Encoder::load_with(&source, &load).unwrap();
    let out = enc.embed(texts, 128).unwrap();
    let width = out.dim(1).unwrap();
    let values = out
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    w2s_models::WeightDtype::F32.load_dtype(&dev);
    (values, width)
}
