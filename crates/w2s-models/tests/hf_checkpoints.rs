//! Hugging Face checkpoints of every architecture read from config.json, against `transformers`.
//!
//! The fixtures under tests/reference/hf/ are tiny random-initialised models written by
//! tests/reference/make_hf_fixtures.py with `save_pretrained` (different model classes, so
//! different root prefixes; one sharded, one stored in bf16), each with the pooled outputs
//! transformers computes for a few texts. No download: they are committed.
mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::{classification_grads, floats, hf_fixtures as fixtures, without_gradient};
use serde_json::Value;
use std::path::Path;
use w2s_assets::Store;
use w2s_models::weights::Checkpoint;
use w2s_models::{resolve, Encoder, LoadRequest, Train, ARCHITECTURES};

fn reference(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// Largest |a - b| relative to the reference's largest magnitude (at least 1).
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

fn load(dir: &Path, dtype: DType) -> Encoder {
    let source = resolve(dir.to_str().unwrap(), &Store::open()).unwrap();
    let req = LoadRequest {
        device: &Device::Cpu,
        dtype,
        train: Train::Nothing,
    };
    Encoder::load_with(&source, &req).unwrap_or_else(|e| panic!("{}: {e}", name(dir)))
}

fn rows(enc: &Encoder, r: &Value) -> Vec<Vec<u32>> {
    r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| enc.tokenizer.encode(t.as_str().unwrap(), 128).unwrap())
        .collect()
}

#[test]
fn every_architecture_has_a_fixture() {
    let have: Vec<String> = fixtures()
        .iter()
        .map(|d| reference(d)["model_type"].as_str().unwrap().to_string())
        .collect();
    for arch in ARCHITECTURES {
        for t in arch.model_types() {
            // BERT and MPNet are checked on their real pretrained weights (tests/parity.rs).
            if *t == "bert" || *t == "mpnet" {
                continue;
            }
            assert!(have.iter().any(|h| h == t), "no fixture of model_type {t}");
        }
    }
}

#[test]
fn pooled_outputs_match_transformers() {
    for dir in fixtures() {
        let r = reference(&dir);
        let enc = load(&dir, DType::F32);
        assert_eq!(
            enc.pooling().name(),
            r["pooling"].as_str().unwrap(),
            "{}",
            name(&dir)
        );
        let ids = rows(&enc, &r);
        for (i, (got, want)) in ids.iter().zip(r["ids"].as_array().unwrap()).enumerate() {
            let want: Vec<u32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(got, &want, "{}: token ids of text {i}", name(&dir));
        }
        // One padded batch: padding must change nothing.
        let pooled = enc.embed_ids(&ids).unwrap().to_vec2::<f32>().unwrap();
        let mut worst = 0f32;
        for (got, want) in pooled.iter().zip(r["pooled"].as_array().unwrap()) {
            worst = worst.max(max_rel_diff(got, &floats(want)));
        }
        eprintln!("{}: worst relative difference {worst:.2e}", name(&dir));
        assert!(
            worst < 1e-5,
            "{}: pooled outputs differ by {worst}",
            name(&dir)
        );
    }
}

#[test]
fn bf16_checkpoint_and_bf16_compute() {
    let dir = fixtures()
        .into_iter()
        .find(|d| name(d) == "llama-bf16")
        .expect("bf16 fixture");
    let r = reference(&dir);
    let header = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        String::from_utf8_lossy(&header[..header.len().min(4096)]).contains("BF16"),
        "the fixture is stored in bf16"
    );
    // In bf16 against transformers in bf16: the same rounding steps, so close but not equal.
    let enc = load(&dir, DType::BF16);
    let pooled = enc
        .embed_ids(&rows(&enc, &r))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (i, (got, want)) in pooled
        .iter()
        .zip(r["pooled_bf16"].as_array().unwrap())
        .enumerate()
    {
        let c = common::cosine(got, &floats(want));
        eprintln!("llama-bf16 text {i}: cosine to transformers-bf16 {c:.6}");
        assert!(c > 0.999, "text {i}: cosine {c}");
    }
}

#[test]
fn f16_checkpoint_loads_in_f32_and_computes_in_f16() {
    // The GPT-2 fixture rewritten in f16, as `model.half().save_pretrained()` would store it.
    let src = fixtures().into_iter().find(|d| name(d) == "gpt2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let half: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::F16).unwrap()))
        .collect();
    candle_core::safetensors::save(&half, dir.path().join("model.safetensors")).unwrap();
    let r = reference(&src);
    for dtype in [DType::F32, DType::F16] {
        let enc = load(dir.path(), dtype);
        let pooled = enc
            .embed_ids(&rows(&enc, &r))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (got, want) in pooled.iter().zip(r["pooled"].as_array().unwrap()) {
            let c = common::cosine(got, &floats(want));
            assert!(c > 0.999, "{dtype:?}: cosine {c} to the f32 reference");
        }
    }
}

/// Tensors of a checkpoint that a classifier backbone does not use: language-model heads,
/// poolers and classification heads.
fn unused(name: &str) -> bool {
    ["lm_head.", "embed_out.", "pooler.", "classifier.", "score."]
        .iter()
        .any(|p| name.starts_with(p))
}

#[test]
fn every_parameter_trains_and_every_tensor_is_used() {
    let dev = Device::Cpu;
    for dir in fixtures() {
        let source = resolve(dir.to_str().unwrap(), &Store::open()).unwrap();
        let varmap = VarMap::new();
        let enc = Encoder::load_trainable(&source, &varmap, &dev).unwrap();
        // Every stored tensor below the root (but the heads) became a trainable variable.
        let checkpoint = Checkpoint::safetensors(&source.weights, &dev).unwrap();
        let arch = w2s_models::arch::architecture(&source.model_type, &source.config).unwrap();
        let root = checkpoint.root(arch.embedding_name()).unwrap();
        let mut expected: Vec<String> = checkpoint
            .names()
            .iter()
            .filter_map(|s| {
                if root.is_empty() {
                    Some(s.as_str())
                } else {
                    s.strip_prefix(&format!("{root}."))
                }
            })
            .filter(|s| !unused(s))
            .map(str::to_string)
            .collect();
        expected.sort();
        let mut vars: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        vars.sort();
        assert_eq!(vars, expected, "{}: trainable tensors", name(&dir));

        let labels = [1, 0, 1, 0];
        let grads = classification_grads(&enc, &varmap, &rows(&enc, &reference(&dir)), &labels);
        let missing = without_gradient(&varmap, &grads);
        assert!(
            missing.is_empty(),
            "{}: no gradient for {missing:?}",
            name(&dir)
        );
    }
}

#[test]
fn top_layers_train_only_the_top_layers() {
    let dev = Device::Cpu;
    for dir in fixtures() {
        let source = resolve(dir.to_str().unwrap(), &Store::open()).unwrap();
        let varmap = VarMap::new();
        let req = LoadRequest {
            device: &dev,
            dtype: DType::F32,
            train: Train::TopLayers(1, &varmap),
        };
        let enc = Encoder::load_with(&source, &req).unwrap();
        let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        assert!(!names.is_empty(), "{}", name(&dir));
        for n in &names {
            assert_eq!(enc.layer_of(n), Some(enc.layers - 1), "{}: {n}", name(&dir));
        }
        // The frozen rest still computes the same outputs.
        let r = reference(&dir);
        let pooled = enc
            .embed_ids(&rows(&enc, &r))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let want = floats(&r["pooled"][0]);
        assert!(max_rel_diff(&pooled[0], &want) < 1e-5, "{}", name(&dir));
    }
}

#[test]
fn bad_folders_give_errors_that_say_what_and_where() {
    let src = fixtures().into_iter().find(|d| name(d) == "gpt2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = |to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::copy(src.join(f), to.join(f)).unwrap();
        }
    };
    let store = Store::open();
    let err_of = |p: &Path| {
        resolve(p.to_str().unwrap(), &store)
            .and_then(|s| Encoder::load(&s, &Device::Cpu))
            .err()
            .expect("must fail")
            .to_string()
    };

    // Only a PyTorch pickle: refused, never unpickled.
    let pickle = dir.path().join("pickle");
    copy(&pickle);
    std::fs::rename(
        pickle.join("model.safetensors"),
        pickle.join("pytorch_model.bin"),
    )
    .unwrap();
    let err = err_of(&pickle);
    assert!(
        err.contains("pytorch_model.bin")
            && err.contains("safetensors")
            && err.contains("never unpickles"),
        "{err}"
    );

    // An architecture we do not have.
    let t5 = dir.path().join("t5");
    copy(&t5);
    let cfg = std::fs::read_to_string(t5.join("config.json")).unwrap();
    std::fs::write(t5.join("config.json"), cfg.replace("\"gpt2\"", "\"t5\"")).unwrap();
    let err = err_of(&t5);
    assert!(
        err.contains("\"t5\"") && err.contains("gpt_neox") && err.contains("config.json"),
        "{err}"
    );

    // Weights of another architecture than config.json says.
    let wrong = dir.path().join("wrong");
    copy(&wrong);
    let cfg = std::fs::read_to_string(wrong.join("config.json")).unwrap();
    std::fs::write(
        wrong.join("config.json"),
        cfg.replace("\"gpt2\"", "\"gpt_neox\""),
    )
    .unwrap();
    let err = err_of(&wrong);
    assert!(
        err.contains("embed_in.weight") && err.contains("model.safetensors"),
        "{err}"
    );

    // A truncated weights file.
    let cut = dir.path().join("cut");
    copy(&cut);
    let bytes = std::fs::read(cut.join("model.safetensors")).unwrap();
    std::fs::write(cut.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = err_of(&cut);
    assert!(
        err.contains("truncated") && err.contains("cut/model.safetensors"),
        "{err}"
    );

    // A shard listed in the index but missing.
    let sharded = fixtures()
        .into_iter()
        .find(|d| name(d) == "qwen3-sharded")
        .unwrap();
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for e in std::fs::read_dir(&sharded).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with("00003-of-00005.safetensors") {
            std::fs::copy(&p, partial.join(p.file_name().unwrap())).unwrap();
        }
    }
    let err = err_of(&partial);
    assert!(
        err.contains("model-00003-of-00005.safetensors") && err.contains("missing"),
        "{err}"
    );

    // A tokenizer with more ids than the model has embeddings.
    let big = dir.path().join("big-tokenizer");
    copy(&big);
    let gemma = fixtures()
        .into_iter()
        .find(|d| name(d) == "gemma3")
        .unwrap();
    std::fs::copy(gemma.join("tokenizer.json"), big.join("tokenizer.json")).unwrap();
    let source = resolve(big.to_str().unwrap(), &store).unwrap();
    let enc = Encoder::load(&source, &Device::Cpu).unwrap();
    let err = enc
        .embed(&["naïve café, 1234 apples & 56 pears"], 64)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outside the model's vocabulary") && err.contains("tokenizer.json"),
        "{err}"
    );

    // No tokenizer.json.
    let notok = dir.path().join("notok");
    copy(&notok);
    std::fs::remove_file(notok.join("tokenizer.json")).unwrap();
    let err = err_of(&notok);
    assert!(
        err.contains("tokenizer.json") && err.contains("missing"),
        "{err}"
    );
}
