//! The tables of a Markdown page (and blocks of source), for the tests that
//! compare the docs with the code (agent/tests/docs.rs, agent/tests/troubleshooting.rs,
//! collector/tests/config_docs.rs include this file with `#[path]`).

// Each test uses a part of it.
#![allow(dead_code)]

/// One table: the `## ` section it is in, its header and its rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub section: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Split a table row on `|`; a `\|` stays in its cell as `\|`.
pub fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push_str("\\|");
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_owned()),
            c => cur.push(c),
        }
    }
    out
}

/// Every table of `text`, in order.
pub fn tables(text: &str) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut section = String::new();
    let mut open = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.to_owned();
        }
        if !line.starts_with('|') {
            open = false;
            continue;
        }
        if !open {
            out.push(Table {
                section: section.clone(),
                header: cells(line),
                rows: Vec::new(),
            });
            open = true;
        } else if !line.starts_with("|---")
            && let Some(t) = out.last_mut()
        {
            t.rows.push(cells(line));
        }
    }
    out
}

/// The page `docs/<name>` of the repository.
pub fn page(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first ```` ```yaml ```` block after `marker` in `text`.
pub fn yaml_after(text: &str, marker: &str) -> String {
    let rest = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"))
        .1;
    let block = rest
        .split_once("```yaml\n")
        .unwrap_or_else(|| panic!("no yaml block after {marker:?}"))
        .1;
    block.split_once("```").map_or(block, |b| b.0).to_owned()
}

/// The text of the repository file `path` between `start` and the next
/// `end` after it (a source block the docs describe).
pub fn source_between(path: &str, start: &str, end: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    let after = text
        .split_once(start)
        .unwrap_or_else(|| panic!("{start:?} not in {path}"))
        .1;
    after.split_once(end).map_or(after, |b| b.0).to_owned()
}
