//! Auth and CORS at the HTTP level: Basic auth from htpasswd, the Bearer token flow,
//! anonymous pull, catalog protection, and CORS preflights that succeed with auth on.

#[path = "support/mod.rs"]
mod support;

use support::{get, request, sha256, write_htpasswd, Ferry, Response, TempDir};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pass";
const ORIGIN: &str = "http://page.example:8080";

fn start(dir: &TempDir, extra: &[&str]) -> Ferry {
    let htpasswd = write_htpasswd(dir, USER, PASSWORD);
    let htpasswd = htpasswd.to_str().unwrap().to_owned();
    let mut args = vec!["--htpasswd", htpasswd.as_str()];
    args.extend_from_slice(extra);
    Ferry::with_root(&dir.join("data"), &args)
}

/// Pushes a blob in one POST with the given Authorization header value.
fn push(url: &str, repo: &str, bytes: &[u8], authorization: Option<&str>) -> Response {
    let mut r =
        request("POST", &format!("{url}/v2/{repo}/blobs/uploads/?digest={}", sha256(bytes))).body(bytes);
    if let Some(value) = authorization {
        r = r.header("Authorization", value);
    }
    r.send()
}

fn basic() -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")))
}

#[test]
fn basic_auth() {
    let dir = TempDir::new("basic");
    let ferry = start(&dir, &[]);
    let r = get(&format!("{}/v2/", ferry.url));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ferry\""));
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    assert_eq!(request("GET", &format!("{}/v2/", ferry.url)).basic(USER, PASSWORD).send().status, 200);
    assert_eq!(request("GET", &format!("{}/v2/", ferry.url)).basic(USER, "wrong").send().status, 401);
    assert_eq!(request("GET", &format!("{}/v2/", ferry.url)).basic("mallory", PASSWORD).send().status, 401);

    assert_eq!(push(&ferry.url, "r", b"blob", None).status, 401);
    assert_eq!(push(&ferry.url, "r", b"blob", Some(&basic())).status, 201);
    let blob = format!("{}/v2/r/blobs/{}", ferry.url, sha256(b"blob"));
    assert_eq!(get(&blob).status, 401, "no anonymous pull unless configured");
    assert_eq!(request("GET", &blob).basic(USER, PASSWORD).send().body, b"blob");
    // The catalog needs auth when auth is on; so do bad paths (no information leaks).
    assert_eq!(get(&format!("{}/v2/_catalog", ferry.url)).status, 401);
    assert_eq!(
        request("GET", &format!("{}/v2/_catalog", ferry.url)).basic(USER, PASSWORD).send().status,
        200
    );
    assert_eq!(get(&format!("{}/v2/BAD/manifests/x", ferry.url)).status, 401);
    // Health checks stay open.
    assert_eq!(get(&format!("{}/healthz", ferry.url)).status, 200);
}

#[test]
fn anonymous_pull() {
    let dir = TempDir::new("anonymous");
    let ferry = start(&dir, &["--anonymous-pull"]);
    assert_eq!(push(&ferry.url, "pub/r", b"data", Some(&basic())).status, 201);
    let blob = format!("{}/v2/pub/r/blobs/{}", ferry.url, sha256(b"data"));
    assert_eq!(get(&blob).body, b"data", "anonymous pull");
    assert_eq!(push(&ferry.url, "pub/r", b"more", None).status, 401, "anonymous push");
    assert_eq!(request("DELETE", &blob).send().status, 401, "anonymous delete");
    assert_eq!(get(&format!("{}/v2/_catalog", ferry.url)).status, 401, "anonymous catalog");
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn challenge(r: &Response) -> Vec<(String, String)> {
    let header = r.header("www-authenticate").expect("challenge");
    let params = header.strip_prefix("Bearer ").unwrap_or_else(|| panic!("not Bearer: {header}"));
    params
        .split("\",")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn token(realm: &str, service: &str, scope: &str, basic_auth: bool) -> Response {
    let mut r = request("GET", &format!("{realm}?service={service}&scope={scope}"));
    if basic_auth {
        r = r.basic(USER, PASSWORD);
    }
    r.send()
}

#[test]
fn token_flow() {
    let dir = TempDir::new("token");
    let ferry = start(&dir, &["--token", "--token-ttl", "2"]);
    let r = get(&format!("{}/v2/", ferry.url));
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert_eq!(c[0], ("realm".into(), format!("{}/token", ferry.url)));
    assert_eq!(c[1], ("service".into(), "ferry".into()));
    let realm = &c[0].1;

    // A push without a token names the scope it needs.
    let r = push(&ferry.url, "team/app", b"layer", None);
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains(&("scope".into(), "repository:team/app:pull,push".into())));

    // Wrong credentials get no token.
    let r = request("GET", &format!("{realm}?service=ferry&scope=repository:team/app:pull"))
        .basic(USER, "nope")
        .send();
    assert_eq!(r.status, 401);

    let r = token(realm, "ferry", "repository:team/app:pull,push", true);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 2);
    let push_token = format!("Bearer {}", body["token"].as_str().unwrap());
    assert_eq!(push(&ferry.url, "team/app", b"layer", Some(&push_token)).status, 201);
    // Scoped per repository and action.
    let r = push(&ferry.url, "team/other", b"layer", Some(&push_token));
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains(&("error".into(), "insufficient_scope".into())));
    let pull_token = format!(
        "Bearer {}",
        token(realm, "ferry", "repository:team/app:pull", true).json()["token"].as_str().unwrap()
    );
    assert_eq!(push(&ferry.url, "team/app", b"x", Some(&pull_token)).status, 401);
    let blob = format!("{}/v2/team/app/blobs/{}", ferry.url, sha256(b"layer"));
    assert_eq!(request("GET", &blob).header("Authorization", &pull_token).send().body, b"layer");
    // A forged token is refused.
    let forged = format!("{}x", pull_token);
    assert_eq!(request("GET", &blob).header("Authorization", &forged).send().status, 401);
    // The catalog needs its own scope.
    let url = format!("{}/v2/_catalog", ferry.url);
    assert_eq!(request("GET", &url).header("Authorization", &push_token).send().status, 401);
    let catalog = format!(
        "Bearer {}",
        token(realm, "ferry", "registry:catalog:*", true).json()["token"].as_str().unwrap()
    );
    assert_eq!(request("GET", &url).header("Authorization", &catalog).send().status, 200);
    // Anonymous tokens grant nothing without anonymous pull.
    let anon = token(realm, "ferry", "repository:team/app:pull", false);
    assert_eq!(anon.status, 200);
    let anon = format!("Bearer {}", anon.json()["token"].as_str().unwrap());
    assert_eq!(request("GET", &blob).header("Authorization", &anon).send().status, 401);
    // Tokens expire.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = request("GET", &blob).header("Authorization", &pull_token).send();
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains(&("error".into(), "invalid_token".into())));
}

#[test]
fn cors_with_auth_on() {
    let dir = TempDir::new("cors");
    let ferry = start(&dir, &["--token", "--cors-origin", ORIGIN, "--cors-allow-credentials"]);
    // Preflight: 204 without credentials, everything a pushing page needs.
    let r = request("OPTIONS", &format!("{}/v2/web/app/blobs/uploads/", ferry.url))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "PATCH")
        .header("Access-Control-Request-Headers", "authorization, content-type, content-range")
        .send();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    for h in ["authorization", "content-type", "content-range", "range"] {
        assert!(headers.contains(h), "{headers}");
    }
    // Error answers (the 401 challenge) carry CORS headers too, and expose what clients read.
    let r = request("GET", &format!("{}/v2/", ferry.url)).header("Origin", ORIGIN).send();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    let exposed = r.header("access-control-expose-headers").unwrap();
    for h in [
        "Docker-Content-Digest",
        "Location",
        "Link",
        "Range",
        "WWW-Authenticate",
        "OCI-Subject",
        "Docker-Upload-UUID",
    ] {
        assert!(exposed.contains(h), "{exposed} lacks {h}");
    }
    // The token endpoint answers cross-origin too.
    let realm = format!("{}/token", ferry.url);
    let r = request("GET", &format!("{realm}?service=ferry&scope=repository:web/app:pull"))
        .header("Origin", ORIGIN)
        .basic(USER, PASSWORD)
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    // Another origin gets no CORS headers, so the browser stops it.
    let r = request("OPTIONS", &format!("{}/v2/", ferry.url))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send();
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn cors_wildcard_without_credentials() {
    let dir = TempDir::new("cors-any");
    let ferry = Ferry::with_root(&dir.join("data"), &["--cors-origin", "*"]);
    let r =
        request("GET", &format!("{}/v2/nope/manifests/latest", ferry.url)).header("Origin", ORIGIN).send();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
    // `*` with credentials is refused at start, naming the key.
    let out = std::process::Command::new(support::ferry_bin())
        .args(["serve", "--cors-origin", "*", "--cors-allow-credentials"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cors.origins"));
}

/// In token mode, `/v2/` takes Bearer tokens; Basic credentials there only when the
/// config says so (`auth.token.allow_basic`).
#[test]
fn token_mode_refuses_basic_on_the_api_unless_allowed() {
    let dir = TempDir::new("token-basic");
    let ferry = start(&dir, &["--token"]);
    let r = push(&ferry.url, "r", b"blob", Some(&basic()));
    assert_eq!(r.status, 401, "Basic accepted on /v2/ in token mode: {}", r.text());
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer "));
    assert_eq!(request("GET", &format!("{}/v2/", ferry.url)).basic(USER, PASSWORD).send().status, 401);
    // The token endpoint still takes them.
    let realm = format!("{}/token", ferry.url);
    assert_eq!(token(&realm, "ferry", "repository:r:pull", true).status, 200);
    drop(ferry);

    let dir = TempDir::new("token-basic-allowed");
    let ferry = start(&dir, &["--token", "--token-allow-basic"]);
    assert_eq!(push(&ferry.url, "r", b"blob", Some(&basic())).status, 201);
}

/// RFC 7235, 2.1: "It uses a case-insensitive token as a means to identify the
/// authentication scheme".
#[test]
fn auth_schemes_are_case_insensitive() {
    let dir = TempDir::new("scheme-case");
    let ferry = start(&dir, &["--token"]);
    let realm = format!("{}/token", ferry.url);
    let t =
        token(&realm, "ferry", "repository:r:pull,push", true).json()["token"].as_str().unwrap().to_owned();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = push(&ferry.url, "r", scheme.as_bytes(), Some(&format!("{scheme} {t}")));
        assert_eq!(r.status, 201, "{scheme}: {}", r.text());
    }
    // Basic, at the token endpoint, in any case.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for scheme in ["basic", "BASIC"] {
        let r = request("GET", &format!("{realm}?service=ferry&scope=repository:r:pull"))
            .header("Authorization", &format!("{scheme} {encoded}"))
            .send();
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
        assert_ne!(r.json()["token"], serde_json::Value::Null);
    }
    drop(ferry);
    let dir = TempDir::new("scheme-case-basic");
    let ferry = start(&dir, &[]);
    for scheme in ["basic", "BASIC"] {
        let r = request("GET", &format!("{}/v2/", ferry.url))
            .header("Authorization", &format!("{scheme} {encoded}"))
            .send();
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn post_token(realm: &str, pairs: &[(&str, &str)]) -> Response {
    request("POST", realm)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(pairs).into_bytes())
        .send()
}

/// The OAuth2 form of the token endpoint that containerd tries first: `POST /token` with
/// `grant_type=password` (and `access_type=offline` for a refresh token), then
/// `grant_type=refresh_token`.
#[test]
fn token_endpoint_takes_the_oauth2_post_form() {
    let dir = TempDir::new("oauth2");
    let ferry = start(&dir, &["--token"]);
    let realm = format!("{}/token", ferry.url);
    let scope = "repository:team/app:pull,push";
    let r = post_token(
        &realm,
        &[
            ("grant_type", "password"),
            ("username", USER),
            ("password", PASSWORD),
            ("service", "ferry"),
            ("scope", scope),
            ("client_id", "containerd-client"),
            ("access_type", "offline"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let access = body["access_token"].as_str().expect("access_token").to_owned();
    let refresh = body["refresh_token"].as_str().expect("refresh_token with access_type=offline").to_owned();
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(push(&ferry.url, "team/app", b"one", Some(&format!("Bearer {access}"))).status, 201);
    // A refresh token is not an access token.
    assert_eq!(push(&ferry.url, "team/app", b"x", Some(&format!("Bearer {refresh}"))).status, 401);

    let r = post_token(
        &realm,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", "ferry"),
            ("scope", scope),
            ("client_id", "c"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(push(&ferry.url, "team/app", b"two", Some(&format!("Bearer {access}"))).status, 201);

    // Refusals: a wrong password, a forged refresh token, an access token as refresh
    // token, a grant type the server does not know.
    let wrong = post_token(
        &realm,
        &[
            ("grant_type", "password"),
            ("username", USER),
            ("password", "nope"),
            ("service", "ferry"),
            ("scope", scope),
            ("client_id", "c"),
        ],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    for bad in [format!("{refresh}x"), access.clone()] {
        let r = post_token(
            &realm,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &bad),
                ("service", "ferry"),
                ("client_id", "c"),
            ],
        );
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let r =
        post_token(&realm, &[("grant_type", "client_credentials"), ("service", "ferry"), ("client_id", "c")]);
    assert_eq!(r.status, 400, "{}", r.text());
    // Without access_type=offline there is no refresh token.
    let r = post_token(
        &realm,
        &[
            ("grant_type", "password"),
            ("username", USER),
            ("password", PASSWORD),
            ("service", "ferry"),
            ("scope", scope),
            ("client_id", "c"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["refresh_token"], serde_json::Value::Null);
}
