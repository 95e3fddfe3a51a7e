//! How an answer narrows an offer (docs/protocol.md 3.1-3.4): the
//! answerer's choice, and the offerer's check of what came back.

use super::stream::{EventFormat, SampleFormat, StreamDescription, StreamError};
use super::terms::{NegotiationError, ReceivePolicy, Role};

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u32, b: u32) -> Option<u32> {
    let (a, b) = (u64::from(a), u64::from(b));
    u32::try_from(a / gcd(a, b).max(1) * b).ok()
}

/// The period the receiver's rate cap leads to: the offered period times
/// the smallest k with `clock / (period * k) <= max_rate`.
fn capped_period(clock: u32, period: u32, max_rate: f64) -> Result<u32, NegotiationError> {
    if !(max_rate.is_finite() && max_rate > 0.0) {
        return Err(NegotiationError::Rate("the cap is not a positive number"));
    }
    let exact = f64::from(clock) / (f64::from(period) * max_rate);
    let mut k = (exact - 1e-9).ceil().max(1.0);
    // Guard against rounding just below the cap's boundary.
    while f64::from(clock) / (f64::from(period) * k) > max_rate * (1.0 + 1e-12) {
        k += 1.0;
    }
    let p = f64::from(period) * k;
    if p > f64::from(i32::MAX) {
        return Err(NegotiationError::Rate("the period would exceed 2^31 ticks"));
    }
    Ok(p as u32)
}

fn keep(wanted: &Option<Vec<String>>, name: &str) -> bool {
    wanted
        .as_ref()
        .is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

pub(super) fn narrow_for_receiver(
    offered: &StreamDescription,
    policy: &ReceivePolicy,
) -> Result<StreamDescription, NegotiationError> {
    let samples = match &offered.samples {
        Some(s) => {
            let channels: Vec<_> = s
                .channels
                .iter()
                .filter(|c| keep(&policy.channels, &c.name))
                .cloned()
                .collect();
            if channels.is_empty() {
                None
            } else {
                let period = match policy.max_rate_hz {
                    Some(cap) => capped_period(offered.clock_rate, s.period, cap)?,
                    None => s.period,
                };
                Some(SampleFormat {
                    payload_type: s.payload_type,
                    period,
                    samples_per_packet: policy.samples_per_packet.unwrap_or(s.samples_per_packet),
                    channels,
                })
            }
        }
        None => None,
    };
    let events = offered.events.as_ref().and_then(|e| {
        let inputs: Vec<_> = e
            .inputs
            .iter()
            .filter(|n| keep(&policy.inputs, n))
            .cloned()
            .collect();
        (!inputs.is_empty()).then_some(EventFormat {
            payload_type: e.payload_type,
            inputs,
        })
    });
    if samples.is_none() && events.is_none() {
        return Err(NegotiationError::NothingSelected);
    }
    Ok(StreamDescription {
        clock_rate: offered.clock_rate,
        config: offered.config,
        samples,
        events,
    })
}

pub(super) fn narrow_for_sender(
    asked: &StreamDescription,
    cap: &StreamDescription,
) -> Result<StreamDescription, NegotiationError> {
    if asked.clock_rate != cap.clock_rate {
        return Err(StreamError::ClockMismatch {
            samples: cap.clock_rate,
            events: asked.clock_rate,
        }
        .into());
    }
    let samples = match (&asked.samples, &cap.samples) {
        (Some(a), Some(c)) => {
            // Asked-for order, our units and scales.
            let channels: Vec<_> = a
                .channels
                .iter()
                .filter_map(|want| {
                    c.channels
                        .iter()
                        .find(|have| have.name.eq_ignore_ascii_case(&want.name))
                })
                .cloned()
                .collect();
            if channels.is_empty() {
                None
            } else {
                // A multiple of both: what was asked and what we can sample.
                let period = lcm(a.period, c.period)
                    .ok_or(NegotiationError::Rate("no common sample period"))?;
                Some(SampleFormat {
                    payload_type: a.payload_type,
                    period,
                    samples_per_packet: a.samples_per_packet,
                    channels,
                })
            }
        }
        _ => None,
    };
    let events = match (&asked.events, &cap.events) {
        (Some(a), Some(c)) => {
            let inputs: Vec<_> = a
                .inputs
                .iter()
                .filter(|n| c.inputs.iter().any(|h| h.eq_ignore_ascii_case(n)))
                .cloned()
                .collect();
            (!inputs.is_empty()).then_some(EventFormat {
                payload_type: a.payload_type,
                inputs,
            })
        }
        _ => None,
    };
    if samples.is_none() && events.is_none() {
        return Err(NegotiationError::NothingSelected);
    }
    Ok(StreamDescription {
        clock_rate: asked.clock_rate,
        config: asked.config,
        samples,
        events,
    })
}

/// The answer may only narrow the offer (docs/protocol.md "Answer rules").
pub(super) fn check_answer(
    offered: &StreamDescription,
    got: &StreamDescription,
    role: Role,
) -> Result<(), NegotiationError> {
    use NegotiationError::AnswerMismatch as M;
    if got.clock_rate != offered.clock_rate {
        return Err(M("the clock rate changed"));
    }
    if got.config != offered.config {
        return Err(M("the cfg number changed"));
    }
    match (&offered.samples, &got.samples) {
        (_, None) => {}
        (None, Some(_)) => return Err(M("samples were not offered")),
        (Some(o), Some(g)) => {
            if g.payload_type != o.payload_type {
                return Err(M("the samples payload type changed"));
            }
            if !g.period.is_multiple_of(o.period) {
                return Err(M("the period is not a multiple of the offered one"));
            }
            for c in &g.channels {
                let Some(oc) = o
                    .channels
                    .iter()
                    .find(|oc| oc.name.eq_ignore_ascii_case(&c.name))
                else {
                    return Err(M("a channel was not offered"));
                };
                // The sender defines units and scales; a receiver's answer
                // must repeat them.
                if role == Role::Sender && (oc.unit != c.unit || oc.scale != c.scale) {
                    return Err(M("a channel's unit or scale changed"));
                }
            }
        }
    }
    match (&offered.events, &got.events) {
        (_, None) => {}
        (None, Some(_)) => return Err(M("events were not offered")),
        (Some(o), Some(g)) => {
            if g.payload_type != o.payload_type {
                return Err(M("the events payload type changed"));
            }
            if !g
                .inputs
                .iter()
                .all(|n| o.inputs.iter().any(|m| m.eq_ignore_ascii_case(n)))
            {
                return Err(M("an input was not offered"));
            }
        }
    }
    Ok(())
}

impl StreamDescription {
    /// This description with the config number a re-offer must carry: one
    /// more than `current`'s when anything else differs, the same otherwise.
    pub fn next_config_after(mut self, current: &StreamDescription) -> Self {
        self.config = current.config;
        if &self != current {
            self.config = current.config.wrapping_add(1);
        }
        self
    }
}
