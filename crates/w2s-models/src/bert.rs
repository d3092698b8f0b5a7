//! BERT encoder (MiniLM-L3, MiniLM-L6, multilingual-e5-small), written for training.
//!
//! Follows HF `BertModel` with absolute positions starting at 0, token type 0, post-LN layers and
//! erf GELU. No pooler: sentence embeddings come from mean pooling over the last hidden state.
use crate::nn::{attention_bias, AttentionNames, EncoderLayer, LayerNorm};
use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};
use serde::Deserialize;

/// The subset of HF `config.json` that BERT needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "one")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id (0 when the config does not say).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn one() -> usize {
    1
}
fn default_eps() -> f64 {
    1e-12
}

#[derive(Debug, Clone)]
struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

const NAMES: AttentionNames = AttentionNames {
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    o: "attention.output.dense",
    norm: "attention.output.LayerNorm",
};

/// A BERT encoder without pooler.
#[derive(Debug, Clone)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
}

impl Bert {
    /// The transformer layers, for adapters.
    pub fn layers_mut(&mut self) -> &mut [EncoderLayer] {
        &mut self.layers
    }

    /// Builds the model from a VarBuilder with HF names (`embeddings.*`, `encoder.layer.N.*`).
    pub fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: LayerNorm::load(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                EncoderLayer::load(
                    h,
                    cfg.intermediate_size,
                    cfg.num_attention_heads,
                    cfg.layer_norm_eps,
                    &NAMES,
                    vb.pp(format!("encoder.layer.{i}")),
                )
            })
            .collect::<Result<_>>()?;
        Ok(Bert { embeddings, layers })
    }

    /// Last hidden state `[batch, seq, hidden]` for token ids and a 0/1 mask, both `[batch, seq]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?;
        let types = positions.zeros_like()?;
        let e = &self.embeddings;
        let x = e
            .word
            .forward(ids)?
            .broadcast_add(&e.position.forward(&positions)?)?
            .broadcast_add(&e.token_type.forward(&types)?)?;
        let mut x = e.norm.forward(&x)?;
        let bias = attention_bias(mask, x.dtype())?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        Ok(x)
    }
}
