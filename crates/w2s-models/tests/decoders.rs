//! GGUF decoders against an independent reference (tests/reference/decoder_reference.py:
//! Hugging Face transformers reading the same GGUF files with its own dequantiser, tokenizer
//! converters and modelling code): identical token ids on awkward strings, matching final hidden
//! states on a prompt, and last-token pooling that does not care about padding or token id 0.
//! The models are fetched into $W2S_HOME on first use.
mod common;

use candle_core::Device;
use common::floats;
use serde_json::Value;
use w2s_assets::Store;
use w2s_models::{resolve, Encoder};

fn reference(model: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/decoders.json"
    );
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("reference fixture"))
            .expect("valid JSON");
    all[model].clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn check(model: &str) {
    let r = reference(model);
    let source = resolve(model, &Store::open()).expect("model fetched");
    let enc = Encoder::load(&source, &Device::Cpu).unwrap();

    // Tokenizer rebuilt from the GGUF metadata.
    for (text, want) in r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["text_ids"].as_array().unwrap())
    {
        let text = text.as_str().unwrap();
        assert_eq!(
            enc.tokenizer.raw_ids(text).unwrap(),
            ids(want),
            "{model}: tokens of {text:?}"
        );
    }
    let prompt = r["prompt"].as_str().unwrap();
    let prompt_ids = enc.tokenizer.encode(prompt, 128).unwrap();
    assert_eq!(
        prompt_ids,
        ids(&r["prompt_ids"]),
        "{model}: prompt with special tokens"
    );

    // Final hidden states of the prompt.
    let (t_ids, mask) = enc.pad_batch(std::slice::from_ref(&prompt_ids)).unwrap();
    let hidden = enc
        .hidden_states(&t_ids, &mask)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let rows = hidden.to_vec2::<f32>().unwrap();
    let want_norms = floats(&r["hidden_norm"]);
    let want_heads = r["hidden_head"].as_array().unwrap();
    let mut worst = 0f32;
    for (pos, row) in rows.iter().enumerate() {
        let n = norm(row);
        let rel = (n - want_norms[pos]).abs() / want_norms[pos];
        assert!(
            rel < 1e-3,
            "{model}: position {pos} norm {n} vs {}",
            want_norms[pos]
        );
        worst = worst.max(max_abs_diff(row, &floats(&want_heads[pos])) / want_norms[pos]);
    }
    let last = rows.last().unwrap();
    let want_last = floats(&r["hidden_last"]);
    assert_eq!(last.len(), want_last.len());
    worst = worst.max(max_abs_diff(last, &want_last) / want_norms[rows.len() - 1]);
    eprintln!("{model}: worst |ours - reference| / ‖h‖ = {worst:.2e}");
    assert!(
        worst < 1e-5,
        "{model}: hidden states differ by {worst} of the norm"
    );

    // Last-token pooling: the prompt padded next to a longer row (which contains token id 0)
    // pools to the same vector as the prompt alone.
    let mut longer = enc
        .tokenizer
        .encode("A longer row, so that the prompt gets padded", 128)
        .unwrap();
    longer.insert(longer.len() / 2, 0);
    let alone = enc
        .embed_ids(std::slice::from_ref(&prompt_ids))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let batch = enc
        .embed_ids(&[prompt_ids.clone(), longer.clone()])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let scale = norm(&alone[0]);
    let diff = max_abs_diff(&alone[0], &batch[0]);
    assert!(
        diff / scale < 1e-4,
        "{model}: padding changed the pooled state by {diff}"
    );
    // ... and it is the last real token's state, i.e. the reference's last position.
    let d_last = max_abs_diff(&alone[0], &want_last);
    assert!(
        d_last / scale < 1e-3,
        "{model}: pooled state is not the last token's"
    );
    // The row with id 0 inside is pooled at its real end, not cut at the 0.
    let cut: Vec<u32> = longer[..longer.iter().position(|&i| i == 0).unwrap()].to_vec();
    let cut_state = enc.embed_ids(&[cut]).unwrap().to_vec2::<f32>().unwrap();
    let same = max_abs_diff(&batch[1], &cut_state[0]) < 1e-4;
    assert!(!same, "{model}: token id 0 treated as padding");
}

#[test]
fn smollm2_matches_reference() {
    check("smollm2-135m");
}

#[test]
fn gemma3_matches_reference() {
    check("gemma3-270m");
}

#[test]
fn qwen2_5_coder_0_5b_matches_reference() {
    check("qwen2.5-coder-0.5b");
}

#[test]
fn qwen2_5_coder_1_5b_matches_reference() {
    check("qwen2.5-coder-1.5b");
}

#[test]
fn corrupt_gguf_files_give_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"definitely not a gguf file").unwrap();
    // Resolving reads the header (for the architecture), so garbage fails there already.
    let err = resolve(garbage.to_str().unwrap(), &Store::open())
        .and_then(|source| Encoder::load(&source, &Device::Cpu))
        .err()
        .expect("garbage must not load")
        .to_string();
    assert!(
        err.contains("garbage.gguf") && err.contains("GGUF"),
        "{err}"
    );

    // A real file cut short: the header parses, a tensor is missing its bytes, which the header
    // check finds before any tensor is read (resolving reads the header).
    let real = resolve("smollm2-135m", &Store::open()).unwrap();
    let bytes = std::fs::read(&real.weights[0]).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = resolve(cut.to_str().unwrap(), &Store::open())
        .and_then(|source| Encoder::load(&source, &Device::Cpu))
        .err()
        .expect("a truncated file must not load")
        .to_string();
    assert!(
        err.contains("cut.gguf") && err.contains("run past the end") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn smollm2_written_as_a_hugging_face_llama_folder_loads_through_safetensors() {
    // The real SmolLM2 weights, dequantised and written the way `save_pretrained` lays out a
    // LlamaForCausalLM (model.* names, config.json, tokenizer.json): the safetensors path must
    // give the GGUF path's hidden states.
    let gguf_source = resolve("smollm2-135m", &Store::open()).unwrap();
    let gguf = w2s_models::gguf::Gguf::open(&gguf_source.weights[0]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tensors = gguf.tensors(&Device::Cpu).unwrap();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    drop(tensors);
    let mut config = gguf.config.value.clone();
    assert_eq!(config["model_type"], "llama");
    config["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    gguf.tokenizer()
        .unwrap()
        .tokenizer
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();

    let folder = resolve(dir.path().to_str().unwrap(), &Store::open()).unwrap();
    assert_eq!(folder.format, w2s_models::WeightFormat::Safetensors);
    let from_folder = Encoder::load(&folder, &Device::Cpu).unwrap();
    let from_gguf = Encoder::load(&gguf_source, &Device::Cpu).unwrap();
    let prompt = reference("smollm2-135m")["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = from_gguf.tokenizer.encode(&prompt, 128).unwrap();
    assert_eq!(from_folder.tokenizer.encode(&prompt, 128).unwrap(), ids);
    let states = |enc: &Encoder| {
        let (t, m) = enc.pad_batch(std::slice::from_ref(&ids)).unwrap();
        enc.hidden_states(&t, &m)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (states(&from_folder), states(&from_gguf));
    let diff = max_abs_diff(&a, &b) / norm(&b) * (b.len() as f32).sqrt();
    assert!(diff < 1e-6, "safetensors and GGUF paths differ by {diff}");
    // ... and both match transformers on the GGUF file (the reference fixture).
    let last = &a[a.len() - 576..];
    let want = floats(&reference("smollm2-135m")["hidden_last"]);
    assert!(max_abs_diff(last, &want) / norm(&want) < 1e-5);
}
