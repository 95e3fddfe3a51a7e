//! Which SRTP keys an offer/answer exchange puts in the SDP and agrees on
//! (RFC 4568 7: SDES offer/answer).

use super::model::Media;
use super::sdes::{CryptoAttribute, SdesError, SrtpKey, SrtpKeys, SrtpSuite};
use super::terms::{MediaSecurity, NegotiationError, PROTO_SAVP, SrtpPolicy, SrtpRefusal};

/// The `a=crypto` lines of a new offer: one fresh key per supported suite,
/// in order of preference (RFC 4568 7.1.1), or none for a plain offer.
pub(super) fn offer_crypto(
    security: MediaSecurity,
) -> Result<Vec<CryptoAttribute>, NegotiationError> {
    if !security.offers_srtp()? {
        return Ok(Vec::new());
    }
    Ok((1..)
        .zip(SrtpSuite::ALL)
        .map(|(tag, suite)| CryptoAttribute {
            tag,
            key: SrtpKey::generate(suite),
        })
        .collect())
}

/// The answerer's choice for an offered sensor `m=` section: `None` for a
/// plain stream, else the answer's `a=crypto` (the first acceptable offered
/// one, same tag and suite, a fresh key of this side's, RFC 4568 7.1.2) and
/// the keys agreed.
pub(super) fn answer_crypto(
    offered: &Media,
    security: MediaSecurity,
) -> Result<Option<(CryptoAttribute, SrtpKeys)>, NegotiationError> {
    if offered.proto != PROTO_SAVP {
        return match security.srtp {
            SrtpPolicy::Required => Err(SrtpRefusal::Required.into()),
            _ => Ok(None),
        };
    }
    if security.srtp == SrtpPolicy::Off {
        return Err(SrtpRefusal::Off.into());
    }
    if !security.signalling_secure {
        return Err(SrtpRefusal::Insecure.into());
    }
    let mut reasons = Vec::new();
    let mut chosen = None;
    for attempt in crypto_lines(offered)? {
        match attempt {
            Ok(theirs) if chosen.is_none() => chosen = Some(theirs),
            Ok(_) => {}
            Err(e) => reasons.push(e.to_string()),
        }
    }
    let theirs = chosen.ok_or_else(|| {
        if reasons.is_empty() {
            reasons.push("none offered".into());
        }
        SrtpRefusal::NoAcceptableCrypto(reasons.join("; "))
    })?;
    let ours = CryptoAttribute {
        tag: theirs.tag,
        key: SrtpKey::generate(theirs.key.suite()),
    };
    let keys = SrtpKeys {
        send: ours.key.clone(),
        receive: theirs.key,
    };
    Ok(Some((ours, keys)))
}

/// The offerer's keys once the answer is in: the answer names one of the
/// offered lines by tag with the same suite and its own key (RFC 4568
/// 7.1.3). `None` for a plain stream.
pub(super) fn agreed_keys(
    offered: &Media,
    answered: &Media,
) -> Result<Option<SrtpKeys>, NegotiationError> {
    if offered.proto != answered.proto {
        return Err(NegotiationError::NotSensorPeer(format!(
            "answered {} to {}",
            answered.proto, offered.proto
        )));
    }
    if offered.proto != PROTO_SAVP {
        return Ok(None);
    }
    let mismatch = |why: String| NegotiationError::from(SrtpRefusal::AnswerMismatch(why));
    let mut answers = answered.attribute_values("crypto");
    let (Some(value), None) = (answers.next(), answers.next()) else {
        return Err(mismatch("not exactly one a=crypto".into()));
    };
    let theirs = CryptoAttribute::parse(value).map_err(|e| mismatch(e.to_string()))?;
    let ours = crypto_lines(offered)?
        .into_iter()
        .flatten()
        .find(|c| c.tag == theirs.tag)
        .ok_or_else(|| mismatch(format!("tag {} was not offered", theirs.tag)))?;
    if ours.key.suite() != theirs.key.suite() {
        return Err(mismatch(format!(
            "tag {} offered {}, answered {}",
            ours.tag,
            ours.key.suite(),
            theirs.key.suite()
        )));
    }
    Ok(Some(SrtpKeys {
        send: ours.key,
        receive: theirs.key,
    }))
}

/// Every `a=crypto` of a media section, each parsed or refused; tags must
/// be unique within the section (RFC 4568 9.1).
fn crypto_lines(
    media: &Media,
) -> Result<Vec<Result<CryptoAttribute, SdesError>>, NegotiationError> {
    let mut tags = Vec::new();
    let mut lines = Vec::new();
    for value in media.attribute_values("crypto") {
        if let Some(tag) = value.split(' ').next().and_then(|t| t.parse::<u32>().ok()) {
            if tags.contains(&tag) {
                return Err(SrtpRefusal::DuplicateTag(tag).into());
            }
            tags.push(tag);
        }
        lines.push(CryptoAttribute::parse(value));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
