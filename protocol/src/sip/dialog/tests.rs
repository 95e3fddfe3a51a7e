use super::*;
use crate::sip::Transport;
use crate::sip::response::response_to;

fn local() -> LocalEndpoint {
    LocalEndpoint::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap())
}

fn invite() -> Request {
    let text = "INVITE sip:collector@example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Sensor\" <sip:s1@example.net>;tag=f1\r\n\
To: <sip:collector@example.net>\r\n\
Call-ID: c1@192.0.2.1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:s1@192.0.2.1:5060>\r\n\
Record-Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\n\
Proxy-Authorization: Digest username=\"s1\", realm=\"example.net\", nonce=\"n\", uri=\"sip:collector@example.net\", response=\"0123\"\r\n\
Content-Length: 0\r\n\r\n";
    Request::try_from(text.as_bytes()).unwrap()
}

fn ok(invite: &Request) -> Response {
    let mut r = response_to(invite, rsip::StatusCode::OK, Some("t1"));
    r.headers.push(Header::Contact(rsip::headers::Contact::new(
        "<sip:collector@192.0.2.9:5070>",
    )));
    for h in invite.headers.iter() {
        if let Header::RecordRoute(_) = h {
            r.headers.push(h.clone());
        }
    }
    r
}

#[test]
fn uac_dialog_reverses_the_record_route_and_targets_the_contact() {
    let inv = invite();
    let d = Dialog::from_uac(&inv, &ok(&inv)).unwrap();
    assert_eq!(d.id.local_tag, "f1");
    assert_eq!(d.id.remote_tag, "t1");
    assert_eq!(d.id.call_id, "c1@192.0.2.1");
    assert_eq!(
        d.route_set(),
        ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    );
    assert_eq!(
        d.remote_target().to_string(),
        "sip:collector@192.0.2.9:5070"
    );
    assert_eq!(d.next_hop().unwrap().to_string(), "sip:p2.example.net;lr");
}

#[test]
fn uas_dialog_keeps_the_record_route_order() {
    let mut ids = IdGenerator::seeded(1);
    let d = Dialog::from_uas(&invite(), "t9", &mut ids).unwrap();
    assert_eq!(d.id.local_tag, "t9");
    assert_eq!(d.id.remote_tag, "f1");
    assert_eq!(
        d.route_set(),
        ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    );
    assert_eq!(d.remote_target().to_string(), "sip:s1@192.0.2.1:5060");
}

#[test]
fn in_dialog_requests_use_loose_routing_and_growing_cseq() {
    let inv = invite();
    let mut d = Dialog::from_uac(&inv, &ok(&inv)).unwrap();
    let mut ids = IdGenerator::seeded(2);
    let bye = d.request(Method::Bye, &local(), &mut ids);
    assert_eq!(bye.uri.to_string(), "sip:collector@192.0.2.9:5070");
    assert_eq!(bye.cseq_header().unwrap().value(), "11 BYE");
    let text = bye.to_string();
    let r2 = text.find("Route: <sip:p2").unwrap();
    let r1 = text.find("Route: <sip:p1").unwrap();
    assert!(r2 < r1, "route set in order: {text}");
    assert!(text.contains("From: \"Sensor\" <sip:s1@example.net>;tag=f1"));
    assert!(text.contains("To: <sip:collector@example.net>;tag=t1"));
    assert!(text.contains("Proxy-Authorization: Digest"));
    let reinvite = d.request(Method::Invite, &local(), &mut ids);
    assert_eq!(reinvite.cseq_header().unwrap().value(), "12 INVITE");
    assert_ne!(
        bye.via_header().unwrap(),
        reinvite.via_header().unwrap(),
        "each request gets a new branch"
    );
}

#[test]
fn ack_for_2xx_keeps_the_invite_cseq_with_a_new_branch() {
    let inv = invite();
    let d = Dialog::from_uac(&inv, &ok(&inv)).unwrap();
    let mut ids = IdGenerator::seeded(3);
    let ack = d.ack(10, &local(), &mut ids);
    assert_eq!(ack.cseq_header().unwrap().value(), "10 ACK");
    assert_ne!(ack.via_header().unwrap(), inv.via_header().unwrap());
    assert!(ack.contact_header().is_err());
}

#[test]
fn a_strict_router_takes_the_request_uri() {
    let inv = invite();
    let text = ok(&inv).to_string().replace(
        "<sip:p1.example.net;lr>, <sip:p2.example.net;lr>",
        "<sip:strict.example.net>",
    );
    let resp = Response::try_from(text.as_bytes()).unwrap();
    let mut d = Dialog::from_uac(&inv, &resp).unwrap();
    let bye = d.request(Method::Bye, &local(), &mut IdGenerator::seeded(4));
    assert_eq!(bye.uri.to_string(), "sip:strict.example.net");
    assert!(
        bye.to_string()
            .contains("Route: <sip:collector@192.0.2.9:5070>")
    );
}

#[test]
fn remote_cseq_must_not_go_back_and_reinvite_refreshes_the_target() {
    let mut ids = IdGenerator::seeded(5);
    let mut d = Dialog::from_uas(&invite(), "t9", &mut ids).unwrap();
    let text = invite()
        .to_string()
        .replace("CSeq: 10 INVITE", "CSeq: 11 INVITE")
        .replace("sip:s1@192.0.2.1:5060", "sip:s1@192.0.2.77:5060");
    let reinvite = Request::try_from(text.as_bytes()).unwrap();
    d.receive_request(&reinvite).unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:s1@192.0.2.77:5060");
    let old = Request::try_from(
        invite()
            .to_string()
            .replace("CSeq: 10 INVITE", "CSeq: 9 BYE")
            .replace("INVITE sip:", "BYE sip:")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        d.receive_request(&old),
        Err(DialogError::CSeqOutOfOrder { got: 9, last: 11 })
    );
}

#[test]
fn a_response_without_to_tag_makes_no_dialog() {
    let inv = invite();
    let r = response_to(&inv, rsip::StatusCode::OK, None);
    assert_eq!(
        Dialog::from_uac(&inv, &r).unwrap_err(),
        DialogError::MissingRemoteTag
    );
}

#[test]
fn the_callees_digest_goes_on_the_ack_only() {
    // The callee challenged our INVITE; its digest covered INVITE and the
    // INVITE's Request-URI, so on a BYE to the remote target it would be
    // wrong, or a replay to refuse.
    let mut inv = invite();
    inv.headers
        .push(Header::Authorization(rsip::headers::Authorization::new(
            "Digest username=\"collector\", realm=\"s1\", nonce=\"n\", \
             uri=\"sip:collector@example.net\", response=\"4567\"",
        )));
    let mut d = Dialog::from_uac(&inv, &ok(&inv)).unwrap();
    let mut ids = IdGenerator::seeded(4);
    let ack = d.ack(10, &local(), &mut ids).to_string();
    assert!(ack.contains("\r\nAuthorization: Digest"), "{ack}");
    for method in [Method::Bye, Method::Invite, Method::Options] {
        let text = d.request(method, &local(), &mut ids).to_string();
        assert!(!text.contains("\r\nAuthorization:"), "{text}");
        assert!(text.contains("Proxy-Authorization: Digest"), "{text}");
    }
}
