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

/// The Python with the Kubernetes API's models (Debian's python3-kubernetes), or `None`
/// (and a skip, or a failure when peers are required) without it.
fn python_with_kubernetes() -> Option<&'static str> {
    let python =
        if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let found = std::process::Command::new(python)
        .args(["-c", "import kubernetes.client, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(python);
    }
    let required = ["FERRY_REQUIRE_PEERS", "CI"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0"));
    assert!(!required, "the Kubernetes API's models are required: apt-get install -y python3-kubernetes");
    eprintln!("SKIP: python3-kubernetes is not installed (apt-get install -y python3-kubernetes)");
    None
}

/// Runs tests/support/k8s_fields.py over `files`: its exit code and its report.
fn check_fields(python: &str, files: &[PathBuf]) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/k8s_fields.py");
    let out = std::process::Command::new(python).arg(script).args(files).output().expect("run k8s_fields.py");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_manifest_names_only_fields_of_the_kubernetes_api() {
    let Some(python) = python_with_kubernetes() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let (code, report) = check_fields(python, &files);
    assert_eq!(code, 0, "fields the Kubernetes API does not have:\n{report}");

    // The checker finds what it is for: a misspelt probe, a field one level too high, a
    // port given as a string.
    let dir = support::TempDir::new("k8s-fields");
    let bad = dir.join("bad.yaml");
    let deployment = std::fs::read_to_string(deploy("deployment.yaml")).unwrap();
    let cases = [
        ("readinessProbe:", "readinesProbe:", "containers[0].readinesProbe: not a field of V1Container"),
        ("  replicas: 1", "  replica: 1", "spec.replica: not a field of V1DeploymentSpec"),
        ("containerPort: 9090", "containerPort: \"9090\"", "containerPort: expected int, found '9090'"),
    ];
    for (from, to, want) in cases {
        assert!(deployment.contains(from), "{from}");
        std::fs::write(&bad, deployment.replacen(from, to, 1)).unwrap();
        let (code, report) = check_fields(python, std::slice::from_ref(&bad));
        assert_eq!(code, 1, "{to}: {report}");
        assert!(report.contains(want), "{to}: {report}");
    }
}

#[test]
fn the_watch_deployment_probes_the_port_ferry_listens_on_and_drains_within_its_grace() {
    let flags = sync_flags();
    let doc = manifest("deployment.yaml");
    assert_eq!((&doc["apiVersion"], &doc["kind"]), (&"apps/v1".into(), &"Deployment".into()));
    let spec = &doc["spec"];
    assert_eq!(spec["replicas"], 1, "one watcher: two would copy every image twice");
    assert_eq!(spec["strategy"]["type"], "Recreate", "a rollout must not run two watchers at once");
    let pod = &spec["template"]["spec"];
    for (key, value) in spec["selector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(&spec["template"]["metadata"]["labels"][key], value, "the selector picks the pods");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &list(&pod["containers"], "containers")[0];
    let args: Vec<&str> = list(&container["args"], "args").iter().map(|a| str_of(a, "an arg")).collect();
    assert_eq!(&args[..2], ["sync", "--watch"], "{args:?}");
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(flags.contains(*flag), "{flag} is not a ferry sync flag");
    }

    // The probes reach the port --listen opens, at the paths ferry serves.
    let listen = arg(&args, "--listen");
    let port: u64 = listen.rsplit(':').next().unwrap().parse().expect("--listen HOST:PORT");
    let ports = list(&container["ports"], "ports");
    let named = ports.iter().find(|p| p["containerPort"] == port).expect("--listen's port is declared");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(get["port"] == named["name"] || get["port"] == port, "{probe} probes port {port}");
    }

    // The drain ends before Kubernetes' grace period does.
    let drain = arg(&args, "--drain-timeout");
    let drain_secs: u64 =
        drain.strip_suffix('s').and_then(|s| s.parse().ok()).expect("--drain-timeout in seconds");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(drain_secs < grace, "--drain-timeout {drain} must end within the {grace}s grace period");

    // The same ConfigMap and Secret as the Jobs, mounted where the arguments point.
    let (config, mount) = volume(pod, container, "config");
    assert_eq!(config["configMap"]["name"], manifest("configmap.yaml")["metadata"]["name"]);
    assert!(config["configMap"]["items"][0].get("subPath").is_none());
    let config_path = arg(&args, "--config");
    assert_eq!(item_path(config, "configMap", &mount, "config.yaml"), config_path);
    let (docker, mount) = volume(pod, container, "docker-config");
    assert_eq!(docker["secret"]["secretName"], manifest("secret.yaml")["metadata"]["name"]);
    let env = list(&container["env"], "env");
    let docker_config = env.iter().find(|e| e["name"] == "DOCKER_CONFIG").expect("DOCKER_CONFIG is set");
    assert_eq!(docker_config["value"], mount.as_str());
    let mounts = list(&container["volumeMounts"], "volumeMounts");
    assert!(mounts.iter().all(|m| m.get("subPath").is_none()), "subPath mounts never see a ConfigMap update");

    // The Service selects the Deployment's pods and exposes the same port.
    let service = manifest("service.yaml");
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&spec["template"]["metadata"]["labels"][key], value, "the Service selects the pods");
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], named["name"]);
}
