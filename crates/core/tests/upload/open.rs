//! Opening a session, and the blob that goes up whole.

use super::*;

#[test]
fn open_then_chunks_then_commit() {
    let run = Scenario::new(250).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PUT, 201)
        ]
    );
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 202), (200, 250, 202)]);
    // Each request went to the Location the previous answer gave.
    let targets: Vec<_> = run.registry.log.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets[1], "/v2/app/blobs/uploads/2?_state=0");
    assert_eq!(targets[2], "/v2/app/blobs/uploads/2?_state=100");
    assert!(targets[4].starts_with("/v2/app/blobs/uploads/2?_state=250&digest=sha256%3A"));
    // The commit follows the transport's verification of the whole blob.
    assert_eq!(run.registry.verifies, vec![ms(40)]);
    assert_eq!(run.at(Method::PUT), vec![ms(40)]);
}

#[test]
fn an_open_session_from_a_mount_is_used() {
    let run = Scenario::new(100).open_session().run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests(), vec![(Method::PATCH, 202), (Method::PUT, 201)]);
    assert_eq!(run.registry.log[0].target, "/v2/app/blobs/uploads/1?_state=0");
}

#[test]
fn a_failed_open_reports_the_registry_error_and_cancels_nothing() {
    let run = Scenario::new(100).fault(RequestKind::Open, 1, Fault::Status(403, "DENIED")).run();
    let error = run.result.as_ref().unwrap_err();
    match &error {
        TransportError::Status { side: Side::Destination, status: 403, detail: Some(detail), .. } => {
            assert_eq!(detail, "dst.test: DENIED: said the registry")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.requests(), vec![(Method::POST, 403)]);
}

#[test]
fn a_small_blob_goes_up_whole() {
    let run = Scenario::new(50).monolithic_below(64).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests(), vec![(Method::POST, 202), (Method::PUT, 201)]);
    assert_eq!(run.registry.log[1].body, Body::Whole);
    assert!(run.registry.verifies.is_empty(), "the whole body verifies as it streams");
}

#[test]
fn a_refused_monolithic_put_falls_back_to_chunks_in_a_new_session() {
    for status in [405, 413, 501, 400] {
        let run = Scenario::new(150).monolithic_below(1_000).refuse_monolithic(status).run();
        assert_eq!(run.result, Ok(()), "{status}");
        assert_eq!(
            run.requests(),
            vec![
                (Method::POST, 202),
                (Method::PUT, status),
                (Method::DELETE, 204),
                (Method::POST, 202),
                (Method::PATCH, 202),
                (Method::PATCH, 202),
                (Method::PUT, 201)
            ],
            "{status}"
        );
    }
}

#[test]
fn misuse_is_an_error_not_a_hang() {
    let scenario = Scenario::new(100);
    let mut upload = scenario.upload();
    let reply = Reply::Verified;
    assert_eq!(upload.handle(reply, Instant::ZERO), Err(UploadMisuse::NothingAsked));
    let Output::Send(request) = upload.poll_output(Instant::ZERO) else { panic!("a POST first") };
    assert_eq!(request.kind, RequestKind::Open);
    assert_eq!(request.request.headers()["content-length"], "0");
    assert!(matches!(upload.poll_output(Instant::ZERO), Output::Busy));
    assert_eq!(upload.handle(Reply::Verified, Instant::ZERO), Err(UploadMisuse::WrongReply));
    // A transport that misuses the machine ends its transfer with an error, never a panic.
    let ended = TransportError::from(UploadMisuse::PolledWhileBusy);
    assert!(ended.to_string().contains("polled before its last request was answered"), "{ended}");
    let answer = Response::builder().status(StatusCode::ACCEPTED).header("location", "/u/1").body(Vec::new());
    upload.handle(Reply::Answer(answer.unwrap()), Instant::ZERO).unwrap();
    assert_eq!(upload.location(), Some("http://dst.test/u/1"));
    let Output::Send(patch) = upload.poll_output(Instant::ZERO) else { panic!("a PATCH next") };
    assert_eq!(patch.body, Body::Chunk { start: 0, end: 100 });
    assert_eq!(patch.request.headers()["content-range"], "0-99");
    assert_eq!(patch.request.headers()["content-length"], "100");
    assert!(!format!("{upload:?}").contains("SECRET"), "credentials never print");
    assert!(!format!("{patch:?}").contains("SECRET"), "credentials never print");
}
