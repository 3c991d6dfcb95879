#!/usr/bin/python3
"""A WHIP publisher that is not Antenna's: GStreamer's webrtcbin plus a few lines of HTTP.

Usage: gst_whip.py <WHIP endpoint URL> <seconds> [bearer token]

Publishes a live test pattern (VP8) and a tone (Opus) for at most <seconds> (SIGTERM or SIGINT
ends it sooner), then DELETEs the resource and exits 0. Prints `whip-created <status>
<Location>` once the server answered, and `whip-deleted <status>` at the end. Runs with
Debian's /usr/bin/python3 (python3-gst-1.0, gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice,
gstreamer1.0-plugins-{base,good,bad}, python3-cryptography). libnice gathers no loopback
candidates: the endpoint must be on a non-loopback address (run.sh gives the test network
namespace a veth pair with private addresses). whip.mjs case 3 runs it.

DTLS: GStreamer 1.22 makes an RSA certificate by itself, and the server's DTLS stack (dimpl,
under str0m) takes ECDSA only. This client makes an ECDSA P-256 one at start and gives it to
webrtcbin's DTLS decoder before that element leaves the NULL state (set later, the new
connection misses its certificate callback and refuses the server's certificate).
"""

import datetime
import re
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

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


def ecdsa_certificate_pem():
    """A fresh self-signed ECDSA P-256 certificate and its key, PEM, for the DTLS transport.

    GStreamer 1.22 makes an RSA one by itself, which DTLS stacks that take ECDSA only (the
    server's) refuse; WebRTC peers check the certificate against the SDP fingerprint only.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gst-whip")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())).decode()


def main():
    endpoint, seconds = sys.argv[1], float(sys.argv[2])
    token = sys.argv[3] if len(sys.argv) > 3 else None
    Gst.init(None)
    pem = ecdsa_certificate_pem()
    fingerprint = (x509.load_pem_x509_certificate(pem.encode())
                   .fingerprint(hashes.SHA256()).hex(":").upper())
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
        print(f"gst-offer candidates={offer.count('a=candidate')} gathering="
              f"{webrtc.get_property('ice-gathering-state').value_nick}", flush=True)
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
        # webrtcbin 1.22 hashes every base64 line of the transport's PEM, the private key's
        # too, so its a=fingerprint is wrong for a PEM that carries the key: put the
        # certificate's own in its place.
        text = re.sub(r"a=fingerprint:.*", "a=fingerprint:sha-256 " + fingerprint, offer.sdp.as_text())
        _, sdp = GstSdp.SDPMessage.new_from_text(text)
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, sdp)
        webrtc.emit("set-local-description", offer, Gst.Promise.new())
        # Not trickling: the offer goes out with every candidate once gathering completes
        # (and after 10 s at the latest, with what it has).
        GLib.timeout_add(10000, post_offer)

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

    def on_element_added(_bin, _sub_bin, element):
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "dtlssrtpdec":
            # Before the element leaves NULL: its DTLS connection is made with this key.
            element.set_property("pem", pem)

    webrtc.connect("deep-element-added", on_element_added)
    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_bus)
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: loop.quit() or False)
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
