#!/usr/bin/env python3
"""Per forwarded packet instruction counts from a callgrind profile of antenna.

bench/per_packet.py bench/results/profile/callgrind.out
"Forwarded packets" = calls of str0m's SrtpContext::protect_rtp (every RTP packet str0m sent to
a player) plus calls of rtc-core's FastTx::send_rtp (every packet the fast path sent); the
publisher's packets are the calls of unprotect_rtp. "Steady state" leaves out what joins cost
(signalling commands with their SDP, DTLS handshakes), which a short profile run amortizes
over few packets.
"""
import re
import subprocess
import sys



def parse(path):
    """Inclusive Ir per function and call counts per callee, from callgrind_annotate's tree."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=calling", path],
                         capture_output=True, text=True).stdout
    incl = {}
    calls = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\*|=>)?\s*(\S+?):(.+?)(?: \((\d[\d,]*)x\))?(?: \[.*\])?$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(4).strip()
        if m.group(2) == "=>":
            n = int((m.group(5) or "0").replace(",", ""))
            calls[name] = calls.get(name, 0) + n
        else:
            incl[name] = max(incl.get(name, 0), ir)
    return incl, calls


def find(sub, table):
    keys = [k for k in table if sub in k]
    return max((table[k] for k in keys), default=0)


def main():
    incl, calls = parse(sys.argv[1])
    str0m_sent = find("SrtpContext::protect_rtp", calls)
    fast_sent = find("rtc_core::fast::FastTx::send_rtp", calls)
    sent = str0m_sent + fast_sent
    recv = find("SrtpContext::unprotect_rtp", calls)
    print("RTP packets sent to players: %d by str0m (protect_rtp calls), %d by the fast path (FastTx::send_rtp calls); received from the publisher: %d"
          % (str0m_sent, fast_sent, recv))
    rows = [
        ("Sfu::handle_receive (publisher packet in, written to every player)", "rtc_core::sfu::Sfu::handle_receive"),
        ("Sfu::handle_timeout (pacer releases, SRTP, RTCP, timers)", "rtc_core::sfu::Sfu::handle_timeout"),
        ("  of which Sfu::process -> forward (write_rtp per player + drain)", "rtc_core::sfu::Sfu::process"),
        ("  Session::forward (map seq/PT, write_rtp)", "rtc_core::session::Session::forward"),
        ("  Session::drain (str0m poll_output loop)", "rtc_core::session::Session::drain"),
        ("str0m Rtc::poll_output (all calls)", "str0m::Rtc::poll_output"),
        ("str0m Rtc::handle_input (all calls)", "str0m::Rtc::handle_input"),
        ("SRTP protect (AES-GCM seal)", "SrtpContext::protect_rtp"),
        ("fast path: FastTx::send_rtp (header, seal, queue, NACK cache)", "rtc_core::fast::FastTx::send_rtp"),
        ("AES-256-GCM encrypt (str0m's and the fast path's)", "AeadAes256GcmCipher>::encrypt"),
        ("str0m sender reports (StreamTx::create_sr_and_update)", "StreamTx::create_sr_and_update"),
        ("SRTP unprotect (publisher)", "SrtpContext::unprotect_rtp"),
        ("  str0m Session::poll_datagram (build, encrypt, emit one datagram)", "str0m::session::Session::poll_datagram"),
        ("    StreamTx::poll_packet (header, extensions, send queue)", "str0m::streams::send::StreamTx::poll_packet"),
        ("      RtpHeader::write_to", "str0m::rtp_::header::RtpHeader::write_to"),
        ("      ExtensionMap::write_to (header extensions)", "str0m::rtp_::ext::ExtensionMap::write_to"),
        ("  str0m Rtc::do_handle_timeout (the per-player flush timeout)", "str0m::Rtc::do_handle_timeout"),
        ("str0m StreamTx::write_rtp", "str0m::streams::send::StreamTx::write_rtp"),
        ("SipHash (HashMap lookups)", "core::hash::sip::Hasher<S> as core::hash::Hasher>::write"),
        ("Instant arithmetic (Timespec::sub_timespec)", "Timespec>::sub_timespec"),
        ("aws-lc jitter entropy (RNG seeding, start-up)", "jent_measure_jitter"),
        ("str0m LeakyBucketPacer::handle_timeout (player BWE pacing)", "LeakyBucketPacer as str0m::pacer::Pacer>::handle_timeout"),
        ("str0m send-side BWE", "str0m::bwe"),
        ("memcpy", "__memcpy_avx_unaligned_erms"),
        ("malloc", "malloc.c:malloc"),
        ("free", "malloc.c:free"),
        ("server-mio Runtime::run (everything after start-up)", "server_mio::runtime::Runtime::run"),
        ("  joins: Sfu::handle_command (SDP, new sessions)", "rtc_core::sfu::Sfu::handle_command"),
        ("  joins: DTLS handshakes (dimpl handle_packet)", "dimpl::Dtls::handle_packet"),
    ]
    print("| function (inclusive) | Ir total | calls | Ir per packet sent |")
    print("|---|---|---|---|")
    for label, key in rows:
        ir = find(key, incl)
        n = find(key, calls)
        print("| %s | %s | %s | %s |" % (label, format(ir, ","), format(n, ","), format(ir // max(sent, 1), ",")))
    steady = (find("server_mio::runtime::Runtime::run", incl) - find("rtc_core::sfu::Sfu::handle_command", incl)
              - find("dimpl::Dtls::handle_packet", incl))
    print("| **steady state: Runtime::run less joins** | %s | | **%s** |" % (format(steady, ","), format(steady // max(sent, 1), ",")))


if __name__ == "__main__":
    main()
