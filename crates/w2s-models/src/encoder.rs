//! A backbone plus its tokenizer: token ids in, pooled sentence embeddings out.
//!
//! Encoders (BERT, RoBERTa, MPNet) are mean-pooled as sentence-transformers does; decoders
//! (GPT-2, GPT-NeoX, Llama, Qwen2/3, Gemma3) are pooled at the last real token, the only one that
//! has seen the whole text.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::decoder::last_token_pool;
use crate::error::{CandleContext, ModelError, Result};
use crate::gguf::Gguf;
use crate::nn::Linear;
use crate::registry::{ModelSource, WeightFormat};
use crate::tokenize::TextTokenizer;
use crate::weights::{Checkpoint, Loader, TrainedPredicate};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::sync::Arc;

/// Which weights become trainable variables when a model is loaded.
#[derive(Clone, Copy)]
pub enum Train<'a> {
    /// None: every weight is a frozen tensor (feature extraction, LoRA's base).
    Nothing,
    /// Every weight, as f32 variables of the map.
    All(&'a VarMap),
    /// The top k transformer layers (as f32 variables of the map); the rest stay frozen tensors,
    /// outside the autograd graph.
    TopLayers(usize, &'a VarMap),
}

/// How to load a model.
#[derive(Clone, Copy)]
pub struct LoadRequest<'a> {
    /// Where the weights go.
    pub device: &'a Device,
    /// Dtype of frozen weights and of the forward pass (trained weights stay f32).
    pub dtype: DType,
    /// What trains.
    pub train: Train<'a>,
}

impl<'a> LoadRequest<'a> {
    /// Frozen f32 weights on `device`.
    pub fn frozen(device: &'a Device) -> Self {
        LoadRequest {
            device,
            dtype: DType::F32,
            train: Train::Nothing,
        }
    }
}

/// An encoder ready to embed text.
pub struct Encoder {
    backbone: Box<dyn Backbone>,
    arch: &'static dyn Architecture,
    config: Arc<ConfigFile>,
    /// Every tensor the backbone was built from, by name below the model root.
    tensors: Arc<HashMap<String, Tensor>>,
    /// The model's tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// Width of the pooled embedding.
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// Where the model came from.
    pub source: ModelSource,
    device: Device,
    dtype: DType,
}

impl Clone for Encoder {
    fn clone(&self) -> Self {
        Encoder {
            backbone: self.backbone.boxed_clone(),
            arch: self.arch,
            config: self.config.clone(),
            tensors: self.tensors.clone(),
            tokenizer: self.tokenizer.clone(),
            hidden: self.hidden,
            layers: self.layers,
            source: self.source.clone(),
            device: self.device.clone(),
            dtype: self.dtype,
        }
    }
}

/// The padding id of a Hugging Face model: the one its positions depend on (RoBERTa, MPNet),
/// else `pad_token_id`, else the end-of-text id (GPT-2 and Pythia have no pad token), else 0.
/// Padding sits under the mask, so any id the embedding holds will do: candidates at or above
/// `vocab` (configs made for small vocabularies keep the defaults' ids, GPT-2's eos 50256) are
/// passed over.
fn pad_id(arch: &dyn Architecture, cfg: &ConfigFile, vocab: usize) -> u32 {
    let id = |key: &str| {
        let v = cfg.value.get(key)?;
        v.as_u64().or_else(|| v.as_array()?.first()?.as_u64())
    };
    let fits = |id: &u32| (*id as usize) < vocab;
    arch.padding_idx(cfg)
        .filter(fits)
        .or_else(|| id("pad_token_id").map(|v| v as u32).filter(fits))
        .or_else(|| id("eos_token_id").map(|v| v as u32).filter(fits))
        .unwrap_or(0)
}

/// Rows of the token embedding among the tensors a backbone was built from.
fn embedding_rows(arch: &dyn Architecture, tensors: &HashMap<String, Tensor>) -> usize {
    tensors
        .get(arch.embedding_name())
        .and_then(|t| t.dims().first().copied())
        .unwrap_or(0)
}

impl Encoder {
    /// Loads frozen f32 weights (feature extraction).
    pub fn load(source: &ModelSource, device: &Device) -> Result<Self> {
        Self::load_with(source, &LoadRequest::frozen(device))
    }

    /// Loads every weight into trainable f32 variables of `varmap` (full fine-tuning).
    pub fn load_trainable(source: &ModelSource, varmap: &VarMap, device: &Device) -> Result<Self> {
        Self::load_with(
            source,
            &LoadRequest {
                device,
                dtype: DType::F32,
                train: Train::All(varmap),
            },
        )
    }

    /// Loads `source` as `req` says.
    pub fn load_with(source: &ModelSource, req: &LoadRequest) -> Result<Self> {
        let device = req.device;
        // GGUF files carry their tokenizer; HF folders' is read once the vocabulary is known.
        let (config, checkpoint, gguf_tokenizer) = match source.format {
            WeightFormat::Gguf => {
                let path = source.weights.first().cloned().unwrap_or_default();
                let gguf = Gguf::open(&path)?;
                let tensors = gguf.tensors(device)?;
                let tokenizer = TextTokenizer::from_decoder(gguf.tokenizer()?, &path);
                (
                    gguf.config.clone(),
                    Checkpoint::tensors(tensors, &path, device),
                    Some(tokenizer),
                )
            }
            WeightFormat::Safetensors => (
                ConfigFile::read(&source.config)?,
                Checkpoint::safetensors(&source.weights, device)?,
                None,
            ),
        };
        let arch = crate::arch::architecture(config.model_type()?, &config.path)?;
        let root = checkpoint.root(arch.embedding_name())?;
        let layers = checkpoint.layer_count(&root, arch.layer_prefix());
        let prefix = arch.layer_prefix();
        let trained: Option<(VarMap, TrainedPredicate)> = match req.train {
            Train::Nothing => None,
            Train::All(vm) => Some((vm.clone(), Box::new(|_: &str| true))),
            Train::TopLayers(k, vm) => {
                let first = layers.saturating_sub(k);
                Some((
                    vm.clone(),
                    Box::new(move |name: &str| {
                        crate::arch::layer_of(name, prefix).is_some_and(|l| l >= first)
                    }),
                ))
            }
        };
        let loader = Loader::new(&checkpoint, root, req.dtype, trained);
        let handed_out = loader.handed_out();
        let vb = VarBuilder::from_backend(Box::new(loader), req.dtype, device.clone());
        let backbone = arch.load(&config, vb).map_err(|e| match e {
            ModelError::Candle { context, source: s } => ModelError::Candle {
                context: format!(
                    "{context} (weights {})",
                    checkpoint
                        .files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                source: s,
            },
            other => other,
        })?;
        let tensors = handed_out.lock().expect("tensor record lock").clone();
        let mut tokenizer = match gguf_tokenizer {
            Some(t) => t,
            None => {
                let pad = pad_id(arch, &config, embedding_rows(arch, &tensors));
                TextTokenizer::load(&source.tokenizer, &source.prefix, pad)?
            }
        };
        tokenizer.limit(arch.max_tokens(&config));
        Ok(Encoder {
            backbone,
            arch,
            hidden: arch.hidden_size(&config)?,
            config: Arc::new(config),
            tensors: Arc::new(tensors),
            tokenizer: Arc::new(tokenizer),
            layers,
            source: source.clone(),
            device: device.clone(),
            dtype: req.dtype,
        })
    }

    /// The same model on detached copies of its current weights (sharing their memory): a
    /// forward pass through it builds no autograd graph. The tokenizer and config are shared,
    /// nothing is read from disk.
    pub fn detached(&self) -> Result<Self> {
        let tensors: HashMap<String, Tensor> = self
            .tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.detach()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, self.dtype, &self.device);
        Ok(Encoder {
            backbone: self.arch.load(&self.config, vb)?,
            ..self.clone()
        })
    }

    /// The layer of a trainable variable's name (`None` for embeddings and final norms).
    pub fn layer_of(&self, name: &str) -> Option<usize> {
        crate::arch::layer_of(name, self.arch.layer_prefix())
    }

    /// The linear projections of each layer, by name: what LoRA adapts.
    pub fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        self.backbone.layer_linears_mut()
    }

    /// `(in, out)` of every linear projection inside the layers, layer by layer: what the matrix
    /// products of a forward pass multiply (`w2s bench` counts FLOPs from it).
    pub fn linear_shapes(&self) -> Vec<Vec<(usize, usize)>> {
        let mut copy = self.backbone.boxed_clone();
        copy.layer_linears_mut()
            .into_iter()
            .map(|layer| {
                layer
                    .into_iter()
                    .filter_map(|(_, l)| l.dims().ok())
                    .collect()
            })
            .collect()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How this model pools.
    pub fn pooling(&self) -> Pooling {
        self.arch.pooling()
    }

    /// Rows of the token embedding (ids must stay below this).
    pub fn vocab_size(&self) -> usize {
        embedding_rows(self.arch, &self.tensors)
    }

    /// Pads token-id rows to one length (on the right): `(ids [b, t] u32, mask [b, t] f32)`.
    /// An id outside the embedding (a tokenizer.json larger than the model's vocabulary) is an
    /// error that says so, not an index failure deep in the forward pass.
    pub fn pad_batch(&self, rows: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let vocab = self.vocab_size();
        if let Some(&bad) = rows.iter().flatten().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Tokenizer {
                path: self.source.tokenizer.clone(),
                reason: format!(
                    "token id {bad} is outside the model's vocabulary of {vocab} embeddings ({}): the tokenizer does not belong to this model",
                    self.source.config.display()
                ),
            });
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for r in rows {
            ids.extend(
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.tokenizer.pad, t - r.len())),
            );
            mask.extend(
                std::iter::repeat_n(1f32, r.len()).chain(std::iter::repeat_n(0f32, t - r.len())),
            );
        }
        let ids = Tensor::from_vec(ids, (rows.len(), t), &self.device).context("building ids")?;
        let mask =
            Tensor::from_vec(mask, (rows.len(), t), &self.device).context("building mask")?;
        Ok((ids, mask))
    }

    /// Last hidden state `[b, t, hidden]` in the compute dtype (after the final norm for
    /// pre-norm models).
    pub fn hidden_states(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.backbone
            .forward(ids, mask)
            .context(format!("{} forward", self.source.name))
    }

    /// The sentence embedding `[b, hidden]` (f32) of hidden states: mean over real tokens for
    /// encoders, the last real token for decoders.
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let pooled = match self.arch.pooling() {
            Pooling::LastToken => last_token_pool(hidden, mask).context("last-token pooling")?,
            Pooling::Mean => mean_pool(hidden, mask).context("mean pooling")?,
        };
        pooled
            .to_dtype(DType::F32)
            .context("pooled features to f32")
    }

    /// Pooled embeddings `[b, hidden]` of already tokenized rows.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let (ids, mask) = self.pad_batch(rows)?;
        let hidden = self.hidden_states(&ids, &mask)?;
        self.pool(&hidden, &mask)
    }

    /// Zero-shot scores of a causal model: for each text (truncated from the left to `max_len`
    /// tokens), the logit of the next token being the first token of each of `answers`. The
    /// head is the token embedding, so only models whose LM head is tied to it are accepted
    /// (every built-in decoder; `tie_word_embeddings: false` is refused). Gemma's final logit
    /// soft-capping is applied when the config sets it.
    pub fn answer_logits(
        &self,
        texts: &[&str],
        max_len: usize,
        answers: &[&str],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let cfg = &self.config;
        if self.arch.pooling() != Pooling::LastToken {
            return Err(cfg.error(format!(
                "{}: zero-shot scoring needs a causal language model (a decoder), not an encoder",
                self.source.name
            )));
        }
        if cfg
            .value
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            == Some(false)
        {
            return Err(cfg.error(format!(
                "{}: its LM head is not tied to the token embedding, and w2s does not load \
                 separate LM heads yet",
                self.source.name
            )));
        }
        let mut ids = Vec::with_capacity(answers.len());
        for a in answers {
            let first = self
                .tokenizer
                .raw_ids(a)?
                .first()
                .copied()
                .ok_or_else(|| cfg.error(format!("the answer {a:?} has no tokens")))?;
            ids.push(first);
        }
        let embedding = self
            .tensors
            .get(self.arch.embedding_name())
            .ok_or_else(|| cfg.error("no token embedding among the loaded tensors"))?;
        let idx = Tensor::new(ids.as_slice(), embedding.device()).context("answer ids")?;
        let head = embedding
            .index_select(&idx, 0)
            .and_then(|h| h.to_dtype(DType::F32))
            .and_then(|h| h.to_device(&self.device))
            .context("answer rows of the embedding")?;
        let cap = cfg
            .value
            .get("final_logit_softcapping")
            .and_then(|v| v.as_f64());
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch_size.max(1)) {
            let rows = chunk
                .iter()
                .map(|t| self.tokenizer.encode(t, max_len))
                .collect::<Result<Vec<_>>>()?;
            let (ids, mask) = self.pad_batch(&rows)?;
            let hidden = self.hidden_states(&ids, &mask)?;
            let last = self.pool(&hidden, &mask)?;
            let mut logits = last
                .matmul(&head.t().context("head")?)
                .context("answer logits")?;
            if let Some(c) = cap {
                logits = ((logits / c).and_then(|l| l.tanh()).and_then(|l| l * c))
                    .context("soft-capping")?;
            }
            out.extend(logits.to_vec2::<f32>().context("reading answer logits")?);
        }
        Ok(out)
    }

    /// Pooled embeddings `[b, hidden]` of texts, each truncated to `max_len` tokens.
    pub fn embed(&self, texts: &[&str], max_len: usize) -> Result<Tensor> {
        let rows = texts
            .iter()
            .map(|t| self.tokenizer.encode(t, max_len))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids(&rows)
    }
}

/// sentence-transformers mean pooling: the average of the hidden states of real (unmasked)
/// tokens, summed in f32 whatever the compute dtype.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let hidden = hidden.to_dtype(DType::F32)?;
    let m = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    summed.broadcast_div(&count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_ignores_padding() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &dev).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &dev).unwrap();
        let pooled = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, vec![vec![2.0, 3.0]]);
    }
}
