//! `w2s sweep FILE.toml`: a grid of datasets × models (or chains) × methods × seeds.
use crate::shard::{self, Shard};
use crate::slurm::SlurmArgs;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use w2s_experiment::{Executor, Grid, Missing, RunSpec, Runner, SweepFile};

/// Arguments of `w2s sweep`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The file lists datasets, a model ladder (weakest first: every weaker -> stronger pair is run),
optional bootstrapping chains, methods (`losses` is the same key) and a seed count, plus
[experiment] settings. Example:

  out = \"w2s-out/paper-probe\"
  datasets = [\"tweets\", \"pang-lee-sentences\"]
  models = [\"minilm-l3\", \"minilm-l6\", \"e5-small\", \"mpnet-base\"]
  chains = [[\"minilm-l3\", \"minilm-l6\", \"mpnet-base\"]]
  methods = [\"xent\", \"logconf\", \"conf-filter:0.8+xent\"]     # or [\"all\"]
  seeds = 5
  [experiment]
  max_rows = 6000
  [experiment.train]
  epochs = 20

The zero-shot baseline (methods = [\"zeroshot\"], decoders only) reads its prompts from
crates/w2s-experiment/src/methods/zeroshot.toml; a [zeroshot.DATASET] table with `template` (with
{text}) and `answers` (class 0, class 1) replaces one.
Models are built-in names, hf:ORG/NAME from the local Hugging Face cache, model folders or .gguf
files (docs/models.md), e.g. models = [\"hf:EleutherAI/pythia-70m\", \"hf:EleutherAI/pythia-410m\"];
[experiment] dtype = \"bf16\" sets the precision of frozen weights.
Stages already in OUT/store are reused: a killed sweep restarts where it stopped (features resume
after their last committed chunk of 128 rows). Several
processes may share OUT: --jobs N workers here, --shard i/N anywhere, --executor slurm on a cluster
(docs/cluster.md); a user file with other column names is written PATH?text=..&label=..&group=...
Before anything is trained, every dataset and model is resolved (built-in ones are fetched):
one that cannot be had stops the sweep with a message naming all of them (--skip-unavailable
runs the rest instead). --dry-run stops there and prints the plan.
See configs/paper-probe.toml and configs/gpt2-ladder.toml.")]
pub struct SweepArgs {
    /// The sweep file (TOML).
    pub(crate) file: PathBuf,
    /// Output folder (overrides the file's `out`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Train nothing: resolve every dataset and model (fetching what is missing), then print the
    /// runs and the plan: features to compute, nodes to train, and which are already stored.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run what can be run when some datasets or models cannot be had: leave out every run that
    /// reads one, and say which. Without it, any input that cannot be had stops the sweep before
    /// anything is trained. The inputs left out are part of the grid's identity.
    #[arg(long)]
    pub(crate) skip_unavailable: bool,
    /// Do not write the report at the end.
    #[arg(long)]
    pub(crate) no_report: bool,
    /// Print one JSON object {"runs": [...], "summary": [...]} instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
    /// Worker processes on this machine, each taking the grid's stages as they become ready
    /// (features, then weak models and ceilings, then students); results equal --jobs 1.
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// GPUs to pin one worker each to (CUDA_VISIBLE_DEVICES), e.g. 0,1,2,3; --jobs defaults to
    /// their number.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub(crate) gpus: Vec<String>,
    /// Run only share INDEX of COUNT (0-based) of the grid; the runs of one dataset and seed, which
    /// share a weak model, its labels and a ceiling, fall in one share. Writes
    /// OUT/shards/GRID-INDEX-of-COUNT.json when done.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub(crate) shard: Option<Shard>,
    /// Only compute the pooled features the grid reads (with --shard: share INDEX of the 128-row
    /// chunks of every feature, so that COUNT processes split even one model's rows).
    #[arg(long)]
    pub(crate) features_only: bool,
    /// Where the runs execute: `local` (this machine, --jobs workers) or `slurm` (job arrays over
    /// a shared filesystem; docs/cluster.md). Every name of [`EXECUTORS`].
    #[arg(long, default_value = "local", value_parser = executor_names())]
    pub(crate) executor: String,
    #[command(flatten)]
    pub(crate) slurm: SlurmArgs,
    /// Serve tasks on stdin (the --jobs workers are this binary in this mode).
    #[arg(long, hide = true)]
    pub(crate) worker: bool,
}

/// An executor that `--executor` can name: how to build it from the sweep's flags.
pub struct ExecutorEntry {
    /// Its `--executor` name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Builds it from the flags (refusing those it cannot honour) and the grid's id.
    pub build: fn(&SweepArgs, &str) -> Result<Box<dyn Executor>>,
}

/// Every executor: the help text and `--executor`'s values iterate it. Another one (an SGE
/// array, Kubernetes jobs) is one file implementing [`Executor`] and one line here.
pub const EXECUTORS: &[ExecutorEntry] = &[crate::execute::LOCAL, crate::slurm::SLURM];

fn executor_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        EXECUTORS
            .iter()
            .map(|e| clap::builder::PossibleValue::new(e.name).help(e.help)),
    )
}

/// Runs `w2s sweep`.
pub fn run(args: SweepArgs, quiet: bool) -> Result<()> {
    let start = Instant::now();
    let sweep = SweepFile::read(&args.file).map_err(anyhow::Error::msg)?;
    let cfg = sweep.config().map_err(anyhow::Error::msg)?;
    let out = args
        .out
        .clone()
        .or(sweep.out.clone())
        .unwrap_or_else(|| PathBuf::from("w2s-out"));
    if args.worker {
        return crate::workers::serve(&out, cfg, sweep.zeroshot.clone());
    }
    crate::execute::tidy(&out);
    let all = sweep.specs().map_err(anyhow::Error::msg)?;
    // Loads every dataset and resolves every model once: the dry run, the feature stage and the
    // Slurm submission go on with what it loaded.
    let assets = w2s_assets::Store::open();
    let mut checked = Runner::new(&assets, &out, cfg, Box::new(|_| {}))
        .with_zero_shot_templates(sweep.zeroshot.clone());
    let (all, skipped) = available_runs(&mut checked, &all, args.skip_unavailable)?;
    let grid = shard::grid_id(&all, &cfg, &sweep.zeroshot, &skipped);
    let entry = EXECUTORS
        .iter()
        .find(|e| e.name == args.executor)
        .context("unknown executor")?;
    let executor = (entry.build)(&args, &grid)?;
    if args.features_only {
        return features_only(checked, &all, args.shard, quiet);
    }
    let specs = match args.shard {
        Some(s) => {
            let picked = shard::select(&all, s);
            if picked.is_empty() {
                tracing::warn!(
                    "shard {s} has no runs: the grid has {} groups (dataset × seed)",
                    shard::groups(&all).len()
                );
            }
            picked
        }
        None => all.clone(),
    };
    let job = Grid {
        file: &args.file,
        specs: &specs,
        cfg,
        templates: &sweep.zeroshot,
        out: &out,
        quiet: quiet || args.json,
    };
    if args.dry_run {
        print_plan(&mut checked, &specs, args.json)?;
        return executor.show(&job).map_err(|e| anyhow::anyhow!(e));
    }
    // The runs load their rows again, with progress bars; these need not stay in memory.
    drop(checked);
    let outcome = executor.execute(&job).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(s) = args.shard {
        let result = shard::ShardResult {
            shard: s.to_string(),
            grid: grid.clone(),
            runs: outcome.records.len(),
            computed: outcome.counts.computed,
            reused: outcome.counts.reused,
            host: w2s_assets::cache::hostname(),
            seconds: start.elapsed().as_secs_f64(),
        };
        shard::write_result(&out, s, &result)?;
    }
    finish(&args, &out, &outcome.records, outcome.counts, quiet)
}

/// The runs of the grid whose datasets and models can all be had, and the inputs that cannot,
/// found before anything is trained (built-in assets are fetched here). Without `skip`, any
/// input that cannot be had is an error naming every one of them.
fn available_runs(
    runner: &mut Runner,
    all: &[RunSpec],
    skip: bool,
) -> Result<(Vec<RunSpec>, Vec<Missing>)> {
    let missing = runner.missing_inputs(all);
    if missing.is_empty() {
        return Ok((all.to_vec(), missing));
    }
    if !skip {
        bail!(
            "{}\n(--skip-unavailable runs the rest of the grid without them)",
            w2s_experiment::plan::describe_missing(&missing)
        );
    }
    let (kept, left_out) = w2s_experiment::plan::without_missing(all, &missing);
    for m in &missing {
        tracing::warn!("skipped (--skip-unavailable): {m}");
    }
    tracing::warn!(
        "--skip-unavailable: {} of {} runs left out; the other {} run",
        left_out.len(),
        all.len(),
        kept.len()
    );
    if kept.is_empty() {
        bail!("every run of the grid reads an input that cannot be had");
    }
    Ok((kept, missing))
}

/// `--dry-run`: the runs, then what they would compute and what is already stored.
fn print_plan(runner: &mut Runner, specs: &[RunSpec], json: bool) -> Result<()> {
    let plan = runner.plan(specs)?;
    if json {
        println!("{}", serde_json::to_string(&plan)?);
        return Ok(());
    }
    for s in specs {
        println!(
            "{}\t{}\t{}\tseed {}",
            s.dataset,
            s.chain.join(","),
            s.method.name(),
            s.seed
        );
    }
    println!("\n{} runs -> {}", plan.runs, runner.out().display());
    println!(
        "features: {} (model × dataset), {} to compute, {} cached",
        plan.features.len(),
        plan.to_embed(),
        plan.features.len() - plan.to_embed()
    );
    for f in &plan.features {
        println!(
            "  {:<24} {:<22} {}",
            f.model,
            f.dataset,
            if f.cached { "cached" } else { "to compute" }
        );
    }
    println!(
        "nodes: {}, {} to train, {} stored",
        plan.nodes.len(),
        plan.to_train(),
        plan.nodes.len() - plan.to_train()
    );
    for (role, train, stored) in plan.nodes_by_role() {
        println!("  {role:<10} {train:>6} to train {stored:>6} stored");
    }
    Ok(())
}

/// Prints the tables (or JSON) and writes the report.
fn finish(
    args: &SweepArgs,
    out: &Path,
    records: &[w2s_experiment::RunRecord],
    counts: w2s_experiment::NodeCounts,
    quiet: bool,
) -> Result<()> {
    let summary = w2s_experiment::summarize(records);
    warn_without_gap(&summary);
    if args.json {
        crate::execute::print_json(records, &summary, counts, out)?;
    } else {
        crate::execute::print_tables(records, &summary);
        println!(
            "{} runs; {} models trained, {} reused (store: {})",
            records.len(),
            counts.computed,
            counts.reused,
            out.join("store").display()
        );
    }
    if !args.no_report {
        let index = w2s_report::write_report(out, records)
            .with_context(|| format!("writing the report in {}", out.display()))?;
        if !args.json && !quiet {
            println!("report: {}", index.display());
        }
    }
    Ok(())
}

/// Warns about every direct pair of the grid whose ceiling − weak gap is not usable (see
/// `w2s scout`): its PGR is mostly seed noise.
fn warn_without_gap(summary: &[w2s_experiment::SummaryRow]) {
    use w2s_experiment::scout::Verdict;
    let mut seen = std::collections::BTreeSet::new();
    for r in summary.iter().filter(|r| r.chain.is_none()) {
        let gap = w2s_experiment::metrics::MeanCi {
            mean: r.gap,
            ci95: r.gap_ci95,
            n: r.n_seeds,
        };
        let verdict = Verdict::of(&gap);
        if verdict != Verdict::Usable && seen.insert((&r.dataset, &r.weak, &r.strong)) {
            tracing::warn!(
                "{}: {} -> {} has {} (gap {:+.1} ± {:.1} points over {} seeds): its PGR is mostly noise; `w2s scout` checks pairs before a sweep",
                r.dataset,
                r.weak,
                r.strong,
                verdict.name(),
                100.0 * gap.mean,
                100.0 * gap.ci95,
                r.n_seeds
            );
        }
    }
}

/// `--features-only`: the features of the grid; with `--shard i/N`, share `i` of the chunks of
/// every feature, dealt out across the whole list (see [`w2s_models::Share`]), so that N workers
/// split even a grid of one model on one dataset. The worker that completes a feature assembles it.
fn features_only(
    mut runner: Runner,
    all: &[RunSpec],
    shard: Option<Shard>,
    quiet: bool,
) -> Result<()> {
    let needs = runner.feature_needs(all);
    let Some(shard) = shard else {
        for (model, dataset) in &needs {
            runner
                .ensure_features(model, dataset)
                .with_context(|| format!("features of {model} on {dataset}"))?;
        }
        if !quiet {
            println!("{} features ready", needs.len());
        }
        return Ok(());
    };
    let (mut offset, mut computed, mut complete) = (0, 0, 0);
    for (model, dataset) in &needs {
        let share = w2s_models::Share {
            index: shard.index,
            count: shard.count,
            offset,
        };
        let report = runner
            .feature_share(model, dataset, share)
            .with_context(|| format!("features of {model} on {dataset}, share {shard}"))?;
        offset += runner.feature_chunks(model, dataset)?;
        computed += report.computed;
        complete += report.features.is_some() as usize;
    }
    if !quiet {
        println!(
            "share {shard}: {computed} rows embedded; {complete} of {} features complete",
            needs.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_short_chains_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "datasets = [\"tweets\"]\nmodel = [\"a\", \"b\"]\nlosses = [\"xent\"]\n",
        )
        .unwrap();
        let err = format!("{:#}", SweepFile::read(&bad).unwrap_err());
        assert!(err.contains("unknown field `model`"), "{err}");
        std::fs::write(
            &bad,
            "datasets = [\"tweets\"]\nchains = [[\"a\", \"b\"]]\nlosses = [\"xent\"]\n",
        )
        .unwrap();
        let err = format!("{:#}", SweepFile::read(&bad).unwrap_err());
        assert!(err.contains("at least three models"), "{err}");
    }
}
