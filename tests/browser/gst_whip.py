#!/usr/bin/python3
"""A WHIP publisher that is not Antenna's: GStreamer's webrtcbin plus a few lines of HTTP.

Usage: gst_whip.py <WHIP endpoint URL> <seconds> [bearer token]

Publishes a live test pattern (VP8) and a tone (Opus) for <seconds>, then DELETEs the resource
and exits 0. Prints `whip-created <status> <Location>` once the server answered, and
`whip-deleted <status>` at the end. Runs with Debian's /usr/bin/python3 (python3-gst-1.0,
gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice, gstreamer1.0-plugins-{base,good,bad}).
libnice gathers no loopback candidates: the endpoint must be on a non-loopback address (a veth
pair with private addresses inside a test network namespace).

Not run by the suite yet: against Antenna the HTTP exchange (201, Location, DELETE) and ICE
succeed, then DTLS fails. GStreamer 1.22 (Debian 12) presents an RSA client certificate, and
the DTLS stack of the media layer (dimpl, under str0m 0.25) asks only for ECDSA ones ("no client
certificate received"). See README.md, "WHIP and WHEP".
"""

import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = """
webrtcbin name=w bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1
  ! videoconvert ! vp8enc deadline=1 target-bitrate=400000 keyframe-max-dist=15
  ! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000
  ! w.
audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc
  ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000
  ! w.
"""


def main():
    endpoint, seconds = sys.argv[1], float(sys.argv[2])
    token = sys.argv[3] if len(sys.argv) > 3 else None
    Gst.init(None)
    pipe = Gst.parse_launch(PIPELINE)
    webrtc = pipe.get_by_name("w")
    loop = GLib.MainLoop()
    state = {"location": None, "posted": False, "failed": False}

    def headers(content_type=None):
        h = {}
        if content_type:
            h["Content-Type"] = content_type
        if token:
            h["Authorization"] = "Bearer " + token
        return h

    def post_offer():
        if state["posted"]:
            return False
        state["posted"] = True
        offer = webrtc.get_property("local-description").sdp.as_text()
        req = urllib.request.Request(endpoint, data=offer.encode(), method="POST",
                                     headers=headers("application/sdp"))
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, answer = resp.status, resp.read().decode()
                location = resp.headers.get("Location")
        except urllib.error.HTTPError as e:
            print(f"whip-refused {e.code} {e.read().decode().strip()}", flush=True)
            state["failed"] = True
            loop.quit()
            return False
        except OSError as e:
            print(f"whip-unreachable {e}", flush=True)
            state["failed"] = True
            loop.quit()
            return False
        state["location"] = urllib.parse.urljoin(endpoint, location)
        print(f"whip-created {status} {location}", flush=True)
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        webrtc.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_gathering(element, _pspec):
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(post_offer)

    def on_offer(promise, _element, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            # An early negotiation (before every stream is linked) can fail; the next one is
            # asked for when the rest is linked.
            print(f"gst-no-offer-yet {reply.to_string() if reply else None}", flush=True)
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())
        # Not trickling: the offer goes out with every candidate once gathering completes
        # (and after 3 s at the latest).
        GLib.timeout_add(3000, post_offer)

    def on_negotiation_needed(element):
        for i in range(2):
            t = element.emit("get-transceiver", i)
            if t is not None:
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, element, None))

    def on_bus(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"gst-error {err} {dbg}", flush=True)
            state["failed"] = True
            loop.quit()
        return True

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_bus)
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    if state["location"]:
        req = urllib.request.Request(state["location"], method="DELETE", headers=headers())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                print(f"whip-deleted {resp.status}", flush=True)
        except urllib.error.HTTPError as e:
            print(f"whip-deleted {e.code}", flush=True)
            state["failed"] = True
    pipe.set_state(Gst.State.NULL)
    sys.exit(1 if state["failed"] or not state["location"] else 0)


if __name__ == "__main__":
    main()
