//! Train or reuse one node: its store key, the claim that keeps two workers from training it
//! twice, the training itself (probe or fine-tuning) and the zero-shot node; in a dry walk, the
//! node is noted instead.
use super::*;
use crate::kclass::Probs;

/// What a model is trained on: rows of the dataset, their targets, the labels its early stopping
/// reads on val, the loss, and a name for the store key (`ground-truth` or the teacher's node).
pub(super) struct Supervision<'a> {
    pub(super) rows: &'a [usize],
    pub(super) name: String,
    /// K values per row (row-major `[rows, K]`).
    pub(super) targets: Vec<f32>,
    pub(super) val_labels: Vec<u8>,
    pub(super) loss: w2s_train::Configured,
}

impl<'a> Runner<'a> {
    /// Trains (or reads from the store) `model` on what `sup` describes.
    pub(super) fn node(
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
        let weights = self.fingerprint(model)?;
        let key = keys::node_key(&keys::NodeDescription {
            mode: self.cfg.mode,
            split: &split.key,
            model,
            weights: &weights,
            max_len: self.cfg.max_len,
            rows,
            supervision,
            loss,
            train: &self.cfg.train,
            seed,
            finetune: &self.cfg.finetune,
            dtype: self.cfg.dtype,
        });
        if let Some(node) = self.stored(&key, data, role, model) {
            self.note(&key, role, model, data, seed, true);
            return Ok(node);
        }
        if self.dry.is_some() {
            self.note(&key, role, model, data, seed, false);
            return Ok(placeholder(key, model, supervision, loss.loss(), data));
        }
        let _claim = self.claim(&key)?;
        if let Some(node) = self.stored(&key, data, role, model) {
            return Ok(node);
        }
        let start = Instant::now();
        let classes = data.classes;
        let trainable: Box<dyn Trainable> = match self.cfg.mode {
            Mode::Probe => {
                let feats = self.features(model, data)?;
                let features = &feats.0;
                w2s_train::probe_head(
                    &features.values,
                    features.dim,
                    data.questions(),
                    rows,
                    classes,
                    &self.device,
                )
                .map_err(w2s_train::TrainError::from)?
            }
            Mode::Finetune => {
                let source = self.source(model)?;
                // A choice view fine-tunes a scorer of its candidates (one output, no bias).
                let texts: Vec<&str> = data
                    .embedded()
                    .examples
                    .iter()
                    .map(|e| e.text.as_str())
                    .collect();
                let questions = data.questions();
                let req = ClassifierRequest {
                    source: &source,
                    max_len: self.cfg.max_len,
                    adapt: self.cfg.finetune.adapt,
                    head_lr_scale: self.cfg.finetune.head_lr_scale,
                    classes: if questions.is_some() { 1 } else { classes },
                    dtype: self.cfg.dtype,
                    device: &self.device,
                };
                let classifier =
                    EncoderClassifier::new(&req, &texts).map_err(|e| ExperimentError::Model {
                        name: model.to_string(),
                        cause: Box::new(e),
                    })?;
                match questions {
                    Some(q) => Box::new(w2s_train::ChoiceClassifier::new(classifier, q.to_vec())),
                    None => Box::new(classifier),
                }
            }
        };
        let probe = trainable.as_ref();
        let val_score = |p: &[f64]| selection_score(p, val_labels, classes);
        let test_labels: Vec<u8> = split.split.test.iter().map(|&r| data.labels[r]).collect();
        let oracle_score = |p: &[f64]| class_accuracy(p, &test_labels, classes);
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
            cfg: &self.cfg.train,
            seed,
            val: (!split.split.val.is_empty()).then_some(&val),
            oracle: Some(&oracle),
        })?;
        let all: Vec<usize> = (0..data.labels.len()).collect();
        let probs = probe
            .predict_for_score(&all)
            .map_err(w2s_train::TrainError::from)?
            .into_iter()
            .map(|p| p as f32)
            .collect();
        let node = TrainedNode {
            key: key.clone(),
            model: model.to_string(),
            supervision: supervision.to_string(),
            loss: loss.loss(),
            fit: report,
            probs,
            classes,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.keep(node, role)
    }

    /// Records a node met by a dry walk (nothing outside one).
    pub(super) fn note(
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
    pub(super) fn is_planned(&self, node: &TrainedNode) -> bool {
        self.dry
            .as_ref()
            .is_some_and(|d| d.planned.contains(&node.key))
    }

    /// The node under `key` in the store, if it covers this dataset's rows (counted as reused).
    pub(super) fn stored(
        &mut self,
        key: &str,
        data: &Prepared,
        role: &str,
        model: &str,
    ) -> Option<Rc<TrainedNode>> {
        let node = self.nodes.get::<TrainedNode>("models", key)?;
        if node.classes != data.classes || node.rows() != data.labels.len() {
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
    pub(super) fn claim(&self, key: &str) -> Result<Option<w2s_assets::claim::Claim>> {
        self.nodes
            .claim("models", key)
            .map_err(|cause| ExperimentError::Write {
                path: self.nodes.claim_path("models", key),
                cause,
            })
    }

    /// Writes a node that was just computed to the store (counted as computed).
    pub(super) fn keep(&mut self, node: TrainedNode, role: &str) -> Result<Rc<TrainedNode>> {
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

    /// The zero-shot node of `model`: its next-token answer for every row inside the dataset's
    /// prompt ([`crate::methods::zeroshot`]), no training. Stored like a trained node.
    pub(super) fn zero_shot(&mut self, model: &str, data: &Prepared) -> Result<Rc<TrainedNode>> {
        if data.choices.is_some() {
            return Err(ExperimentError::Spec(format!(
                "{}: the zero-shot baseline reads binary rows; drop ?choices to prompt each candidate",
                data.dataset.name
            )));
        }
        if data.classes != 2 {
            return Err(ExperimentError::Spec(format!(
                "{}: {} classes; the zero-shot baseline is binary only so far",
                data.dataset.name, data.classes
            )));
        }
        let template = self.template(&data.dataset.name);
        let source = self.source(model)?;
        let key = keys::zero_shot_key(
            &template,
            model,
            &source.fingerprint,
            &data.dataset.version,
            self.cfg.max_len,
            self.cfg.dtype,
        );
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
            classes: 2,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.keep(node, "zero-shot")
    }
}

/// What a dry walk hands on for a node it would train: its key, and predictions of 0.5 for every
/// row (never written, never evaluated).
pub(super) fn placeholder(
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
        probs: if data.classes == 2 {
            vec![0.5; data.labels.len()]
        } else {
            vec![1.0 / data.classes as f32; data.labels.len() * data.classes]
        },
        classes: data.classes,
        seconds: 0.0,
    })
}

/// The one-hot target of `label` among `classes`.
pub(super) fn one_hot(label: u8, classes: usize) -> impl Iterator<Item = f32> {
    (0..classes).map(move |c| if c == label as usize { 1.0 } else { 0.0 })
}

/// The early-stopping score: AUROC against the validation labels (macro one-vs-rest for K > 2),
/// or accuracy when it is undefined (a single class). `p` is what [`Trainable::predict_for_score`]
/// gives: class-1 probabilities for binary, `[rows, K]` otherwise.
pub(super) fn selection_score(p: &[f64], labels: &[u8], classes: usize) -> f64 {
    let auc = if classes == 2 {
        metrics::auroc(p, labels)
    } else {
        crate::kclass::auroc(&Probs::new(classes, p.to_vec()), &widen(labels))
    };
    if auc.is_finite() {
        auc
    } else {
        class_accuracy(p, labels, classes)
    }
}

/// Accuracy of [`Trainable::predict_for_score`]'s output against `labels`.
pub(super) fn class_accuracy(p: &[f64], labels: &[u8], classes: usize) -> f64 {
    if classes == 2 {
        metrics::accuracy(p, labels)
    } else {
        crate::kclass::accuracy(&Probs::new(classes, p.to_vec()), &widen(labels))
    }
}

/// Labels as class indices.
fn widen(labels: &[u8]) -> Vec<usize> {
    labels.iter().map(|&l| l as usize).collect()
}
