//! Status LED blink codes: what a technician sees without a laptop.
//!
//! | state         | pattern                                            |
//! |---------------|----------------------------------------------------|
//! | starting      | on                                                 |
//! | no config     | one 100 ms flash every 2 s                         |
//! | registering   | 2 Hz blink (250 ms on, 250 ms off)                 |
//! | registered    | 0.5 Hz blink (1 s on, 1 s off)                     |
//! | streaming     | on, with a 100 ms off blip every 2 s               |
//! | config error  | error code 2: two flashes, pause                   |
//! | error         | error code 3: three flashes, pause                 |

use crate::gpio::{GpioError, OutputLine};
use crate::status::AgentState;
use std::time::Duration;
use tokio::sync::watch;

/// One step of a pattern: LED on or off for `ms` milliseconds.
pub type Step = (bool, u64);

const ON: &[Step] = &[(true, 1000)];
const NO_CONFIG: &[Step] = &[(true, 100), (false, 1900)];
const REGISTERING: &[Step] = &[(true, 250), (false, 250)];
const REGISTERED: &[Step] = &[(true, 1000), (false, 1000)];
const STREAMING: &[Step] = &[(true, 1900), (false, 100)];
const CODE_2: &[Step] = &[(true, 200), (false, 300), (true, 200), (false, 1300)];
const CODE_3: &[Step] = &[
    (true, 200),
    (false, 300),
    (true, 200),
    (false, 300),
    (true, 200),
    (false, 1300),
];

/// The repeating pattern for a state.
pub fn pattern(state: AgentState) -> &'static [Step] {
    match state {
        AgentState::Starting => ON,
        AgentState::NoConfig => NO_CONFIG,
        AgentState::Registering => REGISTERING,
        AgentState::Registered => REGISTERED,
        AgentState::Streaming => STREAMING,
        AgentState::ConfigError => CODE_2,
        AgentState::Error => CODE_3,
    }
}

/// Number of flashes per cycle (the "error code" a technician counts).
pub fn flashes(state: AgentState) -> usize {
    pattern(state).iter().filter(|(on, _)| *on).count()
}

/// Drive the LED from the daemon state until `stop` changes or either
/// sender is gone, then switch it off. A failing write is logged once and
/// retried on the next step: the LED never stops the agent.
pub async fn run<O: OutputLine>(
    mut out: O,
    mut state: watch::Receiver<AgentState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut set = |out: &mut O, on: bool| match out.set(on) {
        Ok(()) => failing = false,
        Err(e) => {
            if !failing {
                tracing::warn!("status LED: {e}");
            }
            failing = true;
        }
    };
    'outer: loop {
        let steps = pattern(*state.borrow_and_update());
        for (on, ms) in steps.iter().cycle() {
            set(&mut out, *on);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(*ms)) => {}
                changed = state.changed() => {
                    if changed.is_err() {
                        break 'outer;
                    }
                    continue 'outer;
                }
                _ = stop.changed() => break 'outer,
            }
        }
    }
    set(&mut out, false);
}

/// An output that goes nowhere, for boards without a status LED.
#[derive(Debug, Default)]
pub struct NoLed;

impl OutputLine for NoLed {
    fn set(&mut self, _on: bool) -> Result<(), GpioError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(u128, bool)>>>, Option<Instant>);

    impl OutputLine for Recorder {
        fn set(&mut self, on: bool) -> Result<(), GpioError> {
            let t0 = *self.1.get_or_insert_with(Instant::now);
            self.0.lock().unwrap().push((t0.elapsed().as_millis(), on));
            Ok(())
        }
    }

    #[test]
    fn every_state_has_a_distinct_pattern_and_error_codes_count_flashes() {
        let all = [
            AgentState::Starting,
            AgentState::NoConfig,
            AgentState::Registering,
            AgentState::Registered,
            AgentState::Streaming,
            AgentState::ConfigError,
            AgentState::Error,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(pattern(*a), pattern(*b), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(flashes(AgentState::ConfigError), 2);
        assert_eq!(flashes(AgentState::Error), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn driver_follows_state_changes_and_switches_off_at_the_end() {
        let (tx, rx) = watch::channel(AgentState::Registering);
        let (stop_tx, stop_rx) = watch::channel(false);
        let rec = Recorder::default();
        let log = rec.0.clone();
        let task = tokio::spawn(run(rec, rx, stop_rx));
        tokio::time::sleep(Duration::from_millis(600)).await;
        tx.send_replace(AgentState::ConfigError);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        stop_tx.send_replace(true);
        task.await.unwrap();
        let got = log.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                // 2 Hz while registering
                (0, true),
                (250, false),
                (500, true),
                // code 2 from the change at 600 ms
                (600, true),
                (800, false),
                (1100, true),
                (1300, false),
                (2600, true),
                // stopped at 2700 ms: off
                (2700, false),
            ]
        );
    }
}
