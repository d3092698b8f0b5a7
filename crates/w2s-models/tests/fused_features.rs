//! Probe-mode features are the same with the fused CPU kernels and with the composed candle path
//! they replace (within 1e-5 relative), on real rows of the demo's dataset, for the demo's weak
//! and strong models and a decoder. Its own test binary: it flips the process-wide switch.
mod common;

use candle_core::Device;
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

fn features(model: &str, texts: &[&str], fused: bool) -> Vec<f32> {
    w2s_kernels::set_enabled(fused);
    let source = resolve(model, &Store::open()).expect("model fetched");
    let enc = Encoder::load(&source, &Device::Cpu).unwrap();
    let out = enc.embed(texts, 128).unwrap();
    w2s_kernels::set_enabled(true);
    out.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn fused_and_composed_features_agree() {
    let tweets = common::tweets(24);
    let texts: Vec<&str> = tweets.iter().map(String::as_str).collect();
    for model in ["minilm-l3", "mpnet-base", "smollm2-135m"] {
        let fused = features(model, &texts, true);
        let composed = features(model, &texts, false);
        let scale = composed.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = fused
            .iter()
            .zip(&composed)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        eprintln!("{model}: worst relative feature difference {worst:.2e}");
        assert!(
            worst < 1e-5,
            "{model}: features differ by {worst:e} (relative)"
        );
    }
}
