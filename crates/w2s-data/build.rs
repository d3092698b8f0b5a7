//! Hashes this crate's sources into `W2S_DATA_SOURCE_HASH`, part of the key of the converted-rows
//! cache: a converter that changes gets fresh rows without anyone remembering to bump a version.
use std::hash::{Hash, Hasher};
use std::path::Path;

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    visit(Path::new("src"), &mut files);
    files.sort();
    // SipHash with fixed keys: the same sources give the same value on one toolchain, which is
    // all a cache key needs (another toolchain converts once more).
    let mut hasher = std::hash::DefaultHasher::new();
    for file in &files {
        file.hash(&mut hasher);
        std::fs::read(file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .hash(&mut hasher);
    }
    println!(
        "cargo:rustc-env=W2S_DATA_SOURCE_HASH={:016x}",
        hasher.finish()
    );
}
