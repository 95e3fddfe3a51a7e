//! docs/troubleshooting.md explains every warn/error line the agent and the
//! collector can log, every registration failure, every reason a media
//! packet is dropped and every status LED pattern, as the code has them.
//!
//! The log lines are read from the source: the format string of each
//! `warn!`/`error!`, of the agent's `problem(source, ...)` and of the
//! collector's rate-limited `self.warn(kind, ...)`, with `{...}` made `<>`;
//! the page writes the varying parts as `<name>`. Each line found must be
//! on the page at its level, and each line on the page must be in the code.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sipsensor_agent::led;
use sipsensor_agent::status::AgentState;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `.rs` files under `dir`, without unit-test code.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![root().join(dir)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                let mut text = std::fs::read_to_string(&p).unwrap();
                if let Some(i) = text.find("#[cfg(test)]\nmod tests {") {
                    text.truncate(i);
                }
                out.push((p, text));
            }
        }
    }
    assert!(out.len() > 10, "no sources under {dir}");
    out
}

/// The string literal starting at `s[0] == '"'`: its text (line
/// continuations joined, escapes resolved) and the rest after it.
fn literal(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices().peekable();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next()?.1 {
                '\n' => {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `{name}`, `{}`, `{:.1}` become `<>`; `{{` and `}}` are braces.
fn placeholders(fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                out.push(c);
                chars.next();
            }
            ('{', _) => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                out.push_str("<>");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The message an argument list starting at `s` logs: a literal, a
/// `format!` literal, or `<>` for a variable.
fn message_arg(s: &str) -> String {
    let s = s.trim_start();
    let s = s.strip_prefix("format!(").unwrap_or(s).trim_start();
    match literal(s) {
        Some((text, _)) => placeholders(&text),
        None => "<>".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Warn,
    Error,
}

/// Every log line of the code under `dir`: template -> level.
fn log_lines(dir: &str) -> BTreeMap<String, Level> {
    let mut found = BTreeMap::new();
    for (path, text) in sources(dir) {
        let mut add = |t: String, level: Level| {
            if generic(&t) {
                return;
            }
            if let Some(old) = found.insert(t.clone(), level) {
                assert_eq!(old, level, "{t:?} logged at two levels ({path:?})");
            }
        };
        for (mac, level) in [("warn!(", Level::Warn), ("error!(", Level::Error)] {
            for (i, _) in text.match_indices(mac) {
                let rest = &text[i + mac.len()..];
                // The format string is the first literal (fields come first).
                let q = rest.find('"').unwrap();
                add(message_arg(&rest[q..]), level);
            }
        }
        // The agent's session problems: "source: message", at error.
        // The collector's rate-limited warnings: self.warn(kind, message).
        for (call, level, prefixed) in [
            (".problem(", Level::Error, true),
            ("self.warn(", Level::Warn, false),
        ] {
            for (i, _) in text.match_indices(call) {
                let rest = text[i + call.len()..].trim_start();
                let Some((first, rest)) = literal(rest) else {
                    continue; // the definition, not a call
                };
                let rest = rest.trim_start().strip_prefix(',').unwrap();
                let message = message_arg(rest);
                add(
                    if prefixed {
                        format!("{first}: {message}")
                    } else {
                        message
                    },
                    level,
                );
            }
        }
    }
    found
}

/// The registration failures' texts (thiserror), as the agent logs them.
fn registration_failures() -> Vec<String> {
    let body = markdown::source_between(
        "protocol/src/sip/registration.rs",
        "pub enum FailureReason {",
        "\n}",
    );
    let out: Vec<String> = literals_after(&body, "#[error(")
        .iter()
        .map(|text| format!("registration: {}", placeholders(text)))
        .collect();
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// The string literal right after each `marker` in `text`.
fn literals_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(i, _)| literal(&text[i + marker.len()..]).map(|(l, _)| l))
        .collect()
}

/// A line with no words of its own: it only passes on another's text.
fn generic(t: &str) -> bool {
    !t.replace(" (<> similar messages suppressed)", "")
        .replace("<>", "")
        .chars()
        .any(char::is_alphabetic)
}

#[path = "../../tests/docs/markdown.rs"]
mod markdown;

/// The content of a code span: `` `a` `` or ``` `` a `b` c `` ```.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix("`` ")
        .and_then(|c| c.strip_suffix(" ``"))
        .or_else(|| cell.strip_prefix('`')?.strip_suffix('`'))
}

/// `<name>` becomes `<>`.
fn doc_template(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let close = rest[i..].find('>').unwrap();
        out.push_str("<>");
        rest = &rest[i + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The page's tables by their `## ` section and first header cell.
fn doc_tables() -> BTreeMap<(String, String), Vec<Vec<String>>> {
    let mut out: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for t in markdown::tables(&markdown::page("troubleshooting.md")) {
        out.entry((t.section, t.header[0].clone()))
            .or_default()
            .extend(t.rows);
    }
    out
}

/// Messages of the log tables in `section`: template -> level.
fn doc_log_lines(section: &str) -> BTreeMap<String, Level> {
    let tables = doc_tables();
    let rows = tables
        .get(&(section.to_owned(), "Level".to_owned()))
        .unwrap_or_else(|| panic!("no log table under ## {section}"));
    let mut out = BTreeMap::new();
    for r in rows {
        assert_eq!(r.len(), 4, "{r:?}");
        let level = match r[0].as_str() {
            "warn" => Level::Warn,
            "error" => Level::Error,
            other => panic!("level {other:?}"),
        };
        let msg = code(&r[1]).unwrap_or_else(|| panic!("message not in a code span: {r:?}"));
        assert!(!r[2].is_empty() && !r[3].is_empty(), "{r:?}");
        let t = doc_template(msg);
        assert!(out.insert(t.clone(), level).is_none(), "{t} twice");
    }
    out
}

/// Each documented message is a line the code logs, or (for text the code
/// logs through a variable) its words are in the code's string literals.
fn assert_in_code(doc: &BTreeMap<String, Level>, logged: &BTreeMap<String, Level>, dirs: &[&str]) {
    let mut joined = String::new();
    for d in dirs {
        for (_, text) in sources(d) {
            let mut rest = text.as_str();
            // Join `\` line continuations as the literals do.
            while let Some(i) = rest.find("\\\n") {
                joined.push_str(&rest[..i]);
                rest = rest[i + 2..].trim_start();
            }
            joined.push_str(rest);
        }
    }
    for (t, level) in doc {
        if let Some(l) = logged.get(t) {
            assert_eq!(l, level, "level of {t:?}");
            continue;
        }
        for part in t.split("<>").filter(|p| p.trim().len() > 2) {
            assert!(
                joined.contains(part),
                "docs/troubleshooting.md lists {t:?}, but {part:?} is in no log line of {dirs:?}"
            );
        }
    }
}

fn assert_documented(logged: &BTreeMap<String, Level>, doc: &BTreeMap<String, Level>, who: &str) {
    let missing: Vec<_> = logged
        .iter()
        .filter(|(t, _)| !doc.contains_key(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "{who} log lines missing from docs/troubleshooting.md (write <name> for each {{}}): {missing:#?}"
    );
}

#[test]
fn every_agent_log_line_is_explained() {
    let mut logged = log_lines("agent/src");
    assert!(logged.len() >= 25, "{logged:#?}");
    for f in registration_failures() {
        logged.insert(f, Level::Error);
    }
    let doc = doc_log_lines("Agent log lines");
    assert_documented(&logged, &doc, "agent");
    assert_in_code(&doc, &logged, &["agent/src", "protocol/src/sip"]);
}

#[test]
fn every_collector_log_line_is_explained() {
    let logged = log_lines("collector/src");
    assert!(logged.len() >= 25, "{logged:#?}");
    let doc = doc_log_lines("Collector log lines");
    assert_documented(&logged, &doc, "collector");
    assert_in_code(&doc, &logged, &["collector/src"]);
}

#[test]
fn every_refusal_reason_is_explained() {
    let body = markdown::source_between(
        "collector/src/media/rejects.rs",
        "pub fn as_str(self)",
        "\n    }",
    );
    let mut code: BTreeSet<String> = literals_after(&body, "=> ").into_iter().collect();
    assert!(code.len() >= 10, "{code:?}");
    // The SIP side counts its refusals in the same metric.
    for (_, text) in sources("collector/src") {
        code.extend(literals_after(&text, "self.count("));
    }
    assert!(code.contains("sip_malformed"), "{code:?}");
    // HTTP refusals too: each reason is a `fn reason` arm in collector/src/http/.
    for (path, text) in sources("collector/src") {
        if !path.components().any(|c| c.as_os_str() == "http") {
            continue;
        }
        if let Some(at) = text.find("fn reason(self)") {
            let body = &text[at..];
            let body = &body[..body.find("\n    }").unwrap_or(body.len())];
            code.extend(literals_after(body, "=> "));
        }
    }
    assert!(code.contains("http_wrong_host"), "{code:?}");
    let tables = doc_tables();
    let doc: BTreeSet<String> = tables
        .get(&("Collector log lines".into(), "Reason".into()))
        .unwrap()
        .iter()
        .map(|r| code_or_panic(&r[0]))
        .collect();
    assert_eq!(
        doc, code,
        "refusal reasons: docs vs collector/src (media/rejects.rs, the SIP side's `self.count`, http/ `fn reason`)"
    );
}

fn code_or_panic(cell: &str) -> String {
    code(cell).unwrap_or_else(|| panic!("{cell:?}")).to_owned()
}

/// Every state; the match fails to compile when a state is added.
fn all_states() -> Vec<AgentState> {
    let all = [
        AgentState::Starting,
        AgentState::NoConfig,
        AgentState::ConfigError,
        AgentState::Registering,
        AgentState::Registered,
        AgentState::Streaming,
        AgentState::Error,
    ];
    for s in all {
        match s {
            AgentState::Starting
            | AgentState::NoConfig
            | AgentState::ConfigError
            | AgentState::Registering
            | AgentState::Registered
            | AgentState::Streaming
            | AgentState::Error => {}
        }
    }
    all.to_vec()
}

#[test]
fn every_led_pattern_is_explained() {
    let tables = doc_tables();
    let rows = tables
        .get(&("Status LED".into(), "State".into()))
        .expect("the LED table");
    let doc: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (code_or_panic(&r[0]), r[2].clone()))
        .collect();
    let states = all_states();
    assert_eq!(doc.len(), states.len(), "one row per state: {doc:?}");
    for s in states {
        let cycle: Vec<String> = led::pattern(s)
            .iter()
            .map(|(on, ms)| format!("{ms} {}", if *on { "on" } else { "off" }))
            .collect();
        let cycle = cycle.join(", ");
        assert_eq!(
            doc.get(s.as_str()),
            Some(&cycle),
            "LED cycle of state {}",
            s.as_str()
        );
    }
}
