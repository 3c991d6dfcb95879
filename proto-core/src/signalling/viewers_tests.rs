//! Viewer counts in cluster mode: a relay's play is no viewer, the other nodes' viewers join
//! the limit check and the recorded count, and leave with the stream.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use serde_json::json;

use super::test_util::{error_of, live_publisher, send, started};
use super::*;
use crate::access::Grant;
use crate::fuzzing::Harness;

/// Two viewers at most; token `relay` is an edge's relay; records each viewer count.
#[derive(Debug)]
struct Limit2(Rc<RefCell<Vec<usize>>>);

impl AccessPolicy for Limit2 {
    fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<Grant, SignalError> {
        Ok(Grant::free(r.app))
    }
    fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        if r.token == Some("relay") {
            return Ok(Grant {
                relay: true,
                ..Grant::free(r.app)
            });
        }
        if r.viewers >= 2 {
            return Err(SignalError::ViewerLimitReached);
        }
        Ok(Grant::free(r.app))
    }
    fn on_viewer_count(&mut self, _: &str, _: &str, viewers: usize) {
        self.0.borrow_mut().push(viewers);
    }
}

fn setup() -> (Harness, Rc<RefCell<Vec<usize>>>) {
    let mut h = super::test_util::harness();
    let counts = Rc::new(RefCell::new(Vec::new()));
    h.sig.set_access_policy(Box::new(Limit2(counts.clone())));
    for c in 1..=5 {
        h.open(c, "app");
    }
    live_publisher(&mut h, 1, "cam", "");
    (h, counts)
}

fn play(h: &mut Harness, conn: u64, token: Option<&str>) -> Vec<Output> {
    let mut m = json!({"command": "play", "streamId": "cam"});
    if let Some(t) = token {
        m["token"] = json!(t);
    }
    send(h, conn, m)
}

fn cam(n: usize) -> Vec<(String, String, usize)> {
    vec![("app".into(), "cam".into(), n)]
}

#[test]
fn a_relay_is_no_viewer_and_the_other_nodes_viewers_count_against_the_limit() {
    let (mut h, counts) = setup();
    assert_eq!(
        h.sig.viewer_counts(),
        cam(0),
        "a published stream is listed at 0"
    );
    started(&play(&mut h, 2, Some("relay")));
    started(&play(&mut h, 3, Some("relay")));
    assert_eq!(h.sig.viewer_counts(), cam(0), "relays are no viewers");
    assert!(counts.borrow().is_empty(), "nothing to record: {counts:?}");
    started(&play(&mut h, 4, None));
    assert_eq!(h.sig.viewer_counts(), cam(1));
    assert_eq!(counts.borrow().last(), Some(&1));

    // One viewer on another node: the recorded count is the cluster's, the limit is full.
    h.sig.set_remote_viewers("app", "cam", 1);
    assert_eq!(counts.borrow().last(), Some(&2));
    assert_eq!(
        error_of(&play(&mut h, 5, None), 5)["definition"],
        "viewerLimitReached"
    );
    // A relay still gets in: its players were checked on its node.
    assert_eq!(h.sig.viewer_counts(), cam(1));

    // The other node's viewer leaves.
    h.sig.set_remote_viewers("app", "cam", 0);
    assert_eq!(counts.borrow().last(), Some(&1));
    started(&play(&mut h, 5, None));
    assert_eq!(h.sig.viewer_counts(), cam(2));
}

#[test]
fn other_nodes_viewers_are_kept_only_for_a_stream_here_and_leave_with_it() {
    let (mut h, counts) = setup();
    h.sig.set_remote_viewers("app", "elsewhere", 7);
    assert!(h.sig.remote_viewers.is_empty());
    h.sig.set_remote_viewers("app", "cam", 7);
    assert_eq!(counts.borrow().last(), Some(&7));
    send(&mut h, 1, json!({"command": "stop", "streamId": "cam"}));
    assert!(h.sig.remote_viewers.is_empty());
    assert_eq!(
        counts.borrow().last(),
        Some(&0),
        "the record's count is reset"
    );
    assert!(h.sig.viewer_counts().is_empty());
}
