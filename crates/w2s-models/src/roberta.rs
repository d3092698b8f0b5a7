//! RoBERTa and XLM-RoBERTa: BERT's layers (`bert.rs`) with positions counted from
//! `padding_idx + 1` over the real tokens of a row (padding keeps `padding_idx`), as HF's
//! `create_position_ids_from_input_ids`. The two `model_type`s differ only in vocabulary.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::bert::{Bert, Config, Positions};
use crate::error::Result;
use candle_nn::VarBuilder;

/// The `roberta` / `xlm-roberta` architecture.
pub struct RobertaArch;

impl RobertaArch {
    fn pad(config: &ConfigFile) -> Result<u32> {
        // RoBERTa's configs always name the padding index (1); positions depend on it.
        config
            .parse::<Config>()?
            .pad_token_id
            .ok_or_else(|| config.error("RoBERTa needs pad_token_id: positions start after it"))
    }
}

impl Architecture for RobertaArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["roberta", "xlm-roberta"]
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
    fn padding_idx(&self, config: &ConfigFile) -> Option<u32> {
        Self::pad(config).ok()
    }
    /// Positions start after the padding index, so the table holds `pad + 1` fewer tokens.
    fn max_tokens(&self, config: &ConfigFile) -> Option<usize> {
        let cfg = config.parse::<Config>().ok()?;
        Some(
            cfg.max_position_embeddings
                .saturating_sub(Self::pad(config).ok()? as usize + 1),
        )
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let cfg: Config = config.parse()?;
        let positions = Positions::AfterPadding(Self::pad(config)?);
        Ok(Box::new(Bert::load(&cfg, positions, config, vb)?))
    }
}
