//! The README's model and dataset tables against the registries they describe: every built-in
//! name listed once, nothing listed that is not built in, and each dataset's rows, positive share
//! and pinned package as the registry and the asset manifest have them. A dataset or model added
//! without its README row (or a row left behind after a removal) fails here.
use std::collections::BTreeMap;
use w2s_assets::manifest::Manifest;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the markdown table whose header starts with `| name |` and contains `column`,
/// as cells, keyed by the backquoted name in the first cell.
fn table(text: &str, column: &str) -> Vec<BTreeMap<String, Vec<String>>> {
    let mut tables = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !(line.starts_with("| name |") && line.contains(column)) {
            continue;
        }
        lines.next(); // the |---| rule
        let mut rows = BTreeMap::new();
        while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
            let cells: Vec<String> = row
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            let name = cells[0].trim_matches('`').to_string();
            assert!(
                rows.insert(name.clone(), cells).is_none(),
                "README lists {name} twice"
            );
        }
        tables.push(rows);
    }
    tables
}

#[test]
fn dataset_table_matches_the_registry() {
    let text = readme();
    let tables = table(&text, "| rows |");
    assert_eq!(tables.len(), 1, "README should have one dataset table");
    let rows = &tables[0];
    let manifest = Manifest::builtin();
    let listed: Vec<&String> = rows.keys().collect();
    let mut built_in: Vec<String> = w2s_data::registry::DATASETS
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    built_in.sort();
    assert_eq!(
        listed,
        built_in.iter().collect::<Vec<_>>(),
        "README's dataset table and DATASETS differ"
    );
    for d in &w2s_data::registry::DATASETS {
        let cells = &rows[d.name];
        let count: usize = cells[1].replace(',', "").parse().expect("rows");
        assert_eq!(count, d.rows, "{}: README says {} rows", d.name, cells[1]);
        let share = format!("{:.1}%", 100.0 * d.positives as f64 / d.rows as f64);
        assert_eq!(cells[2], share, "{}: positive share", d.name);
        // The source cell names the pinned package and version of the dataset's asset.
        let asset = manifest.asset(d.asset).expect("asset");
        let package = manifest.package(&asset.packages[0]).expect("package");
        let pin = format!("{} {}", package.name, package.version);
        assert!(
            cells[3].starts_with(&pin),
            "{}: README's source {:?} should start with the pinned {pin:?}",
            d.name,
            cells[3]
        );
    }
}

#[test]
fn model_tables_match_the_registry() {
    let text = readme();
    let tables = table(&text, "| params |");
    assert_eq!(
        tables.len(),
        2,
        "README should have an encoder and a decoder table"
    );
    let mut listed: Vec<String> = tables.iter().flat_map(|t| t.keys().cloned()).collect();
    listed.sort();
    let mut built_in: Vec<String> = w2s_models::registry::BUILTIN
        .iter()
        .map(|m| m.name.to_string())
        .collect();
    built_in.sort();
    assert_eq!(listed, built_in, "README's model tables and BUILTIN differ");
    let manifest = Manifest::builtin();
    for table in &tables {
        for (name, cells) in table {
            // The source cell starts with the pinned package (or the first of its parts).
            let asset = manifest.asset(name).expect("asset");
            let package = manifest.package(&asset.packages[0]).expect("package");
            let cell = cells[3].trim_start_matches('`');
            let stem = package.name.trim_end_matches(|c: char| c.is_ascii_digit());
            assert!(
                cell.starts_with(stem) && cells[3].contains(&package.version),
                "{name}: README's source {:?} should name {} {}",
                cells[3],
                package.name,
                package.version
            );
        }
    }
}
