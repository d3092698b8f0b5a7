//! A dataset reference, as users write it (a built-in name, `PATH`, `PATH?text=..&label=..`,
//! `synthetic?dim=..`), parsed into a type in one place and written back by its `Display`: the
//! CLI builds a [`DatasetRef`] from its column flags instead of assembling the string itself.
use crate::columns::Columns;
use crate::registry::{info, load_builtin, DatasetInfo};
use crate::synthetic::Synthetic;
use crate::{DataError, Dataset, Result};
use std::path::{Path, PathBuf};
use w2s_assets::Store;

/// What a dataset reference names.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetRef {
    /// A built-in dataset.
    Builtin(&'static DatasetInfo),
    /// A user's file or `save_to_disk` folder, with the columns to read.
    File {
        /// The file or folder.
        path: PathBuf,
        /// Its columns.
        columns: Columns,
    },
    /// A generated synthetic task.
    Synthetic(Synthetic),
    /// Multiple choice as a choice among K (`REF?choices`): the candidate rows of the reference
    /// inside, grouped into questions ([`crate::questions`]).
    Choices(Box<DatasetRef>),
}

/// The suffixes that ask for the choice view of a reference.
const CHOICES: [&str; 2] = ["?choices", "&choices"];

impl PartialEq for DatasetInfo {
    fn eq(&self, other: &DatasetInfo) -> bool {
        self.name == other.name
    }
}

impl DatasetRef {
    /// Parses `reference`; an error names a file that does not exist, a malformed column query or
    /// an unknown name.
    pub fn parse(reference: &str) -> Result<DatasetRef> {
        if let Some(inner) = CHOICES.iter().find_map(|s| reference.strip_suffix(s)) {
            let inner = match DatasetRef::parse(inner)? {
                DatasetRef::File { path, mut columns } => {
                    columns.question.get_or_insert_with(|| "question".into());
                    DatasetRef::File { path, columns }
                }
                DatasetRef::Choices(_) => {
                    return Err(DataError::Unknown(reference.to_string()));
                }
                other => other,
            };
            return Ok(DatasetRef::Choices(Box::new(inner)));
        }
        if let Some(settings) = Synthetic::parse(reference) {
            return Ok(DatasetRef::Synthetic(settings?));
        }
        if let Some(info) = info(reference) {
            return Ok(DatasetRef::Builtin(info));
        }
        if let Some(parsed) = file_with_columns(reference) {
            let (path, columns) = parsed?;
            return Ok(DatasetRef::File { path, columns });
        }
        match file_meant(reference) {
            Some(path) => Err(DataError::NoSuchFile(path.into())),
            None => Err(DataError::Unknown(reference.to_string())),
        }
    }

    /// Loads the rows, naming the dataset `name` (the reference as the user wrote it, which store
    /// keys and records carry).
    pub fn load_as(&self, name: &str, store: &Store) -> Result<Dataset> {
        match self {
            DatasetRef::Builtin(info) => load_builtin(info, store),
            DatasetRef::File { path, columns } => crate::user::load_with(path, columns, name),
            DatasetRef::Synthetic(s) => Ok(Dataset::new(name, s.examples())),
            // The candidate rows: what reads them as a choice view (the runner, `w2s data
            // show`) groups them into questions ([`crate::questions::questions`]), which names a
            // malformed question before anything is computed.
            DatasetRef::Choices(inner) => inner.load_as(name, store),
        }
    }
}

/// The choice view of `reference` (which does not ask for one yet): `REF?choices`, or
/// `REF&choices` after a column query.
pub fn choice_view_of(reference: &str) -> String {
    let sep = if reference.contains('?') { '&' } else { '?' };
    format!("{reference}{sep}choices")
}

/// Whether `reference` asks for multiple choice as a choice among K (`REF?choices`).
pub fn names_choices(reference: &str) -> bool {
    matches!(DatasetRef::parse(reference), Ok(DatasetRef::Choices(_)))
}

/// Whether `reference` names images, without reading them: a file or folder read through an
/// image column (`PATH?image=COL`), an image folder or `fashion-mnist` (see
/// [`crate::images::is_image_data`]).
pub fn names_images(reference: &str) -> bool {
    matches!(DatasetRef::parse(reference), Ok(DatasetRef::File { columns, .. }) if columns.image.is_some())
        || crate::images::is_image_data(reference)
}

/// The images `reference` names, when it names images (see [`names_images`]); `None` for a text
/// dataset.
pub fn load_images(reference: &str, store: &Store) -> Option<Result<crate::images::ImageSet>> {
    if let Ok(DatasetRef::File { path, columns }) = DatasetRef::parse(reference) {
        if let Some(image) = &columns.image {
            return Some(crate::images::hf_images(&path, image, &columns.label));
        }
    }
    crate::images::is_image_data(reference).then(|| crate::images::load_images(reference, store))
}

impl std::fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatasetRef::Builtin(info) => f.write_str(info.name),
            DatasetRef::File { path, columns } => {
                let c = columns;
                let default = Columns::default();
                let mut parts = Vec::new();
                if c.text != default.text {
                    parts.push(format!("text={}", c.text));
                }
                if c.label != default.label {
                    parts.push(format!("label={}", c.label));
                }
                if let Some(g) = &c.group {
                    parts.push(format!("group={g}"));
                }
                if let Some(i) = &c.id {
                    parts.push(format!("id={i}"));
                }
                if let Some(q) = &c.question {
                    parts.push(format!("question={q}"));
                }
                if let Some(i) = &c.image {
                    parts.push(format!("image={i}"));
                }
                if let Some(k) = c.classes {
                    parts.push(format!("classes={k}"));
                }
                write!(f, "{}", path.display())?;
                if !parts.is_empty() {
                    write!(f, "?{}", parts.join("&"))?;
                }
                Ok(())
            }
            DatasetRef::Choices(inner) => f.write_str(&choice_view_of(&inner.to_string())),
            DatasetRef::Synthetic(s) => {
                let d = Synthetic::default();
                write!(f, "{}", crate::synthetic::NAME)?;
                let mut parts = Vec::new();
                if s.rows != d.rows {
                    parts.push(format!("rows={}", s.rows));
                }
                if s.dim != d.dim {
                    parts.push(format!("dim={}", s.dim));
                }
                if s.flip != d.flip {
                    parts.push(format!("flip={}", s.flip));
                }
                if s.seed != d.seed {
                    parts.push(format!("seed={}", s.seed));
                }
                if !parts.is_empty() {
                    write!(f, "?{}", parts.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

/// Splits `PATH?text=..&label=..` into the path and its columns; a plain path has the defaults.
/// `None` when `reference` names no existing file or folder.
fn file_with_columns(reference: &str) -> Option<Result<(PathBuf, Columns)>> {
    let plain = Path::new(reference);
    if plain.exists() {
        return Some(Ok((plain.to_path_buf(), Columns::default())));
    }
    let (path, query) = reference.rsplit_once('?')?;
    if !Path::new(path).exists() {
        return None;
    }
    let mut cols = Columns::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Some(Err(DataError::File {
                path: path.into(),
                reason: format!("`{pair}` in `{reference}`: write KEY=COLUMN"),
            }));
        };
        match k {
            "text" => cols.text = v.into(),
            "label" => cols.label = v.into(),
            "group" => cols.group = Some(v.into()),
            "id" => cols.id = Some(v.into()),
            "question" => cols.question = Some(v.into()),
            "image" => cols.image = Some(v.into()),
            "classes" => match v.parse::<u8>() {
                Ok(k) if k >= 2 => cols.classes = Some(k),
                _ => {
                    return Some(Err(DataError::File {
                        path: path.into(),
                        reason: format!("`classes={v}` in `{reference}`: K is 2 to 255"),
                    }))
                }
            },
            _ => {
                return Some(Err(DataError::File {
                    path: path.into(),
                    reason: format!(
                    "unknown key `{k}` in `{reference}` (text, label, group, id, question, image, classes; and a final `choices`)"
                ),
                }))
            }
        }
    }
    Some(Ok((path.into(), cols)))
}

/// The file a reference that is no built-in name was meant to name, if it looks like one: it has
/// a folder, a column query or a data file's extension. The column query is not part of it.
fn file_meant(reference: &str) -> Option<&str> {
    let path = reference.rsplit_once('?').map_or(reference, |(p, _)| p);
    let is_file = reference.contains('/')
        || reference.contains('?')
        || [".jsonl", ".json", ".csv", ".parquet", ".arrow"]
            .iter()
            .any(|ext| path.ends_with(ext));
    is_file.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_is_two_to_255() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.csv");
        std::fs::write(&file, "text,label\na,1\n").unwrap();
        let f = file.display();
        match DatasetRef::parse(&format!("{f}?classes=20")).unwrap() {
            DatasetRef::File { columns, .. } => assert_eq!(columns.classes, Some(20)),
            other => panic!("{other:?}"),
        }
        for bad in ["1", "256", "x"] {
            let err = DatasetRef::parse(&format!("{f}?classes={bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("K is 2 to 255"), "{err}");
        }
    }

    /// Every kind of reference reads back as what it was written from.
    #[test]
    fn references_round_trip_through_display() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.csv");
        std::fs::write(&file, "t,y\na,1\n").unwrap();
        let refs = [
            DatasetRef::parse("tweets").unwrap(),
            DatasetRef::parse("synthetic").unwrap(),
            DatasetRef::parse("synthetic?dim=8&seed=2").unwrap(),
            DatasetRef::File {
                path: file.clone(),
                columns: Columns::default(),
            },
            DatasetRef::File {
                path: file.clone(),
                columns: Columns {
                    text: "t".into(),
                    label: "y".into(),
                    group: Some("g".into()),
                    id: Some("i".into()),
                    question: Some("q".into()),
                    image: Some("img".into()),
                    classes: Some(20),
                },
            },
            DatasetRef::parse("arc-easy?choices").unwrap(),
            DatasetRef::parse(&format!("{}?choices", file.display())).unwrap(),
            DatasetRef::parse(&format!("{}?text=t&question=qq&choices", file.display())).unwrap(),
        ];
        for r in refs {
            assert_eq!(DatasetRef::parse(&r.to_string()).unwrap(), r, "{r}");
        }
        assert!(
            matches!(DatasetRef::parse("tweets").unwrap(), DatasetRef::Builtin(i) if i.name == "tweets")
        );
        let with = format!("{}?label=y&text=t", file.display());
        match DatasetRef::parse(&with).unwrap() {
            DatasetRef::File { columns, .. } => {
                assert_eq!((columns.text.as_str(), columns.label.as_str()), ("t", "y"))
            }
            other => panic!("{other:?}"),
        }
        match DatasetRef::parse(&format!("{}?choices", file.display())).unwrap() {
            DatasetRef::Choices(inner) => match *inner {
                DatasetRef::File { columns, .. } => {
                    assert_eq!(columns.question.as_deref(), Some("question"))
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(names_choices("sciq?choices") && !names_choices("sciq"));
        assert!(DatasetRef::parse("sciq?choices?choices").is_err());
        let missing = DatasetRef::parse("no/such.csv").unwrap_err().to_string();
        assert!(missing.contains("no/such.csv: no such file"), "{missing}");
        assert!(matches!(
            DatasetRef::parse("tweet"),
            Err(DataError::Unknown(_))
        ));
        assert!(DatasetRef::parse(&format!("{}?colour=x", file.display())).is_err());
    }
}
