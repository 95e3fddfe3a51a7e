//! A stream description resolved against the board's channels and the
//! GPIO inputs: which board channel feeds each stream channel, which GPIO
//! input is which stream input, and the buffer one packet's values go in.

use super::StreamError;
use sipsensor_protocol::StreamDescription;

/// A stream description resolved against the board's channels and the
/// GPIO inputs, with its value buffer. Built off the hot path.
#[derive(Debug)]
pub(crate) struct Layout {
    pub desc: StreamDescription,
    /// Stream channel i comes from board channel `select[i]`.
    pub(super) select: Vec<usize>,
    /// GPIO input g is the description's input `inputs[g]`, if carried.
    pub(super) inputs: Vec<Option<u8>>,
    /// One packet of raw values, `spp × channels`.
    pub(super) values: Vec<i32>,
    /// What the spool files the samples under (`layout_id`).
    pub(super) id: u32,
}

impl Layout {
    /// Resolves names case-insensitively, as the format compares them
    /// (docs/protocol.md 2.3).
    pub fn new(
        desc: StreamDescription,
        channels: &[String],
        inputs: &[String],
    ) -> Result<Layout, StreamError> {
        desc.validate()?;
        let find =
            |names: &[String], want: &str| names.iter().position(|n| n.eq_ignore_ascii_case(want));
        let mut select = Vec::new();
        let mut values = Vec::new();
        if let Some(s) = &desc.samples {
            for c in &s.channels {
                select.push(
                    find(channels, &c.name)
                        .ok_or_else(|| StreamError::UnknownChannel(c.name.clone()))?,
                );
            }
            values = vec![0; s.channels.len() * usize::from(s.samples_per_packet)];
        }
        let mut map = vec![None; inputs.len()];
        if let Some(e) = &desc.events {
            for (j, name) in e.inputs.iter().enumerate() {
                let g =
                    find(inputs, name).ok_or_else(|| StreamError::UnknownInput(name.clone()))?;
                // validate() caps inputs at 64, so j fits a u8.
                map[g] = Some(u8::try_from(j).unwrap_or(u8::MAX));
            }
        }
        let id = layout_id(&desc);
        Ok(Layout {
            desc,
            select,
            inputs: map,
            values,
            id,
        })
    }

    /// The description's input levels (bit j = its input j) from the GPIO
    /// levels (bit g = GPIO input g).
    pub(super) fn remap(&self, levels: u64) -> u64 {
        let mut out = 0;
        for (g, j) in self.inputs.iter().enumerate() {
            if let Some(j) = j
                && g < 64
                && levels >> g & 1 == 1
            {
                out |= 1 << j;
            }
        }
        out
    }

    pub(super) fn input_count(&self) -> u8 {
        self.desc
            .events
            .as_ref()
            .map_or(0, |e| u8::try_from(e.inputs.len()).unwrap_or(u8::MAX))
    }
}

/// The samples' layout as a number: FNV-1a over each channel's name (in
/// lower case, as the format compares names), unit and scale, so a
/// spooled run can be matched to a description that encodes it the same
/// way. 0 for a stream without samples.
pub(crate) fn layout_id(desc: &StreamDescription) -> u32 {
    let Some(s) = &desc.samples else {
        return 0;
    };
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    };
    for c in &s.channels {
        eat(c.name.to_ascii_lowercase().as_bytes());
        eat(&[0]);
        eat(c.unit.symbol().as_bytes());
        eat(&[0, c.scale as u8]);
    }
    h
}
