//! Helpers shared by the integration tests of sweeps at scale and of `w2s scout`.
// Each test binary uses some of them.
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The one JSON document a w2s command printed, after checking that `what` succeeded.
pub fn success_json(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not one JSON object on stdout ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// Removes the cached feature files whose name holds `pattern` (a test's own max length, which
/// no other test uses), so that the test computes them afresh and leaves nothing behind.
pub fn forget_features(pattern: &str) {
    let home = std::env::var_os("W2S_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/w2s"));
    for f in files_under(&home.join("features")) {
        if f.to_string_lossy().contains(pattern) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Calls [`forget_features`] with its pattern when dropped, so that a test that caches the
/// features of its own temporary file leaves none behind, pass or fail.
pub struct ForgetFeaturesOnDrop(pub String);

impl ForgetFeaturesOnDrop {
    /// Forgets the features the cache names after the temporary folder `dir` (its name without a
    /// leading dot).
    pub fn for_dir(dir: &std::path::Path) -> ForgetFeaturesOnDrop {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        ForgetFeaturesOnDrop(name.trim_start_matches('.').to_string())
    }
}

/// Writes `rows` (text, label) as a user's JSONL file at `path`.
pub fn write_jsonl<'a>(path: &std::path::Path, rows: impl IntoIterator<Item = (&'a str, u8)>) {
    let mut text = String::new();
    for (t, label) in rows {
        text.push_str(&serde_json::json!({"text": t, "label": label}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

impl Drop for ForgetFeaturesOnDrop {
    fn drop(&mut self) {
        forget_features(&self.0);
    }
}
