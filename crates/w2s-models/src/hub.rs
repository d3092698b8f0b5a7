//! `hf:ORG/NAME[@REVISION]`: a model in the local Hugging Face cache, found without network.
//!
//! The cache layout (huggingface_hub): `$HF_HUB_CACHE` (default `$HF_HOME/hub`, with `HF_HOME`
//! defaulting to `~/.cache/huggingface`) holds `models--ORG--NAME/refs/main` (a commit hash) and
//! `models--ORG--NAME/snapshots/<hash>/` (the files, as links into `blobs/`). A revision may be a
//! branch or tag under `refs/` or a commit hash.
use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};

/// The prefix that marks a Hugging Face cache reference.
pub const PREFIX: &str = "hf:";

/// The hub cache folder from the environment.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HF_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/huggingface")
        });
    home.join("hub")
}

/// The snapshot folder of `repo` (`ORG/NAME` or `NAME`, optionally `@REVISION`) under `cache`.
pub fn snapshot(reference: &str, cache: &Path) -> Result<PathBuf> {
    let (repo, revision) = match reference.split_once('@') {
        Some((r, rev)) => (r, rev),
        None => (reference, "main"),
    };
    let bad = |reason: String| ModelError::NotInHfCache {
        model: format!("{PREFIX}{reference}"),
        reason,
    };
    if repo.is_empty()
        || repo.split('/').count() > 2
        || repo
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || revision.is_empty()
        || revision.split('/').any(|p| p.is_empty() || p == "..")
    {
        return Err(bad(
            "expected hf:ORG/NAME or hf:NAME, optionally followed by @REVISION".into(),
        ));
    }
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    if !folder.is_dir() {
        return Err(bad(format!(
            "{} does not exist (looked in the Hugging Face cache {}; set HF_HOME or HF_HUB_CACHE, \
             or download it where there is network: `huggingface-cli download {repo}`)",
            folder.display(),
            cache.display()
        )));
    }
    let refs = folder.join("refs").join(revision);
    let commit = if refs.is_file() {
        std::fs::read_to_string(&refs)
            .map_err(|e| bad(format!("reading {}: {e}", refs.display())))?
            .trim()
            .to_string()
    } else {
        revision.to_string()
    };
    let snap = folder.join("snapshots").join(&commit);
    if !snap.is_dir() {
        let have: Vec<String> = std::fs::read_dir(folder.join("snapshots"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(bad(format!(
            "no snapshot {} for revision {revision:?} (looked for {} and {}; snapshots present: {})",
            commit,
            refs.display(),
            snap.display(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        )));
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_refs_and_commits_and_says_where_it_looked() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--acme--tiny");
        std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let snap = snapshot("acme/tiny", cache.path()).unwrap();
        assert_eq!(snap, repo.join("snapshots/abc123"));
        assert_eq!(snapshot("acme/tiny@abc123", cache.path()).unwrap(), snap);

        let err = snapshot("acme/missing", cache.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("models--acme--missing") && err.contains("hf:acme/missing"),
            "{err}"
        );
        let err = snapshot("acme/tiny@v2", cache.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("refs/v2") && err.contains("abc123"), "{err}");
        assert!(snapshot("../etc", cache.path()).is_err());
        assert!(snapshot("a/b/c", cache.path()).is_err());
    }
}
