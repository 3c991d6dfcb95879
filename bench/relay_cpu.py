#!/usr/bin/env python3
"""CPU time of the two cluster nodes, sampled every 0.25 s until SIGINT (bench/relay.sh).

bench/relay_cpu.py OUT.jsonl ORIGIN_PID EDGE_PID
Each line: {"t": seconds (monotonic), "origin": CPU seconds, "edge": CPU seconds}
(utime + stime from /proc/<pid>/stat; null once a process is gone).
"""
import json
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(rest[11]) + int(rest[12])) / TICK


def main():
    out, origin, edge = sys.argv[1], sys.argv[2], sys.argv[3]
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(out, "w") as f:
        while True:
            f.write(json.dumps({"t": time.monotonic(), "origin": cpu(origin), "edge": cpu(edge)}) + "\n")
            f.flush()
            if stop:
                return
            time.sleep(0.25)


if __name__ == "__main__":
    main()
