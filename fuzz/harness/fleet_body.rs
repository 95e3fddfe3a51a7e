//! The fleet-update body (docs/protocol.md 12.2-12.4), as a sensor reads a
//! SUBSCRIBE's and a collector a NOTIFY's: whatever is accepted writes a
//! body that reads back the same, and nothing panics.

use sipsensor_protocol::fleet::{FleetState, FleetWant, MAX_BODY};

pub fn run(data: &[u8]) {
    if let Ok(state) = FleetState::parse(data) {
        let body = state
            .to_body()
            .unwrap_or_else(|e| panic!("an accepted state does not write: {e}: {state:?}"));
        assert!(body.len() <= MAX_BODY);
        assert_eq!(FleetState::parse(&body).as_ref(), Ok(&state));
    }
    if let Ok(Some(want)) = FleetWant::parse(data) {
        let body = want
            .to_body()
            .unwrap_or_else(|e| panic!("an accepted want does not write: {e}: {want:?}"));
        assert!(body.len() <= MAX_BODY);
        assert_eq!(FleetWant::parse(&body), Ok(Some(want)));
    }
}
