//! Every trainable parameter of every architecture receives a gradient in a fine-tuning step.
//!
//! candle's fused LayerNorm and softmax have no backward pass; a model that used them would train
//! only its head, silently. This test loads real pretrained weights into trainable variables, runs
//! a classification step and checks each variable's gradient is present and non-zero.
mod common;

use candle_core::Device;
use candle_nn::VarMap;
use common::{classification_grads, without_gradient};
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

/// `taped`: how many layers must run as taped regions (the layer-level backward), not fall back
/// to candle's graph.
fn check(model: &str, expected_vars: usize, taped: usize) {
    let dev = Device::Cpu;
    let source = resolve(model, &Store::open()).expect("model fetched");
    let varmap = VarMap::new();
    let enc = Encoder::load_trainable(&source, &varmap, &dev).unwrap();
    let n_backbone = varmap.all_vars().len();
    assert_eq!(n_backbone, expected_vars, "{model}: trainable tensors");
    let texts = [
        "the film was a delight from start to finish",
        "a dull, lifeless and overlong mess",
    ];
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| enc.tokenizer.encode(t, 64).unwrap())
        .collect();
    let before = w2s_kernels::tape::taped_layers();
    let grads = classification_grads(&enc, &varmap, &rows, &[1, 0]);
    let ran = w2s_kernels::tape::taped_layers() - before;
    assert_eq!(ran, taped, "{model}: layers run taped");
    let missing = without_gradient(&varmap, &grads);
    assert!(
        missing.is_empty(),
        "{model}: {} of {n_backbone} backbone tensors got no gradient: {missing:?}",
        missing.len()
    );
}

#[test]
fn bert_minilm_l3_every_parameter_gets_a_gradient() {
    // 5 embedding tensors + 3 layers x 16
    check("minilm-l3", 53, 3);
}

#[test]
fn bert_e5_small_every_parameter_gets_a_gradient() {
    check("e5-small", 5 + 12 * 16, 12);
}

#[test]
fn mpnet_every_parameter_gets_a_gradient() {
    // word + position embeddings, LayerNorm (2), relative bias, 12 layers x 16
    check("mpnet-base", 5 + 12 * 16, 12);
}

#[test]
fn llama_smollm2_every_parameter_gets_a_gradient() {
    // embedding + final norm, 30 layers x (2 norms, q k v o, gate up down)
    check("smollm2-135m", 2 + 30 * 9, 30);
}

#[test]
fn gemma3_every_parameter_gets_a_gradient() {
    // embedding + final norm, 18 layers x (4 sandwich norms, q/k norms, q k v o, gate up down)
    check("gemma3-270m", 2 + 18 * 13, 18);
}

#[test]
fn qwen2_every_parameter_gets_a_gradient() {
    // embedding + final norm, 24 layers x (2 norms, q k v o, q/k/v biases, gate up down)
    check("qwen2.5-coder-0.5b", 2 + 24 * 12, 24);
}

/// One full training step of MiniLM-L3 (backbone, mean pooling, linear head, soft-label
/// cross-entropy) against PyTorch in float64 (tests/reference/make_gradient_reference.py): the
/// loss, and for every parameter its gradient norm and three sampled values, within 1e-4.
#[test]
fn minilm_l3_training_step_matches_pytorch_gradients() {
    use candle_core::{DType, Tensor};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/gradients.json"
    );
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("gradient fixture")).unwrap();
    let dev = Device::Cpu;
    let source = resolve("minilm-l3", &Store::open()).expect("model fetched");
    let varmap = VarMap::new();
    let enc = Encoder::load_trainable(&source, &varmap, &dev).unwrap();
    // The fixture's inputs, by the same formulas as the script.
    let lengths: Vec<usize> = reference["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let vocab = enc.vocab_size();
    let rows: Vec<Vec<u32>> = lengths
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..n)
                .map(|i| (1000 + (r * 7919 + i * 104_729) % (vocab - 1001)) as u32)
                .collect()
        })
        .collect();
    let (ids, mask) = enc.pad_batch(&rows).unwrap();
    assert_eq!(
        ids.dim(1).unwrap(),
        reference["seq"].as_u64().unwrap() as usize
    );
    let pooled = enc
        .pool(&enc.hidden_states(&ids, &mask).unwrap(), &mask)
        .unwrap();
    let h = enc.hidden;
    let w: Vec<f32> = (0..2 * h)
        .map(|i| (0.05 * (1.0 + i as f64).sin()) as f32)
        .collect();
    let w = Tensor::from_vec(w, (2, h), &dev).unwrap();
    let b = Tensor::new(&[0.1f32, -0.1], &dev).unwrap();
    let logits = pooled
        .matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap();
    let t: Vec<f32> = (0..rows.len())
        .flat_map(|r| [0.2 + 0.15 * r as f32, 0.8 - 0.15 * r as f32])
        .collect();
    let t = Tensor::from_vec(t, (rows.len(), 2), &dev).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
    let loss = (t * logp)
        .unwrap()
        .sum(1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    let value = loss
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let expected = reference["loss"].as_f64().unwrap();
    assert!(
        ((value - expected) / expected).abs() < 1e-4,
        "loss {value} against PyTorch's {expected}"
    );
    let grads = w2s_kernels::backward(&loss).unwrap();
    let data = varmap.data().lock().unwrap();
    let params = reference["params"].as_object().unwrap();
    assert_eq!(
        data.len(),
        params.len(),
        "trained tensors against PyTorch's"
    );
    // The key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by a
    // query's scores); both sides leave only rounding there, so differences are also allowed up
    // to 1e-7 of the largest gradient norm.
    let floor = 1e-7
        * params
            .values()
            .map(|p| p["norm"].as_f64().unwrap())
            .fold(0f64, f64::max);
    let mut worst = (0f64, String::new());
    for (name, want) in params {
        let var = data
            .get(name)
            .unwrap_or_else(|| panic!("PyTorch parameter {name} is not a w2s variable"));
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let want_norm = want["norm"].as_f64().unwrap();
        let rel = ((norm - want_norm) / want_norm).abs();
        if want_norm > floor && rel > worst.0 {
            worst = (rel, name.clone());
        }
        assert!(
            (norm - want_norm).abs() <= 1e-4 * want_norm + floor,
            "{name}: gradient norm {norm} against PyTorch's {want_norm}"
        );
        for s in want["samples"].as_array().unwrap() {
            let (i, v) = (s[0].as_u64().unwrap() as usize, s[1].as_f64().unwrap());
            assert!(
                (g[i] - v).abs() <= 1e-4 * want_norm + floor,
                "{name}[{i}]: {} against PyTorch's {v}",
                g[i]
            );
        }
    }
    eprintln!(
        "worst relative gradient-norm difference: {:.2e} ({})",
        worst.0, worst.1
    );
}
