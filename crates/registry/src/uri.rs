//! Percent-decoding and query strings, as the registry's paths and the token endpoint
//! take them.

/// Decodes `%XX` escapes (clients may send `sha256%3A…`). Invalid escapes stay as they
/// are, and fail validation later.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string's pairs, percent-decoded. A `+` stays a `+`: no value the API takes
/// has spaces, while media types (`artifactType`) do have `+`.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The pairs of an `application/x-www-form-urlencoded` body (the OAuth2 token request):
/// like a query string, except that `+` is a space.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body).replace('+', " ");
    query_pairs(Some(&text))
}

pub fn query_value(uri: &http::Uri, key: &str) -> Option<String> {
    query_pairs(uri.query()).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%3Ab%2f"), "a:b/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let pairs = query_pairs(Some("n=2&last=a%2Bb&x&artifactType=a+b"));
        assert_eq!(pairs[1], ("last".into(), "a+b".into()));
        assert_eq!(pairs[2], ("x".into(), String::new()));
        assert_eq!(pairs[3], ("artifactType".into(), "a+b".into()));
        let form = form_pairs(
            b"grant_type=password&password=a+b%2Bc&scope=repository%3Aa%3Apull+repository%3Ab%3Apull",
        );
        assert_eq!(form[1], ("password".into(), "a b+c".into()));
        assert_eq!(form[2], ("scope".into(), "repository:a:pull repository:b:pull".into()));
    }
}
