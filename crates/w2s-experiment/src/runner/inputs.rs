//! The runner's inputs, loaded once and kept: datasets (subset, labels), resolved models, pooled
//! features (computed or read from the feature cache, whole or by share), and splits.
use super::*;
use crate::synthetic::SyntheticModel;

/// A model of a run: pretrained weights, or a synthetic view of each row (no weights, no cache).
#[derive(Clone)]
pub(super) enum Backbone {
    Pretrained(Rc<ModelSource>),
    Synthetic(SyntheticModel),
}

impl<'a> Runner<'a> {
    /// The (model, dataset) pairs whose pooled features the runs of `specs` read, each once, in
    /// the order of the specs: every model in probe mode; in fine-tuning mode, the students of
    /// runs whose label steps look at features (`knn`, `logreg-relabel`).
    pub fn feature_needs(&self, specs: &[RunSpec]) -> Vec<(String, String)> {
        let mut needs = Vec::new();
        for spec in specs {
            let models: Vec<&str> = match self.cfg.mode {
                Mode::Probe => spec.models(),
                Mode::Finetune if spec.method.label_steps().iter().any(|s| s.needs_features()) => {
                    spec.chain[1..].iter().map(String::as_str).collect()
                }
                Mode::Finetune => Vec::new(),
            };
            // A synthetic model's features are read from the rows: nothing to compute or cache.
            for m in models
                .into_iter()
                .filter(|m| SyntheticModel::parse(m).is_none())
            {
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

    pub(super) fn features_on_disk(&mut self, model: &str, data: &Prepared) -> Result<bool> {
        if let Backbone::Synthetic(_) = self.backbone(model)? {
            return Ok(true);
        }
        let source = self.source(model)?;
        let req = self.feature_request(&source, data);
        Ok(req.path_on(&self.feature_root, &self.device).is_file())
    }

    /// What the features of `source` on `data` are computed from (and keyed by).
    pub(super) fn feature_request<'b>(
        &self,
        source: &'b ModelSource,
        data: &'b Prepared,
    ) -> FeatureRequest<'b> {
        FeatureRequest {
            model: source,
            dataset: rows_of(&data.dataset),
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

    pub(super) fn prepared(&mut self, name: &str) -> Result<Rc<Prepared>> {
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

    /// The model `model` names: resolved (and fetched) once, then kept.
    pub(super) fn backbone(&mut self, model: &str) -> Result<Backbone> {
        if let Some(b) = self.sources.get(model) {
            return Ok(b.clone());
        }
        let backbone = match SyntheticModel::parse(model) {
            Some(parsed) => Backbone::Synthetic(parsed.map_err(ExperimentError::Spec)?),
            None => {
                Backbone::Pretrained(Rc::new(w2s_models::resolve(model, self.assets).map_err(
                    |source| ExperimentError::Model {
                        name: model.to_string(),
                        cause: Box::new(source),
                    },
                )?))
            }
        };
        self.sources.insert(model.to_string(), backbone.clone());
        Ok(backbone)
    }

    /// The weights of `model`; an error for a synthetic model, which has none to fine-tune or
    /// prompt.
    pub(super) fn source(&mut self, model: &str) -> Result<Rc<ModelSource>> {
        match self.backbone(model)? {
            Backbone::Pretrained(source) => Ok(source),
            Backbone::Synthetic(_) => Err(ExperimentError::Spec(format!(
                "{model} is a synthetic model: it has no weights to fine-tune or prompt (probe mode, label steps and chains work)"
            ))),
        }
    }

    /// The identity of `model`'s weights in store keys.
    pub(super) fn fingerprint(&mut self, model: &str) -> Result<String> {
        Ok(match self.backbone(model)? {
            Backbone::Pretrained(source) => source.fingerprint.clone(),
            Backbone::Synthetic(m) => m.fingerprint(),
        })
    }

    pub(super) fn features(
        &mut self,
        model: &str,
        data: &Prepared,
    ) -> Result<Rc<(Features, String)>> {
        let id = (model.to_string(), data.dataset.version.clone());
        if let Some(f) = self.features.get(&id) {
            return Ok(f.clone());
        }
        let model_err = |source| ExperimentError::Model {
            name: model.to_string(),
            cause: Box::new(source),
        };
        let source = match self.backbone(model)? {
            Backbone::Pretrained(source) => source,
            Backbone::Synthetic(m) => {
                let feats = m.features(&data.dataset).map_err(ExperimentError::Spec)?;
                let f = Rc::new((feats, m.fingerprint()));
                self.features.insert(id, f.clone());
                return Ok(f);
            }
        };
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

    pub(super) fn split_rows(&self, data: &Prepared, seed: u64) -> SplitRows {
        let cfg = SplitConfig {
            test_frac: self.cfg.test_frac,
            val_frac: self.cfg.val_frac,
            max_rows: 0,
        };
        let split = w2s_data::split(&data.dataset.examples, None, &cfg, seed);
        let key = keys::split_key(
            &data.dataset.name,
            &data.dataset.version,
            cfg.test_frac,
            cfg.val_frac,
            seed,
        );
        SplitRows { split, key }
    }
}

/// A dataset's rows as the feature cache sees them.
pub fn rows_of(dataset: &Dataset) -> w2s_models::Rows<'_> {
    w2s_models::Rows {
        name: &dataset.name,
        version: &dataset.version,
        texts: dataset.examples.iter().map(|e| e.text.as_str()).collect(),
    }
}
