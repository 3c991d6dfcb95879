#!/usr/bin/env python3
"""The summary of bench/relay.sh (markdown on stdout): bench/relay_report.py bench/results/relay

Reads direct.jsonl / edge.jsonl (antenna-load fanout, one step each), their *-cpu.jsonl
(bench/relay_cpu.py), *-redis.txt (INFO commandstats since a reset) and per_packet-*.txt
(bench/per_packet.py on the callgrind profiles).
"""
import json
import os
import re
import sys

# antenna-load closes its clients and runs 200 ms after the hold before it exits; the CPU
# sampler is stopped right after that.
TAIL_S = 0.2


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def hold_cpu(samples, hold_s):
    """CPU % of each node over the last `hold_s` seconds before the load generator ended."""
    samples = [s for s in samples if s["origin"] is not None and s["edge"] is not None]
    if len(samples) < 2 or not hold_s:
        return None
    end = samples[-1]["t"] - TAIL_S
    start = end - hold_s

    def at(t, key):  # linear interpolation between the samples around t
        prev = samples[0]
        for s in samples[1:]:
            if s["t"] >= t:
                span = s["t"] - prev["t"]
                w = 0.0 if span <= 0 else (t - prev["t"]) / span
                return prev[key] + w * (s[key] - prev[key])
            prev = s
        return samples[-1][key]

    if start < samples[0]["t"]:
        return None
    return {k: (at(end, k) - at(start, k)) * 100.0 / hold_s for k in ("origin", "edge")}


def commandstats(path):
    """({command: calls}, seconds) from a file written by bench/relay.sh's stats()."""
    if not os.path.exists(path):
        return {}, None
    calls, secs = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"seconds (\d+)ms", line)
            if m:
                secs = int(m.group(1)) / 1000.0
            m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line.strip())
            if m:
                calls[m.group(1)] = int(m.group(2))
    return calls, secs


def per_packet(path):
    """(packets sent to players, packets received, Ir of Runtime::run) from per_packet.py."""
    if not os.path.exists(path):
        return None
    sent = recv = run = None
    with open(path) as f:
        for line in f:
            m = re.match(r"RTP packets sent to players \(protect_rtp calls\): (\d+); received from the publisher: (\d+)", line)
            if m:
                sent, recv = int(m.group(1)), int(m.group(2))
            if line.startswith("| server-mio Runtime::run"):
                run = int(line.split("|")[2].strip().replace(",", ""))
    if not sent or run is None:
        return None
    return sent, recv, run


def ms(us):
    return "-" if us is None else "%.1f" % (us / 1000.0)


def main():
    out = sys.argv[1]
    runs = {}
    for case in ("direct", "edge"):
        rows = jsonl(os.path.join(out, case + ".jsonl"))
        if rows:
            r = rows[-1]
            r["cpu"] = hold_cpu(jsonl(os.path.join(out, case + "-cpu.jsonl")), r.get("hold_s"))
            runs[case] = r
    print("## Fan-out through an edge (bench/relay.sh)\n")
    print("| | direct: players on the origin | edge: players on the edge, through one relay |")
    print("|---|---|---|")

    def row(label, f):
        print("| %s | %s |" % (label, " | ".join(f(runs[c]) if c in runs else "-" for c in ("direct", "edge"))))

    row("players up / asked (failed joins)", lambda r: "%d / %d (%d)" % (r["players_up"], r["players"], r["failed_joins"]))
    row("published pkt/s (one stream)", lambda r: "%.0f" % r["published_pps"])
    row("forwarded to players, pkt/s", lambda r: "%.0f" % r["received_pps"])
    row("delivery / loss", lambda r: "%.2f %% / %.3f %%" % (r["delivery_pct"], r["loss_pct"]))
    row("origin CPU (% of a core, hold)", lambda r: "-" if not r["cpu"] else "%.1f" % r["cpu"]["origin"])
    row("edge CPU (% of a core, hold)", lambda r: "-" if not r["cpu"] else "%.1f" % r["cpu"]["edge"])
    row("players' node CPU, antenna-load's figure", lambda r: "-" if r["server_cpu_pct"] is None else "%.1f" % r["server_cpu_pct"])
    row("video one-way latency p50 / p99 / max (ms)",
        lambda r: "%s / %s / %s (%s samples)" % (ms(r["latency_p50_us"]), ms(r["latency_p99_us"]), ms(r["latency_max_us"]), r["latency_samples"]))
    row("play -> first keyframe p50 / p99 (ms)",
        lambda r: "-" if r["first_keyframe_p50_ms"] is None else "%.0f / %.0f" % (r["first_keyframe_p50_ms"], r["first_keyframe_p99_ms"]))
    if "direct" in runs and "edge" in runs:
        d, e = runs["direct"], runs["edge"]
        if d["latency_p50_us"] is not None and e["latency_p50_us"] is not None:
            print("\nAdded by the edge: video p50 %+.1f ms, p99 %+.1f ms." % (
                (e["latency_p50_us"] - d["latency_p50_us"]) / 1000.0, (e["latency_p99_us"] - d["latency_p99_us"]) / 1000.0))
        if d["cpu"] and e["cpu"] and d["received_pps"] and e["received_pps"]:
            direct = d["cpu"]["origin"] / d["received_pps"]
            both = (e["cpu"]["origin"] + e["cpu"]["edge"]) / e["received_pps"]
            print("CPU per 1,000 forwarded pkt/s (%% of a core): direct %.3f; origin + edge %.3f (%.2fx)." % (
                direct * 1000, both * 1000, both / direct if direct else float("nan")))

    pp = {c: per_packet(os.path.join(out, "per_packet-%s.txt" % c)) for c in ("direct", "edge")}
    if any(pp.values()):
        print("\n### Instructions per forwarded packet (callgrind, Runtime::run inclusive)\n")
        print("| | node profiled | packets sent to players | packets received | Ir per packet sent |")
        print("|---|---|---|---|---|")
        for c, node in (("direct", "origin"), ("edge", "edge")):
            if pp[c]:
                sent, recv, run = pp[c]
                print("| %s | %s | %s | %s | %s |" % (c, node, format(sent, ","), format(recv, ","), format(run // sent, ",")))
        if pp["direct"] and pp["edge"]:
            a = pp["direct"][2] / pp["direct"][0]
            b = pp["edge"][2] / pp["edge"][0]
            print("\nThe edge per packet it forwards: %.2fx the origin's when the players are direct." % (b / a))

    print("\n### Redis commands (INFO commandstats)\n")
    print("| window | seconds | commands |")
    print("|---|---|---|")
    for name in ("idle", "direct", "edge", "prof-direct", "prof-edge"):
        calls, secs = commandstats(os.path.join(out, name + "-redis.txt"))
        if secs is None:
            continue
        shown = ", ".join("%s %d" % (k, v) for k, v in sorted(calls.items()) if k not in ("config", "info"))
        print("| %s | %.1f | %s |" % (name, secs, shown or "none"))


if __name__ == "__main__":
    main()
