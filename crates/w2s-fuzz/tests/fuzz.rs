//! Every target for a fixed number of mutated cases, after replaying its whole corpus (valid files
//! and the inputs of every crash found before): no panic, no hang, no oversized allocation (those
//! two abort the test binary, naming the saved input).
use w2s_fuzz::{fuzz, Budget, TARGETS};

/// Cases per target in CI: about a minute for all 19 targets on 2 cores.
const CASES: usize = 20_000;

#[test]
fn every_reader_answers_every_mutated_input_with_a_value_or_an_error() {
    let mut lines = Vec::new();
    let mut crashes = Vec::new();
    for t in TARGETS {
        let start = std::time::Instant::now();
        let r = fuzz(t, Budget::Cases(CASES), 0).unwrap();
        assert_eq!(r.cases, CASES);
        // The valid files of the corpus are accepted: the harness really reaches the reader.
        assert!(r.accepted > 0, "{}: no input was accepted", t.name);
        lines.push(format!(
            "{:<14} {} cases + {} corpus files, {} accepted, {} panics, {:.1} s",
            t.name,
            r.cases,
            r.replayed,
            r.accepted,
            r.crashes.len(),
            start.elapsed().as_secs_f64()
        ));
        crashes.extend(r.crashes.into_iter().map(|c| (t.name, c)));
    }
    eprintln!("{}", lines.join("\n"));
    assert!(
        crashes.is_empty(),
        "panics (inputs saved in the corpus):\n{}",
        crashes
            .iter()
            .map(|(t, c)| format!("{t}: {} ({:?})", c.message, c.saved))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_target_has_a_corpus_and_a_unique_name() {
    let mut names = std::collections::HashSet::new();
    for t in TARGETS {
        assert!(names.insert(t.name), "{} twice", t.name);
        let corpus = w2s_fuzz::corpus(t).unwrap_or_default();
        assert!(!corpus.is_empty(), "{}: no corpus", t.name);
    }
}

/// The valid files of each corpus are read without an error (the crash inputs, `crash-*`, are
/// not): a fuzz run starts from inputs that reach deep into the reader, not from its first check.
#[test]
fn every_valid_corpus_file_is_accepted() {
    let mut bad = Vec::new();
    for t in TARGETS {
        for (path, bytes) in w2s_fuzz::corpus(t).unwrap() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("crash-") {
                continue;
            }
            let scratch = tempfile::tempdir().unwrap();
            if let Err(e) = (t.run)(&bytes, scratch.path()) {
                bad.push(format!("{}: {}: {e}", t.name, path.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
