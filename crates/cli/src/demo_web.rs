//! `ferry demo --serve`: two in-process registries (memory storage) that allow the page's
//! origin by CORS, and one repository whose tags cover every status of a diff. With
//! `--ui DIR` the first also serves the web page at `/ui/`, and the page's URL is printed
//! with both registries in its hash. It runs until Ctrl-C.

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use ferry_registry::RunningRegistry;

use crate::common;
use crate::sample::{bytes, Pusher};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The repository the page opens on.
pub(crate) const REPOSITORY: &str = "library/app";

/// A loopback port that was free a moment ago: the source's origin must be known before it
/// starts, since its CORS configuration names it.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

async fn start(addr: String, origins: &[String], ui: Option<&Path>) -> anyhow::Result<RunningRegistry> {
    let mut config = ferry_registry::Config { addr, ..Default::default() };
    config.storage.driver = "memory".into();
    config.cors.origins = origins.to_vec();
    config.ui = ui.map(Path::to_path_buf);
    ferry_registry::serve(config).await.context("starting an in-process registry")
}

/// Source tags `1.0` and `latest` (one image), `1.1`, `2.0` (two platforms, sharing the
/// base layer); the destination has `1.0` (the same), `1.1` (another image) and `0.9`.
async fn fill(source: &str, destination: &str) -> anyhow::Result<()> {
    let transport = common::transport(None)?;
    let src = Pusher::new(&transport, source);
    let dst = Pusher::new(&transport, destination);
    let base = bytes(1, 2 * MIB);
    let one = bytes(10, 300 * KIB);
    for tag in ["1.0", "latest"] {
        src.image(REPOSITORY, Some(tag), &[&base, &one], "linux/amd64").await?;
    }
    src.image(REPOSITORY, Some("1.1"), &[&base, &bytes(11, 400 * KIB)], "linux/amd64").await?;
    src.index(REPOSITORY, "2.0", &["linux/amd64", "linux/arm64"], &[&base], 256 * KIB).await?;
    dst.image(REPOSITORY, Some("1.0"), &[&base, &one], "linux/amd64").await?;
    dst.image(REPOSITORY, Some("1.1"), &[&base, &bytes(12, 400 * KIB)], "linux/amd64").await?;
    dst.image(REPOSITORY, Some("0.9"), &[&bytes(9, 100 * KIB)], "linux/amd64").await?;
    Ok(())
}

pub(crate) async fn serve(ui: Option<&Path>) -> anyhow::Result<ExitCode> {
    let port = free_port()?;
    // The page may be opened by either name of the loopback host.
    let origins = [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")];
    let source = match ui {
        Some(ui) => start(format!("127.0.0.1:{port}"), &origins, Some(ui))
            .await
            .with_context(|| format!("serving the web page from {} (--ui DIR)", ui.display()))?,
        None => start(format!("127.0.0.1:{port}"), &origins, None).await?,
    };
    let destination = start("127.0.0.1:0".into(), &origins, None).await?;
    fill(source.url(), destination.url()).await?;

    println!("== two registries on this machine (memory storage, CORS for the page)");
    let serves_page = if ui.is_some() { "   (also serves the page at /ui/)" } else { "" };
    println!("source       {}{serves_page}", source.url());
    println!("destination  {}", destination.url());
    println!(
        "{REPOSITORY} in the source:      1.0 and latest (one image), 1.1, 2.0 (linux/amd64 + linux/arm64)"
    );
    println!("{REPOSITORY} in the destination: 1.0 (the same), 1.1 (another image), 0.9 (only there)");
    println!();
    match ui {
        Some(ui) => {
            if !ui.join("pkg/ferry_wasm.js").is_file() {
                eprintln!(
                    "warning: {}/pkg/ferry_wasm.js is missing: build it with scripts/build-wasm.sh",
                    ui.display()
                );
            }
            println!(
                "Open {}/ui/#src={}/{REPOSITORY}&dst={}/{REPOSITORY}",
                source.url(),
                source.url(),
                destination.url()
            );
        }
        None => println!(
            "Try: ferry diff {0}/{REPOSITORY} {1}/{REPOSITORY}",
            host(source.url()),
            host(destination.url())
        ),
    }
    println!("Ctrl-C stops both registries.");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    source.shutdown().await.context("stopping the source registry")?;
    destination.shutdown().await.context("stopping the destination registry")?;
    Ok(ExitCode::SUCCESS)
}

/// `host:port` of a registry's URL, as the CLI's references name it.
fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}
