#!/usr/bin/env python3
"""Checks bench/relay_report.py: the hold window of the CPU samples, the commandstats and
per-packet parsing, and its summary of the committed run (bench/results/relay), whose figures
are in BENCHMARKS.md ("Cluster: fan-out through an edge").

    python3 bench/test_relay_report.py
"""
import contextlib
import io
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import relay_report  # noqa: E402


class HoldCpu(unittest.TestCase):
    def samples(self, origin_rate, edge_rate, seconds, step=0.25):
        n = int(seconds / step) + 1
        return [{"t": 100 + i * step, "origin": origin_rate * i * step, "edge": edge_rate * i * step}
                for i in range(n)]

    def test_constant_rates_give_their_percentage(self):
        cpu = relay_report.hold_cpu(self.samples(0.25, 0.5, 20), 10)
        self.assertAlmostEqual(cpu["origin"], 25.0, places=6)
        self.assertAlmostEqual(cpu["edge"], 50.0, places=6)

    def test_only_the_last_hold_before_the_tail_counts(self):
        # Busy (100 %) for the first 10 s, idle afterwards: a 5 s hold at the end sees none.
        s = [{"t": 100 + i * 0.25, "origin": min(i * 0.25, 10.0), "edge": 0.0} for i in range(81)]
        cpu = relay_report.hold_cpu(s, 5)
        self.assertAlmostEqual(cpu["origin"], 0.0, places=6)
        # A hold longer than the samples cannot be measured.
        self.assertIsNone(relay_report.hold_cpu(s, 60))

    def test_a_process_gone_is_left_out(self):
        s = self.samples(0.1, 0.1, 20)
        s.append({"t": s[-1]["t"] + 0.25, "origin": None, "edge": 2.0})
        self.assertAlmostEqual(relay_report.hold_cpu(s, 10)["origin"], 10.0, places=6)


class Parsing(unittest.TestCase):
    def test_commandstats(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x-redis.txt")
            with open(p, "w") as f:
                f.write("seconds 15700ms\n# Commandstats\n"
                        "cmdstat_get:calls=1,usec=4,usec_per_call=4.00\n"
                        "cmdstat_config|resetstat:calls=1,usec=60\n"
                        "cmdstat_hset:calls=201,usec=900\n")
            calls, secs = relay_report.commandstats(p)
            self.assertEqual(secs, 15.7)
            self.assertEqual(calls, {"get": 1, "config|resetstat": 1, "hset": 201})

    def test_committed_run(self):
        out = os.path.join(HERE, "results", "relay")
        self.assertEqual(relay_report.per_packet(os.path.join(out, "per_packet-direct.txt")),
                         (13486, 1395, 302959095))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            sys.argv = ["relay_report.py", out]
            relay_report.main()
        text = buf.getvalue()
        for figure in ("| 22,464 |", "| 22,965 |", "1.02x", "100 / 100 (0)", "| 23.8 | 1.4 |",
                       "hget 103, hset 103, publish 103", "get 1, hget 4"):
            self.assertIn(figure, text)


if __name__ == "__main__":
    unittest.main()
