//! `w2s embed`: pooled features for every row of a dataset, cached.
use anyhow::{Context, Result};
use w2s_assets::Store;
use w2s_models::{cached_features, feature_share, save_features, FeatureRequest, Share};

/// Arguments of `w2s embed`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Features are cached under $W2S_HOME/features, keyed by model weights, dataset content,\n\
max length, pooling and dtype; a second call with the same arguments reads the cache.\n\
Encoders are mean-pooled over real tokens; decoders give the final (normed) hidden state of each\n\
row's last real token. --save writes one row per dataset row, in the dataset's order.\n\n\
Rows are committed every --chunk-rows rows: a killed call resumes where it stopped, and gives\n\
features bit-identical to one uninterrupted pass. --shard i/N computes every N-th chunk, so that\n\
N processes (a Slurm array, several hosts sharing $W2S_HOME) split one model's rows; the one that\n\
finishes last assembles the cache file.\n\n\
Examples:\n  w2s embed --model minilm-l6 --data boolq\n  \
w2s embed --model hf:EleutherAI/pythia-160m --data my.jsonl --save feats.npy\n  \
w2s embed --model qwen2.5-coder-1.5b --data boolq --shard 0/2   # and 1/2 on another host\n  \
w2s embed --model efficientnet-lite0 --data fashion-mnist\n\n\
In Python: numpy.load(\"feats.npy\"), or safetensors.numpy.load_file(\"feats.safetensors\")[\"features\"]."
)]
pub struct EmbedArgs {
    /// Model: a built-in name (`w2s fetch --list`), hf:ORG/NAME from the local Hugging Face
    /// cache, a Hugging Face model folder (config.json, safetensors, tokenizer.json), or a .gguf
    /// file (Llama, Qwen2, Gemma3); for images, pixels, efficientnet-lite0/2 or a Hugging Face
    /// vision folder.
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Dataset: a built-in name (`w2s data list`) or a .jsonl/.csv file with text and label; for
    /// images, fashion-mnist, an image folder or PATH?image=COLUMN.
    #[arg(long, default_value = "tweets")]
    data: String,
    /// Maximum tokens per row, special tokens included; longer rows lose their beginning.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Precision of the weights and the forward pass (features are written as f32).
    #[arg(long, default_value = "f32", value_parser = w2s_models::WeightDtype::NAMES)]
    dtype: String,
    /// Rows per committed chunk (rounded up to whole batches): what a kill can lose.
    #[arg(long, default_value_t = w2s_models::DEFAULT_CHUNK_ROWS)]
    chunk_rows: usize,
    /// Compute only share INDEX of COUNT (every COUNT-th chunk); the last share to finish
    /// assembles the features.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<crate::shard::Shard>,
    /// Also write the features (rows × dim, float32, dataset row order) to FILE: .npy or
    /// .safetensors (tensor `features`).
    #[arg(long, value_name = "FILE")]
    save: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What `w2s embed` computes: a text model's features of texts, or an image model's of images.
enum Computation<'a> {
    Text(FeatureRequest<'a>),
    Images(w2s_models::ImageFeatureRequest<'a>),
}

impl Computation<'_> {
    fn whole(
        &self,
        root: &std::path::Path,
        device: &w2s_models::Device,
        progress: &mut dyn FnMut(w2s_models::EmbedProgress),
    ) -> w2s_models::Result<w2s_models::Features> {
        match self {
            Computation::Text(req) => cached_features(root, req, device, progress),
            Computation::Images(req) => {
                w2s_models::cached_image_features(root, req, device, progress)
            }
        }
    }

    fn share(
        &self,
        root: &std::path::Path,
        device: &w2s_models::Device,
        share: Share,
        progress: &mut dyn FnMut(w2s_models::EmbedProgress),
    ) -> w2s_models::Result<w2s_models::ShareReport> {
        match self {
            Computation::Text(req) => feature_share(root, req, device, share, progress),
            Computation::Images(req) => {
                w2s_models::image_feature_share(root, req, device, share, progress)
            }
        }
    }
}

/// Runs `w2s embed`.
pub fn run(args: EmbedArgs, quiet: bool) -> Result<()> {
    let store = Store::open();
    if let Some(save) = &args.save {
        // Refuse a bad file name before minutes of embedding.
        let ext = save.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("npy" | "safetensors")) {
            anyhow::bail!(
                "--save {}: the file name must end in .npy or .safetensors",
                save.display()
            );
        }
    }
    if w2s_models::ImageModel::is_image_model(&args.model) {
        let model = w2s_models::ImageModel::resolve(&args.model, &store)
            .with_context(|| format!("loading model {}", args.model))?;
        let set = w2s_data::load_images(&args.data, &store)
            .with_context(|| {
                format!(
                    "{} is an image model and {} holds texts: use a text model",
                    args.model, args.data
                )
            })?
            .with_context(|| format!("loading dataset {}", args.data))?;
        let load = |i: usize| set.rows[i].rgb().map_err(|e| e.to_string());
        let req = w2s_models::ImageFeatureRequest {
            model: &model,
            dataset: w2s_models::ImageRows {
                name: &args.data,
                version: &set.version,
                count: set.rows.len(),
                load: &load,
            },
            batch_size: args.batch_size,
            chunk_rows: args.chunk_rows,
        };
        let pooling = match &model.dir {
            Some(_) => "vision backbone",
            None => "pixels",
        };
        return finish(&args, quiet, &store, Computation::Images(req), pooling);
    }
    let model = w2s_models::resolve(&args.model, &store)
        .with_context(|| format!("loading model {}", args.model))?;
    if w2s_data::names_images(&args.data) {
        anyhow::bail!(
            "{} is a text model and {} holds images: use {}, {} or a vision folder",
            args.model,
            args.data,
            w2s_models::PIXELS,
            w2s_models::vision::vision_builtin_names()
        );
    }
    let dataset = w2s_data::load(&args.data, &store)
        .with_context(|| format!("loading dataset {}", args.data))?;
    let req = FeatureRequest {
        model: &model,
        dataset: w2s_experiment::runner::rows_of(&dataset),
        max_len: args.max_len,
        batch_size: args.batch_size,
        dtype: w2s_models::WeightDtype::parse(&args.dtype)
            .with_context(|| format!("--dtype {}", args.dtype))?,
        chunk_rows: args.chunk_rows,
    };
    finish(
        &args,
        quiet,
        &store,
        Computation::Text(req),
        model.pooling.name(),
    )
}

/// Computes (or reads) the features, whole or one share, and reports them.
fn finish(
    args: &EmbedArgs,
    quiet: bool,
    store: &Store,
    work: Computation,
    pooling: &str,
) -> Result<()> {
    let (model_name, dataset_name, rows) = match &work {
        Computation::Text(req) => (
            req.model.name.as_str(),
            req.dataset.name,
            req.dataset.texts.len(),
        ),
        Computation::Images(req) => (req.model.name.as_str(), req.dataset.name, req.dataset.count),
    };
    let device = w2s_models::default_device();
    let feats = match args.shard {
        None => {
            let bar = crate::progress::bar(
                quiet || args.json,
                rows as u64,
                "rows",
                &format!("{model_name} on {dataset_name}"),
            );
            let feats = work.whole(store.root(), &device, &mut |p| {
                crate::progress::embedding(&bar, p)
            })?;
            bar.finish_and_clear();
            feats
        }
        Some(shard) => {
            let share = Share {
                index: shard.index,
                count: shard.count,
                offset: 0,
            };
            let bar = crate::progress::bar(
                quiet || args.json,
                0,
                "rows",
                &format!("{model_name} on {dataset_name}, share {shard}"),
            );
            let report = work.share(store.root(), &device, share, &mut |p| {
                bar.set_length(p.total as u64);
                crate::progress::embedding(&bar, p)
            })?;
            bar.finish_and_clear();
            match report.features {
                // This share completed the set: report what it computed, the rest as resumed.
                Some(mut feats) => {
                    feats.from_cache = report.computed == 0;
                    feats.resumed = feats.rows - report.computed;
                    (feats.tokens, feats.seconds) = (report.tokens, report.seconds);
                    feats
                }
                None => {
                    let rate = report.tokens as f64 / report.seconds.max(1e-9);
                    if args.json {
                        let out = serde_json::json!({
                            "model": model_name, "dataset": dataset_name, "shard": shard.to_string(),
                            "rows": report.rows, "computed": report.computed,
                            "resumed": report.resumed, "tokens": report.tokens,
                            "seconds": report.seconds, "tokens_per_second": rate, "complete": false,
                        });
                        println!("{out}");
                    } else {
                        println!(
                            "share {shard}: {} rows ({} computed in {:.1}s, {} resumed); waiting for the other shares{}",
                            report.rows,
                            report.computed,
                            report.seconds,
                            report.resumed,
                            if args.save.is_some() { ", so nothing was saved" } else { "" }
                        );
                    }
                    return Ok(());
                }
            }
        }
    };
    if let Some(save) = &args.save {
        save_features(save, &feats.values, feats.rows, feats.dim)
            .with_context(|| format!("saving features to {}", save.display()))?;
    }
    let tok_per_s = if feats.seconds > 0.0 {
        feats.tokens as f64 / feats.seconds
    } else {
        0.0
    };
    if args.json {
        let out = serde_json::json!({
            "model": model_name, "dataset": dataset_name, "rows": feats.rows, "dim": feats.dim,
            "cached": feats.from_cache, "resumed": feats.resumed, "tokens": feats.tokens,
            "seconds": feats.seconds,
            "tokens_per_second": tok_per_s, "path": feats.path, "saved": args.save,
            "dtype": args.dtype, "pooling": pooling, "complete": true,
        });
        println!("{out}");
    } else if let Some(save) = &args.save {
        println!(
            "{} x {} features ({}) written to {}",
            feats.rows,
            feats.dim,
            if feats.from_cache {
                "from the cache"
            } else {
                "computed"
            },
            save.display()
        );
    } else if feats.from_cache {
        println!(
            "{} x {} features (cached) in {}",
            feats.rows,
            feats.dim,
            feats.path.display()
        );
    } else {
        let resumed = if feats.resumed > 0 {
            format!(
                "; {} rows computed earlier, by an interrupted pass or other shares",
                feats.resumed
            )
        } else {
            String::new()
        };
        println!(
            "{} x {} features in {:.1}s ({:.0} rows/s, {:.0} tokens/s{resumed}), cached in {}",
            feats.rows,
            feats.dim,
            feats.seconds,
            (feats.rows - feats.resumed) as f64 / feats.seconds.max(1e-9),
            tok_per_s,
            feats.path.display()
        );
    }
    Ok(())
}
