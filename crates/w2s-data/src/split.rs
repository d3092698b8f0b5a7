//! Group-aware, seeded splits into the four parts of a weak-to-strong experiment, and balancing.
//!
//! Groups (all rows of one question) are shuffled with the seed and dealt out whole: first the test
//! set, then the rest is halved into A (the weak model's ground-truth training set) and B (the
//! strong model's training set, labelled by the weak model), and a validation slice is held out of
//! B for early stopping on weak labels.
use crate::Example;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Proportions of a split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitConfig {
    /// Share of all rows in `test`.
    pub test_frac: f64,
    /// Share of B's rows held out as `val`.
    pub val_frac: f64,
    /// Keep at most this many rows (whole groups, in shuffled order); 0 keeps all.
    pub max_rows: usize,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            test_frac: 0.2,
            val_frac: 0.1,
            max_rows: 0,
        }
    }
}

/// Row indices of each part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Weak model's training rows (ground truth).
    pub a: Vec<usize>,
    /// Strong model's training rows (ground truth for the ceiling, weak labels for the student).
    pub b: Vec<usize>,
    /// Held out of B; labelled by the weak model, used only for early stopping.
    pub val: Vec<usize>,
    /// Evaluation rows.
    pub test: Vec<usize>,
}

/// Groups in order of first appearance, each with its row indices.
fn groups_of(rows: &[Example], keep: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for &i in keep {
        let g = *index.entry(rows[i].group.as_str()).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[g].push(i);
    }
    order
}

/// Undersamples every class (seeded) to the size of the smallest, so all labels have the same
/// number of rows. Returns the kept row indices in their original order.
pub fn balance(rows: &[Example], seed: u64) -> Vec<usize> {
    let classes = rows.iter().map(|r| r.label as usize + 1).max().unwrap_or(0);
    if classes < 2 {
        return Vec::new();
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, r) in rows.iter().enumerate() {
        by_class[r.label as usize].push(i);
    }
    let n = by_class.iter().map(Vec::len).min().unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xba1a_9ce0);
    // Highest class first: for binary, positives then negatives, the order the draws have
    // always been made in (so binary subsets are unchanged).
    let mut keep: Vec<usize> = Vec::with_capacity(n * classes);
    for members in by_class.iter_mut().rev() {
        members.shuffle(&mut rng);
        keep.extend(&members[..n]);
    }
    keep.sort_unstable();
    keep
}

/// The rows an experiment uses: balanced 50/50 by undersampling (when `balanced`), then capped at
/// `max_rows` by whole groups in seeded order (0 = no cap). Returns sorted row indices.
///
/// Experiments draw this once with a fixed seed so that every split seed (and every model's cached
/// features) works on the same rows.
pub fn subset(rows: &[Example], balanced: bool, max_rows: usize, seed: u64) -> Vec<usize> {
    let keep: Vec<usize> = if balanced {
        balance(rows, seed)
    } else {
        (0..rows.len()).collect()
    };
    if max_rows == 0 || keep.len() <= max_rows {
        return keep;
    }
    let mut groups = groups_of(rows, &keep);
    groups.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5ab5e7));
    let mut out = Vec::with_capacity(max_rows);
    for g in groups {
        if out.len() >= max_rows {
            break;
        }
        out.extend(g);
    }
    out.sort_unstable();
    out
}

/// Splits the rows `keep` (all rows when `None`) into A / B / val / test by whole groups.
pub fn split(rows: &[Example], keep: Option<&[usize]>, cfg: &SplitConfig, seed: u64) -> Split {
    let all: Vec<usize>;
    let keep = match keep {
        Some(k) => k,
        None => {
            all = (0..rows.len()).collect();
            &all
        }
    };
    let mut groups = groups_of(rows, keep);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    groups.shuffle(&mut rng);
    if cfg.max_rows > 0 {
        let mut total = 0;
        let cut = groups.iter().position(|g| {
            total += g.len();
            total >= cfg.max_rows
        });
        if let Some(c) = cut {
            groups.truncate(c + 1);
        }
    }
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut it = groups.into_iter().peekable();
    let mut take_until = |target: f64| -> Vec<usize> {
        let mut part = Vec::new();
        while (part.len() as f64) < target {
            match it.next() {
                Some(g) => part.extend(g),
                None => break,
            }
        }
        part
    };
    let test = take_until(cfg.test_frac * total as f64);
    let rest = total - test.len();
    let a = take_until(rest as f64 / 2.0);
    let val = take_until(cfg.val_frac * (rest - a.len()) as f64);
    let b = take_until(f64::INFINITY);
    Split { a, b, val, test }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn rows(n_groups: usize, per_group: usize) -> Vec<Example> {
        (0..n_groups)
            .flat_map(|g| {
                (0..per_group).map(move |j| Example {
                    id: format!("{g}-{j}"),
                    text: String::new(),
                    label: (j == 0) as u8,
                    group: format!("g{g}"),
                    ..Default::default()
                })
            })
            .collect()
    }

    #[test]
    fn subset_balances_caps_by_groups_and_is_seeded() {
        let data = rows(400, 3); // one positive per group of three
        let keep = subset(&data, true, 300, 5);
        let pos = keep.iter().filter(|&&i| data[i].label == 1).count();
        assert!((300..303).contains(&keep.len()), "{}", keep.len());
        assert!(pos * 2 >= keep.len() - 3 && pos * 2 <= keep.len() + 3);
        assert_eq!(keep, subset(&data, true, 300, 5));
        assert_ne!(keep, subset(&data, true, 300, 6));
        assert_eq!(subset(&data, false, 0, 5).len(), 1200);
    }

    #[test]
    fn parts_are_disjoint_cover_everything_and_keep_groups_whole() {
        let data = rows(500, 3);
        let s = split(&data, None, &SplitConfig::default(), 7);
        let parts = [&s.a, &s.b, &s.val, &s.test];
        let all: Vec<usize> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(all.len(), data.len());
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), data.len());
        let mut side = HashMap::new();
        for (k, p) in parts.iter().enumerate() {
            for &i in p.iter() {
                assert_eq!(
                    *side.entry(&data[i].group).or_insert(k),
                    k,
                    "group {} split across parts",
                    data[i].group
                );
            }
        }
        // 1500 rows: test ≈ 300, A ≈ 600, val ≈ 60, B ≈ 540 (whole groups of 3)
        assert!((300..303).contains(&s.test.len()), "{}", s.test.len());
        assert!((600..603).contains(&s.a.len()), "{}", s.a.len());
        assert!((60..63).contains(&s.val.len()), "{}", s.val.len());
        assert_eq!(s.b.len(), 1500 - s.test.len() - s.a.len() - s.val.len());
    }

    #[test]
    fn same_seed_same_split_other_seed_differs() {
        let data = rows(100, 2);
        let cfg = SplitConfig::default();
        assert_eq!(split(&data, None, &cfg, 1), split(&data, None, &cfg, 1));
        assert_ne!(split(&data, None, &cfg, 1), split(&data, None, &cfg, 2));
    }

    #[test]
    fn cap_keeps_whole_groups() {
        let data = rows(100, 3);
        let s = split(
            &data,
            None,
            &SplitConfig {
                max_rows: 31,
                ..SplitConfig::default()
            },
            3,
        );
        let n = s.a.len() + s.b.len() + s.val.len() + s.test.len();
        assert_eq!(n, 33);
    }

    #[test]
    fn balance_equalises_labels() {
        let data = rows(50, 4); // 50 positives, 150 negatives
        let keep = balance(&data, 0);
        assert_eq!(keep.len(), 100);
        assert_eq!(keep.iter().filter(|&&i| data[i].label == 1).count(), 50);
        assert_eq!(keep, balance(&data, 0));
    }

    #[test]
    fn balance_equalises_three_classes() {
        let data: Vec<Example> = (0..30)
            .map(|i| Example {
                id: i.to_string(),
                text: String::new(),
                label: [0, 0, 0, 1, 1, 2][i % 6],
                group: i.to_string(),
                ..Default::default()
            })
            .collect();
        let keep = balance(&data, 3);
        let count = |c: u8| keep.iter().filter(|&&i| data[i].label == c).count();
        assert_eq!((count(0), count(1), count(2)), (5, 5, 5));
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
    }
}
