//! Lexer for the `challenge` / `credentials` grammar shared by
//! WWW-Authenticate, Proxy-Authenticate, Authorization and
//! Proxy-Authorization (RFC 3261 25.1, RFC 7235 section 2.1).
//!
//! One header value may hold several challenges separated by commas, and a
//! quoted parameter value may itself hold commas, so splitting on ',' is
//! wrong: the lexer decides at each comma whether the next item is another
//! `auth-param` (`token = ...`) or a new `auth-scheme`.

use super::DigestError;

/// Bounds that keep a hostile header from making us allocate without limit.
const MAX_CHALLENGES: usize = 16;
const MAX_PARAMS: usize = 32;

/// One `challenge` or `credentials` item: a scheme and its parameters, names
/// lower-cased (parameter names are case-insensitive, RFC 7235 2.1) and
/// values unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthItem {
    pub scheme: String,
    pub params: Vec<(String, String)>,
    /// A `token68` instead of parameters (Basic, Bearer): kept so that
    /// such items are skipped cleanly rather than rejected.
    pub token68: Option<String>,
}

impl AuthItem {
    /// The value of parameter `name` (lower-case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

/// RFC 3261 25.1 `token` characters.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// RFC 7235 2.1 `token68` characters (without the trailing '=' padding).
fn is_token68_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s,
            b: s.as_bytes(),
            pos: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// LWS as left by line unfolding: spaces, tabs, and stray CR/LF.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and empty list elements (`#rule` allows ", ,").
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b',')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// `quoted-string` with `quoted-pair` escapes (RFC 3261 25.1); the
    /// opening quote is at `pos`.
    fn quoted_string(&mut self) -> Result<String, DigestError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(DigestError::Malformed(format!(
                    "unterminated quoted string at byte {start}"
                )));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(escaped) = self.s[self.pos..].chars().next() else {
                        return Err(DigestError::Malformed(
                            "quoted string ends in a lone backslash".into(),
                        ));
                    };
                    self.pos += escaped.len_utf8();
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
    }

    /// After a scheme: a `token68` followed by end or ',' (then it is
    /// consumed and returned), or nothing is consumed.
    fn try_token68(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_token68_char) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        while self.peek() == Some(b'=') {
            self.pos += 1;
        }
        let end = self.pos;
        self.skip_ws();
        if self.at_end() || self.peek() == Some(b',') {
            return Some(self.s[start..end].to_string());
        }
        self.pos = start;
        None
    }

    /// True if the next list element is `token BWS "="`, i.e. another
    /// parameter of the current item rather than a new scheme.
    fn next_is_param(&self) -> bool {
        let mut p = self.pos;
        while self.b.get(p).copied().is_some_and(is_token_char) {
            p += 1;
        }
        if p == self.pos {
            return false;
        }
        while matches!(self.b.get(p), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            p += 1;
        }
        self.b.get(p) == Some(&b'=')
    }
}

/// Parses a header value holding one or more challenges or credentials.
pub fn parse_auth_items(value: &str) -> Result<Vec<AuthItem>, DigestError> {
    let mut lx = Lexer::new(value);
    let mut items = Vec::new();
    lx.skip_ws_and_commas();
    while !lx.at_end() {
        if items.len() == MAX_CHALLENGES {
            return Err(DigestError::Malformed(format!(
                "more than {MAX_CHALLENGES} challenges in one header"
            )));
        }
        let scheme = lx.token();
        if scheme.is_empty() {
            return Err(DigestError::Malformed(format!(
                "expected an auth-scheme at byte {} of {value:?}",
                lx.pos
            )));
        }
        let mut item = AuthItem {
            scheme: scheme.to_string(),
            params: Vec::new(),
            token68: None,
        };
        lx.skip_ws();
        // Digest never uses token68 (RFC 7616 3.3), so "Digest realm" is
        // a missing '=', not a token68.
        let token68 = if item.is_digest() {
            None
        } else {
            lx.try_token68()
        };
        if token68.is_some() {
            item.token68 = token68;
        } else {
            parse_params(&mut lx, &mut item)?;
        }
        items.push(item);
        lx.skip_ws_and_commas();
    }
    if items.is_empty() {
        return Err(DigestError::Malformed("empty authentication header".into()));
    }
    Ok(items)
}

fn parse_params(lx: &mut Lexer<'_>, item: &mut AuthItem) -> Result<(), DigestError> {
    loop {
        lx.skip_ws();
        if lx.at_end() || lx.peek() == Some(b',') {
            return Ok(());
        }
        let name = lx.token().to_ascii_lowercase();
        if name.is_empty() {
            return Err(DigestError::Malformed(format!(
                "expected a parameter name at byte {}",
                lx.pos
            )));
        }
        lx.skip_ws();
        if lx.peek() != Some(b'=') {
            return Err(DigestError::Malformed(format!(
                "parameter {name:?} has no '=' value"
            )));
        }
        lx.pos += 1;
        lx.skip_ws();
        let value = if lx.peek() == Some(b'"') {
            lx.quoted_string()?
        } else {
            let t = lx.token();
            if t.is_empty() {
                return Err(DigestError::Malformed(format!(
                    "parameter {name:?} has an empty value"
                )));
            }
            t.to_string()
        };
        // RFC 7235 2.1: each parameter name occurs once per challenge.
        if item.params.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Malformed(format!(
                "parameter {name:?} appears twice"
            )));
        }
        if item.params.len() == MAX_PARAMS {
            return Err(DigestError::Malformed(format!(
                "more than {MAX_PARAMS} parameters"
            )));
        }
        item.params.push((name, value));
        lx.skip_ws();
        if lx.at_end() {
            return Ok(());
        }
        if lx.peek() != Some(b',') {
            return Err(DigestError::Malformed(format!(
                "expected ',' after a parameter at byte {}",
                lx.pos
            )));
        }
        lx.skip_ws_and_commas();
        if !lx.next_is_param() {
            // A new auth-scheme starts here.
            return Ok(());
        }
    }
}

/// Renders a value as a `quoted-string` (RFC 3261 25.1): '"', '\' and the
/// control characters `qdtext` excludes go out as `quoted-pair`s; CR and LF,
/// which neither may hold, are left out (a value unquoted from a peer's
/// quoted-pairs, `\<NUL>` say, must not come back as an invalid header).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\r' | '\n' => continue,
            '"' | '\\' => out.push('\\'),
            c if c.is_ascii_control() && c != '\t' => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/corpus/registrar/contact_param_quoted_nul):
    /// a Contact parameter `"\<NUL>"` came back in the registrar's 200 as a
    /// raw NUL, which `qdtext` does not allow.
    #[test]
    fn quote_escapes_controls_and_drops_line_breaks() {
        assert_eq!(quote("a\0b\"c\\d\x7f\te"), "\"a\\\0b\\\"c\\\\d\\\x7f\te\"");
        assert_eq!(quote("x\r\ny"), "\"xy\"");
        let back = parse_auth_items(&format!("Digest realm={}", quote("r\0\"\\"))).unwrap();
        assert_eq!(back[0].param("realm"), Some("r\0\"\\"));
    }

    #[test]
    fn one_challenge_with_quoted_and_token_values() {
        let items = parse_auth_items(
            r#"Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth,auth-int""#,
        )
        .unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_digest());
        assert_eq!(items[0].param("realm"), Some("example.com"));
        assert_eq!(items[0].param("algorithm"), Some("SHA-256"));
        assert_eq!(items[0].param("qop"), Some("auth,auth-int"));
    }

    #[test]
    fn two_challenges_in_one_value_with_commas_inside_quotes() {
        let items = parse_auth_items(
            r#"Digest realm="a,b", nonce="x", algorithm=SHA-256, Digest realm="a,b", nonce="y""#,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].param("realm"), Some("a,b"));
        assert_eq!(items[0].param("nonce"), Some("x"));
        assert_eq!(items[1].param("nonce"), Some("y"));
        assert_eq!(items[1].param("algorithm"), None);
    }

    #[test]
    fn escapes_case_and_whitespace() {
        let items = parse_auth_items(
            "  digest   REALM = \"say \\\"hi\\\" \\\\ there\" ,\t\r\n NONCE=n1 ,, ",
        )
        .unwrap();
        assert_eq!(items[0].scheme, "digest");
        assert!(items[0].is_digest());
        assert_eq!(items[0].param("realm"), Some(r#"say "hi" \ there"#));
        assert_eq!(items[0].param("nonce"), Some("n1"));
    }

    #[test]
    fn token68_schemes_are_skipped_cleanly() {
        let items =
            parse_auth_items(r#"Basic QWxhZGRpbjpvcGVu==, Digest realm="r", nonce="n""#).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].token68.as_deref(), Some("QWxhZGRpbjpvcGVu=="));
        assert_eq!(items[1].param("realm"), Some("r"));
    }

    #[test]
    fn scheme_without_params() {
        let items = parse_auth_items("Negotiate, Digest nonce=\"n\"").unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].params.is_empty());
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        for bad in [
            "",
            "   ",
            r#"Digest realm="unterminated"#,
            r#"Digest realm="x\"#,
            "Digest realm",
            "Digest realm=",
            r#"Digest realm="a" nonce="b""#,
            r#"Digest realm="a", realm="b""#,
            "=foo",
            r#"Digest realm="a", =x"#,
        ] {
            assert!(
                matches!(parse_auth_items(bad), Err(DigestError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let many = "Digest a=b, ".repeat(MAX_CHALLENGES + 1);
        assert!(parse_auth_items(&many).is_err());
        let params: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert!(parse_auth_items(&format!("Digest {}", params.join(","))).is_err());
    }

    #[test]
    fn non_ascii_in_quoted_strings_survives() {
        let items = parse_auth_items("Digest realm=\"caf\u{e9}\", nonce=\"n\"").unwrap();
        assert_eq!(items[0].param("realm"), Some("caf\u{e9}"));
    }

    #[test]
    fn quote_round_trips() {
        let original = r#"a "b" \c"#;
        let items = parse_auth_items(&format!("Digest x={}", quote(original))).unwrap();
        assert_eq!(items[0].param("x"), Some(original));
    }
}
