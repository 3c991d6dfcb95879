//! Inputs the signalling fuzzer found, replayed as plain tests (they are in the fuzz corpus too).

/// A stream that joined room1 with `joinRoom` and publishes with `mainTrack` room2 is a
/// subtrack of both; when its media failed, only room2's players were refreshed, and room1's
/// player kept it as a sent subtrack.
#[test]
fn member_of_one_room_and_subtrack_of_another_leaves_both_rooms_players() {
    proto_core::fuzzing::run_ops(include_bytes!(
        "../../fuzz/corpus/signalling/member-of-one-room-subtrack-of-another"
    ));
}

#[test]
fn cluster_state_is_gone_once_every_connection_closed() {
    proto_core::fuzzing::run_ops(include_bytes!(
        "../../fuzz/corpus/signalling/relay-state-left-after-close"
    ));
}
