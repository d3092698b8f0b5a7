//! A backbone plus its tokenizer: token ids in, mean-pooled sentence embeddings out.
use crate::bert::{self, Bert};
use crate::error::{CandleContext, ModelError, Result};
use crate::mpnet::{self, MpNet};
use crate::registry::{Arch, ModelSource};
use crate::tokenize::TextTokenizer;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};

/// The trainable encoder architectures.
pub enum Backbone {
    /// BERT family.
    Bert(Bert),
    /// MPNet.
    MpNet(MpNet),
}

/// An encoder ready to embed text.
pub struct Encoder {
    backbone: Backbone,
    /// The model's tokenizer.
    pub tokenizer: TextTokenizer,
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

impl Encoder {
    /// Loads frozen weights, memory-mapped (feature extraction).
    pub fn load(source: &ModelSource, device: &Device) -> Result<Self> {
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
        let enc = Self::build(source, vb, device)?;
        let mut varmap = varmap.clone();
        varmap.load(&source.weights).context(format!(
            "loading {} into trainable variables",
            source.weights.display()
        ))?;
        Ok(enc)
    }

    /// Builds the encoder from any VarBuilder (e.g. detached copies of trained variables).
    pub fn build(source: &ModelSource, vb: VarBuilder, device: &Device) -> Result<Self> {
        let what = format!("building {} from {}", source.name, source.weights.display());
        let (backbone, hidden, pad) = match source.arch {
            Arch::Bert => {
                let cfg: bert::Config = read_config(source)?;
                let pad = cfg.pad_token_id.unwrap_or(0);
                (
                    Backbone::Bert(Bert::load(&cfg, vb).context(what)?),
                    cfg.hidden_size,
                    pad,
                )
            }
            Arch::MpNet => {
                let cfg: mpnet::Config = read_config(source)?;
                (
                    Backbone::MpNet(MpNet::load(&cfg, vb).context(what)?),
                    cfg.hidden_size,
                    cfg.pad_token_id,
                )
            }
        };
        let tokenizer = TextTokenizer::load(&source.tokenizer, &source.prefix, pad)?;
        Ok(Encoder {
            backbone,
            tokenizer,
            hidden,
            source: source.clone(),
            device: device.clone(),
        })
    }

    /// The transformer layers, for adapters (LoRA).
    pub fn layers_mut(&mut self) -> &mut [crate::nn::EncoderLayer] {
        match &mut self.backbone {
            Backbone::Bert(m) => m.layers_mut(),
            Backbone::MpNet(m) => m.layers_mut(),
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pads token-id rows to one length: `(ids [b, t] u32, mask [b, t] f32)`.
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

    /// Last hidden state `[b, t, hidden]`.
    pub fn hidden_states(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match &self.backbone {
            Backbone::Bert(m) => m.forward(ids, mask),
            Backbone::MpNet(m) => m.forward(ids, mask),
        }
        .context(format!("{} forward", self.source.name))
    }

    /// Mean-pooled embeddings `[b, hidden]` of already tokenized rows.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let (ids, mask) = self.pad_batch(rows)?;
        let hidden = self.hidden_states(&ids, &mask)?;
        mean_pool(&hidden, &mask).context("mean pooling")
    }

    /// Mean-pooled embeddings `[b, hidden]` of texts, each truncated to `max_len` tokens.
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
