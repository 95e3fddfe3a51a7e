//! The notifier's decisions on a virtual clock: who may subscribe (as an
//! attacker would try), the first NOTIFY, one per state, the want handed
//! on, expiry, the last NOTIFY (docs/protocol.md 12.1).

use std::time::{Duration, Instant};

use sipsensor_protocol::fleet::{FleetState, FleetWant, UpdateState};
use sipsensor_protocol::{
    DigestClient, IdGenerator, NotifyState, Password, Request, Response, ServerId, SubscriptionEnd,
    SubscriptionEvent, SubscriptionId, Target, TerminatedReason, Transport, UaEvent,
};

use super::MAX_EXPIRES;
use crate::session::tests::{actions, settings};
use crate::session::{Action, Controller, Settings};

const PROXY: &str = "192.0.2.20:5060";
const STRANGER: &str = "198.51.100.66:5060";
const WANT: &str = "want=2.0\nurl=https://collector.example:8443/bundles/b.raucb\n\
sha256=b5790eaab58e675da4a3732b7a53afea7b61c87bc3810b06772c64fae9f986ec\nsize=1000\n";

fn tcp(addr: &str) -> Target {
    Target::new(Transport::Tcp, addr.parse().unwrap())
}

fn udp(addr: &str) -> Target {
    Target::new(Transport::Udp, addr.parse().unwrap())
}

fn sub(n: u64) -> SubscriptionId {
    SubscriptionId::from_raw(n)
}

/// Trusts the flow to the proxy; `collector` may call with its password.
fn trusting() -> Settings {
    let mut s = settings(true);
    s.trust.flow = Some(tcp(PROXY));
    s
}

fn controller(settings: Settings) -> Controller {
    Controller::new(settings, IdGenerator::seeded(5))
}

fn state(update: UpdateState, progress: Option<u8>) -> FleetState {
    FleetState {
        version: "1.0".into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-test".into(),
        slot: "A".into(),
        update,
        target: (update != UpdateState::Idle).then(|| "2.0".into()),
        progress,
        reason: None,
    }
}

/// A SUBSCRIBE with the collector's From: what a forger writes too.
fn subscribe(n: u64) -> Request {
    Request::try_from(
        format!(
            "SUBSCRIBE sip:s1@198.51.100.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKs{n}\r\n\
From: <sip:collector@example.net>;tag=c{n}\r\nTo: <sip:s1@example.net>\r\nCall-ID: sub{n}\r\n\
CSeq: 1 SUBSCRIBE\r\nEvent: sipsensor-fleet\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn incoming(n: u64, request: Request, source: Target, body: &str, expires: u32) -> UaEvent {
    UaEvent::Subscription(SubscriptionEvent::Incoming {
        subscription: sub(n),
        request,
        source,
        body: body.as_bytes().to_vec(),
        expires,
    })
}

fn wanted() -> Option<FleetWant> {
    FleetWant::parse(WANT.as_bytes()).unwrap()
}

/// The subscriptions notified by `acts`, with how.
fn notified(acts: &[Action]) -> Vec<(SubscriptionId, NotifyState)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Notify {
                subscription,
                state,
                ..
            } => Some((*subscription, *state)),
            _ => None,
        })
        .collect()
}

fn accepted(acts: &[Action]) -> Vec<SubscriptionId> {
    acts.iter()
        .filter_map(|a| match a {
            Action::AcceptSubscription { subscription, .. } => Some(*subscription),
            _ => None,
        })
        .collect()
}

fn wants(acts: &[Action]) -> Vec<Option<FleetWant>> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Want(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// Subscribed on the proxy's flow, the state known: `n` accepted.
fn subscribed(c: &mut Controller, n: u64, expires: u32, now: Instant) {
    c.handle_event(incoming(n, subscribe(n), tcp(PROXY), "", expires), now);
    assert_eq!(accepted(&actions(c)), [sub(n)]);
}

#[test]
fn on_the_proxy_flow_it_is_accepted_with_the_state_and_the_want_goes_to_the_updater() {
    let now = Instant::now();
    let mut c = controller(trusting());
    c.fleet_state(state(UpdateState::Idle, None), now);
    assert_eq!(actions(&mut c), [], "no subscriber yet");
    c.handle_event(incoming(1, subscribe(1), tcp(PROXY), WANT, 3600), now);
    let acts = actions(&mut c);
    assert_eq!(
        acts,
        [
            Action::AcceptSubscription {
                subscription: sub(1),
                max_expires: MAX_EXPIRES,
                body: state(UpdateState::Idle, None).to_body().unwrap(),
            },
            Action::Want(wanted()),
        ]
    );
    assert_eq!(c.fleet_subscribers(), 1);
}

#[test]
fn a_stranger_s_subscribe_is_challenged_and_only_the_caller_s_password_lets_it_in() {
    let now = Instant::now();
    let mut c = controller(trusting());
    c.fleet_state(state(UpdateState::Idle, None), now);
    // Over UDP, from anywhere, with the collector's From: challenged.
    c.handle_event(incoming(1, subscribe(1), udp(STRANGER), WANT, 3600), now);
    let challenge = match &actions(&mut c)[..] {
        [Action::ChallengeSubscription { response, .. }] => (**response).clone(),
        other => panic!("expected a challenge, got {other:?}"),
    };
    assert_eq!(challenge.status_code.code(), 401);
    let mut ids = IdGenerator::seeded(77);
    let answered = |password: &str, n: u64, ids: &mut IdGenerator| {
        let mut client = DigestClient::new("collector", Password::new(password));
        let mut request = subscribe(n);
        client.handle_challenge(&request, &challenge).unwrap();
        client.authorize(&mut request, ids);
        request
    };
    // A guessed password: challenged again, nothing reaches the updater.
    let guess = answered("guess", 2, &mut ids);
    c.handle_event(incoming(2, guess, udp(STRANGER), WANT, 3600), now);
    let acts = actions(&mut c);
    assert!(
        accepted(&acts).is_empty() && wants(&acts).is_empty(),
        "{acts:?}"
    );
    // The caller's password: in, from any address.
    let right = answered("calling-secret", 3, &mut ids);
    c.handle_event(incoming(3, right, udp(STRANGER), WANT, 3600), now);
    let acts = actions(&mut c);
    assert_eq!(accepted(&acts), [sub(3)]);
    assert_eq!(wants(&acts), [wanted()]);
}

#[test]
fn without_callers_only_the_proxy_flow_may_subscribe() {
    let now = Instant::now();
    let mut s = trusting();
    s.trust.callers.clear();
    let mut c = controller(s);
    c.fleet_state(state(UpdateState::Idle, None), now);
    // The proxy's address over UDP proves nothing: a forged source.
    for (n, source) in [(1, udp(STRANGER)), (2, udp(PROXY))] {
        c.handle_event(incoming(n, subscribe(n), source, WANT, 3600), now);
        let acts = actions(&mut c);
        assert_eq!(
            acts,
            [Action::RejectSubscription {
                subscription: sub(n),
                status: 403,
                warning: "not a trusted caller".into(),
            }]
        );
    }
    assert_eq!(c.fleet_subscribers(), 0);
}

#[test]
fn a_subscribe_before_the_first_state_waits_for_it() {
    let now = Instant::now();
    let mut c = controller(trusting());
    c.handle_event(incoming(1, subscribe(1), tcp(PROXY), "", 3600), now);
    assert_eq!(actions(&mut c), [], "the first NOTIFY needs the state");
    c.fleet_state(state(UpdateState::Idle, None), now);
    let acts = actions(&mut c);
    assert_eq!(accepted(&acts), [sub(1)]);
    assert_eq!(wants(&acts), [None]);
    assert!(notified(&acts).is_empty(), "the accept carries the state");
}

#[test]
fn every_state_goes_to_every_subscriber_until_its_time_runs_out() {
    let mut now = Instant::now();
    let mut c = controller(trusting());
    c.fleet_state(state(UpdateState::Idle, None), now);
    subscribed(&mut c, 1, 600, now);
    // Asked for a day: granted the cap.
    subscribed(&mut c, 2, 86_400, now);
    c.fleet_state(state(UpdateState::Downloading, Some(0)), now);
    let acts = actions(&mut c);
    assert_eq!(
        notified(&acts),
        [(sub(1), NotifyState::Active), (sub(2), NotifyState::Active)]
    );
    let Action::Notify { body, .. } = &acts[0] else {
        panic!()
    };
    assert_eq!(
        FleetState::parse(body).unwrap(),
        state(UpdateState::Downloading, Some(0))
    );
    // The controller wakes when the first one runs out and forgets it.
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(600)));
    now += Duration::from_secs(600);
    c.handle_timeout(now);
    actions(&mut c);
    c.fleet_state(state(UpdateState::Downloaded, None), now);
    assert_eq!(notified(&actions(&mut c)), [(sub(2), NotifyState::Active)]);
    assert_eq!(c.fleet_subscribers(), 1);
    now += Duration::from_secs(u64::from(MAX_EXPIRES) - 600);
    c.fleet_state(state(UpdateState::Installing, Some(0)), now);
    assert_eq!(notified(&actions(&mut c)), []);
}

#[test]
fn a_refresh_hands_its_want_on_and_extends_the_subscription() {
    let mut now = Instant::now();
    let mut c = controller(trusting());
    c.fleet_state(state(UpdateState::Idle, None), now);
    subscribed(&mut c, 1, 600, now);
    now += Duration::from_secs(300);
    let refreshed = |body: &str| {
        UaEvent::Subscription(SubscriptionEvent::Refreshed {
            subscription: sub(1),
            body: body.as_bytes().to_vec(),
            expires: 600,
        })
    };
    c.handle_event(refreshed(WANT), now);
    assert_eq!(actions(&mut c), [Action::Want(wanted())]);
    // A body without want: the "clear" of 12.4.
    c.handle_event(refreshed(""), now);
    assert_eq!(actions(&mut c), [Action::Want(None)]);
    now += Duration::from_secs(500);
    c.handle_timeout(now);
    actions(&mut c);
    c.fleet_state(state(UpdateState::Downloading, Some(0)), now);
    assert_eq!(notified(&actions(&mut c)), [(sub(1), NotifyState::Active)]);
}

#[test]
fn a_refresh_is_screened_as_a_bye_is() {
    let now = Instant::now();
    let mut s = trusting();
    s.trust.callers.clear();
    let mut c = controller(s);
    c.fleet_state(state(UpdateState::Idle, None), now);
    subscribed(&mut c, 1, 3600, now);
    let in_dialog = |id: u64, source: Target, on_dialog_flow: bool| {
        UaEvent::Subscription(SubscriptionEvent::InDialogRequest {
            subscription: sub(1),
            id: ServerId::from_raw(id),
            request: subscribe(1),
            source,
            on_dialog_flow,
        })
    };
    // The dialog's identifiers seen on the wire, sent from elsewhere.
    c.handle_event(in_dialog(7, udp(STRANGER), false), now);
    let refused: Vec<Response> = actions(&mut c)
        .into_iter()
        .map(|a| match a {
            Action::RefuseInDialog { response, .. } => *response,
            other => panic!("expected a refusal, got {other:?}"),
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status_code.code(), 403);
    assert_eq!(c.refused_in_dialog(), 1);
    // On the connection the subscription came on: let through.
    c.handle_event(in_dialog(8, tcp(PROXY), true), now);
    assert_eq!(
        actions(&mut c),
        [Action::AdmitInDialog(ServerId::from_raw(8))]
    );
}

#[test]
fn going_down_ends_every_subscription_with_deactivated_and_refuses_new_ones() {
    let now = Instant::now();
    let mut c = controller(trusting());
    c.start(now);
    actions(&mut c);
    c.fleet_state(state(UpdateState::Idle, None), now);
    subscribed(&mut c, 1, 3600, now);
    subscribed(&mut c, 2, 3600, now);
    // SIGTERM: the last NOTIFYs before the un-REGISTER.
    c.shutdown();
    let acts = actions(&mut c);
    let last = NotifyState::Terminated(TerminatedReason::Deactivated);
    assert_eq!(notified(&acts), [(sub(1), last), (sub(2), last)]);
    assert_eq!(acts.last(), Some(&Action::Unregister));
    assert_eq!(c.fleet_subscribers(), 0);
    c.fleet_state(state(UpdateState::Idle, None), now);
    assert_eq!(notified(&actions(&mut c)), []);
    c.handle_event(incoming(3, subscribe(3), tcp(PROXY), "", 3600), now);
    assert!(matches!(
        &actions(&mut c)[..],
        [Action::RejectSubscription { status: 503, .. }]
    ));
}

#[test]
fn the_updater_s_reboot_sends_the_last_notify_and_an_ended_one_is_forgotten() {
    let now = Instant::now();
    let mut c = controller(trusting());
    c.fleet_state(state(UpdateState::Idle, None), now);
    subscribed(&mut c, 1, 3600, now);
    subscribed(&mut c, 2, 3600, now);
    // The collector unsubscribed 1 (or a NOTIFY to it got 481).
    c.handle_event(
        UaEvent::Subscription(SubscriptionEvent::Terminated {
            subscription: sub(1),
            reason: SubscriptionEnd::Unsubscribed,
        }),
        now,
    );
    c.fleet_going_down();
    assert_eq!(
        notified(&actions(&mut c)),
        [(
            sub(2),
            NotifyState::Terminated(TerminatedReason::Deactivated)
        )]
    );
}
