//! `WWW-Authenticate` challenges (RFC 7235, section 4.1).
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-scheme = token
//! auth-param  = token BWS "=" BWS ( token / quoted-string )
//! token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! One header may hold several challenges, and a challenge's parameters are separated by
//! the same comma that separates challenges. After a comma, a token followed by `=` is
//! another parameter of the current challenge; any other token starts a new challenge.
//! RFC 7235, 2.1: the scheme is "a case-insensitive token" and "the name token is matched
//! case-insensitively"; "each parameter name MUST only occur once per challenge".
//!
//! distribution's own client stops at the first problem and keeps what it has parsed so
//! far. ferry reports the problem instead, so a registry that sends a broken challenge gets
//! a clear error rather than a token request without a realm.

use std::collections::BTreeMap;
use std::fmt;

use super::AuthError;

/// An authentication scheme, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// `Basic` (RFC 7617): the credential goes with every request.
    Basic,
    /// `Bearer` (RFC 6750): credentials buy a token from the `realm`, and the token goes with
    /// the requests (docker's token authentication specification).
    Bearer,
    /// Any other scheme, lowercased (`digest`, `negotiate`, ...).
    Other(String),
}

impl Scheme {
    fn from_token(token: &str) -> Scheme {
        let lower = token.to_ascii_lowercase();
        match lower.as_str() {
            "basic" => Scheme::Basic,
            "bearer" => Scheme::Bearer,
            _ => Scheme::Other(lower),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Basic => f.write_str("Basic"),
            Scheme::Bearer => f.write_str("Bearer"),
            Scheme::Other(name) => f.write_str(name),
        }
    }
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, compared case-insensitively (RFC 7235, 2.1).
    pub scheme: Scheme,
    /// Parameters by lowercased name, values unquoted and unescaped.
    pub params: BTreeMap<String, String>,
    /// The `token68` form (`Negotiate YIIC...`), which a challenge has instead of parameters.
    pub token68: Option<String>,
}

impl Challenge {
    /// The `realm`: for Bearer, the token service's URL.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// The `service` to name in the token request.
    pub fn service(&self) -> Option<&str> {
        self.param("service")
    }

    /// The `scope` the registry wants, possibly several separated by spaces
    /// (see [`parse_scopes`](super::parse_scopes)).
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// The RFC 6750 `error` code, such as `invalid_token` or `insufficient_scope`.
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// What is wrong in a malformed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeProblem {
    /// No challenge at all.
    #[error("the header is empty")]
    Empty,
    /// RFC 7235: `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`; a parameter
    /// cannot come first.
    #[error("expected an auth scheme such as `Bearer` before `{name}=`")]
    MissingScheme {
        /// The parameter found first.
        name: String,
    },
    /// A character the grammar has no place for here.
    #[error("unexpected {found:?}")]
    Unexpected {
        /// The character.
        found: char,
    },
    /// `auth-param = token BWS "=" BWS ( token / quoted-string )`.
    #[error("parameter `{name}` has no `=`")]
    MissingEquals {
        /// The parameter's name.
        name: String,
    },
    /// An `=` with nothing after it.
    #[error("parameter `{name}` has no value")]
    MissingValue {
        /// The parameter's name.
        name: String,
    },
    /// The header ended inside a quoted-string.
    #[error("the quoted value of `{name}` has no closing `\"`")]
    UnterminatedQuote {
        /// The parameter's name.
        name: String,
    },
    /// RFC 9110 `qdtext` excludes control characters (other than tab).
    #[error("the quoted value of `{name}` contains a control character")]
    ControlCharacter {
        /// The parameter's name.
        name: String,
    },
    /// RFC 7235, 2.1: "Each parameter name MUST only occur once per challenge."
    #[error("parameter `{name}` appears twice in one challenge")]
    DuplicateParameter {
        /// The parameter's name.
        name: String,
    },
    /// Challenges and parameters are comma-separated lists.
    #[error("expected `,` after parameter `{name}`")]
    MissingComma {
        /// The parameter before the gap.
        name: String,
    },
}

/// Parses every challenge in one `WWW-Authenticate` header value, in order.
pub fn parse_www_authenticate(header: &str) -> Result<Vec<Challenge>, AuthError> {
    Parser { text: header, pos: 0 }.challenges().map_err(|(at, problem)| AuthError::MalformedChallenge {
        header: header.to_owned(),
        at,
        problem,
    })
}

/// The challenge ferry answers: the first Bearer one, else the first Basic one.
///
/// Bearer comes first because a token is scoped to the repositories and actions at hand and
/// keeps the password away from the registry itself.
pub fn select(challenges: &[Challenge]) -> Option<&Challenge> {
    let first = |scheme: Scheme| challenges.iter().find(|c| c.scheme == scheme);
    first(Scheme::Bearer).or_else(|| first(Scheme::Basic))
}

type Failure = (usize, ChallengeProblem);

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

/// RFC 7230, 3.2.6: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn unexpected(&self) -> Failure {
        let found = self.text[self.pos..].chars().next().unwrap_or_default();
        (self.pos, ChallengeProblem::Unexpected { found })
    }

    fn skip_whitespace(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips whitespace and the empty list elements RFC 7230 (7) allows (`, ,Basic`).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    /// A token (ASCII only, so its end is a char boundary), possibly empty.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn challenges(mut self) -> Result<Vec<Challenge>, Failure> {
        self.skip_separators();
        if self.peek().is_none() {
            return Err((0, ChallengeProblem::Empty));
        }
        let mut challenges = Vec::new();
        while self.peek().is_some() {
            challenges.push(self.challenge()?);
        }
        Ok(challenges)
    }

    /// One challenge, and the separators after it.
    fn challenge(&mut self) -> Result<Challenge, Failure> {
        let scheme = self.token();
        if scheme.is_empty() {
            return Err(self.unexpected());
        }
        let mut challenge =
            Challenge { scheme: Scheme::from_token(scheme), params: BTreeMap::new(), token68: None };
        let spaced = self.skip_whitespace();
        match self.peek() {
            None => return Ok(challenge),
            Some(b',') => {
                self.skip_separators();
                return Ok(challenge);
            }
            Some(b'=') if !spaced => {
                return Err((self.pos, ChallengeProblem::MissingScheme { name: scheme.to_owned() }))
            }
            Some(_) if !spaced => return Err(self.unexpected()),
            Some(_) => {}
        }
        if let Some(token68) = self.token68() {
            challenge.token68 = Some(token68.to_owned());
            self.skip_separators();
            return Ok(challenge);
        }
        loop {
            let name = self.param(&mut challenge.params)?;
            self.skip_whitespace();
            match self.peek() {
                None => return Ok(challenge),
                Some(b',') => self.skip_separators(),
                Some(_) => return Err((self.pos, ChallengeProblem::MissingComma { name })),
            }
            if self.peek().is_none() || !self.param_follows() {
                return Ok(challenge);
            }
        }
    }

    /// A token68 that fills the rest of the challenge, if that is what follows.
    fn token68(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut end = start;
        while bytes.get(end).copied().is_some_and(is_token68_char) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        let mut after = end;
        while matches!(bytes.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        if !matches!(bytes.get(after), None | Some(b',')) {
            return None;
        }
        self.pos = end;
        Some(&self.text[start..end])
    }

    /// Whether the next list element is a parameter (`name =`) rather than a new challenge.
    fn param_follows(&mut self) -> bool {
        let start = self.pos;
        let named = !self.token().is_empty();
        self.skip_whitespace();
        let follows = named && self.peek() == Some(b'=');
        self.pos = start;
        follows
    }

    /// One `name=value` parameter; returns its lowercased name.
    fn param(&mut self, params: &mut BTreeMap<String, String>) -> Result<String, Failure> {
        let name_at = self.pos;
        let name = self.token();
        if name.is_empty() {
            return Err(self.unexpected());
        }
        self.skip_whitespace();
        if self.peek() != Some(b'=') {
            return Err((self.pos, ChallengeProblem::MissingEquals { name: name.to_owned() }));
        }
        self.pos += 1;
        self.skip_whitespace();
        let value = if self.peek() == Some(b'"') {
            self.quoted(name)?
        } else {
            let value = self.token();
            if value.is_empty() {
                return Err((self.pos, ChallengeProblem::MissingValue { name: name.to_owned() }));
            }
            value.to_owned()
        };
        let name = name.to_ascii_lowercase();
        if params.contains_key(&name) {
            return Err((name_at, ChallengeProblem::DuplicateParameter { name }));
        }
        params.insert(name.clone(), value);
        Ok(name)
    }

    /// RFC 7230, 3.2.6: `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`, where
    /// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
    fn quoted(&mut self, name: &str) -> Result<String, Failure> {
        let open = self.pos;
        let mut value = String::new();
        let mut chars = self.text[open + 1..].char_indices();
        while let Some((offset, c)) = chars.next() {
            let c = match c {
                '"' => {
                    self.pos = open + 1 + offset + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => escaped,
                    None => break,
                },
                c => c,
            };
            if c.is_ascii_control() && c != '\t' {
                let problem = ChallengeProblem::ControlCharacter { name: name.to_owned() };
                return Err((open + 1 + offset, problem));
            }
            value.push(c);
        }
        Err((open, ChallengeProblem::UnterminatedQuote { name: name.to_owned() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(scheme: Scheme, params: &[(&str, &str)]) -> Challenge {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Challenge { scheme, params, token68: None }
    }

    fn other(name: &str) -> Scheme {
        Scheme::Other(name.to_owned())
    }

    fn bad(header: &str, at: usize, problem: ChallengeProblem) -> Result<Vec<Challenge>, AuthError> {
        Err(AuthError::MalformedChallenge { header: header.to_owned(), at, problem })
    }

    fn name(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn parse_table() {
        use ChallengeProblem as P;
        use Scheme::{Basic, Bearer};
        let hub = [
            ("realm", "https://auth.docker.io/token"),
            ("service", "registry.docker.io"),
            ("scope", "repository:samalba/my-app:pull,push"),
        ];
        let mut negotiate = ch(other("negotiate"), &[]);
        negotiate.token68 = Some("YIIC+/ab==".to_owned());
        let cases: Vec<(&str, Result<Vec<Challenge>, AuthError>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
                Ok(vec![ch(Bearer, &hub)]),
            ),
            (r#"Basic realm="Registry Realm""#, Ok(vec![ch(Basic, &[("realm", "Registry Realm")])])),
            (
                r#"Bearer realm="https://a/token",service="reg", Basic realm="x""#,
                Ok(vec![
                    ch(Bearer, &[("realm", "https://a/token"), ("service", "reg")]),
                    ch(Basic, &[("realm", "x")]),
                ]),
            ),
            (
                r#"bEaReR ReAlM="https://a/token", SERVICE=reg"#,
                Ok(vec![ch(Bearer, &[("realm", "https://a/token"), ("service", "reg")])]),
            ),
            // RFC 7235, 2.1: schemes are case-insensitive, whatever case the registry uses.
            (
                r#"BEARER realm="r", basic realm="b", DiGeSt realm="d""#,
                Ok(vec![
                    ch(Bearer, &[("realm", "r")]),
                    ch(Basic, &[("realm", "b")]),
                    ch(other("digest"), &[("realm", "d")]),
                ]),
            ),
            (
                "  Bearer   realm = \"r\"  ,\t service\t=\t\"s\"  ",
                Ok(vec![ch(Bearer, &[("realm", "r"), ("service", "s")])]),
            ),
            (
                r#"Bearer scope="repository:a:pull,push repository:b:pull""#,
                Ok(vec![ch(Bearer, &[("scope", "repository:a:pull,push repository:b:pull")])]),
            ),
            (r#"Basic realm="say \"hi\" \\ bye""#, Ok(vec![ch(Basic, &[("realm", r#"say "hi" \ bye"#)])])),
            (r#"Basic realm="""#, Ok(vec![ch(Basic, &[("realm", "")])])),
            (r#"Basic realm="café ☕""#, Ok(vec![ch(Basic, &[("realm", "café ☕")])])),
            (
                r#"Bearer realm="r",error="insufficient_scope",scope="repository:x:push""#,
                Ok(vec![ch(
                    Bearer,
                    &[("realm", "r"), ("error", "insufficient_scope"), ("scope", "repository:x:push")],
                )]),
            ),
            ("Negotiate YIIC+/ab==", Ok(vec![negotiate.clone()])),
            (
                r#"Negotiate YIIC+/ab== , Basic realm="x""#,
                Ok(vec![negotiate.clone(), ch(Basic, &[("realm", "x")])]),
            ),
            ("Bearer", Ok(vec![ch(Bearer, &[])])),
            ("Basic, Bearer", Ok(vec![ch(Basic, &[]), ch(Bearer, &[])])),
            (r#", ,Bearer realm="r",, ,Basic,"#, Ok(vec![ch(Bearer, &[("realm", "r")]), ch(Basic, &[])])),
            (
                r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
                Ok(vec![
                    ch(
                        other("newauth"),
                        &[("realm", "apps"), ("type", "1"), ("title", r#"Login to "apps""#)],
                    ),
                    ch(Basic, &[("realm", "simple")]),
                ]),
            ),
            ("", bad("", 0, P::Empty)),
            (" , ", bad(" , ", 0, P::Empty)),
            (
                r#"Bearer realm="https://a/token"#,
                bad(r#"Bearer realm="https://a/token"#, 13, P::UnterminatedQuote { name: name("realm") }),
            ),
            (
                r#"Basic realm="x\"#,
                bad(r#"Basic realm="x\"#, 12, P::UnterminatedQuote { name: name("realm") }),
            ),
            (r#"Bearer realm "x""#, bad(r#"Bearer realm "x""#, 13, P::MissingEquals { name: name("realm") })),
            (r#"realm="x""#, bad(r#"realm="x""#, 5, P::MissingScheme { name: name("realm") })),
            // RFC 7235: `realm=` with nothing after it is a token68, not a parameter.
            (r#"Bearer realm=,"#, Ok(vec![Challenge { token68: Some(name("realm=")), ..ch(Bearer, &[]) }])),
            (
                r#"Bearer a=b, realm="#,
                bad(r#"Bearer a=b, realm="#, 18, P::MissingValue { name: name("realm") }),
            ),
            (
                r#"Bearer a=b, realm=,"#,
                bad(r#"Bearer a=b, realm=,"#, 18, P::MissingValue { name: name("realm") }),
            ),
            (
                r#"Bearer realm="a" service="b""#,
                bad(r#"Bearer realm="a" service="b""#, 17, P::MissingComma { name: name("realm") }),
            ),
            (
                r#"Bearer realm="a", Realm="b""#,
                bad(r#"Bearer realm="a", Realm="b""#, 18, P::DuplicateParameter { name: name("realm") }),
            ),
            (
                "Basic realm=\"a\nb\"",
                bad("Basic realm=\"a\nb\"", 14, P::ControlCharacter { name: name("realm") }),
            ),
            (r#"Bearer "x""#, bad(r#"Bearer "x""#, 7, P::Unexpected { found: '"' })),
            (r#"Bearer"x""#, bad(r#"Bearer"x""#, 6, P::Unexpected { found: '"' })),
            ("\"Bearer\"", bad("\"Bearer\"", 0, P::Unexpected { found: '"' })),
            (
                r#"Bearer realm="r", Basic "x""#,
                bad(r#"Bearer realm="r", Basic "x""#, 24, P::Unexpected { found: '"' }),
            ),
            ("Bearer a=b é", bad("Bearer a=b é", 11, P::MissingComma { name: name("a") })),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_www_authenticate(header), expected, "header {header:?}");
        }
    }

    #[test]
    fn accessors_read_lowercased_params() {
        let challenges = parse_www_authenticate(
            r#"Bearer Realm="https://a/token",Service="reg",Scope="repository:x:pull",Error="invalid_token""#,
        )
        .unwrap();
        let challenge = &challenges[0];
        assert_eq!(challenge.realm(), Some("https://a/token"));
        assert_eq!(challenge.service(), Some("reg"));
        assert_eq!(challenge.scope(), Some("repository:x:pull"));
        assert_eq!(challenge.error(), Some("invalid_token"));
        let bare = &parse_www_authenticate("Basic").unwrap()[0];
        assert_eq!((bare.realm(), bare.service(), bare.scope(), bare.error()), (None, None, None, None));
    }

    #[test]
    fn select_prefers_bearer_then_basic() {
        let cases: [(&str, Option<Scheme>); 6] = [
            (r#"Basic realm="x", Bearer realm="y""#, Some(Scheme::Bearer)),
            (r#"Bearer realm="y", Basic realm="x""#, Some(Scheme::Bearer)),
            (r#"Digest realm="d", Basic realm="x""#, Some(Scheme::Basic)),
            (r#"basic realm="x", BEARER realm="y""#, Some(Scheme::Bearer)),
            (r#"Digest realm="d""#, None),
            ("Negotiate abc", None),
        ];
        for (header, expected) in cases {
            let challenges = parse_www_authenticate(header).unwrap();
            assert_eq!(select(&challenges).map(|c| c.scheme.clone()), expected, "header {header:?}");
        }
        assert_eq!(select(&[]), None);
    }

    #[test]
    fn scheme_display() {
        assert_eq!(Scheme::Basic.to_string(), "Basic");
        assert_eq!(Scheme::Bearer.to_string(), "Bearer");
        assert_eq!(other("digest").to_string(), "digest");
    }

    #[test]
    fn error_message_names_the_header() {
        let err = parse_www_authenticate(r#"Bearer realm="x"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"malformed WWW-Authenticate header "Bearer realm=\"x": the quoted value of `realm` has no closing `"` (at byte 13); the registry's challenge does not follow RFC 7235, report it to the registry's operator"#
        );
    }

    #[test]
    fn never_panics_on_prefixes() {
        let header = r#"Bearer realm="https://a/tök\"en",service=reg, Negotiate ab+/==, Basic realm="x""#;
        for (end, _) in header.char_indices() {
            let _ = parse_www_authenticate(&header[..end]);
        }
        for bytes in [&b"\\"[..], b"=", b",=", b"a =", b"a b=", b"a b=\"", b"a\x7f"] {
            let _ = parse_www_authenticate(std::str::from_utf8(bytes).unwrap());
        }
    }
}
