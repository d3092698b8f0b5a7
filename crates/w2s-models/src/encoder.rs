//! A backbone plus its tokenizer: token ids in, pooled sentence embeddings out.
//!
//! Encoders (BERT, MPNet) are mean-pooled as sentence-transformers does; decoders (Llama, Qwen2,
//! Gemma3 from GGUF) are pooled at the last real token, the only one that has seen the whole text.
use crate::bert::{self, Bert};
use crate::decoder::{self, last_token_pool, Decoder};
use crate::error::{CandleContext, ModelError, Result};
use crate::gguf::Gguf;
use crate::mpnet::{self, MpNet};
use crate::nn::Linear;
use crate::registry::{Arch, ModelSource};
use crate::tokenize::TextTokenizer;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use std::sync::Arc;

/// The trainable architectures.
#[derive(Clone)]
pub enum Backbone {
    /// BERT family.
    Bert(Bert),
    /// MPNet.
    MpNet(MpNet),
    /// Llama, Qwen2 or Gemma3 decoder.
    Decoder(Decoder),
}

/// What a backbone is built from, kept so that new weights can be swapped in cheaply.
#[derive(Clone)]
enum Shape {
    Bert(bert::Config),
    MpNet(mpnet::Config),
    Decoder(decoder::Config),
}

/// An encoder ready to embed text.
#[derive(Clone)]
pub struct Encoder {
    backbone: Backbone,
    shape: Shape,
    /// The model's tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// Width of the pooled embedding.
    pub hidden: usize,
    /// Where the model came from.
    pub source: ModelSource,
    device: Device,
}

fn read_config<T: serde::de::DeserializeOwned>(source: &ModelSource) -> Result<T> {
    let err = |reason: String| ModelError::Config {
        path: source.config.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&source.config).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn build_backbone(shape: &Shape, vb: VarBuilder, what: String) -> Result<Backbone> {
    Ok(match shape {
        Shape::Bert(cfg) => Backbone::Bert(Bert::load(cfg, vb).context(what)?),
        Shape::MpNet(cfg) => Backbone::MpNet(MpNet::load(cfg, vb).context(what)?),
        Shape::Decoder(cfg) => Backbone::Decoder(Decoder::load(cfg, vb).context(what)?),
    })
}

impl Encoder {
    /// Loads frozen weights (feature extraction): safetensors are memory-mapped, GGUF tensors
    /// dequantised to f32.
    pub fn load(source: &ModelSource, device: &Device) -> Result<Self> {
        if source.arch == Arch::Decoder {
            let gguf = Gguf::open(&source.weights)?;
            let tensors = gguf.tensors(device)?;
            let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
            return Self::from_gguf(source, &gguf, vb, device);
        }
        // SAFETY: the file was checksum-verified just before; w2s never writes a cached file in
        // place (only whole-file renames), so the mapping stays valid while the model lives.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                std::slice::from_ref(&source.weights),
                DType::F32,
                device,
            )
        }
        .context(format!("mapping {}", source.weights.display()))?;
        Self::build(source, vb, device)
    }

    /// Loads the weights into trainable variables of `varmap` (fine-tuning).
    pub fn load_trainable(source: &ModelSource, varmap: &VarMap, device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        let what = format!(
            "loading {} into trainable variables",
            source.weights.display()
        );
        if source.arch == Arch::Decoder {
            let gguf = Gguf::open(&source.weights)?;
            let enc = Self::from_gguf(source, &gguf, vb, device)?;
            let tensors = gguf.tensors(device)?;
            let mut varmap = varmap.clone();
            let names: Vec<String> = varmap
                .data()
                .lock()
                .expect("var map lock")
                .keys()
                .cloned()
                .collect();
            for name in names {
                let t = tensors.get(&name).ok_or_else(|| ModelError::Config {
                    path: source.weights.clone(),
                    reason: format!("no tensor for {name}"),
                })?;
                varmap.set_one(&name, t).context(what.clone())?;
            }
            return Ok(enc);
        }
        let enc = Self::build(source, vb, device)?;
        let mut varmap = varmap.clone();
        varmap.load(&source.weights).context(what)?;
        Ok(enc)
    }

    fn from_gguf(
        source: &ModelSource,
        gguf: &Gguf,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<Self> {
        let shape = Shape::Decoder(gguf.config.clone());
        let what = format!("building {} from {}", source.name, source.weights.display());
        Ok(Encoder {
            backbone: build_backbone(&shape, vb, what)?,
            tokenizer: Arc::new(TextTokenizer::from_decoder(
                gguf.tokenizer()?,
                &source.weights,
            )),
            hidden: gguf.config.hidden_size,
            shape,
            source: source.clone(),
            device: device.clone(),
        })
    }

    /// Builds an encoder (safetensors architectures) from any VarBuilder.
    pub fn build(source: &ModelSource, vb: VarBuilder, device: &Device) -> Result<Self> {
        let (shape, hidden, pad) = match source.arch {
            Arch::Bert => {
                let cfg: bert::Config = read_config(source)?;
                let (h, pad) = (cfg.hidden_size, cfg.pad_token_id.unwrap_or(0));
                (Shape::Bert(cfg), h, pad)
            }
            Arch::MpNet => {
                let cfg: mpnet::Config = read_config(source)?;
                let (h, pad) = (cfg.hidden_size, cfg.pad_token_id);
                (Shape::MpNet(cfg), h, pad)
            }
            Arch::Decoder => {
                let gguf = Gguf::open(&source.weights)?;
                return Self::from_gguf(source, &gguf, vb, device);
            }
        };
        let what = format!("building {} from {}", source.name, source.weights.display());
        let tokenizer = TextTokenizer::load(&source.tokenizer, &source.prefix, pad)?;
        Ok(Encoder {
            backbone: build_backbone(&shape, vb, what)?,
            shape,
            tokenizer: Arc::new(tokenizer),
            hidden,
            source: source.clone(),
            device: device.clone(),
        })
    }

    /// The same model with other weights (e.g. detached copies of trained variables); the
    /// tokenizer and config are shared, nothing is read from disk.
    pub fn with_weights(&self, vb: VarBuilder) -> Result<Self> {
        let what = format!("rebuilding {} from new weights", self.source.name);
        Ok(Encoder {
            backbone: build_backbone(&self.shape, vb, what)?,
            ..self.clone()
        })
    }

    /// The linear projections of each layer, by name: what LoRA adapts.
    pub fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        match &mut self.backbone {
            Backbone::Bert(m) => m
                .layers_mut()
                .iter_mut()
                .map(|l| l.linears_mut().into_iter().collect())
                .collect(),
            Backbone::MpNet(m) => m
                .layers_mut()
                .iter_mut()
                .map(|l| l.linears_mut().into_iter().collect())
                .collect(),
            Backbone::Decoder(m) => m
                .layers_mut()
                .iter_mut()
                .map(|l| l.linears_mut().into_iter().collect())
                .collect(),
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pads token-id rows to one length (on the right): `(ids [b, t] u32, mask [b, t] f32)`.
    pub fn pad_batch(&self, rows: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
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

    /// Last hidden state `[b, t, hidden]` (after the final norm for decoders).
    pub fn hidden_states(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match &self.backbone {
            Backbone::Bert(m) => m.forward(ids, mask),
            Backbone::MpNet(m) => m.forward(ids, mask),
            Backbone::Decoder(m) => m.forward(ids, mask),
        }
        .context(format!("{} forward", self.source.name))
    }

    /// The sentence embedding `[b, hidden]` of hidden states: mean over real tokens for encoders,
    /// the last real token for decoders.
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self.backbone {
            Backbone::Decoder(_) => last_token_pool(hidden, mask).context("last-token pooling"),
            _ => mean_pool(hidden, mask).context("mean pooling"),
        }
    }

    /// Pooled embeddings `[b, hidden]` of already tokenized rows.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let (ids, mask) = self.pad_batch(rows)?;
        let hidden = self.hidden_states(&ids, &mask)?;
        self.pool(&hidden, &mask)
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

/// sentence-transformers mean pooling: the average of the hidden states of real (unmasked) tokens.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
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
