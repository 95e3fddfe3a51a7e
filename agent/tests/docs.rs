//! docs/configuration.md lists exactly the keys the config accepts, with
//! the types, defaults and sensor types the code has.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use serde_yaml::Value;
use sipsensor_agent::config::raw::{RawConfig, RawGpioInput, RawLed, RawSensorType};
use sipsensor_agent::config::schema::{self, KeyKind};
use sipsensor_agent::config::validate::{channel_keys, sensor_keys};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
struct Row {
    ty: String,
    default: String,
    types: Option<String>,
    meaning: String,
}

#[path = "../../tests/docs/markdown.rs"]
mod markdown;

fn doc_rows() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    let text = markdown::page("configuration.md");
    for t in markdown::tables(&text)
        .into_iter()
        .filter(|t| t.header[0] == "Key")
    {
        let col = |c: &[String], name: &str| {
            t.header
                .iter()
                .position(|h| h == name)
                .map(|i| c[i].clone())
        };
        for c in &t.rows {
            let key = c[0].trim_matches('`').to_owned();
            let row = Row {
                ty: col(c, "Type").unwrap(),
                default: col(c, "Default").unwrap(),
                types: col(c, "Types"),
                meaning: col(c, "Meaning").unwrap(),
            };
            assert!(
                rows.insert(key.clone(), row).is_none(),
                "{key} documented twice"
            );
        }
    }
    rows
}

#[test]
fn doc_lists_exactly_the_accepted_keys_with_their_types() {
    let code = schema::keys();
    let doc = doc_rows();
    let code_keys: BTreeSet<&String> = code.keys().collect();
    let doc_keys: BTreeSet<&String> = doc.keys().collect();
    let undocumented: Vec<_> = code_keys.difference(&doc_keys).collect();
    let unknown: Vec<_> = doc_keys.difference(&code_keys).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/configuration.md: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "documented keys the config does not accept: {unknown:?}"
    );
    for (k, kind) in &code {
        let row = &doc[k];
        assert_eq!(row.ty, kind.to_string(), "type of {k}");
        assert!(!row.meaning.is_empty(), "{k} has no meaning");
        if !matches!(kind, KeyKind::Mapping) {
            assert!(!row.default.is_empty(), "{k} has no default");
        }
    }
}

fn render(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Sequence(s) if s.is_empty() => Some("[]".into()),
        _ => None,
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    if let Value::Mapping(m) = v {
        for (k, v) in m {
            let k = k.as_str().unwrap();
            let path = if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            };
            if let Some(r) = render(v) {
                out.insert(path.clone(), r);
            }
            flatten(&path, v, out);
        }
    }
}

#[test]
fn documented_defaults_are_the_code_defaults() {
    let mut defaults = BTreeMap::new();
    flatten(
        "",
        &serde_yaml::to_value(RawConfig::default()).unwrap(),
        &mut defaults,
    );
    let input: RawGpioInput = serde_yaml::from_str("{name: x, pin: 1}").unwrap();
    flatten(
        "gpio.inputs[]",
        &serde_yaml::to_value(input).unwrap(),
        &mut defaults,
    );
    let led: RawLed = serde_yaml::from_str("{pin: 1}").unwrap();
    flatten(
        "gpio.status_led",
        &serde_yaml::to_value(led).unwrap(),
        &mut defaults,
    );
    defaults.remove("gpio.inputs[].name");
    defaults.remove("gpio.inputs[].pin");
    defaults.remove("gpio.status_led.pin");
    assert!(defaults.len() >= 15, "{defaults:?}");
    let doc = doc_rows();
    for (k, v) in &defaults {
        let row = doc.get(k).unwrap_or_else(|| panic!("{k} not documented"));
        assert_eq!(row.default.trim_matches('`'), v, "default of {k}");
    }
}

#[test]
fn documented_sensor_types_per_key_match_the_validator() {
    let keys = schema::keys();
    let Some(KeyKind::OneOf(names)) = keys.get("sensors[].type") else {
        panic!("sensors[].type")
    };
    let types: Vec<(&str, RawSensorType)> = names
        .iter()
        .map(|n| (*n, serde_yaml::from_str::<RawSensorType>(n).unwrap()))
        .collect();
    let doc = doc_rows();
    for (k, row) in doc.iter().filter(|(k, _)| k.starts_with("sensors[].")) {
        let want: BTreeSet<&str> = if let Some(ch) = k.strip_prefix("sensors[].channels[].") {
            types
                .iter()
                .filter(|(_, t)| channel_keys(*t).contains(&ch))
                .map(|(n, _)| *n)
                .collect()
        } else {
            let key = &k["sensors[].".len()..];
            if ["type", "name", "interval_ms"].contains(&key) {
                names.iter().copied().collect()
            } else {
                types
                    .iter()
                    .filter(|(_, t)| sensor_keys(*t).contains(&key))
                    .map(|(n, _)| *n)
                    .collect()
            }
        };
        let cell = row.types.clone().unwrap_or_default();
        let got: BTreeSet<&str> = if cell == "all" {
            names.iter().copied().collect()
        } else {
            cell.split(", ").collect()
        };
        assert_eq!(got, want, "Types column of {k}");
    }
}
