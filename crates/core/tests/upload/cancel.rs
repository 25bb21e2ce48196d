//! Giving up: the session is cancelled and the failure reported.

use super::*;

#[test]
fn resuming_gives_up_after_the_policy_retries_and_cancels() {
    let mut scenario = Scenario::new(300).retries(2);
    for n in 1..=10 {
        scenario = scenario.fault(RequestKind::Patch, n, Fault::Status(500, "UNKNOWN"));
    }
    let policy = scenario.policy;
    let run = scenario.run();
    let error = run.result.as_ref().unwrap_err();
    assert!(matches!(error, TransportError::Status { status: 500, .. }), "{error}");
    assert!(error.class().is_transient(), "the core may start the blob over");
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 500),
            (Method::GET, 204),
            (Method::PATCH, 500),
            (Method::GET, 204),
            (Method::PATCH, 500),
            (Method::DELETE, 204)
        ]
    );
    let b = backoffs(&policy, 7, 2);
    // PATCH at 10 fails at 20; GET at 20+b0, answered +10; PATCH; fails +10; GET +b1.
    let first = ms(20) + b[0];
    let second = first + ms(20) + b[1];
    assert_eq!(run.at(Method::GET), vec![first, second]);
    assert_eq!(run.registry.cancelled, 1);
}

#[test]
fn a_failure_that_is_not_worth_resuming_cancels_and_reports_it() {
    let verify = TransportError::Verify(VerifyError::TooLong { digest: digest(), expected: 200, seen: 201 });
    let source = TransportError::Connection { side: Side::Source, message: "source broke".into() };
    // (fault on PATCH #2, what the upload reports)
    type Expect = Box<dyn Fn(&TransportError) -> bool>;
    let cases: Vec<(Fault, Expect)> = vec![
        (
            Fault::Status(403, "DENIED"),
            Box::new(
                |e| matches!(e, TransportError::Status { status: 403, detail: Some(d), .. } if d.contains("DENIED")),
            ),
        ),
        (Fault::Status(401, "UNAUTHORIZED"), Box::new(|e| matches!(e, TransportError::Unauthorized { .. }))),
        (
            Fault::Status(416, "BLOB_UPLOAD_INVALID"),
            Box::new(|e| matches!(e, TransportError::Status { status: 416, .. })),
        ),
        (Fault::Transport(verify.clone()), Box::new(move |e| *e == verify)),
        (Fault::Transport(source.clone()), Box::new(move |e| *e == source)),
    ];
    for (fault, expected) in cases {
        let label = format!("{fault:?}");
        let run = Scenario::new(300).fault(RequestKind::Patch, 2, fault).run();
        let error = run.result.as_ref().unwrap_err();
        assert!(expected(error), "{label}: {error:?}");
        let requests = run.requests();
        assert_eq!(requests.len(), 4, "{label}: {requests:?}");
        assert_eq!(requests[3], (Method::DELETE, 204), "{label}");
        assert!(run.at(Method::GET).is_empty(), "{label}: no resume");
        assert!(!run.registry.committed);
    }
}

#[test]
fn a_blob_that_does_not_verify_is_never_committed() {
    let verify = TransportError::Verify(VerifyError::TooLong { digest: digest(), expected: 200, seen: 201 });
    let run = Scenario::new(200).verify_fails(verify.clone()).run();
    assert_eq!(run.result, Err(verify));
    assert_eq!(
        run.requests(),
        vec![(Method::POST, 202), (Method::PATCH, 202), (Method::PATCH, 202), (Method::DELETE, 204)]
    );
}

#[test]
fn a_permanent_commit_failure_cancels() {
    let run = Scenario::new(100).fault(RequestKind::Commit, 1, Fault::Status(400, "DIGEST_INVALID")).run();
    let error = run.result.as_ref().unwrap_err();
    assert!(
        matches!(error, TransportError::Status { status: 400, detail: Some(d), .. } if d.contains("DIGEST_INVALID"))
    );
    assert_eq!(run.requests().last(), Some(&(Method::DELETE, 204)));
}
