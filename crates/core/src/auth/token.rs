//! The Bearer token exchange: the request to the token service and its answer.
//!
//! distribution, "Token Authentication Specification": "the client will need to make a
//! `GET` request to the URL `https://auth.docker.io/token` using the `service` and `scope`
//! values from the `WWW-Authenticate` header", and the `scope` "query parameter should be
//! specified multiple times if there is more than one `scope` entry".

use std::fmt;
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use serde_json::{Map, Value};

use super::{AuthError, Challenge, Credential, Scheme, Scope};
use crate::time::{Instant, UnixTime};

/// How long before its expiry a token counts as stale, so that a request sent with it does
/// not reach the registry after it has expired. Tokens live at least 60 seconds, so a fresh
/// token is always usable for most of its life.
pub const FRESHNESS_MARGIN: Duration = Duration::from_secs(5);

/// "When omitted, this defaults to 60 seconds. For compatibility with older clients, a
/// token should never be returned with less than 60 seconds to live." distribution's client
/// raises any shorter `expires_in` to this minimum, and so does ferry.
const MINIMUM_LIFETIME_SECS: u64 = 60;

/// The request for a token that grants `scopes`, answering a Bearer `challenge`:
/// `GET {realm}?service={service}&scope={scope}&scope=...`, with `Authorization: Basic ...`
/// when a credential is given (anonymous otherwise).
///
/// An identity token goes as distribution's OAuth2 form instead ("Token Authentication
/// Implementation", OAuth2): `POST {realm}` with `grant_type=refresh_token`, `service`,
/// `client_id`, `refresh_token` and the space-separated `scope`, as docker sends it.
///
/// The realm must be an absolute `http` or `https` URL without userinfo; it may already
/// have a query, which is kept. A `#fragment` is dropped, as a client never sends it.
pub fn token_request(
    challenge: &Challenge,
    scopes: &[Scope],
    credential: Option<&Credential>,
) -> Result<http::Request<Vec<u8>>, AuthError> {
    if challenge.scheme != Scheme::Bearer {
        return Err(AuthError::UnsupportedScheme { scheme: challenge.scheme.to_string() });
    }
    let realm = challenge.realm().ok_or(AuthError::MissingRealm)?;
    let not_http = || AuthError::RealmNotHttp { realm: redact_userinfo(realm) };

    let mut url = realm.split('#').next().unwrap_or_default().to_owned();
    let mut separator = match url.find('?') {
        None => "?",
        Some(_) if url.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    let service = challenge.service().into_iter().map(|service| ("service", service.to_owned()));
    for (name, value) in service.chain(scopes.iter().map(|scope| ("scope", scope.to_string()))) {
        url.push_str(separator);
        url.push_str(name);
        url.push('=');
        push_percent_encoded(&mut url, &value);
        separator = "&";
    }

    let uri: http::Uri = url.parse().map_err(|_| not_http())?;
    let http_scheme =
        uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let plain_host = uri.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    if !(http_scheme && plain_host) {
        return Err(not_http());
    }
    if let Some(refresh_token) = credential.and_then(Credential::refresh_token) {
        return Ok(refresh_request(realm_without_query(&uri)?, challenge, scopes, refresh_token));
    }
    // The URI is already parsed, so building the request cannot fail.
    let mut request = http::Request::get(uri).body(Vec::new()).map_err(|_| not_http())?;
    if let Some(credential) = credential {
        // "Basic " and base64 are visible ASCII, which is always a valid header value.
        if let Ok(mut value) = HeaderValue::try_from(credential.basic_authorization()) {
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
        }
    }
    Ok(request)
}

/// The client ferry names itself as in OAuth2 requests.
const CLIENT_ID: &str = "ferry";

/// The realm with the query this function added taken off again: the form carries it.
fn realm_without_query(uri: &http::Uri) -> Result<http::Uri, AuthError> {
    let mut parts = uri.clone().into_parts();
    let path = uri.path().to_owned();
    parts.path_and_query =
        Some(path.parse().map_err(|_| AuthError::RealmNotHttp { realm: uri.to_string() })?);
    http::Uri::from_parts(parts).map_err(|_| AuthError::RealmNotHttp { realm: uri.to_string() })
}

/// `POST {realm}` with the OAuth2 refresh-token form.
fn refresh_request(
    realm: http::Uri,
    challenge: &Challenge,
    scopes: &[Scope],
    refresh_token: &str,
) -> http::Request<Vec<u8>> {
    let scope = scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    let fields = [
        ("grant_type", "refresh_token"),
        ("service", challenge.service().unwrap_or_default()),
        ("client_id", CLIENT_ID),
        ("refresh_token", refresh_token),
        ("scope", &scope),
    ];
    let mut body = String::new();
    for (name, value) in fields.into_iter().filter(|(_, v)| !v.is_empty()) {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(name);
        body.push('=');
        push_percent_encoded(&mut body, value);
    }
    let mut request = http::Request::new(body.into_bytes());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = realm;
    request
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    request
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as Go's
/// `url.QueryEscape` does for docker (`repository:a/b:pull` -> `repository%3Aa%2Fb%3Apull`).
fn push_percent_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The realm with any `user:password@` replaced, fit for an error message.
fn redact_userinfo(realm: &str) -> String {
    let (scheme, rest) = match realm.split_once("://") {
        Some((scheme, rest)) => (&realm[..scheme.len() + 3], rest),
        None => ("", realm),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
        None => realm.to_owned(),
    }
}

/// A Bearer token and when it stops being valid, on the caller's monotonic clock.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: String,
    expires_at: Instant,
    issued_at: Option<UnixTime>,
}

impl Token {
    /// Whether the token may still be sent at `now`: it is stale [`FRESHNESS_MARGIN`]
    /// before it expires.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now + FRESHNESS_MARGIN < self.expires_at
    }

    /// The `Authorization` header value, `Bearer <token>` (RFC 6750, 2.1).
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.value)
    }

    /// The opaque token itself.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// When the token expires, on the injected clock: `expires_in` after it was fetched,
    /// never less than 60 seconds (docker's token spec).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The token service's `issued_at`, for information (logs, clock-skew diagnostics).
    pub fn issued_at(&self) -> Option<UnixTime> {
        self.issued_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// Reads the token service's JSON answer, which arrived at `received_at`.
///
/// The spec's fields: `token`, and `access_token` "for compatibility with OAuth 2.0. ...
/// At least one of these fields must be specified, but both may also appear ... if they
/// differ the client's choice is undefined." ferry takes `token` when both are present and
/// non-empty (distribution's own client takes `access_token`).
///
/// `expires_in` is "the duration in seconds since the token was issued", and "if
/// `issued_at` is omitted, the expiration is from when the token exchange completed".
/// ferry always counts from `received_at` on the monotonic clock, never from `issued_at`:
/// the two clocks need not agree, and counting from receipt errs on the late side only by
/// the exchange's own latency, which [`FRESHNESS_MARGIN`] absorbs.
pub fn parse_token_response(body: &[u8], received_at: Instant) -> Result<Token, AuthError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Eof => "the body ends too early",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable value",
        };
        AuthError::TokenResponseJson { line: e.line(), column: e.column(), reason }
    })?;
    let Value::Object(fields) = json else {
        return Err(AuthError::TokenResponseNotObject);
    };
    let token = token_field(&fields, "token")?;
    let access_token = token_field(&fields, "access_token")?;
    let value = token.or(access_token).ok_or(AuthError::TokenMissing)?;
    let expires_in = match fields.get("expires_in") {
        None | Some(Value::Null) => MINIMUM_LIFETIME_SECS,
        // Negative values are raised to the minimum below; fractions truncate (`as` saturates).
        Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| n.as_f64().map_or(0, |f| f as u64)),
        Some(_) => {
            return Err(AuthError::TokenResponseField {
                field: "expires_in",
                expected: "a number of seconds",
            })
        }
    };
    let issued_at = match fields.get("issued_at") {
        None | Some(Value::Null) => None,
        Some(time) => Some(time.as_str().and_then(parse_rfc3339).ok_or(AuthError::TokenResponseField {
            field: "issued_at",
            expected: "an RFC 3339 time after 1970 such as `2009-11-10T23:00:00Z`",
        })?),
    };
    Ok(Token {
        value: value.to_owned(),
        expires_at: received_at + Duration::from_secs(expires_in.max(MINIMUM_LIFETIME_SECS)),
        issued_at,
    })
}

/// A token field: absent, null or empty is `None`. The value goes into an `Authorization`
/// header, so it must be visible ASCII; the error never shows the value.
fn token_field<'a>(fields: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, AuthError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(s)),
        Some(_) => Err(AuthError::TokenResponseField {
            field: name,
            expected: "a string of visible ASCII characters (it is sent in an Authorization header)",
        }),
    }
}

/// RFC 3339, 5.6: `full-date "T" partial-time time-offset`, with `time-secfrac` ignored and
/// "T" and "Z" accepted in lower case too. `None` for anything else, or before 1970.
fn parse_rfc3339(s: &str) -> Option<UnixTime> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        b.get(from..from + len)?
            .iter()
            .try_fold(0i64, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, c)| b.get(at) == Some(&c)) || !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let mut rest = b.get(19..)?;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        rest = &fraction[len..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |x: u8, y: u8| -> Option<i64> {
                (x.is_ascii_digit() && y.is_ascii_digit())
                    .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days_in_month = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant, days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (y.div_euclid(400), y.rem_euclid(400));
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok().map(UnixTime)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const SECRET: &str = "s3cr3t-T0KEN";

    fn bearer(params: &[(&str, &str)]) -> Challenge {
        let params: BTreeMap<_, _> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Challenge { scheme: Scheme::Bearer, params, token68: None }
    }

    fn at(secs: u64) -> Instant {
        Instant::from_origin(Duration::from_secs(secs))
    }

    fn not_http(realm: &str) -> Result<String, AuthError> {
        Err(AuthError::RealmNotHttp { realm: realm.to_owned() })
    }

    #[test]
    fn request_table() {
        let hub = [("realm", "https://auth.docker.io/token"), ("service", "registry.docker.io")];
        let two = vec![Scope::push_pull("samalba/my-app"), Scope::pull("library/busybox")];
        let cases: Vec<(Challenge, Vec<Scope>, Result<String, AuthError>)> = vec![
            (
                bearer(&hub),
                two,
                Ok("https://auth.docker.io/token?service=registry.docker.io\
                    &scope=repository%3Asamalba%2Fmy-app%3Apull%2Cpush\
                    &scope=repository%3Alibrary%2Fbusybox%3Apull"
                    .to_owned()),
            ),
            (bearer(&hub), vec![], Ok("https://auth.docker.io/token?service=registry.docker.io".to_owned())),
            (
                bearer(&[("realm", "http://127.0.0.1:5001/token")]),
                vec![],
                Ok("http://127.0.0.1:5001/token".to_owned()),
            ),
            (
                bearer(&[("realm", "https://a/token?x=1"), ("service", "my reg")]),
                vec![Scope::catalog()],
                Ok("https://a/token?x=1&service=my%20reg&scope=registry%3Acatalog%3A%2A".to_owned()),
            ),
            (
                bearer(&[("realm", "https://a/token?")]),
                vec![Scope::pull("x")],
                Ok("https://a/token?scope=repository%3Ax%3Apull".to_owned()),
            ),
            (
                bearer(&[("realm", "HTTPS://a/token#frag")]),
                vec![Scope::pull("x")],
                Ok("https://a/token?scope=repository%3Ax%3Apull".to_owned()),
            ),
            (
                Challenge { scheme: Scheme::Basic, params: BTreeMap::new(), token68: None },
                vec![],
                Err(AuthError::UnsupportedScheme { scheme: "Basic".to_owned() }),
            ),
            (bearer(&[("service", "reg")]), vec![], Err(AuthError::MissingRealm)),
            (bearer(&[("realm", "")]), vec![], not_http("")),
            (bearer(&[("realm", "/token")]), vec![], not_http("/token")),
            (bearer(&[("realm", "auth.docker.io/token")]), vec![], not_http("auth.docker.io/token")),
            (bearer(&[("realm", "ftp://a/token")]), vec![], not_http("ftp://a/token")),
            (bearer(&[("realm", "https://a b/token")]), vec![], not_http("https://a b/token")),
            (bearer(&[("realm", "https:///token")]), vec![], not_http("https:///token")),
            (
                bearer(&[("realm", "https://user:hunter2@a/token")]),
                vec![],
                not_http("https://<redacted>@a/token"),
            ),
            (bearer(&[("realm", "user:hunter2@a/token")]), vec![], not_http("<redacted>@a/token")),
        ];
        for (challenge, scopes, expected) in cases {
            let request = token_request(&challenge, &scopes, None);
            assert_eq!(request.as_ref().map(|r| r.uri().to_string()).map_err(Clone::clone), expected);
            if let Ok(request) = request {
                assert_eq!(request.method(), http::Method::GET);
                assert!(request.headers().is_empty() && request.body().is_empty());
            }
        }
    }

    #[test]
    fn request_carries_basic_credentials() {
        let challenge = bearer(&[("realm", "https://a/token")]);
        let credential = Credential::new("Aladdin", "open sesame");
        let request = token_request(&challenge, &[Scope::pull("x")], Some(&credential)).unwrap();
        let value = &request.headers()[AUTHORIZATION];
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(value.is_sensitive());
    }

    #[test]
    fn an_identity_token_is_exchanged_by_the_oauth2_form() {
        let challenge = bearer(&[("realm", "https://a/oauth2/token?x=1"), ("service", "reg.test")]);
        let credential = Credential::identity_token("r3fresh/+");
        let scopes = [Scope::pull("x"), Scope::push_pull("y")];
        let request = token_request(&challenge, &scopes, Some(&credential)).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().to_string(), "https://a/oauth2/token");
        assert_eq!(request.headers()[http::header::CONTENT_TYPE], "application/x-www-form-urlencoded");
        assert!(request.headers().get(AUTHORIZATION).is_none(), "the token travels in the form only");
        assert_eq!(
            String::from_utf8(request.body().clone()).unwrap(),
            "grant_type=refresh_token&service=reg.test&client_id=ferry&refresh_token=r3fresh%2F%2B\
             &scope=repository%3Ax%3Apull%20repository%3Ay%3Apull%2Cpush"
        );
    }

    #[test]
    fn response_table() {
        let field = |field, expected| Err(AuthError::TokenResponseField { field, expected });
        let visible = "a string of visible ASCII characters (it is sent in an Authorization header)";
        let rfc3339 = "an RFC 3339 time after 1970 such as `2009-11-10T23:00:00Z`";
        let t0 = at(1_000);
        type Parts<'a> = (&'a str, Instant, Option<UnixTime>);
        let cases: Vec<(String, Result<Parts, AuthError>)> = vec![
            (
                format!(r#"{{"token":"{SECRET}","expires_in":3600,"issued_at":"2009-11-10T23:00:00Z"}}"#),
                Ok((SECRET, at(4_600), Some(UnixTime(1_257_894_000)))),
            ),
            (format!(r#"{{"access_token":"{SECRET}"}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":"{SECRET}","access_token":"other"}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":"","access_token":"{SECRET}"}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":null,"access_token":"{SECRET}"}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":"{SECRET}","expires_in":30}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":"{SECRET}","expires_in":-5}}"#), Ok((SECRET, at(1_060), None))),
            (format!(r#"{{"token":"{SECRET}","expires_in":300.9}}"#), Ok((SECRET, at(1_300), None))),
            (format!(r#"{{"token":"{SECRET}","expires_in":null}}"#), Ok((SECRET, at(1_060), None))),
            (
                format!(r#"{{"token":"{SECRET}","expires_in":1e300}}"#),
                Ok((SECRET, t0 + Duration::from_secs(u64::MAX), None)),
            ),
            (
                format!(r#"{{"token":"{SECRET}","refresh_token":"r","scope":"x","extra":[1]}}"#),
                Ok((SECRET, at(1_060), None)),
            ),
            (
                String::new(),
                Err(AuthError::TokenResponseJson { line: 1, column: 0, reason: "the body ends too early" }),
            ),
            (
                format!(r#"{{"token":"{SECRET}""#),
                Err(AuthError::TokenResponseJson { line: 1, column: 23, reason: "the body ends too early" }),
            ),
            (
                format!("<html>{SECRET}</html>"),
                Err(AuthError::TokenResponseJson { line: 1, column: 1, reason: "syntax error" }),
            ),
            (format!(r#"["{SECRET}"]"#), Err(AuthError::TokenResponseNotObject)),
            (r#"{"expires_in":3600}"#.to_owned(), Err(AuthError::TokenMissing)),
            (r#"{"token":"","access_token":""}"#.to_owned(), Err(AuthError::TokenMissing)),
            (r#"{"token":12345}"#.to_owned(), field("token", visible)),
            (format!(r#"{{"token":"{SECRET} x"}}"#), field("token", visible)),
            (format!(r#"{{"token":"ok","access_token":"{SECRET}\n"}}"#), field("access_token", visible)),
            (
                format!(r#"{{"token":"{SECRET}","expires_in":"3600"}}"#),
                field("expires_in", "a number of seconds"),
            ),
            (format!(r#"{{"token":"{SECRET}","issued_at":"yesterday"}}"#), field("issued_at", rfc3339)),
            (format!(r#"{{"token":"{SECRET}","issued_at":1257894000}}"#), field("issued_at", rfc3339)),
        ];
        for (body, expected) in cases {
            let got = parse_token_response(body.as_bytes(), t0);
            let got_parts =
                got.as_ref().map(|t| (t.value(), t.expires_at(), t.issued_at())).map_err(Clone::clone);
            assert_eq!(got_parts, expected, "{body}");
            if let Err(err) = got {
                assert!(!err.to_string().contains(SECRET), "{err}");
            }
        }
    }

    #[test]
    fn freshness_has_a_margin() {
        let token = parse_token_response(br#"{"token":"t","expires_in":60}"#, at(100)).unwrap();
        let cases = [(100, true), (154, true), (155, false), (160, false), (1_000, false)];
        for (now, fresh) in cases {
            assert_eq!(token.is_fresh(at(now)), fresh, "at {now}");
        }
        assert_eq!(token.authorization(), "Bearer t");
    }

    #[test]
    fn debug_hides_the_token() {
        let token = parse_token_response(format!(r#"{{"token":"{SECRET}"}}"#).as_bytes(), at(0)).unwrap();
        let debug = format!("{token:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert_eq!(debug, r#"Token { value: "<redacted>", expires_at: Instant(60s), issued_at: None }"#);
    }

    #[test]
    fn rfc3339_table() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2009-11-10T23:00:00Z", Some(1_257_894_000)),
            ("2009-11-10t23:00:00.123456789z", Some(1_257_894_000)),
            ("2009-11-11T01:30:00+02:30", Some(1_257_894_000)),
            ("2009-11-10T20:00:00-03:00", Some(1_257_894_000)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("2024-02-29T12:00:00Z", Some(1_709_208_000)),
            ("2016-12-31T23:59:60Z", Some(1_483_228_800)),
            ("1969-12-31T23:59:59Z", None),
            ("1970-01-01T00:30:00+01:00", None),
            ("2023-02-29T00:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            ("2009-13-10T23:00:00Z", None),
            ("2009-00-10T23:00:00Z", None),
            ("2009-11-00T23:00:00Z", None),
            ("2009-11-10T24:00:00Z", None),
            ("2009-11-10T23:00:00", None),
            ("2009-11-10T23:00:00.Z", None),
            ("2009-11-10T23:00:00+0200", None),
            ("2009-11-10T23:00:00+24:00", None),
            ("2009-11-10 23:00:00Z", None),
            ("2009-11-10T23:00:00Zjunk", None),
            ("+009-11-10T23:00:00Z", None),
            ("2009-11-10T23:00:0é", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339(text), expected.map(UnixTime), "{text}");
        }
    }

    #[test]
    fn redaction_keeps_what_is_not_secret() {
        let cases = [
            ("https://a/token", "https://a/token"),
            ("https://u:p@a/t@x", "https://<redacted>@a/t@x"),
            ("https://u@p@a?q=@", "https://<redacted>@a?q=@"),
            ("no-scheme", "no-scheme"),
        ];
        for (realm, shown) in cases {
            assert_eq!(redact_userinfo(realm), shown);
        }
    }
}
