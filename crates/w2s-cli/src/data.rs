//! `w2s data`: list and inspect datasets.
use anyhow::Result;
use clap::Subcommand;
use w2s_assets::Store;

/// Subcommands of `w2s data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Show every built-in dataset: rows, share of positives, source (converting what is fetched).
    List {
        /// Fetch and convert datasets that are not cached yet.
        #[arg(long)]
        fetch: bool,
    },
    /// Print rows of a dataset: a built-in name, a .jsonl/.csv/.parquet file or a Hugging Face
    /// `save_to_disk` folder with a text and a 0/1 label column, an image folder (one sub-folder
    /// of PNG/JPEG files per class), or a Parquet/`save_to_disk` dataset with an Image column
    /// (--image-column); for images the classes and their counts are shown.
    Show {
        /// Dataset name or path.
        name: String,
        #[command(flatten)]
        columns: ColumnArgs,
        /// Number of rows.
        #[arg(short = 'n', default_value_t = 5)]
        rows: usize,
        /// Skip this many rows first.
        #[arg(long, default_value_t = 0)]
        skip: usize,
    },
}

/// Which columns of a user's data file to read (Parquet, `save_to_disk`, JSONL, CSV).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ColumnArgs {
    /// The column holding the text of a user's file [default: text].
    #[arg(long, value_name = "NAME")]
    text_column: Option<String>,
    /// The column holding the 0/1 label (booleans and ClassLabel integers work) [default: label].
    #[arg(long, value_name = "NAME")]
    label_column: Option<String>,
    /// The column whose equal values keep rows in one split part [default: group, if present].
    #[arg(long, value_name = "NAME")]
    group_column: Option<String>,
    /// A Parquet file or `save_to_disk` folder of images: the `datasets` Image column; the label
    /// column is then a class index (ClassLabel) [default label column: label].
    #[arg(long, value_name = "NAME")]
    image_column: Option<String>,
    /// A text file of K classes: its labels are class indices 0..K-1 (K-class probe mode).
    /// Without it, labels are 0/1 and any other value is an error.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u8).range(2..))]
    classes: Option<u8>,
    /// Multiple choice as a choice among K: each question's candidate rows (one per answer,
    /// exactly one labelled 1) become one row whose class is the right answer's position
    /// (`REF?choices`). Built-in multiple-choice sets know their questions; a file names its
    /// question column with --question-column [default: question].
    #[arg(long)]
    choices: bool,
    /// The column naming the question a row is a candidate answer of (with --choices).
    #[arg(long, value_name = "NAME", requires = "choices")]
    question_column: Option<String>,
}

impl ColumnArgs {
    /// The dataset reference with these columns: a file or folder becomes
    /// `PATH?text=..&label=..`; a built-in name is left as it is.
    pub fn apply(&self, data: &str) -> String {
        let plain = self.file_columns(data);
        if self.choices {
            w2s_data::choice_view_of(&plain)
        } else {
            plain
        }
    }

    /// [`ColumnArgs::apply`] without `--choices`.
    fn file_columns(&self, data: &str) -> String {
        if w2s_data::registry::info(data).is_some() || !std::path::Path::new(data).exists() {
            return data.to_string();
        }
        let mut cols = w2s_data::Columns::default();
        if let Some(t) = &self.text_column {
            cols.text = t.clone();
        }
        if let Some(l) = &self.label_column {
            cols.label = l.clone();
        }
        cols.group = self.group_column.clone();
        cols.image = self.image_column.clone();
        cols.classes = self.classes;
        cols.question = self.question_column.clone();
        w2s_data::DatasetRef::File {
            path: data.into(),
            columns: cols,
        }
        .to_string()
    }
}

/// Runs `w2s data`.
pub fn run(cmd: DataCommand) -> Result<()> {
    let store = Store::open();
    match cmd {
        DataCommand::List { fetch } => {
            println!("{:<19} {:>7} {:>9}  source", "name", "rows", "labels");
            for info in &w2s_data::DATASETS {
                let available = w2s_data::registry::is_converted(&store, info.name)
                    || store.is_cached(info.asset);
                if available || fetch {
                    let ds = w2s_data::load(info.name, &store)?;
                    let labels = match ds.classes() {
                        2 => format!("{:.1}%", 100.0 * ds.positive_share()),
                        k => format!("{k} classes"),
                    };
                    println!(
                        "{:<19} {:>7} {labels:>9}  {}",
                        info.name,
                        ds.examples.len(),
                        info.source
                    );
                } else {
                    println!(
                        "{:<19} {:>7} {:>9}  {} (not fetched: `w2s fetch {}`)",
                        info.name, "-", "-", info.source, info.name
                    );
                }
            }
            // Image sets: the asset of each is named as the set is.
            for &name in w2s_data::images::IMAGE_DATASETS {
                if store.is_cached(name) || fetch {
                    let set = w2s_data::images::load_images(name, &store)?;
                    let labels = format!("{} classes", set.classes.len());
                    println!(
                        "{name:<19} {:>7} {labels:>9}  images: {}",
                        set.rows.len(),
                        store.manifest().asset(name)?.description
                    );
                } else {
                    println!(
                        "{name:<19} {:>7} {:>9}  images (not fetched: `w2s fetch {name}`)",
                        "-", "-"
                    );
                }
            }
        }
        DataCommand::Show {
            name,
            columns,
            rows,
            skip,
        } => {
            if let Some(image) = &columns.image_column {
                let label = columns.label_column.as_deref().unwrap_or("label");
                let set = w2s_data::images::hf_images(std::path::Path::new(&name), image, label)?;
                return show_images(&set, rows, skip);
            }
            if w2s_data::images::is_image_data(&name) {
                let set = w2s_data::images::load_images(&name, &store)?;
                return show_images(&set, rows, skip);
            }
            let reference = columns.apply(&name);
            let ds = w2s_data::load(&reference, &store)?;
            if w2s_data::names_choices(&reference) {
                return show_questions(&reference, &ds, rows, skip);
            }
            let classes = ds.classes();
            if classes > 2 {
                println!(
                    "{}: {} rows, {classes} classes, version {}",
                    ds.name,
                    ds.examples.len(),
                    ds.version
                );
                println!("{:>5}  {:>7}", "label", "rows");
                for (label, n) in ds.class_counts().iter().enumerate() {
                    println!("{label:>5}  {n:>7}");
                }
            } else {
                println!(
                    "{}: {} rows, {:.1}% positive, version {}",
                    ds.name,
                    ds.examples.len(),
                    100.0 * ds.positive_share(),
                    ds.version
                );
            }
            let empty = ds.empty_texts();
            if empty > 0 {
                println!("{empty} rows have an empty text");
            }
            for e in ds.examples.iter().skip(skip).take(rows) {
                println!(
                    "\n[{}] label={} group={}\n{}",
                    e.id, e.label, e.group, e.text
                );
            }
        }
    }
    Ok(())
}

/// `w2s data show` of a choice view: questions, how many candidates they have, where the right
/// one stands, and the first questions with their candidates (the right one marked).
fn show_questions(name: &str, ds: &w2s_data::Dataset, rows: usize, skip: usize) -> Result<()> {
    use w2s_data::questions::letter;
    let questions = w2s_data::questions::questions(name, &ds.examples)?;
    let widest = questions.iter().map(|q| q.rows.len()).max().unwrap_or(2);
    let mut by_k = vec![0usize; widest + 1];
    let mut by_answer = vec![0usize; widest];
    for q in &questions {
        by_k[q.rows.len()] += 1;
        by_answer[q.answer] += 1;
    }
    let chance = questions
        .iter()
        .map(|q| 1.0 / q.rows.len() as f64)
        .sum::<f64>()
        / questions.len().max(1) as f64;
    println!(
        "{name}: {} questions of {} candidate rows, K = {widest}, chance {:.1}%, rows' version {}",
        questions.len(),
        ds.examples.len(),
        100.0 * chance,
        ds.version
    );
    println!(
        "{:>10}  {:>9}  {:>12}",
        "position", "questions", "right there"
    );
    for (k, &n) in by_answer.iter().enumerate() {
        let with = by_k[k + 1..].iter().sum::<usize>();
        println!("{:>10}  {with:>9}  {n:>12}", letter(k));
    }
    for q in questions.iter().skip(skip).take(rows) {
        println!("\n[{}] answer={} group={}", q.id, letter(q.answer), q.group);
        for (j, &r) in q.rows.iter().enumerate() {
            let mark = if j == q.answer { '*' } else { ' ' };
            let text = ds.examples[r].text.replace('\n', "\n      ");
            println!("  {mark}({}) {text}", letter(j));
        }
    }
    Ok(())
}

/// `w2s data show` of an image dataset: rows, classes with their counts, and the first rows.
fn show_images(set: &w2s_data::images::ImageSet, rows: usize, skip: usize) -> Result<()> {
    println!(
        "{}: {} rows, {} classes, version {}",
        set.name,
        set.rows.len(),
        set.classes.len(),
        set.version
    );
    println!("{:>5}  {:>7}  class", "label", "rows");
    for (i, (class, n)) in set.classes.iter().zip(set.class_counts()).enumerate() {
        println!("{i:>5}  {n:>7}  {class}");
    }
    for r in set.rows.iter().skip(skip).take(rows) {
        let img = r.rgb()?;
        println!(
            "[{}] label={} ({}) {}x{}",
            r.id,
            r.label,
            set.classes[r.label],
            img.width(),
            img.height()
        );
    }
    Ok(())
}
