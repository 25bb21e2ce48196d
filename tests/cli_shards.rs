//! `ferry sync --shard I/N` (and `--shards N` with `JOB_COMPLETION_INDEX`) as N separate
//! processes between `ferry serve` registries.
//!
//! What they prove: for N = 1, 3 and 4, the shards running at once copy disjoint shares
//! whose union is what a single run copies, no image twice, and the destination ends with
//! every image at its source digest; each report names its shard and the repositories it
//! took. Bad shard values exit 2 naming the flag or variable and the fix.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use cli::{ferry, head_digest, push_image, Run};
use serde_json::Value;
use support::{ferry_bin, Ferry, TempDir};

/// Repositories reached by a whole-registry rule (under `all/`) and by rules naming them.
const CATALOGUED: [&str; 6] = ["app", "base", "db", "team/tool", "team/web", "cache"];
const NAMED: [&str; 2] = ["named/api", "named/cli"];

/// Pushes two tags to every repository; returns `(repository, tag, digest)`.
fn seed(src: &str) -> Vec<(String, String, String)> {
    let mut tags = Vec::new();
    for repository in CATALOGUED.iter().chain(&NAMED) {
        for tag in ["v1", "v2"] {
            let layer = format!("{repository}:{tag}");
            let (digest, _) =
                push_image(src, repository, Some(tag), &[layer.as_bytes(), b"shared"], "linux/amd64");
            tags.push((repository.to_string(), tag.to_owned(), digest));
        }
    }
    tags
}

/// The whole source registry under `all/`, and the named repositories under their names.
fn images_json(dir: &Path, src: &str, dst: &str) -> String {
    let text = format!(
        r#"{{
  "{src}": "{dst}/all",
  "{src}/named/api": "{dst}/named/api",
  "{src}/named/cli:v1,v2": "{dst}/named/cli"
}}
"#
    );
    let path = dir.join(format!("images-{}.json", dst.replace([':', '.'], "-")));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The report's copied images as `source -> destination path` (the destination's host
/// left out, so runs against different registries compare).
fn copied(report: &Value) -> Vec<String> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "copied")
        .map(|i| {
            let destination = i["destination"].as_str().unwrap();
            format!("{} -> {}", i["source"].as_str().unwrap(), destination.split_once('/').unwrap().1)
        })
        .collect()
}

/// Where each source repository lands under the rules of [`images_json`].
fn destination_repository(repository: &str) -> String {
    if NAMED.contains(&repository) {
        repository.to_owned()
    } else {
        format!("all/{repository}")
    }
}

#[test]
fn n_shard_processes_copy_the_single_runs_images_each_once() {
    let src = Ferry::start(&["--storage", "memory"]);
    let tags = seed(&src.url);
    let dir = TempDir::new("cli-shards");

    let single_dst = Ferry::start(&["--storage", "memory"]);
    let report = dir.join("single.json");
    let images = images_json(dir.path(), &src.host(), &single_dst.host());
    ferry(&["sync", "--images", &images, "--report", report.to_str().unwrap()]).expect(0, "single run");
    let single: BTreeSet<String> = copied(&read_report(&report)).into_iter().collect();
    // Every catalogued repository twice (under all/, and named/* again), the named ones
    // under their own names.
    assert_eq!(single.len(), (CATALOGUED.len() + NAMED.len()) * 2 + NAMED.len() * 2);

    for count in [1u32, 3, 4] {
        let dst = Ferry::start(&["--storage", "memory"]);
        let images = images_json(dir.path(), &src.host(), &dst.host());
        let docker = TempDir::new("docker-config");
        // Every shard at once, as an Indexed Job runs them: odd indexes as Kubernetes
        // gives them (JOB_COMPLETION_INDEX with --shards), even ones with --shard.
        let children: Vec<_> = (0..count)
            .map(|index| {
                let report = dir.join(&format!("shard-{index}-of-{count}.json"));
                let mut command = Command::new(ferry_bin());
                command.args(["sync", "--images", &images, "--progress", "plain", "--report"]).arg(&report);
                if index % 2 == 1 {
                    command
                        .args(["--shards", &count.to_string()])
                        .env("JOB_COMPLETION_INDEX", index.to_string());
                } else {
                    command.args(["--shard", &format!("{index}/{count}")]).env_remove("JOB_COMPLETION_INDEX");
                }
                let child = command
                    .env("DOCKER_CONFIG", docker.path())
                    .env_remove("FERRY_SHARDS")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start ferry sync");
                (index, report, child)
            })
            .collect();
        let mut all = Vec::new();
        let mut repositories = 0;
        for (index, report, child) in children {
            let output = child.wait_with_output().expect("wait for ferry sync");
            let run = Run {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            };
            let run = run.expect(0, &format!("shard {index}/{count}"));
            let report = read_report(&report);
            let summary = &report["summary"];
            assert_eq!(summary["shard"]["index"], index, "{index}/{count}");
            assert_eq!(summary["shard"]["count"], count, "{index}/{count}");
            assert_eq!(summary["skipped"], 0, "{index}/{count}: its images were another shard's");
            let took = summary["repositories"].as_u64().unwrap_or(0);
            repositories += took;
            assert!(
                run.stdout.contains(&format!("shard {index}/{count}: took {took} source repositor")),
                "the summary names the shard:\n{}",
                run.stdout
            );
            let planned = format!("shard {index}/{count}: planned ");
            assert!(
                run.stdout.contains(&planned) || run.stderr.contains(&planned),
                "plan_ready names the shard:\n{}{}",
                run.stdout,
                run.stderr
            );
            all.extend(copied(&report));
        }
        let union: BTreeSet<String> = all.iter().cloned().collect();
        assert_eq!(union.len(), all.len(), "{count} shards: an image was copied twice");
        assert_eq!(union, single, "{count} shards: the union differs from the single run");
        // named/* is reached by two rules; each shard counts a repository once.
        assert!(repositories >= (CATALOGUED.len() + NAMED.len()) as u64, "{count} shards: {repositories}");
        for (repository, tag, digest) in &tags {
            let at = destination_repository(repository);
            assert_eq!(head_digest(&dst.url, &at, tag).as_deref(), Some(digest.as_str()), "{at}:{tag}");
        }
    }
}

#[test]
fn bad_shard_values_name_the_flag_or_variable_and_the_fix() {
    let dir = TempDir::new("cli-shards-bad");
    // No registry is reached: the shard is checked before the job starts.
    let images = images_json(dir.path(), "127.0.0.1:9", "127.0.0.1:9");
    struct Case {
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
        /// What stderr must say.
        want: &'static [&'static str],
    }
    const INDEX: &str = "JOB_COMPLETION_INDEX";
    let cases = [
        Case { args: &["--shard", "3/3"], env: &[], want: &["--shard \"3/3\"", "from 0 to 2"] },
        Case { args: &["--shard", "0/0"], env: &[], want: &["--shard \"0/0\"", "at least 1 shard"] },
        Case {
            args: &["--shard", "x/2"],
            env: &[],
            want: &["--shard \"x/2\"", "index \"x\" is not a whole number"],
        },
        Case { args: &["--shard", "1"], env: &[], want: &["--shard \"1\"", "give INDEX/COUNT"] },
        Case { args: &[], env: &[(INDEX, "1")], want: &["JOB_COMPLETION_INDEX", "add --shards N"] },
        Case {
            args: &["--shards", "4"],
            env: &[],
            want: &["--shards 4 needs JOB_COMPLETION_INDEX", "--shard INDEX/4"],
        },
        Case {
            args: &[],
            env: &[("FERRY_SHARDS", "0"), (INDEX, "0")],
            want: &["FERRY_SHARDS \"0\"", "at least 1"],
        },
        Case {
            args: &["--shards", "3"],
            env: &[(INDEX, "3")],
            want: &["JOB_COMPLETION_INDEX \"3\"", "completions"],
        },
    ];
    for Case { args, env, want } in cases {
        let docker = TempDir::new("docker-config");
        let mut command = Command::new(ferry_bin());
        command
            .args(["sync", "--images", &images])
            .args(args)
            .env("DOCKER_CONFIG", docker.path())
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("FERRY_SHARDS")
            .envs(env.iter().copied());
        let run = Run::from_command(&mut command).expect(2, &format!("{args:?} {env:?}"));
        run.assert_no_panic();
        for fragment in want {
            assert!(run.stderr.contains(fragment), "{args:?} {env:?}: {fragment:?} not in\n{}", run.stderr);
        }
    }
    // --shard and --shards together is a usage error.
    let run =
        ferry(&["sync", "--images", &images, "--shard", "0/2", "--shards", "2"]).expect(2, "both flags");
    assert!(run.stderr.contains("--shard"), "{}", run.stderr);
}
