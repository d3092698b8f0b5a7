//! Bringing your own models: Hugging Face folders found by path and as `hf:ORG/NAME` in a
//! Hugging Face cache layout (`HF_HOME`), `w2s embed --save` against transformers' outputs, and
//! `w2s run --mode finetune --lora` through a chain of every architecture. The models are the
//! tiny transformers-made fixtures under tests/reference/hf (committed; no download).
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn w2s() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_w2s"));
    c.env_remove("W2S_DEVICE");
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/hf")
        .join(name)
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap())
        .unwrap()
}

/// The fixture's texts as a JSONL dataset (labels alternate).
fn texts_file(dir: &Path, name: &str) -> PathBuf {
    let r = reference(name);
    let path = dir.join("texts.jsonl");
    let mut body = String::new();
    for (i, t) in r["texts"].as_array().unwrap().iter().enumerate() {
        body.push_str(&serde_json::json!({"text": t, "label": i % 2}).to_string());
        body.push('\n');
    }
    std::fs::write(&path, body).unwrap();
    path
}

/// An HF cache under `home` holding `org/name` as huggingface_hub lays it out: files in
/// `blobs/<sha256>`, linked from `snapshots/<commit>/`, with `refs/main` naming the commit.
fn hf_cache(home: &Path, repo: &str, src: &Path) {
    let folder = home
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = folder.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), commit).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let blob = w2s_assets::cache::sha256_bytes(&bytes);
        std::fs::write(folder.join("blobs").join(&blob), bytes).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(&blob),
            snap.join(p.file_name().unwrap()),
        )
        .unwrap();
    }
}

/// Reads a float32 `.npy` written by `w2s embed --save`: (rows, dim, values).
fn read_npy(path: &Path) -> (usize, usize, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap();
    let dims: Vec<usize> = shape
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let values = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (dims[0], dims[1], values)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embed_save_from_the_hf_cache_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    for (repo, name) in [
        ("acme/tiny-pythia", "gpt_neox"),
        ("roberta-tiny", "roberta"),
    ] {
        let home = tmp.path().join("hf");
        hf_cache(&home, repo, &fixture(name));
        let data = texts_file(tmp.path(), name);
        let save = tmp.path().join(format!("{name}.npy"));
        let out = w2s()
            .env("HF_HOME", &home)
            .env_remove("HF_HUB_CACHE")
            .env("W2S_HOME", tmp.path().join("w2s-home"))
            .args(["--quiet", "embed", "--model", &format!("hf:{repo}")])
            .args([
                "--data",
                data.to_str().unwrap(),
                "--save",
                save.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (rows, dim, values) = read_npy(&save);
        let want = reference(name)["pooled"].as_array().unwrap().clone();
        assert_eq!((rows, dim), (want.len(), 16));
        for (i, w) in want.iter().enumerate() {
            let w: Vec<f32> = w
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let c = cosine(&values[i * dim..(i + 1) * dim], &w);
            assert!(c >= 0.99999, "{name} row {i}: cosine {c}");
        }
    }
    // Not in the cache: the error says where it looked.
    let out = w2s()
        .env("HF_HOME", tmp.path().join("hf"))
        .env_remove("HF_HUB_CACHE")
        .args([
            "embed",
            "--model",
            "hf:EleutherAI/pythia-410m",
            "--data",
            "x.jsonl",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("models--EleutherAI--pythia-410m")
            && err.contains(tmp.path().join("hf").to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn finetune_lora_runs_through_a_chain_of_every_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    // 60 rows of short texts, two classes by topic.
    let path = tmp.path().join("topics.jsonl");
    let mut body = String::new();
    for i in 0..60 {
        let text = if i % 2 == 0 {
            format!("the cat {i} sat on the mat and purred")
        } else {
            format!("stock prices {i} fell sharply on tuesday")
        };
        body.push_str(&serde_json::json!({"text": text, "label": i % 2}).to_string());
        body.push('\n');
    }
    std::fs::write(&path, body).unwrap();
    let chain: Vec<String> = [
        "gpt2",
        "gpt_neox",
        "llama",
        "qwen2",
        "qwen3-sharded",
        "gemma3",
        "xlm-roberta",
        "llama-bf16",
        "roberta",
    ]
    .iter()
    .map(|n| fixture(n).to_str().unwrap().to_string())
    .collect();
    let out_dir = tmp.path().join("out");
    let out = w2s()
        .env("W2S_HOME", tmp.path().join("w2s-home"))
        .args([
            "--quiet", "run", "--mode", "finetune", "--lora", "4", "--data",
        ])
        .arg(&path)
        .args([
            "--chain",
            &chain.join(","),
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--loss",
            "xent",
        ])
        .args(["--out", out_dir.to_str().unwrap(), "--no-report", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["chain"].as_array().unwrap().len(), chain.len(), "{run}");
    // weak + ceiling + one student per link + the direct student
    assert_eq!(
        doc["nodes"]["computed"].as_u64(),
        Some(1 + 1 + 8 + 1),
        "{doc}"
    );
    for key in ["weak_acc", "ceiling_acc", "student_acc"] {
        let acc = run[key].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&acc), "{key} in {run}");
    }
}

/// A config whose sizes disagree with its weights: the error names the file and the tensor, and
/// carries no stack trace of candle's internals, even with RUST_BACKTRACE set (as shells often
/// have it, for panics); RUST_LIB_BACKTRACE=1 asks for one.
#[test]
fn a_config_that_disagrees_with_its_weights_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("roberta").join(f), model.join(f)).unwrap();
    }
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("roberta").join("config.json")).unwrap(),
    )
    .unwrap();
    config["intermediate_size"] = (config["intermediate_size"].as_u64().unwrap() * 2).into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    let data = texts_file(dir.path(), "roberta");
    let run = |lib_backtrace: Option<&str>| {
        let mut c = w2s();
        c.args(["--quiet", "embed", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .env("RUST_BACKTRACE", "1")
            .env("W2S_HOME", dir.path().join("home"));
        match lib_backtrace {
            Some(v) => c.env("RUST_LIB_BACKTRACE", v),
            None => c.env_remove("RUST_LIB_BACKTRACE"),
        };
        let out = c.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = run(None);
    assert!(
        plain.contains("config.json")
            && plain.contains("shape mismatch for encoder.layer.0.intermediate.dense.weight"),
        "{plain}"
    );
    assert!(
        !plain.contains("candle_core::"),
        "a backtrace in the error:\n{plain}"
    );
    assert_eq!(plain.trim().lines().count(), 1, "{plain}");
    let asked = run(Some("1"));
    assert!(asked.contains("candle_core::error::Error::bt"), "{asked}");
}
