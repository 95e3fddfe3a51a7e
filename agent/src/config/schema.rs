//! Every key the config accepts, read from the serde types themselves.
//!
//! A recording `Deserializer` walks `RawConfig`'s `Deserialize` impl: serde
//! hands it each struct's field list, each enum's variant list and each
//! scalar's type. The docs test compares this list with
//! docs/configuration.md, so the reference cannot drift from the code.

use super::raw::RawConfig;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Mapping,
    ListOfMappings,
    /// A list of scalars of this type.
    List(&'static str),
    /// `integer`, `number`, `string`, `boolean`.
    Scalar(&'static str),
    /// One of these words.
    OneOf(&'static [&'static str]),
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Mapping => f.write_str("mapping"),
            KeyKind::ListOfMappings => f.write_str("list of mappings"),
            KeyKind::List(t) => write!(f, "list of {t}s"),
            KeyKind::Scalar(t) => f.write_str(t),
            KeyKind::OneOf(v) => {
                let words: Vec<String> = v.iter().map(|w| format!("`{w}`")).collect();
                f.write_str(&words.join(" \\| "))
            }
        }
    }
}

/// Every key path (`sip.expires`, `sensors[].channels[].unit`) and its kind.
pub fn keys() -> BTreeMap<String, KeyKind> {
    let out = RefCell::new(BTreeMap::new());
    // The walker hands out zeros and empty strings; the types accept them.
    let _ = <RawConfig as serde::Deserialize>::deserialize(Walker {
        path: String::new(),
        out: &out,
    });
    let raw = out.into_inner();
    let mut keys = BTreeMap::new();
    for (path, kind) in &raw {
        if path.is_empty() || path.ends_with("[]") {
            continue;
        }
        let kind = match kind {
            KeyKind::List(_) => match raw.get(&format!("{path}[]")) {
                Some(KeyKind::Mapping) => KeyKind::ListOfMappings,
                Some(KeyKind::Scalar(t)) => KeyKind::List(t),
                _ => kind.clone(),
            },
            k => k.clone(),
        };
        keys.insert(path.clone(), kind);
    }
    keys
}

struct Walker<'a> {
    path: String,
    out: &'a RefCell<BTreeMap<String, KeyKind>>,
}

impl Walker<'_> {
    fn record(&self, kind: KeyKind) {
        self.out.borrow_mut().insert(self.path.clone(), kind);
    }

    fn child(&self, key: &str) -> Walker<'_> {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Walker {
            path,
            out: self.out,
        }
    }
}

#[derive(Debug)]
struct WalkError(String);

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

macro_rules! scalar {
    ($($method:ident => $visit:ident($val:expr), $name:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
            self.record(KeyKind::Scalar($name));
            v.$visit($val)
        })*
    };
}

impl<'de> Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    scalar! {
        deserialize_bool => visit_bool(false), "boolean";
        deserialize_i8 => visit_i8(0), "integer";
        deserialize_i16 => visit_i16(0), "integer";
        deserialize_i32 => visit_i32(0), "integer";
        deserialize_i64 => visit_i64(0), "integer";
        deserialize_u8 => visit_u8(0), "integer";
        deserialize_u16 => visit_u16(0), "integer";
        deserialize_u32 => visit_u32(0), "integer";
        deserialize_u64 => visit_u64(0), "integer";
        deserialize_f32 => visit_f32(0.0), "number";
        deserialize_f64 => visit_f64(0.0), "number";
        deserialize_str => visit_str(""), "string";
        deserialize_string => visit_string(String::new()), "string";
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.record(KeyKind::List("?"));
        let element = Walker {
            path: format!("{}[]", self.path),
            out: self.out,
        };
        v.visit_seq(OneElement(Some(element)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.record(KeyKind::Mapping);
        v.visit_map(Fields {
            walker: self,
            fields,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.record(KeyKind::OneOf(variants));
        let first = variants
            .first()
            .ok_or_else(|| WalkError("enum without variants".into()))?;
        v.visit_enum(UnitVariant(first))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, WalkError> {
        Err(WalkError(format!(
            "{}: a type the key walker cannot describe (untagged or internally tagged?)",
            self.path
        )))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct map identifier ignored_any
    }
}

struct Fields<'a> {
    walker: Walker<'a>,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        match self.fields.get(self.next) {
            Some(f) => seed.deserialize((*f).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let f = self.fields.get(self.next).copied().unwrap_or("?");
        self.next += 1;
        seed.deserialize(self.walker.child(f))
    }
}

struct OneElement<'a>(Option<Walker<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        match self.0.take() {
            Some(w) => seed.deserialize(w).map(Some),
            None => Ok(None),
        }
    }
}

struct UnitVariant(&'static str);

impl<'de> EnumAccess<'de> for UnitVariant {
    type Error = WalkError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), WalkError> {
        let v = seed.deserialize(self.0.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant {
    type Error = WalkError;

    fn unit_variant(self) -> Result<(), WalkError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        _seed: T,
    ) -> Result<T::Value, WalkError> {
        Err(WalkError(
            "data-carrying enum variants are not config keys".into(),
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, WalkError> {
        Err(WalkError(
            "data-carrying enum variants are not config keys".into(),
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _f: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, WalkError> {
        Err(WalkError(
            "data-carrying enum variants are not config keys".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_section_list_scalar_and_enum() {
        let k = keys();
        assert_eq!(k.get("sip"), Some(&KeyKind::Mapping));
        assert_eq!(k.get("sip.expires"), Some(&KeyKind::Scalar("integer")));
        assert_eq!(
            k.get("sip.transport"),
            Some(&KeyKind::OneOf(&["udp", "tcp", "tls"]))
        );
        assert_eq!(k.get("sip.callers"), Some(&KeyKind::List("string")));
        assert_eq!(k.get("sensors"), Some(&KeyKind::ListOfMappings));
        assert_eq!(k.get("sensors[].channels"), Some(&KeyKind::ListOfMappings));
        assert_eq!(
            k.get("sensors[].channels[].scale"),
            Some(&KeyKind::Scalar("number"))
        );
        assert_eq!(
            k.get("sensors[].type").map(ToString::to_string).as_deref(),
            Some("`simulated` \\| `bme280` \\| `bmp280` \\| `sht3x` \\| `iio`")
        );
        assert_eq!(
            k.get("gpio.status_led.active_low"),
            Some(&KeyKind::Scalar("boolean"))
        );
        assert_eq!(k.get("secrets_file"), Some(&KeyKind::Scalar("string")));
        assert!(!k.contains_key(""));
        assert!(!k.keys().any(|p| p.ends_with("[]")));
    }
}
