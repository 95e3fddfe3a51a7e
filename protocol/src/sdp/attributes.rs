//! Reading and writing a stream description as the lines of an `m=`
//! section: rtpmap, fmtp, `a=sensor-channel`, `a=sensor-input`, ptime
//! (docs/protocol.md section 2).

use super::model::{Attribute, Media};
use super::stream::{
    ATTR_CHANNEL, ATTR_INPUT, ChannelSpec, ENCODING_EVENTS, ENCODING_SAMPLES, EventFormat,
    FORMAT_VERSION, MAX_CHANNELS, SampleFormat, StreamDescription, StreamError,
};
use super::units::Unit;

impl StreamDescription {
    /// The `m=` formats and media-level attributes of this description.
    pub fn to_media_parts(&self) -> (Vec<String>, Vec<Attribute>) {
        let mut formats = Vec::new();
        let mut attrs = Vec::new();
        if let Some(s) = &self.samples {
            let pt = s.payload_type;
            formats.push(pt.to_string());
            attrs.push(Attribute::value(
                "rtpmap",
                format!("{pt} {ENCODING_SAMPLES}/{}", self.clock_rate),
            ));
            attrs.push(Attribute::value(
                "fmtp",
                format!(
                    "{pt} ver={FORMAT_VERSION};cfg={};period={};spp={}",
                    self.config, s.period, s.samples_per_packet
                ),
            ));
            for (i, c) in s.channels.iter().enumerate() {
                attrs.push(Attribute::value(
                    ATTR_CHANNEL,
                    format!("{pt} {i} {} {} {}", c.name, c.unit, c.scale),
                ));
            }
        }
        if let Some(e) = &self.events {
            let pt = e.payload_type;
            formats.push(pt.to_string());
            attrs.push(Attribute::value(
                "rtpmap",
                format!("{pt} {ENCODING_EVENTS}/{}", self.clock_rate),
            ));
            attrs.push(Attribute::value(
                "fmtp",
                format!("{pt} ver={FORMAT_VERSION};cfg={}", self.config),
            ));
            for (i, n) in e.inputs.iter().enumerate() {
                attrs.push(Attribute::value(ATTR_INPUT, format!("{pt} {i} {n}")));
            }
        }
        // RFC 8866 6.4: packet duration in ms, given only when it is whole.
        if let Some(s) = &self.samples {
            let ticks = u64::from(s.period) * u64::from(s.samples_per_packet) * 1000;
            if ticks % u64::from(self.clock_rate) == 0 {
                attrs.push(Attribute::value(
                    "ptime",
                    (ticks / u64::from(self.clock_rate)).to_string(),
                ));
            }
        }
        (formats, attrs)
    }

    /// Reads the sensor formats of one media section. `Ok(None)` when the
    /// section has none (an audio stream, say); `Err` when it has one but
    /// describes it wrongly. Other formats in the section are ignored.
    pub fn from_media(media: &Media) -> Result<Option<StreamDescription>, StreamError> {
        let mut clock: Option<(u8, u32)> = None;
        let mut samples_pt = None;
        let mut events_pt = None;
        for fmt in &media.formats {
            let Ok(pt) = fmt.parse::<u8>() else { continue };
            let Some((enc, rate)) = rtpmap(media, pt) else {
                continue;
            };
            let is_samples = enc.eq_ignore_ascii_case(ENCODING_SAMPLES);
            let is_events = enc.eq_ignore_ascii_case(ENCODING_EVENTS);
            if !is_samples && !is_events {
                continue;
            }
            let rate = rate.ok_or(StreamError::Rtpmap(pt))?;
            if let Some((_, c)) = clock
                && c != rate
            {
                return Err(StreamError::ClockMismatch {
                    samples: c,
                    events: rate,
                });
            }
            clock = Some((pt, rate));
            if is_samples && samples_pt.is_none() {
                samples_pt = Some(pt);
            } else if is_events && events_pt.is_none() {
                events_pt = Some(pt);
            }
        }
        let Some((_, clock_rate)) = clock else {
            return Ok(None);
        };
        let mut config = None;
        let samples = match samples_pt {
            Some(pt) => {
                let p = Fmtp::read(media, pt)?;
                config = Some(p.cfg);
                Some(SampleFormat {
                    payload_type: pt,
                    period: p.required(pt, "period", p.period)?,
                    samples_per_packet: p.required(pt, "spp", p.spp)?,
                    channels: read_channels(media, pt)?,
                })
            }
            None => None,
        };
        let events = match events_pt {
            Some(pt) => {
                let p = Fmtp::read(media, pt)?;
                if config.is_some_and(|c| c != p.cfg) {
                    return Err(StreamError::ConfigMismatch);
                }
                config = Some(p.cfg);
                Some(EventFormat {
                    payload_type: pt,
                    inputs: read_inputs(media, pt)?,
                })
            }
            None => None,
        };
        let desc = StreamDescription {
            clock_rate,
            config: config.unwrap_or(0),
            samples,
            events,
        };
        desc.validate()?;
        Ok(Some(desc))
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<params>]` (RFC 8866 6.6) for one
/// payload type: the encoding name and the clock rate if it is a number.
fn rtpmap(media: &Media, pt: u8) -> Option<(&str, Option<u32>)> {
    media.attribute_values("rtpmap").find_map(|v| {
        let (p, rest) = v.split_once(' ')?;
        if p.parse::<u8>().ok()? != pt {
            return None;
        }
        let mut parts = rest.trim().split('/');
        let enc = parts.next()?;
        let rate = parts.next().and_then(|r| r.parse::<u32>().ok());
        Some((enc, rate))
    })
}

/// The parameters of one `a=fmtp:<pt> k=v;k=v` line (RFC 8866 6.15).
/// Unknown keys are ignored so a later format version can add some.
struct Fmtp {
    cfg: u8,
    period: Option<u32>,
    spp: Option<u8>,
}

impl Fmtp {
    fn read(media: &Media, pt: u8) -> Result<Fmtp, StreamError> {
        let missing = |name| StreamError::Fmtp {
            pt,
            name,
            problem: "missing",
        };
        let bad = |name| StreamError::Fmtp {
            pt,
            name,
            problem: "not a valid number",
        };
        let params = media
            .attribute_values("fmtp")
            .find_map(|v| {
                let (p, rest) = v.split_once(' ')?;
                (p.parse::<u8>().ok()? == pt).then_some(rest)
            })
            .ok_or(missing("ver"))?;
        let (mut ver, mut cfg, mut period, mut spp) = (None, None, None, None);
        for kv in params.split(';') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "ver" => ver = Some(v),
                "cfg" => cfg = Some(v.parse::<u8>().map_err(|_| bad("cfg"))?),
                "period" => period = Some(v.parse::<u32>().map_err(|_| bad("period"))?),
                "spp" => spp = Some(v.parse::<u8>().map_err(|_| bad("spp"))?),
                _ => {}
            }
        }
        let ver = ver.ok_or(missing("ver"))?;
        if ver != FORMAT_VERSION.to_string() {
            return Err(StreamError::Version {
                pt,
                version: ver.into(),
            });
        }
        Ok(Fmtp {
            cfg: cfg.ok_or(missing("cfg"))?,
            period,
            spp,
        })
    }

    fn required<T>(&self, pt: u8, name: &'static str, v: Option<T>) -> Result<T, StreamError> {
        v.ok_or(StreamError::Fmtp {
            pt,
            name,
            problem: "missing",
        })
    }
}

/// The lines `a=<attr>:<pt> <index> <fields...>` for one payload type,
/// ordered by index; every index from 0 must appear exactly once.
fn indexed_lines<'a>(
    media: &'a Media,
    attr: &'static str,
    pt: u8,
    fields: usize,
) -> Result<Vec<Vec<&'a str>>, StreamError> {
    let bad = |value: &str, reason| StreamError::ChannelLine {
        attr,
        value: value.into(),
        reason,
    };
    let mut slots: Vec<Option<Vec<&str>>> = Vec::new();
    for v in media.attribute_values(attr) {
        let parts: Vec<&str> = v
            .split(' ')
            .filter(|p| !p.is_empty())
            .take(fields + 3)
            .collect();
        let Some(p) = parts.first().and_then(|p| p.parse::<u8>().ok()) else {
            return Err(bad(v, "does not start with a payload type"));
        };
        if p != pt {
            continue;
        }
        if parts.len() != fields + 2 {
            return Err(bad(v, "wrong number of fields"));
        }
        let index = parts[1]
            .parse::<usize>()
            .ok()
            .filter(|i| *i < MAX_CHANNELS)
            .ok_or_else(|| bad(v, "index is not a number below 64"))?;
        if slots.len() <= index {
            slots.resize(index + 1, None);
        }
        if slots[index].is_some() {
            return Err(bad(v, "index given twice"));
        }
        slots[index] = Some(parts[2..].to_vec());
    }
    if slots.is_empty() {
        return Err(StreamError::NoChannels);
    }
    slots
        .into_iter()
        .map(|s| s.ok_or_else(|| bad("", "indices are not contiguous from 0")))
        .collect()
}

fn read_channels(media: &Media, pt: u8) -> Result<Vec<ChannelSpec>, StreamError> {
    indexed_lines(media, ATTR_CHANNEL, pt, 3)?
        .into_iter()
        .map(|f| {
            let unit = Unit::from_symbol(f[1]).ok_or_else(|| StreamError::Unit(f[1].into()))?;
            let scale = f[2].parse::<i8>().map_err(|_| StreamError::ChannelLine {
                attr: ATTR_CHANNEL,
                value: f.join(" "),
                reason: "scale is not an integer exponent",
            })?;
            Ok(ChannelSpec {
                name: f[0].into(),
                unit,
                scale,
            })
        })
        .collect()
}

fn read_inputs(media: &Media, pt: u8) -> Result<Vec<String>, StreamError> {
    Ok(indexed_lines(media, ATTR_INPUT, pt, 1)?
        .into_iter()
        .map(|f| f[0].to_string())
        .collect())
}
