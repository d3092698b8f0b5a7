//! Fuzzing on stable Rust. Every reader of files w2s did not write (users' data files,
//! checkpoints, tokenizers, configs, sweep settings, run records, images) is a [`Target`] in
//! [`TARGETS`], with a corpus of small valid files under `corpus/<name>/`. A run mutates corpus
//! inputs (bit flips, interesting bytes, truncation, deletion, duplication, splicing, huge length
//! fields, huge numbers, deep nesting) and feeds them to the reader, which must answer with a
//! value or an error, never:
//!
//! - a panic (caught, and the input saved as `corpus/<name>/crash-<hash>` so that every later run
//!   replays it first);
//! - an allocation out of proportion to the input (this crate's global allocator refuses any
//!   single allocation above [`alloc_limit`], saves the input and aborts, naming it);
//! - a hang (a watchdog saves the input and aborts after [`HANG`]).
//!
//! `cargo run --release -p w2s-fuzz -- TARGET --seconds N` runs one target (or `all`) longer;
//! the crate's test runs each target for a fixed number of cases.
mod guard;
mod mutate;
pub mod targets;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use mutate::mutate;
pub use targets::TARGETS;

/// A case that runs longer than this is a hang.
pub const HANG: Duration = Duration::from_secs(20);

/// The largest single allocation a case of `len` input bytes may make: 256 MiB, plus 64 bytes
/// per input byte (a reader may expand what it reads, not what a header claims).
pub fn alloc_limit(len: usize) -> usize {
    (256 << 20) + 64 * len
}

/// Inputs saved per kind of panic (the message without its numbers) in one run.
pub const SAVED_PER_KIND: usize = 3;

/// One reader under test.
pub struct Target {
    /// Its name on the command line, and its corpus folder.
    pub name: &'static str,
    /// What it reads.
    pub help: &'static str,
    /// Feeds one input to the reader; `scratch` is an empty-at-start folder of its own for readers
    /// that take a path. An error is a fine answer; only panics, hangs and huge allocations count.
    pub run: fn(input: &[u8], scratch: &Path) -> Result<(), String>,
}

/// A panic the fuzzer found, and where its input was saved.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The panic message.
    pub message: String,
    /// The saved input: the first [`SAVED_PER_KIND`] inputs of each kind of panic are saved.
    pub saved: Option<PathBuf>,
}

/// What one run of a target did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Corpus files replayed as they are (valid files and earlier crashes).
    pub replayed: usize,
    /// Mutated cases run.
    pub cases: usize,
    /// Of all inputs, how many the reader accepted (the rest got an error).
    pub accepted: usize,
    /// Panics found.
    pub crashes: Vec<Crash>,
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many mutated cases.
    Cases(usize),
    /// Mutated cases until this much time has passed.
    Time(Duration),
}

/// The corpus folder of the source tree.
pub fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// A target by name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The corpus of `target`, sorted by name: every file of its folder.
pub fn corpus(target: &Target) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = corpus_root().join(target.name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(&p).map(|b| (p, b)))
        .collect()
}

/// Runs `target`: its corpus as is, then mutated cases within `budget`, from `seed`.
pub fn fuzz(target: &Target, budget: Budget, seed: u64) -> std::io::Result<Report> {
    let corpus = corpus(target)?;
    if corpus.is_empty() {
        return Err(std::io::Error::other(format!(
            "{}: no corpus files in {}",
            target.name,
            corpus_root().join(target.name).display()
        )));
    }
    guard::install_quiet_panic_hook();
    let crash_dir = corpus_root().join(target.name);
    let mut report = Report::default();
    let scratch = tempfile::tempdir()?;
    // Inputs saved per kind of panic (its message without numbers): a few each, not thousands.
    let mut saved_per_kind = std::collections::HashMap::<String, usize>::new();
    let mut one = |input: &[u8], report: &mut Report| -> std::io::Result<()> {
        // A fresh scratch folder's contents each case: a reader sees only this input.
        for e in std::fs::read_dir(scratch.path())?.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
        let outcome = guard::watched(target.name, input, &crash_dir, || {
            (target.run)(input, scratch.path())
        });
        match outcome {
            Ok(Ok(())) => report.accepted += 1,
            Ok(Err(_)) => {}
            Err(message) => {
                let kind: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
                let n = saved_per_kind.entry(kind).or_default();
                *n += 1;
                let saved = (*n <= SAVED_PER_KIND).then(|| {
                    let path = crash_dir.join(format!("crash-{:016x}", fnv(input)));
                    std::fs::write(&path, input).map(|_| path)
                });
                let saved = saved.transpose()?;
                report.crashes.push(Crash { message, saved });
            }
        }
        Ok(())
    };
    for (_, input) in &corpus {
        one(input, &mut report)?;
        report.replayed += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    loop {
        match budget {
            Budget::Cases(n) if report.cases >= n => break,
            Budget::Time(t) if start.elapsed() >= t => break,
            _ => {}
        }
        let base = &corpus[rng.gen_range(0..corpus.len())].1;
        let other = &corpus[rng.gen_range(0..corpus.len())].1;
        let input = mutate(base, other, &mut rng);
        one(&input, &mut report)?;
        report.cases += 1;
    }
    Ok(report)
}

/// FNV-1a, to name a saved input by its content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
