//! Content-addressed artefacts of the experiment graph: one JSON file per stage output, named by
//! the hash of everything the stage depends on, written through a temp file and a rename so that a
//! killed run leaves either the whole file or nothing.
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A folder of stage outputs.
#[derive(Debug, Clone)]
pub struct NodeStore {
    root: PathBuf,
}

/// The hash naming a stage output: sha256 of the canonical JSON of its description.
pub fn key_of(desc: &serde_json::Value) -> String {
    // serde_json's Value keeps object keys sorted (no preserve_order feature), so the text is canonical.
    w2s_assets::cache::sha256_bytes(desc.to_string().as_bytes())[..24].to_string()
}

impl NodeStore {
    /// A store rooted at `root` (created on first write).
    pub fn at(root: impl Into<PathBuf>) -> NodeStore {
        NodeStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the node `key` of `kind` lives.
    pub fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(format!("{key}.json"))
    }

    /// Where a worker's claim on the node `key` of `kind` lives (see [`w2s_assets::claim`]).
    pub fn claim_path(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(format!("{key}.claim"))
    }

    /// Takes the claim on a node before computing it, first waiting while another worker holds
    /// it: `None` when that worker stored the node meanwhile. The caller looks in the store again
    /// either way: the node may have been stored just before the claim was taken.
    pub fn claim(
        &self,
        kind: &str,
        key: &str,
    ) -> std::io::Result<Option<w2s_assets::claim::Claim>> {
        let node = self.path(kind, key);
        w2s_assets::claim::claim_or_wait(
            &self.claim_path(kind, key),
            &|| node.is_file(),
            &mut |holder| {
                tracing::info!(
                    "waiting for {holder}, which is computing {}",
                    node.display()
                )
            },
        )
    }

    /// Reads a node; `None` when absent. An unreadable file (from an older version, or damaged by
    /// something other than us) is reported and treated as absent, so it gets recomputed.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let path = self.path(kind, key);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("{}: unreadable ({e}); computing it again", path.display());
                None
            }
        }
    }

    /// Writes a node atomically.
    pub fn put<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> std::io::Result<PathBuf> {
        let path = self.path(kind, key);
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        w2s_assets::cache::write_atomic(&path, &bytes).map_err(std::io::Error::other)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_field_order_and_see_every_value() {
        let a = key_of(&serde_json::json!({"model": "m", "seed": 1}));
        let b = key_of(&serde_json::json!({"seed": 1, "model": "m"}));
        let c = key_of(&serde_json::json!({"seed": 2, "model": "m"}));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn round_trip_and_damaged_file_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::at(dir.path());
        assert_eq!(store.get::<Vec<u32>>("x", "k"), None);
        store.put("x", "k", &vec![1u32, 2]).unwrap();
        assert_eq!(store.get::<Vec<u32>>("x", "k"), Some(vec![1, 2]));
        std::fs::write(store.path("x", "k"), b"[1, 2").unwrap();
        assert_eq!(store.get::<Vec<u32>>("x", "k"), None);
    }
}
