//! `auth.access`, the access policy of `ferry serve`, as a table: users × repositories ×
//! actions, each cell tried over Basic auth and over the token flow, with raw HTTP, with
//! skopeo and with ferry itself. Every allowed cell works; every denied cell is
//! `403 DENIED` with the spec's error body and leaves nothing behind; a token asks for
//! what it wants and lists exactly what the policy grants; a token for one repository
//! is refused on another; each user's catalog lists what they may pull.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cli.rs"]
mod cli;

use base64::Engine as _;
use cli::{ferry, OCI_MANIFEST};
use serde_json::{json, Value};
use support::{get, request, require, sha256, skopeo_unchecked, Ferry, Response, TempDir};

const USERS: [(&str, &str); 3] = [("alice", "alice-Pw-1"), ("bob", "bob-Pw-2"), ("root", "root-Pw-3")];
const REPOS: [&str; 2] = ["team-a/app", "library/base"];
const VERBS: [&str; 3] = ["pull", "push", "delete"];

/// alice is in team-a, root in ops (the admins); bob is named in `library/*`; everyone
/// logged in may pull `library/*`, and so may anonymous clients.
const POLICY: &str = "
  access:
    groups: { team-a: [alice], ops: [root] }
    admins: { groups: [ops] }
    repositories:
      'team-a/**':
        policies: [{ groups: [team-a], actions: [pull, push] }]
      'library/*':
        policies: [{ users: [bob], actions: [pull, push, delete] }]
        default: [pull]
        anonymous: [pull]
";

/// What the policy above allows: the table every client is checked against.
fn allowed(user: &str, repo: &str, verb: &str) -> bool {
    matches!(
        (user, repo, verb),
        ("root", _, _)
            | ("alice", "team-a/app", "pull" | "push")
            | ("alice", "library/base", "pull")
            | ("bob", "library/base", _)
    )
}

fn password(user: &str) -> &'static str {
    USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Basic,
    Token,
}

/// A `ferry serve` with the policy, over Basic auth or the token flow.
struct Server {
    ferry: Ferry,
    mode: Mode,
}

fn start(dir: &TempDir, mode: Mode) -> Server {
    let htpasswd: String = USERS
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap()))
        .collect();
    let htpasswd_path = dir.join("htpasswd");
    std::fs::write(&htpasswd_path, htpasswd).unwrap();
    let token = if mode == Mode::Token { "  token: { enabled: true }\n" } else { "" };
    let config = format!("auth:\n  htpasswd: {}\n{token}{POLICY}", htpasswd_path.display());
    let config_path = dir.join("ferry.yaml");
    std::fs::write(&config_path, config).unwrap();
    let ferry = Ferry::with_root(&dir.join("data"), &["--config", config_path.to_str().unwrap()]);
    Server { ferry, mode }
}

fn basic(user: &str) -> String {
    let pair = format!("{user}:{}", password(user));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// The token endpoint's answer for `scope`, as `user`.
fn token_answer(server: &Server, user: &str, scope: &str) -> Value {
    let url = format!("{}/token?service=ferry&scope={scope}", server.ferry.url);
    let r = request("GET", &url).header("Authorization", &basic(user)).send();
    assert_eq!(r.status, 200, "token for {user} {scope}: {}", r.text());
    r.json()
}

/// The `access` claim of a ferry token (`base64url(claims).signature`).
fn access_of(token: &str) -> Value {
    let payload = token.split('.').next().unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["access"].clone()
}

/// The `Authorization` value `user` sends for `actions` on `repo`: Basic, or a token
/// whose `access` is checked to be exactly what the policy allows of what was asked.
fn authorization(server: &Server, user: &str, repo: &str, actions: &[&str]) -> String {
    match server.mode {
        Mode::Basic => basic(user),
        Mode::Token => {
            let body = token_answer(server, user, &format!("repository:{repo}:{}", actions.join(",")));
            let token = body["token"].as_str().unwrap();
            let granted: Vec<&str> = actions.iter().copied().filter(|a| allowed(user, repo, a)).collect();
            let want = if granted.is_empty() {
                json!([])
            } else {
                json!([{ "type": "repository", "name": repo, "actions": granted }])
            };
            assert_eq!(access_of(token), want, "{user} asked {repo}:{actions:?}");
            format!("Bearer {token}")
        }
    }
}

/// A monolithic blob upload (POST ?digest=) with `authorization`.
fn post_blob(url: &str, repo: &str, bytes: &[u8], authorization: &str) -> Response {
    request("POST", &format!("{url}/v2/{repo}/blobs/uploads/?digest={}", sha256(bytes)))
        .header("Authorization", authorization)
        .body(bytes)
        .send()
}

/// An image manifest over one config blob (and no layers), unique per `seed`.
fn image(seed: &str) -> (Vec<u8>, Vec<u8>) {
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [],
    }))
    .unwrap();
    (config, manifest)
}

/// Pushes `image(seed)` to `repo:tag` as root; returns the manifest's digest.
fn seed(server: &Server, repo: &str, tag: &str) -> String {
    let auth = authorization(server, "root", repo, &["pull", "push"]);
    let (config, manifest) = image(&format!("{repo}:{tag}"));
    assert_eq!(post_blob(&server.ferry.url, repo, &config, &auth).status, 201);
    let r = request("PUT", &format!("{}/v2/{repo}/manifests/{tag}", server.ferry.url))
        .header("Authorization", &auth)
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    assert_eq!(r.status, 201, "seed {repo}:{tag}: {}", r.text());
    sha256(&manifest)
}

/// As root: the status of `GET` on a manifest or blob path under `/v2/<repo>/`.
fn root_status(server: &Server, repo: &str, path: &str) -> u16 {
    let auth = authorization(server, "root", repo, &["pull"]);
    request("GET", &format!("{}/v2/{repo}/{path}", server.ferry.url))
        .header("Authorization", &auth)
        .header("Accept", OCI_MANIFEST)
        .send()
        .status
}

fn assert_denied(r: &Response, what: &str) {
    assert_eq!(r.status, 403, "{what}: {} {}", r.status, r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    let body = r.json();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{what}: {body}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
}

/// One cell over raw HTTP.
fn http_cell(server: &Server, user: &str, repo: &str, verb: &str) {
    let url = &server.ferry.url;
    let what = format!("{:?} {user} {verb} {repo}", server.mode);
    let allow = allowed(user, repo, verb);
    match verb {
        "pull" => {
            let auth = authorization(server, user, repo, &["pull"]);
            let r = request("GET", &format!("{url}/v2/{repo}/manifests/seed"))
                .header("Authorization", &auth)
                .header("Accept", OCI_MANIFEST)
                .send();
            if allow {
                assert_eq!(r.status, 200, "{what}: {}", r.text());
                assert_eq!(r.body, image(&format!("{repo}:seed")).1, "{what}");
            } else {
                assert_denied(&r, &what);
            }
        }
        "push" => {
            let auth = authorization(server, user, repo, &["pull", "push"]);
            let tag = format!("http-{user}-{:?}", server.mode).to_lowercase();
            let (config, manifest) = image(&tag);
            let blob = post_blob(url, repo, &config, &auth);
            let put = request("PUT", &format!("{url}/v2/{repo}/manifests/{tag}"))
                .header("Authorization", &auth)
                .header("Content-Type", OCI_MANIFEST)
                .body(manifest)
                .send();
            let start = request("POST", &format!("{url}/v2/{repo}/blobs/uploads/"))
                .header("Authorization", &auth)
                .send();
            if allow {
                assert_eq!(blob.status, 201, "{what}: {}", blob.text());
                assert_eq!(put.status, 201, "{what}: {}", put.text());
                assert_eq!(start.status, 202, "{what}: {}", start.text());
                assert_eq!(root_status(server, repo, &format!("manifests/{tag}")), 200, "{what}");
            } else {
                assert_denied(&blob, &what);
                assert_denied(&put, &what);
                assert_denied(&start, &what);
                assert_eq!(root_status(server, repo, &format!("blobs/{}", sha256(&config))), 404, "{what}");
                assert_eq!(root_status(server, repo, &format!("manifests/{tag}")), 404, "{what}");
            }
        }
        "delete" => {
            let tag = format!("doomed-{user}-{:?}", server.mode).to_lowercase();
            let digest = seed(server, repo, &tag);
            let auth = authorization(server, user, repo, &["delete"]);
            let r = request("DELETE", &format!("{url}/v2/{repo}/manifests/{digest}"))
                .header("Authorization", &auth)
                .send();
            if allow {
                assert_eq!(r.status, 202, "{what}: {}", r.text());
                assert_eq!(root_status(server, repo, &format!("manifests/{digest}")), 404, "{what}");
            } else {
                assert_denied(&r, &what);
                assert_eq!(root_status(server, repo, &format!("manifests/{digest}")), 200, "{what}");
            }
        }
        _ => unreachable!(),
    }
}

/// `_catalog` as each user: what they may pull, nothing else.
fn catalogs(server: &Server) {
    let url = format!("{}/v2/_catalog", server.ferry.url);
    let want = [
        ("alice", vec!["library/base", "team-a/app"]),
        ("bob", vec!["library/base"]),
        ("root", vec!["library/base", "other/thing", "team-a/app"]),
    ];
    for (user, repos) in want {
        let auth = match server.mode {
            Mode::Basic => basic(user),
            Mode::Token => {
                let body = token_answer(server, user, "registry:catalog:*");
                format!("Bearer {}", body["token"].as_str().unwrap())
            }
        };
        let r = request("GET", &url).header("Authorization", &auth).send();
        assert_eq!(r.status, 200, "{user}: {}", r.text());
        assert_eq!(r.json()["repositories"], json!(repos), "{:?} catalog of {user}", server.mode);
    }
    assert_eq!(get(&url).status, 401, "anonymous catalog");
}

/// Anonymous clients: `library/*` pulls, nothing else; 401 (credentials missing), never 403.
fn anonymous(server: &Server) {
    let url = &server.ferry.url;
    let auth = match server.mode {
        Mode::Basic => None,
        Mode::Token => {
            let r = get(&format!("{url}/token?service=ferry&scope=repository:library/base:pull,push"));
            let token = r.json()["token"].as_str().unwrap().to_owned();
            assert_eq!(
                access_of(&token),
                json!([{"type": "repository", "name": "library/base", "actions": ["pull"]}])
            );
            Some(format!("Bearer {token}"))
        }
    };
    let with = |r: support::Request| match &auth {
        Some(a) => r.header("Authorization", a),
        None => r,
    };
    let pulled = with(request("GET", &format!("{url}/v2/library/base/manifests/seed")))
        .header("Accept", OCI_MANIFEST)
        .send();
    assert_eq!(pulled.status, 200, "{}", pulled.text());
    let r = get(&format!("{url}/v2/team-a/app/manifests/seed"));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    let (config, _) = image("anonymous");
    let r =
        with(request("POST", &format!("{url}/v2/library/base/blobs/uploads/?digest={}", sha256(&config))))
            .body(config.clone())
            .send();
    assert_eq!(r.status, 401);
    assert_eq!(root_status(server, "library/base", &format!("blobs/{}", sha256(&config))), 404);
}

/// A token for one repository never works on another: 403 where the policy refuses the
/// holder, 401 `insufficient_scope` (fetch a token for it) where it would allow.
fn tokens_stay_in_their_repository(server: &Server) {
    let url = &server.ferry.url;
    let team = authorization(server, "alice", "team-a/app", &["pull", "push"]);
    let (config, _) = image("elsewhere");
    let r = post_blob(url, "library/base", &config, &team);
    assert_denied(&r, "alice's team-a token pushing to library/base");
    let r = request("GET", &format!("{url}/v2/library/base/manifests/seed"))
        .header("Authorization", &team)
        .send();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("error=\"insufficient_scope\""));
    let root = authorization(server, "root", "team-a/app", &["pull", "push", "delete"]);
    let r = post_blob(url, "other/thing", &config, &root);
    assert_eq!(r.status, 401, "root's team-a token on other/thing");
    assert_eq!(root_status(server, "library/base", &format!("blobs/{}", sha256(&config))), 404);
    assert_eq!(root_status(server, "other/thing", &format!("blobs/{}", sha256(&config))), 404);
}

/// A cross-repository mount needs pull on the source: bob may push to library/base but
/// not read team-a/app, so his mount from there opens an upload instead (202), and the
/// blob does not appear; root's mount is 201.
fn mounts_need_pull_on_the_source(server: &Server) {
    let url = &server.ferry.url;
    let (config, _) = image("team-a/app:seed");
    let digest = sha256(&config);
    let mount = format!("{url}/v2/library/base/blobs/uploads/?mount={digest}&from=team-a/app");
    let bob = match server.mode {
        Mode::Basic => basic("bob"),
        Mode::Token => {
            let body = token_answer(
                server,
                "bob",
                "repository:library/base:pull,push&scope=repository:team-a/app:pull",
            );
            let token = body["token"].as_str().unwrap();
            assert_eq!(
                access_of(token),
                json!([{"type": "repository", "name": "library/base", "actions": ["pull", "push"]}]),
                "nothing of team-a/app"
            );
            format!("Bearer {token}")
        }
    };
    let r = request("POST", &mount).header("Authorization", &bob).send();
    assert_eq!(r.status, 202, "bob's mount: {}", r.text());
    assert_eq!(root_status(server, "library/base", &format!("blobs/{digest}")), 404);
    let root = match server.mode {
        Mode::Basic => basic("root"),
        Mode::Token => {
            let body = token_answer(
                server,
                "root",
                "repository:library/base:pull,push&scope=repository:team-a/app:pull",
            );
            format!("Bearer {}", body["token"].as_str().unwrap())
        }
    };
    assert_eq!(request("POST", &mount).header("Authorization", &root).send().status, 201, "root's mount");
}

/// `POST /token` (the OAuth2 form) grants what `GET /token` grants, and says it in `scope`.
fn oauth_grants_the_same(server: &Server) {
    let form = format!(
        "grant_type=password&service=ferry&client_id=test&username=alice&password={}\
         &scope=repository%3Alibrary%2Fbase%3Apull%2Cpush%2Cdelete",
        password("alice")
    );
    let r = request("POST", &format!("{}/token", server.ferry.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["scope"], "repository:library/base:pull");
    let want = json!([{"type": "repository", "name": "library/base", "actions": ["pull"]}]);
    assert_eq!(access_of(body["access_token"].as_str().unwrap()), want);
}

/// The whole table over raw HTTP, for one mode.
fn http_table(mode: Mode) {
    let dir = TempDir::new("access-http");
    let server = start(&dir, mode);
    for repo in REPOS {
        seed(&server, repo, "seed");
    }
    seed(&server, "other/thing", "seed");
    for (user, _) in USERS {
        for repo in REPOS {
            for verb in VERBS {
                http_cell(&server, user, repo, verb);
            }
        }
    }
    catalogs(&server);
    anonymous(&server);
    mounts_need_pull_on_the_source(&server);
    if mode == Mode::Token {
        tokens_stay_in_their_repository(&server);
        oauth_grants_the_same(&server);
    }
}

#[test]
fn basic_auth_table_over_http() {
    http_table(Mode::Basic);
}

#[test]
fn token_table_over_http() {
    http_table(Mode::Token);
}

/// skopeo's view of one cell: pull is `inspect --raw`, push is `copy` from the seed
/// (read as root), delete is `delete` of a manifest root pushed for it.
fn skopeo_cell(server: &Server, user: &str, repo: &str, verb: &str) {
    let host = server.ferry.host();
    let creds = format!("{user}:{}", password(user));
    let root = format!("root:{}", password("root"));
    let what = format!("skopeo {:?} {user} {verb} {repo}", server.mode);
    let allow = allowed(user, repo, verb);
    let tag = format!("skopeo-{user}-{:?}", server.mode).to_lowercase();
    let (output, check) = match verb {
        "pull" => {
            let output = skopeo_unchecked(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &creds,
                &format!("docker://{host}/{repo}:seed"),
            ]);
            if allow {
                assert_eq!(output.stdout, image(&format!("{repo}:seed")).1, "{what}");
            }
            (output, None)
        }
        "push" => {
            let output = skopeo_unchecked(&[
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--src-creds",
                &root,
                "--dest-creds",
                &creds,
                &format!("docker://{host}/library/base:seed"),
                &format!("docker://{host}/{repo}:{tag}"),
            ]);
            (output, Some(format!("manifests/{tag}")))
        }
        "delete" => {
            let digest = seed(server, repo, &tag);
            let output = skopeo_unchecked(&[
                "delete",
                "--tls-verify=false",
                "--creds",
                &creds,
                &format!("docker://{host}/{repo}@{digest}"),
            ]);
            let after = root_status(server, repo, &format!("manifests/{digest}"));
            assert_eq!(after, if allow { 404 } else { 200 }, "{what}");
            (output, None)
        }
        _ => unreachable!(),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.success(), allow, "{what}: {stderr}");
    if !allow {
        let said = stderr.to_lowercase();
        assert!(said.contains("denied") || said.contains("403"), "{what} does not say why: {stderr}");
    }
    if let Some(path) = check {
        assert_eq!(root_status(server, repo, &path), if allow { 200 } else { 404 }, "{what}");
    }
}

/// ferry's view: pull is `ferry copy` out to an open registry, push is `ferry copy` in
/// from it. (ferry has no delete.)
fn ferry_cell(server: &Server, sink: &Ferry, user: &str, repo: &str, verb: &str) {
    let creds = format!("{user}:{}", password(user));
    let host = server.ferry.host();
    let what = format!("ferry {:?} {user} {verb} {repo}", server.mode);
    let allow = allowed(user, repo, verb);
    let tag = format!("ferry-{user}-{:?}", server.mode).to_lowercase();
    let run = match verb {
        "pull" => ferry(&[
            "copy",
            "--src-creds",
            &creds,
            &format!("{host}/{repo}:seed"),
            &format!("{}/pulled/{repo}:{tag}", sink.host()),
        ]),
        "push" => ferry(&[
            "copy",
            "--dest-creds",
            &creds,
            &format!("{}/source:seed", sink.host()),
            &format!("{host}/{repo}:{tag}"),
        ]),
        _ => unreachable!(),
    };
    run.assert_no_panic();
    assert_eq!(run.code, if allow { 0 } else { 1 }, "{what}\n{}\n{}", run.stdout, run.stderr);
    if !allow {
        let text = format!("{}{}", run.stdout, run.stderr).to_lowercase();
        assert!(text.contains("denied") || text.contains("403"), "{what} does not say why: {text}");
        assert!(!text.contains(password(user)), "{what} shows the password");
    }
    match verb {
        "pull" if allow => {
            let r = get(&format!("{}/v2/pulled/{repo}/manifests/{tag}", sink.url));
            assert_eq!(r.status, 200, "{what}");
        }
        "push" => {
            let want = if allow { 200 } else { 404 };
            assert_eq!(root_status(server, repo, &format!("manifests/{tag}")), want, "{what}");
        }
        _ => {}
    }
}

#[test]
fn skopeo_and_ferry_table() {
    if !require("skopeo") {
        return;
    }
    let sink_dir = TempDir::new("access-sink");
    let sink = Ferry::with_root(&sink_dir.join("data"), &[]);
    let (config, manifest) = image("sink-source");
    cli::push_blob(&sink.url, "source", &config);
    cli::put_manifest(&sink.url, "source", "seed", OCI_MANIFEST, &manifest);
    for mode in [Mode::Basic, Mode::Token] {
        let dir = TempDir::new("access-clients");
        let server = start(&dir, mode);
        for repo in REPOS {
            seed(&server, repo, "seed");
        }
        for (user, _) in USERS {
            for repo in REPOS {
                for verb in VERBS {
                    skopeo_cell(&server, user, repo, verb);
                    if verb != "delete" {
                        ferry_cell(&server, &sink, user, repo, verb);
                    }
                }
            }
        }
    }
}
