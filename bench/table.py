#!/usr/bin/env python3
"""Markdown table from a bench/run.sh results directory: bench/table.py DIR > DIR/table.md"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resultdir  # noqa: E402

d = sys.argv[1]


def jsonl(name):
    return resultdir.jsonl(d, name)


def one(name):
    return resultdir.one(d, name)


capacity_row = resultdir.capacity_row
rooms_ok = resultdir.rooms_ok
rooms_capacity = resultdir.rooms_capacity


def stop_reason(rows):
    if not rows:
        return "not run"
    last = rows[-1]
    if capacity_row(rows) is last:
        return "last step passed (ramp ended)"
    why = []
    if last["loss_pct"] >= 0.5:
        why.append("loss %.2f%%" % last["loss_pct"])
    if last.get("delivery_pct", 0) < 98.5:
        why.append("delivery %.1f%%" % last.get("delivery_pct", 0))
    if last["failed_joins"]:
        why.append("%d failed joins (%s)" % (last["failed_joins"], last.get("failure")))
    if last["silent_players"]:
        why.append("%d silent players" % last["silent_players"])
    if (last["server_cpu_pct"] or 0) > 100.5:
        why.append("server CPU %.0f%%" % last["server_cpu_pct"])
    return "at %d players: %s" % (last["players"], ", ".join(why) or "?")


def f(v, fmt="%.0f"):
    if v is None:
        return "-"
    return fmt % v


def ratio(a, b, invert=False):
    if a is None or b is None or a == 0 or b == 0:
        return "-"
    return "%.2f" % ((b / a) if invert else (a / b))


servers = ["antenna", "janus"]
ramp = {s: jsonl(s + "-fanout.jsonl") for s in servers}
lat = {s: jsonl(s + "-latency.jsonl") for s in servers}
cap = {s: capacity_row(ramp[s]) for s in servers}
ping = {s: one(s + "-ping.json") for s in servers}
ping_open = {s: one(s + "-ping-open.json") for s in servers}
idle = {(s, k): one("%s-idle-%s.json" % (s, k)) for s in servers for k in ["publishers", "players", "websockets"]}
ceiling = one("ceiling-forwarder.jsonl")
rooms = {s: jsonl(s + "-rooms.jsonl") for s in servers}
churn = {s: one(s + "-churn.json") for s in servers}


def rooms_stop(rows):
    if not rows:
        return "not run"
    last = rows[-1]
    if rooms_ok(last):
        return "last step passed (ramp ended)"
    why = []
    if last["loss_pct"] >= 0.5:
        why.append("loss %.2f%%" % last["loss_pct"])
    if last.get("delivery_pct", 0) < 98.5:
        why.append("delivery %.1f%%" % last.get("delivery_pct", 0))
    if last["participants_up"] != last["participants"]:
        why.append("%d/%d participants up" % (last["participants_up"], last["participants"]))
    if last["failed_joins"] or last.get("failed_publishers"):
        why.append("%d players, %d publishers failed (%s)" % (last["failed_joins"], last.get("failed_publishers", 0), last.get("failure")))
    if last["silent_players"]:
        why.append("%d silent players" % last["silent_players"])
    if (last["server_cpu_pct"] or 0) > 100.5:
        why.append("server CPU %.0f%%" % last["server_cpu_pct"])
    if last.get("server_udp_drops"):
        why.append("%d datagrams dropped at the server's UDP receive buffers" % last["server_udp_drops"])
    return "at %d rooms: %s" % (last["rooms"], ", ".join(why) or "?")


rcap = {s: rooms_capacity(rooms[s]) for s in servers}
try:
    machine = json.load(open(os.path.join(d, "machine.json")))
except (OSError, ValueError):
    machine = {}

print("## Results (%s)\n" % machine.get("date", "?"))
print("Machine: %s cores, %s, kernel %s; load average at the end %s; Janus %s; Antenna %s.\n" % (
    machine.get("nproc"), machine.get("cpu"), machine.get("kernel"), machine.get("loadavg"),
    machine.get("janus"), machine.get("antenna_commit")))
print("| metric | Antenna | Janus | Antenna / Janus |")
print("|---|---|---|---|")


def row(name, a, j, fmt="%.0f", invert=False):
    print("| %s | %s | %s | %s |" % (name, f(a, fmt), f(j, fmt), ratio(a, j, invert)))


g = lambda s, k: cap[s][k] if cap[s] else None
row("fan-out capacity: players (1 publisher, loss < 0.5 %, delivery >= 98.5 %, CPU <= 1 core)", g("antenna", "players"), g("janus", "players"))
row("forwarded packets/s at capacity", g("antenna", "received_pps"), g("janus", "received_pps"))
row("server CPU at capacity (% of a core)", g("antenna", "server_cpu_pct"), g("janus", "server_cpu_pct"))
row("server RSS at capacity (MiB)", (g("antenna", "server_rss_kib") or 0) / 1024 or None,
    (g("janus", "server_rss_kib") or 0) / 1024 or None, "%.1f", invert=True)
row("load generator CPU at capacity (% of a core)", g("antenna", "load_cpu_pct"), g("janus", "load_cpu_pct"))
print("| ramp stopped | %s | %s | |" % (stop_reason(ramp["antenna"]), stop_reason(ramp["janus"])))
for i, pct in enumerate(["25", "50", "90"]):
    la = lat["antenna"][i] if len(lat["antenna"]) > i else None
    lj = lat["janus"][i] if len(lat["janus"]) > i else None
    name = "at %s%% of capacity" % pct
    pa = la["players"] if la else None
    pj = lj["players"] if lj else None
    print("| %s: players | %s | %s | |" % (name, f(pa), f(pj)))
    for k, label in [("latency_p50_us", "video one-way p50 (us)"), ("latency_p99_us", "video one-way p99 (us)"),
                     ("audio_latency_p50_us", "audio one-way p50 (us)"), ("audio_latency_p99_us", "audio one-way p99 (us)"),
                     ("loss_pct", "loss (%)")]:
        fmt = "%.3f" if k == "loss_pct" else "%.0f"
        row("%s: %s" % (name, label), la.get(k) if la else None, lj.get(k) if lj else None, fmt, invert=True)


def kf(s):
    rows = [r for r in lat[s] + ramp[s] if r.get("first_keyframe_p50_ms") is not None]
    if not rows:
        return None
    v = sorted(r["first_keyframe_p50_ms"] for r in rows)
    return v[len(v) // 2]


row("play -> first forwarded keyframe, median of steps (ms)", kf("antenna"), kf("janus"), "%.1f", invert=True)
p = lambda s, k: ping[s][k] if ping[s] else None
row("signalling round trips/s (ping/pong, 100 WebSockets)", p("antenna", "round_trips_per_s"), p("janus", "round_trips_per_s"))
row("signalling RTT p50 (us)", p("antenna", "rtt_p50_us"), p("janus", "rtt_p50_us"), invert=True)
row("signalling RTT p99 (us)", p("antenna", "rtt_p99_us"), p("janus", "rtt_p99_us"), invert=True)
po = lambda s, k: ping_open[s][k] if ping_open[s] else None
if ping_open["antenna"] or ping_open["janus"]:
    rate = po("antenna", "offered_per_s") or po("janus", "offered_per_s")
    row("signalling open loop at %s pings/s: answered/s" % rate, po("antenna", "round_trips_per_s"), po("janus", "round_trips_per_s"))
    row("signalling open loop: RTT p50 (us)", po("antenna", "rtt_p50_us"), po("janus", "rtt_p50_us"), invert=True)
    row("signalling open loop: RTT p99 (us)", po("antenna", "rtt_p99_us"), po("janus", "rtt_p99_us"), invert=True)
profile = next((r for s in servers for r in rooms[s]), None)
prof_inner = "%s kbit/s VP8 + Opus %s pps each" % (profile.get("video_kbps"), profile.get("audio_pps")) if profile else ""
prof = " (%s)" % prof_inner if profile else ""
rc = lambda s, k: rcap[s][k] if rcap[s] else None
row("rooms capacity: rooms of 4, all publishing and playing the other 3%s" % prof, rc("antenna", "rooms"), rc("janus", "rooms"))
row("rooms: forwarded packets/s at capacity", rc("antenna", "received_pps"), rc("janus", "received_pps"))
row("rooms: server CPU at capacity (% of a core)", rc("antenna", "server_cpu_pct"), rc("janus", "server_cpu_pct"))
row("rooms: server RSS at capacity (MiB)", (rc("antenna", "server_rss_kib") or 0) / 1024 or None,
    (rc("janus", "server_rss_kib") or 0) / 1024 or None, "%.1f", invert=True)
row("rooms: load generator CPU at capacity (% of a core)", rc("antenna", "load_cpu_pct"), rc("janus", "load_cpu_pct"))
print("| rooms ramp stopped | %s | %s | |" % (rooms_stop(rooms["antenna"]), rooms_stop(rooms["janus"])))
c = lambda s, k: churn[s][k] if churn[s] else None
conns = next((churn[s]["connections"] for s in servers if churn[s]), None)
row("room churn: join + leave cycles/s (%s WebSockets; Antenna 2 requests per cycle, Janus 4: attach, join, leave, detach)" % f(conns),
    c("antenna", "join_leave_cycles_per_s"), c("janus", "join_leave_cycles_per_s"))
row("room churn: answered requests/s", c("antenna", "ops_per_s"), c("janus", "ops_per_s"))
row("room churn: join/leave RTT p50 (us)", c("antenna", "rtt_p50_us"), c("janus", "rtt_p50_us"), invert=True)
row("room churn: join/leave RTT p99 (us)", c("antenna", "rtt_p99_us"), c("janus", "rtt_p99_us"), invert=True)
for s in servers:
    if churn[s] and (churn[s].get("errors") or churn[s].get("broken_connections")):
        print("| %s churn: errors / broken connections | %d (%s) / %d | | |" % (
            s, churn[s]["errors"], churn[s].get("first_error"), churn[s]["broken_connections"]))
for k, label in [("publishers", "RSS per idle publisher session (KiB)"), ("players", "RSS per idle player session (KiB)"),
                 ("websockets", "RSS per idle WebSocket (KiB)")]:
    a, j = idle[("antenna", k)], idle[("janus", k)]
    sa = " (%d)" % a["sessions"] if a else ""
    sj = " (%d)" % j["sessions"] if j else ""
    print("| %s | %s%s | %s%s | %s |" % (label, f(a and a["kib_per_session"], "%.1f"), sa,
                                        f(j and j["kib_per_session"], "%.1f"), sj,
                                        ratio(a and a["kib_per_session"], j and j["kib_per_session"], invert=True)))
for s in servers:
    w = idle[(s, "websockets")]
    if w:
        print("| %s: RSS with %d idle WebSockets (MiB) | %s | | |" % (s, w["sessions"], "%.1f" % (w["rss_after_kib"] / 1024)))
if ceiling:
    c = ceiling["forwarded_pps_median"]
    print("| ceiling: AES-128-GCM UDP forwarder, packets/s (1 core, 200 sinks) | %s | | |" % f(c))
    a = g("antenna", "received_pps")
    j = g("janus", "received_pps")
    print("| share of the ceiling at capacity | %s | %s | |" % (
        "%.0f%%" % (100 * a / c) if a and c else "-", "%.0f%%" % (100 * j / c) if j and c else "-"))
print()
print("Ratios: Antenna / Janus for throughput rows; Janus / Antenna for cost rows (latency, memory, time), so > 1 favours Antenna everywhere.\n")

for s in servers:
    if not ramp[s]:
        continue
    print("### %s fan-out ramp\n" % s)
    print("| players | up | failed | silent | received pkt/s | delivery % | loss % | server CPU % | server RSS MiB | load CPU % | video p50/p99 us | audio p50/p99 us | first keyframe ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ramp[s] + ([{"sep": 1}] if lat[s] else []) + lat[s]:
        if "sep" in r:
            print("| *latency run* | | | | | | | | | | | | |")
            continue
        print("| %d | %d | %d | %d | %.0f | %.1f | %.3f | %s | %s | %s | %s/%s | %s/%s | %s |" % (
            r["players"], r["players_up"], r["failed_joins"], r["silent_players"], r["received_pps"], r.get("delivery_pct", 0), r["loss_pct"],
            f(r["server_cpu_pct"]), f((r["server_rss_kib"] or 0) / 1024, "%.1f"), f(r["load_cpu_pct"]),
            f(r["latency_p50_us"]), f(r["latency_p99_us"]), f(r.get("audio_latency_p50_us")), f(r.get("audio_latency_p99_us")),
            f(r["first_keyframe_p50_ms"], "%.1f")))
    print()

for s in servers:
    if not rooms[s]:
        continue
    print("### %s rooms ramp (rooms of 4%s)\n" % (s, ", " + prof_inner if profile else ""))
    print("| rooms | participants up | players up | failed | silent | received pkt/s | delivery % | loss % | UDP drops server/client | server CPU % | server waited for a CPU % | server RSS MiB | load CPU % | video p50/p99 us | audio p50/p99 us |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rooms[s]:
        print("| %d | %d/%d | %d/%d | %d | %d | %.0f | %.1f | %.3f | %s/%s | %s | %s | %s | %s | %s/%s | %s/%s |" % (
            r["rooms"], r["participants_up"], r["participants"], r["players_up"], r["players"],
            r["failed_joins"] + r.get("failed_publishers", 0), r["silent_players"], r["received_pps"],
            r.get("delivery_pct", 0), r["loss_pct"], f(r.get("server_udp_drops")), f(r.get("client_udp_drops")),
            f(r["server_cpu_pct"]), f(r.get("server_runq_wait_pct")), f((r["server_rss_kib"] or 0) / 1024, "%.1f"),
            f(r["load_cpu_pct"]), f(r["latency_p50_us"]), f(r["latency_p99_us"]), f(r.get("audio_latency_p50_us")),
            f(r.get("audio_latency_p99_us"))))
    print()
