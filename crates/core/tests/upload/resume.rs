//! Asking the registry where it stands after a failure, and going on from there.

use super::*;

#[test]
fn a_failed_patch_resumes_from_the_registry_range_at_the_backoff_instant() {
    let scenario = Scenario::new(450).fault(RequestKind::Patch, 3, Fault::Status(500, "UNKNOWN"));
    let policy = scenario.policy;
    let run = scenario.run();
    assert_eq!(run.result, Ok(()));
    // POST 0ms, PATCH 10, 20, 30 (fails, answered at 40), GET after the first backoff.
    let backoff = backoffs(&policy, 7, 1)[0];
    let resume = ms(40) + backoff;
    assert_eq!(run.at(Method::GET), vec![resume]);
    assert_eq!(
        run.chunks(),
        vec![
            (0, 100, 202),
            (100, 200, 202),
            (200, 300, 500),
            (200, 300, 202),
            (300, 400, 202),
            (400, 450, 202)
        ]
    );
    let patches = run.at(Method::PATCH);
    assert_eq!(patches[3], resume + LATENCY, "the chunk goes again as soon as the registry said where");
    assert_eq!(run.registry.held, 450);
}

#[test]
fn a_chunk_the_registry_partly_kept_resumes_mid_chunk() {
    let run = Scenario::new(300).fault(RequestKind::Patch, 2, Fault::Disconnect { keep: 40 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 0), (140, 240, 202), (240, 300, 202)]);
}

#[test]
fn a_chunk_whose_answer_was_lost_is_not_sent_again() {
    let run = Scenario::new(200).fault(RequestKind::Patch, 2, Fault::Disconnect { keep: 100 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 202), (100, 200, 0)]);
    assert_eq!(run.requests().last(), Some(&(Method::PUT, 201)));
}

#[test]
fn distribution_zero_range_on_an_empty_session_means_nothing_held() {
    // The first chunk into a mount's session breaks before the registry kept a byte: it
    // answers the status GET with `Range: 0-0`, which is 0 bytes, not 1.
    let run =
        Scenario::new(150).open_session().fault(RequestKind::Patch, 1, Fault::Disconnect { keep: 0 }).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.chunks(), vec![(0, 100, 0), (0, 100, 202), (100, 150, 202)]);
    assert_eq!(run.requests()[1], (Method::GET, 204));
}

#[test]
fn retry_after_is_waited_for() {
    let run = Scenario::new(200).fault(RequestKind::Patch, 1, Fault::RetryAfter(7)).run();
    assert_eq!(run.result, Ok(()));
    // POST at 0, PATCH at 10 answered 503 at 20, GET 7 s later.
    assert_eq!(run.at(Method::GET), vec![ms(20) + Duration::from_secs(7)]);
}

#[test]
fn the_status_range_decides_where_the_upload_goes_on() {
    // (the status answer's Range, chunks of 100 confirmed before, the next PATCH's start;
    // None: the session is cancelled)
    let cases = [
        (Some("0-0"), 0, Some(0)),
        (None, 0, Some(0)),
        (Some("0-99"), 1, Some(100)),
        (Some("bytes=0-149"), 1, Some(150)),
        (Some("0-0"), 1, Some(1)),
        (Some("5-9"), 1, None),
        (Some("0-x"), 1, None),
        (Some("0-999"), 1, None),
    ];
    for (range, confirmed, want) in cases {
        let scenario =
            Scenario::new(300).fault(RequestKind::Patch, confirmed + 1, Fault::Disconnect { keep: 0 });
        let (mut upload, request, now) = scenario.drive_to(RequestKind::Status);
        assert_eq!(request.request.method(), Method::GET);
        let mut answer = Response::builder().status(StatusCode::NO_CONTENT);
        if let Some(range) = range {
            answer = answer.header("range", range);
        }
        upload.handle(Reply::Answer(answer.body(Vec::new()).unwrap()), now).unwrap();
        let Output::Send(next) = upload.poll_output(now) else { panic!("{range:?}: a request next") };
        match want {
            Some(start) => {
                assert_eq!(next.kind, RequestKind::Patch, "{range:?}");
                assert_eq!(next.body, Body::Chunk { start, end: start + 100 }, "{range:?}");
            }
            None => assert_eq!(next.kind, RequestKind::Cancel, "{range:?}"),
        }
    }
}
