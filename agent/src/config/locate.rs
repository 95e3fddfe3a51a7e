//! Line and column for any key of a config file, and the key-by-key merge.
//!
//! serde_yaml reports where syntax and type errors are, but its `Value`
//! keeps no positions, and semantic checks (a rate of 0, a duplicate pin)
//! run on the merged tree. To point those at the right file, line and
//! column, the key's path is first resolved to the last file that defines
//! it, then looked up in that file's text by walking serde_yaml's own
//! deserializer: the walker fails on purpose when it reaches the node, and
//! serde_yaml stamps that failure with the node's position. One parser,
//! so the positions agree with those of serde_yaml's own errors.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;
use std::fmt;

/// One step of a path into the config tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path such as `sensors[1].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn parent(&self) -> Option<KeyPath> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Point at a key's value (`rate: >0<`) or at the key itself (`>rate<: 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Value,
    Key,
}

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

const FOUND: &str = "\u{0}sipsensor-found";

/// Where `path` is in the YAML `text`, or `None` if it is not there.
pub fn locate(text: &str, path: &KeyPath, target: Target) -> Option<Position> {
    if path.is_root() {
        return Some(first_node(text));
    }
    let de = serde_yaml::Deserializer::from_str(text);
    let err = Seek {
        path: &path.0,
        target,
    }
    .deserialize(de)
    .err()?;
    if !err.to_string().contains(FOUND) {
        return None;
    }
    err.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// The position of the document's root node (after leading comments).
fn first_node(text: &str) -> Position {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "---" {
            return Position {
                line: i + 1,
                column: line.len() - trimmed.len() + 1,
            };
        }
    }
    Position { line: 1, column: 1 }
}

struct Seek<'a> {
    path: &'a [Seg],
    target: Target,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Seek<'_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        // Reaching a scalar with path left means the path is not here.
        Err(E::custom(if self.path.is_empty() {
            FOUND
        } else {
            "not found"
        }))
    }
}

macro_rules! leaf_visits {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<(), E> { self.leaf() })*
    };
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    leaf_visits!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let Seg::Key(want) = first else {
            return Err(de::Error::custom("not found"));
        };
        let at_key = rest.is_empty() && self.target == Target::Key;
        while let Some(hit) = map.next_key_seed(KeySeek { want, at_key })? {
            if hit {
                return map.next_value_seed(Seek {
                    path: rest,
                    target: self.target,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("not found"))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let Seg::Index(want) = first else {
            return Err(de::Error::custom("not found"));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("not found"));
            }
        }
        seq.next_element_seed(Seek {
            path: rest,
            target: self.target,
        })?;
        Err(de::Error::custom("not found"))
    }
}

/// Matches one mapping key; fails with FOUND on it when the key itself is
/// the target, so the position is the key's.
struct KeySeek<'a> {
    want: &'a str,
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        if s == self.want {
            if self.at_key {
                return Err(E::custom(FOUND));
            }
            return Ok(true);
        }
        Ok(false)
    }

    // Non-string keys never match a config key but must be skipped.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<bool, M::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<bool, S::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// The node at `path` in a parsed tree.
pub fn value_at<'v>(mut v: &'v Value, path: &KeyPath) -> Option<&'v Value> {
    for seg in &path.0 {
        v = match (seg, v) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str())?,
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i)?,
            (_, Value::Tagged(t)) => return value_at(&t.value, &KeyPath(vec![seg.clone()])),
            _ => return None,
        };
    }
    Some(v)
}

/// Deep merge, the later file winning key by key: mappings merge
/// recursively; anything else (scalars, sequences) is replaced whole, so a
/// `sensors:` list in the override file replaces the base list.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# comment\nsip:\n  expires: 0\n  bind: \"0.0.0.0:5060\"\nsensors:\n  - type: bme280\n    address: 0x99\n  - {type: simulated, seed: 3}\n";

    fn p(s: &[&str]) -> KeyPath {
        KeyPath(
            s.iter()
                .map(|x| match x.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key((*x).to_owned()),
                })
                .collect(),
        )
    }

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn finds_values_and_keys() {
        assert_eq!(
            locate(DOC, &p(&["sip", "expires"]), Target::Value),
            at(3, 12)
        );
        assert_eq!(locate(DOC, &p(&["sip", "expires"]), Target::Key), at(3, 3));
        assert_eq!(locate(DOC, &p(&["sip"]), Target::Key), at(2, 1));
        assert_eq!(locate(DOC, &p(&["sip", "bind"]), Target::Value), at(4, 9));
        assert_eq!(
            locate(DOC, &p(&["sensors", "0", "address"]), Target::Value),
            at(7, 14)
        );
        assert_eq!(locate(DOC, &p(&["sensors", "1"]), Target::Value), at(8, 5));
        assert_eq!(
            locate(DOC, &p(&["sensors", "1", "seed"]), Target::Key),
            at(8, 23)
        );
        assert_eq!(locate(DOC, &KeyPath::root(), Target::Value), at(2, 1));
    }

    #[test]
    fn missing_paths_are_none() {
        assert_eq!(locate(DOC, &p(&["sip", "nope"]), Target::Value), None);
        assert_eq!(locate(DOC, &p(&["sensors", "5"]), Target::Value), None);
        assert_eq!(
            locate(DOC, &p(&["sip", "expires", "x"]), Target::Value),
            None
        );
        assert_eq!(locate(DOC, &p(&["sensors", "x"]), Target::Value), None);
        assert_eq!(locate("", &p(&["sip"]), Target::Value), None);
    }

    #[test]
    fn path_display() {
        assert_eq!(
            p(&["sensors", "1", "address"]).to_string(),
            "sensors[1].address"
        );
        assert_eq!(KeyPath::root().to_string(), "");
    }

    #[test]
    fn merge_is_key_by_key_and_replaces_lists() {
        let mut base: Value =
            serde_yaml::from_str("sip: {expires: 600, bind: a}\nsensors: [1, 2]\nx: 1").unwrap();
        let over: Value = serde_yaml::from_str("sip: {expires: 60}\nsensors: [3]").unwrap();
        merge(&mut base, over);
        let want: Value =
            serde_yaml::from_str("sip: {expires: 60, bind: a}\nsensors: [3]\nx: 1").unwrap();
        assert_eq!(base, want);
        assert_eq!(
            value_at(&base, &p(&["sip", "bind"])),
            Some(&Value::String("a".into()))
        );
        assert_eq!(
            value_at(&base, &p(&["sensors", "0"])),
            Some(&Value::from(3))
        );
        assert_eq!(value_at(&base, &p(&["sensors", "1"])), None);
    }
}
