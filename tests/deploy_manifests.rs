//! The Kubernetes manifests in `deploy/`, parsed as YAML and checked where a mistake
//! would only show in a cluster: the Indexed Job's completions, parallelism and
//! `--shards` agree; the arguments are `ferry sync` flags; the ConfigMap holds the file
//! `--config` names, and ferry parses it; the Secret lands where `DOCKER_CONFIG` points.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cli::ferry;
use ferry_core::config::parse_config_file;
use serde_json::Value;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(file)
}

fn manifest(file: &str) -> Value {
    let path = deploy(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn list<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value.as_array().unwrap_or_else(|| panic!("{what} is not a list: {value}"))
}

/// The long flags `ferry sync --help` lists.
fn sync_flags() -> BTreeSet<String> {
    let help = ferry(&["sync", "--help"]).expect(0, "ferry sync --help").stdout;
    help.split_whitespace()
        .filter(|word| word.starts_with("--"))
        .map(|word| word.trim_end_matches([',', '.', ']', ')']).split(['=', '[']).next().unwrap().to_owned())
        .collect()
}

/// The value after `flag` in `args`.
fn arg<'a>(args: &'a [&str], flag: &str) -> &'a str {
    let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    args.get(at + 1).unwrap_or_else(|| panic!("{flag} has no value in {args:?}"))
}

/// The volume named `name`, and where the container mounts it.
fn volume<'a>(pod: &'a Value, container: &Value, name: &str) -> (&'a Value, String) {
    let volume = list(&pod["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"));
    let mount = list(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("volume {name} is not mounted"));
    (volume, str_of(&mount["mountPath"], "mountPath").trim_end_matches('/').to_owned())
}

/// The file the volume's item `key` becomes, under the mount path.
fn item_path(volume: &Value, source: &str, mount: &str, key: &str) -> String {
    let item = list(&volume[source]["items"], "items")
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("the {source} volume has no item {key}"));
    format!("{mount}/{}", str_of(&item["path"], "item path"))
}

#[test]
fn the_indexed_jobs_agree_with_ferry_and_with_their_config_map_and_secret() {
    let flags = sync_flags();
    assert!(flags.contains("--shards") && flags.contains("--config"), "{flags:?}");
    let config_map = manifest("configmap.yaml");
    assert_eq!((&config_map["apiVersion"], &config_map["kind"]), (&"v1".into(), &"ConfigMap".into()));
    let secret = manifest("secret.yaml");
    assert_eq!((&secret["apiVersion"], &secret["kind"]), (&"v1".into(), &"Secret".into()));

    // The file, the kind, and where its Job spec is.
    let cases: [(&str, &str, &[&str]); 2] =
        [("job.yaml", "Job", &["spec"]), ("cronjob.yaml", "CronJob", &["spec", "jobTemplate", "spec"])];
    for (file, kind, path) in cases {
        let doc = manifest(file);
        assert_eq!(doc["apiVersion"], "batch/v1", "{file}");
        assert_eq!(doc["kind"], kind, "{file}");
        if kind == "CronJob" {
            assert!(doc["spec"]["schedule"].is_string(), "{file}: a schedule");
            assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid", "{file}: nights must not overlap");
        }
        let job = path.iter().fold(&doc, |v, key| &v[*key]);
        assert_eq!(job["completionMode"], "Indexed", "{file}: JOB_COMPLETION_INDEX needs it");
        let pod = &job["template"]["spec"];
        let containers = list(&pod["containers"], "containers");
        assert_eq!(containers.len(), 1, "{file}");
        let container = &containers[0];
        let args: Vec<&str> = list(&container["args"], "args").iter().map(|a| str_of(a, "an arg")).collect();
        assert_eq!(args[0], "sync", "{file}: {args:?}");
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(flags.contains(*flag), "{file}: {flag} is not a ferry sync flag");
        }
        assert!(!args.contains(&"--shard"), "{file}: the index comes from JOB_COMPLETION_INDEX");
        let shards: u64 = arg(&args, "--shards").parse().expect("--shards is a number");
        assert_eq!(job["completions"], shards, "{file}: completions == --shards");
        assert_eq!(job["parallelism"], shards, "{file}: parallelism == --shards");

        // --config names the ConfigMap's key, mounted; and ferry reads that file.
        let (config, mount) = volume(pod, container, "config");
        assert_eq!(config["configMap"]["name"], config_map["metadata"]["name"], "{file}");
        let config_path = arg(&args, "--config");
        let key = config_path.rsplit('/').next().unwrap();
        assert_eq!(item_path(config, "configMap", &mount, key), config_path, "{file}");
        let text = str_of(&config_map["data"][key], "the ConfigMap's file");
        let parsed = parse_config_file(key, text, &|_| None).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(!parsed.rules.is_empty(), "{key} has rules");

        // The Secret's docker config.json sits in the directory DOCKER_CONFIG names.
        let (docker, mount) = volume(pod, container, "docker-config");
        assert_eq!(docker["secret"]["secretName"], secret["metadata"]["name"], "{file}");
        assert_eq!(item_path(docker, "secret", &mount, ".dockerconfigjson"), format!("{mount}/config.json"));
        let env = list(&container["env"], "env");
        let docker_config = env.iter().find(|e| e["name"] == "DOCKER_CONFIG").expect("DOCKER_CONFIG is set");
        assert_eq!(docker_config["value"], mount.as_str(), "{file}: DOCKER_CONFIG is the mount");
        let auths: Value =
            serde_json::from_str(str_of(&secret["stringData"][".dockerconfigjson"], ".dockerconfigjson"))
                .expect("the Secret holds JSON");
        assert!(auths["auths"].is_object(), "a docker config.json");
    }
}
