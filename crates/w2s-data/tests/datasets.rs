//! Each converter reproduces the row counts and class balance measured in shared/notes/datasets.md,
//! keeps multiple-choice rows together and strips the known label leaks.
use std::collections::HashMap;
use w2s_assets::Store;
use w2s_data::Dataset;

fn load(name: &str) -> Dataset {
    w2s_data::load(name, &Store::open()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(name: &str, rows: usize, positives: usize) -> Dataset {
    let ds = load(name);
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
    ds
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
    let ds = check("cosmosqa", 23_449, 8_475);
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
    let ds = check("quartz", 7_720, 3_860);
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
    let ds = check("qasc", 26_116, 6_505);
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
    let ds = check("piqa", 3_000, 1_500);
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
    let a = load("quartz");
    let b = load("quartz");
    assert_eq!(a.version, b.version);
    assert_eq!(a.examples, b.examples);
}
