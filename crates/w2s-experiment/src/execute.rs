//! How a grid of runs is executed: one plan of its stages, a runner that computes any one stage,
//! and the [`Executor`] trait that every way of running a grid implements (in this process,
//! worker processes on this machine, a Slurm cluster; `w2s-cli` registers them).
//!
//! Every stage is a node of the content-addressed store computed from its own seed, so the records
//! are the same whichever executor ran the stages, and in whatever order.
use crate::methods::zeroshot::Template;
use crate::{ExperimentConfig, NodeCounts, RunRecord, RunSpec, Runner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One stage of the grid: what an executor hands to whatever runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Pooled features of a model on a dataset, or one share of their rows.
    Features {
        /// Model name.
        model: String,
        /// Dataset name.
        dataset: String,
        /// This share's index and the number of shares (`None`: all rows).
        #[serde(default)]
        share: Option<(usize, usize)>,
    },
    /// The weak supervisor of a run.
    Weak {
        /// The run.
        spec: RunSpec,
    },
    /// The strong ceiling of a run.
    Ceiling {
        /// The run.
        spec: RunSpec,
    },
    /// The whole run (its students; the rest is stored by then) and its record.
    Run {
        /// The run.
        spec: RunSpec,
    },
}

impl Stage {
    /// The stage in a few words, for progress and errors.
    pub fn describe(&self) -> String {
        match self {
            Stage::Features {
                model,
                dataset,
                share,
            } => {
                let part = share.map_or(String::new(), |(i, n)| format!(", share {i}/{n}"));
                format!("features of {model} on {dataset}{part}")
            }
            Stage::Weak { spec } => format!(
                "weak {} on {} (seed {})",
                spec.weak(),
                spec.dataset,
                spec.seed
            ),
            Stage::Ceiling { spec } => format!(
                "ceiling {} on {} (seed {})",
                spec.strong(),
                spec.dataset,
                spec.seed
            ),
            Stage::Run { spec } => spec.describe(),
        }
    }
}

/// A stage with the stages it waits for.
pub struct Task {
    /// What to compute.
    pub stage: Stage,
    /// The tasks (indices into the plan) it waits for.
    pub deps: Vec<usize>,
}

/// The grid's stages in the order they are handed out (features, supervisors, runs), each once.
/// Each model's features on a dataset are split into `shares` tasks, so that the workers share
/// even a grid of one model's features; the stages that read them wait for every share.
pub fn plan(runner: &Runner, specs: &[RunSpec], shares: usize) -> Vec<Task> {
    let mut tasks: Vec<Task> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut add = |tasks: &mut Vec<Task>, key: String, stage: Stage, deps: Vec<usize>| -> usize {
        *index.entry(key).or_insert_with(|| {
            tasks.push(Task { stage, deps });
            tasks.len() - 1
        })
    };
    let mut features_of = |tasks: &mut Vec<Task>, spec: &RunSpec| -> Vec<(String, usize)> {
        runner
            .feature_needs(std::slice::from_ref(spec))
            .into_iter()
            .flat_map(|(model, dataset)| {
                let n = shares.max(1);
                (0..n)
                    .map(|i| {
                        let key = format!("F|{model}|{dataset}|{i}");
                        let stage = Stage::Features {
                            model: model.clone(),
                            dataset: dataset.clone(),
                            share: (n > 1).then_some((i, n)),
                        };
                        (model.clone(), add(tasks, key, stage, Vec::new()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut per_spec = Vec::new();
    for spec in specs {
        per_spec.push(features_of(&mut tasks, spec));
    }
    let mut supervisors = Vec::new();
    for (spec, feats) in specs.iter().zip(&per_spec) {
        let of = |models: &[&str]| -> Vec<usize> {
            feats
                .iter()
                .filter(|(m, _)| models.contains(&m.as_str()))
                .map(|(_, t)| *t)
                .collect()
        };
        let weak_models = spec.weak_members();
        let bag = spec.method.bagged_weak_models();
        let (d, seed) = (&spec.dataset, spec.seed);
        let w = add(
            &mut tasks,
            format!("W|{d}|{seed}|{}|{bag}", spec.weak()),
            Stage::Weak { spec: spec.clone() },
            of(&weak_models),
        );
        let c = add(
            &mut tasks,
            format!("C|{d}|{seed}|{}", spec.strong()),
            Stage::Ceiling { spec: spec.clone() },
            of(&[spec.strong()]),
        );
        supervisors.push((w, c));
    }
    for ((spec, feats), (w, c)) in specs.iter().zip(&per_spec).zip(supervisors) {
        let mut deps = vec![w, c];
        deps.extend(feats.iter().map(|(_, t)| *t));
        tasks.push(Task {
            stage: Stage::Run { spec: spec.clone() },
            deps,
        });
    }
    tasks
}

/// A grid as an executor receives it.
#[derive(Clone, Copy)]
pub struct Grid<'a> {
    /// The sweep file (executors in other processes read it again).
    pub file: &'a Path,
    /// The runs, in the order their records are returned.
    pub specs: &'a [RunSpec],
    /// The settings.
    pub cfg: ExperimentConfig,
    /// Zero-shot prompts by dataset.
    pub templates: &'a BTreeMap<String, Template>,
    /// The output folder, whose store every process shares.
    pub out: &'a Path,
    /// No progress bars.
    pub quiet: bool,
}

/// What an executor returns: a record per run, in the grid's order, and the nodes trained and
/// reused by everything it started.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The records.
    pub records: Vec<RunRecord>,
    /// Nodes trained and reused.
    pub counts: NodeCounts,
}

/// An executor's failure, with its context (an `anyhow::Error` converts into it).
pub type ExecutorError = Box<dyn std::error::Error + Send + Sync>;

/// A way of executing a grid. Implementations plan with [`plan`], hand the stages to whatever
/// computes them (each through [`Runner::run_stage`]), and return the records.
pub trait Executor {
    /// The name `--executor` gives it.
    fn name(&self) -> &'static str;
    /// Runs every stage of the grid that is not stored yet.
    fn execute(&self, grid: &Grid) -> Result<Outcome, ExecutorError>;
    /// For `--dry-run`: shows what it would submit beyond the plan (a batch script, say), and
    /// runs nothing.
    fn show(&self, _grid: &Grid) -> Result<(), ExecutorError> {
        Ok(())
    }
}

impl Runner<'_> {
    /// Computes one stage (or reads it from the store); a run stage returns its record.
    pub fn run_stage(&mut self, stage: &Stage) -> crate::runner::Result<Option<RunRecord>> {
        match stage {
            Stage::Features {
                model,
                dataset,
                share: None,
            } => self.ensure_features(model, dataset).map(|()| None),
            Stage::Features {
                model,
                dataset,
                share: Some((index, count)),
            } => self
                .feature_share(
                    model,
                    dataset,
                    w2s_models::Share {
                        index: *index,
                        count: *count,
                        offset: 0,
                    },
                )
                .map(|_| None),
            Stage::Weak { spec } => self.ensure_weak(spec).map(|()| None),
            Stage::Ceiling { spec } => self.ensure_ceiling(spec).map(|()| None),
            Stage::Run { spec } => self.run(spec).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_wait_for_features_and_supervisors_and_are_planned_once() {
        let assets_dir = tempfile::tempdir().unwrap();
        let assets = w2s_assets::Store::at(assets_dir.path());
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(
            &assets,
            dir.path(),
            ExperimentConfig::default(),
            Box::new(|_| {}),
        );
        let m = |s: &str| crate::Method::parse(s).unwrap();
        let spec = |weak: &str, strong: &str, method: &str| RunSpec {
            dataset: "tweets".into(),
            chain: vec![weak.into(), strong.into()],
            method: m(method),
            seed: 0,
        };
        let specs = vec![
            spec("a", "b", "xent"),
            spec("a", "b", "logconf"),
            spec("a", "c", "xent"),
        ];
        let tasks = plan(&runner, &specs, 1);
        let kinds: Vec<&str> = tasks
            .iter()
            .map(|t| match t.stage {
                Stage::Features { .. } => "F",
                Stage::Weak { .. } => "W",
                Stage::Ceiling { .. } => "C",
                Stage::Run { .. } => "R",
            })
            .collect();
        // features of a, b, c; one weak model a; ceilings b and c; three runs
        assert_eq!(kinds, ["F", "F", "F", "W", "C", "C", "R", "R", "R"]);
        assert_eq!(
            tasks[3].deps,
            vec![0],
            "the weak model waits for its features"
        );
        assert_eq!(tasks[5].deps, vec![2]);
        assert_eq!(tasks[8].deps, vec![3, 5, 0, 2]);
        for (i, t) in tasks.iter().enumerate() {
            assert!(
                t.deps.iter().all(|&d| d < i),
                "a stage waits only for earlier ones"
            );
        }
        // Two workers: each feature is two shares, and its readers wait for both.
        let tasks = plan(&runner, &specs, 2);
        let shares: Vec<Option<(usize, usize)>> = tasks
            .iter()
            .filter_map(|t| match &t.stage {
                Stage::Features { share, .. } => Some(*share),
                _ => None,
            })
            .collect();
        assert_eq!(shares.len(), 6);
        assert!(shares.iter().all(|s| matches!(s, Some((_, 2)))));
        assert!(matches!(tasks[6].stage, Stage::Weak { .. }));
        assert_eq!(
            tasks[6].deps,
            vec![0, 1],
            "the weak model waits for both shares"
        );
    }

    /// Every stage of a synthetic grid, run in plan order by one runner, gives the records of
    /// running the specs directly, and reads every node back the second time.
    #[test]
    fn running_the_plan_stage_by_stage_equals_running_the_specs() {
        let assets_dir = tempfile::tempdir().unwrap();
        let assets = w2s_assets::Store::at(assets_dir.path());
        let spec = |seed: u64, method: &str| RunSpec {
            dataset: "synthetic?rows=300&dim=8".into(),
            chain: vec!["synthetic:1.5".into(), "synthetic".into()],
            method: crate::Method::parse(method).unwrap(),
            seed,
        };
        let specs = vec![spec(0, "xent"), spec(0, "logconf"), spec(1, "xent")];
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut direct = Runner::new(
            &assets,
            a.path(),
            ExperimentConfig::default(),
            Box::new(|_| {}),
        );
        let want: Vec<RunRecord> = specs.iter().map(|s| direct.run(s).unwrap()).collect();
        let mut staged = Runner::new(
            &assets,
            b.path(),
            ExperimentConfig::default(),
            Box::new(|_| {}),
        );
        let tasks = plan(&staged, &specs, 1);
        let got: Vec<RunRecord> = tasks
            .iter()
            .filter_map(|t| staged.run_stage(&t.stage).unwrap())
            .collect();
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
        // Weak and ceiling stages ran before the runs, which then read them back.
        assert_eq!(staged.counts.computed, direct.counts.computed);
    }
}
