//! Runs the experiment graph of one run (see docs/experiment.md), reusing every stage already in
//! the store:
//!
//! ```text
//! dataset ─ subset (balance, cap) ─ split(seed) ─┬─ weak:    W on A, ground truth ──┐ labels of B, val
//!                                                ├─ ceiling: S on B, ground truth   │
//!                                                └─ student: S on B, W's labels ◄───┘ (chain: W → M1 → … → S)
//! ```
//!
//! Each trained model is a node keyed by the hash of its inputs: the rows (dataset content hash,
//! subset, split seed), the model's weights, what it was trained on (ground truth or the key of the
//! labelling node), the loss and every hyper-parameter. A node stores the model's class-1
//! probability for every row of the subset (K classes: each row's K probabilities), so labels and
//! metrics are views of it.

mod graph;
mod inputs;
mod keys;
mod nodes;

use crate::config::{ExperimentConfig, LabelForm, Mode, RunSpec};
use crate::methods::zeroshot::Template;
use crate::methods::{apply_steps, Labels, Method, StepInput};
use crate::metrics;
pub use crate::node::TrainedNode;
use crate::plan::{InputKind, Missing, Plan, PlannedFeatures, PlannedNode};
use crate::store::{key_of, NodeStore};
use candle_core::Device;
pub use inputs::rows_of;
use nodes::{one_hot, Supervision};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use w2s_assets::Store;
use w2s_data::{Dataset, Split, SplitConfig};
use w2s_models::{FeatureRequest, Features, ModelSource};
use w2s_train::{
    fit, ClassifierRequest, EncoderClassifier, FitReport, FitRequest, Loss, Scored, Trainable,
};

/// Errors of an experiment, each naming the stage it happened in.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A dataset could not be loaded.
    #[error("dataset {name}: {cause}")]
    Data {
        /// Dataset name or path.
        name: String,
        /// Cause (boxed: the error type is large; not a `source`, the message already has it).
        cause: Box<w2s_data::DataError>,
    },
    /// A model could not be resolved or run.
    #[error("model {name}: {cause}")]
    Model {
        /// Model name or path.
        name: String,
        /// Cause (boxed: the error type is large; not a `source`, the message already has it).
        cause: Box<w2s_models::ModelError>,
    },
    /// Training failed.
    #[error(transparent)]
    Train(#[from] w2s_train::TrainError),
    /// A result could not be written.
    #[error("writing {path}: {cause}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// The run is not well formed.
    #[error("{0}")]
    Spec(String),
    /// Datasets or models the runs read that cannot be had; nothing was trained.
    #[error("{}", crate::plan::describe_missing(.0))]
    Unavailable(Vec<Missing>),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ExperimentError>;

impl<'a> Event<'a> {
    /// The event of a feature computation's progress report.
    fn embedding(model: &'a str, dataset: &'a str, p: w2s_models::EmbedProgress) -> Self {
        Event::Embedding {
            model,
            dataset,
            done: p.done,
            total: p.total,
            resumed: p.resumed,
        }
    }
}

/// Progress reported while running.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Features are being computed: rows done of total.
    Embedding {
        /// Model name.
        model: &'a str,
        /// Dataset name.
        dataset: &'a str,
        /// Rows embedded so far.
        done: usize,
        /// Rows to embed.
        total: usize,
        /// Rows an earlier, interrupted pass had already embedded (counted in `done`).
        resumed: usize,
    },
    /// A node was trained (`reused == false`) or read from the store.
    Node {
        /// What the node is ("weak", "ceiling", "student").
        role: &'a str,
        /// Model name.
        model: &'a str,
        /// True when it came from the store.
        reused: bool,
    },
}

/// A dataset's experiment rows and their labels.
struct Prepared {
    dataset: Dataset,
    labels: Vec<u8>,
    /// K: every label is below it (2 for binary sets).
    classes: usize,
    /// An image dataset's images, one per row of `dataset` (whose texts are empty).
    images: Option<Vec<w2s_data::images::ImageRow>>,
    /// A choice view (`REF?choices`): the rows of `dataset` are questions, and models read
    /// their candidates.
    choices: Option<Choices>,
}

/// The candidates of a choice view's questions.
struct Choices {
    /// The candidate rows (binary), whose texts the models embed.
    candidates: Dataset,
    /// Per question (row of the view), its candidates' rows in `candidates`, in choice order.
    questions: Vec<Vec<usize>>,
}

impl Prepared {
    /// The rows whose texts a model embeds: the candidates of a choice view, else the rows.
    fn embedded(&self) -> &Dataset {
        self.choices
            .as_ref()
            .map_or(&self.dataset, |c| &c.candidates)
    }

    /// How each row's features are found among [`Prepared::embedded`]'s: `None` when row i has
    /// row i's; a choice view's questions otherwise.
    fn questions(&self) -> Option<&[Vec<usize>]> {
        self.choices.as_ref().map(|c| c.questions.as_slice())
    }
}

/// A row a student trains on, with the weak supervisor's probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct WeakRow {
    /// The dataset's row id.
    pub id: String,
    /// The row's text.
    pub text: String,
    /// The weak supervisor's probability of each class (K values, binary too).
    pub weak: Vec<f64>,
}

/// A test row and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledRow {
    /// The dataset's row id.
    pub id: String,
    /// The row's text.
    pub text: String,
    /// Ground truth.
    pub label: u8,
}

/// One split's rows as a benchmark serves them ([`Runner::benchmark_rows`]).
#[derive(Debug, Clone)]
pub struct BenchmarkRows {
    /// K.
    pub classes: usize,
    /// B, then val: the rows a student trains on.
    pub train: Vec<WeakRow>,
    /// The test rows.
    pub test: Vec<LabelledRow>,
}

/// Counts of nodes trained and reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Trained in this process.
    pub computed: usize,
    /// Read from the store.
    pub reused: usize,
}

/// Runs specs against one asset cache and one output folder, keeping loaded data in memory.
pub struct Runner<'a> {
    assets: &'a Store,
    out: PathBuf,
    nodes: NodeStore,
    cfg: ExperimentConfig,
    device: Device,
    datasets: HashMap<String, Rc<Prepared>>,
    features: HashMap<(String, String), Rc<(Features, String)>>,
    sources: HashMap<String, inputs::Backbone>,
    /// Where pooled features are cached (`features/` under it): the asset cache's root unless set.
    feature_root: PathBuf,
    /// Zero-shot prompts by dataset, over the built-in ones.
    templates: BTreeMap<String, Template>,
    /// Nodes trained and reused so far.
    pub counts: NodeCounts,
    on_event: Box<dyn FnMut(Event) + 'a>,
    /// Set while [`Runner::plan`] walks the graph: nothing is trained or written then.
    dry: Option<DryRun>,
}

/// What a dry walk of the graph has found so far.
#[derive(Default)]
struct DryRun {
    /// Nodes met, each once.
    nodes: Vec<PlannedNode>,
    seen: HashSet<String>,
    /// Keys of the nodes that would be trained: their predictions are placeholders.
    planned: HashSet<String>,
}

/// The rows of each part of a split and the key naming it.
struct SplitRows {
    split: Split,
    key: String,
}

impl<'a> Runner<'a> {
    /// A runner writing its store under `out/store` and run results under `out/runs`.
    pub fn new(
        assets: &'a Store,
        out: &Path,
        cfg: ExperimentConfig,
        on_event: Box<dyn FnMut(Event) + 'a>,
    ) -> Runner<'a> {
        Runner {
            assets,
            out: out.to_path_buf(),
            nodes: NodeStore::at(out.join("store")),
            cfg,
            device: w2s_models::default_device(),
            datasets: HashMap::new(),
            features: HashMap::new(),
            sources: HashMap::new(),
            feature_root: assets.root().to_path_buf(),
            templates: BTreeMap::new(),
            counts: NodeCounts::default(),
            on_event,
            dry: None,
        }
    }

    /// Zero-shot prompts for some datasets, used instead of the built-in ones
    /// ([`crate::methods::zeroshot`]); a run's record and node keys name the prompt it used.
    pub fn with_zero_shot_templates(mut self, templates: BTreeMap<String, Template>) -> Runner<'a> {
        self.templates = templates;
        self
    }

    fn template(&self, dataset: &str) -> Template {
        self.templates
            .get(dataset)
            .cloned()
            .unwrap_or_else(|| crate::methods::zeroshot::template_for(dataset))
    }

    /// Caches pooled features under `root/features` instead of the asset cache (features depend
    /// only on the model and the rows, so this changes where they are kept, never a result).
    pub fn with_feature_root(mut self, root: &Path) -> Runner<'a> {
        self.feature_root = root.to_path_buf();
        self
    }

    /// The output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The settings.
    pub fn config(&self) -> &ExperimentConfig {
        &self.cfg
    }

    /// Resolves every model and loads every dataset of `specs` into the runner's caches, so that a
    /// misspelt name or an unusable dataset fails before any training (and missing assets are
    /// fetched up front). The error names every input that cannot be had, not only the first.
    pub fn prepare(&mut self, specs: &[RunSpec]) -> Result<()> {
        if let Some(spec) = specs.iter().find(|s| s.averages_a_student()) {
            return Err(ExperimentError::Spec(format!(
                "{:?}: only the weak model may be an average of models (a+b)",
                spec.chain
            )));
        }
        let missing = self.missing_inputs(specs);
        if !missing.is_empty() {
            return Err(ExperimentError::Unavailable(missing));
        }
        for spec in specs {
            for model in spec.models() {
                self.check_modality(model, &spec.dataset)?;
            }
        }
        Ok(())
    }

    /// An error when `model` cannot read `dataset`'s rows: an image model on texts, a text model
    /// on images.
    fn check_modality(&mut self, model: &str, dataset: &str) -> Result<()> {
        let data = self.prepared(dataset)?;
        let image_model = matches!(self.backbone(model)?, inputs::Backbone::Image(_));
        match (image_model, data.images.is_some()) {
            (true, false) => Err(ExperimentError::Spec(format!(
                "{model} is an image model and {dataset} holds texts: use a text model"
            ))),
            (false, true) => Err(ExperimentError::Spec(format!(
                "{model} is a text model and {dataset} holds images: use {}, {} or a vision folder",
                w2s_models::PIXELS,
                w2s_models::vision::vision_builtin_names()
            ))),
            _ => Ok(()),
        }
    }

    /// Every dataset and model of `specs` that cannot be loaded (each once: datasets first, then
    /// models, in the order the specs name them), fetching what is missing from the cache. What
    /// loads is kept for the runs.
    pub fn missing_inputs(&mut self, specs: &[RunSpec]) -> Vec<Missing> {
        let mut inputs: Vec<(InputKind, &str)> = Vec::new();
        for spec in specs {
            let names = std::iter::once((InputKind::Dataset, spec.dataset.as_str()))
                .chain(spec.models().into_iter().map(|m| (InputKind::Model, m)));
            for input in names {
                if !inputs.contains(&input) {
                    inputs.push(input);
                }
            }
        }
        // Datasets first, then models, each in the order the specs name them.
        inputs.sort_by_key(|(kind, _)| *kind);
        let mut missing = Vec::new();
        for (kind, name) in inputs {
            let loaded = match kind {
                InputKind::Dataset => self.prepared(name).map(|_| ()),
                InputKind::Model => self.backbone(name).map(|_| ()),
            };
            if let Err(e) = loaded {
                let reason = match e {
                    ExperimentError::Data { cause, .. } => cause.to_string(),
                    ExperimentError::Model { cause, .. } => cause.to_string(),
                    other => other.to_string(),
                };
                missing.push(Missing {
                    kind,
                    name: name.to_string(),
                    reason,
                });
            }
        }
        missing
    }

    /// What the runs of `specs` would compute, found without training or writing anything: the
    /// features they read and every node of their graphs, each marked as already stored or not.
    /// Datasets and models are resolved first (fetching what is missing); any that cannot be had
    /// is an error naming all of them.
    pub fn plan(&mut self, specs: &[RunSpec]) -> Result<Plan> {
        self.prepare(specs)?;
        let mut features = Vec::new();
        for (model, dataset) in self.feature_needs(specs) {
            let cached = self.features_cached(&model, &dataset)?;
            features.push(PlannedFeatures {
                model,
                dataset,
                cached,
            });
        }
        self.dry = Some(DryRun::default());
        let walked = specs.iter().try_for_each(|s| self.walk(s).map(|_| ()));
        let dry = self.dry.take().unwrap_or_default();
        walked?;
        Ok(Plan {
            runs: specs.len(),
            features,
            nodes: dry.nodes,
        })
    }

    /// Trains (or reads from the store) the weak supervisor of `spec`: its first stage.
    pub fn ensure_weak(&mut self, spec: &RunSpec) -> Result<()> {
        let data = self.prepared(&spec.dataset)?;
        let split = self.split_rows(&data, spec.seed);
        self.weak(spec, &data, &split).map(|_| ())
    }

    /// Trains (or reads from the store) the strong ceiling of `spec`, which no other stage needs.
    pub fn ensure_ceiling(&mut self, spec: &RunSpec) -> Result<()> {
        let data = self.prepared(&spec.dataset)?;
        let split = self.split_rows(&data, spec.seed);
        let b = split.split.b.clone();
        self.ground_truth("ceiling", spec.strong(), &data, &split, &b, spec.seed)
            .map(|_| ())
    }

    /// Test accuracies of `model` trained on ground truth on A (as a weak model is) and on B (as
    /// a ceiling is) of `dataset` at `seed`, through the same nodes a run uses, so that a later
    /// sweep into the same folder reuses them.
    pub fn ground_truth_accuracies(
        &mut self,
        model: &str,
        dataset: &str,
        seed: u64,
    ) -> Result<[f64; 2]> {
        let data = self.prepared(dataset)?;
        let split = self.split_rows(&data, seed);
        let (a, b) = (split.split.a.clone(), split.split.b.clone());
        let as_weak = self.ground_truth("weak", model, &data, &split, &a, seed)?;
        let as_ceiling = self.ground_truth("ceiling", model, &data, &split, &b, seed)?;
        let test = &split.split.test;
        let y: Vec<usize> = test.iter().map(|&r| data.labels[r] as usize).collect();
        Ok([
            crate::kclass::accuracy(&as_weak.classes_of(test), &y),
            crate::kclass::accuracy(&as_ceiling.classes_of(test), &y),
        ])
    }

    /// The rows of `spec`'s split as a benchmark serves them (`w2s serve`): the rows a student
    /// trains on (B, then val) with the weak supervisor's probabilities, and the test rows with
    /// their labels, which the server keeps to itself. The weak supervisor is the run's own node,
    /// read from the store when a run has trained it. Texts only: image rows have none to serve.
    pub fn benchmark_rows(&mut self, spec: &RunSpec) -> Result<BenchmarkRows> {
        let data = self.prepared(&spec.dataset)?;
        if data.images.is_some() {
            return Err(ExperimentError::Spec(format!(
                "{}: a benchmark serves texts, and this dataset holds images",
                spec.dataset
            )));
        }
        let split = self.split_rows(&data, spec.seed);
        let weak = self.weak(spec, &data, &split)?;
        let examples = &data.dataset.examples;
        let trained: Vec<usize> = split
            .split
            .b
            .iter()
            .chain(&split.split.val)
            .copied()
            .collect();
        let probs = weak.classes_of(&trained);
        let train = trained
            .iter()
            .enumerate()
            .map(|(i, &r)| WeakRow {
                id: examples[r].id.clone(),
                text: examples[r].text.clone(),
                weak: probs.row(i).to_vec(),
            })
            .collect();
        let test = split
            .split
            .test
            .iter()
            .map(|&r| LabelledRow {
                id: examples[r].id.clone(),
                text: examples[r].text.clone(),
                label: data.labels[r],
            })
            .collect();
        Ok(BenchmarkRows {
            classes: data.classes,
            train,
            test,
        })
    }

    /// The sizes of A, B, val and test of `dataset` at `seed`.
    pub fn split_sizes(&mut self, dataset: &str, seed: u64) -> Result<[usize; 4]> {
        let data = self.prepared(dataset)?;
        let s = self.split_rows(&data, seed).split;
        Ok([s.a.len(), s.b.len(), s.val.len(), s.test.len()])
    }

    /// The accuracy of always answering the more common label on the test rows of `dataset` at
    /// `seed`: chance level.
    pub fn test_majority_share(&mut self, dataset: &str, seed: u64) -> Result<f64> {
        let data = self.prepared(dataset)?;
        let test = self.split_rows(&data, seed).split.test;
        let mut counts = vec![0usize; data.classes];
        for &i in &test {
            counts[data.labels[i] as usize] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(0);
        Ok(most as f64 / test.len().max(1) as f64)
    }
}
