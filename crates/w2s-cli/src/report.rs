//! `w2s report DIR`: plots and an HTML page from the run records of `w2s run` / `w2s sweep`.
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Arguments of `w2s report`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Writes DIR/report/: index.html, summary.json and, each as PNG and SVG:
  transfer-<dataset>   test accuracy against each strong model's ceiling (the paper's figure)
  pgr-<dataset>        PGR against strong-model size per loss, with 95% CIs
  median-pgr           median PGR per loss per dataset
  bootstrap-<dataset>  bootstrapping chains against direct transfer (when chains were run)")]
pub struct ReportArgs {
    /// The output folder of `w2s run` or `w2s sweep` (holding runs/).
    #[arg(default_value = "w2s-out")]
    dir: PathBuf,
}

/// Runs `w2s report`.
pub fn run(args: ReportArgs, quiet: bool) -> Result<()> {
    let runs = w2s_experiment::read_runs(&args.dir)
        .with_context(|| format!("reading {}/runs", args.dir.display()))?;
    let index = w2s_report::write_report(&args.dir, &runs)?;
    if !quiet {
        println!("{} runs -> {}", runs.len(), index.display());
    }
    Ok(())
}
