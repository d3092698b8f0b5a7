//! Trained layers of every architecture run as taped regions, and the taped backward gives the
//! gradients of candle's graph over the composed ops it replaces: every parameter of every tiny
//! Hugging Face fixture (tests/reference/hf/), within 1e-4 of the gradient's largest magnitude
//! (or of a thousandth of the model's largest, for gradients that are zero in exact arithmetic).
//! Its own test binary: it flips the process-wide fused-kernel switch.
mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::hf_fixtures as fixtures;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

/// Layers in the fixture's config (`num_hidden_layers`, or GPT-2's `n_layer`).
fn layers(dir: &Path) -> usize {
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let text = cfg.get("text_config").unwrap_or(&cfg);
    text.get("num_hidden_layers")
        .or_else(|| text.get("n_layer"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{}: no layer count", dir.display())) as usize
}

/// Each trainable tensor's gradient (by name) for a two-class cross-entropy through a fixed head
/// on the pooled outputs of a few texts (left and right padding both occur), and how many
/// layers ran taped.
fn gradients(dir: &Path, fused: bool) -> (BTreeMap<String, Vec<f32>>, usize) {
    w2s_kernels::set_enabled(fused);
    let dev = Device::Cpu;
    let source = resolve(dir.to_str().unwrap(), &Store::open()).unwrap();
    let varmap = VarMap::new();
    let enc = Encoder::load_trainable(&source, &varmap, &dev).unwrap();
    let texts = [
        "the film was a delight from start to finish",
        "dull",
        "a lifeless and overlong mess, badly acted",
    ];
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| enc.tokenizer.encode(t, 32).unwrap())
        .collect();
    let (ids, mask) = enc.pad_batch(&rows).unwrap();
    let before = w2s_kernels::tape::taped_layers();
    let pooled = enc
        .pool(&enc.hidden_states(&ids, &mask).unwrap(), &mask)
        .unwrap();
    let taped = w2s_kernels::tape::taped_layers() - before;
    // A fixed head with distinct weights, so every pooled dimension matters to the loss.
    let head: Vec<f32> = (0..2 * enc.hidden)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
        .collect();
    let head = Tensor::from_vec(head, (2, enc.hidden), &dev).unwrap();
    let logits = pooled
        .to_dtype(DType::F32)
        .unwrap()
        .matmul(&head.t().unwrap())
        .unwrap();
    let labels = Tensor::new(&[1u32, 0, 1], &dev).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = w2s_kernels::backward(&loss).unwrap();
    w2s_kernels::set_enabled(true);
    let data = varmap.data().lock().unwrap();
    let by_name = data
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", dir.display()));
            let g = g.flatten_all().unwrap().to_dtype(DType::F32).unwrap();
            (name.clone(), g.to_vec1().unwrap())
        })
        .collect();
    (by_name, taped)
}

#[test]
fn every_architecture_trains_taped_with_candles_gradients() {
    let dirs = fixtures();
    assert!(dirs.len() >= 10, "fixtures: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (taped, ran) = gradients(&dir, true);
        assert_eq!(ran, layers(&dir), "{name}: layers run taped");
        let (composed, none) = gradients(&dir, false);
        assert_eq!(none, 0, "{name}: the composed path taped a layer");
        assert_eq!(
            taped.keys().collect::<Vec<_>>(),
            composed.keys().collect::<Vec<_>>(),
            "{name}: trainable tensors"
        );
        // A key bias's gradient is zero in exact arithmetic (a constant added to a query's
        // scores leaves its softmax unchanged), so each tensor's difference is measured against
        // its own largest magnitude or a thousandth of the model's, whichever is larger.
        let magnitude = |g: &[f32]| g.iter().fold(0f32, |m, v| m.max(v.abs()));
        let model = composed.values().map(|g| magnitude(g)).fold(0f32, f32::max);
        assert!(model > 0.0, "{name}: every gradient is zero");
        let mut worst_of_model = 0f32;
        for (var, want) in &composed {
            let got = &taped[var];
            let scale = magnitude(want).max(1e-3 * model);
            let worst = got
                .iter()
                .zip(want)
                .map(|(a, b)| {
                    if a.is_nan() {
                        f32::INFINITY
                    } else {
                        (a - b).abs()
                    }
                })
                .fold(0f32, f32::max)
                / scale;
            assert!(
                worst < 1e-4,
                "{name}: {var}: taped gradient differs from candle's by {worst:e} (relative)"
            );
            worst_of_model = worst_of_model.max(worst);
        }
        eprintln!(
            "{name}: {ran} layers taped, worst relative gradient difference {worst_of_model:.1e}"
        );
    }
}
