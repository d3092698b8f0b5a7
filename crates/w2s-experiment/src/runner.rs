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
//! probability for every row of the subset, so labels and metrics are views of it.
use crate::config::{ExperimentConfig, LabelForm, Mode, RunSpec};
use crate::methods::zeroshot::Template;
use crate::methods::{apply_steps, Labels, Method, StepInput};
use crate::metrics;
pub use crate::node::TrainedNode;
use crate::plan::{InputKind, Missing, Plan, PlannedFeatures, PlannedNode};
use crate::store::{key_of, NodeStore};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use w2s_assets::Store;
use w2s_data::{Dataset, Split, SplitConfig};
use w2s_models::{FeatureRequest, Features, ModelSource};
use w2s_train::{
    fit, ClassifierRequest, EncoderClassifier, FitReport, FitRequest, LinearProbe, Loss, Scored,
    Trainable,
};

/// Bumped when a stage's computation changes in a way its key does not capture.
const STAGE_VERSION: u32 = 1;

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
    sources: HashMap<String, Rc<ModelSource>>,
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

/// The nodes of one run, trained or read from the store (or planned, in a dry walk).
struct Walked {
    data: Rc<Prepared>,
    split: SplitRows,
    weak: Rc<TrainedNode>,
    ceiling: Rc<TrainedNode>,
    student: Rc<TrainedNode>,
    direct: Option<Rc<TrainedNode>>,
}

/// What a model is trained on: rows of the dataset, their targets, the labels its early stopping
/// reads on val, the loss, and a name for the store key (`ground-truth` or the teacher's node).
struct Supervision<'a> {
    rows: &'a [usize],
    name: String,
    targets: Vec<[f32; 2]>,
    val_labels: Vec<u8>,
    loss: Loss,
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
        if let Some(spec) = specs
            .iter()
            .find(|s| s.chain[1..].iter().any(|m| m.contains('+')))
        {
            return Err(ExperimentError::Spec(format!(
                "{:?}: only the weak model may be an average of models (a+b)",
                spec.chain
            )));
        }
        let missing = self.missing_inputs(specs);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ExperimentError::Unavailable(missing))
        }
    }

    /// Every dataset and model of `specs` that cannot be loaded (each once: datasets first, then
    /// models, in the order the specs name them), fetching what is missing from the cache. What
    /// loads is kept for the runs.
    pub fn missing_inputs(&mut self, specs: &[RunSpec]) -> Vec<Missing> {
        let mut inputs: Vec<(InputKind, &str)> = Vec::new();
        for spec in specs {
            let names = std::iter::once((InputKind::Dataset, spec.dataset.as_str())).chain(
                spec.chain
                    .iter()
                    .flat_map(|m| m.split('+'))
                    .map(|m| (InputKind::Model, m)),
            );
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
                InputKind::Model => self.source(name).map(|_| ()),
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

    /// The (model, dataset) pairs whose pooled features the runs of `specs` read, each once, in
    /// the order of the specs: every model in probe mode; in fine-tuning mode, the students of
    /// runs whose label steps look at features (`knn`, `logreg-relabel`).
    pub fn feature_needs(&self, specs: &[RunSpec]) -> Vec<(String, String)> {
        let mut needs = Vec::new();
        for spec in specs {
            let models: Vec<&str> = match self.cfg.mode {
                Mode::Probe => spec.chain.iter().flat_map(|m| m.split('+')).collect(),
                Mode::Finetune if spec.method.label_steps().iter().any(|s| s.needs_features()) => {
                    spec.chain[1..].iter().map(String::as_str).collect()
                }
                Mode::Finetune => Vec::new(),
            };
            for m in models {
                let need = (m.to_string(), spec.dataset.clone());
                if !needs.contains(&need) {
                    needs.push(need);
                }
            }
        }
        needs
    }

    /// True when the features of `model` on `dataset` are in the cache (no model is loaded).
    pub fn features_cached(&mut self, model: &str, dataset: &str) -> Result<bool> {
        let data = self.prepared(dataset)?;
        self.features_on_disk(model, &data)
    }

    fn features_on_disk(&mut self, model: &str, data: &Prepared) -> Result<bool> {
        let source = self.source(model)?;
        let req = self.feature_request(&source, data);
        Ok(req.path_on(&self.feature_root, &self.device).is_file())
    }

    /// What the features of `source` on `data` are computed from (and keyed by).
    fn feature_request<'b>(
        &self,
        source: &'b ModelSource,
        data: &'b Prepared,
    ) -> FeatureRequest<'b> {
        FeatureRequest {
            model: source,
            dataset: &data.dataset,
            max_len: self.cfg.max_len,
            batch_size: 32,
            dtype: self.cfg.dtype,
            chunk_rows: w2s_models::DEFAULT_CHUNK_ROWS,
        }
    }

    /// Computes (or reads from the cache) the features of `model` on `dataset`.
    pub fn ensure_features(&mut self, model: &str, dataset: &str) -> Result<()> {
        let data = self.prepared(dataset)?;
        self.features(model, &data).map(|_| ())
    }

    /// How many chunks the features of `model` on `dataset` are committed in.
    pub fn feature_chunks(&mut self, model: &str, dataset: &str) -> Result<usize> {
        let data = self.prepared(dataset)?;
        let source = self.source(model)?;
        Ok(self.feature_request(&source, &data).chunk_count())
    }

    /// Computes one share of the chunks of `model`'s features on `dataset` (see
    /// [`w2s_models::Share`]); the share that completes them assembles the cache file.
    pub fn feature_share(
        &mut self,
        model: &str,
        dataset: &str,
        share: w2s_models::Share,
    ) -> Result<w2s_models::ShareReport> {
        let data = self.prepared(dataset)?;
        let source = self.source(model)?;
        let req = self.feature_request(&source, &data);
        let on_event = &mut self.on_event;
        let name = data.dataset.name.as_str();
        w2s_models::feature_share(&self.feature_root, &req, &self.device, share, &mut |p| {
            on_event(Event::embedding(model, name, p))
        })
        .map_err(|source| ExperimentError::Model {
            name: model.to_string(),
            cause: Box::new(source),
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
        let y: Vec<u8> = test.iter().map(|&r| data.labels[r]).collect();
        Ok([
            metrics::accuracy(&as_weak.probs_of(test), &y),
            metrics::accuracy(&as_ceiling.probs_of(test), &y),
        ])
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
        let positives = test.iter().filter(|&&i| data.labels[i] == 1).count();
        Ok(positives.max(test.len() - positives) as f64 / test.len().max(1) as f64)
    }

    fn prepared(&mut self, name: &str) -> Result<Rc<Prepared>> {
        if let Some(p) = self.datasets.get(name) {
            return Ok(p.clone());
        }
        let full = w2s_data::load(name, self.assets).map_err(|source| ExperimentError::Data {
            name: name.to_string(),
            cause: Box::new(source),
        })?;
        let keep = w2s_data::subset(
            &full.examples,
            self.cfg.balance,
            self.cfg.max_rows,
            self.cfg.data_seed,
        );
        let positives = full.examples.iter().filter(|e| e.label == 1).count();
        if positives == 0 || positives == full.examples.len() {
            return Err(ExperimentError::Spec(format!(
                "dataset {name}: all {} rows have label {}; an experiment needs both labels",
                full.examples.len(),
                (positives > 0) as u8
            )));
        }
        let examples: Vec<_> = keep.iter().map(|&i| full.examples[i].clone()).collect();
        let classes = (
            examples.iter().any(|e| e.label == 0),
            examples.iter().any(|e| e.label == 1),
        );
        if examples.len() < 20 || classes != (true, true) {
            return Err(ExperimentError::Spec(format!(
                "dataset {name}: {} usable rows{}; an experiment needs both labels and at least 20 rows",
                examples.len(),
                if classes != (true, true) { " with a single label" } else { "" }
            )));
        }
        let labels = examples.iter().map(|e| e.label).collect();
        let dataset = Dataset::new(full.name.clone(), examples);
        let p = Rc::new(Prepared { dataset, labels });
        self.datasets.insert(name.to_string(), p.clone());
        Ok(p)
    }

    fn source(&mut self, model: &str) -> Result<Rc<ModelSource>> {
        if let Some(s) = self.sources.get(model) {
            return Ok(s.clone());
        }
        let source =
            w2s_models::resolve(model, self.assets).map_err(|source| ExperimentError::Model {
                name: model.to_string(),
                cause: Box::new(source),
            })?;
        let source = Rc::new(source);
        self.sources.insert(model.to_string(), source.clone());
        Ok(source)
    }

    fn features(&mut self, model: &str, data: &Prepared) -> Result<Rc<(Features, String)>> {
        let id = (model.to_string(), data.dataset.version.clone());
        if let Some(f) = self.features.get(&id) {
            return Ok(f.clone());
        }
        let model_err = |source| ExperimentError::Model {
            name: model.to_string(),
            cause: Box::new(source),
        };
        let source = self.source(model)?;
        let req = self.feature_request(&source, data);
        let on_event = &mut self.on_event;
        let name = data.dataset.name.as_str();
        let feats = w2s_models::cached_features(&self.feature_root, &req, &self.device, &mut |p| {
            on_event(Event::embedding(model, name, p))
        })
        .map_err(model_err)?;
        let f = Rc::new((feats, source.fingerprint.clone()));
        self.features.insert(id, f.clone());
        Ok(f)
    }

    fn split_rows(&self, data: &Prepared, seed: u64) -> SplitRows {
        let cfg = SplitConfig {
            test_frac: self.cfg.test_frac,
            val_frac: self.cfg.val_frac,
            max_rows: 0,
        };
        let split = w2s_data::split(&data.dataset.examples, None, &cfg, seed);
        let key = key_of(&serde_json::json!({
            "v": STAGE_VERSION, "dataset": data.dataset.name, "rows": data.dataset.version,
            "test_frac": cfg.test_frac, "val_frac": cfg.val_frac, "seed": seed,
        }));
        SplitRows { split, key }
    }

    /// Trains (or reads from the store) `model` on what `sup` describes.
    fn node(
        &mut self,
        role: &str,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        sup: Supervision,
        seed: u64,
    ) -> Result<Rc<TrainedNode>> {
        let Supervision {
            rows,
            name: supervision,
            targets,
            val_labels,
            loss,
        } = sup;
        let val_labels = val_labels.as_slice();
        let supervision = supervision.as_str();
        let source = self.source(model)?;
        let mut desc = serde_json::json!({
            "v": STAGE_VERSION, "mode": self.cfg.mode, "split": split.key, "model": model,
            "weights": source.fingerprint, "max_len": self.cfg.max_len,
            "rows": key_of(&serde_json::json!(rows)), "supervision": supervision, "loss": loss,
            // The loss's parameters; the field's name is older than the parameters other than
            // the schedule, and stays so that stored nodes keep their keys.
            "loss_schedule": loss.params(&self.cfg.loss_settings()),
            "train": self.cfg.train, "seed": seed,
        });
        if self.cfg.mode == Mode::Finetune {
            desc["finetune"] = serde_json::json!(self.cfg.finetune);
        }
        // Only when not the default, so that keys made before `--dtype` existed stay valid.
        if !self.cfg.dtype.is_default() {
            desc["dtype"] = self.cfg.dtype.name().into();
        }
        let key = key_of(&desc);
        if let Some(node) = self.stored(&key, data, role, model) {
            self.note(&key, role, model, data, seed, true);
            return Ok(node);
        }
        if self.dry.is_some() {
            self.note(&key, role, model, data, seed, false);
            return Ok(placeholder(key, model, supervision, loss, data));
        }
        let _claim = self.claim(&key)?;
        if let Some(node) = self.stored(&key, data, role, model) {
            return Ok(node);
        }
        let start = Instant::now();
        let trainable: Box<dyn Trainable> = match self.cfg.mode {
            Mode::Probe => {
                let feats = self.features(model, data)?;
                let features = &feats.0;
                Box::new(
                    LinearProbe::new(&features.values, features.dim, rows, &self.device)
                        .map_err(w2s_train::TrainError::from)?,
                )
            }
            Mode::Finetune => {
                let texts: Vec<&str> = data
                    .dataset
                    .examples
                    .iter()
                    .map(|e| e.text.as_str())
                    .collect();
                let req = ClassifierRequest {
                    source: &source,
                    max_len: self.cfg.max_len,
                    adapt: self.cfg.finetune.adapt,
                    head_lr_scale: self.cfg.finetune.head_lr_scale,
                    dtype: self.cfg.dtype,
                    device: &self.device,
                };
                Box::new(EncoderClassifier::new(&req, &texts).map_err(|e| {
                    ExperimentError::Model {
                        name: model.to_string(),
                        cause: Box::new(e),
                    }
                })?)
            }
        };
        let probe = trainable.as_ref();
        let val_score = |p: &[f64]| selection_score(p, val_labels);
        let test_labels: Vec<u8> = split.split.test.iter().map(|&r| data.labels[r]).collect();
        let oracle_score = |p: &[f64]| metrics::accuracy(p, &test_labels);
        let val = Scored {
            rows: &split.split.val,
            score: &val_score,
        };
        let oracle = Scored {
            rows: &split.split.test,
            score: &oracle_score,
        };
        let what = format!("{role} {model} on {}", data.dataset.name);
        let report = fit(&FitRequest {
            what: &what,
            model: probe,
            rows,
            targets: &targets,
            loss,
            loss_schedule: &self.cfg.loss_schedule,
            cfg: &self.cfg.train,
            seed,
            val: (!split.split.val.is_empty()).then_some(&val),
            oracle: Some(&oracle),
        })?;
        let all: Vec<usize> = (0..data.labels.len()).collect();
        let probs = probe
            .predict(&all)
            .map_err(w2s_train::TrainError::from)?
            .into_iter()
            .map(|p| p as f32)
            .collect();
        let node = TrainedNode {
            key: key.clone(),
            model: model.to_string(),
            supervision: supervision.to_string(),
            loss,
            fit: report,
            probs,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.keep(node, role)
    }

    /// Records a node met by a dry walk (nothing outside one).
    fn note(
        &mut self,
        key: &str,
        role: &str,
        model: &str,
        data: &Prepared,
        seed: u64,
        stored: bool,
    ) {
        let Some(dry) = &mut self.dry else {
            return;
        };
        if !stored {
            dry.planned.insert(key.to_string());
        }
        if dry.seen.insert(key.to_string()) {
            dry.nodes.push(PlannedNode {
                key: key.to_string(),
                role: role.to_string(),
                model: model.to_string(),
                dataset: data.dataset.name.clone(),
                seed,
                stored,
            });
        }
    }

    /// Whether a dry walk stands in for `node` with a placeholder (it would be trained).
    fn is_planned(&self, node: &TrainedNode) -> bool {
        self.dry
            .as_ref()
            .is_some_and(|d| d.planned.contains(&node.key))
    }

    /// The node under `key` in the store, if it covers this dataset's rows (counted as reused).
    fn stored(
        &mut self,
        key: &str,
        data: &Prepared,
        role: &str,
        model: &str,
    ) -> Option<Rc<TrainedNode>> {
        let node = self.nodes.get::<TrainedNode>("models", key)?;
        if node.probs.len() != data.labels.len() {
            return None;
        }
        self.counts.reused += 1;
        (self.on_event)(Event::Node {
            role,
            model,
            reused: true,
        });
        Some(Rc::new(node))
    }

    /// Claims the node `key` for this process, after waiting for any other worker computing it
    /// (then the node is in the store and the claim is `None`).
    fn claim(&self, key: &str) -> Result<Option<w2s_assets::claim::Claim>> {
        self.nodes
            .claim("models", key)
            .map_err(|cause| ExperimentError::Write {
                path: self.nodes.claim_path("models", key),
                cause,
            })
    }

    /// Writes a node that was just computed to the store (counted as computed).
    fn keep(&mut self, node: TrainedNode, role: &str) -> Result<Rc<TrainedNode>> {
        self.nodes
            .put("models", &node.key, &node)
            .map_err(|cause| ExperimentError::Write {
                path: self.nodes.path("models", &node.key),
                cause,
            })?;
        self.counts.computed += 1;
        (self.on_event)(Event::Node {
            role,
            model: &node.model,
            reused: false,
        });
        Ok(Rc::new(node))
    }

    fn ground_truth(
        &mut self,
        role: &str,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        rows: &[usize],
        seed: u64,
    ) -> Result<Rc<TrainedNode>> {
        let targets = rows.iter().map(|&r| one_hot(data.labels[r])).collect();
        let val_labels: Vec<u8> = split.split.val.iter().map(|&r| data.labels[r]).collect();
        let sup = Supervision {
            rows,
            name: "ground-truth".into(),
            targets,
            val_labels,
            loss: Loss::XENT,
        };
        self.node(role, model, data, split, sup, seed)
    }

    fn student(
        &mut self,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        teacher: &TrainedNode,
        method: &Method,
        seed: u64,
    ) -> Result<Rc<TrainedNode>> {
        let b = &split.split.b;
        let mut labels = Labels {
            rows: b.clone(),
            probs: b.iter().map(|&r| teacher.probs[r]).collect(),
        };
        let mut steps = method.label_steps();
        // A dry walk cannot run label steps on a teacher it has not trained, nor on features it
        // has not computed: the student is planned on the teacher's rows as they are, under a
        // provisional key (it would be trained either way).
        let needs_features = steps.iter().any(|s| s.needs_features());
        if self.dry.is_some()
            && (self.is_planned(teacher)
                || (needs_features && !self.features_on_disk(model, data)?))
        {
            steps.clear();
        }
        if !steps.is_empty() {
            let feats = if steps.iter().any(|s| s.needs_features()) {
                Some(self.features(model, data)?)
            } else {
                None
            };
            let input = StepInput {
                features: feats.as_ref().map(|f| (f.0.values.as_slice(), f.0.dim)),
                seed,
            };
            labels = apply_steps(&steps, labels, &input).map_err(|e| {
                ExperimentError::Spec(format!(
                    "method {} for {model} on {}: {e}",
                    method.name(),
                    data.dataset.name
                ))
            })?;
        }
        let targets = labels
            .probs
            .iter()
            .map(|&p| match self.cfg.labels {
                LabelForm::Soft => [1.0 - p, p],
                LabelForm::Hard => one_hot(metrics::predict(p as f64)),
            })
            .collect();
        let val_labels: Vec<u8> = split
            .split
            .val
            .iter()
            .map(|&r| metrics::predict(teacher.probs[r] as f64))
            .collect();
        // The steps change the targets (and rows), so they name the supervision.
        let mut supervision = format!("{}:{}", self.cfg.labels.name(), teacher.key);
        for step in method.label_step_names() {
            supervision.push('|');
            supervision.push_str(&step);
        }
        let sup = Supervision {
            rows: &labels.rows,
            name: supervision,
            targets,
            val_labels,
            loss: method.loss(),
        };
        self.node("student", model, data, split, sup, seed)
    }

    /// The weak supervisor: the weak model trained on A, or the mean of several weak models'
    /// probabilities: the models of `a+b`, each trained on A or (`bag:K`) on K bootstrap
    /// resamples of A. The mean is not stored; its members are.
    fn weak(
        &mut self,
        spec: &RunSpec,
        data: &Prepared,
        split: &SplitRows,
    ) -> Result<Rc<TrainedNode>> {
        let models: Vec<&str> = spec.weak().split('+').collect();
        let bag = spec.method.bagged_weak_models();
        let a = &split.split.a;
        if models.len() == 1 && bag == 0 {
            return self.ground_truth("weak", models[0], data, split, a, spec.seed);
        }
        let mut members = Vec::new();
        for model in models {
            if bag == 0 {
                members.push(self.ground_truth("weak", model, data, split, a, spec.seed)?);
            }
            for i in 0..bag {
                let rows = crate::methods::resample(a, spec.seed, i);
                members.push(self.ground_truth("weak", model, data, split, &rows, spec.seed)?);
            }
        }
        let n = members.len() as f32;
        let probs = (0..data.labels.len())
            .map(|r| members.iter().map(|m| m.probs[r]).sum::<f32>() / n)
            .collect();
        let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
        let key = key_of(&serde_json::json!({"v": STAGE_VERSION, "mean_of": keys}));
        if members.iter().any(|m| self.is_planned(m)) {
            if let Some(dry) = &mut self.dry {
                dry.planned.insert(key.clone());
            }
        }
        Ok(Rc::new(TrainedNode {
            key,
            model: spec.weak().to_string(),
            supervision: "ground-truth".into(),
            loss: Loss::XENT,
            // Records read only the students' fits; the mean has none of its own.
            fit: members[0].fit.clone(),
            probs,
            seconds: members.iter().map(|m| m.seconds).sum(),
        }))
    }

    /// The zero-shot node of `model`: its next-token answer for every row inside the dataset's
    /// prompt ([`crate::methods::zeroshot`]), no training. Stored like a trained node.
    fn zero_shot(&mut self, model: &str, data: &Prepared) -> Result<Rc<TrainedNode>> {
        let template = self.template(&data.dataset.name);
        let source = self.source(model)?;
        let mut desc = serde_json::json!({
            "v": STAGE_VERSION, "zero_shot": template, "model": model,
            "weights": source.fingerprint, "rows": data.dataset.version,
            "max_len": self.cfg.max_len,
        });
        if !self.cfg.dtype.is_default() {
            desc["dtype"] = self.cfg.dtype.name().into();
        }
        let key = key_of(&desc);
        if let Some(node) = self.stored(&key, data, "zero-shot", model) {
            self.note(&key, "zero-shot", model, data, 0, true);
            return Ok(node);
        }
        if self.dry.is_some() {
            self.note(&key, "zero-shot", model, data, 0, false);
            return Ok(placeholder(key, model, "zero-shot", Loss::XENT, data));
        }
        let _claim = self.claim(&key)?;
        if let Some(node) = self.stored(&key, data, "zero-shot", model) {
            return Ok(node);
        }
        let model_err = |e: w2s_models::ModelError| ExperimentError::Model {
            name: model.to_string(),
            cause: Box::new(e),
        };
        let start = Instant::now();
        let encoder = w2s_models::Encoder::load_with(
            &source,
            &w2s_models::LoadRequest {
                device: &self.device,
                dtype: self.cfg.dtype.load_dtype(&self.device),
                train: w2s_models::Train::Nothing,
            },
        )
        .map_err(model_err)?;
        let prompts: Vec<String> = data
            .dataset
            .examples
            .iter()
            .map(|e| template.prompt(&e.text))
            .collect();
        let mut probs = Vec::with_capacity(prompts.len());
        let name = data.dataset.name.as_str();
        for (i, chunk) in prompts.chunks(256).enumerate() {
            (self.on_event)(Event::Embedding {
                model,
                dataset: name,
                done: i * 256,
                total: prompts.len(),
                resumed: 0,
            });
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let answers = [template.answers[0].as_str(), template.answers[1].as_str()];
            let logits = encoder
                .answer_logits(&texts, self.cfg.max_len, &answers, 16)
                .map_err(model_err)?;
            // The two-way softmax of the answers' logits.
            probs.extend(logits.iter().map(|l| 1.0 / (1.0 + (l[0] - l[1]).exp())));
        }
        (self.on_event)(Event::Embedding {
            model,
            dataset: name,
            done: prompts.len(),
            total: prompts.len(),
            resumed: 0,
        });
        let node = TrainedNode {
            key: key.clone(),
            model: model.to_string(),
            supervision: "zero-shot".into(),
            loss: Loss::XENT,
            fit: FitReport {
                best_epoch: 0,
                steps: 0,
                epochs: Vec::new(),
            },
            probs,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.keep(node, "zero-shot")
    }

    /// The run's configuration id: the settings and method, and for the zero-shot baseline the
    /// prompt too, a setting of the run that [`ExperimentConfig`] does not hold.
    fn config_id(&self, spec: &RunSpec, data: &Prepared) -> String {
        let id = self.cfg.config_id(&spec.method);
        if !spec.method.zero_shot() {
            return id;
        }
        let prompt = self.template(&data.dataset.name);
        key_of(&serde_json::json!({"config": id, "prompt": prompt}))[..8].to_string()
    }

    /// One link of a run: `model` trained on `teacher`'s labels under the run's method, then its
    /// strong-to-strong rounds (each a fresh `model` on the previous student's labels).
    fn link(
        &mut self,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        teacher: &Rc<TrainedNode>,
        spec: &RunSpec,
    ) -> Result<Rc<TrainedNode>> {
        let mut student = self.student(model, data, split, teacher, &spec.method, spec.seed)?;
        for _ in 0..spec.method.rounds() {
            student = self.student(model, data, split, &student, &spec.method, spec.seed)?;
        }
        Ok(student)
    }

    /// Runs one spec: trains or reuses every node, writes the run's record and per-example
    /// predictions under `out/runs`, and returns the record.
    pub fn run(&mut self, spec: &RunSpec) -> Result<crate::RunRecord> {
        let w = self.walk(spec)?;
        let config = self.config_id(spec, &w.data);
        let nodes = crate::record::RunNodes {
            spec,
            cfg: &self.cfg,
            config: &config,
            dataset: &w.data.dataset,
            labels: &w.data.labels,
            split: &w.split.split,
            weak: &w.weak,
            ceiling: &w.ceiling,
            student: &w.student,
            direct: w.direct.as_deref(),
        };
        let record = crate::record::evaluate(&nodes);
        crate::record::write(&self.out, &record, &nodes)
            .map_err(|(path, cause)| ExperimentError::Write { path, cause })
    }

    /// Every node of one spec's graph, trained or read from the store (planned, in a dry walk).
    fn walk(&mut self, spec: &RunSpec) -> Result<Walked> {
        if spec.chain.len() < 2 {
            return Err(ExperimentError::Spec(format!(
                "a run needs a weak and a strong model, got {:?}",
                spec.chain
            )));
        }
        let data = self.prepared(&spec.dataset)?;
        let split = self.split_rows(&data, spec.seed);
        let weak = self.weak(spec, &data, &split)?;
        let b = split.split.b.clone();
        let ceiling = self.ground_truth("ceiling", spec.strong(), &data, &split, &b, spec.seed)?;
        let student = if spec.method.zero_shot() {
            if spec.is_chain() {
                return Err(ExperimentError::Spec(format!(
                    "{}: the zero-shot baseline has no chain to bootstrap through",
                    spec.describe()
                )));
            }
            self.zero_shot(spec.strong(), &data)?
        } else {
            let mut teacher = weak.clone();
            for model in &spec.chain[1..] {
                teacher = self.link(model, &data, &split, &teacher, spec)?;
            }
            teacher
        };
        let direct = if spec.is_chain() {
            Some(self.link(spec.strong(), &data, &split, &weak, spec)?)
        } else {
            None
        };
        Ok(Walked {
            data,
            split,
            weak,
            ceiling,
            student,
            direct,
        })
    }
}

/// What a dry walk hands on for a node it would train: its key, and predictions of 0.5 for every
/// row (never written, never evaluated).
fn placeholder(
    key: String,
    model: &str,
    supervision: &str,
    loss: Loss,
    data: &Prepared,
) -> Rc<TrainedNode> {
    Rc::new(TrainedNode {
        key,
        model: model.to_string(),
        supervision: supervision.to_string(),
        loss,
        fit: FitReport {
            best_epoch: 0,
            steps: 0,
            epochs: Vec::new(),
        },
        probs: vec![0.5; data.labels.len()],
        seconds: 0.0,
    })
}

fn one_hot(label: u8) -> [f32; 2] {
    if label == 1 {
        [0.0, 1.0]
    } else {
        [1.0, 0.0]
    }
}

/// The early-stopping score: AUROC against the validation labels, or accuracy when they hold a
/// single class (AUROC is undefined there).
fn selection_score(p: &[f64], labels: &[u8]) -> f64 {
    let auc = metrics::auroc(p, labels);
    if auc.is_finite() {
        auc
    } else {
        metrics::accuracy(p, labels)
    }
}
