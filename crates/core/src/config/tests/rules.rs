//! Rules: image-syncer's images map and ferry's `rules`, with their sources and destinations.

use super::*;

#[test]
fn image_rule_errors() {
    let f = "images.yaml";
    let e = |key: &str, problem: &str, fix: &str| err(f, Some(key), problem, fix);
    let tag_fix = "separate tags with commas and no spaces, e.g. :v1.0,v2.0";
    let unknown_count = "drop the destination's tags: each tag is copied under its own name";
    let cases: Vec<(String, ConfigError)> = vec![
        // Sources.
        ("'': a/b".into(), e("", "the source is empty", SOURCE_FIX)),
        (
            "quay.io/x:/[/: a/b".into(),
            e(
                "quay.io/x:/[/",
                "invalid tag pattern /[/: found unclosed character class",
                "write a regular expression between the slashes (regex-lite syntax, like Go's RE2), e.g. quay.io/coreos/etcd:/^v3\\./",
            ),
        ),
        (
            "quay.io/x:/: a/b".into(),
            e(
                "quay.io/x:/",
                "the tag pattern \"/\" is not closed: a pattern starts and ends with '/'",
                "close the pattern with '/', e.g. quay.io/coreos/etcd:/^v3\\./",
            ),
        ),
        (
            "quay.io/x://: a/b".into(),
            e(
                "quay.io/x://",
                "the tag pattern // is empty",
                "omit the tag to copy every tag, or write a pattern such as :/^v1\\./",
            ),
        ),
        ("x:a,,b: a/b".into(), e("x:a,,b", &format!("tag \"\" is invalid: {TAG_RULE}"), tag_fix)),
        ("'x:a, b': a/b".into(), e("x:a, b", &format!("tag \" b\" is invalid: {TAG_RULE}"), tag_fix)),
        ("'x:': a/b".into(), e("x:", &format!("tag \"\" is invalid: {TAG_RULE}"), tag_fix)),
        (
            "x@sha256:abc: a/b".into(),
            e(
                "x@sha256:abc",
                "digest \"sha256:abc\" must have exactly 64 hex characters after `sha256:`, found 3",
                "write the digest as sha256:<64 lowercase hex digits>",
            ),
        ),
        (
            format!("x:t@{SHA}: a/b"),
            e(
                &format!("x:t@{SHA}"),
                "it names both tag \"t\" and a digest",
                "keep only the digest (it already names one image) or only the tag",
            ),
        ),
        (
            "https://quay.io/x: a/b".into(),
            e("https://quay.io/x", "\"https\" is a URL scheme; image names have none", "drop the scheme: \"quay.io/x\""),
        ),
        (
            "Quay.io/X: a/b".into(),
            e("Quay.io/X", "repository name must be lowercase: \"X\"; write \"x\"", SOURCE_FIX),
        ),
        (
            "bad_host.io:5000: a/b".into(),
            e(
                "bad_host.io:5000",
                "registry \"bad_host.io:5000\" is not a valid host: use dot-separated labels of letters, digits and \
                 inner '-', or an IPv6 address in brackets, optionally followed by :port (e.g. registry.example.com:5000 \
                 or [::1]:5000)",
                SOURCE_FIX,
            ),
        ),
        (
            "quay.io:99999: a.io".into(),
            e(
                "quay.io:99999",
                "registry \"quay.io:99999\" has an invalid port: write a number from 1 to 65535 after the ':'",
                SOURCE_FIX,
            ),
        ),
        // Destinations: missing, or of the wrong type.
        ("a/b: ''".into(), e("a/b", "destination \"\": the destination is empty", "write a destination such as registry.example.com/team/app; image-syncer's default --registry/--namespace destination is not supported")),
        ("a/b: []".into(), e("a/b", "the destination must be a string or a non-empty list of strings, found a list", NO_DESTINATION_FIX)),
        ("a/b:".into(), e("a/b", "the destination must be a string or a non-empty list of strings, found nothing (null)", NO_DESTINATION_FIX)),
        ("a/b: 5".into(), e("a/b", "the destination must be a string or a non-empty list of strings, found a number", NO_DESTINATION_FIX)),
        ("a/b: {x: y}".into(), e("a/b", "the destination must be a string or a non-empty list of strings, found a map", NO_DESTINATION_FIX)),
        (
            "a/b: [c/d, 1]".into(),
            e("a/b", "each destination must be a string, found a number", "write the list as strings, e.g. [registry.example.com/team/app]"),
        ),
        ("a/b: $NOPE/x".into(), unset(f, "a/b", "the destination", "NOPE")),
        // Destinations: tags and digests (README rules 4, 6, 7).
        (
            "a/b: c/d:v1".into(),
            e("a/b", "destination \"c/d:v1\": it names tags, but the source selects all tags, so their number is unknown", unknown_count),
        ),
        (
            "a/b:/x/: c/d:v1".into(),
            e("a/b:/x/", "destination \"c/d:v1\": it names tags, but the source selects tags by pattern, so their number is unknown", unknown_count),
        ),
        (
            "a/b:1,2: c/d:x".into(),
            e(
                "a/b:1,2",
                "destination \"c/d:x\": it has 1 tag but the source has 2 tags",
                "give the destination no tags (to keep the source's) or exactly one per source tag, in the same order",
            ),
        ),
        (
            format!("a/b@{SHA}: c/d:x,y"),
            e(&format!("a/b@{SHA}"), "destination \"c/d:x,y\": it has 2 tags but the source names a single digest", "give the destination at most one tag"),
        ),
        (
            format!("a/b@{SHA}: c/d@sha256:{}", "1".repeat(64)),
            e(
                &format!("a/b@{SHA}"),
                &format!("destination \"c/d@sha256:{0}\": its digest sha256:{0} differs from the source's {SHA}", "1".repeat(64)),
                "drop the digest from the destination: a copy keeps the source's digest",
            ),
        ),
        (
            format!("a/b:v1: c/d@{SHA}"),
            e("a/b:v1", &format!("destination \"c/d@{SHA}\": it names a digest but the source does not"), "drop the @digest from the destination"),
        ),
        (
            "a/b: c/d:/x/".into(),
            e("a/b", "destination \"c/d:/x/\": a destination cannot be a tag pattern", "drop the /pattern/: each selected tag is copied under its own name"),
        ),
        (
            "a/b: C/d".into(),
            e("a/b", "destination \"C/d\": repository name must be lowercase: \"C/d\"; write \"c/d\"", DESTINATION_FIX),
        ),
        (
            "a/b: https://x.io/y".into(),
            e("a/b", "destination \"https://x.io/y\": \"https\" is a URL scheme; image names have none", "drop the scheme: \"x.io/y\""),
        ),
        // Whole-registry destinations.
        (
            "quay.io: mirror".into(),
            e(
                "quay.io",
                "destination \"mirror\": the source is a whole registry, so the destination must start with a registry host, not \"mirror\"",
                REGISTRY_DESTINATION_FIX,
            ),
        ),
        (
            "quay.io: mirror.io/A".into(),
            e("quay.io", "destination \"mirror.io/A\": repository name must be lowercase: \"A\"; write \"a\"", REGISTRY_DESTINATION_FIX),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_images_file(f, &text, &env), Err(want), "{text:?}");
    }
}

#[test]
fn sources_and_destinations() {
    let one = |text: &str| {
        let rules = parse_images_file("images.yaml", text, &env).unwrap();
        let rule = rules.into_iter().next().unwrap();
        (rule.source, rule.destinations)
    };
    let src = |registry: &str, repository: Option<&str>, selector| SourceSpec {
        registry: registry.into(),
        repository: repository.map(Into::into),
        selector,
    };
    let dst = |registry: &str, repository: Option<&str>, tags: &[&str]| DestinationSpec {
        registry: registry.into(),
        repository: repository.map(Into::into),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    let list = |tags: &[&str]| TagSelector::List(tags.iter().map(|t| t.to_string()).collect());
    let all = TagSelector::All;
    let cases: Vec<(String, (SourceSpec, Vec<DestinationSpec>))> = vec![
        (
            "nginx: r.io/nginx".into(),
            (src("docker.io", Some("library/nginx"), all.clone()), vec![dst("r.io", Some("nginx"), &[])]),
        ),
        (
            "'nginx:1.25': r.io/n".into(),
            (src("docker.io", Some("library/nginx"), list(&["1.25"])), vec![dst("r.io", Some("n"), &[])]),
        ),
        (
            "python3.11:latest: r.io/p:stable".into(),
            (
                src("docker.io", Some("library/python3.11"), list(&["latest"])),
                vec![dst("r.io", Some("p"), &["stable"])],
            ),
        ),
        (
            "user/app: other/app".into(),
            (src("docker.io", Some("user/app"), all.clone()), vec![dst("docker.io", Some("other/app"), &[])]),
        ),
        (
            "index.docker.io/x:1,1: r.io/x:a,b".into(),
            (
                src("docker.io", Some("library/x"), list(&["1", "1"])),
                vec![dst("r.io", Some("x"), &["a", "b"])],
            ),
        ),
        (
            format!("a/b@{SHA}: [r.io/b:pinned, 'r.io/c@{SHA}']"),
            (
                src("docker.io", Some("a/b"), TagSelector::Digest(SHA.parse().unwrap())),
                vec![dst("r.io", Some("b"), &["pinned"]), dst("r.io", Some("c"), &[])],
            ),
        ),
        (
            "quay.io/x:/^v[0-9]+:y/$/: r.io/x".into(),
            (
                src(
                    "quay.io",
                    Some("x"),
                    TagSelector::Pattern(regex_lite::Regex::new("^v[0-9]+:y/$").unwrap()),
                ),
                vec![dst("r.io", Some("x"), &[])],
            ),
        ),
        (
            "a/b: ${REGISTRY}/b".into(),
            (src("docker.io", Some("a/b"), all.clone()), vec![dst("registry.example.com", Some("b"), &[])]),
        ),
        (
            "a/b: [r.io/b, r.io/b, s.io/b]".into(),
            (
                src("docker.io", Some("a/b"), all.clone()),
                vec![dst("r.io", Some("b"), &[]), dst("s.io", Some("b"), &[])],
            ),
        ),
        // Whole registries.
        (
            "quay.io: mirror.io/quay".into(),
            (src("quay.io", None, all.clone()), vec![dst("mirror.io", Some("quay"), &[])]),
        ),
        (
            "registry.example.com:5000: mirror.io/".into(),
            (src("registry.example.com:5000", None, all.clone()), vec![dst("mirror.io", None, &[])]),
        ),
        (
            "myregistry/: localhost:5000".into(),
            (src("myregistry", None, all.clone()), vec![dst("localhost:5000", None, &[])]),
        ),
        (
            "'[::1]:5000': r.io/a/b".into(),
            (src("[::1]:5000", None, all.clone()), vec![dst("r.io", Some("a/b"), &[])]),
        ),
        (
            "Index.Docker.io: r.io/hub".into(),
            (src("docker.io", None, all.clone()), vec![dst("r.io", Some("hub"), &[])]),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(one(&text), want, "{text:?}");
    }
}

#[test]
fn config_errors() {
    let f = "ferry.yaml";
    let e = |key: &str, problem: &str, fix: &str| err(f, Some(key), problem, fix);
    let rule = |extra: &str| format!("rules: [{{source: a/b, destination: c/d, {extra}}}]");
    let platform_fix = "write it in lowercase as Go names it, e.g. linux/amd64 or linux/arm64/v8";
    let pattern_fix = "write a regular expression (regex-lite syntax, like Go's RE2), e.g. \"^v1\\\\.\"";
    let cases: Vec<(String, ConfigError)> = vec![
        (
            "[1]".into(),
            err(
                f,
                None,
                "the file must be a map with `auth` and `images` or `rules`, found a list",
                "start the file with `auth:`, `images:` or `rules:` at the top level",
            ),
        ),
        ("rule: []".into(), e("rule", "unknown top-level key \"rule\"", "use one of: auth, images, rules, proc, retries, os, arch, tls, state")),
        (
            "auth: [1]".into(),
            err(
                f,
                None,
                "`auth` must be a map from registry to login, found a list",
                "write one `registry: {username: ..., password: ...}` entry per registry, e.g. quay.io",
            ),
        ),
        (
            "images: [1]".into(),
            err(
                f,
                None,
                "`images` must be a map from source to destination, found a list",
                "write one `source: destination` pair per line, e.g. quay.io/coreos/etcd: registry.example.com/coreos/etcd",
            ),
        ),
        // ferry's keys make the whole file strict, auth entries included.
        (
            "proc: 5\nauth: {quay.io: {passwrod: x}}".into(),
            e("quay.io", "unknown field \"passwrod\"", "use one of: username, password, identityToken, insecure"),
        ),
        ("rules: {}".into(), e("rules", "`rules` must be a list, found a map", "start each rule with `- source: ...` on its own line")),
        ("rules: [5]".into(), e("rules[0]", "a rule must be a map, found a number", "write a rule as `name: value` pairs")),
        (
            "rules: [{source: a/b}]".into(),
            e("rules[0]", "the rule has no `destination`", "add it, e.g. destination: registry.example.com/coreos/etcd"),
        ),
        (
            "rules: [{destination: a/b, source: ~}]".into(),
            e("rules[0]", "the rule has no `source`", "add it, e.g. source: quay.io/coreos/etcd"),
        ),
        (
            "rules: [{source: 5, destination: c/d}]".into(),
            e("rules[0].source", "the source must be a string, found a number", "write it as a quoted string, e.g. source: quay.io/coreos/etcd"),
        ),
        ("rules: [{source: 'A/b', destination: c/d}]".into(), e("rules[0].source", "repository name must be lowercase: \"A/b\"; write \"a/b\"", SOURCE_FIX)),
        (
            "rules: [{source: a/b, destination: [c/d, 'c/d:x']}]".into(),
            e(
                "rules[0].destination",
                "destination \"c/d:x\": it names tags, but the source selects all tags, so their number is unknown",
                "drop the destination's tags: each tag is copied under its own name",
            ),
        ),
        (rule("tag: {}"), e("rules[0]", "unknown field \"tag\"", "use one of: source, destination, tags, platforms, immutable, referrers")),
        (
            rule("referrers: alll"),
            e(
                "rules[0].referrers",
                "invalid referrers value \"alll\": expected all, none, or a comma-separated list of artifact types (e.g. application/spdx+json) and cosign kinds (sig, att, sbom)",
                "write e.g. `referrers: all`, `referrers: none` or `referrers: sig,sbom`",
            ),
        ),
        (rule("immutable: '('"), e("rules[0].immutable", "invalid tag pattern \"(\": found open group without closing ')'", pattern_fix)),
        (
            rule("immutable: [x]"),
            e("rules[0].immutable", "immutable must be a string, found a list", "write it as a quoted string, e.g. immutable: \"^v[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\""),
        ),
        (
            "rules: [{source: 'a/b:v1', destination: c/d, immutable: '^v'}]".into(),
            e(
                "rules[0].immutable",
                "the source names its tags or a digest, so no tag list is read to skip them by",
                "remove `immutable`, or name the repository without tags",
            ),
        ),
        (rule("tags: [x]"), e("rules[0].tags", "tags must be a map, found a list", "write tags as `name: value` pairs")),
        (rule("tags: {includes: [x]}"), e("rules[0].tags", "unknown field \"includes\"", "use one of: include, exclude, semver")),
        (rule("tags: {include: '['}"), e("rules[0].tags.include", "invalid tag pattern \"[\": found unclosed character class", pattern_fix)),
        (
            rule("tags: {exclude: [x, '(']}"),
            e("rules[0].tags.exclude[1]", "invalid tag pattern \"(\": found open group without closing ')'", pattern_fix),
        ),
        (
            rule("tags: {include: [1]}"),
            e("rules[0].tags.include[0]", "a tag pattern must be a string, found a number", "write it as a quoted string, e.g. \"^v1\\\\.\""),
        ),
        (
            rule("tags: {semver: '>>1'}"),
            e(
                "rules[0].tags.semver",
                "invalid semver range \">>1\": unexpected character '>' while parsing major version number",
                "write comparators separated by commas, e.g. \">=1.2, <2\" or \"~1.27\"",
            ),
        ),
        (
            rule("tags: {semver: 1}"),
            e("rules[0].tags.semver", "semver must be a string, found a number", "write it as a quoted string, e.g. semver: \">=1.2, <2\""),
        ),
        (
            format!("rules: [{{source: 'a/b@{SHA}', destination: c/d, tags: {{include: [x]}}}}]"),
            e("rules[0].tags", "the source names a digest, so there are no tags to filter", "remove `tags`, or name the repository without a digest"),
        ),
        (rule("platforms: [linux]"), e("rules[0].platforms[0]", "invalid platform \"linux\": expected os/arch or os/arch/variant", platform_fix)),
        (
            rule("platforms: [linux/amd64, Linux/AMD64]"),
            e("rules[0].platforms[1]", "invalid platform \"Linux/AMD64\": expected os/arch or os/arch/variant", platform_fix),
        ),
        (
            rule("platforms: linux/arm64/v8/x"),
            e("rules[0].platforms", "invalid platform \"linux/arm64/v8/x\": expected os/arch or os/arch/variant", platform_fix),
        ),
        (rule("platforms: ['linux//v8']"), e("rules[0].platforms[0]", "invalid platform \"linux//v8\": expected os/arch or os/arch/variant", platform_fix)),
        ("proc: 0".into(), e("proc", "expected a whole number of at least 1, found 0", "write e.g. proc: 5")),
        ("proc: -1".into(), e("proc", "expected a whole number of at least 1, found -1", "write e.g. proc: 5")),
        ("proc: 1.5".into(), e("proc", "expected a whole number of at least 1, found a decimal number", "write e.g. proc: 5")),
        ("proc: '5'".into(), e("proc", "expected a whole number of at least 1, found a string", "write e.g. proc: 5")),
        ("retries: -1".into(), e("retries", "expected a whole number of at least 0, found -1", "write e.g. retries: 2")),
        ("retries: 99999999999".into(), e("retries", "99999999999 is too large", "use a smaller number, e.g. retries: 2")),
        (
            "os: [Linux]".into(),
            e("os[0]", "invalid name \"Linux\": expected lowercase letters, digits, '.', '_' or '-'", "write names as Go spells them, e.g. os: [linux]"),
        ),
        (
            "arch: [amd64, 'arm 64']".into(),
            e("arch[1]", "invalid name \"arm 64\": expected lowercase letters, digits, '.', '_' or '-'", "write names as Go spells them, e.g. arch: [amd64, arm64]"),
        ),
        ("arch: {x: 1}".into(), e("arch", "a name must be a string, found a map", "write it as a quoted string, e.g. arch: [amd64, arm64]")),
    ];
    for (text, want) in cases {
        assert_eq!(parse_config_file(f, &text, &env), Err(want), "{text:?}");
    }
}

#[test]
fn config_defaults_and_tolerance() {
    let parse = |text: &str| parse_config_file("config.yaml", text, &env).unwrap();
    // Empty sections are empty, as in Go.
    assert_eq!(parse("auth:\nimages:\n"), JobConfig::default());
    // A plain image-syncer file keeps image-syncer's tolerance for unknown auth fields.
    assert_eq!(parse("auth: {quay.io: {passwrod: x}}").auth.entries.len(), 1);
    // Single names are accepted where lists are expected.
    assert_eq!(parse("arch: amd64").arch, ["amd64"]);
    // `images` rules come before `rules`, whatever the key order.
    let job =
        parse("rules: [{source: b/b, destination: r.io/b}]\nimages: {a/a: r.io/a}\nproc: 2\nretries: 0");
    let order: Vec<&str> = job.rules.iter().map(|r| r.source_text.as_str()).collect();
    assert_eq!(order, ["a/a", "b/b"]);
    assert_eq!((job.proc, job.retries), (Some(2), Some(0)));
}

/// Short keys over the source grammar's delimiters never panic and never parse to a
/// source that does not round-trip through its own parts.
#[test]
fn exhaustive_short_sources_never_panic() {
    let alphabet = ["a", "A", "1", ":", "/", "@", ".", ",", "[", "]", "$", "é"];
    let mut keys = vec![String::new()];
    for _ in 0..4 {
        keys = keys.iter().flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}"))).collect();
        for key in &keys {
            let json = format!(
                "{{{}: {}}}",
                serde_json::to_string(key).unwrap(),
                serde_json::to_string(key).unwrap()
            );
            let _ = parse_images_file("images.json", &json, &env);
            let _ = parse_auth_file(
                "auth.json",
                &format!("{{{}: {{}}}}", serde_json::to_string(key).unwrap()),
                &env,
            );
        }
    }
}
