//! `w2s embed`: pooled features for every row of a dataset, cached.
use anyhow::{Context, Result};
use w2s_assets::Store;
use w2s_models::{cached_features, FeatureRequest};

/// Arguments of `w2s embed`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Features are cached under $W2S_HOME/features, keyed by model weights, dataset content,\n\
max length and pooling; a second call with the same arguments reads the cache.\n\n\
Example:\n  w2s embed --model minilm-l6 --data boolq"
)]
pub struct EmbedArgs {
    /// Model: a built-in name (`w2s fetch --list`), a folder with config.json,
    /// model.safetensors and tokenizer.json (BERT or MPNet), or a .gguf file (Llama, Qwen2, Gemma3).
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Dataset: a built-in name (`w2s data list`) or a .jsonl/.csv file with text and label.
    #[arg(long, default_value = "tweets")]
    data: String,
    /// Maximum tokens per row, special tokens included; longer rows lose their beginning.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `w2s embed`.
pub fn run(args: EmbedArgs, quiet: bool) -> Result<()> {
    let store = Store::open();
    let model = w2s_models::resolve(&args.model, &store)
        .with_context(|| format!("loading model {}", args.model))?;
    let dataset = w2s_data::load(&args.data, &store)
        .with_context(|| format!("loading dataset {}", args.data))?;
    let req = FeatureRequest {
        model: &model,
        dataset: &dataset,
        max_len: args.max_len,
        batch_size: args.batch_size,
    };
    let bar = crate::progress::bar(
        quiet || args.json,
        dataset.examples.len() as u64,
        "rows",
        &format!("{} on {}", model.name, dataset.name),
    );
    let device = w2s_models::default_device();
    let feats = cached_features(store.root(), &req, &device, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let tok_per_s = if feats.seconds > 0.0 {
        feats.tokens as f64 / feats.seconds
    } else {
        0.0
    };
    if args.json {
        let out = serde_json::json!({
            "model": model.name, "dataset": dataset.name, "rows": feats.rows, "dim": feats.dim,
            "cached": feats.from_cache, "tokens": feats.tokens, "seconds": feats.seconds,
            "tokens_per_second": tok_per_s, "path": feats.path,
        });
        println!("{out}");
    } else if feats.from_cache {
        println!(
            "{} x {} features (cached) in {}",
            feats.rows,
            feats.dim,
            feats.path.display()
        );
    } else {
        println!(
            "{} x {} features in {:.1}s ({:.0} rows/s, {:.0} tokens/s), cached in {}",
            feats.rows,
            feats.dim,
            feats.seconds,
            feats.rows as f64 / feats.seconds,
            tok_per_s,
            feats.path.display()
        );
    }
    Ok(())
}
