//! Fine-tuning: a trainable backbone with a zero-initialised linear head on its pooled output.
//!
//! What trains is an [`Adapt`]: every backbone parameter, the top k transformer layers, or LoRA
//! adapters on every projection of every layer (base weights frozen). The head always trains.
//! Frozen weights are plain tensors in the requested dtype (outside the autograd graph); trained
//! weights are f32 variables. The backbones are our own code, so every parameter gets a gradient
//! (fused LayerNorm / softmax are used only when nothing is tracked).
use crate::trainer::Trainable;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use w2s_models::nn::Lora;
use w2s_models::{Encoder, LoadRequest, ModelSource, Train, WeightDtype};

/// Rows per forward pass when predicting (no gradient is kept).
const PREDICT_BATCH: usize = 64;

/// Which backbone parameters train.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adapt {
    /// Every backbone parameter.
    All,
    /// Only the top k transformer layers.
    TopLayers(usize),
    /// LoRA adapters of rank `rank` on q, k, v, attention output and both feed-forward layers of
    /// every layer, scaled by `alpha / rank`; the pretrained weights stay frozen.
    Lora {
        /// Rank r.
        rank: usize,
        /// Scale numerator α.
        alpha: f64,
    },
}

/// One adapter's variables: layer, projection, A, B, scale.
type Adapter = (usize, &'static str, Var, Var, f64);

/// What a classifier is built from.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierRequest<'a> {
    /// The pretrained model.
    pub source: &'a ModelSource,
    /// Tokens per row at most (the end of a text is kept).
    pub max_len: usize,
    /// What trains besides the head.
    pub adapt: Adapt,
    /// The head's learning rate is the base rate times this.
    pub head_lr_scale: f64,
    /// K, the head's outputs (2 for binary); 1 makes a scorer for [`crate::ChoiceClassifier`], whose
    /// head has no bias (a softmax over a question's candidates would cancel it).
    pub classes: usize,
    /// Precision of frozen weights and of the forward pass.
    pub dtype: WeightDtype,
    /// Where to compute.
    pub device: &'a Device,
}

/// An encoder plus a `[hidden → K]` head, over pre-tokenized rows of one dataset.
pub struct EncoderClassifier {
    encoder: Encoder,
    adapters: Vec<Adapter>,
    ids: Vec<Vec<u32>>,
    backbone_vars: Vec<Var>,
    weight: Var,
    bias: Option<Var>,
    head_lr_scale: f64,
}

impl EncoderClassifier {
    /// Loads the model of `req` and tokenizes `texts`.
    pub fn new(
        req: &ClassifierRequest,
        texts: &[&str],
    ) -> std::result::Result<EncoderClassifier, w2s_models::ModelError> {
        let (source, device) = (req.source, req.device);
        let to_candle = |e: candle_core::Error| w2s_models::ModelError::Candle {
            context: format!("setting up {} for fine-tuning", source.name),
            source: e,
        };
        let varmap = VarMap::new();
        let train = match req.adapt {
            Adapt::Lora { .. } => Train::Nothing,
            Adapt::All => Train::All(&varmap),
            Adapt::TopLayers(k) => Train::TopLayers(k, &varmap),
        };
        let load = LoadRequest {
            device,
            dtype: req.dtype.load_dtype(device),
            train,
        };
        let mut encoder = Encoder::load_with(source, &load)?;
        let (backbone_vars, adapters) = match req.adapt {
            Adapt::Lora { rank, alpha } => {
                let adapters = attach_lora(&mut encoder, rank, alpha, device).map_err(to_candle)?;
                let vars = adapters
                    .iter()
                    .flat_map(|(_, _, a, b, _)| [a.clone(), b.clone()])
                    .collect();
                (vars, adapters)
            }
            // Frozen layers of `TopLayers` were loaded as plain tensors: backward stops at the
            // lowest trained layer and the frozen layers run the fused kernels.
            Adapt::All | Adapt::TopLayers(_) => {
                let vars = varmap.data().lock().expect("var map lock").clone();
                let mut names: Vec<&String> = vars.keys().collect();
                names.sort();
                (
                    names.into_iter().map(|n| vars[n].clone()).collect(),
                    Vec::new(),
                )
            }
        };
        let ids = texts
            .iter()
            .map(|t| encoder.tokenizer.encode(t, req.max_len))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let hidden = encoder.hidden;
        Ok(EncoderClassifier {
            weight: Var::zeros((req.classes, hidden), DType::F32, device).map_err(to_candle)?,
            bias: if req.classes > 1 {
                Some(Var::zeros(req.classes, DType::F32, device).map_err(to_candle)?)
            } else {
                None
            },
            encoder,
            adapters,
            ids,
            backbone_vars,
            head_lr_scale: req.head_lr_scale,
        })
    }

    /// Replaces the tokenized rows (benchmarks feed exact lengths).
    pub fn set_ids(&mut self, ids: Vec<Vec<u32>>) {
        self.ids = ids;
    }

    /// Rows of the backbone's token embedding.
    pub fn vocab_size(&self) -> usize {
        self.encoder.vocab_size()
    }

    /// Number of backbone tensors that train.
    pub fn trained_backbone_tensors(&self) -> usize {
        self.backbone_vars.len()
    }

    fn pooled(&self, encoder: &Encoder, rows: &[usize]) -> Result<Tensor> {
        let batch: Vec<Vec<u32>> = rows.iter().map(|&r| self.ids[r].clone()).collect();
        let (ids, mask) = encoder.pad_batch(&batch).map_err(model_to_candle)?;
        let hidden = encoder
            .hidden_states(&ids, &mask)
            .map_err(model_to_candle)?;
        encoder.pool(&hidden, &mask).map_err(model_to_candle)
    }

    /// A frozen copy of the current weights: inference through it builds no graph and takes the
    /// fused kernels.
    fn frozen(&self) -> Result<(Encoder, Tensor, Option<Tensor>)> {
        let encoder = if self.adapters.is_empty() {
            self.encoder.detached().map_err(model_to_candle)?
        } else {
            // The frozen base weights are shared; only the adapters are swapped for detached copies.
            let mut encoder = self.encoder.clone();
            let mut layers = encoder.layer_linears_mut();
            for (layer, name, a, b, scale) in &self.adapters {
                for (n, linear) in layers[*layer].iter_mut() {
                    if n == name {
                        linear.set_lora(Some(Lora {
                            a: a.as_tensor().detach(),
                            b: b.as_tensor().detach(),
                            scale: *scale,
                        }));
                    }
                }
            }
            encoder
        };
        Ok((
            encoder,
            self.weight.as_tensor().detach(),
            self.bias.as_ref().map(|b| b.as_tensor().detach()),
        ))
    }

    /// The head's parameters.
    fn head(&self) -> Vec<Var> {
        std::iter::once(self.weight.clone())
            .chain(self.bias.clone())
            .collect()
    }

    /// The head's outputs for `rows` (`[rows, K]` row-major, logits), through the frozen weights:
    /// no graph, the fused kernels.
    pub fn scores(&self, rows: &[usize]) -> Result<Vec<f64>> {
        self.frozen_rows(rows, |logits| Ok(logits.clone()))
    }

    /// `each` of the frozen head's logits `[chunk, K]`, chunk by chunk of `rows`, gathered back
    /// into `rows`' order (`[rows, K]` row-major, f64).
    fn frozen_rows(
        &self,
        rows: &[usize],
        each: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Vec<f64>> {
        // Length-sorted chunks waste little on padding.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| self.ids[rows[i]].len());
        let k = self.classes();
        let mut out = vec![0f64; rows.len() * k];
        let (encoder, weight, bias) = self.frozen()?;
        for chunk in order.chunks(PREDICT_BATCH) {
            let batch: Vec<usize> = chunk.iter().map(|&i| rows[i]).collect();
            let mut logits = self.pooled(&encoder, &batch)?.matmul(&weight.t()?)?;
            if let Some(b) = &bias {
                logits = logits.broadcast_add(b)?;
            }
            let v = each(&logits)?
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_device(&Device::Cpu)?
                .to_vec1::<f64>()?;
            for (&i, row) in chunk.iter().zip(v.chunks(k)) {
                out[i * k..(i + 1) * k].copy_from_slice(row);
            }
        }
        Ok(out)
    }
}

/// Attaches a LoRA adapter to every projection of every layer. A starts uniform in ±1/√in from a
/// fixed seed (the run's seed already varies data order), B at zero.
fn attach_lora(
    encoder: &mut Encoder,
    rank: usize,
    alpha: f64,
    device: &Device,
) -> Result<Vec<Adapter>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x10_2a);
    let scale = alpha / rank.max(1) as f64;
    let mut adapters = Vec::new();
    for (i, layer) in encoder.layer_linears_mut().into_iter().enumerate() {
        for (name, linear) in layer {
            let (inp, out) = linear.dims()?;
            let bound = 1.0 / (inp as f32).sqrt();
            let init: Vec<f32> = (0..rank * inp)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            let a = Var::from_tensor(&Tensor::from_vec(init, (rank, inp), device)?)?;
            let b = Var::zeros((out, rank), DType::F32, device)?;
            linear.set_lora(Some(Lora {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale,
            }));
            adapters.push((i, name, a, b, scale));
        }
    }
    Ok(adapters)
}

fn model_to_candle(e: w2s_models::ModelError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl Trainable for EncoderClassifier {
    fn logits(&self, rows: &[usize]) -> Result<Tensor> {
        let logits = self
            .pooled(&self.encoder, rows)?
            .matmul(&self.weight.as_tensor().t()?)?;
        match &self.bias {
            Some(b) => logits.broadcast_add(b.as_tensor()),
            None => Ok(logits),
        }
    }

    fn vars(&self) -> Vec<Var> {
        let mut v = self.backbone_vars.clone();
        v.extend(self.head());
        v
    }

    fn param_groups(&self) -> Vec<(Vec<Var>, f64)> {
        vec![
            (self.backbone_vars.clone(), 1.0),
            (self.head(), self.head_lr_scale),
        ]
    }

    fn classes(&self) -> usize {
        self.weight.dim(0).unwrap_or(2)
    }

    fn predict_classes(&self, rows: &[usize]) -> Result<Vec<f64>> {
        self.frozen_rows(rows, |logits| candle_nn::ops::softmax(logits, 1))
    }
}
