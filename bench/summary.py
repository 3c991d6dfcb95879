#!/usr/bin/env python3
"""One JSON object with a bench/run.sh run's headline figures (the keys of issue 11):

    bench/summary.py DIR > DIR/summary.json

A figure the run did not produce (a part not run, no step passed) is null.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resultdir  # noqa: E402


def summary(d):
    def cap(server):
        return resultdir.capacity_row(resultdir.jsonl(d, server + "-fanout.jsonl")) or {}

    def half(server):
        # run.sh measures latency at 25, 50 and 90 % of the capacity found, in that order.
        rows = resultdir.jsonl(d, server + "-latency.jsonl")
        return rows[1] if len(rows) > 1 else {}

    def rooms(server):
        return resultdir.rooms_capacity(resultdir.jsonl(d, server + "-rooms.jsonl")) or {}

    def ping(server):
        return resultdir.one(d, server + "-ping.json") or {}

    def ping_open(server):
        # The open loop: the same connections at a fixed offered rate (run.sh's PING_RATE).
        return resultdir.one(d, server + "-ping-open.json") or {}

    def first_keyframe_p99(server):
        # Per step p99 of the clients that joined in it; the largest over the run's steps
        # (files from before the load generator reported a p99 give the step's maximum).
        rows = resultdir.jsonl(d, server + "-fanout.jsonl") + resultdir.jsonl(d, server + "-latency.jsonl")
        v = [r.get("first_keyframe_p99_ms", r.get("first_keyframe_max_ms")) for r in rows]
        v = [x for x in v if x is not None]
        return max(v) if v else None

    def first_keyframe_after_dtls_p99(server):
        rows = resultdir.jsonl(d, server + "-fanout.jsonl") + resultdir.jsonl(d, server + "-latency.jsonl")
        v = [r.get("first_keyframe_after_dtls_p99_ms") for r in rows]
        v = [x for x in v if x is not None]
        return max(v) if v else None

    def idle_rss(server):
        # Each idle measurement starts a fresh server and reads its RSS before opening anything.
        v = [(resultdir.one(d, "%s-idle-%s.json" % (server, k)) or {}).get("rss_before_kib")
             for k in ["publishers", "players", "websockets"]]
        v = [x for x in v if x is not None]
        return min(v) if v else None

    ceiling = resultdir.one(d, "ceiling-forwarder.jsonl") or {}
    machine = {}
    try:
        machine = json.load(open(os.path.join(d, "machine.json")))
    except (OSError, ValueError):
        pass
    return {
        "antenna_players": cap("antenna").get("players"),
        "janus_players": cap("janus").get("players"),
        "antenna_pps": cap("antenna").get("received_pps"),
        "ceiling_pps": ceiling.get("forwarded_pps_median"),
        "antenna_video_p50_us_at_half": half("antenna").get("latency_p50_us"),
        "antenna_video_p99_us_at_half": half("antenna").get("latency_p99_us"),
        "janus_video_p50_us_at_half": half("janus").get("latency_p50_us"),
        "janus_video_p99_us_at_half": half("janus").get("latency_p99_us"),
        "antenna_rooms": rooms("antenna").get("rooms"),
        "janus_rooms": rooms("janus").get("rooms"),
        "antenna_pingpong_per_s": ping("antenna").get("round_trips_per_s"),
        "janus_pingpong_per_s": ping("janus").get("round_trips_per_s"),
        "antenna_ping_open_per_s": ping_open("antenna").get("round_trips_per_s"),
        "janus_ping_open_per_s": ping_open("janus").get("round_trips_per_s"),
        "antenna_ping_open_rtt_p99_us": ping_open("antenna").get("rtt_p99_us"),
        "janus_ping_open_rtt_p99_us": ping_open("janus").get("rtt_p99_us"),
        "antenna_first_keyframe_p99_ms": first_keyframe_p99("antenna"),
        "antenna_first_keyframe_after_dtls_p99_ms": first_keyframe_after_dtls_p99("antenna"),
        "janus_first_keyframe_after_dtls_p99_ms": first_keyframe_after_dtls_p99("janus"),
        "antenna_idle_rss_kib": idle_rss("antenna"),
        "antenna_rss_kib_at_capacity": cap("antenna").get("server_rss_kib"),
        "janus_rss_kib_at_capacity": cap("janus").get("server_rss_kib"),
        "commit": machine.get("antenna_commit"),
    }


if __name__ == "__main__":
    print(json.dumps(summary(sys.argv[1]), indent=1))
