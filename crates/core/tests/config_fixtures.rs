//! Every sample configuration under `tests/fixtures/config/` parses to exactly what it says.

use std::collections::BTreeMap;

use ferry_core::config::{
    parse_auth_file, parse_config_file, parse_images_file, AuthConfig, AuthEntry, DestinationSpec, JobConfig,
    Rule, SourceSpec, TagFilter, TagPattern, TagSelector, TlsEntry,
};
use regex_lite::Regex;
use semver::VersionReq;

const PINNED: &str = "sha256:14b267eb38aa85fd12d0e168fffa2d8a6187ac53a14a0212b0d4fce8d729598c";
const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn env(name: &str) -> Option<String> {
    let value = match name {
        "ALIYUN_USER" => "aliyun-user",
        "ALIYUN_PASSWORD" => "aliyun-password",
        "GCR_TOKEN" => "gcr-refresh-token",
        "HUB_TOKEN" => "hub-token",
        "MIRROR" => "mirror.example.com",
        "MIRROR_PASSWORD" => "mirror-password",
        "GHCR_TOKEN" => "ghcr-token",
        "BACKUP_REGISTRY" => "backup.example.com",
        _ => return None,
    };
    Some(value.to_owned())
}

fn login(username: Option<&str>, password: Option<&str>, insecure: bool) -> AuthEntry {
    AuthEntry {
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
        identity_token: None,
        insecure,
    }
}

fn token(token: &str) -> AuthEntry {
    AuthEntry { identity_token: Some(token.to_owned()), ..AuthEntry::default() }
}

fn auth(entries: Vec<(&str, AuthEntry)>) -> AuthConfig {
    AuthConfig { entries: entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<_, _>>() }
}

fn source(registry: &str, repository: Option<&str>, selector: TagSelector) -> SourceSpec {
    SourceSpec { registry: registry.to_owned(), repository: repository.map(str::to_owned), selector }
}

fn dest(registry: &str, repository: Option<&str>, tags: &[&str]) -> DestinationSpec {
    DestinationSpec {
        registry: registry.to_owned(),
        repository: repository.map(str::to_owned),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn list(tags: &[&str]) -> TagSelector {
    TagSelector::List(tags.iter().map(|t| t.to_string()).collect())
}

fn rule(text: &str, source: SourceSpec, destinations: Vec<DestinationSpec>) -> Rule {
    Rule {
        source_text: text.to_owned(),
        source,
        destinations,
        tags: TagFilter::default(),
        platforms: Vec::new(),
        immutable: None,
        referrers: None,
    }
}

/// The rules of `images.json` / `images.yaml`: the README's examples plus a retag.
fn readme_images() -> Vec<Rule> {
    let proxy = "quay.io/coreos/kube-rbac-proxy";
    let src = |selector| source("quay.io", Some("coreos/kube-rbac-proxy"), selector);
    let ruohe = |repo: &str| dest("quay.io", Some(repo), &[]);
    vec![
        rule(proxy, src(TagSelector::All), vec![ruohe("ruohe/kube-rbac-proxy")]),
        rule(&format!("{proxy}:v1.0"), src(list(&["v1.0"])), vec![ruohe("ruohe/kube-rbac-proxy")]),
        rule(
            &format!("{proxy}:v1.0,v2.0"),
            src(list(&["v1.0", "v2.0"])),
            vec![ruohe("ruohe/kube-rbac-proxy")],
        ),
        rule(
            &format!("{proxy}@{PINNED}"),
            src(TagSelector::Digest(PINNED.parse().unwrap())),
            vec![ruohe("ruohe/kube-rbac-proxy")],
        ),
        rule(
            &format!("{proxy}:v1.1"),
            src(list(&["v1.1"])),
            vec![ruohe("ruohe/kube-rbac-proxy1"), ruohe("ruohe/kube-rbac-proxy2")],
        ),
        rule(
            &format!("{proxy}:/a+/"),
            src(TagSelector::Pattern(Regex::new("a+").unwrap())),
            vec![ruohe("ruohe/kube-rbac-proxy")],
        ),
        rule(
            "nginx:1.27,1.26",
            source("docker.io", Some("library/nginx"), list(&["1.27", "1.26"])),
            vec![dest("mirror.example.com", Some("library/nginx"), &["stable", "oldstable"])],
        ),
    ]
}

#[test]
fn image_syncer_auth_files() {
    let common = || {
        vec![
            ("quay.io", login(Some("quay-robot"), Some("quay-password"), true)),
            ("registry.cn-beijing.aliyuncs.com", login(Some("aliyun-user"), Some("aliyun-password"), false)),
            ("docker.io", login(Some("hub-user"), Some("hub-token"), false)),
            ("quay.io/coreos", login(Some("coreos-robot"), Some("coreos-password"), true)),
            ("gcr.io", token("gcr-refresh-token")),
            ("localhost:5000", login(None, None, true)),
        ]
    };
    let json = parse_auth_file("auth.json", include_str!("fixtures/config/auth.json"), &env).unwrap();
    assert_eq!(json, auth(common()));

    let mut yaml_entries = common();
    yaml_entries.push(("ghcr.io", AuthEntry::default()));
    let yaml = parse_auth_file("auth.yaml", include_str!("fixtures/config/auth.yaml"), &env).unwrap();
    assert_eq!(yaml, auth(yaml_entries));

    // The longest matching key wins, on '/' boundaries only; the identity token is used.
    let store = yaml.credentials().unwrap();
    let find = |registry, repository| store.lookup(registry, repository).map(|c| c.username.clone());
    assert_eq!(find("quay.io", "coreos/etcd").as_deref(), Some("coreos-robot"));
    assert_eq!(find("quay.io", "coreosx/etcd").as_deref(), Some("quay-robot"));
    assert_eq!(find("docker.io", "library/nginx").as_deref(), Some("hub-user"));
    assert_eq!(find("registry.example.com", "a"), None);
    let gcr = store.lookup("gcr.io", "project/app").and_then(|c| c.refresh_token().map(str::to_owned));
    assert_eq!(gcr.as_deref(), Some("gcr-refresh-token"));
}

#[test]
fn image_syncer_images_files() {
    for (name, text) in [
        ("images.json", include_str!("fixtures/config/images.json")),
        ("images.yaml", include_str!("fixtures/config/images.yaml")),
    ] {
        assert_eq!(parse_images_file(name, text, &env).unwrap(), readme_images(), "{name}");
    }
}

#[test]
fn image_syncer_combined_files() {
    let want = JobConfig {
        auth: auth(vec![
            ("quay.io", login(Some("quay-robot"), Some("quay-password"), true)),
            ("docker.io", login(Some("hub-user"), Some("hub-token"), false)),
            ("quay.io/coreos", login(Some("coreos-robot"), Some("coreos-password"), false)),
        ]),
        rules: readme_images().into_iter().take(3).collect(),
        ..JobConfig::default()
    };
    for (name, text) in [
        ("config.json", include_str!("fixtures/config/config.json")),
        ("config.yaml", include_str!("fixtures/config/config.yaml")),
    ] {
        assert_eq!(parse_config_file(name, text, &env).unwrap(), want, "{name}");
    }
}

#[test]
fn ferry_config_uses_every_feature() {
    let job = parse_config_file("ferry.yaml", include_str!("fixtures/config/ferry.yaml"), &env).unwrap();
    let mirror = "registry.example.com:5000";
    let want = JobConfig {
        auth: auth(vec![
            ("docker.io", login(Some("ferry"), Some("hub-token"), false)),
            (mirror, login(Some("mirror"), Some("mirror-password"), true)),
            ("ghcr.io/acme", token("ghcr-token")),
        ]),
        rules: vec![
            rule(
                "quay.io/coreos/etcd:v3.5.0,v3.5.1",
                source("quay.io", Some("coreos/etcd"), list(&["v3.5.0", "v3.5.1"])),
                vec![dest(mirror, Some("coreos/etcd"), &[])],
            ),
            rule(
                &format!("alpine@{EMPTY}"),
                source("docker.io", Some("library/alpine"), TagSelector::Digest(EMPTY.parse().unwrap())),
                vec![dest(mirror, Some("library/alpine"), &["pinned"])],
            ),
            Rule {
                tags: TagFilter {
                    include: vec![Regex::new(r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?$").unwrap()],
                    exclude: vec![Regex::new("-rc").unwrap(), Regex::new("-beta").unwrap()],
                    semver: Some(VersionReq::parse(">=1.25, <2").unwrap()),
                },
                platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
                immutable: Some(TagPattern::new(r"^[0-9]+\.[0-9]+\.[0-9]+$").unwrap()),
                ..rule(
                    "nginx",
                    source("docker.io", Some("library/nginx"), TagSelector::All),
                    vec![
                        dest(mirror, Some("library/nginx"), &[]),
                        dest("backup.example.com", Some("library/nginx"), &[]),
                    ],
                )
            },
            rule(
                "ghcr.io/acme/api:/^release-/",
                source("ghcr.io", Some("acme/api"), TagSelector::Pattern(Regex::new("^release-").unwrap())),
                vec![dest(mirror, Some("acme/api"), &[])],
            ),
            Rule {
                tags: TagFilter { exclude: vec![Regex::new("latest").unwrap()], ..TagFilter::default() },
                ..rule(
                    "localhost:5000",
                    source("localhost:5000", None, TagSelector::All),
                    vec![dest(mirror, Some("backup"), &[])],
                )
            },
        ],
        proc: Some(8),
        retries: Some(3),
        os: vec!["linux".into()],
        arch: vec!["amd64".into(), "arm64".into()],
        tls: [(
            mirror.to_owned(),
            TlsEntry {
                ca: Some("certs/private-ca.crt".into()),
                cert: Some("certs/client.cert".into()),
                key: Some("certs/client.key".into()),
                cert_dir: None,
            },
        )]
        .into(),
        state: Some("state/ferry-state.json".into()),
    };
    assert_eq!(job, want);

    let nginx = &job.rules[2];
    let selected: Vec<&str> = ["1.24.0", "1.25.3", "v1.27", "1.27-alpine", "1.28.0-rc1", "2.0.0", "latest"]
        .into_iter()
        .filter(|tag| nginx.source.selector.matches(tag) && nginx.tags.matches(tag))
        .collect();
    assert_eq!(selected, ["1.25.3", "v1.27"]);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let auth = parse_auth_file("auth.json", include_str!("fixtures/config/auth.json"), &env).unwrap();
    let printed = format!("{auth:?}");
    for secret in ["quay-password", "aliyun-password", "hub-token", "coreos-password", "gcr-refresh-token"] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("quay-robot") && printed.contains("<redacted>"));
}
