//! The canonical on-disk form of a converted dataset.
//!
//! Layout (little-endian): magic `W2SD`, u32 version, u64 row count, then per row id and text as
//! u32-length-prefixed UTF-8, the label as one byte, the group and (version 2) the question as
//! u32-length-prefixed UTF-8; last, the sha256 of everything before it, so a truncated or
//! corrupted file is detected instead of silently read.
//!
//! The content hash (a dataset's version, in every cache and store key) is taken over the
//! version-1 layout, without the questions: they do not change what a model reads or how rows
//! are split, so adding them kept every cached feature and stored node. A multiple-choice view
//! hashes its questions into its own version.
use crate::{DataError, Example, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

const MAGIC: &[u8; 4] = b"W2SD";
const VERSION: u32 = 2;

/// Serializes rows into the canonical form.
pub fn encode(examples: &[Example]) -> Vec<u8> {
    encode_as(examples, VERSION)
}

/// The layout of `version`: 1 leaves the questions out.
fn encode_as(examples: &[Example], version: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(examples.len() as u64).to_le_bytes());
    for e in examples {
        for s in [&e.id, &e.text] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.push(e.label);
        let strings: &[&String] = if version >= 2 {
            &[&e.group, &e.question]
        } else {
            &[&e.group]
        };
        for s in strings {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Parses the canonical form, checking magic, version and checksum.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Example>> {
    let bad = |reason: &str| DataError::File {
        path: path.to_path_buf(),
        reason: format!("{reason}; delete the file and it will be converted again"),
    };
    if bytes.len() < 48 || &bytes[..4] != MAGIC {
        return Err(bad("not a w2s dataset file"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch (corrupt or truncated)"));
    }
    let version = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return Err(bad("unsupported format version"));
    }
    let n = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
    let mut r = Reader { buf: body, pos: 16 };
    let mut examples = Vec::with_capacity(n.min(body.len()));
    for _ in 0..n {
        let row = (|| {
            let id = r.string()?;
            let text = r.string()?;
            let label = r.take(1)?[0];
            let group = r.string()?;
            let question = if version >= 2 {
                r.string()?
            } else {
                String::new()
            };
            Some(Example {
                id,
                text,
                label,
                group,
                question,
            })
        })();
        examples.push(row.ok_or_else(|| bad("truncated or invalid row"))?);
    }
    Ok(examples)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn string(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// Short content hash of rows: the dataset version used in cache keys.
pub fn content_hash(examples: &[Example]) -> String {
    hex::encode(&Sha256::digest(encode_as(examples, 1))[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Example> {
        vec![
            Example {
                id: "a".into(),
                text: "héllo".into(),
                label: 1,
                group: "g1".into(),
                question: "q1".into(),
            },
            Example {
                id: "b".into(),
                text: String::new(),
                label: 0,
                group: "g1".into(),
                question: String::new(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&rows());
        assert_eq!(decode(&bytes, Path::new("x")).unwrap(), rows());
    }

    #[test]
    fn corruption_is_detected() {
        let mut bytes = encode(&rows());
        bytes[20] ^= 1;
        let err = decode(&bytes, Path::new("x")).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let bytes = encode(&rows());
        assert!(decode(&bytes[..bytes.len() - 5], Path::new("x")).is_err());
    }

    #[test]
    fn version_1_files_read_with_no_questions_and_hash_as_before() {
        let old = encode_as(&rows(), 1);
        let read = decode(&old, Path::new("x")).unwrap();
        assert_eq!(read[0].question, "");
        assert_eq!(read[1], rows()[1]);
        // The hash every cache key was made with before questions existed: questions stay out
        // of it (a fixed value, so that a change to the layout shows here).
        assert_eq!(content_hash(&rows()), content_hash(&read));
        assert_eq!(content_hash(&rows()), "5213b9855d19d705");
    }

    #[test]
    fn hash_changes_with_any_field() {
        let mut other = rows();
        other[1].label = 1;
        assert_ne!(content_hash(&rows()), content_hash(&other));
    }
}
