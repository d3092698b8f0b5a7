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

impl Drop for ForgetFeaturesOnDrop {
    fn drop(&mut self) {
        forget_features(&self.0);
    }
}
