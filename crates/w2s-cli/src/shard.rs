//! Splitting a sweep's grid into shards that share nothing worth sharing: the runs of one dataset
//! and seed use one split, so their weak models, weak labels and ceilings are common to them, and
//! they go into one shard. Groups are dealt out round-robin, so shard `i` of `N` is the same on
//! every host that reads the same sweep file.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use w2s_experiment::RunSpec;

/// `--shard i/N`: the `i`-th of `N` shares, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 0-based.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: write the shard as INDEX/COUNT, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: the index `{i}` is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: the count `{n}` is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "`{s}`: the index must be below the count (shards are 0/{n} to {}/{n})",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The groups of runs that share a split (dataset × seed), in the order they first appear; each
/// group lists indices into `specs`.
pub fn groups(specs: &[RunSpec]) -> Vec<Vec<usize>> {
    let mut keys: Vec<(&str, u64)> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let key = (s.dataset.as_str(), s.seed);
        match keys.iter().position(|k| *k == key) {
            Some(g) => groups[g].push(i),
            None => {
                keys.push(key);
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// The runs of shard `shard`: the groups `g` with `g mod N == i`, in grid order.
pub fn select(specs: &[RunSpec], shard: Shard) -> Vec<RunSpec> {
    let mut picked: Vec<usize> = groups(specs)
        .into_iter()
        .enumerate()
        .filter(|(g, _)| g % shard.count == shard.index)
        .flat_map(|(_, members)| members)
        .collect();
    picked.sort_unstable();
    picked.into_iter().map(|i| specs[i].clone()).collect()
}

/// What a finished shard writes: its success is this file, whatever the scheduler says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardResult {
    /// `i/N`.
    pub shard: String,
    /// The grid's id ([`grid_id`]).
    pub grid: String,
    /// Runs done.
    pub runs: usize,
    /// Nodes trained by this shard.
    pub computed: usize,
    /// Nodes read from the store.
    pub reused: usize,
    /// Host that ran it.
    pub host: String,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A hash of everything that decides a grid's results (every run, the settings, the prompts, and
/// the inputs `--skip-unavailable` left out), so that the result files of a changed sweep file
/// are not mistaken for this one's.
pub fn grid_id(
    specs: &[RunSpec],
    cfg: &w2s_experiment::ExperimentConfig,
    templates: &impl Serialize,
    skipped: &[w2s_experiment::Missing],
) -> String {
    let runs: Vec<String> = specs.iter().map(RunSpec::describe).collect();
    let mut desc = serde_json::json!({"runs": runs, "config": cfg, "templates": templates});
    // Only when some were, so that the ids of complete grids stay what they were.
    if !skipped.is_empty() {
        let names: Vec<String> = skipped
            .iter()
            .map(|m| format!("{} {}", m.kind.name(), m.name))
            .collect();
        desc["skipped"] = names.into();
    }
    w2s_experiment::store::key_of(&desc)[..8].to_string()
}

/// Where shard `shard` of grid `grid` records that it finished.
pub fn result_path(out: &Path, grid: &str, shard: Shard) -> PathBuf {
    out.join("shards")
        .join(format!("{grid}-{}-of-{}.json", shard.index, shard.count))
}

/// Writes a shard's result file atomically.
pub fn write_result(out: &Path, shard: Shard, result: &ShardResult) -> Result<PathBuf> {
    let path = result_path(out, &result.grid, shard);
    let bytes = serde_json::to_vec_pretty(result)?;
    w2s_assets::cache::write_atomic(&path, &bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Reads a shard's result file; `None` when it is absent (not finished).
pub fn read_result(out: &Path, grid: &str, shard: Shard) -> Result<Option<ShardResult>> {
    let path = result_path(out, grid, shard);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Checks a shard count against the grid: at least one group per shard.
pub fn check_count(specs: &[RunSpec], count: usize) -> Result<()> {
    let n = groups(specs).len();
    if count > n {
        bail!("{count} shards for {n} groups of runs (dataset × seed): use --shards {n} or fewer");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(d: &str, seed: u64, weak: &str, method: &str) -> RunSpec {
        RunSpec {
            dataset: d.into(),
            chain: vec![weak.into(), "big".into()],
            method: w2s_experiment::Method::parse(method).unwrap(),
            seed,
        }
    }

    #[test]
    fn shards_parse_and_refuse_what_is_not_a_share() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("4/4".parse::<Shard>().unwrap_err().contains("0/4 to 3/4"));
    }

    #[test]
    fn runs_sharing_a_split_fall_in_one_shard_and_every_run_in_exactly_one() {
        let mut specs = Vec::new();
        for d in ["a", "b"] {
            for seed in 0..3 {
                for weak in ["w1", "w2"] {
                    for m in ["xent", "logconf"] {
                        specs.push(spec(d, seed, weak, m));
                    }
                }
            }
        }
        assert_eq!(groups(&specs).len(), 6);
        let mut seen = Vec::new();
        for index in 0..4 {
            let part = select(&specs, Shard { index, count: 4 });
            for s in &part {
                // every other run of its (dataset, seed) is in this shard too
                let mates = specs
                    .iter()
                    .filter(|o| o.dataset == s.dataset && o.seed == s.seed)
                    .count();
                let here = part
                    .iter()
                    .filter(|o| o.dataset == s.dataset && o.seed == s.seed)
                    .count();
                assert_eq!(mates, here);
            }
            seen.extend(part.iter().map(RunSpec::describe));
        }
        let mut all: Vec<String> = specs.iter().map(RunSpec::describe).collect();
        all.sort();
        seen.sort();
        assert_eq!(seen, all);
        // 6 groups over 4 shards: 2, 2, 1, 1 groups of 4 runs
        let sizes: Vec<usize> = (0..4)
            .map(|index| select(&specs, Shard { index, count: 4 }).len())
            .collect();
        assert_eq!(sizes, vec![8, 8, 4, 4]);
        assert!(check_count(&specs, 7).is_err());
        assert!(check_count(&specs, 6).is_ok());
    }
}
