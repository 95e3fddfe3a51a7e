//! Which channels a spooled run's values are: the spool files samples
//! under a layout number (`stream::layout_id`, a hash), and backfill
//! needs the names behind it to place old values under the current
//! description (docs/protocol.md 11.6). A small text file beside the
//! segments, one line a layout, appended when a layout is first seen;
//! segment files stay as they were (format version 1).
//!
//! ```text
//! layouts = line*
//! line    = id(8 hex) "\t" count ("\t" name "/" unit "/" scale)* "\n"
//! ```
//!
//! The count makes a line torn by a power cut (cut before a tab) fail to
//! parse instead of reading as a layout with fewer channels.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub(super) const FILE: &str = "layouts";

/// One channel of a spooled layout, as the description named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutChannel {
    pub name: String,
    pub unit: String,
    pub scale: i8,
}

/// Layout number → its channels, as far as the file is readable (a torn
/// last line from a power cut, or a damaged one, is skipped).
pub(super) fn read(dir: &Path) -> HashMap<u32, Vec<LayoutChannel>> {
    let Ok(text) = fs::read_to_string(dir.join(FILE)) else {
        return HashMap::new();
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<(u32, Vec<LayoutChannel>)> {
    let mut fields = line.split('\t');
    let id = u32::from_str_radix(fields.next()?, 16).ok()?;
    let count: usize = fields.next()?.parse().ok()?;
    let channels = fields
        .map(|f| {
            // Names cannot hold '/' or tabs (docs/protocol.md 2.3 tokens);
            // the unit is split from the right in case it has one.
            let (rest, scale) = f.rsplit_once('/')?;
            let (name, unit) = rest.split_once('/')?;
            Some(LayoutChannel {
                name: name.to_owned(),
                unit: unit.to_owned(),
                scale: scale.parse().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    (channels.len() == count).then_some((id, channels))
}

/// Append `id` with `channels`, durable before it returns.
pub(super) fn append(dir: &Path, id: u32, channels: &[LayoutChannel]) -> io::Result<()> {
    let mut line = format!("{id:08x}\t{}", channels.len());
    for c in channels {
        line.push_str(&format!("\t{}/{}/{}", c.name, c.unit, c.scale));
    }
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILE))?;
    // Start on a fresh line if a power cut tore the last one.
    let len = f.metadata()?.len();
    if len > 0 && !ends_with_newline(dir)? {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

fn ends_with_newline(dir: &Path) -> io::Result<bool> {
    Ok(fs::read(dir.join(FILE))?.last() == Some(&b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, unit: &str, scale: i8) -> LayoutChannel {
        LayoutChannel {
            name: name.into(),
            unit: unit.into(),
            scale,
        }
    }

    #[test]
    fn layouts_round_trip_and_a_torn_line_is_skipped() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let a = vec![channel("temperature", "Cel", -2), channel("rh", "%RH", -1)];
        let b = vec![channel("pressure", "Pa", 0)];
        append(dir.path(), 0xdead_beef, &a).expect("append a");
        // A power cut in the middle of the next line.
        let path = dir.path().join(FILE);
        let mut torn = fs::read(&path).expect("read");
        torn.extend_from_slice(b"00000009\t2\tpressure/Pa/0");
        fs::write(&path, torn).expect("write");
        append(dir.path(), 7, &b).expect("append b");
        let got = read(dir.path());
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[&0xdead_beef], a);
        assert_eq!(got[&7], b);
    }
}
