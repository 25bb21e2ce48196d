//! Bad input to the CLI: each case exits non-zero with one clear line that names the
//! file, key, reference or host, and never a panic or a backtrace. Secrets given on the
//! command line never show up in what ferry prints.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use cli::ferry;
use support::TempDir;

struct Case {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    /// Every one of these is in stderr.
    mentions: Vec<String>,
    /// stderr is exactly one line.
    one_line: bool,
}

fn case(name: &'static str, args: &[&str], code: i32, mentions: &[&str], one_line: bool) -> Case {
    Case {
        name,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code,
        mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
        one_line,
    }
}

#[test]
fn bad_input_gets_one_clear_line_and_a_nonzero_exit() {
    let dir = TempDir::new("cli-errors");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(dir.join("bad.json"), "{\n  \"127.0.0.1:5000/a\": \"127.0.0.1:5001/a\",\n  \"oops\"\n}\n")
        .unwrap();
    std::fs::write(dir.join("images.txt"), "{}").unwrap();
    std::fs::write(
        dir.join("bad-key.json"),
        r#"{"images": {"127.0.0.1:5000/a": "127.0.0.1:5001/a"}, "proc": "five"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("auth.json"),
        r#"{"127.0.0.1:5000": {"username": "u", "password": "${FERRY_TEST_UNSET_VAR}"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("images.json"), r#"{"127.0.0.1:1/library/a:1": "127.0.0.1:1/library/b"}"#)
        .unwrap();
    std::fs::write(dir.join("bad-source.json"), r#"{"Not A Ref": "127.0.0.1:1/library/b"}"#).unwrap();
    std::fs::write(dir.join("bad-digest.json"), r#"{"127.0.0.1:1/library/a:1": "127.0.0.1:1/b@sha256:abc"}"#)
        .unwrap();
    std::fs::write(dir.join("images-list.json"), r#"{"auth": {}, "images": ["127.0.0.1:1/library/a:1"]}"#)
        .unwrap();
    std::fs::write(dir.join("broken.yaml"), "auth:\n  127.0.0.1:5000:\n    username: u\nimages:\n  a: [\n")
        .unwrap();
    std::fs::write(
        dir.join("referrers-typo.yaml"),
        "rules:\n  - source: 127.0.0.1:1/library/a\n    destination: 127.0.0.1:1/library/b\n    referers: all\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("referrers-value.yaml"),
        "rules:\n  - source: 127.0.0.1:1/library/a\n    destination: 127.0.0.1:1/library/b\n    referrers: signatures\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("url-key.json"),
        r#"{"https://127.0.0.1:5000": {"username": "u", "password": "p"}}"#,
    )
    .unwrap();

    let missing = path("missing.json");
    let bad = path("bad.json");
    let txt = path("images.txt");
    let bad_key = path("bad-key.json");
    let auth = path("auth.json");
    let images = path("images.json");
    let (bad_source, bad_digest) = (path("bad-source.json"), path("bad-digest.json"));
    let (images_list, broken_yaml, url_key) =
        (path("images-list.json"), path("broken.yaml"), path("url-key.json"));
    let (referrers_typo, referrers_value) = (path("referrers-typo.yaml"), path("referrers-value.yaml"));
    let cases = [
        case(
            "a bad --referrers value names the value and the choices",
            &["sync", "--images", &images, "--referrers", "alll"],
            2,
            &["--referrers", "\"alll\"", "all, none", "sig, att, sbom"],
            false,
        ),
        case(
            "a bad --referrers item in copy",
            &["copy", "--referrers", "sig,signatures", "127.0.0.1:1/a:1", "127.0.0.1:1/b"],
            2,
            &["\"signatures\" is neither a cosign kind nor a media type", "all, none"],
            false,
        ),
        case(
            "a misspelt referrers key in a rule",
            &["sync", "--config", &referrers_typo],
            2,
            &["referrers-typo.yaml", "rules[0]", "unknown field \"referers\"", "referrers"],
            true,
        ),
        case(
            "a bad referrers value in a rule",
            &["sync", "--config", &referrers_value],
            2,
            &["referrers-value.yaml", "rules[0].referrers", "\"signatures\"", "sig, att, sbom"],
            true,
        ),
        case(
            "invalid source in the images file names the file and the key",
            &["sync", "--images", &bad_source],
            2,
            &["bad-source.json", "key \"Not A Ref\"", "fix:"],
            true,
        ),
        case(
            "invalid destination digest names the file and the key",
            &["sync", "--images", &bad_digest],
            2,
            &["bad-digest.json", "key \"127.0.0.1:1/library/a:1\"", "sha256:abc"],
            true,
        ),
        case(
            "images as a list in a combined config",
            &["sync", "--config", &images_list],
            2,
            &["images-list.json", "`images` must be a map"],
            true,
        ),
        case(
            "broken YAML names the file and line",
            &["sync", "--config", &broken_yaml],
            2,
            &["broken.yaml", "line 6"],
            true,
        ),
        case(
            "a URL as an auth key",
            &["sync", "--auth", &url_key, "--images", &images],
            2,
            &["url-key.json", "key \"https://127.0.0.1:5000\"", "without the scheme"],
            true,
        ),
        case(
            "--images with --config",
            &["sync", "--images", &images, "--config", &images_list],
            2,
            &["--config"],
            false,
        ),
        case(
            "unknown flag in copy",
            &["copy", "--bogus", "127.0.0.1:1/a:1", "127.0.0.1:1/b"],
            2,
            &["--bogus"],
            false,
        ),
        case(
            "invalid destination reference",
            &["copy", "127.0.0.1:1/a:1", "Bad/Dest"],
            2,
            &["Bad/Dest", "lowercase"],
            true,
        ),
        case("missing file", &["sync", "--images", &missing], 2, &["missing.json", "cannot read"], true),
        case(
            "bad JSON names the file and line",
            &["sync", "--images", &bad],
            2,
            &["bad.json", "line 4"],
            true,
        ),
        case("unknown extension", &["sync", "--images", &txt], 2, &["images.txt", ".yaml"], true),
        case("bad config key", &["sync", "--config", &bad_key], 2, &["bad-key.json", "proc"], true),
        case(
            "unset variable in the auth file",
            &["sync", "--auth", &auth, "--images", &images],
            2,
            &["auth.json", "FERRY_TEST_UNSET_VAR"],
            true,
        ),
        case("unknown flag", &["sync", "--images", &images, "--bogus"], 2, &["--bogus"], false),
        case("no images file", &["sync"], 2, &["--images"], false),
        case("proc of zero", &["sync", "--images", &images, "--proc", "0"], 2, &["--proc"], false),
        case("invalid reference", &["copy", "Not A Ref", "127.0.0.1:1/x"], 2, &["Not A Ref"], true),
        case(
            "invalid platform",
            &["copy", "--platform", "linux", "127.0.0.1:1/x:1", "127.0.0.1:1/y"],
            2,
            &["--platform"],
            true,
        ),
        case(
            "credentials without a colon",
            &["copy", "--src-creds", "nocolon", "127.0.0.1:1/x:1", "127.0.0.1:1/y"],
            2,
            &["--src-creds"],
            true,
        ),
        case(
            "diff of a repository against a registry",
            &["diff", "127.0.0.1:1/x", "127.0.0.1:2"],
            2,
            &["DST"],
            true,
        ),
        case("invalid diff side", &["diff", "bad host!", "127.0.0.1:2"], 2, &["bad host!"], true),
        case(
            "unreachable registry in a sync",
            &["sync", "--images", &images, "--retries", "0", "--progress", "plain"],
            1,
            &["127.0.0.1:1", "error: 1 of 1 image(s) failed"],
            false,
        ),
        case(
            "unreachable registry in a copy",
            &["copy", "--retries", "0", "127.0.0.1:1/a:1", "127.0.0.1:1/b"],
            1,
            &["127.0.0.1:1"],
            false,
        ),
        case("unreachable registry in ls", &["ls", "127.0.0.1:1/a"], 1, &["127.0.0.1:1"], true),
        case("unreachable registry in inspect", &["inspect", "127.0.0.1:1/a:1"], 1, &["127.0.0.1:1"], true),
        case(
            "unreachable registry in a diff",
            &["diff", "127.0.0.1:1/a", "127.0.0.1:1/b"],
            2,
            &["error: ", "127.0.0.1:1"],
            false,
        ),
    ];
    for c in cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let run = ferry(&args);
        run.assert_no_panic();
        assert_eq!(
            run.code, c.code,
            "{}: exit {}\nstdout: {}\nstderr: {}",
            c.name, run.code, run.stdout, run.stderr
        );
        for mention in &c.mentions {
            assert!(
                run.stderr.contains(mention.as_str()),
                "{}: stderr does not mention {mention:?}:\n{}",
                c.name,
                run.stderr
            );
        }
        assert!(
            run.stderr.lines().any(|l| l.starts_with("error:")),
            "{}: no `error:` line in stderr:\n{}",
            c.name,
            run.stderr
        );
        if c.one_line {
            assert_eq!(run.stderr.lines().count(), 1, "{}: stderr is not one line:\n{}", c.name, run.stderr);
        }
    }
}

#[test]
fn secrets_never_show() {
    let dir = TempDir::new("cli-secrets");
    let report = dir.join("report.json");
    let run = ferry(&[
        "copy",
        "--retries",
        "0",
        "--src-creds",
        "alice:s3cr3t-src",
        "--dest-creds",
        "bob:s3cr3t-dst",
        "--progress",
        "json",
        "--report",
        report.to_str().unwrap(),
        "127.0.0.1:1/a:1",
        "127.0.0.1:1/b",
    ]);
    run.assert_no_panic();
    assert_eq!(run.code, 1);
    let report = std::fs::read_to_string(&report).unwrap();
    for text in [&run.stdout, &run.stderr, &report] {
        assert!(!text.contains("s3cr3t"), "a secret leaked:\n{text}");
    }
    // A malformed value is not echoed back either.
    let run = ferry(&["copy", "--dest-creds", "s3cr3t-without-colon", "127.0.0.1:1/a:1", "127.0.0.1:1/b"]);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("s3cr3t"), "{}", run.stderr);
}

/// A failure's kind travels in `--progress json` and in the summary, so a front end can
/// act on it without reading the message.
#[test]
fn a_failure_carries_its_kind_in_events_and_summary() {
    let dir = TempDir::new("cli-kinds");
    let images = dir.join("images.json");
    std::fs::write(&images, r#"{"127.0.0.1:1/a:1": "127.0.0.1:1/b"}"#).unwrap();
    let run = ferry(&["sync", "--images", images.to_str().unwrap(), "--retries", "0", "--progress", "json"]);
    run.assert_no_panic();
    let run = run.expect(1, "an unreachable registry");
    let failed: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "image_failed" || e["event"] == "plan_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert_eq!((&failed[0]["kind"], &failed[0]["retryable"]), (&"unavailable".into(), &true.into()));
    assert!(run.stderr.contains("(unavailable: a retry may help)"), "{}", run.stderr);
}
