//! GPIO inputs (door contacts, motion sensors) and the status LED output,
//! through the kernel's sysfs GPIO interface (`sysfs_gpio`).
//!
//! An input is watched by a tokio task woken by the kernel's edge
//! interrupt (`poll(2)` on the `value` file, sysfs_gpio's `async-tokio`
//! stream), debounced, and fed to the event hand-off with the time the
//! edge was seen. The hardware sits behind `InputLine` / `OutputLine` so
//! the logic is tested with fakes and a paused clock.

use crate::config::{Edge, GpioInputConfig, LedConfig};
use crate::handoff::{Event, EventSender};
use crate::status::StatusHub;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("GPIO {pin}: {what}: {source}")]
    Sysfs {
        pin: u32,
        what: &'static str,
        source: sysfs_gpio::Error,
    },
    #[error("GPIO {pin}: the edge stream ended")]
    Closed { pin: u32 },
}

/// An input pin.
pub trait InputLine: Send {
    /// Wait for the next edge interrupt; the logical level read after it.
    fn next_edge(&mut self) -> impl Future<Output = Result<bool, GpioError>> + Send;
    /// The logical level now.
    fn level(&mut self) -> Result<bool, GpioError>;
}

/// An output pin.
pub trait OutputLine: Send {
    fn set(&mut self, on: bool) -> Result<(), GpioError>;
}

/// Leading-edge debouncer: the first edge is reported at once with its
/// own time; edges within `window` after it are contact bounce and are
/// ignored; when the window ends the level is read again, and if it
/// settled elsewhere that change is reported too, so no final state is
/// ever lost. Sans-I/O: time comes in as an argument.
#[derive(Debug, Clone)]
pub struct Debouncer {
    window: Duration,
    reported: Option<bool>,
    lockout_until: Option<Instant>,
}

impl Debouncer {
    /// `initial`: the level at start, when known.
    pub fn new(window: Duration, initial: Option<bool>) -> Self {
        Debouncer {
            window,
            reported: initial,
            lockout_until: None,
        }
    }

    fn report(&mut self, level: bool, now: Instant) -> Option<(bool, Instant)> {
        if self.reported == Some(level) {
            return None;
        }
        self.reported = Some(level);
        if !self.window.is_zero() {
            self.lockout_until = Some(now + self.window);
        }
        Some((level, now))
    }

    /// An edge interrupt with the level read after it.
    pub fn on_edge(&mut self, level: bool, now: Instant) -> Option<(bool, Instant)> {
        if self.lockout_until.is_some_and(|t| now < t) {
            return None;
        }
        self.lockout_until = None;
        self.report(level, now)
    }

    /// When `on_timeout` wants to run (the end of the bounce window).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lockout_until
    }

    /// At the end of the window, with the level read then.
    pub fn on_timeout(&mut self, level: bool, now: Instant) -> Option<(bool, Instant)> {
        if self.lockout_until.is_none_or(|t| now < t) {
            return None;
        }
        self.lockout_until = None;
        self.report(level, now)
    }

    pub fn level(&self) -> Option<bool> {
        self.reported
    }
}

/// Whether `edge` asks for a transition to `level` to be reported.
pub fn wanted(edge: Edge, level: bool) -> bool {
    match edge {
        Edge::Both => true,
        Edge::Rising => level,
        Edge::Falling => !level,
    }
}

/// Watch one input until its line fails; every debounced, wanted edge
/// goes to `events` and to the status hub.
pub async fn watch_input<L: InputLine>(
    index: u16,
    cfg: &GpioInputConfig,
    line: &mut L,
    events: &mut EventSender,
    hub: &StatusHub,
) -> Result<(), GpioError> {
    let initial = line.level()?;
    hub.input_level(usize::from(index), initial);
    let mut deb = Debouncer::new(cfg.debounce, Some(initial));
    loop {
        let result = match deb.poll_timeout() {
            Some(t) => tokio::select! {
                r = line.next_edge() => r.map(|level| deb.on_edge(level, Instant::now())),
                () = tokio::time::sleep_until(t) => line.level().map(|level| deb.on_timeout(level, Instant::now())),
            },
            None => line
                .next_edge()
                .await
                .map(|level| deb.on_edge(level, Instant::now())),
        };
        if let Some((level, at)) = result? {
            hub.input_edge(usize::from(index), level);
            if wanted(cfg.edge, level) {
                tracing::debug!(
                    "input {}: {}",
                    cfg.name,
                    if level { "active" } else { "inactive" }
                );
                events.push(Event {
                    input: index,
                    level,
                    at: at.into_std(),
                });
            }
        }
    }
}

/// A sysfs GPIO input with edge interrupts.
pub struct SysfsInput {
    pin: sysfs_gpio::Pin,
    stream: sysfs_gpio::PinValueStream,
}

impl std::fmt::Debug for SysfsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysfsInput")
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

fn sysfs(pin: u32, what: &'static str) -> impl FnOnce(sysfs_gpio::Error) -> GpioError {
    move |source| GpioError::Sysfs { pin, what, source }
}

/// Export a pin, waiting briefly for udev to make the new files usable.
fn export(pin: u32) -> Result<sysfs_gpio::Pin, GpioError> {
    let p = sysfs_gpio::Pin::new(u64::from(pin));
    p.export().map_err(sysfs(pin, "export"))?;
    // Bounded: 10 tries, 10 ms apart.
    for _ in 0..10 {
        if p.get_direction().is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(p)
}

impl SysfsInput {
    /// Export and configure the pin; must run inside the tokio runtime
    /// (the edge stream registers with its reactor).
    pub fn open(cfg: &GpioInputConfig) -> Result<SysfsInput, GpioError> {
        let n = cfg.pin;
        let pin = export(n)?;
        pin.set_direction(sysfs_gpio::Direction::In)
            .map_err(sysfs(n, "set direction"))?;
        pin.set_active_low(cfg.active_low)
            .map_err(sysfs(n, "set active_low"))?;
        // Both edges always: the debouncer needs to see the level settle
        // either way; `edge` filters what is reported.
        pin.set_edge(sysfs_gpio::Edge::BothEdges)
            .map_err(sysfs(n, "set edge"))?;
        let stream = pin.get_value_stream().map_err(sysfs(n, "open value"))?;
        Ok(SysfsInput { pin, stream })
    }
}

impl InputLine for SysfsInput {
    async fn next_edge(&mut self) -> Result<bool, GpioError> {
        use futures_core::Stream;
        let n = self.pin.get_pin_num() as u32;
        let next =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.stream).poll_next(cx)).await;
        match next {
            Some(Ok(v)) => Ok(v != 0),
            Some(Err(e)) => Err(sysfs(n, "read value")(e)),
            None => Err(GpioError::Closed { pin: n }),
        }
    }

    fn level(&mut self) -> Result<bool, GpioError> {
        let n = self.pin.get_pin_num() as u32;
        self.pin
            .get_value()
            .map(|v| v != 0)
            .map_err(sysfs(n, "read value"))
    }
}

/// A sysfs GPIO output (the status LED).
#[derive(Debug)]
pub struct SysfsOutput {
    pin: sysfs_gpio::Pin,
    n: u32,
}

impl SysfsOutput {
    pub fn open(cfg: &LedConfig) -> Result<SysfsOutput, GpioError> {
        let n = cfg.pin;
        let pin = export(n)?;
        pin.set_active_low(cfg.active_low)
            .map_err(sysfs(n, "set active_low"))?;
        // "low" sets the direction and drives it off in one write, so the
        // LED does not flash at start.
        pin.set_direction(sysfs_gpio::Direction::Low)
            .map_err(sysfs(n, "set direction"))?;
        Ok(SysfsOutput { pin, n })
    }
}

impl OutputLine for SysfsOutput {
    fn set(&mut self, on: bool) -> Result<(), GpioError> {
        self.pin
            .set_value(u8::from(on))
            .map_err(sysfs(self.n, "write value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff;
    use tokio::sync::mpsc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn debouncer_reports_first_edge_ignores_bounce_and_catches_final_level() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(20), Some(false));
        assert_eq!(d.on_edge(true, t0), Some((true, t0)));
        // Bounce inside the window.
        assert_eq!(d.on_edge(false, t0 + ms(2)), None);
        assert_eq!(d.on_edge(true, t0 + ms(4)), None);
        assert_eq!(d.on_edge(false, t0 + ms(6)), None);
        assert_eq!(d.poll_timeout(), Some(t0 + ms(20)));
        assert_eq!(d.on_timeout(false, t0 + ms(19)), None);
        // It settled low: a short pulse is still reported both ways.
        assert_eq!(d.on_timeout(false, t0 + ms(20)), Some((false, t0 + ms(20))));
        assert_eq!(d.poll_timeout(), Some(t0 + ms(40)));
        assert_eq!(d.on_timeout(false, t0 + ms(40)), None);
        assert_eq!(d.poll_timeout(), None);
        // A spurious interrupt with no change reports nothing.
        assert_eq!(d.on_edge(false, t0 + ms(100)), None);
        assert_eq!(d.level(), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_window_reports_every_change() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO, None);
        assert!(d.on_edge(true, t0).is_some());
        assert!(d.on_edge(false, t0).is_some());
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn edge_filter() {
        assert!(wanted(Edge::Both, false) && wanted(Edge::Both, true));
        assert!(wanted(Edge::Rising, true) && !wanted(Edge::Rising, false));
        assert!(wanted(Edge::Falling, false) && !wanted(Edge::Falling, true));
    }

    /// A line driven by the test: each message is an edge with the level
    /// after it; `level()` returns the last one.
    struct FakeLine {
        edges: mpsc::UnboundedReceiver<bool>,
        level: bool,
    }

    impl InputLine for FakeLine {
        async fn next_edge(&mut self) -> Result<bool, GpioError> {
            match self.edges.recv().await {
                Some(l) => {
                    self.level = l;
                    Ok(l)
                }
                None => Err(GpioError::Closed { pin: 5 }),
            }
        }
        fn level(&mut self) -> Result<bool, GpioError> {
            Ok(self.level)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watched_input_feeds_debounced_events_with_edge_times() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut line = FakeLine {
            edges: rx,
            level: false,
        };
        let cfg = GpioInputConfig {
            name: "door".into(),
            pin: 5,
            edge: Edge::Both,
            debounce: ms(20),
            active_low: false,
        };
        let (mut senders, mut receiver) = handoff::events(1, 16);
        let hub = StatusHub::new();
        hub.set_inputs(vec![("door".into(), 5)]);
        let t0 = Instant::now();
        let driver = async {
            // Door opens with bounce at t0+10ms, closes cleanly at t0+100ms.
            tokio::time::sleep(ms(10)).await;
            for l in [true, false, true, false, true] {
                tx.send(l).unwrap();
                tokio::time::sleep(ms(1)).await;
            }
            tokio::time::sleep(ms(85)).await;
            tx.send(false).unwrap();
            tokio::time::sleep(ms(50)).await;
            drop(tx);
        };
        let mut sender = senders.remove(0);
        let (_, res) = tokio::join!(driver, watch_input(0, &cfg, &mut line, &mut sender, &hub));
        assert!(matches!(res, Err(GpioError::Closed { pin: 5 })));
        let got: Vec<(bool, u128)> = std::iter::from_fn(|| receiver.pop())
            .map(|e| (e.level, (e.at - t0.into_std()).as_millis()))
            .collect();
        // Open at the first edge, closed at its own edge; bounce ignored.
        assert_eq!(got, [(true, 10), (false, 100)]);
        let s = hub.snapshot();
        assert_eq!((s.inputs[0].level, s.inputs[0].edges), (Some(false), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn rising_only_input_tracks_but_does_not_report_falling() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut line = FakeLine {
            edges: rx,
            level: false,
        };
        let cfg = GpioInputConfig {
            name: "pir".into(),
            pin: 6,
            edge: Edge::Rising,
            debounce: Duration::ZERO,
            active_low: false,
        };
        let (mut senders, mut receiver) = handoff::events(1, 16);
        let hub = StatusHub::new();
        for l in [true, false, true] {
            tx.send(l).unwrap();
        }
        drop(tx);
        let _ = watch_input(0, &cfg, &mut line, &mut senders[0], &hub).await;
        let levels: Vec<bool> = std::iter::from_fn(|| receiver.pop())
            .map(|e| e.level)
            .collect();
        assert_eq!(levels, [true, true]);
    }
}
