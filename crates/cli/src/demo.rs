//! `ferry demo`: the whole thing on one machine, in seconds, with no network.
//!
//! Two in-process ferry registries (memory storage, free loopback ports); sample images in
//! the first (two repositories sharing a base layer, a two-platform OCI index, and one
//! image the destination already has); an image-syncer images file; a diff; a sync
//! through the same code as `ferry sync`; and the diff again, now all in sync.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use ferry_core::diff::{DiffJob, DiffReport, Target};
use ferry_core::progress::JobStatus;
use ferry_registry::RunningRegistry;

use crate::common;
use crate::diff::{compare, table};
use crate::progress::Mode;
use crate::sample::{bytes, Pusher};
use crate::sync::{sync, SyncArgs};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Options of `ferry demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// How to show the sync's progress
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    progress: Mode,

    /// Instead: keep two registries running, with CORS and sample images, and run until
    /// Ctrl-C; with --ui, the first also serves the web page, and its URL is printed
    #[arg(long)]
    serve: bool,

    /// With --serve: the web page's directory (the repository's web/, with pkg/ built by
    /// scripts/build-wasm.sh); `just demo-web` passes it
    #[arg(long, value_name = "DIR", requires = "serve")]
    ui: Option<PathBuf>,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = common::runtime()?;
    if args.serve {
        return runtime.block_on(crate::demo_web::serve(args.ui.as_deref()));
    }
    runtime.block_on(demo(args))
}

async fn start_registry() -> anyhow::Result<RunningRegistry> {
    let mut config = ferry_registry::Config { addr: "127.0.0.1:0".into(), ..Default::default() };
    config.storage.driver = "memory".into();
    ferry_registry::serve(config).await.context("starting an in-process registry")
}

fn host(registry: &RunningRegistry) -> String {
    registry.addr().to_string()
}

fn heading(text: &str) {
    println!("\n== {text}");
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let source = start_registry().await?;
    let destination = start_registry().await?;
    let (src, dst) = (host(&source), host(&destination));
    heading("two ferry registries on this machine (memory storage)");
    println!("source       {}", source.url());
    println!("destination  {}", destination.url());

    heading("sample images in the source");
    fill_source(source.url(), destination.url()).await?;
    println!("{src}/library/alpine:3.19, :3.20   one platform each, on a shared 2 MiB base layer");
    println!("{src}/library/busybox:1.36         an OCI index: linux/amd64 and linux/arm64");
    println!("{src}/team/app:v1, :v2             the same base layer again");
    println!("(the destination already has library/alpine:3.19, and an older team/app:v1)");

    let dir = DemoDir::new()?;
    let images = dir.0.join("images.json");
    let text = images_file(&src, &dst);
    std::fs::write(&images, &text).with_context(|| format!("writing {}", images.display()))?;
    heading(&format!("an image-syncer images file: {}", images.display()));
    print!("{text}");

    heading(&format!("ferry diff {src} {dst}"));
    let before = diff(&src, &dst).await?;
    print!("{}", table(&before, false));

    heading(&format!("ferry sync --images {}", images.display()));
    let mut sync_args = SyncArgs::for_images(&images);
    sync_args.output.progress = args.progress;
    // The demo's registries need no credentials: leave the user's docker config alone.
    sync_args.no_docker_config = true;
    let report = sync(&sync_args).await?;

    heading(&format!("ferry diff {src} {dst}, again"));
    let after = diff(&src, &dst).await?;
    print!("{}", table(&after, false));

    let s = &report.summary;
    heading("done");
    println!(
        "{} image(s) copied and {} skipped in {} ms with {} requests; {} blob(s) moved ({}), {} mounted from \
         another repository, {} already there.",
        s.copied,
        s.skipped,
        s.elapsed_ms,
        s.requests,
        s.blobs_transferred,
        common::bytes(s.bytes_transferred),
        s.blobs_mounted,
        s.blobs_present
    );
    let ok = report.status == JobStatus::Succeeded && after.is_in_sync();
    if ok {
        println!("The registries are in sync. Next: `ferry serve`, then `ferry sync --help`.");
    }
    source.shutdown().await.context("stopping the source registry")?;
    destination.shutdown().await.context("stopping the destination registry")?;
    if !ok {
        anyhow::bail!("the demo's sync did not leave the registries in sync");
    }
    Ok(ExitCode::SUCCESS)
}

async fn diff(src: &str, dst: &str) -> anyhow::Result<DiffReport> {
    // The demo's registries need no credentials: the user's docker config stays unread.
    let job = DiffJob {
        source: Target { registry: src.to_owned(), repository: None },
        destination: Some(Target { registry: dst.to_owned(), repository: None }),
        reference: None,
        repositories: Vec::new(),
        details: false,
        referrers: false,
        credentials: Default::default(),
        endpoints: Default::default(),
        retry: Default::default(),
        seed: 0,
    };
    let report = compare(job).await?;
    if let Some(error) = report.errors.first() {
        anyhow::bail!("diff: {error}");
    }
    Ok(report)
}

fn images_file(src: &str, dst: &str) -> String {
    format!(
        "{{\n  \"{src}/library/alpine\": \"{dst}/library/alpine\",\n  \"{src}/library/busybox:1.36\": \
         \"{dst}/library/busybox\",\n  \"{src}/team/app\": \"{dst}/team/app\"\n}}\n"
    )
}

async fn fill_source(source: &str, destination: &str) -> anyhow::Result<()> {
    let transport = common::transport(None)?;
    let src = Pusher::new(&transport, source);
    let base = bytes(1, 2 * MIB);
    let alpine_19 = bytes(319, 300 * KIB);
    let alpine_20 = bytes(320, 400 * KIB);
    src.image("library/alpine", Some("3.19"), &[&base, &alpine_19], "linux/amd64").await?;
    src.image("library/alpine", Some("3.20"), &[&base, &alpine_20], "linux/amd64").await?;
    src.index("library/busybox", "1.36", &["linux/amd64", "linux/arm64"], &[&base], 256 * KIB).await?;
    src.image("team/app", Some("v1"), &[&base, &bytes(11, MIB)], "linux/amd64").await?;
    src.image("team/app", Some("v2"), &[&base, &bytes(12, MIB)], "linux/amd64").await?;

    let dst = Pusher::new(&transport, destination);
    dst.image("library/alpine", Some("3.19"), &[&base, &alpine_19], "linux/amd64").await?;
    dst.image("team/app", Some("v1"), &[&base, &bytes(10, MIB)], "linux/amd64").await?;
    Ok(())
}

/// A temporary directory for the images file, removed at the end.
struct DemoDir(PathBuf);

impl DemoDir {
    fn new() -> anyhow::Result<DemoDir> {
        let path = std::env::temp_dir().join(format!("ferry-demo-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DemoDir(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}
