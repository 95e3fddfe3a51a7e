//! Building a UAS response to a request (RFC 3261 8.2.6), and the HTTP
//! date a registrar's 200 carries (RFC 3261 10.3 step 8, 20.17).

use super::via::stamp_received;
use rsip::headers::UntypedHeader;
use std::net::SocketAddr;

/// A response to `request` with `code`: the headers 8.2.6.2 copies (see
/// [`crate::sip::response::response_to`]), the top Via stamped with
/// `received`/`rport` for `source` (18.2.1, RFC 3581 4), then `extra`
/// headers and Content-Length 0.
pub fn response_to(
    request: &rsip::Request,
    code: u16,
    source: Option<SocketAddr>,
    to_tag: &str,
    extra: Vec<rsip::Header>,
) -> rsip::Response {
    let mut response = crate::sip::response::response_to(request, code.into(), Some(to_tag));
    if let Some(src) = source
        && let Some(rsip::Header::Via(via)) = response
            .headers
            .iter_mut()
            .find(|h| matches!(h, rsip::Header::Via(_)))
        && let Some(stamped) = stamp_received(via.value(), src)
    {
        *via = rsip::headers::Via::new(stamped);
    }
    // Content-Length stays last.
    response
        .headers
        .retain(|h| !matches!(h, rsip::Header::ContentLength(_)));
    response.headers.extend(extra);
    response.headers.push(rsip::Header::ContentLength(0.into()));
    response
}

/// A `Warning: 399 <agent> "text"` header (RFC 3261 20.43) that says in
/// words why a request failed.
pub fn warning(agent: &str, text: &str) -> rsip::Header {
    let text = text.replace(['"', '\\'], "'");
    rsip::Header::Warning(rsip::headers::Warning::new(format!(
        "399 {agent} \"{text}\""
    )))
}

/// `rfc1123-date` for Unix seconds, e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil-from-days (H. Hinnant's algorithm), days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 3261 20.17's example.
        assert_eq!(http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(http_date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
    }

    #[test]
    fn copies_dialog_headers_and_adds_a_tag() {
        let req = rsip::Request::try_from(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKa;rport\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\n\
             From: <sip:a@example.com>;tag=f\r\n\
             t: <sip:a@example.com>\r\n\
             Call-ID: c\r\n\
             CSeq: 7 REGISTER\r\n\
             Contact: <sip:a@10.0.0.2>\r\n\
             Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let resp = response_to(
            &req,
            423,
            Some("203.0.113.5:4000".parse().unwrap()),
            "tt",
            vec![rsip::Header::MinExpires(60.into())],
        );
        let text = resp.to_string();
        assert!(text.starts_with("SIP/2.0 423"), "{text}");
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKa;rport=4000;received=203.0.113.5\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: <sip:a@example.com>;tag=tt\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 7 REGISTER\r\n"));
        assert!(text.contains("Min-Expires: 60\r\n"));
        assert!(!text.contains("Contact"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn warning_text_is_quoted_safely() {
        let w = warning("sipsensor", r#"bad "thing" \ here"#);
        assert_eq!(
            w.to_string(),
            r#"Warning: 399 sipsensor "bad 'thing' ' here""#
        );
    }
}
