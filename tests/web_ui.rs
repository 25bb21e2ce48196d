//! `ferry serve --ui DIR` serves the web page at `/ui/` with the content types browsers
//! insist on, refuses paths that leave the directory, and leaves `/v2/` as it was.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use cli::ferry;
use support::{get, request, Ferry, TempDir};

/// A page directory with a file of every kind the page ships, a secret next to it and a
/// symlink inside it that points at the secret.
fn page(dir: &TempDir) -> PathBuf {
    let web = dir.join("web");
    std::fs::create_dir_all(web.join("pkg")).unwrap();
    let files: [(&str, &[u8]); 5] = [
        ("index.html", b"<!doctype html><title>ferry</title>"),
        ("app.js", b"export const app = 1;\n"),
        ("style.css", b"body { margin: 0 }\n"),
        ("pkg/ferry_wasm.js", b"export default function init() {}\n"),
        ("pkg/ferry_wasm_bg.wasm", b"\0asm\x01\0\0\0"),
    ];
    for (name, bytes) in files {
        std::fs::write(web.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("secret.txt"), "not for the web\n").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), web.join("link.txt")).unwrap();
    web
}

#[test]
fn files_have_their_content_types() {
    let dir = TempDir::new("web-ui");
    let web = page(&dir);
    let server = Ferry::start(&["--storage", "memory", "--ui", web.to_str().unwrap()]);
    let cases = [
        ("/ui/", "text/html; charset=utf-8", "<!doctype html>"),
        ("/ui/index.html", "text/html; charset=utf-8", "<!doctype html>"),
        ("/ui/app.js", "text/javascript; charset=utf-8", "export const app"),
        ("/ui/style.css", "text/css; charset=utf-8", "body"),
        ("/ui/pkg/ferry_wasm.js", "text/javascript; charset=utf-8", "export default"),
        ("/ui/pkg/ferry_wasm_bg.wasm", "application/wasm", "\0asm"),
    ];
    for (path, content_type, starts) in cases {
        let r = get(&format!("{}{path}", server.url));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "GET {path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "GET {path}");
        assert!(r.text().starts_with(starts), "GET {path}: {}", r.text());
        let h = support::head(&format!("{}{path}", server.url));
        assert_eq!(h.status, 200, "HEAD {path}");
        assert_eq!(h.header("content-length"), r.header("content-length"), "HEAD {path}");
    }
}

#[test]
fn redirects_not_found_and_traversal() {
    let dir = TempDir::new("web-ui");
    let web = page(&dir);
    let server = Ferry::start(&["--storage", "memory", "--ui", web.to_str().unwrap()]);
    // (method, path, status, Location)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("GET", "/", 307, Some("/ui/")),
        ("GET", "/ui", 307, Some("/ui/")),
        ("GET", "/ui/missing.js", 404, None),
        ("GET", "/ui/pkg/", 404, None),
        ("GET", "/ui/../Cargo.toml", 400, None),
        ("GET", "/ui/../secret.txt", 400, None),
        ("GET", "/ui/pkg/../../secret.txt", 400, None),
        ("GET", "/ui/%2e%2e/secret.txt", 400, None),
        ("GET", "/ui/..%2fsecret.txt", 400, None),
        ("GET", "/ui/..%5csecret.txt", 400, None),
        ("GET", "/ui/.hidden", 400, None),
        // A symlink inside the directory that leads out of it.
        ("GET", "/ui/link.txt", 404, None),
        ("POST", "/ui/index.html", 405, None),
        ("DELETE", "/ui/index.html", 405, None),
    ];
    for &(method, path, status, location) in cases {
        let r = request(method, &format!("{}{path}", server.url)).send();
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(r.header("location"), location, "{method} {path}");
        assert!(!r.text().contains("not for the web"), "{method} {path} leaked the file outside");
    }
}

#[test]
fn the_api_is_unchanged_and_no_ui_means_no_page() {
    let dir = TempDir::new("web-ui");
    let web = page(&dir);
    let with_ui = Ferry::start(&["--storage", "memory", "--ui", web.to_str().unwrap()]);
    let without = Ferry::start(&["--storage", "memory"]);
    // The API answers the same with and without the page.
    for path in ["/v2/", "/v2/nothing/here/manifests/latest", "/v2/_catalog", "/v2/ui/tags/list", "/uix"] {
        let a = get(&format!("{}{path}", with_ui.url));
        let b = get(&format!("{}{path}", without.url));
        assert_eq!((a.status, a.text()), (b.status, b.text()), "GET {path}");
        assert_eq!(a.header("content-type"), b.header("content-type"), "GET {path}");
    }
    let r = get(&format!("{}/v2/", with_ui.url));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-distribution-api-version"), Some("registry/2.0"));
    for path in ["/", "/ui/", "/ui/index.html"] {
        let r = get(&format!("{}{path}", without.url));
        assert_eq!(r.status, 404, "GET {path} without --ui");
    }
}

#[test]
fn the_repository_page_is_served() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let server = Ferry::start(&["--storage", "memory", "--ui", web.to_str().unwrap()]);
    let cases = [
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/cors.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ];
    for (path, content_type) in cases {
        let r = get(&format!("{}{path}", server.url));
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(r.header("content-type"), Some(content_type), "GET {path}");
    }
    let index = get(&format!("{}/ui/", server.url)).text();
    assert!(index.contains("<script type=\"module\" src=\"app.js\">"), "{index}");
}

#[test]
fn a_bad_ui_directory_is_named_at_start() {
    let dir = TempDir::new("web-ui");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let cases = [
        (dir.join("nowhere"), "No such file or directory"),
        (empty, "has no index.html; pass the page's directory (web/)"),
    ];
    for (path, want) in cases {
        let path = path.to_str().unwrap();
        let run = ferry(&["serve", "--storage", "memory", "--addr", "127.0.0.1:0", "--ui", path]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        run.assert_no_panic();
        assert!(run.stderr.contains(&format!("ui directory {path}: ")), "{}", run.stderr);
        assert!(run.stderr.contains(want), "{}", run.stderr);
    }
}

#[test]
fn demo_serve_fills_two_registries_with_cors_and_prints_the_page_url() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// Killed on drop, so a failed assertion leaves no registry running.
    struct Demo(std::process::Child);
    impl Drop for Demo {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let mut demo = Demo(
        Command::new(support::ferry_bin())
            .args(["demo", "--serve", "--ui", web.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferry demo --serve"),
    );
    let mut lines = BufReader::new(demo.0.stdout.take().unwrap()).lines();
    let open = lines
        .by_ref()
        .map(|line| line.expect("read ferry demo's stdout"))
        .find_map(|line| line.strip_prefix("Open ").map(str::to_owned))
        .expect("ferry demo --serve prints `Open <url>`");
    // Open http://127.0.0.1:P/ui/#src=http://127.0.0.1:P/library/app&dst=http://127.0.0.1:Q/library/app
    let (page, hash) = open.split_once('#').expect("the URL has a hash");
    let src = hash.strip_prefix("src=").unwrap().split('&').next().unwrap().trim_end_matches("/library/app");
    let dst = hash.split("&dst=").nth(1).unwrap().trim_end_matches("/library/app");
    assert_eq!(page, format!("{src}/ui/"));

    let index = get(page);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));

    // Every status of a diff: 1.0 in sync, 1.1 different, 2.0 and latest missing, 0.9 extra.
    let digest = |base: &str, tag: &str| cli::head_digest(base, "library/app", tag);
    assert_eq!(digest(src, "1.0"), digest(dst, "1.0"));
    assert_eq!(digest(src, "1.0"), digest(src, "latest"));
    assert_ne!(digest(src, "1.1"), digest(dst, "1.1"));
    assert!(digest(dst, "1.1").is_some());
    for tag in ["2.0", "latest"] {
        assert!(digest(src, tag).is_some() && digest(dst, tag).is_none(), "{tag}");
    }
    assert!(digest(src, "0.9").is_none() && digest(dst, "0.9").is_some());

    // Both registries let the page's origin (either loopback name) push.
    let port = src.rsplit(':').next().unwrap();
    for origin in [src.to_owned(), format!("http://localhost:{port}")] {
        for base in [src, dst] {
            let r = request("OPTIONS", &format!("{base}/v2/library/app/blobs/uploads/"))
                .header("Origin", &origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "authorization, content-type")
                .send();
            assert_eq!(r.status, 204, "preflight from {origin} to {base}");
            assert_eq!(r.header("access-control-allow-origin"), Some(origin.as_str()), "{base}");
        }
    }

    let _ = Command::new("kill").args(["-INT", &demo.0.id().to_string()]).status();
    let status = demo.0.wait().expect("wait for ferry demo");
    assert!(status.success(), "ferry demo --serve after Ctrl-C: {status}");
}
