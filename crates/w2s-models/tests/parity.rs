//! Parity of our encoders with independent reference embeddings (tests/reference/make_reference.py):
//! token ids must be identical, and mean-pooled embeddings must match by cosine similarity.
//! The models are fetched into $W2S_HOME on first use.
use candle_core::Device;
use serde_json::Value;
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/embeddings.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference fixture"))
        .expect("valid JSON")
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn check(model: &str, min_cosine: f64) {
    let r = reference();
    let sentences: Vec<&str> = r["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want = &r["models"][model];
    let source = resolve(model, &Store::open()).expect("model fetched");
    let enc = Encoder::load(&source, &Device::Cpu).unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let ids = enc.tokenizer.encode(s, 512).unwrap();
        let want_ids: Vec<u32> = want["ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, want_ids, "{model}: token ids of sentence {i}");
    }
    // One padded batch: padding must not change any row.
    let got = enc
        .embed(&sentences, 512)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (i, row) in got.iter().enumerate() {
        let want: Vec<f64> = want["embeddings"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let c = cosine(row, &want);
        eprintln!("{model}: sentence {i} cosine {c:.7}");
        assert!(
            c >= min_cosine,
            "{model}: sentence {i} cosine {c:.6} < {min_cosine}"
        );
    }
}

#[test]
fn minilm_l3_matches_onnxruntime() {
    check("minilm-l3", 0.9999);
}

#[test]
fn minilm_l6_matches_numpy() {
    check("minilm-l6", 0.9999);
}

#[test]
fn e5_small_matches_numpy() {
    check("e5-small", 0.999);
}

#[test]
fn mpnet_base_matches_numpy() {
    check("mpnet-base", 0.9999);
}
