//! Tokenization with the `tokenizers` crate, truncating from the left.
//!
//! Encoders wrap a text in `[CLS] … [SEP]`; decoders put their BOS in front when the model was
//! trained with one (Gemma) and nothing after.
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
    head: Vec<u32>,
    tail: Vec<u32>,
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
            head: vec![cls],
            tail: vec![sep],
            pad,
        })
    }

    /// Wraps a decoder's tokenizer rebuilt from GGUF metadata (`path` names the file in errors).
    pub fn from_decoder(dt: crate::gguf::DecoderTokenizer, path: &Path) -> Self {
        TextTokenizer {
            inner: dt.tokenizer,
            path: path.to_path_buf(),
            prefix: String::new(),
            prefix_len: 0,
            head: dt.bos.into_iter().collect(),
            tail: Vec::new(),
            pad: dt.pad,
        }
    }

    /// Token ids of a text without any special tokens or truncation (tests, inspection).
    pub fn raw_ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })?
            .get_ids()
            .to_vec())
    }

    /// Token ids of one text with special tokens, at most `max_len` long (end kept, prefix kept).
    /// A text with no tokens at all (empty, for a decoder without BOS) becomes one padding token,
    /// so every row has a last token to pool.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let full = format!("{}{text}", self.prefix);
        let ids = self.raw_ids(&full)?;
        let specials = self.head.len() + self.tail.len();
        let room = max_len.saturating_sub(specials).max(self.prefix_len + 1);
        let mut out = Vec::with_capacity(ids.len().min(room) + specials);
        out.extend_from_slice(&self.head);
        if ids.len() <= room {
            out.extend_from_slice(&ids);
        } else {
            out.extend_from_slice(&ids[..self.prefix_len]);
            out.extend_from_slice(&ids[ids.len() - (room - self.prefix_len)..]);
        }
        out.extend_from_slice(&self.tail);
        if out.is_empty() {
            out.push(self.pad);
        }
        Ok(out)
    }
}
