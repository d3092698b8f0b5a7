//! Tokenization with the `tokenizers` crate, truncating from the left.
//!
//! Truncation keeps the *end* of a text: for question answering rows the question and candidate
//! answer come last, and cutting them off would make the task unanswerable. A model prefix (e5's
//! `query: `) is kept in front whatever the length.
use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};

/// A loaded tokenizer plus the special ids the encoders need.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    prefix: String,
    prefix_len: usize,
    cls: u32,
    sep: u32,
    /// Id used to pad batches.
    pub pad: u32,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, with `prefix` put before every text and `pad` as padding id.
    pub fn load(path: &Path, prefix: &str, pad: u32) -> Result<Self> {
        let err = |reason: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        // Some packaged tokenizer.json files have padding/truncation baked in; we do both ourselves.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        let specials = inner
            .encode("", true)
            .map_err(|e| err(e.to_string()))?
            .get_ids()
            .to_vec();
        let (cls, sep) = match specials[..] {
            [cls, sep] => (cls, sep),
            _ => {
                return Err(err(format!(
                    "expected [CLS] [SEP] around an empty text, got ids {specials:?}"
                )))
            }
        };
        let prefix_len = if prefix.is_empty() {
            0
        } else {
            inner
                .encode(prefix.trim_end(), false)
                .map_err(|e| err(e.to_string()))?
                .get_ids()
                .len()
        };
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            prefix: prefix.to_string(),
            prefix_len,
            cls,
            sep,
            pad,
        })
    }

    /// Token ids of one text with special tokens, at most `max_len` long (end kept, prefix kept).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let full = format!("{}{text}", self.prefix);
        let enc = self
            .inner
            .encode(full.as_str(), false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let ids = enc.get_ids();
        let room = max_len.saturating_sub(2).max(self.prefix_len + 1);
        let mut out = Vec::with_capacity(ids.len().min(room) + 2);
        out.push(self.cls);
        if ids.len() <= room {
            out.extend_from_slice(ids);
        } else {
            out.extend_from_slice(&ids[..self.prefix_len]);
            out.extend_from_slice(&ids[ids.len() - (room - self.prefix_len)..]);
        }
        out.push(self.sep);
        Ok(out)
    }
}
