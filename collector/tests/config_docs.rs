//! docs/collector-configuration.md lists exactly the keys the collector's
//! config and credentials file accept; every example and default given there
//! parses, and every default is what the collector uses without the key.
//!
//! The accepted keys come from the parser itself: each section is fed an
//! unknown key, and serde's `deny_unknown_fields` error lists the fields
//! that section has. A key whose value is a mapping of known fields is
//! recursed into the same way, so a new key or section in the code shows up
//! here without anyone editing this test.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use serde_yaml::{Mapping, Value};
use sipsensor_collector::config::Config;
use sipsensor_collector::sip::credentials::Credentials;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const PROBE: &str = "zz_not_a_key";

#[derive(Debug, Clone)]
struct Row {
    ty: String,
    default: String,
    example: String,
    meaning: String,
}

#[path = "../../tests/docs/markdown.rs"]
mod markdown;

fn doc_rows() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for t in markdown::tables(&markdown::page("collector-configuration.md")) {
        assert_eq!(
            t.header,
            ["Key", "Type", "Default", "Example", "Meaning"],
            "every table of the page is a key table"
        );
        for c in t.rows {
            let key = c[0].trim_matches('`').to_owned();
            let row = Row {
                ty: c[1].clone(),
                default: c[2].clone(),
                example: c[3].clone(),
                meaning: c[4].clone(),
            };
            assert!(
                rows.insert(key.clone(), row).is_none(),
                "{key} documented twice"
            );
        }
    }
    assert!(rows.len() > 20, "{rows:?}");
    rows
}

fn is_credentials_key(k: &str) -> bool {
    k == "users" || k.starts_with("users.")
}

/// `a.b.c` set to `v` in the mapping `root` (intermediate mappings made).
fn set(root: &mut Value, key: &str, v: Value) {
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let m = node.as_mapping_mut().unwrap();
        let k = Value::String((*p).to_owned());
        if i + 1 == parts.len() {
            m.insert(k, v);
            return;
        }
        node = m.entry(k).or_insert(Value::Mapping(Mapping::new()));
    }
}

/// The smallest valid config in which `key` may be set: storage is
/// required, and some keys only make sense with others.
fn base_for(key: &str) -> Value {
    let mut v = Value::Mapping(Mapping::new());
    set(&mut v, "storage.url", "sqlite:///tmp/doc-test.db".into());
    set(&mut v, "sip", Value::Mapping(Mapping::new()));
    if key.starts_with("sip.register.") {
        set(&mut v, "sip.registrar", false.into());
        set(&mut v, "sip.credentials_file", "/etc/c.yaml".into());
        set(&mut v, "sip.register.registrar", "sip:192.0.2.1".into());
        set(&mut v, "sip.register.aor", "sip:c@192.0.2.1".into());
    }
    if key.starts_with("sip.calling.") {
        set(&mut v, "sip.credentials_file", "/etc/c.yaml".into());
        set(&mut v, "sip.calling.username", "c0".into());
    }
    if key.starts_with("sip.tls.") {
        set(&mut v, "sip.tls.certificate", "/etc/c.crt".into());
        set(&mut v, "sip.tls.private_key", "/etc/c.key".into());
        set(&mut v, "sip.tls.ca_file", "/etc/ca.crt".into());
    }
    // `cap` needs one limit; give the other one, so `key` can be left out.
    if key == "policy.max_rate_hz" {
        set(&mut v, "policy.mode", "cap".into());
        set(&mut v, "policy.max_channels", 3.into());
    }
    if key == "policy.max_channels" {
        set(&mut v, "policy.mode", "cap".into());
        set(&mut v, "policy.max_rate_hz", 7.into());
    }
    v
}

fn parse(v: &Value) -> Result<Config, String> {
    let text = serde_yaml::to_string(v).unwrap();
    Config::parse(&text, Path::new("doc.yaml")).map_err(|e| e.to_string())
}

/// The fields serde lists in its unknown-field error, or `None` when the
/// error is another one (the value at `key` is not a struct).
fn fields_from_error(err: &str) -> Option<Vec<String>> {
    let rest = err.split(&format!("unknown field `{PROBE}`")).nth(1)?;
    let rest = rest.split(" at line ").next().unwrap_or(rest);
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every key the config accepts, found by probing the parser.
fn accepted_config_keys() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![String::new()];
    while let Some(section) = todo.pop() {
        assert!(found.len() < 500, "runaway probe");
        let mut v = base_for(&format!("{section}.x"));
        let probe_key = if section.is_empty() {
            PROBE.to_owned()
        } else {
            format!("{section}.{PROBE}")
        };
        set(&mut v, &probe_key, 1.into());
        let err = parse(&v).expect_err("an unknown key must be refused");
        let Some(fields) = fields_from_error(&err) else {
            // Not a struct: a leaf that happens to take mappings.
            continue;
        };
        if !section.is_empty() {
            found.insert(section.clone());
        }
        for f in fields {
            let key = if section.is_empty() {
                f
            } else {
                format!("{section}.{f}")
            };
            // Is `key` itself a section? Probe it; leaves refuse the mapping
            // with a type error instead, and are recorded here.
            let mut v = base_for(&key);
            set(&mut v, &format!("{key}.{PROBE}"), 1.into());
            match parse(&v) {
                Err(e) if fields_from_error(&e).is_some() => todo.push(key),
                _ => {
                    found.insert(key);
                }
            }
        }
    }
    found
}

#[test]
fn probe_sees_the_sections_it_should() {
    // Guards the probe itself: if serde's wording changed, it would find
    // nothing and the comparison below would be meaningless.
    let keys = accepted_config_keys();
    for k in [
        "storage.url",
        "sip.register.aor",
        "media.max_streams",
        "policy.mode",
    ] {
        assert!(keys.contains(k), "{k} not found by probing: {keys:?}");
    }
}

#[test]
fn doc_lists_exactly_the_accepted_config_keys() {
    let code = accepted_config_keys();
    let doc: BTreeSet<String> = doc_rows()
        .into_keys()
        .filter(|k| !is_credentials_key(k))
        .collect();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "keys the collector accepts but docs/collector-configuration.md does not list: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "keys docs/collector-configuration.md lists but the collector refuses: {unknown:?}"
    );
}

fn literal(cell: &str) -> Option<Value> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    Some(serde_yaml::from_str(inner).unwrap())
}

#[test]
fn every_documented_example_parses() {
    for (k, row) in doc_rows().iter().filter(|(k, _)| !is_credentials_key(k)) {
        assert!(!row.meaning.is_empty(), "{k} has no meaning");
        assert!(!row.ty.is_empty(), "{k} has no type");
        if row.ty == "mapping" {
            continue;
        }
        let example = literal(&row.example)
            .unwrap_or_else(|| panic!("{k}: the Example cell must be one `value`"));
        assert_of_type(k, &row.ty, &example);
        let mut v = base_for(k);
        set(&mut v, k, example.clone());
        if k == "policy.mode" {
            // `cap` needs a limit.
            set(&mut v, "policy.max_channels", 8.into());
        }
        let c = parse(&v).unwrap_or_else(|e| panic!("{k}: example {example:?} refused: {e}"));
        // The example must change something, or it shows nothing.
        assert_ne!(
            c,
            parse(&base_for(k)).unwrap(),
            "{k}: the example is the default"
        );
    }
}

/// The example has the documented type; every value an enumerated type
/// lists is accepted.
fn assert_of_type(k: &str, ty: &str, example: &Value) {
    let ok = match ty {
        "integer" => example.is_u64(),
        "number" => example.is_number(),
        "boolean" => example.is_bool(),
        "string" | "IP address" => example.is_string(),
        "list of strings" => example
            .as_sequence()
            .is_some_and(|s| s.iter().all(Value::is_string)),
        enumerated => {
            let names: Vec<&str> = enumerated
                .split("\\|")
                .map(|n| n.trim().trim_matches('`'))
                .collect();
            assert!(names.len() >= 2, "{k}: unknown type {ty:?}");
            for n in &names {
                let mut v = base_for(k);
                set(&mut v, k, (*n).into());
                if *n == "cap" {
                    set(&mut v, "policy.max_channels", 8.into());
                }
                parse(&v).unwrap_or_else(|e| panic!("{k}: documented value {n} refused: {e}"));
            }
            // And no other: serde lists the variants when one is unknown.
            let mut v = base_for(k);
            set(&mut v, k, PROBE.into());
            let err = parse(&v).unwrap_err();
            let listed: Vec<&str> = err
                .split(&format!("unknown variant `{PROBE}`"))
                .nth(1)
                .and_then(|r| r.split(" at line ").next())
                .unwrap_or_else(|| panic!("{k}: {err}"))
                .split('`')
                .skip(1)
                .step_by(2)
                .collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            let mut listed = listed;
            listed.sort_unstable();
            assert_eq!(sorted, listed, "{k}: documented values vs the code's");
            example.as_str().is_some_and(|e| names.contains(&e))
        }
    };
    assert!(ok, "{k}: example {example:?} is not of type {ty}");
}

#[test]
fn documented_defaults_are_the_code_defaults() {
    let mut checked = 0;
    for (k, row) in doc_rows().iter().filter(|(k, _)| !is_credentials_key(k)) {
        match row.default.as_str() {
            "" => assert_eq!(row.ty, "mapping", "{k} has no default"),
            "required" | "none" => {
                // Leaving it out must be refused (required) or accepted (none).
                let mut v = base_for(k);
                let (parent, leaf) = k.rsplit_once('.').unwrap_or(("", k));
                let node = if parent.is_empty() {
                    Some(&mut v)
                } else {
                    parent.split('.').try_fold(&mut v, |n, p| n.get_mut(p))
                };
                // A missing parent: the key is already absent.
                if let Some(m) = node.and_then(Value::as_mapping_mut) {
                    m.remove(leaf);
                }
                let required = row.default == "required";
                assert_eq!(
                    parse(&v).is_err(),
                    required,
                    "{k} is documented as {}",
                    row.default
                );
                // For "none", every_documented_example_parses checks that the
                // example changes the config, so it is not the default.
            }
            d => {
                let value = literal(d).unwrap_or_else(|| panic!("{k}: default {d:?}"));
                let mut v = base_for(k);
                set(&mut v, k, value);
                assert_eq!(
                    parse(&v).unwrap_or_else(|e| panic!("{k}: default refused: {e}")),
                    parse(&base_for(k)).unwrap(),
                    "{k}: the documented default {d} is not what the collector uses"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} defaults checked");
}

#[test]
fn doc_lists_exactly_the_credentials_file_keys() {
    let parse = |text: &str| Credentials::parse(text, Path::new("c.yaml"), "example.net");
    // Top level: from the parser, as for the config.
    let err = parse(&format!("{PROBE}: 1")).unwrap_err().to_string();
    let top = fields_from_error(&err).unwrap();
    // Per-user hashes sit behind an untagged enum (password or hashes),
    // whose errors name no fields: read them from the struct's source.
    let body = markdown::source_between("collector/src/sip/credentials.rs", "struct Hashes {", "}");
    let hashes: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with("//") && l.contains(':'))
        .map(|l| {
            l.trim_start_matches("pub ")
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(!hashes.is_empty(), "no fields found in struct Hashes");
    let mut code: BTreeSet<String> = top.into_iter().collect();
    code.insert("users.NAME".into());
    code.extend(hashes.iter().map(|h| format!("users.NAME.{h}")));
    let doc: BTreeSet<String> = doc_rows()
        .into_keys()
        .filter(|k| is_credentials_key(k))
        .collect();
    assert_eq!(doc, code, "credentials file keys in the docs vs the code");
    // Each documented hash key is accepted with a value of its length.
    for h in &hashes {
        let digits = if h.contains("md5") { 32 } else { 64 };
        let text = format!("users:\n  s1:\n    {h}: {}\n", "a".repeat(digits));
        parse(&text).unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    parse("users:\n  s1: \"a password\"\n").unwrap();
}

fn quick_start_yaml(marker: &str) -> String {
    markdown::yaml_after(&markdown::page("quick-start.md"), marker)
}

#[test]
fn the_quick_start_collector_files_are_valid() {
    let text = quick_start_yaml("`/etc/sipsensor/collector.yaml`:");
    let c = Config::parse(&text, Path::new("quick-start collector.yaml")).unwrap();
    assert!(c.sip.enabled && c.sip.registrar, "{c:?}");
    let realm = c.sip.domain.clone().unwrap();
    let creds = Credentials::parse(
        &quick_start_yaml("`/etc/sipsensor/credentials.yaml`"),
        Path::new("quick-start credentials.yaml"),
        &realm,
    )
    .unwrap();
    assert!(creds.password("sensor-0001").is_some());
}

/// Keys the shipped example sets to something other than the documented
/// default, on purpose, and why. Anything else it sets must equal the
/// default: an example is copied as it is, and a value that differs
/// silently (once `trusted_peers: [127.0.0.1/32]`, which let any loopback
/// process open sessions) becomes every installation's setting.
const EXAMPLE_ON_PURPOSE: &[(&str, &str)] = &[
    ("storage.url", "required: the appliance's database path"),
    (
        "sip.credentials_file",
        "the appliance's path; without one no sensor can register",
    ),
    (
        "sip.tls.certificate",
        "secure by default: sensors use TLS and SRTP (issue #14)",
    ),
    ("sip.tls.private_key", "the certificate's key"),
    (
        "sip.tls.ca_file",
        "the site's CA, as docs/security.md makes it",
    ),
];

/// `a.b.c` → value for every leaf of `v` (a sequence is a leaf).
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let k = k.as_str().unwrap();
                let key = if prefix.is_empty() {
                    k.to_owned()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, child, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[test]
fn the_example_config_sets_the_documented_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/collector.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse(&text, &path).unwrap();
    let mut set = BTreeMap::new();
    leaves("", &serde_yaml::from_str(&text).unwrap(), &mut set);
    let rows = doc_rows();
    for (key, value) in &set {
        let row = rows
            .get(key)
            .unwrap_or_else(|| panic!("the example sets {key}, which the docs do not list"));
        if let Some((_, why)) = EXAMPLE_ON_PURPOSE.iter().find(|(k, _)| k == key) {
            assert!(
                literal(&row.default).as_ref() != Some(value),
                "{key} is listed as set on purpose ({why}) but has the default: remove it from \
                 EXAMPLE_ON_PURPOSE"
            );
            continue;
        }
        let default = literal(&row.default).unwrap_or_else(|| {
            panic!(
                "the example sets {key}: {value:?}, whose default is {:?}; comment it out, or \
                 name it in EXAMPLE_ON_PURPOSE with the reason",
                row.default
            )
        });
        assert_eq!(
            value, &default,
            "the example sets {key} to {value:?}, the docs give {} as the default",
            row.default
        );
    }
    // Every key with a default value is shown, so the example is complete.
    // (Not inside an optional section left out, such as sip.register.)
    let in_optional_section = |key: &str| {
        key.match_indices('.')
            .any(|(i, _)| rows.get(&key[..i]).is_some_and(|r| r.default == "none"))
    };
    for (key, row) in rows.iter().filter(|(k, _)| !is_credentials_key(k)) {
        if literal(&row.default).is_some() && !in_optional_section(key) {
            assert!(
                set.contains_key(key),
                "the example does not show {key} (default {})",
                row.default
            );
        }
    }
}
