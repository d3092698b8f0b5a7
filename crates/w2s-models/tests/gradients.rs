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

fn check(model: &str, expected_vars: usize) {
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
    let grads = classification_grads(&enc, &varmap, &rows, &[1, 0]);
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
