//! The graph of one run: the weak supervisor (one model, an ensemble, bagged members), the
//! ceiling, the students of each link of a chain with their strong-to-strong rounds, direct
//! transfer beside a chain, and the run's record.
use super::*;

/// The nodes of one run, trained or read from the store (or planned, in a dry walk).
pub(super) struct Walked {
    pub(super) data: Rc<Prepared>,
    pub(super) split: SplitRows,
    pub(super) weak: Rc<TrainedNode>,
    pub(super) ceiling: Rc<TrainedNode>,
    pub(super) student: Rc<TrainedNode>,
    pub(super) direct: Option<Rc<TrainedNode>>,
}

impl<'a> Runner<'a> {
    pub(super) fn ground_truth(
        &mut self,
        role: &str,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        rows: &[usize],
        seed: u64,
    ) -> Result<Rc<TrainedNode>> {
        let targets = rows
            .iter()
            .flat_map(|&r| one_hot(data.labels[r], data.classes))
            .collect();
        let val_labels: Vec<u8> = split.split.val.iter().map(|&r| data.labels[r]).collect();
        let sup = Supervision {
            rows,
            name: "ground-truth".into(),
            targets,
            val_labels,
            loss: self.cfg.loss(Loss::XENT),
        };
        self.node(role, model, data, split, sup, seed)
    }

    pub(super) fn student(
        &mut self,
        model: &str,
        data: &Prepared,
        split: &SplitRows,
        teacher: &TrainedNode,
        method: &Method,
        seed: u64,
    ) -> Result<Rc<TrainedNode>> {
        let b = &split.split.b;
        let w = crate::methods::width(data.classes);
        let mut labels = Labels {
            rows: b.clone(),
            probs: b
                .iter()
                .flat_map(|&r| &teacher.probs[r * w..(r + 1) * w])
                .copied()
                .collect(),
            classes: data.classes,
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
                questions: data.questions(),
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
        let (targets, val_labels) = if data.classes == 2 {
            let targets = labels
                .probs
                .iter()
                .flat_map(|&p| match self.cfg.labels {
                    LabelForm::Soft => [1.0 - p, p],
                    LabelForm::Hard => [
                        1.0 - metrics::predict(p as f64) as f32,
                        metrics::predict(p as f64) as f32,
                    ],
                })
                .collect();
            let val_labels: Vec<u8> = split
                .split
                .val
                .iter()
                .map(|&r| metrics::predict(teacher.probs[r] as f64))
                .collect();
            (targets, val_labels)
        } else {
            // K classes: the probability rows (soft) or the one-hot of their argmax (hard); the
            // val rows are labelled by the teacher's argmax.
            let targets = match self.cfg.labels {
                LabelForm::Soft => labels.probs.clone(),
                LabelForm::Hard => (0..labels.rows.len())
                    .flat_map(|i| one_hot(w2s_train::argmax(labels.row(i)) as u8, data.classes))
                    .collect(),
            };
            let val_labels = split
                .split
                .val
                .iter()
                .map(|&r| w2s_train::argmax(&teacher.probs[r * w..(r + 1) * w]) as u8)
                .collect();
            (targets, val_labels)
        };
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
            loss: self.cfg.loss(method.loss()),
        };
        self.node("student", model, data, split, sup, seed)
    }

    /// The weak supervisor: the weak model trained on A, or the mean of several weak models'
    /// probabilities: the models of `a+b`, each trained on A or (`bag:K`) on K bootstrap
    /// resamples of A. The mean is not stored; its members are.
    pub(super) fn weak(
        &mut self,
        spec: &RunSpec,
        data: &Prepared,
        split: &SplitRows,
    ) -> Result<Rc<TrainedNode>> {
        let models = spec.weak_members();
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
        // Element by element: a binary node's class-1 probabilities, or a K-class node's rows.
        let probs = (0..members[0].probs.len())
            .map(|r| members.iter().map(|m| m.probs[r]).sum::<f32>() / n)
            .collect();
        let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
        let key = keys::mean_key(&keys);
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
            classes: data.classes,
            seconds: members.iter().map(|m| m.seconds).sum(),
        }))
    }

    /// The run's configuration id: the settings and method, and for the zero-shot baseline the
    /// prompt too, a setting of the run that [`ExperimentConfig`] does not hold.
    pub(super) fn config_id(&self, spec: &RunSpec, data: &Prepared) -> String {
        let id = self.cfg.config_id(&spec.method);
        if !spec.method.zero_shot() {
            return id;
        }
        let prompt = self.template(&data.dataset.name);
        key_of(&serde_json::json!({"config": id, "prompt": prompt}))[..8].to_string()
    }

    /// One link of a run: `model` trained on `teacher`'s labels under the run's method, then its
    /// strong-to-strong rounds (each a fresh `model` on the previous student's labels).
    pub(super) fn link(
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
    pub(super) fn walk(&mut self, spec: &RunSpec) -> Result<Walked> {
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
