//! A sweep file (`w2s sweep FILE.toml`): datasets × a model ladder, pairs or chains × methods ×
//! seeds, with `[experiment]` settings and zero-shot prompts, parsed and checked into the runs it
//! lists.
use crate::{ExperimentConfig, RunSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A sweep file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Output folder (relative to the current directory).
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Datasets (built-in names or paths).
    pub datasets: Vec<String>,
    /// A ladder, weakest first: every (weaker, stronger) pair is a run.
    #[serde(default)]
    pub models: Vec<String>,
    /// Explicit (weak, strong) pairs, in addition to the ladder's.
    #[serde(default)]
    pub pairs: Vec<[String; 2]>,
    /// Bootstrapping chains, weakest first.
    #[serde(default)]
    pub chains: Vec<Vec<String>>,
    /// Methods (`xent`, `conf-filter:0.8+xent`, ...; "all" for every one); `losses` is the same key.
    #[serde(alias = "losses")]
    pub methods: Vec<String>,
    /// Seeds 0..N.
    #[serde(default = "default_seeds")]
    pub seeds: u64,
    /// Zero-shot prompts by dataset (`[zeroshot.tweets] template = "...{text}..."`, `answers =
    /// [" no", " yes"]`), over the built-in ones.
    #[serde(default)]
    pub zeroshot: std::collections::BTreeMap<String, crate::methods::zeroshot::Template>,
    /// Shared settings, as written (merged over the mode's defaults by [`SweepFile::config`]).
    #[serde(default)]
    pub experiment: toml::Table,
}

/// The most runs one sweep file may list (the paper's whole probe grid is 2,730).
pub const MAX_RUNS: usize = 1_000_000;

fn default_seeds() -> u64 {
    3
}

impl SweepFile {
    /// The experiment settings: the file's `[experiment]` over the defaults of its mode (fine-tuning
    /// starts from fewer rows, fewer epochs, a smaller batch and rate, as `w2s run` does).
    pub fn config(&self) -> Result<ExperimentConfig, String> {
        ExperimentConfig::from_table(&self.experiment)
            .map_err(|e| format!("reading [experiment]: {e}"))
    }

    /// Reads and checks a sweep file.
    pub fn read(path: &Path) -> Result<SweepFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let sweep: SweepFile =
            toml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
        if sweep.datasets.is_empty() {
            return Err(format!("{}: `datasets` is empty", path.display()));
        }
        if sweep.models.len() < 2 && sweep.pairs.is_empty() && sweep.chains.is_empty() {
            return Err(format!(
                "{}: give at least two `models`, or `pairs`, or `chains`",
                path.display()
            ));
        }
        if let Some(c) = sweep.chains.iter().find(|c| c.len() < 3) {
            return Err(format!(
                "{}: chain {c:?} needs at least three models (use `pairs` for two)",
                path.display()
            ));
        }
        if let Some((d, _)) = sweep
            .zeroshot
            .iter()
            .find(|(_, t)| !t.template.contains("{text}"))
        {
            return Err(format!(
                "{}: [zeroshot.{d}] template has no {{text}} for the row",
                path.display()
            ));
        }
        if sweep.seeds == 0 {
            return Err(format!("{}: `seeds` must be at least 1", path.display()));
        }
        sweep
            .config()
            .map_err(|e| format!("{}: [experiment]: {e}", path.display()))?;
        Ok(sweep)
    }

    /// Every run, ordered so that runs sharing a dataset, seed and weak model are adjacent.
    pub fn specs(&self) -> Result<Vec<RunSpec>, String> {
        let methods = crate::parse_methods(&self.methods)?;
        let mut chains: Vec<Vec<String>> = Vec::new();
        for (i, weak) in self.models.iter().enumerate() {
            for strong in &self.models[i + 1..] {
                chains.push(vec![weak.clone(), strong.clone()]);
            }
        }
        for [w, s] in &self.pairs {
            let c = vec![w.clone(), s.clone()];
            if !chains.contains(&c) {
                chains.push(c);
            }
        }
        chains.extend(self.chains.iter().cloned());
        // Counted before anything is built: `seeds = 10000000000` must be an error, not an
        // attempt to hold that many runs (found by w2s-fuzz).
        let runs = [self.datasets.len(), chains.len(), methods.len()]
            .into_iter()
            .try_fold(usize::try_from(self.seeds).unwrap_or(usize::MAX), |n, k| {
                n.checked_mul(k)
            })
            .unwrap_or(usize::MAX);
        if runs > MAX_RUNS {
            return Err(format!(
                "the grid has {} runs (datasets × seeds × model pairs × methods = {} × {} × {} × {}); \
                 at most {MAX_RUNS} in one sweep",
                if runs == usize::MAX { "too many".to_string() } else { runs.to_string() },
                self.datasets.len(),
                self.seeds,
                chains.len(),
                methods.len()
            ));
        }
        let mut specs = Vec::new();
        for d in &self.datasets {
            for seed in 0..self.seeds {
                for chain in &chains {
                    for method in &methods {
                        specs.push(RunSpec {
                            dataset: d.clone(),
                            chain: chain.clone(),
                            method: method.clone(),
                            seed,
                        });
                    }
                }
            }
        }
        Ok(specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_probe_config_covers_the_ladder_every_loss_and_five_seeds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/paper-probe.toml");
        let sweep = SweepFile::read(&path).unwrap();
        let specs = sweep.specs().unwrap();
        // 6 datasets × 5 seeds × (6 ladder pairs + 1 chain) × every method of the registry
        assert_eq!(specs.len(), 6 * 5 * 7 * crate::Method::all().len());
        assert_eq!(sweep.config().unwrap().max_rows, 6000);
        let pairs: std::collections::BTreeSet<_> = specs.iter().map(|s| s.chain.clone()).collect();
        assert!(pairs.contains(&vec!["minilm-l3".to_string(), "mpnet-base".to_string()]));
        assert!(!pairs.contains(&vec!["mpnet-base".to_string(), "minilm-l3".to_string()]));
    }

    #[test]
    fn gpt2_ladder_config_reads_hf_models() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/gpt2-ladder.toml");
        let sweep = SweepFile::read(&path).unwrap();
        let specs = sweep.specs().unwrap();
        // 3 datasets × 3 seeds × (6 ladder pairs + 2 pairs + 1 chain) × 2 methods
        assert_eq!(specs.len(), 3 * 3 * 9 * 2);
        assert!(specs
            .iter()
            .all(|s| s.chain.iter().all(|m| m.starts_with("hf:"))));
    }

    #[test]
    fn a_grid_too_large_to_hold_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.toml");
        let body = "datasets = [\"tweets\"]\nmodels = [\"a\", \"b\"]\nlosses = [\"xent\"]\n";
        std::fs::write(&f, format!("{body}seeds = 10000000000\n")).unwrap();
        let err = SweepFile::read(&f).unwrap().specs().unwrap_err();
        assert!(
            err.contains("10000000000 runs") && err.contains("at most 1000000"),
            "{err}"
        );
        // Three datasets × the largest seed count TOML holds overflows the count itself.
        let three = body.replace("[\"tweets\"]", "[\"tweets\", \"sst2\", \"imdb\"]");
        std::fs::write(&f, format!("{three}seeds = 9223372036854775807\n")).unwrap();
        let err = SweepFile::read(&f).unwrap().specs().unwrap_err();
        assert!(err.contains("too many runs"), "{err}");
    }

    #[test]
    fn dtype_is_an_experiment_setting() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bf16.toml");
        let body = "datasets = [\"tweets\"]\nmodels = [\"a\", \"b\"]\nlosses = [\"xent\"]\n";
        std::fs::write(&f, format!("{body}[experiment]\ndtype = \"bf16\"\n")).unwrap();
        let cfg = SweepFile::read(&f).unwrap().config().unwrap();
        assert_eq!(cfg.dtype, w2s_models::WeightDtype::Bf16);
        std::fs::write(&f, format!("{body}[experiment]\ndtype = \"int8\"\n")).unwrap();
        let cfg = SweepFile::read(&f).unwrap().config().unwrap();
        assert_eq!(cfg.dtype, w2s_models::WeightDtype::Int8);
        std::fs::write(&f, format!("{body}[experiment]\ndtype = \"f8\"\n")).unwrap();
        assert!(SweepFile::read(&f).and_then(|s| s.config()).is_err());
    }

    #[test]
    fn finetune_mode_starts_from_the_finetune_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ft.toml");
        std::fs::write(
            &f,
            "datasets = [\"tweets\"]\nmodels = [\"a\", \"b\"]\nlosses = [\"xent\"]\n\
             [experiment]\nmode = \"finetune\"\n[experiment.train]\nepochs = 5\n",
        )
        .unwrap();
        let cfg = SweepFile::read(&f).unwrap().config().unwrap();
        assert_eq!(cfg.mode, crate::Mode::Finetune);
        assert_eq!(cfg.max_rows, 2000);
        assert_eq!(cfg.train.lr, 5e-5);
        assert_eq!(cfg.train.epochs, 5, "the file's value wins");
        std::fs::write(&f, "datasets = [\"tweets\"]\nmodels = [\"a\", \"b\"]\nlosses = [\"xent\"]\n[experiment]\nmax_row = 3\n").unwrap();
        let err = format!("{:#}", SweepFile::read(&f).unwrap_err());
        assert!(err.contains("unknown field `max_row`"), "{err}");
    }

    #[test]
    fn zero_shot_prompts_are_read_from_the_sweep_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("zs.toml");
        let body = "datasets = [\"tweets\"]\nmodels = [\"a\", \"b\"]\nmethods = [\"zeroshot\"]\n";
        std::fs::write(
            &f,
            format!("{body}[zeroshot.tweets]\ntemplate = \"T: {{text}}\"\nanswers = [\" bad\", \" good\"]\n"),
        )
        .unwrap();
        let sweep = SweepFile::read(&f).unwrap();
        assert_eq!(sweep.zeroshot["tweets"].prompt("x"), "T: x");
        assert_eq!(sweep.zeroshot["tweets"].answers[1], " good");
        std::fs::write(
            &f,
            format!("{body}[zeroshot.tweets]\ntemplate = \"T:\"\nanswers = [\" a\", \" b\"]\n"),
        )
        .unwrap();
        let err = format!("{:#}", SweepFile::read(&f).unwrap_err());
        assert!(
            err.contains("[zeroshot.tweets] template has no {text}"),
            "{err}"
        );
    }
}
