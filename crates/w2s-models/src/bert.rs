//! BERT encoder (MiniLM-L3, MiniLM-L6, multilingual-e5-small), written for training.
//!
//! Follows HF `BertModel` with absolute positions starting at 0, token type 0, post-LN layers and
//! the config's activation (erf GELU for every checkpoint we know). No pooler: sentence
//! embeddings come from mean pooling over the last hidden state. RoBERTa (`roberta.rs`) is this
//! model with positions counted after the padding index.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::error::{CandleContext, Result};
use crate::nn::{
    attention_bias, positions_after_padding, Activation, AttentionNames, Embedding, EncoderLayer,
    LayerNorm, Linear,
};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
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
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}

/// How position ids are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// 0, 1, 2, … (BERT).
    FromZero,
    /// `pad + 1, pad + 2, …` over real tokens (RoBERTa, XLM-R).
    AfterPadding(u32),
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
    positions: Positions,
    dtype: DType,
}

impl Bert {
    /// Builds the model from a VarBuilder with HF names (`embeddings.*`, `encoder.layer.N.*`).
    pub fn load(
        cfg: &Config,
        positions: Positions,
        config: &ConfigFile,
        vb: VarBuilder,
    ) -> Result<Self> {
        if let Some(p) = cfg
            .position_embedding_type
            .as_deref()
            .filter(|p| *p != "absolute")
        {
            return Err(config.error(format!(
                "position_embedding_type {p:?} is not supported (only \"absolute\")"
            )));
        }
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let what = format!("building an encoder from {}", config.path.display());
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let build = || -> candle_core::Result<(Embeddings, Vec<EncoderLayer>)> {
            let embeddings = Embeddings {
                word: Embedding::load(cfg.vocab_size, h, e.pp("word_embeddings"))?,
                position: Embedding::load(
                    cfg.max_position_embeddings,
                    h,
                    e.pp("position_embeddings"),
                )?,
                token_type: Embedding::load(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?,
                norm: LayerNorm::load(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
            };
            let layers = (0..cfg.num_hidden_layers)
                .map(|i| {
                    EncoderLayer::load(
                        h,
                        cfg.intermediate_size,
                        cfg.num_attention_heads,
                        cfg.layer_norm_eps,
                        act,
                        &NAMES,
                        vb.pp(format!("encoder.layer.{i}")),
                    )
                })
                .collect::<candle_core::Result<_>>()?;
            Ok((embeddings, layers))
        };
        let (embeddings, layers) = build().context(what)?;
        Ok(Bert {
            embeddings,
            layers,
            positions,
            dtype: vb.dtype(),
        })
    }
}

impl Backbone for Bert {
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let positions = match self.positions {
            Positions::FromZero => Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?,
            Positions::AfterPadding(pad) => positions_after_padding(mask, pad)?,
        };
        let types = Tensor::zeros((1, t), DType::U32, ids.device())?;
        let (e, dt) = (&self.embeddings, self.dtype);
        let x = e
            .word
            .forward(ids, dt)?
            .broadcast_add(&e.position.forward(&positions, dt)?)?
            .broadcast_add(&e.token_type.forward(&types, dt)?)?;
        let mut x = e.norm.forward(&x)?;
        let bias = attention_bias(mask, dt)?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        Ok(x)
    }

    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        EncoderLayer::stack_linears_mut(&mut self.layers)
    }
}

/// The `bert` architecture.
pub struct BertArch;

impl Architecture for BertArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["bert"]
    }
    fn pooling(&self) -> Pooling {
        Pooling::Mean
    }
    fn embedding_name(&self) -> &'static str {
        "embeddings.word_embeddings.weight"
    }
    fn layer_prefix(&self) -> &'static str {
        "encoder.layer"
    }
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<Config>()?.hidden_size)
    }
    fn max_tokens(&self, config: &ConfigFile) -> Option<usize> {
        config
            .parse::<Config>()
            .ok()
            .map(|c| c.max_position_embeddings)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let cfg: Config = config.parse()?;
        Ok(Box::new(Bert::load(&cfg, Positions::FromZero, config, vb)?))
    }
}
