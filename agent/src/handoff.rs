//! Hand-off from the sensor I/O threads to the real-time sender.
//!
//! The sender must never wait for a sensor: at each departure it takes
//! what the sensors have and marks the rest missing. So nothing here
//! blocks or allocates on the reading side:
//!
//! * Samples: one triple buffer per sensor (`triple_buffer` crate,
//!   wait-free for both sides). The I/O thread publishes each reading; the
//!   sender reads the latest one. A reading older than the sensor's
//!   `stale_after` counts as missing, so a hung sensor shows up as a gap
//!   in the stream instead of a value frozen forever.
//! * Events (GPIO edges): one bounded wait-free SPSC ring per input
//!   (`rtrb`), plus an optional thread to unpark so the sender can send an
//!   edge at once instead of at the next tick. A full ring drops the event
//!   and counts it: events are never silently lost.

use crate::sensor::Reading;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// What one triple-buffer slot holds.
#[derive(Debug, Clone)]
struct Slot {
    /// 0 = nothing published yet.
    seq: u64,
    at: Option<Instant>,
    values: Vec<Option<f64>>,
}

/// Sensor side of a sample hand-off.
#[derive(Debug)]
pub struct SampleWriter {
    input: triple_buffer::Input<Slot>,
    seq: u64,
}

/// Sender side of a sample hand-off.
#[derive(Debug)]
pub struct SampleReader {
    output: triple_buffer::Output<Slot>,
    stale_after: Duration,
    last_seq: u64,
}

/// How fresh the values `SampleReader::sample` returned are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A reading not seen at the previous call.
    New,
    /// The same reading as last time, still within `stale_after`.
    Held,
    /// The latest reading is older than `stale_after`: values are missing.
    Stale,
    /// Nothing has been published yet: values are missing.
    Empty,
}

/// A hand-off for a sensor with `channels` channels.
pub fn samples(channels: usize, stale_after: Duration) -> (SampleWriter, SampleReader) {
    let (input, output) = triple_buffer::triple_buffer(&Slot {
        seq: 0,
        at: None,
        values: vec![None; channels],
    });
    (
        SampleWriter { input, seq: 0 },
        SampleReader {
            output,
            stale_after,
            last_seq: 0,
        },
    )
}

impl SampleWriter {
    /// Publish a reading. Wait-free; copies into a pre-allocated slot (a
    /// reading with more values than channels is truncated, fewer are
    /// padded with `None`).
    pub fn publish(&mut self, reading: &Reading) {
        self.seq += 1;
        let slot = self.input.input_buffer_mut();
        slot.seq = self.seq;
        slot.at = Some(reading.at);
        for (i, v) in slot.values.iter_mut().enumerate() {
            *v = reading.values.get(i).copied().flatten();
        }
        self.input.publish();
    }

    /// Readings published so far.
    pub fn published(&self) -> u64 {
        self.seq
    }
}

impl SampleReader {
    /// Copy the latest values into `out` (missing ones as `None`). Wait-free
    /// and allocation-free: safe on the real-time thread.
    pub fn sample(&mut self, now: Instant, out: &mut [Option<f64>]) -> Freshness {
        let slot = self.output.read();
        let state = match slot.at {
            None => Freshness::Empty,
            Some(at) if now.saturating_duration_since(at) > self.stale_after => Freshness::Stale,
            Some(_) if slot.seq != self.last_seq => Freshness::New,
            Some(_) => Freshness::Held,
        };
        self.last_seq = slot.seq;
        let fresh = matches!(state, Freshness::New | Freshness::Held);
        for (i, o) in out.iter_mut().enumerate() {
            *o = if fresh {
                slot.values.get(i).copied().flatten()
            } else {
                None
            };
        }
        state
    }

    /// Timestamp of the latest reading, if any.
    pub fn latest_at(&mut self) -> Option<Instant> {
        self.output.read().at
    }
}

/// The stream's channels gathered from several sensors' hand-offs.
#[derive(Debug)]
pub struct Board {
    readers: Vec<SampleReader>,
    scratch: Vec<Vec<Option<f64>>>,
    /// Stream channel -> (sensor, channel).
    map: Vec<(usize, usize)>,
    state: Vec<Freshness>,
}

/// Counts from one `Board::sample` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoardSample {
    /// Stream channels with a value.
    pub present: usize,
    /// Stream channels without one (stale, empty or a channel error).
    pub missing: usize,
}

impl Board {
    /// `readers[i]` serves sensor `i` with `channels[i]` channels; `map`
    /// lists the stream's channels as (sensor, channel).
    pub fn new(readers: Vec<SampleReader>, channels: &[usize], map: Vec<(usize, usize)>) -> Board {
        let scratch = channels.iter().map(|n| vec![None; *n]).collect();
        let state = vec![Freshness::Empty; readers.len()];
        Board {
            readers,
            scratch,
            map,
            state,
        }
    }

    /// Change the stream's channels (after a re-INVITE). Allocates; call it
    /// off the hot path.
    pub fn set_map(&mut self, map: Vec<(usize, usize)>) {
        self.map = map;
    }

    pub fn channels(&self) -> usize {
        self.map.len()
    }

    /// Fill `out` (one entry per stream channel) with what the sensors
    /// have at `now`. Wait-free and allocation-free.
    pub fn sample(&mut self, now: Instant, out: &mut [Option<f64>]) -> BoardSample {
        for ((r, buf), st) in self
            .readers
            .iter_mut()
            .zip(self.scratch.iter_mut())
            .zip(self.state.iter_mut())
        {
            *st = r.sample(now, buf);
        }
        let mut counts = BoardSample::default();
        for (o, (s, c)) in out.iter_mut().zip(self.map.iter()) {
            *o = self
                .scratch
                .get(*s)
                .and_then(|b| b.get(*c))
                .copied()
                .flatten();
            if o.is_some() {
                counts.present += 1;
            } else {
                counts.missing += 1;
            }
        }
        counts
    }

    /// Freshness of each sensor at the last `sample`.
    pub fn sensor_state(&self) -> &[Freshness] {
        &self.state
    }
}

/// A debounced edge on a GPIO input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index of the input in `gpio.inputs`.
    pub input: u16,
    /// Logical level after the edge (active_low already applied).
    pub level: bool,
    /// When the edge was seen.
    pub at: Instant,
}

/// Wakes the consumer thread when an event arrives.
#[derive(Debug, Default)]
pub struct Wake {
    /// A mutex, not a `OnceLock`: each real-time sender (one per session)
    /// registers its own thread, and the receiver outlives them. Only the
    /// producers and `register` take it, never the consumer's hot path.
    thread: Mutex<Option<Thread>>,
}

impl Wake {
    /// The consumer registers itself before it starts waiting; a later
    /// registration replaces the earlier one.
    pub fn register(&self, t: Thread) {
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    pub fn wake(&self) {
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }
}

/// Producer side for one input.
#[derive(Debug)]
pub struct EventSender {
    producer: rtrb::Producer<Event>,
    wake: Arc<Wake>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Queue an event and wake the consumer. `false` when the ring was full
    /// and the event was dropped (and counted).
    pub fn push(&mut self, e: Event) -> bool {
        let ok = self.producer.push(e).is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.wake.wake();
        ok
    }
}

/// Consumer side: all inputs' rings.
#[derive(Debug)]
pub struct EventReceiver {
    consumers: Vec<rtrb::Consumer<Event>>,
    wake: Arc<Wake>,
    dropped: Arc<AtomicU64>,
}

impl EventReceiver {
    /// The oldest queued event over all inputs, if any. Wait-free.
    pub fn pop(&mut self) -> Option<Event> {
        let mut best: Option<(usize, Instant)> = None;
        for (i, c) in self.consumers.iter().enumerate() {
            if let Ok(e) = c.peek()
                && best.is_none_or(|(_, at)| e.at < at)
            {
                best = Some((i, e.at));
            }
        }
        let (i, _) = best?;
        self.consumers.get_mut(i)?.pop().ok()
    }

    /// The thread to unpark when events arrive.
    pub fn wake(&self) -> &Arc<Wake> {
        &self.wake
    }

    /// Events dropped because a ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One ring of `capacity` events per input.
pub fn events(inputs: usize, capacity: usize) -> (Vec<EventSender>, EventReceiver) {
    let wake = Arc::new(Wake::default());
    let dropped = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..inputs {
        let (p, c) = rtrb::RingBuffer::new(capacity);
        senders.push(EventSender {
            producer: p,
            wake: wake.clone(),
            dropped: dropped.clone(),
        });
        consumers.push(c);
    }
    (
        senders,
        EventReceiver {
            consumers,
            wake,
            dropped,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, v: &[f64]) -> Reading {
        Reading {
            at,
            values: v.iter().copied().map(Some).collect(),
        }
    }

    #[test]
    fn reader_sees_new_held_stale_and_empty() {
        let (mut w, mut r) = samples(2, Duration::from_millis(100));
        let t0 = Instant::now();
        let mut out = [Some(9.0); 2];
        assert_eq!(r.sample(t0, &mut out), Freshness::Empty);
        assert_eq!(out, [None, None]);
        w.publish(&reading(t0, &[1.0, 2.0]));
        assert_eq!(
            r.sample(t0 + Duration::from_millis(10), &mut out),
            Freshness::New
        );
        assert_eq!(out, [Some(1.0), Some(2.0)]);
        assert_eq!(
            r.sample(t0 + Duration::from_millis(50), &mut out),
            Freshness::Held
        );
        assert_eq!(out, [Some(1.0), Some(2.0)]);
        assert_eq!(
            r.sample(t0 + Duration::from_millis(101), &mut out),
            Freshness::Stale
        );
        assert_eq!(out, [None, None]);
        // A reading with a failed channel and one value too many.
        w.publish(&Reading {
            at: t0 + Duration::from_millis(120),
            values: vec![None, Some(5.0), Some(6.0)],
        });
        assert_eq!(
            r.sample(t0 + Duration::from_millis(130), &mut out),
            Freshness::New
        );
        assert_eq!(out, [None, Some(5.0)]);
        assert_eq!(w.published(), 2);
        assert_eq!(r.latest_at(), Some(t0 + Duration::from_millis(120)));
    }

    #[test]
    fn a_sensor_that_never_publishes_does_not_block_the_reader() {
        // The writer is alive but silent (a hung read): the reader keeps
        // answering "missing" at every tick.
        let (_w, mut r) = samples(1, Duration::from_millis(10));
        let t0 = Instant::now();
        let mut out = [None];
        for k in 0..1000 {
            assert_eq!(
                r.sample(t0 + Duration::from_millis(k), &mut out),
                Freshness::Empty
            );
        }
    }

    #[test]
    fn readings_are_never_torn_across_threads() {
        let (mut w, mut r) = samples(8, Duration::from_secs(60));
        let t0 = Instant::now();
        let writer = std::thread::spawn(move || {
            for k in 0..20_000u32 {
                w.publish(&reading(t0, &[f64::from(k); 8]));
            }
        });
        let mut out = [None; 8];
        let mut last = -1.0;
        for _ in 0..20_000 {
            if r.sample(t0, &mut out) != Freshness::Empty {
                let first = out[0].unwrap();
                assert!(out.iter().all(|v| *v == Some(first)), "torn: {out:?}");
                assert!(first >= last, "went back: {first} < {last}");
                last = first;
            }
        }
        writer.join().unwrap();
        r.sample(t0, &mut out);
        assert_eq!(out[0], Some(19_999.0));
    }

    #[test]
    fn board_maps_stream_channels_and_counts_missing() {
        let (mut w0, r0) = samples(2, Duration::from_millis(100));
        let (_w1, r1) = samples(1, Duration::from_millis(100));
        let mut b = Board::new(vec![r0, r1], &[2, 1], vec![(0, 1), (1, 0), (0, 0)]);
        let t0 = Instant::now();
        w0.publish(&reading(t0, &[10.0, 11.0]));
        let mut out = [None; 3];
        let c = b.sample(t0, &mut out);
        assert_eq!(out, [Some(11.0), None, Some(10.0)]);
        assert_eq!(
            c,
            BoardSample {
                present: 2,
                missing: 1
            }
        );
        assert_eq!(b.sensor_state(), [Freshness::New, Freshness::Empty]);
        b.set_map(vec![(0, 0)]);
        assert_eq!(b.channels(), 1);
        let mut one = [None];
        b.sample(t0, &mut one);
        assert_eq!(one, [Some(10.0)]);
    }

    #[test]
    fn events_come_out_oldest_first_and_overflow_is_counted() {
        let (mut tx, mut rx) = events(2, 2);
        let t0 = Instant::now();
        let ev = |input, ms| Event {
            input,
            level: true,
            at: t0 + Duration::from_millis(ms),
        };
        assert!(tx[1].push(ev(1, 1)));
        assert!(tx[0].push(ev(0, 2)));
        assert!(tx[0].push(ev(0, 3)));
        assert!(!tx[0].push(ev(0, 4)));
        assert_eq!(rx.dropped(), 1);
        let order: Vec<u64> = std::iter::from_fn(|| rx.pop())
            .map(|e| (e.at - t0).as_millis() as u64)
            .collect();
        assert_eq!(order, [1, 2, 3]);
    }

    #[test]
    fn a_later_registration_replaces_the_earlier_one() {
        // Each session's sender thread registers anew on the same receiver.
        let (_tx, rx) = events(1, 4);
        let registered = |w: &Wake| w.thread.lock().unwrap().as_ref().map(Thread::id);
        let first = std::thread::spawn(|| ());
        let second = std::thread::spawn(|| ());
        rx.wake().register(first.thread().clone());
        assert_eq!(registered(rx.wake()), Some(first.thread().id()));
        rx.wake().register(second.thread().clone());
        assert_eq!(registered(rx.wake()), Some(second.thread().id()));
        first.join().unwrap();
        second.join().unwrap();
    }

    #[test]
    fn an_event_unparks_the_registered_consumer() {
        let (mut tx, rx) = events(1, 4);
        let wake = rx.wake().clone();
        let consumer = std::thread::spawn(move || {
            let mut rx = rx;
            // Bounded: 200 waits of at most 50 ms.
            for _ in 0..200 {
                if let Some(e) = rx.pop() {
                    return Some(e.level);
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
            None
        });
        wake.register(consumer.thread().clone());
        tx[0].push(Event {
            input: 0,
            level: false,
            at: Instant::now(),
        });
        assert_eq!(consumer.join().unwrap(), Some(false));
    }
}
