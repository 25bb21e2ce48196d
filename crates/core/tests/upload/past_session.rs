//! A session a past run left (`ferry sync --state`): ask where it stands, send the rest.

use super::*;

#[test]
fn a_past_session_goes_on_from_the_registry_range() {
    let run = Scenario::new(450).past_session(Some(250)).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests()[0], (Method::GET, 204), "asked first, nothing opened");
    assert_eq!(run.chunks(), vec![(250, 350, 202), (350, 450, 202)], "only the rest is sent");
    assert_eq!(run.requests().last(), Some(&(Method::PUT, 201)));
    assert!(run.registry.log.iter().all(|l| l.method != Method::POST));
}

#[test]
fn a_past_session_holding_the_whole_blob_is_verified_and_committed() {
    let run = Scenario::new(450).past_session(Some(450)).run();
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.requests(), vec![(Method::GET, 204), (Method::PUT, 201)]);
    assert_eq!(run.registry.verifies.len(), 1, "the source is still read and verified");
}

#[test]
fn a_past_session_the_registry_forgot_gives_way_to_a_new_one() {
    for monolithic_below in [0, 1_000] {
        let run = Scenario::new(250).monolithic_below(monolithic_below).past_session(None).run();
        assert_eq!(run.result, Ok(()));
        assert_eq!(run.requests()[..2], [(Method::GET, 404), (Method::POST, 202)], "{monolithic_below}");
        assert_eq!(run.registry.cancelled, 0, "nothing to cancel");
        assert!(run.registry.committed);
    }
}
