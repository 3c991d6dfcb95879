"""Reading a bench/run.sh results directory: shared by table.py and summary.py."""
import json
import os


def jsonl(d, name):
    """The JSON objects of the lines of DIR/NAME that hold one ([] when it is missing)."""
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return []
    out = []
    for line in open(p):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def one(d, name):
    """The last JSON object of DIR/NAME, or None."""
    rows = jsonl(d, name)
    return rows[-1] if rows else None


def capacity_row(rows):
    """The fan-out step with the most players that passed (loss < 0.5 %, delivery >= 98.5 %,
    every player up and counting, server CPU within one core)."""
    best = None
    for r in rows:
        ok = (r["loss_pct"] < 0.5 and r.get("delivery_pct", 0) >= 98.5 and r["failed_joins"] == 0 and r["silent_players"] == 0
              and (r["server_cpu_pct"] or 0) <= 100.5 and r["players_up"] == r["players"])
        if ok and (best is None or r["players"] > best["players"]):
            best = r
    return best


def rooms_ok(r):
    return (r["loss_pct"] < 0.5 and r.get("delivery_pct", 0) >= 98.5 and r["failed_joins"] == 0
            and r.get("failed_publishers", 0) == 0 and r["silent_players"] == 0
            and (r["server_cpu_pct"] or 0) <= 100.5 and r["players_up"] == r["players"]
            and r["participants_up"] == r["participants"])


def rooms_capacity(rows):
    """The rooms step with the most rooms that passed."""
    best = None
    for r in rows:
        if rooms_ok(r) and (best is None or r["rooms"] > best["rooms"]):
            best = r
    return best
