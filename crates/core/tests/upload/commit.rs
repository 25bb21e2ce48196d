//! The closing `PUT`.

use super::*;

#[test]
fn a_failed_commit_is_retried_without_resending_held_bytes() {
    let scenario = Scenario::new(200).fault(RequestKind::Commit, 1, Fault::Status(502, "UNKNOWN"));
    let policy = scenario.policy;
    let run = scenario.run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PATCH, 202),
            (Method::PUT, 502),
            (Method::GET, 204),
            (Method::PUT, 201)
        ]
    );
    // PUT at 30 fails at 40; GET after the first backoff; PUT once it answered.
    let get = ms(40) + backoffs(&policy, 7, 1)[0];
    assert_eq!(run.at(Method::GET), vec![get]);
    assert_eq!(run.at(Method::PUT), vec![ms(30), get + LATENCY]);
    assert_eq!(run.registry.verifies.len(), 1, "verified once");
}

#[test]
fn a_commit_whose_answer_was_lost_is_found_landed() {
    let run = Scenario::new(100).fault(RequestKind::Commit, 1, Fault::LostAnswer).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(
        run.requests(),
        vec![
            (Method::POST, 202),
            (Method::PATCH, 202),
            (Method::PUT, 0),
            (Method::GET, 404),
            (Method::HEAD, 200)
        ]
    );
}
