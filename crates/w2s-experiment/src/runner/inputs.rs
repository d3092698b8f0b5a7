//! The runner's inputs, loaded once and kept: datasets (subset, labels), resolved models, pooled
//! features (computed or read from the feature cache, whole or by share), and splits.
use super::*;
use crate::synthetic::SyntheticModel;

/// A model of a run: pretrained weights, or a synthetic view of each row (no weights, no cache).
#[derive(Clone)]
pub(super) enum Backbone {
    Pretrained(Rc<ModelSource>),
    Synthetic(SyntheticModel),
    /// An image model: `pixels` or a vision backbone (probe mode).
    Image(Rc<w2s_models::ImageModel>),
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
        match self.backbone(model)? {
            Backbone::Synthetic(_) => return Ok(true),
            Backbone::Image(m) => {
                let path = image_request(&m, data, &|_| Err(String::new()), |req| {
                    req.path_on(&self.feature_root, &self.device)
                })?;
                return Ok(path.is_file());
            }
            Backbone::Pretrained(_) => {}
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
            dataset: rows_of(data.embedded()),
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
        if let Backbone::Image(m) = self.backbone(model)? {
            let no_images = |_: usize| Err(String::new());
            return image_request(&m, &data, &no_images, |req| req.chunk_count());
        }
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
        if let Backbone::Image(m) = self.backbone(model)? {
            return self.image_share(&m, &data, share);
        }
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
        let data_err = |source| ExperimentError::Data {
            name: name.to_string(),
            cause: Box::new(source),
        };
        if w2s_data::names_choices(name) {
            let p = Rc::new(self.choice_view(name)?);
            self.datasets.insert(name.to_string(), p.clone());
            return Ok(p);
        }
        let (full, images) = match w2s_data::load_images(name, self.assets) {
            Some(set) => {
                let (dataset, rows) =
                    image_dataset(name, set.map_err(data_err)?).map_err(ExperimentError::Spec)?;
                (dataset, Some(rows))
            }
            None => (w2s_data::load(name, self.assets).map_err(data_err)?, None),
        };
        let classes = full.classes();
        let present = |rows: &[w2s_data::Example]| {
            let mut seen = vec![false; classes];
            for e in rows {
                seen[e.label as usize] = true;
            }
            seen.iter().filter(|&&s| s).count()
        };
        if present(&full.examples) < 2 {
            let label = full.examples.first().map_or(0, |e| e.label);
            return Err(ExperimentError::Spec(format!(
                "dataset {name}: all {} rows have label {label}; an experiment needs both labels",
                full.examples.len(),
            )));
        }
        let keep = w2s_data::subset(
            &full.examples,
            self.cfg.balance,
            self.cfg.max_rows,
            self.cfg.data_seed,
        );
        let examples: Vec<_> = keep.iter().map(|&i| full.examples[i].clone()).collect();
        let kinds = present(&examples);
        if examples.len() < 20 || kinds < 2 {
            return Err(ExperimentError::Spec(format!(
                "dataset {name}: {} usable rows{}; an experiment needs both labels and at least 20 rows",
                examples.len(),
                if kinds < 2 { " with a single label" } else { "" }
            )));
        }
        let labels = examples.iter().map(|e| e.label).collect();
        let (dataset, images) = match images {
            // The subset of an image set is named by the set's content hash and the rows kept;
            // the whole set keeps the set's own hash, so that `w2s embed`'s features serve it.
            Some(rows) => {
                let version = if keep.len() == full.examples.len() {
                    full.version.clone()
                } else {
                    let ids: Vec<&str> = examples.iter().map(|e| e.id.as_str()).collect();
                    w2s_assets::cache::sha256_bytes(
                        serde_json::json!({"images": full.version, "rows": ids})
                            .to_string()
                            .as_bytes(),
                    )
                };
                let kept = keep.iter().map(|&i| rows[i].clone()).collect();
                let dataset = Dataset {
                    name: full.name.clone(),
                    version,
                    examples,
                };
                (dataset, Some(kept))
            }
            None => (Dataset::new(full.name.clone(), examples), None),
        };
        let p = Rc::new(Prepared {
            dataset,
            labels,
            classes,
            images,
            choices: None,
        });
        self.datasets.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// The choice view `name` (`REF?choices`): one row per question, labelled by the position of
    /// its right candidate, capped at `max_rows` questions by whole groups; K is the most
    /// candidates any question has. Not balanced: the classes are answer positions, and a
    /// question's chance is one in its own K.
    fn choice_view(&mut self, name: &str) -> Result<Prepared> {
        let data_err = |source| ExperimentError::Data {
            name: name.to_string(),
            cause: Box::new(source),
        };
        let rows = w2s_data::load(name, self.assets).map_err(data_err)?;
        let questions = w2s_data::questions::questions(name, &rows.examples).map_err(data_err)?;
        // The subset is drawn over every question (its group and answer); only the questions
        // kept get their lettered text and their candidates copied.
        let as_rows: Vec<w2s_data::Example> = questions
            .iter()
            .map(|q| w2s_data::Example {
                id: q.id.clone(),
                label: q.answer as u8,
                group: q.group.clone(),
                question: q.id.clone(),
                ..Default::default()
            })
            .collect();
        let keep = w2s_data::subset(&as_rows, false, self.cfg.max_rows, self.cfg.data_seed);
        if keep.len() < 20 {
            return Err(ExperimentError::Spec(format!(
                "dataset {name}: {} questions; an experiment needs at least 20",
                keep.len()
            )));
        }
        let mut candidates = Vec::new();
        let mut of = Vec::with_capacity(keep.len());
        let mut examples = Vec::with_capacity(keep.len());
        for &q in &keep {
            let start = candidates.len();
            candidates.extend(questions[q].rows.iter().map(|&r| rows.examples[r].clone()));
            of.push((start..candidates.len()).collect::<Vec<usize>>());
            // What a reader of predictions sees: the candidates, lettered.
            let text = candidates[start..]
                .iter()
                .enumerate()
                .map(|(j, c)| format!("({}) {}", w2s_data::questions::letter(j), c.text))
                .collect::<Vec<_>>()
                .join("\n");
            examples.push(w2s_data::Example {
                text,
                ..as_rows[q].clone()
            });
        }
        let candidates = Dataset::new(name, candidates);
        // The view's version: its candidates' (texts, labels, groups) and how they make questions.
        let layout: Vec<(&str, usize)> = keep
            .iter()
            .map(|&q| (questions[q].id.as_str(), questions[q].rows.len()))
            .collect();
        let version = w2s_assets::cache::sha256_bytes(
            serde_json::json!({"choices": candidates.version, "questions": layout})
                .to_string()
                .as_bytes(),
        );
        let labels: Vec<u8> = examples.iter().map(|e| e.label).collect();
        let classes = of.iter().map(Vec::len).max().unwrap_or(2).max(2);
        Ok(Prepared {
            dataset: Dataset {
                name: name.to_string(),
                version,
                examples,
            },
            labels,
            classes,
            images: None,
            choices: Some(Choices {
                candidates,
                questions: of,
            }),
        })
    }

    /// The model `model` names: resolved (and fetched) once, then kept.
    pub(super) fn backbone(&mut self, model: &str) -> Result<Backbone> {
        if let Some(b) = self.sources.get(model) {
            return Ok(b.clone());
        }
        let model_err = |source| ExperimentError::Model {
            name: model.to_string(),
            cause: Box::new(source),
        };
        let backbone = match SyntheticModel::parse(model) {
            Some(parsed) => Backbone::Synthetic(parsed.map_err(ExperimentError::Spec)?),
            None if w2s_models::ImageModel::is_image_model(model) => Backbone::Image(Rc::new(
                w2s_models::ImageModel::resolve(model, self.assets).map_err(model_err)?,
            )),
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
            Backbone::Image(_) => Err(ExperimentError::Spec(format!(
                "{model} is an image model: it works in probe mode only (no fine-tuning or prompting of image models yet)"
            ))),
        }
    }

    /// The identity of `model`'s weights in store keys.
    pub(super) fn fingerprint(&mut self, model: &str) -> Result<String> {
        Ok(match self.backbone(model)? {
            Backbone::Pretrained(source) => source.fingerprint.clone(),
            Backbone::Synthetic(m) => m.fingerprint(),
            Backbone::Image(m) => m.fingerprint.clone(),
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
            Backbone::Synthetic(_) if data.images.is_some() => {
                return Err(ExperimentError::Spec(format!(
                    "{model} is a synthetic text model and {} holds images: use pixels, {} or a vision folder",
                    data.dataset.name,
                    w2s_models::vision::vision_builtin_names()
                )))
            }
            Backbone::Synthetic(m) => {
                let feats = m.features(data.embedded()).map_err(ExperimentError::Spec)?;
                let f = Rc::new((feats, m.fingerprint()));
                self.features.insert(id, f.clone());
                return Ok(f);
            }
            Backbone::Image(m) => {
                let feats = self.image_features(&m, data)?;
                let f = Rc::new((feats, m.fingerprint.clone()));
                self.features.insert(id, f.clone());
                return Ok(f);
            }
        };
        if data.images.is_some() {
            return Err(ExperimentError::Spec(format!(
                "{model} is a text model and {} holds images: use pixels, {} or a vision folder",
                data.dataset.name,
                w2s_models::vision::vision_builtin_names()
            )));
        }
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

/// Builds the feature request of image model `m` on `data`'s images and hands it to `with`; an
/// error when `data` holds texts.
fn image_request<T>(
    m: &w2s_models::ImageModel,
    data: &Prepared,
    load: &dyn Fn(usize) -> std::result::Result<image::RgbImage, String>,
    with: impl FnOnce(&w2s_models::ImageFeatureRequest) -> T,
) -> Result<T> {
    let Some(images) = &data.images else {
        return Err(ExperimentError::Spec(format!(
            "{} is an image model and {} holds texts: use a text model",
            m.name, data.dataset.name
        )));
    };
    let req = w2s_models::ImageFeatureRequest {
        model: m,
        dataset: w2s_models::ImageRows {
            name: &data.dataset.name,
            version: &data.dataset.version,
            count: images.len(),
            load,
        },
        batch_size: 32,
        chunk_rows: w2s_models::DEFAULT_CHUNK_ROWS,
    };
    Ok(with(&req))
}

impl Runner<'_> {
    /// One share of the image features of `m` on `data` (see [`w2s_models::Share`]).
    fn image_share(
        &mut self,
        m: &w2s_models::ImageModel,
        data: &Prepared,
        share: w2s_models::Share,
    ) -> Result<w2s_models::ShareReport> {
        self.with_images(m, data, &mut |req, root, device, progress| {
            w2s_models::image_feature_share(root, req, device, share, progress)
        })
    }

    /// The features of image model `m` on `data`'s images, from the cache or computed.
    fn image_features(&mut self, m: &w2s_models::ImageModel, data: &Prepared) -> Result<Features> {
        self.with_images(m, data, &mut |req, root, device, progress| {
            w2s_models::cached_image_features(root, req, device, progress)
        })
    }

    /// Runs `work` on the feature request of `m` on `data`'s images, with the runner's cache
    /// root, device and progress events.
    fn with_images<T>(
        &mut self,
        m: &w2s_models::ImageModel,
        data: &Prepared,
        work: &mut ImageWork<T>,
    ) -> Result<T> {
        let images = data.images.as_deref().unwrap_or_default();
        let load = |i: usize| images[i].rgb().map_err(|e| e.to_string());
        let (root, device) = (&self.feature_root, &self.device);
        let on_event = &mut self.on_event;
        let name = data.dataset.name.as_str();
        image_request(m, data, &load, |req| {
            work(req, root, device, &mut |p| {
                on_event(Event::embedding(&m.name, name, p))
            })
        })?
        .map_err(|source| ExperimentError::Model {
            name: m.name.clone(),
            cause: Box::new(source),
        })
    }
}

/// A computation on an image feature request: its cache root, device and progress sink given.
type ImageWork<'w, T> = dyn FnMut(
        &w2s_models::ImageFeatureRequest,
        &Path,
        &Device,
        &mut dyn FnMut(w2s_models::EmbedProgress),
    ) -> w2s_models::Result<T>
    + 'w;

/// An image set as experiment rows: one per image (empty text, the class as label, the image's
/// id as its group) and the images in the same order.
fn image_dataset(
    name: &str,
    set: w2s_data::images::ImageSet,
) -> std::result::Result<(Dataset, Vec<w2s_data::images::ImageRow>), String> {
    if set.classes.len() > 256 {
        return Err(format!(
            "dataset {}: {} classes; w2s handles up to 256",
            set.name,
            set.classes.len()
        ));
    }
    let examples = set
        .rows
        .iter()
        .map(|r| w2s_data::Example {
            id: r.id.clone(),
            text: String::new(),
            label: r.label as u8,
            group: r.id.clone(),
            ..Default::default()
        })
        .collect();
    // Named as the reference was written (a column query included), as text datasets are.
    let dataset = Dataset {
        name: name.to_string(),
        version: set.version.clone(),
        examples,
    };
    Ok((dataset, set.rows))
}

/// A dataset's rows as the feature cache sees them.
pub fn rows_of(dataset: &Dataset) -> w2s_models::Rows<'_> {
    w2s_models::Rows {
        name: &dataset.name,
        version: &dataset.version,
        texts: dataset.examples.iter().map(|e| e.text.as_str()).collect(),
    }
}
