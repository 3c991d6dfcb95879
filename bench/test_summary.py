#!/usr/bin/env python3
"""Checks bench/summary.py against the committed results of run B (bench/results/latest) and
run C (bench/results/run-c), whose figures are in BENCHMARKS.md and their table.md.

    python3 bench/test_summary.py
"""
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import summary  # noqa: E402

KEYS = ["antenna_players", "janus_players", "antenna_pps", "ceiling_pps",
        "antenna_video_p50_us_at_half", "antenna_video_p99_us_at_half",
        "janus_video_p50_us_at_half", "janus_video_p99_us_at_half", "antenna_rooms", "janus_rooms",
        "antenna_pingpong_per_s", "janus_pingpong_per_s", "antenna_ping_open_per_s",
        "janus_ping_open_per_s", "antenna_ping_open_rtt_p99_us", "janus_ping_open_rtt_p99_us",
        "antenna_first_keyframe_p99_ms", "antenna_first_keyframe_after_dtls_p99_ms",
        "janus_first_keyframe_after_dtls_p99_ms", "antenna_idle_rss_kib", "antenna_rss_kib_at_capacity", "janus_rss_kib_at_capacity", "commit"]


class Summary(unittest.TestCase):
    def test_run_b(self):
        s = summary.summary(os.path.join(HERE, "results", "latest"))
        self.assertEqual(list(s.keys()), KEYS)
        self.assertEqual((s["antenna_players"], s["janus_players"]), (200, 150))
        self.assertEqual((s["antenna_pps"], s["ceiling_pps"]), (54457, 233076))
        # 50 % of capacity: Antenna 100 players, Janus 75.
        self.assertEqual((s["antenna_video_p50_us_at_half"], s["antenna_video_p99_us_at_half"]), (16300, 62430))
        self.assertEqual((s["janus_video_p50_us_at_half"], s["janus_video_p99_us_at_half"]), (5670, 22280))
        self.assertEqual((s["antenna_rooms"], s["janus_rooms"]), (10, 40))
        self.assertEqual((s["antenna_pingpong_per_s"], s["janus_pingpong_per_s"]), (16066, 38183))
        self.assertEqual(s["commit"], "a9ed9b2")
        self.assertEqual(s["antenna_idle_rss_kib"], 7552)
        self.assertGreater(s["antenna_rss_kib_at_capacity"], s["janus_rss_kib_at_capacity"])
        self.assertGreater(s["antenna_first_keyframe_p99_ms"], 0)

    def test_run_c(self):
        s = summary.summary(os.path.join(HERE, "results", "run-c"))
        self.assertEqual((s["antenna_players"], s["janus_players"]), (300, 100))
        self.assertEqual((s["antenna_rooms"], s["janus_rooms"]), (15, 10))
        self.assertEqual(s["commit"], "9ecc811")

    def test_missing_parts_are_null(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "antenna-ping.json"), "w") as f:
                f.write(json.dumps({"round_trips_per_s": 5.0}) + "\n")
            s = summary.summary(d)
            self.assertEqual(list(s.keys()), KEYS)
            self.assertEqual(s["antenna_pingpong_per_s"], 5.0)
            self.assertTrue(all(v is None for k, v in s.items() if k != "antenna_pingpong_per_s"))

    def test_p99_preferred_to_max(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "antenna-latency.jsonl"), "w") as f:
                for p99, mx in [(40.0, 90.0), (55.0, 70.0)]:
                    f.write(json.dumps({"first_keyframe_p99_ms": p99, "first_keyframe_max_ms": mx}) + "\n")
            self.assertEqual(summary.summary(d)["antenna_first_keyframe_p99_ms"], 55.0)


if __name__ == "__main__":
    unittest.main()
