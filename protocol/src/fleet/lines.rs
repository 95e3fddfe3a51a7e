//! The `name=value` lines of docs/protocol.md 12.2, checked once for
//! every body whatever it will be read as.

use std::collections::HashMap;

use super::{FleetBodyError, MAX_BODY};

/// A checked body: every name once, every value clean.
pub(super) struct Lines<'a> {
    values: HashMap<&'a str, &'a str>,
}

impl<'a> Lines<'a> {
    /// 12.2: at most [`MAX_BODY`] bytes of UTF-8; lines end in LF or
    /// CRLF; a name is `[a-z0-9-]+` and appears once; a value holds no
    /// control character. Empty lines (a trailing one, say) carry nothing.
    pub fn read(body: &'a [u8]) -> Result<Self, FleetBodyError> {
        if body.len() > MAX_BODY {
            return Err(FleetBodyError::TooLarge { len: body.len() });
        }
        let text = std::str::from_utf8(body).map_err(|_| FleetBodyError::NotUtf8)?;
        let mut values = HashMap::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let content = raw.strip_suffix('\r').unwrap_or(raw);
            if content.is_empty() {
                continue;
            }
            let (name, value) = content
                .split_once('=')
                .ok_or(FleetBodyError::NotNameValue { line })?;
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(FleetBodyError::BadName { line });
            }
            if has_control(value) {
                return Err(FleetBodyError::ControlCharacter { line });
            }
            if values.insert(name, value).is_some() {
                return Err(FleetBodyError::Duplicate(name.to_owned()));
            }
        }
        Ok(Self { values })
    }

    pub fn optional(&self, name: &str) -> Option<&'a str> {
        self.values.get(name).copied()
    }

    pub fn required(&self, name: &'static str) -> Result<&'a str, FleetBodyError> {
        self.optional(name).ok_or(FleetBodyError::Missing(name))
    }
}

/// True when a value holds a control character (C0, DEL, C1), which would end the line
/// or hide text from a reader of logs.
pub(super) fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}
