use super::super::negotiate::{answer, apply_answer, offer};
use super::super::parse_str;
use super::super::terms::{ReceivePolicy, Role};
use super::super::tests::{
    agent_desc, agent_local, agent_origin, collector_local, collector_origin,
};
use super::super::{AnswerPolicy, LocalMedia, Sdp};
use super::*;

fn secure(srtp: SrtpPolicy) -> MediaSecurity {
    MediaSecurity {
        srtp,
        signalling_secure: true,
    }
}

fn with(mut local: LocalMedia, security: MediaSecurity) -> LocalMedia {
    local.security = security;
    local
}

fn collector_offer(security: MediaSecurity) -> Result<Sdp, NegotiationError> {
    offer(
        &agent_desc(),
        Role::Receiver,
        &with(collector_local(), security),
        &mut collector_origin(),
    )
}

fn agent_answers(offer_sdp: &Sdp, security: MediaSecurity) -> Result<Sdp, NegotiationError> {
    let policy = AnswerPolicy::Send {
        capabilities: agent_desc(),
    };
    answer(
        offer_sdp,
        &policy,
        &with(agent_local(), security),
        &mut agent_origin(),
    )
    .map(|(sdp, agreed)| {
        assert!(agreed.srtp.is_some() == (sdp.media[0].proto == PROTO_SAVP));
        sdp
    })
}

#[test]
fn an_srtp_exchange_agrees_on_mirrored_fresh_keys() {
    let o = collector_offer(secure(SrtpPolicy::Required)).unwrap();
    let text = o.to_string();
    assert!(text.contains(" RTP/SAVP "), "{text}");
    assert!(
        text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{text}"
    );
    assert!(
        text.contains("a=crypto:2 AEAD_AES_128_GCM inline:"),
        "{text}"
    );

    // Through the wire form, as the agent would see it.
    let o = parse_str(&text).unwrap();
    let policy = AnswerPolicy::Send {
        capabilities: agent_desc(),
    };
    let (a, agent) = answer(
        &o,
        &policy,
        &with(agent_local(), secure(SrtpPolicy::Required)),
        &mut agent_origin(),
    )
    .unwrap();
    let a = parse_str(&a.to_string()).unwrap();
    let answered: Vec<&str> = a.media[0].attribute_values("crypto").collect();
    assert_eq!(answered.len(), 1, "{a}");
    assert!(answered[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
    let collector = apply_answer(&o, &a, Role::Receiver).unwrap();
    let (agent, collector) = (agent.srtp.unwrap(), collector.srtp.unwrap());
    assert_eq!(agent.send, collector.receive);
    assert_eq!(agent.receive, collector.send);
    assert_ne!(agent.send, agent.receive, "each side its own key");
    // The collector's offered key for tag 1 is what it sends with.
    let offered = CryptoAttribute::parse(o.media[0].attribute_values("crypto").next().unwrap());
    assert_eq!(offered.unwrap().key, collector.send);
}

#[test]
fn no_keys_are_written_or_taken_over_insecure_signalling() {
    let insecure = MediaSecurity {
        srtp: SrtpPolicy::Required,
        signalling_secure: false,
    };
    assert_eq!(collector_offer(insecure), Err(SrtpRefusal::Insecure.into()));
    let optional = MediaSecurity {
        srtp: SrtpPolicy::Optional,
        signalling_secure: false,
    };
    let plain = collector_offer(optional).unwrap();
    assert_eq!(plain.media[0].proto, "RTP/AVP");
    assert_eq!(plain.media[0].attribute_values("crypto").count(), 0);
    // An SRTP offer that arrived over insecure signalling: 488, and the
    // answer never carries a key.
    let o = collector_offer(secure(SrtpPolicy::Required)).unwrap();
    let e = agent_answers(&o, optional).unwrap_err();
    assert_eq!(e, SrtpRefusal::Insecure.into());
    assert_eq!(e.status_code(), 488);
}

#[test]
fn required_refuses_plain_and_off_refuses_srtp() {
    let plain = collector_offer(MediaSecurity::default()).unwrap();
    let e = agent_answers(&plain, secure(SrtpPolicy::Required)).unwrap_err();
    assert_eq!(e, SrtpRefusal::Required.into());
    assert_eq!((e.status_code(), e.warning_code()), (488, 302));
    assert!(agent_answers(&plain, secure(SrtpPolicy::Optional)).is_ok());

    let srtp = collector_offer(secure(SrtpPolicy::Optional)).unwrap();
    assert_eq!(
        agent_answers(&srtp, MediaSecurity::default()),
        Err(SrtpRefusal::Off.into())
    );
    assert!(agent_answers(&srtp, secure(SrtpPolicy::Optional)).is_ok());
}

fn offer_with_crypto(lines: &[&str]) -> Sdp {
    let mut o = collector_offer(secure(SrtpPolicy::Required)).unwrap();
    let m = &mut o.media[0];
    m.attributes.retain(|a| a.name != "crypto");
    for l in lines {
        m.attributes
            .push(super::super::model::Attribute::value("crypto", *l));
    }
    o
}

#[test]
fn the_answerer_skips_what_it_cannot_use_and_takes_the_first_usable() {
    let gcm = SrtpKey::generate(SrtpSuite::AeadAes128Gcm).to_base64();
    let o = offer_with_crypto(&[
        "1 F8_128_HMAC_SHA1_80 inline:AAAA",
        "2 AES_CM_128_HMAC_SHA1_80 inline:!!",
        &format!("3 AEAD_AES_128_GCM inline:{gcm} UNKNOWN_PARAM"),
        &format!("4 AEAD_AES_128_GCM inline:{gcm}"),
    ]);
    let a = agent_answers(&o, secure(SrtpPolicy::Required)).unwrap();
    let line = a.media[0].attribute_values("crypto").next().unwrap();
    assert!(line.starts_with("4 AEAD_AES_128_GCM inline:"), "{line}");
    assert!(!line.contains(&gcm), "a fresh key, not the offerer's");
}

#[test]
fn hostile_crypto_offers_get_488_with_the_reason() {
    let unknown = offer_with_crypto(&["1 F8_128_HMAC_SHA1_80 inline:AAAA"]);
    let e = agent_answers(&unknown, secure(SrtpPolicy::Required)).unwrap_err();
    assert!(e.to_string().contains("F8_128_HMAC_SHA1_80"), "{e}");
    assert_eq!(e.status_code(), 488);

    let none = offer_with_crypto(&[]);
    assert!(matches!(
        agent_answers(&none, secure(SrtpPolicy::Required)),
        Err(NegotiationError::Srtp(SrtpRefusal::NoAcceptableCrypto(_)))
    ));

    let key = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80).to_base64();
    let line = format!("5 AES_CM_128_HMAC_SHA1_80 inline:{key}");
    let twice = offer_with_crypto(&[&line, &line]);
    assert_eq!(
        agent_answers(&twice, secure(SrtpPolicy::Required)),
        Err(SrtpRefusal::DuplicateTag(5).into())
    );
}

#[test]
fn answers_naming_an_unoffered_tag_or_another_suite_are_refused() {
    let o = collector_offer(secure(SrtpPolicy::Required)).unwrap();
    let good = agent_answers(&o, secure(SrtpPolicy::Required)).unwrap();
    let key = SrtpKey::generate(SrtpSuite::AeadAes128Gcm).to_base64();
    for forged in [
        format!("9 AEAD_AES_128_GCM inline:{key}"),
        format!("1 AEAD_AES_128_GCM inline:{key}"),
    ] {
        let mut a = good.clone();
        a.media[0].attributes.retain(|x| x.name != "crypto");
        a.media[0]
            .attributes
            .push(super::super::model::Attribute::value(
                "crypto",
                forged.clone(),
            ));
        assert!(
            matches!(
                apply_answer(&o, &a, Role::Receiver),
                Err(NegotiationError::Srtp(SrtpRefusal::AnswerMismatch(_)))
            ),
            "{forged}"
        );
    }
    // A plain answer to an SRTP offer.
    let mut plain = good.clone();
    plain.media[0].proto = "RTP/AVP".into();
    plain.media[0].attributes.retain(|x| x.name != "crypto");
    assert!(apply_answer(&o, &plain, Role::Receiver).is_err());
}

#[test]
fn the_collector_answering_an_agents_srtp_offer_keys_the_stream() {
    let o = offer(
        &agent_desc(),
        Role::Sender,
        &with(agent_local(), secure(SrtpPolicy::Optional)),
        &mut agent_origin(),
    )
    .unwrap();
    let (a, collector) = answer(
        &o,
        &AnswerPolicy::Receive(ReceivePolicy::default()),
        &with(collector_local(), secure(SrtpPolicy::Required)),
        &mut collector_origin(),
    )
    .unwrap();
    let agent = apply_answer(&o, &a, Role::Sender).unwrap();
    assert_eq!(agent.srtp.unwrap().send, collector.srtp.unwrap().receive);
}
