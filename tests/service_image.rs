//! The repository's `Dockerfile`, built and run by Debian's podman (vfs storage) and by a
//! `dockerd` this test starts (vfs storage, no iptables, no bridge).
//!
//! No image registry is reachable from these machines, so the Dockerfile's bases come in
//! through its build arguments, as they would for any air-gapped user: the runtime base
//! is a root file system made here of the files distroless's cc-debian12 image ships
//! (Debian 12's glibc, libm and libgcc_s as `ldd` lists them for ferry, the CA bundle,
//! and the `nonroot` user), imported with `podman import` / `docker import`; and
//! `FERRY_FROM` is an imported image holding the `ferry` binary this test run built, at
//! `/out/ferry`, so the image costs no second compile. The build context is the
//! Dockerfile alone: the `build` stage, which compiles the sources, is skipped (buildah
//! and BuildKit skip stages the target does not use).
//!
//! What it proves, for each engine: the image builds; its user is 65532:65532 and its
//! entrypoint is ferry; and `ferry sync` run from it, on the host's network with an
//! images file mounted read-only, copies an image between two distribution registries
//! with the source's digest.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli::{head_digest, push_image};
use support::{ferry_bin, require, Distribution, DistributionOpts, TempDir};

/// Runs a command, failing the test with its output unless it succeeds.
fn run(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A tar of `root`'s contents, for `import`.
fn tar(root: &Path, into: &Path) {
    run(Command::new("tar").arg("-C").arg(root).arg("-cf").arg(into).arg("."), "tar");
}

/// The runtime base (distroless/cc's files, from this Debian 12 host) and the binary
/// image, as tars.
fn base_and_binary(dir: &TempDir) -> (PathBuf, PathBuf) {
    let root = dir.join("runtime");
    let ldd = run(Command::new("ldd").arg(ferry_bin()), "ldd ferry");
    for lib in String::from_utf8_lossy(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    let certs = root.join("etc/ssl/certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", certs.join("ca-certificates.crt"))
        .expect("the CA bundle");
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    run(Command::new("chmod").arg("1777").arg(&tmp), "chmod /tmp");
    let base = dir.join("runtime.tar");
    tar(&root, &base);

    let bin = dir.join("binary");
    std::fs::create_dir_all(bin.join("out")).unwrap();
    std::fs::copy(ferry_bin(), bin.join("out/ferry")).unwrap();
    let binary = dir.join("binary.tar");
    tar(&bin, &binary);
    (base, binary)
}

/// A container engine's command line: podman with its own vfs store, or docker against
/// the daemon this test started.
struct Engine {
    name: &'static str,
    program: String,
    global: Vec<String>,
    /// `run` options this machine needs (podman's default rlimits exceed what root may
    /// set here).
    run_options: Vec<String>,
    env: Vec<(String, String)>,
}

impl Engine {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.global).envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn import(&self, tar: &Path, image: &str) {
        run(self.command().arg("import").arg(tar).arg(image), &format!("{} import {image}", self.name));
    }
}

/// Builds the Dockerfile with `engine`, inspects the image and syncs with it.
fn build_and_smoke_test(engine: &Engine, dir: &TempDir) {
    let (base, binary) = base_and_binary(dir);
    engine.import(&base, "localhost/ferry-test/runtime:latest");
    engine.import(&binary, "localhost/ferry-test/binary:latest");
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    let dockerfile = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile");
    std::fs::copy(&dockerfile, context.join("Dockerfile")).expect("the repository's Dockerfile");
    let image = "localhost/ferry:test";
    let started = Instant::now();
    run(
        engine
            .command()
            .args(["build", "-t", image])
            .args(["--build-arg", "RUNTIME=localhost/ferry-test/runtime:latest"])
            .args(["--build-arg", "FERRY_FROM=localhost/ferry-test/binary:latest"])
            .arg(&context),
        &format!("{} build", engine.name),
    );
    let build_time = started.elapsed();

    let inspect = run(
        engine.command().args([
            "image",
            "inspect",
            image,
            "--format",
            "{{.Config.User}} {{json .Config.Entrypoint}}",
        ]),
        "image inspect",
    );
    let config = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
    assert_eq!(
        config, r#"65532:65532 ["/usr/local/bin/ferry"]"#,
        "{}: non-root, ferry as the entrypoint",
        engine.name
    );

    // The image's ferry syncs between two registries on the host's network.
    let source = Distribution::start(&DistributionOpts::default());
    let destination = Distribution::start(&DistributionOpts::default());
    let (digest, _) =
        push_image(&source.url, "app", Some("v1"), &[b"layer one", b"layer two"], "linux/amd64");
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("images.json"),
        format!(r#"{{"{}/app:v1": "{}/app"}}"#, source.host(), destination.host()),
    )
    .unwrap();
    let started = Instant::now();
    let synced = run(
        engine
            .command()
            .args(["run", "--rm", "--network", "host"])
            .args(&engine.run_options)
            .arg("-v")
            .arg(format!("{}:/config:ro", config_dir.display()))
            .args([image, "sync", "--images", "/config/images.json", "--progress", "plain"]),
        &format!("{} run {image} sync", engine.name),
    );
    let run_time = started.elapsed();
    let stdout = String::from_utf8_lossy(&synced.stdout);
    assert!(stdout.contains("copied 1, skipped 0, failed 0"), "{stdout}");
    assert_eq!(head_digest(&destination.url, "app", "v1").as_deref(), Some(digest.as_str()));
    eprintln!("{}: image built in {build_time:?}; ferry sync in a container took {run_time:?}", engine.name);
}

#[test]
fn podman_builds_the_image_and_its_ferry_syncs() {
    if !require("podman") || !require("docker-registry") {
        return;
    }
    let dir = TempDir::new("image-podman");
    let store = dir.join("store");
    let state = dir.join("run");
    let engine = Engine {
        name: "podman",
        program: "podman".to_owned(),
        global: vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            store.display().to_string(),
            "--runroot".into(),
            state.display().to_string(),
        ],
        run_options: ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
            .map(str::to_owned)
            .to_vec(),
        env: Vec::new(),
    };
    build_and_smoke_test(&engine, &dir);
}

/// A `dockerd` of this test's own: vfs storage, no iptables, no bridge; stopped on drop.
struct Dockerd {
    child: Child,
    socket: PathBuf,
    exec_root: PathBuf,
}

impl Dockerd {
    fn start(dir: &TempDir) -> Dockerd {
        let socket = dir.join("docker.sock");
        let exec_root = dir.join("exec");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--storage-driver=vfs", "--iptables=false", "--ip-masq=false", "--bridge=none"])
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", exec_root.display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn dockerd");
        let dockerd = Dockerd { child, socket, exec_root };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.answers() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in 60 s; see {}",
                dir.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn answers(&self) -> bool {
        Command::new(docker_cli())
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", self.host())
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        // dockerd leaves its default network namespace mounted under the exec root.
        let _ = Command::new("umount").arg(self.exec_root.join("netns/default")).status();
    }
}

/// Debian's docker CLI (20.10), which builds with the daemon's own BuildKit; a newer CLI
/// elsewhere on PATH would want the buildx plugin for that.
fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

#[test]
fn docker_builds_the_image_and_its_ferry_syncs() {
    if !require("dockerd") || !require("docker-registry") {
        return;
    }
    let dir = TempDir::new("image-docker");
    let dockerd = Dockerd::start(&dir);
    let engine = Engine {
        name: "docker",
        program: docker_cli().to_owned(),
        global: Vec::new(),
        run_options: Vec::new(),
        env: vec![("DOCKER_HOST".into(), dockerd.host()), ("DOCKER_BUILDKIT".into(), "1".into())],
    };
    build_and_smoke_test(&engine, &dir);
    drop(dockerd);
}
