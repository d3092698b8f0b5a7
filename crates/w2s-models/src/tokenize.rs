//! Tokenization with the `tokenizers` crate, truncating from the left.
//!
//! The special tokens around a text are exactly those of the tokenizer's post-processor
//! (`tokenizer.json`): `[CLS] … [SEP]` for BERT, `<s> … </s>` for RoBERTa, `<|begin_of_text|>`
//! before a text for Llama 3, nothing for GPT-2, Pythia and Qwen. GGUF decoders put their BOS in
//! front when the model was trained with one (Gemma) and nothing after.
//!
//! Truncation keeps the *end* of a text: for question answering rows the question and candidate
//! answer come last, and cutting them off would make the task unanswerable. A model prefix (e5's
//! `query: `) is kept in front whatever the length.
use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};

/// The ids the post-processor puts before and after a text: found by encoding a probe text with
/// and without special tokens and locating the plain ids inside the other.
fn specials_around(
    tk: &tokenizers::Tokenizer,
) -> std::result::Result<(Vec<u32>, Vec<u32>), String> {
    for probe in ["a", "the", "hello", "1", "x y"] {
        let plain = tk.encode(probe, false).map_err(|e| e.to_string())?;
        let plain = plain.get_ids();
        if plain.is_empty() {
            continue;
        }
        let with = tk.encode(probe, true).map_err(|e| e.to_string())?;
        let with = with.get_ids();
        if let Some(p) = with.windows(plain.len()).position(|w| w == plain) {
            return Ok((with[..p].to_vec(), with[p + plain.len()..].to_vec()));
        }
        return Err(format!(
            "the post-processor changes the text's own ids ({plain:?} inside {with:?})"
        ));
    }
    // Nothing tokenizes (an empty vocabulary): whatever wraps the empty text goes in front.
    let empty = tk.encode("", true).map_err(|e| e.to_string())?;
    Ok((empty.get_ids().to_vec(), Vec::new()))
}

/// A loaded tokenizer plus the special ids the encoders need.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    prefix: String,
    prefix_len: usize,
    head: Vec<u32>,
    tail: Vec<u32>,
    /// The model's longest input (its position table), if it has one.
    max_tokens: Option<usize>,
    /// Id used to pad batches.
    pub pad: u32,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, with `prefix` put before every text and `pad` as padding id (never
    /// read back: pooling and attention use the mask).
    pub fn load(path: &Path, prefix: &str, pad: u32) -> Result<Self> {
        // tokenizers panics on some malformed files instead of failing, when it reads them or
        // when a post-processor template names a token the file lacks (found by w2s-fuzz).
        w2s_assets::contain::contain(|| Self::load_unguarded(path, prefix, pad)).unwrap_or_else(
            |panic| {
                Err(ModelError::Tokenizer {
                    path: path.to_path_buf(),
                    reason: format!("malformed tokenizer file ({panic})"),
                })
            },
        )
    }

    fn load_unguarded(path: &Path, prefix: &str, pad: u32) -> Result<Self> {
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
        let (head, tail) = specials_around(&inner).map_err(err)?;
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
            head,
            tail,
            max_tokens: None,
            pad,
        })
    }

    /// Caps every encoding at `max_tokens` (the model's position table), whatever `max_len` asks.
    pub fn limit(&mut self, max_tokens: Option<usize>) {
        self.max_tokens = max_tokens;
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
            max_tokens: None,
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
        let max_len = self.max_tokens.map_or(max_len, |m| max_len.min(m));
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
