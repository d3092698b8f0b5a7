//! Every trainable parameter of every architecture receives a gradient in a fine-tuning step.
//!
//! candle's fused LayerNorm and softmax have no backward pass; a model that used them would train
//! only its head, silently. This test loads real pretrained weights into trainable variables, runs
//! a classification step and checks each variable's gradient is present and non-zero.
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

fn check(model: &str, expected_vars: usize) {
    let dev = Device::Cpu;
    let source = resolve(model, &Store::open()).expect("model fetched");
    let varmap = VarMap::new();
    let enc = Encoder::load_trainable(&source, &varmap, &dev).unwrap();
    let n_backbone = varmap.all_vars().len();
    assert_eq!(n_backbone, expected_vars, "{model}: trainable tensors");
    // A randomly initialised head: with the paper's zero head the backbone's first gradient is 0.
    let head = candle_nn::linear(
        enc.hidden,
        2,
        VarBuilder::from_varmap(&varmap, DType::F32, &dev).pp("head"),
    )
    .unwrap();
    let texts = [
        "the film was a delight from start to finish",
        "a dull, lifeless and overlong mess",
    ];
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| enc.tokenizer.encode(t, 64).unwrap())
        .collect();
    let (ids, mask) = enc.pad_batch(&rows).unwrap();
    let pooled = enc
        .pool(&enc.hidden_states(&ids, &mask).unwrap(), &mask)
        .unwrap();
    let logits = head.forward(&pooled).unwrap();
    let labels = Tensor::new(&[1u32, 0], &dev).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
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
        if !(norm > 0.0 && norm.is_finite()) {
            missing.push(format!("{name} ({norm})"));
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "{model}: {} of {} tensors got no gradient: {missing:?}",
        missing.len(),
        data.len()
    );
}

#[test]
fn bert_minilm_l3_every_parameter_gets_a_gradient() {
    // 5 embedding tensors + 3 layers x 16
    check("minilm-l3", 53);
}

#[test]
fn bert_e5_small_every_parameter_gets_a_gradient() {
    check("e5-small", 5 + 12 * 16);
}

#[test]
fn mpnet_every_parameter_gets_a_gradient() {
    // word + position embeddings, LayerNorm (2), relative bias, 12 layers x 16
    check("mpnet-base", 5 + 12 * 16);
}

#[test]
fn llama_smollm2_every_parameter_gets_a_gradient() {
    // embedding + final norm, 30 layers x (2 norms, q k v o, gate up down)
    check("smollm2-135m", 2 + 30 * 9);
}

#[test]
fn gemma3_every_parameter_gets_a_gradient() {
    // embedding + final norm, 18 layers x (4 sandwich norms, q/k norms, q k v o, gate up down)
    check("gemma3-270m", 2 + 18 * 13);
}

#[test]
fn qwen2_every_parameter_gets_a_gradient() {
    // embedding + final norm, 24 layers x (2 norms, q k v o, q/k/v biases, gate up down)
    check("qwen2.5-coder-0.5b", 2 + 24 * 12);
}
