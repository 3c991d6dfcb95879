#!/usr/bin/env python3
"""Per forwarded packet instruction counts from callgrind dumps, one row per interval.

bench/per_interval.py OUT_DIR
Reads every callgrind.out* in OUT_DIR (bench/profile_rooms.sh dumps one every $DUMP_EVERY
seconds, so each file covers one interval) and prints one row per interval: RTP packets sent
to players (calls of str0m's protect_rtp), instructions (Ir) in all and per packet sent, and
what the SFU's receive path, its timer path (sessions' own timers) and its flush (players
written to) cost per packet sent. The rows of the hold (after every join) are the figures.
Loop turns and wakeups per turn come from the server's own counters (/metrics), not from here.
"""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from per_packet import find, parse  # noqa: E402


def total_ir(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return 0


def dump_key(path):
    m = re.search(r"\.(\d+)$", path)
    return int(m.group(1)) if m else 1 << 30


def main():
    files = sorted(glob.glob(os.path.join(sys.argv[1], "callgrind.out*")), key=dump_key)
    print("| interval | packets sent | Ir | Ir per packet sent | Sfu::handle_receive | Sfu::handle_timeout "
          "| Sfu::flush | memcpy | str0m create_sr_and_update (SR + SDES) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, path in enumerate(files):
        incl, calls = parse(path)
        sent = find("SrtpContext::protect_rtp", calls)
        p = max(sent, 1)
        per = lambda key: format(find(key, incl) // p, ",")
        print("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            i, format(sent, ","), format(total_ir(path), ","), format(total_ir(path) // p, ","),
            per("rtc_core::sfu::Sfu::handle_receive"), per("rtc_core::sfu::Sfu::handle_timeout"),
            per("rtc_core::sfu::Sfu::flush"), per("__memcpy_avx_unaligned_erms"),
            per("StreamTx::create_sr_and_update")))

if __name__ == "__main__":
    main()
