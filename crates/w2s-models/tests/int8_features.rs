//! `--dtype int8` probe features stay close to the f32 ones on real rows of the demo's dataset,
//! for an encoder (safetensors: its f32 weights quantized to 32-element blocks) and a GGUF
//! decoder (whose Q8_0/Q5_0/Q4_0 blocks pack exactly). Its own test binary: it flips the
//! process-wide int8 switch.
mod common;

use candle_core::{DType, Device};
use w2s_assets::Store;
use w2s_models::{resolve, Encoder, LoadRequest, Train, WeightDtype};

fn features(model: &str, texts: &[&str], dtype: WeightDtype) -> (Vec<f32>, usize) {
    let dev = Device::Cpu;
    let source = resolve(model, &Store::open()).expect("model fetched");
    let load = LoadRequest {
        device: &dev,
        dtype: dtype.load_dtype(&dev),
        train: Train::Nothing,
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
    WeightDtype::F32.load_dtype(&dev);
    (values, width)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
    dot / (na * nb)
}

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
        let (f32s, width) = features(model, &texts, WeightDtype::F32);
        let (int8s, _) = features(model, &texts, WeightDtype::Int8);
        assert_ne!(f32s, int8s, "{model}: int8 gave the f32 features exactly");
        let cos: Vec<f64> = f32s
            .chunks(width)
            .zip(int8s.chunks(width))
            .map(|(a, b)| cosine(a, b))
            .collect();
        let worst = cos.iter().copied().fold(1f64, f64::min);
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        eprintln!(
            "{model} (int8 on {kernel}): per-row cosine to f32: lowest {worst:.6}, mean {mean:.6}"
        );
        assert!(worst > floor, "{model}: a row's cosine to f32 is {worst}");
    }
}
