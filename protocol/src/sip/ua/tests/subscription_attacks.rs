//! Subscriptions tried as an attacker would: NOTIFYs for dialogs that do
//! not exist, a NOTIFY or refresh copied from the wire and sent from
//! another socket, a SUBSCRIBE flood, bodies too large or malformed,
//! absurd `Expires` values.

use super::subscription::{
    fleet_net, fleet_net_with, incoming_subscription, notified, sub_events, subscribed, terminated,
};
use super::*;
use crate::fleet;

const ATTACKER: &str = "203.0.113.66:5060";

/// Hands `bytes` to node `i` as if from the attacker; what it answered.
fn inject(net: &mut Net, i: usize, bytes: &str) -> Vec<String> {
    let before = net.nodes[i].sent.len();
    let attacker = Target::new(Transport::Udp, ATTACKER.parse().unwrap());
    let now = net.now;
    net.nodes[i]
        .ua
        .handle_input(bytes.as_bytes(), attacker, now);
    net.settle();
    net.nodes[i].sent[before..].to_vec()
}

fn subscribe_request(call_id: &str, expires: &str, body: &str) -> String {
    format!(
        "SUBSCRIBE sip:sensor-1@192.0.2.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ATTACKER};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:mallory@example.net>;tag=m{call_id}\r\n\
         To: <sip:sensor-1@example.net>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:{ATTACKER}>\r\n\
         Event: sipsensor-fleet\r\n\
         Expires: {expires}\r\n\
         Content-Type: application/vnd.sipsensor.fleet\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The last message node `i` sent that starts with `start`.
fn last_sent(net: &Net, i: usize, start: &str) -> String {
    net.nodes[i]
        .sent
        .iter()
        .rev()
        .find(|m| m.starts_with(start))
        .cloned()
        .unwrap_or_else(|| panic!("no {start} sent"))
}

/// `text` with a fleet body in place of its own.
fn with_body(text: &str, body: &[u8]) -> String {
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let head: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!(
        "{head}Content-Type: {}\r\nContent-Length: {}\r\n\r\n{}",
        fleet::CONTENT_TYPE,
        body.len(),
        String::from_utf8_lossy(body)
    )
}

/// `text` with its CSeq number raised by `by`.
fn bump_cseq(text: &str, by: u32) -> String {
    let line = text.lines().find(|l| l.starts_with("CSeq:")).unwrap();
    let mut words = line[5..].split_whitespace();
    let seq: u32 = words.next().unwrap().parse().unwrap();
    let method = words.next().unwrap();
    text.replace(line, &format!("CSeq: {} {method}", seq + by))
        // A new transaction, not a retransmission of the copied one.
        .replace("branch=z9hG4bK", "branch=z9hG4bKforged")
}

/// The collector subscribes, the sensor accepts whatever either screens;
/// the sensor's id.
fn accepted(net: &mut Net) -> SubscriptionId {
    let now = net.now;
    let uri = "sip:sensor-1@192.0.2.1";
    net.collector()
        .subscribe(uri, fleet::EVENT, Vec::new(), 3600, now)
        .unwrap();
    net.settle();
    let served = incoming_subscription(&sub_events(net.take_events(0)));
    let state = b"version=1\nagent=0\ncompatible=c\nslot=A\nupdate=idle\n".to_vec();
    net.sensor()
        .accept_subscription(served, 3600, state, now)
        .unwrap();
    net.settle();
    served
}

#[test]
fn a_notify_for_no_dialog_gets_481_and_changes_nothing() {
    let mut net = fleet_net(320);
    subscribed(&mut net, b"", 3600);
    let genuine = last_sent(&net, 0, "NOTIFY");
    // Right Call-ID, wrong tags; then no tags at all.
    let forged = bump_cseq(&genuine, 1).replace(";tag=", ";tag=x");
    let answers = inject(&mut net, 1, &forged);
    assert!(answers[0].starts_with("SIP/2.0 481"), "{answers:?}");
    let untagged: String = genuine
        .lines()
        .map(|l| match l.split_once(";tag=") {
            Some((head, _)) if l.starts_with("To:") => format!("{head}\r\n"),
            _ => format!("{l}\r\n"),
        })
        .collect();
    let answers = inject(&mut net, 1, &bump_cseq(&untagged, 1));
    assert!(answers[0].starts_with("SIP/2.0 481"), "{answers:?}");
    assert!(sub_events(net.take_events(1)).is_empty());
    assert_eq!(net.collector().subscription_count(), 1);
}

#[test]
fn a_notify_copied_from_the_wire_is_screened_and_refused_without_effect() {
    let mut net = fleet_net_with(321, |_| {}, |c| c.screen_in_dialog = true);
    let now = net.now;
    let served = accepted(&mut net);
    // The genuine NOTIFY is screened too, then admitted.
    let admit = |net: &mut Net| {
        let events = sub_events(net.take_events(1));
        let (id, source) = events
            .iter()
            .find_map(|e| match e {
                SubscriptionEvent::InDialogRequest { id, source, .. } => Some((*id, *source)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a screened NOTIFY: {events:?}"));
        (id, source)
    };
    let (id, source) = admit(&mut net);
    assert_eq!(source.addr, SENSOR.parse().unwrap());
    net.collector().admit_in_dialog(id, now).unwrap();
    net.settle();
    assert_eq!(notified(&sub_events(net.take_events(1))).len(), 1);
    // The attacker sends it again with a higher CSeq, claiming success.
    let genuine = last_sent(&net, 0, "NOTIFY");
    let good = b"version=9\nagent=0\ncompatible=c\nslot=B\nupdate=good\ntarget=9\n";
    let forged = bump_cseq(&with_body(&genuine, good), 10);
    inject(&mut net, 1, &forged);
    let (id, source) = admit(&mut net);
    assert_eq!(source.addr, ATTACKER.parse().unwrap());
    let request = net.collector().screening.get(&id).unwrap().1.clone();
    let refusal = crate::sip::response::response_to(&request, rsip::StatusCode::Forbidden, None);
    net.collector().refuse_in_dialog(id, refusal, now).unwrap();
    net.settle();
    assert!(sub_events(net.take_events(1)).is_empty());
    // The dialog's CSeq did not move: the sensor's next NOTIFY is taken.
    let now = net.now;
    let state = b"version=1\nagent=0\ncompatible=c\nslot=A\nupdate=idle\n".to_vec();
    net.sensor()
        .notify(served, state, NotifyState::Active, now)
        .unwrap();
    net.settle();
    let (id, _) = admit(&mut net);
    net.collector().admit_in_dialog(id, now).unwrap();
    net.settle();
    let events = sub_events(net.take_events(1));
    assert_eq!(notified(&events).len(), 1, "{events:?}");
    assert!(terminated(&events).is_empty());
    assert_eq!(net.collector().subscription_count(), 1);
}

#[test]
fn a_refresh_copied_from_the_wire_is_screened_before_its_want_counts() {
    let mut net = fleet_net_with(322, |c| c.screen_in_dialog = true, |_| {});
    let now = net.now;
    accepted(&mut net);
    let initial = last_sent(&net, 1, "SUBSCRIBE");
    // The sensor's tag, as its 200 carried it in clear.
    let tagged_to = last_sent(&net, 0, "SIP/2.0 200")
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_owned();
    // A refresh in the dialog with a want the attacker chose.
    let want = format!(
        "want=6.6.6\nurl=https://evil.example/b.raucb\nsha256={}\nsize=1\n",
        "ab".repeat(32)
    );
    let to_line = initial.lines().find(|l| l.starts_with("To:")).unwrap();
    let forged = bump_cseq(&with_body(&initial, want.as_bytes()), 10).replace(to_line, &tagged_to);
    let answers = inject(&mut net, 0, &forged);
    let events = sub_events(net.take_events(0));
    let [SubscriptionEvent::InDialogRequest { id, source, .. }] = &events[..] else {
        panic!("{events:?} {answers:?} {forged}")
    };
    assert_eq!(source.addr, ATTACKER.parse().unwrap());
    let request = net.sensor().screening.get(id).unwrap().1.clone();
    let refusal = crate::sip::response::response_to(&request, rsip::StatusCode::Forbidden, None);
    net.sensor().refuse_in_dialog(*id, refusal, now).unwrap();
    net.settle();
    assert!(sub_events(net.take_events(0)).is_empty());
    assert_eq!(net.sensor().subscription_count(), 1);
}

#[test]
fn a_subscribe_flood_stops_at_the_cap_and_leaves_nothing_behind() {
    let mut net = fleet_net_with(323, |c| c.max_subscriptions = 4, |_| {});
    let mut refused = 0;
    for i in 0..10 {
        let answers = inject(
            &mut net,
            0,
            &subscribe_request(&format!("flood{i}"), "3600", ""),
        );
        refused += answers
            .iter()
            .filter(|a| a.starts_with("SIP/2.0 503") && a.contains("Retry-After"))
            .count();
    }
    assert_eq!(refused, 6);
    let events = net.take_events(0);
    let incoming = sub_events(events.clone())
        .iter()
        .filter(|e| matches!(e, SubscriptionEvent::Incoming { .. }))
        .count();
    let refusals = events
        .iter()
        .filter(|e| matches!(e, UaEvent::Refused { status: 503, .. }))
        .count();
    assert_eq!((incoming, refusals), (4, 6));
    assert_eq!(net.sensor().subscription_count(), 4);
    // The TU never answers: a transaction's time later they are gone.
    net.run_for(Duration::from_secs(33));
    let ends = terminated(&sub_events(net.take_events(0)));
    assert_eq!(ends, vec![SubscriptionEnd::Expired; 4]);
    assert_eq!(net.sensor().subscription_count(), 0);
    // And the collector may subscribe no more than its own cap either.
    let mut net = fleet_net_with(324, |_| {}, |c| c.max_subscriptions = 1);
    let now = net.now;
    let uri = "sip:sensor-1@192.0.2.1";
    net.collector()
        .subscribe(uri, fleet::EVENT, Vec::new(), 3600, now)
        .unwrap();
    assert_eq!(
        net.collector()
            .subscribe(uri, fleet::EVENT, Vec::new(), 3600, now),
        Err(UaError::TooManySubscriptions(1))
    );
}

#[test]
fn bodies_that_break_12_2_get_400_and_never_reach_the_tu() {
    let mut net = fleet_net(325);
    let cases = [
        ("want=2\n".to_owned(), "url is missing"),
        ("x".repeat(5000), "at most 4096"),
        ("want=2\nwant=3\n".to_owned(), "more than once"),
        (
            format!(
                "want=2\nurl=http://plain.example/b\nsha256={}\nsize=1\n",
                "00".repeat(32)
            ),
            "https",
        ),
    ];
    for (i, (body, why)) in cases.iter().enumerate() {
        let answers = inject(
            &mut net,
            0,
            &subscribe_request(&format!("b{i}"), "3600", body),
        );
        assert!(answers[0].starts_with("SIP/2.0 400"), "{answers:?}");
        assert!(answers[0].contains(why), "{why}: {}", answers[0]);
    }
    let answers = inject(
        &mut net,
        0,
        &subscribe_request("ct", "3600", "a=b").replace("vnd.sipsensor.fleet", "json"),
    );
    assert!(answers[0].starts_with("SIP/2.0 415"), "{answers:?}");
    assert!(sub_events(net.take_events(0)).is_empty());
    assert_eq!(net.sensor().subscription_count(), 0);
    // A NOTIFY whose state breaks the rules: 400, and the collector's
    // subscription goes on.
    let (_, served) = subscribed(&mut net, b"", 3600);
    let now = net.now;
    net.sensor()
        .notify(served, b"update=done\n".to_vec(), NotifyState::Active, now)
        .unwrap();
    net.settle();
    let answer = last_sent(&net, 1, "SIP/2.0");
    assert!(answer.starts_with("SIP/2.0 400"), "{answer}");
    assert!(sub_events(net.take_events(1)).is_empty());
    assert!(sub_events(net.take_events(0)).is_empty());
    assert_eq!(net.sensor().subscription_count(), 1);
}

#[test]
fn absurd_expires_values_are_refused_or_capped() {
    let mut net = fleet_net(326);
    // RFC 6665 4.2.1.1: too brief gets 423 with Min-Expires.
    let answers = inject(&mut net, 0, &subscribe_request("e1", "30", ""));
    assert!(answers[0].starts_with("SIP/2.0 423"), "{answers:?}");
    assert!(answers[0].contains("Min-Expires: 60"));
    // Past 32 bits: not delta-seconds, 400 at the door.
    let answers = inject(&mut net, 0, &subscribe_request("e2", "99999999999", ""));
    assert!(answers[0].starts_with("SIP/2.0 400"), "{answers:?}");
    assert!(sub_events(net.take_events(0)).is_empty());
    // The largest: the TU's cap is what is granted, and a TU asking for
    // less than the floor still grants 60 s.
    for (max, granted) in [(3600, "3600"), (5, "60")] {
        let call_id = format!("e3-{max}");
        inject(&mut net, 0, &subscribe_request(&call_id, "4294967295", ""));
        let served = incoming_subscription(&sub_events(net.take_events(0)));
        let now = net.now;
        let state = b"version=1\nagent=0\ncompatible=c\nslot=A\nupdate=idle\n".to_vec();
        net.sensor()
            .accept_subscription(served, max, state, now)
            .unwrap();
        net.settle();
        let ok = net.nodes[0]
            .sent
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200") && m.contains(&call_id))
            .unwrap();
        assert!(ok.contains(&format!("Expires: {granted}\r\n")), "{ok}");
    }
}

#[test]
fn a_replayed_older_notify_gets_500_and_changes_nothing() {
    let mut net = fleet_net(327);
    let (_, served) = subscribed(&mut net, b"", 3600);
    let first = last_sent(&net, 0, "NOTIFY");
    let now = net.now;
    let state = b"version=2\nagent=0\ncompatible=c\nslot=B\nupdate=trial\ntarget=2\n".to_vec();
    net.sensor()
        .notify(served, state, NotifyState::Active, now)
        .unwrap();
    net.settle();
    assert_eq!(notified(&sub_events(net.take_events(1))).len(), 1);
    // The first state again, copied from the wire: RFC 3261 12.2.2.
    let answers = inject(&mut net, 1, &bump_cseq(&first, 0));
    assert!(answers[0].starts_with("SIP/2.0 500"), "{answers:?}");
    assert!(sub_events(net.take_events(1)).is_empty());
    // And a NOTIFY of another package in the dialog: 489.
    let other = bump_cseq(&last_sent(&net, 0, "NOTIFY"), 5)
        .replace("Event: sipsensor-fleet", "Event: presence");
    let answers = inject(&mut net, 1, &other);
    assert!(answers[0].starts_with("SIP/2.0 489"), "{answers:?}");
    assert!(sub_events(net.take_events(1)).is_empty());
}
