//! The user agent's own registration (RFC 3261 10.2): a
//! [`RegistrationClient`] whose REGISTERs travel through our transaction
//! layer and whose events reach the TU as [`UaEvent::Registration`].

use std::time::Instant;

use super::*;
use crate::sip::registration::{RegistrationClient, RegistrationConfig, RegistrationState};

impl UserAgent {
    /// Starts registering (and keeps refreshing) with `config`. A running
    /// registration is replaced.
    pub fn register(&mut self, config: RegistrationConfig, now: Instant) -> Result<(), UaError> {
        // A child generator: seeded tests stay reproducible, entropy-seeded
        // agents stay unpredictable.
        let seed = (u64::from(self.ids.u32()) << 32) | u64::from(self.ids.u32());
        let mut client = RegistrationClient::new(config, IdGenerator::seeded(seed))
            .map_err(UaError::Registration)?;
        client.start(now);
        self.registration = Some(client);
        self.pump(now);
        Ok(())
    }

    /// Removes our binding (Expires: 0, 10.2.2); ends in
    /// `RegistrationEvent::Unregistered`.
    pub fn unregister(&mut self, now: Instant) {
        if let Some(client) = self.registration.as_mut() {
            client.stop(now);
        }
        self.pump(now);
    }

    /// New credentials for the registration (a fixed secrets file): a
    /// registration stopped by a wrong password starts again.
    pub fn set_registration_credentials(
        &mut self,
        username: &str,
        password: Password,
        now: Instant,
    ) {
        if let Some(client) = self.registration.as_mut() {
            client.set_credentials(username, password, now);
        }
        self.pump(now);
    }

    pub fn registration_state(&self) -> Option<RegistrationState> {
        self.registration.as_ref().map(|c| c.state())
    }

    pub fn is_registered(&self, now: Instant) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|c| c.is_registered(now))
    }

    /// Sends the client's REGISTERs and reports its events. True when
    /// anything moved.
    pub(super) fn drive_registration(&mut self, now: Instant) -> bool {
        let Some(client) = self.registration.as_mut() else {
            return false;
        };
        let mut moved = false;
        let mut events = Vec::new();
        let mut requests = Vec::new();
        while let Some(request) = client.poll_request() {
            requests.push(request);
        }
        while let Some(event) = client.poll_event() {
            events.push(event);
        }
        for request in requests {
            moved = true;
            let sent = self
                .out_of_dialog_target(&request.uri)
                .and_then(|target| Ok(self.layer.send_request(request, target, now)?));
            match sent {
                Ok(id) => {
                    self.clients.insert(id, Purpose::Register);
                }
                Err(_) => {
                    // Nowhere to send it: as a transport failure, so the
                    // client backs off and reports "unreachable".
                    if let Some(client) = self.registration.as_mut() {
                        let _ = client.handle_transaction_failure(now);
                    }
                }
            }
        }
        for event in events {
            moved = true;
            self.event(UaEvent::Registration(event));
        }
        moved
    }

    pub(super) fn registration_response(&mut self, response: Option<Response>, now: Instant) {
        let Some(client) = self.registration.as_mut() else {
            return;
        };
        let result = match &response {
            Some(r) => client.handle_response(r, now),
            None => client.handle_transaction_failure(now),
        };
        if let Err(e) = result {
            // A response for a REGISTER the client no longer waits for
            // (replaced registration): nothing to do but say so.
            self.event(UaEvent::Malformed {
                source: Target::new(self.config.local.transport, self.config.local.addr),
                reason: format!("REGISTER response ignored: {e}"),
            });
        }
    }
}
