//! `--dtype int8` probe features stay close to the f32 ones on real rows of the demo's dataset,
//! for an encoder (safetensors: its f32 weights quantized to 32-element blocks) and a GGUF
//! decoder (whose Q8_0/Q5_0/Q4_0 blocks pack exactly). Its own test binary: it flips the
//! process-wide int8 switch.
mod common;

use candle_core::{DType, Device};
use w2s_models::WeightDtype;

#[test]
fn int8_features_are_close_to_f32() {
    let dev = Device::Cpu;
    assert_eq!(WeightDtype::Int8.load_dtype(&dev), DType::F32);
    assert!(w2s_kernels::int8::active().is_some());
    assert_eq!(WeightDtype::F32.load_dtype(&dev), DType::F32);
    assert!(w2s_kernels::int8::active().is_none());
    let kernel = w2s_kernels::int8::best_kernel().name();
    let tweets = common::tweets(16);
    let texts: Vec<&str> = tweets.iter().map(String::as_str).collect();
    for (model, floor) in [("minilm-l3", 0.999), ("smollm2-135m", 0.998)] {
        let (f32s, width) = common::features_in(model, &texts, WeightDtype::F32);
        let (int8s, _) = common::features_in(model, &texts, WeightDtype::Int8);
        assert_ne!(f32s, int8s, "{model}: int8 gave the f32 features exactly");
        let cos: Vec<f64> = f32s
            .chunks(width)
            .zip(int8s.chunks(width))
            .map(|(a, b)| common::cosine(a, b))
            .collect();
        let worst = cos.iter().copied().fold(1f64, f64::min);
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        eprintln!(
            "{model} (int8 on {kernel}): per-row cosine to f32: lowest {worst:.6}, mean {mean:.6}"
        );
        assert!(worst > floor, "{model}: a row's cosine to f32 is {worst}");
    }
}
