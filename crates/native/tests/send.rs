//! `NativeTransport::send`: whole answers, redirects, limits and failures.

mod support;

use ferry_core::transport::{Side, Transport, TransportError};
use ferry_native::{NativeOptions, NativeTransport};
use http::header::AUTHORIZATION;
use support::{Config, Server};

fn get(url: String) -> http::Request<Vec<u8>> {
    http::Request::get(url).header(AUTHORIZATION, "Bearer SECRET").body(Vec::new()).unwrap()
}

#[tokio::test]
async fn answers_come_back_whole_whatever_their_status() {
    let server = Server::start(Config::default()).await;
    let transport = NativeTransport::new().unwrap();
    let ok = transport.send(get(format!("{}/v2/app/manifests/v1", server.base))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body(), b"{\"manifest\":true}");
    assert_eq!(ok.headers()["content-type"], "application/json");
    let missing = transport.send(get(format!("{}/nothing", server.base))).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(String::from_utf8_lossy(missing.body()).contains("NOT_FOUND"));
    let head = http::Request::head(format!("{}/v2/app/manifests/v1", server.base)).body(Vec::new()).unwrap();
    assert_eq!(transport.send(head).await.unwrap().status(), 200);
    let post =
        http::Request::post(format!("{}/v2/app/blobs/uploads/", server.base)).body(Vec::new()).unwrap();
    assert_eq!(
        transport.send(post).await.unwrap().status(),
        202,
        "redirects of a POST are not followed either"
    );
    let log = server.log();
    assert_eq!(log[3].content_length, Some(0), "an empty POST says so");
    assert!(log[0].authorization.is_some());
}

#[tokio::test]
async fn redirects_drop_authorization_only_when_leaving_the_origin() {
    let other = Server::start(Config::default()).await;
    let away = Server::start(Config { redirect_to: Some(other.base.clone()), ..Config::default() }).await;
    let home = Server::start(Config { self_redirect: true, ..Config::default() }).await;
    let transport = NativeTransport::new().unwrap();

    let answer = transport.send(get(format!("{}/v2/app/manifests/v1", away.base))).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(away.log()[0].authorization.as_deref(), Some("Bearer SECRET"));
    assert_eq!(other.log()[0].authorization, None);

    let answer = transport.send(get(format!("{}/v2/app/manifests/v1", home.base))).await.unwrap();
    assert_eq!(answer.status(), 200);
    let log = home.log();
    assert_eq!(log[0].status, 308);
    assert_eq!(log[1].target, "/moved/v2/app/manifests/v1");
    assert_eq!(log[1].authorization.as_deref(), Some("Bearer SECRET"));
}

#[tokio::test]
async fn redirect_loops_end() {
    let server = Server::start(Config::default()).await;
    let transport = NativeTransport::new().unwrap();
    let error = transport.send(get(format!("{}/loop", server.base))).await.unwrap_err();
    assert!(matches!(error, TransportError::Status { status: 302, .. }), "{error}");
    assert!(error.to_string().contains("more than 5 redirects"), "{error}");
    assert_eq!(server.log().len(), 6);
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let server = Server::start(Config::default()).await;
    let transport =
        NativeTransport::with_options(NativeOptions::default().with_max_answer_bytes(1000)).unwrap();
    let fits = transport.send(get(format!("{}/big/1000", server.base))).await.unwrap();
    assert_eq!(fits.body().len(), 1000);
    let error = transport.send(get(format!("{}/big/1001", server.base))).await.unwrap_err();
    assert!(matches!(error, TransportError::Status { status: 200, .. }), "{error}");
    assert!(error.to_string().contains("larger than 1000 bytes"), "{error}");
}

#[tokio::test]
async fn connection_failures_name_the_host_and_no_secret() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let transport = NativeTransport::new().unwrap();
    let error = transport.send(get(format!("http://127.0.0.1:{port}/v2/?token=SECRET"))).await.unwrap_err();
    assert!(matches!(error, TransportError::Connection { side: Side::Registry, .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts connections, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = NativeOptions::default().with_read_timeout(std::time::Duration::from_millis(200));
    let transport = NativeTransport::with_options(options).unwrap();
    let error = transport.send(get(format!("http://{addr}/v2/"))).await.unwrap_err();
    assert!(matches!(error, TransportError::Timeout { .. }), "{error}");
    assert!(error.class().is_transient());
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[test]
fn invalid_options_are_refused() {
    let error = NativeTransport::with_options(NativeOptions::default().with_chunking(1, 0)).unwrap_err();
    assert_eq!(error.to_string(), "transport option `chunk_size` must be at least 1 byte");
    assert_eq!(NativeOptions::default().user_agent, format!("ferry/{}", env!("CARGO_PKG_VERSION")));
}
