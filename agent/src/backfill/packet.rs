//! Spooled records to backfill packets (docs/protocol.md 11.6): samples
//! placed under the current description's channels by name (a channel
//! with no reading then is MISSING), consecutive runs merged into one
//! packet, each edge in a packet whose instant is the edge's (11.2).

use crate::spool::{LayoutChannel, Record, SampleRun};
use crate::stream::layout_id;
use sipsensor_protocol::{
    EventRecord, MISSING_SAMPLE, RtpSendError, RtpSender, SampleInstant, StreamDescription,
    encode_events, encode_samples,
};
use std::collections::{HashMap, VecDeque};

/// Backfill packets stay under this many bytes, below a path MTU, so a
/// long backfill is few packets and no fragments.
const MAX_PACKET: usize = 1200;
/// RTP header (12) and the sample instant's extension block (4 + 20).
const HEADER: usize = 36;
/// The samples payload's own header (docs/protocol.md 5.1).
const PAYLOAD_HEADER: usize = 4;

/// Rows of samples for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    first_ns: u64,
    step_ns: u64,
    channels: usize,
    /// Row-major under the current description.
    values: Vec<i32>,
}

/// One backfill packet's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unit {
    Samples(Block),
    Edge {
        at_ns: u64,
        input: u8,
        level: bool,
        serial: u16,
    },
}

impl Unit {
    /// The newest instant in it.
    pub fn last_ns(&self) -> u64 {
        match self {
            Unit::Samples(b) => {
                let rows = b.values.len().checked_div(b.channels).unwrap_or(0) as u64;
                b.first_ns
                    .saturating_add(rows.saturating_sub(1).saturating_mul(b.step_ns))
            }
            Unit::Edge { at_ns, .. } => *at_ns,
        }
    }

    /// Write the packet with `rtp`'s SSRC and next sequence number.
    pub fn write(
        &self,
        rtp: &mut RtpSender,
        buf: &mut [u8],
        payload_type: u8,
        instant_id: u8,
        desc: &StreamDescription,
    ) -> Result<usize, RtpSendError> {
        let config = desc.config;
        let ns_per_tick = 1_000_000_000 / u64::from(desc.clock_rate.max(1));
        match self {
            Unit::Samples(block) => {
                let stamp = SampleInstant {
                    first_ns: block.first_ns,
                    step_ns: block.step_ns,
                }
                .encode();
                let ts = rtp.timestamp(tick(block.first_ns, desc.clock_rate));
                rtp.write_extended(buf, payload_type, false, ts, &[(instant_id, &stamp)], |b| {
                    encode_samples(b, config, block.channels, &block.values)
                })
            }
            Unit::Edge {
                at_ns,
                input,
                level,
                serial,
            } => {
                // Offset 0: the edge is at the packet's instant (11.2).
                let stamp = SampleInstant {
                    first_ns: *at_ns,
                    step_ns: ns_per_tick,
                }
                .encode();
                let inputs = desc.events.as_ref().map_or(0, |e| e.inputs.len());
                let record = EventRecord {
                    serial: *serial,
                    input: *input,
                    state: *level,
                    offset: 0,
                };
                let states = u64::from(*level) << input;
                let ts = rtp.timestamp(tick(*at_ns, desc.clock_rate));
                rtp.write_extended(buf, payload_type, false, ts, &[(instant_id, &stamp)], |b| {
                    encode_events(b, config, inputs, states, &[record])
                })
            }
        }
    }
}

/// Clock ticks since the Unix epoch at `ns`: the informative timestamp.
fn tick(ns: u64, clock_rate: u32) -> u64 {
    (u128::from(ns) * u128::from(clock_rate) / 1_000_000_000) as u64
}

/// Turns records into units under the current description.
#[derive(Debug)]
pub(super) struct Units {
    pub desc: StreamDescription,
    /// GPIO inputs in the config's order.
    inputs: Vec<String>,
    layouts: HashMap<u32, Vec<LayoutChannel>>,
    current_layout: u32,
    serial: u16,
}

impl Units {
    pub fn new(
        desc: StreamDescription,
        inputs: Vec<String>,
        layouts: HashMap<u32, Vec<LayoutChannel>>,
    ) -> Units {
        Units {
            current_layout: layout_id(&desc),
            desc,
            inputs,
            layouts,
            serial: 0,
        }
    }

    /// The unit that starts with `record`, with the runs after it in
    /// `queue` that continue it merged in; only instants in `(after,
    /// end)`. `Ok(None)`: nothing of it is in that range. `Err`: it cannot
    /// be placed under the current description (why).
    pub fn unit(
        &mut self,
        record: Record,
        queue: &mut VecDeque<Record>,
        after: u64,
        end: u64,
    ) -> Result<Option<Unit>, String> {
        match record {
            Record::Edge(e) => {
                let at = u64::try_from(e.at_ns).unwrap_or(0);
                // At `after` itself it may be the instant of the row just
                // sent before it (a copy of a committed one is harmless).
                if at < after || at >= end {
                    return Ok(None);
                }
                let name = self
                    .inputs
                    .get(usize::from(e.input))
                    .ok_or_else(|| format!("GPIO input {} is not configured", e.input))?;
                let input = self
                    .desc
                    .events
                    .as_ref()
                    .and_then(|f| f.inputs.iter().position(|i| i.eq_ignore_ascii_case(name)))
                    .and_then(|j| u8::try_from(j).ok())
                    .ok_or_else(|| format!("input {name} is not in the current description"))?;
                self.serial = self.serial.wrapping_add(1);
                Ok(Some(Unit::Edge {
                    at_ns: at,
                    input,
                    level: e.level,
                    serial: self.serial,
                }))
            }
            Record::Samples(run) => self.samples(run, queue, after, end),
        }
    }

    fn samples(
        &self,
        run: SampleRun,
        queue: &mut VecDeque<Record>,
        after: u64,
        end: u64,
    ) -> Result<Option<Unit>, String> {
        let Some(format) = &self.desc.samples else {
            return Err("the current description has no sampled channels".into());
        };
        let channels = format.channels.len();
        let place = self.placement(&run)?;
        // A run always goes whole (it was one live packet); runs after it
        // are merged in while the packet stays under MAX_PACKET.
        let max_rows = ((MAX_PACKET - HEADER - PAYLOAD_HEADER) / (4 * channels.max(1)))
            .max(run.count())
            .clamp(1, 255);
        let step = u64::from(run.spacing_ns);
        // Instant order across kinds (11.6): an edge inside the run goes
        // between its rows, so the run is cut after the rows at or before
        // it and the rest queued behind it.
        let edge = queue
            .iter()
            .filter_map(|r| match r {
                Record::Edge(e) => u64::try_from(e.at_ns).ok().filter(|&at| at >= after),
                Record::Samples(_) => None,
            })
            .min()
            .unwrap_or(u64::MAX);
        let mut rows = Rows {
            place: &place,
            step,
            after,
            edge,
            end,
            max_rows,
            values: Vec::new(),
            first: None,
            next_at: 0,
        };
        let mut rest = rows.add(&run);
        let Some(first_ns) = rows.first else {
            requeue(queue, rest);
            return Ok(None);
        };
        // Merge the runs that continue this one exactly, while they fit.
        while rest.is_none()
            && let Some(Record::Samples(n)) = queue.front()
        {
            let continues = n.stream == run.stream
                && n.spacing_ns == run.spacing_ns
                && n.channels == run.channels
                && u64::try_from(n.first_ns).ok() == Some(rows.next_at)
                && rows.next_at <= edge
                && rows.next_at < end
                && rows.count() < max_rows;
            if !continues {
                break;
            }
            if let Some(Record::Samples(n)) = queue.pop_front() {
                rest = rows.add(&n);
            }
        }
        requeue(queue, rest);
        let values = rows.values;
        Ok(Some(Unit::Samples(Block {
            first_ns,
            step_ns: step,
            channels,
            values,
        })))
    }

    /// For each current channel, the column of `run` that holds it.
    fn placement(&self, run: &SampleRun) -> Result<Vec<Option<usize>>, String> {
        let Some(format) = &self.desc.samples else {
            return Err("the current description has no sampled channels".into());
        };
        let width = usize::from(run.channels);
        if run.stream == self.current_layout && width == format.channels.len() {
            return Ok((0..width).map(Some).collect());
        }
        let old = self
            .layouts
            .get(&run.stream)
            .filter(|c| c.len() == width)
            .ok_or_else(|| format!("channel layout {:08x} is not known", run.stream))?;
        let place: Vec<Option<usize>> = format
            .channels
            .iter()
            .map(|c| {
                old.iter().position(|o| {
                    o.name.eq_ignore_ascii_case(&c.name)
                        && o.unit == c.unit.symbol()
                        && o.scale == c.scale
                })
            })
            .collect();
        if place.iter().all(Option::is_none) {
            return Err(format!(
                "none of the channels of layout {:08x} is in the current description",
                run.stream
            ));
        }
        Ok(place)
    }
}

/// Rows of runs under the current description.
struct Rows<'a> {
    place: &'a [Option<usize>],
    step: u64,
    after: u64,
    /// Rows after this instant wait for the edge at it to go first.
    edge: u64,
    /// Rows from here on went live.
    end: u64,
    max_rows: usize,
    values: Vec<i32>,
    first: Option<u64>,
    /// The instant a continuing run must start at.
    next_at: u64,
}

impl Rows<'_> {
    fn count(&self) -> usize {
        self.values.len().checked_div(self.place.len()).unwrap_or(0)
    }

    /// Take the rows of `run` in `(after, min(edge, end))` while they
    /// fit; the rows from the first one not taken on (because of the
    /// edge or the size) as a run of their own.
    fn add(&mut self, run: &SampleRun) -> Option<SampleRun> {
        let width = usize::from(run.channels).max(1);
        let start = u64::try_from(run.first_ns).unwrap_or(0);
        for (k, row) in run.values.chunks_exact(width).enumerate() {
            let at = start.saturating_add((k as u64).saturating_mul(self.step));
            if at <= self.after {
                continue;
            }
            if at >= self.end {
                return None;
            }
            if at > self.edge || self.count() >= self.max_rows {
                return Some(SampleRun {
                    first_ns: i64::try_from(at).unwrap_or(i64::MAX),
                    values: run.values.get(k * width..).unwrap_or_default().to_vec(),
                    ..run.clone()
                });
            }
            self.first.get_or_insert(at);
            self.next_at = at.saturating_add(self.step);
            let place = self.place;
            self.values.extend(place.iter().map(|p| {
                p.and_then(|i| row.get(i).copied())
                    .unwrap_or(MISSING_SAMPLE)
            }));
        }
        None
    }
}

/// Put the rest of a run back in instant order (after the edge that cut
/// it).
fn requeue(queue: &mut VecDeque<Record>, rest: Option<SampleRun>) {
    let Some(rest) = rest else {
        return;
    };
    let at = queue
        .iter()
        .position(|r| r.span().0 > rest.first_ns)
        .unwrap_or(queue.len());
    queue.insert(at, Record::Samples(rest));
}

/// The current description's channels as the spool remembers them.
pub fn layout_channels(desc: &StreamDescription) -> Vec<LayoutChannel> {
    desc.samples.as_ref().map_or_else(Vec::new, |s| {
        s.channels
            .iter()
            .map(|c| LayoutChannel {
                name: c.name.clone(),
                unit: c.unit.symbol().to_owned(),
                scale: c.scale,
            })
            .collect()
    })
}
