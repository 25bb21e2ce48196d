use super::*;

const SHA: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type Parts = (String, String, Option<String>, Option<String>);

fn ok(
    registry: &str,
    repository: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<Parts, ReferenceError> {
    Ok((registry.into(), repository.into(), tag.map(Into::into), digest.map(Into::into)))
}

fn bad_repo(repository: &str, component: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::InvalidRepository { repository: repository.into(), component: component.into() })
}

fn bad_registry(registry: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::InvalidRegistry { registry: registry.into() })
}

fn bad_port(registry: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::InvalidPort { registry: registry.into() })
}

fn bad_tag(tag: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::InvalidTag { tag: tag.into() })
}

fn uppercase(repository: &str, lowercase: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::RepositoryUppercase { repository: repository.into(), lowercase: lowercase.into() })
}

fn missing(input: &str) -> Result<Parts, ReferenceError> {
    Err(ReferenceError::MissingRepository { input: input.into() })
}

#[test]
fn parse_table() {
    let tag128 = "t".repeat(128);
    let tag129 = "t".repeat(129);
    let sha512 = format!("sha512:{}", "a".repeat(128));
    let cases: Vec<(String, Result<Parts, ReferenceError>)> = vec![
        // Docker Hub normalisation.
        ("nginx".into(), ok("docker.io", "library/nginx", None, None)),
        ("nginx:1.27".into(), ok("docker.io", "library/nginx", Some("1.27"), None)),
        ("library/nginx".into(), ok("docker.io", "library/nginx", None, None)),
        ("user/app".into(), ok("docker.io", "user/app", None, None)),
        ("user/app:v1.0.0-rc.1".into(), ok("docker.io", "user/app", Some("v1.0.0-rc.1"), None)),
        ("x/y/z".into(), ok("docker.io", "x/y/z", None, None)),
        ("a".into(), ok("docker.io", "library/a", None, None)),
        ("docker.io/nginx".into(), ok("docker.io", "library/nginx", None, None)),
        ("docker.io/library/nginx:latest".into(), ok("docker.io", "library/nginx", Some("latest"), None)),
        ("index.docker.io/library/x".into(), ok("docker.io", "library/x", None, None)),
        ("index.docker.io/x".into(), ok("docker.io", "library/x", None, None)),
        ("registry-1.docker.io/user/app".into(), ok("docker.io", "user/app", None, None)),
        ("registry.hub.docker.com/library/busybox".into(), ok("docker.io", "library/busybox", None, None)),
        ("Docker.IO/user/app".into(), ok("docker.io", "user/app", None, None)),
        // Docker's rule: no '/', so these are Docker Hub names, not registries.
        ("quay.io".into(), ok("docker.io", "library/quay.io", None, None)),
        ("localhost:5000".into(), ok("docker.io", "library/localhost", Some("5000"), None)),
        // Other registries.
        ("localhost/app".into(), ok("localhost", "app", None, None)),
        ("localhost:5000/app".into(), ok("localhost:5000", "app", None, None)),
        ("localhost:5000/app:dev".into(), ok("localhost:5000", "app", Some("dev"), None)),
        (format!("127.0.0.1:5000/a/b:t@{SHA}"), ok("127.0.0.1:5000", "a/b", Some("t"), Some(SHA))),
        ("[::1]:5000/x".into(), ok("[::1]:5000", "x", None, None)),
        ("[::1]/x:t".into(), ok("[::1]", "x", Some("t"), None)),
        ("[2001:DB8::1]:443/team/app".into(), ok("[2001:db8::1]:443", "team/app", None, None)),
        (
            "quay.io/coreos/kube-rbac-proxy:v0.14.2".into(),
            ok("quay.io", "coreos/kube-rbac-proxy", Some("v0.14.2"), None),
        ),
        ("Quay.IO/coreos/etcd".into(), ok("quay.io", "coreos/etcd", None, None)),
        ("UPPER.example/x".into(), ok("upper.example", "x", None, None)),
        ("ghcr.io/owner/repo/sub/image:tag".into(), ok("ghcr.io", "owner/repo/sub/image", Some("tag"), None)),
        (
            "gcr.io/knative-releases/github.com/knative/build/cmd/creds-init:v1".into(),
            ok("gcr.io", "knative-releases/github.com/knative/build/cmd/creds-init", Some("v1"), None),
        ),
        (
            "registry.example.com:5000/a__b/c-d/e.f/g---h".into(),
            ok("registry.example.com:5000", "a__b/c-d/e.f/g---h", None, None),
        ),
        ("my-registry.local/app".into(), ok("my-registry.local", "app", None, None)),
        ("0.0.0.0:1/x".into(), ok("0.0.0.0:1", "x", None, None)),
        ("registry.example.com:65535/x".into(), ok("registry.example.com:65535", "x", None, None)),
        ("a1/b2".into(), ok("docker.io", "a1/b2", None, None)),
        ("app:_tag".into(), ok("docker.io", "library/app", Some("_tag"), None)),
        ("app:V1.2_3-x".into(), ok("docker.io", "library/app", Some("V1.2_3-x"), None)),
        (format!("app:{tag128}"), ok("docker.io", "library/app", Some(&tag128), None)),
        // Digests.
        (format!("nginx@{SHA}"), ok("docker.io", "library/nginx", None, Some(SHA))),
        (format!("nginx:1.27@{SHA}"), ok("docker.io", "library/nginx", Some("1.27"), Some(SHA))),
        (format!("quay.io/a/b@{sha512}"), ok("quay.io", "a/b", None, Some(&sha512))),
        // The 255-character limit counts the normalised name.
        (format!("r.io/{}", "a".repeat(250)), ok("r.io", &"a".repeat(250), None, None)),
        ("a".repeat(237), ok("docker.io", &format!("library/{}", "a".repeat(237)), None, None)),
        (
            format!("r.io/{}", "a".repeat(251)),
            Err(ReferenceError::NameTooLong { name: format!("r.io/{}", "a".repeat(251)), length: 256 }),
        ),
        (
            "a".repeat(238),
            Err(ReferenceError::NameTooLong {
                name: format!("docker.io/library/{}", "a".repeat(238)),
                length: 256,
            }),
        ),
        // Empty input and image IDs.
        ("".into(), Err(ReferenceError::Empty)),
        (HEX.into(), Err(ReferenceError::LooksLikeImageId { input: HEX.into() })),
        // Uppercase repository paths.
        ("Nginx".into(), uppercase("Nginx", "nginx")),
        ("quay.io/CoreOS/etcd".into(), uppercase("CoreOS/etcd", "coreos/etcd")),
        ("MyUser/app".into(), uppercase("MyUser/app", "myuser/app")),
        // Tags.
        ("nginx:".into(), bad_tag("")),
        ("nginx:-bad".into(), bad_tag("-bad")),
        ("nginx:.bad".into(), bad_tag(".bad")),
        ("nginx:bad!".into(), bad_tag("bad!")),
        ("nginx:tåg".into(), bad_tag("tåg")),
        (format!("nginx:{tag129}"), Err(ReferenceError::TagTooLong { tag: tag129.clone(), length: 129 })),
        // Digests.
        (
            "nginx@sha256:abc".into(),
            Err(ReferenceError::Digest(DigestError::WrongLength {
                input: "sha256:abc".into(),
                algorithm: "sha256",
                expected: 64,
                found: 3,
            })),
        ),
        (
            format!("nginx@md5:{HEX}"),
            Err(ReferenceError::Digest(DigestError::UnsupportedAlgorithm {
                input: format!("md5:{HEX}"),
                algorithm: "md5".into(),
            })),
        ),
        ("nginx@".into(), Err(ReferenceError::Digest(DigestError::MissingAlgorithm("".into())))),
        (
            "nginx:tag@sha256:bad".into(),
            Err(ReferenceError::Digest(DigestError::WrongLength {
                input: "sha256:bad".into(),
                algorithm: "sha256",
                expected: 64,
                found: 3,
            })),
        ),
        // Missing repository.
        ("quay.io/".into(), missing("quay.io/")),
        ("localhost:5000/".into(), missing("localhost:5000/")),
        (":tag".into(), missing(":tag")),
        (format!("@{SHA}"), missing(&format!("@{SHA}"))),
        // Path components.
        ("quay.io//x".into(), bad_repo("/x", "")),
        ("/nginx".into(), bad_repo("/nginx", "")),
        ("user/app/".into(), bad_repo("user/app/", "")),
        ("a___b".into(), bad_repo("a___b", "a___b")),
        ("a._b".into(), bad_repo("a._b", "a._b")),
        ("a..b".into(), bad_repo("a..b", "a..b")),
        ("a-".into(), bad_repo("a-", "a-")),
        ("_a".into(), bad_repo("_a", "_a")),
        ("a b".into(), bad_repo("a b", "a b")),
        ("ñame".into(), bad_repo("ñame", "ñame")),
        ("nginx:a:b".into(), bad_repo("nginx:a", "nginx:a")),
        // Registry hosts.
        ("a..b/x".into(), bad_registry("a..b")),
        ("-bad.io/x".into(), bad_registry("-bad.io")),
        ("bad-.io/x".into(), bad_registry("bad-.io")),
        ("bad_host.io/x".into(), bad_registry("bad_host.io")),
        (".io/x".into(), bad_registry(".io")),
        ("[::1/x".into(), bad_registry("[::1")),
        ("[]:5000/x".into(), bad_registry("[]:5000")),
        ("[::g]/x".into(), bad_registry("[::g]")),
        ("[::1]x:5000/x".into(), bad_registry("[::1]x:5000")),
        // Ports.
        ("localhost:/x".into(), bad_port("localhost:")),
        ("localhost:99999/x".into(), bad_port("localhost:99999")),
        ("localhost:0/x".into(), bad_port("localhost:0")),
        ("localhost:12a/x".into(), bad_port("localhost:12a")),
        ("a.io:1:2/x".into(), bad_port("a.io:1:2")),
        ("[::1]:/x".into(), bad_port("[::1]:")),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (input, want) in cases {
        let got = Reference::parse(&input).map(|r| {
            (
                r.registry().to_owned(),
                r.repository().to_owned(),
                r.tag().map(Into::into),
                r.digest().map(|d| d.to_string()),
            )
        });
        assert_eq!(got, want, "input {input:?}");
        assert_eq!(
            input.parse::<Reference>().map(|r| r.to_string()),
            Reference::parse(&input).map(|r| r.to_string())
        );
    }
}

#[test]
fn display_and_manifest_reference() {
    let cases: Vec<(String, String, String, &str)> = vec![
        ("nginx".into(), "docker.io/library/nginx".into(), "latest".into(), "registry-1.docker.io"),
        ("user/app:1".into(), "docker.io/user/app:1".into(), "1".into(), "registry-1.docker.io"),
        (format!("quay.io/a/b:t@{SHA}"), format!("quay.io/a/b:t@{SHA}"), SHA.into(), "quay.io"),
        (format!("localhost:5000/a@{SHA}"), format!("localhost:5000/a@{SHA}"), SHA.into(), "localhost:5000"),
        ("[::1]:5000/x".into(), "[::1]:5000/x".into(), "latest".into(), "[::1]:5000"),
    ];
    for (input, display, manifest, host) in cases {
        let r = Reference::parse(&input).unwrap();
        assert_eq!(r.to_string(), display, "{input}");
        assert_eq!(r.manifest_reference(), manifest, "{input}");
        assert_eq!(r.api_host(), host, "{input}");
        // Canonical output parses back to the same reference.
        assert_eq!(Reference::parse(&display), Ok(r), "{input}");
    }
}

#[test]
fn with_tag_and_with_digest() {
    let digest: Digest = SHA.parse().unwrap();
    let pinned = Reference::parse(&format!("quay.io/a/b:old@{SHA}")).unwrap();
    let retagged = pinned.with_tag("new").unwrap();
    assert_eq!(retagged.to_string(), "quay.io/a/b:new");
    assert_eq!(pinned.with_tag("-x"), Err(ReferenceError::InvalidTag { tag: "-x".into() }));
    let by_digest = Reference::parse("quay.io/a/b:old").unwrap().with_digest(digest);
    assert_eq!(by_digest.to_string(), format!("quay.io/a/b@{SHA}"));
    assert_eq!(by_digest.tag(), None);
}

#[test]
fn new_validates_and_normalises() {
    type NewArgs<'a> = (&'a str, &'a str, Option<&'a str>);
    let cases: Vec<(NewArgs, Result<&str, ReferenceError>)> = vec![
        (("index.docker.io", "nginx", None), Ok("docker.io/library/nginx")),
        (("Quay.io", "a/b", Some("v1")), Ok("quay.io/a/b:v1")),
        (("localhost:5000", "app", None), Ok("localhost:5000/app")),
        (("quay.io", "", None), Err(ReferenceError::MissingRepository { input: "".into() })),
        (("quay.io", "a/b", Some("")), Err(ReferenceError::InvalidTag { tag: "".into() })),
        (("quay io", "a", None), Err(ReferenceError::InvalidRegistry { registry: "quay io".into() })),
        (("", "a", None), Err(ReferenceError::InvalidRegistry { registry: "".into() })),
    ];
    for ((registry, repository, tag), want) in cases {
        let got = Reference::new(registry, repository, tag, None).map(|r| r.to_string());
        assert_eq!(got, want.map(str::to_owned), "{registry} {repository} {tag:?}");
    }
}

#[test]
fn split_registry_table() {
    let cases = [
        ("nginx", (None, "nginx")),
        ("user/app", (None, "user/app")),
        ("LocalHost/app", (None, "LocalHost/app")),
        ("localhost/app", (Some("localhost"), "app")),
        ("localhost:5000/a/b", (Some("localhost:5000"), "a/b")),
        ("quay.io/x/y", (Some("quay.io"), "x/y")),
        ("[::1]/x", (Some("[::1]"), "x")),
        ("quay.io", (None, "quay.io")),
    ];
    for (name, want) in cases {
        assert_eq!(split_registry(name), want, "{name}");
    }
}

#[test]
fn is_localhost_table() {
    let cases = [
        ("localhost", true),
        ("LOCALHOST:5000", true),
        ("127.0.0.1", true),
        ("127.255.255.254:5000", true),
        ("[::1]", true),
        ("[::1]:5000", true),
        ("128.0.0.1", false),
        ("127.0.0.256", false),
        ("127.0.0", false),
        ("127.0.0.1.5", false),
        ("127.0.0.0001", false),
        ("localhost.example.com", false),
        ("[::2]:5000", false),
        ("", false),
    ];
    for (registry, want) in cases {
        assert_eq!(is_localhost(registry), want, "{registry}");
    }
}

#[test]
fn normalize_and_api_host_tables() {
    let normalized = [
        ("Docker.io", "docker.io"),
        ("INDEX.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("Quay.IO", "quay.io"),
        ("localhost:5000", "localhost:5000"),
        ("[2001:DB8::1]:5000", "[2001:db8::1]:5000"),
    ];
    for (host, want) in normalized {
        assert_eq!(normalize_registry(host), want, "{host}");
    }
    let api = [
        ("docker.io", "registry-1.docker.io"),
        ("index.docker.io", "registry-1.docker.io"),
        ("registry-1.docker.io", "registry-1.docker.io"),
        ("quay.io", "quay.io"),
        ("localhost:5000", "localhost:5000"),
    ];
    for (registry, want) in api {
        assert_eq!(api_host(registry), want, "{registry}");
    }
}

#[test]
fn validators_table() {
    assert_eq!(validate_tag("latest"), Ok(()));
    assert_eq!(validate_tag("0"), Ok(()));
    assert_eq!(validate_repository("a/b.c/d_e/f__g/h-i/j--k"), Ok(()));
    assert_eq!(validate_registry("[fe80::1]:5000"), Ok(()));
    assert_eq!(validate_registry("a:65536"), Err(ReferenceError::InvalidPort { registry: "a:65536".into() }));
    assert_eq!(
        validate_registry("a:123456"),
        Err(ReferenceError::InvalidPort { registry: "a:123456".into() })
    );
    assert_eq!(
        validate_repository("A/B"),
        Err(ReferenceError::RepositoryUppercase { repository: "A/B".into(), lowercase: "a/b".into() })
    );
    // Uppercase plus another problem is reported as the other problem.
    assert_eq!(
        validate_repository("A/-b"),
        Err(ReferenceError::InvalidRepository { repository: "A/-b".into(), component: "A".into() })
    );
}

#[test]
fn error_messages_name_the_input_and_the_fix() {
    let cases: Vec<(ReferenceError, &str)> = vec![
        (
            ReferenceError::RepositoryUppercase {
                repository: "User/App".into(),
                lowercase: "user/app".into(),
            },
            "repository name must be lowercase: \"User/App\"; write \"user/app\"",
        ),
        (
            ReferenceError::InvalidPort { registry: "localhost:0".into() },
            "registry \"localhost:0\" has an invalid port: write a number from 1 to 65535 after the ':'",
        ),
        (
            ReferenceError::TagTooLong { tag: "x".into(), length: 129 },
            "tag \"x\" is 129 characters long; tags may be at most 128 characters",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

/// Every short string over an alphabet of the grammar's delimiters parses or fails
/// without panicking, and whatever parses prints as something that parses back equal.
#[test]
fn exhaustive_short_inputs_never_panic() {
    let alphabet = ['a', 'Z', '1', ':', '/', '@', '.', '-', '_', '[', ']', 'é'];
    let mut inputs = vec![String::new()];
    for _ in 0..4 {
        let next: Vec<String> =
            inputs.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
        for input in &next {
            if let Ok(r) = Reference::parse(input) {
                assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{input}");
            }
            let _ = is_localhost(input);
            let _ = validate_registry(input);
        }
        inputs = next;
    }
}
