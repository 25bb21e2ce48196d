//! Whole files: formats, syntax, shapes and the auth file.

use super::*;

#[test]
fn format_from_path() {
    let bad = |name: &str| {
        Err(err(
            name,
            None,
            "the file's extension does not say whether it is JSON or YAML",
            "name it with one of the accepted extensions: .json, .yaml or .yml",
        ))
    };
    let cases = [
        ("auth.json", Ok(Format::Json)),
        ("/etc/ferry/images.yaml", Ok(Format::Yaml)),
        ("config.yml", Ok(Format::Yaml)),
        ("CONFIG.YML", Ok(Format::Yaml)),
        ("config.toml", bad("config.toml")),
        ("config", bad("config")),
        ("json", bad("json")),
        ("", bad("")),
    ];
    for (name, want) in cases {
        assert_eq!(Format::from_path(name), want, "{name}");
    }
}

#[test]
fn syntax_and_shape_errors() {
    let json_fix = "correct the JSON at that position (JSON allows no comments and no trailing commas)";
    let empty =
        |file| err(file, None, "the file is empty", "write the configuration into it, or pass another file");
    let cases: Vec<(&str, &str, ConfigError)> = vec![
        ("i.json", "", empty("i.json")),
        ("i.json", "  \n\t", empty("i.json")),
        ("i.json", "null", empty("i.json")),
        ("i.yaml", "# only a comment\n", empty("i.yaml")),
        ("i.json", "{\"a\": \"b\",}", err("i.json", None, "cannot parse JSON: trailing comma at line 1 column 11", json_fix)),
        ("i.json", "{\"a\": \"b\"", err("i.json", None, "cannot parse JSON: EOF while parsing an object at line 1 column 9", json_fix)),
        ("i.json", "// c\n{}", err("i.json", None, "cannot parse JSON: expected value at line 1 column 1", json_fix)),
        ("i.json", "{1: 2}", err("i.json", None, "cannot parse JSON: key must be a string at line 1 column 2", json_fix)),
        (
            "i.json",
            "{\"a\": \"b\", \"a\": \"c\"}",
            err("i.json", None, "cannot parse JSON: duplicate key \"a\" at line 1 column 14", DUPLICATE_FIX),
        ),
        ("i.yaml", "a: b\na: c\n", err("i.yaml", None, "cannot parse YAML: duplicate key \"a\" at line 2 column 1", DUPLICATE_FIX)),
        (
            "i.yaml",
            "x:\n  y: 1\n  y: 2\n",
            err("i.yaml", None, "cannot parse YAML: x: duplicate key \"y\" at line 3 column 3", DUPLICATE_FIX),
        ),
        (
            "i.yaml",
            "a: [b\n",
            err(
                "i.yaml",
                None,
                "cannot parse YAML: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 4",
                YAML_FIX,
            ),
        ),
        (
            "i.yaml",
            "a: b\n  c: d\n",
            err("i.yaml", None, "cannot parse YAML: mapping values are not allowed in this context at line 2 column 4", YAML_FIX),
        ),
        (
            "i.yaml",
            "1: x\n",
            err(
                "i.yaml",
                None,
                "cannot parse YAML: invalid type: integer `1`, expected a string key (quote the key) at line 1 column 1",
                YAML_FIX,
            ),
        ),
        (
            "i.yaml",
            "a: b\n---\nc: d\n",
            err(
                "i.yaml",
                None,
                "cannot parse YAML: deserializing from YAML containing more than one document is not supported",
                YAML_FIX,
            ),
        ),
        ("i.yaml", "a: &x b\nc: *y\n", err("i.yaml", None, "cannot parse YAML: unknown anchor at line 2 column 4", YAML_FIX)),
        (
            "i.json",
            "[1]",
            err(
                "i.json",
                None,
                "the images file must be a map from source to destination, found a list",
                "write one `source: destination` pair per line, e.g. quay.io/coreos/etcd: registry.example.com/coreos/etcd",
            ),
        ),
        (
            "i.yaml",
            "just a string",
            err(
                "i.yaml",
                None,
                "the images file must be a map from source to destination, found a string",
                "write one `source: destination` pair per line, e.g. quay.io/coreos/etcd: registry.example.com/coreos/etcd",
            ),
        ),
    ];
    for (file, text, want) in cases {
        assert_eq!(parse_images_file(file, text, &env), Err(want), "{file}: {text:?}");
    }
}

#[test]
fn auth_errors() {
    let f = "auth.yaml";
    let cases: Vec<(&str, ConfigError)> = vec![
        (
            "[a]",
            err(
                f,
                None,
                "the auth file must be a map from registry to login, found a list",
                "write one `registry: {username: ..., password: ...}` entry per registry, e.g. quay.io",
            ),
        ),
        (
            "quay.io: [a]",
            err(f, Some("quay.io"), "an auth entry must be a map, found a list", "write an auth entry as `name: value` pairs"),
        ),
        (
            "quay.io: {username: 123}",
            err(
                f,
                Some("quay.io"),
                "field \"username\" must be a string, found a number",
                "write it as a quoted string, e.g. username: \"${REGISTRY_USERNAME}\"",
            ),
        ),
        (
            "quay.io: {password: true}",
            err(
                f,
                Some("quay.io"),
                "field \"password\" must be a string, found true/false",
                "write it as a quoted string, e.g. password: \"${REGISTRY_PASSWORD}\"",
            ),
        ),
        (
            "quay.io: {insecure: \"true\"}",
            err(
                f,
                Some("quay.io"),
                "field \"insecure\" must be true or false, found a string",
                "write insecure: true for a plain-HTTP registry, or leave the field out",
            ),
        ),
        (
            "https://quay.io/: {}",
            err(
                f,
                Some("https://quay.io/"),
                "auth keys are hosts, not URLs: \"https\" is a URL scheme",
                "write the host without the scheme: \"quay.io\"",
            ),
        ),
        (
            "quay.io/CoreOS: {}",
            err(f, Some("quay.io/CoreOS"), "repository name must be lowercase: \"CoreOS\"; write \"coreos\"", AUTH_KEY_FIX),
        ),
        (
            "bad_host: {}",
            err(
                f,
                Some("bad_host"),
                "registry \"bad_host\" is not a valid host: use dot-separated labels of letters, digits and inner '-', \
                 or an IPv6 address in brackets, optionally followed by :port (e.g. registry.example.com:5000 or [::1]:5000)",
                AUTH_KEY_FIX,
            ),
        ),
        (
            "localhost:0: {}",
            err(
                f,
                Some("localhost:0"),
                "registry \"localhost:0\" has an invalid port: write a number from 1 to 65535 after the ':'",
                AUTH_KEY_FIX,
            ),
        ),
        (
            "docker.io: {}\nRegistry.Hub.Docker.com: {}",
            err(
                f,
                Some("Registry.Hub.Docker.com"),
                "names the same registry as key \"docker.io\" (both mean \"docker.io\")",
                "keep one of the two entries",
            ),
        ),
        ("quay.io: {password: $NOPE}", unset(f, "quay.io", "field \"password\"", "NOPE")),
        ("quay.io: {username: \"${USER_NAME}\"}", unset(f, "quay.io", "field \"username\"", "USER_NAME")),
        ("quay.io: {identityToken: \"${TOKEN}\"}", unset(f, "quay.io", "field \"identityToken\"", "TOKEN")),
        // Go would silently turn "pa$$word" into "paword"; ferry names the culprit.
        ("quay.io: {password: pa$$word}", unset(f, "quay.io", "field \"password\"", "$")),
    ];
    for (text, want) in cases {
        assert_eq!(parse_auth_file(f, text, &env), Err(want), "{text:?}");
    }
}

#[test]
fn auth_accepts_what_image_syncer_accepts() {
    let parse = |text| parse_auth_file("auth.yaml", text, &env).unwrap();
    let entry = |username: Option<&str>, password: Option<&str>| AuthEntry {
        username: username.map(Into::into),
        password: password.map(Into::into),
        ..AuthEntry::default()
    };
    let cases: Vec<(&str, Vec<(&str, AuthEntry)>)> = vec![
        ("quay.io:\n", vec![("quay.io", AuthEntry::default())]),
        ("quay.io: {passwrod: x, email: y}", vec![("quay.io", AuthEntry::default())]),
        ("quay.io/: {username: u}", vec![("quay.io", entry(Some("u"), None))]),
        ("Quay.IO/team: {password: \"${PASSWORD}\"}", vec![("quay.io/team", entry(None, Some("s3cret")))]),
        ("index.docker.io: {username: '', password: ~}", vec![("docker.io", AuthEntry::default())]),
        (
            "\"[::1]:5000\": {insecure: true}",
            vec![("[::1]:5000", AuthEntry { insecure: true, ..AuthEntry::default() })],
        ),
    ];
    for (text, want) in cases {
        let want = AuthConfig { entries: want.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() };
        assert_eq!(parse(text), want, "{text:?}");
    }
}

#[test]
fn display_names_file_key_and_fix() {
    let with_key = err("images.yaml", Some("quay.io/x:/[/"), "invalid tag pattern /[/", "close the class");
    assert_eq!(
        with_key.to_string(),
        "images.yaml: key \"quay.io/x:/[/\": invalid tag pattern /[/ — fix: close the class"
    );
    let without = err("auth.json", None, "the file is empty", "write it");
    assert_eq!(without.to_string(), "auth.json: the file is empty — fix: write it");
}

#[test]
fn auth_entry_debug_redacts_secrets() {
    let entry = AuthEntry {
        username: Some("robot".into()),
        password: Some("hunter2".into()),
        identity_token: Some("refresh".into()),
        insecure: true,
    };
    assert_eq!(
        format!("{entry:?}"),
        "AuthEntry { username: Some(\"robot\"), password: Some(\"<redacted>\"), identity_token: Some(\"<redacted>\"), insecure: true }"
    );
    assert_eq!(
        format!("{:?}", AuthEntry::default()),
        "AuthEntry { username: None, password: None, identity_token: None, insecure: false }"
    );
}

#[test]
fn auth_credentials_prefer_the_longest_key_and_identity_tokens() {
    let config = parse_auth_file(
        "auth.yaml",
        "quay.io: {username: registry, password: p}\n\
         quay.io/coreos: {username: namespace, password: p}\n\
         quay.io/coreos/etcd: {username: repo, password: p}\n\
         quay.io/anon: {insecure: true}\n\
         acr.test: {username: ignored, password: p, identityToken: refresh}",
        &env,
    )
    .unwrap();
    let store = config.credentials().unwrap();
    let cases = [
        (("quay.io", "coreos/etcd"), Some("repo")),
        (("quay.io", "coreos/etcd/sub"), Some("repo")),
        (("quay.io", "coreos/etcdx"), Some("namespace")),
        (("quay.io", "other/app"), Some("registry")),
        (("quay.io", "anon/app"), Some("registry")),
        (("quay.iox", "a"), None),
        (("ghcr.io", "coreos/etcd"), None),
        (("acr.test", "app"), Some("<token>")),
    ];
    for ((registry, repository), want) in cases {
        let got = store.lookup(registry, repository).map(|c| c.username.as_str());
        assert_eq!(got, want, "{registry}/{repository}");
    }
    assert_eq!(store.lookup("acr.test", "app").and_then(|c| c.refresh_token()), Some("refresh"));
}
