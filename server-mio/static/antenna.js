// Antenna demo pages: a small client for the AMS WebSocket signalling protocol.
// Written for Antenna's demo pages; it does not use the AMS SDK.
//
// window.Antenna = { param, log, Signal, Peer, inboundStats }
(function () {
  "use strict";

  const PING_MS = 3000;

  /** Query parameter `name`, or `fallback`. */
  function param(name, fallback) {
    const v = new URLSearchParams(location.search).get(name);
    return v === null || v === "" ? fallback : v;
  }

  /** Appends a line to the page's #log box (and the console). */
  function log(text, kind) {
    const box = document.getElementById("log");
    const line = document.createElement("div");
    line.className = kind || "info";
    line.textContent = new Date().toISOString().slice(11, 23) + " " + text;
    if (box) {
      box.appendChild(line);
      box.scrollTop = box.scrollHeight;
    }
    (kind === "error" ? console.error : console.log)("[antenna] " + text);
  }

  /**
   * One WebSocket to ws(s)://<host>/WebRTCAppEE/websocket. Sends queue until the
   * socket is open; a ping goes every 3 s; every parsed message goes to onMessage.
   */
  class Signal {
    constructor(onMessage, onOpen) {
      this.onMessage = onMessage;
      this.queue = [];
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      this.url = scheme + location.host + "/WebRTCAppEE/websocket";
      this.ws = new WebSocket(this.url);
      this.ws.onopen = () => {
        log("websocket open " + this.url);
        this.timer = setInterval(() => this.send({ command: "ping" }), PING_MS);
        for (const m of this.queue.splice(0)) this.ws.send(JSON.stringify(m));
        if (onOpen) onOpen();
      };
      this.ws.onmessage = (ev) => this.dispatch(ev.data);
      this.ws.onerror = () => log("websocket error", "error");
      this.ws.onclose = (ev) => {
        clearInterval(this.timer);
        log("websocket closed (code " + ev.code + ")", "error");
      };
    }

    dispatch(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        log("unparsable message: " + text.slice(0, 80), "error");
        return;
      }
      if (msg.command === "pong") return;
      if (msg.command === "error") {
        log("error: " + msg.definition + (msg.streamId ? " (" + msg.streamId + ")" : ""), "error");
      } else if (msg.command === "notification") {
        log("notification: " + msg.definition + (msg.streamId ? " (" + msg.streamId + ")" : ""), "note");
      } else if (msg.command !== "takeCandidate") {
        log("received " + msg.command + (msg.type ? " " + msg.type : "") +
          (msg.streamId ? " (" + msg.streamId + ")" : ""));
      }
      this.onMessage(msg);
    }

    send(msg) {
      if (this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(msg));
      } else if (this.ws.readyState === WebSocket.CONNECTING) {
        this.queue.push(msg);
      }
      if (msg.command !== "ping" && msg.command !== "takeCandidate" && msg.command !== "getRoomInfo") {
        log("sent " + msg.command + (msg.type ? " " + msg.type : "") +
          (msg.streamId ? " (" + msg.streamId + ")" : ""));
      }
    }

    close() {
      clearInterval(this.timer);
      this.ws.close();
    }
  }

  /**
   * One RTCPeerConnection for one stream id: sends its offer/answer and candidates
   * through a Signal, applies the remote side's, queueing candidates that arrive
   * before the remote description.
   */
  class Peer {
    constructor(signal, streamId, opts) {
      opts = opts || {};
      this.signal = signal;
      this.streamId = streamId;
      this.pending = [];
      this.pc = new RTCPeerConnection({ iceServers: [] });
      if (opts.localStream) {
        for (const t of opts.localStream.getTracks()) this.pc.addTrack(t, opts.localStream);
      }
      if (opts.onTrack) this.pc.ontrack = opts.onTrack;
      this.pc.onicecandidate = (ev) => {
        if (!ev.candidate || !ev.candidate.candidate) return;
        signal.send({
          command: "takeCandidate",
          streamId,
          label: ev.candidate.sdpMLineIndex,
          id: ev.candidate.sdpMid,
          candidate: ev.candidate.candidate,
        });
      };
      this.pc.oniceconnectionstatechange = () =>
        log("ice " + streamId + ": " + this.pc.iceConnectionState,
          this.pc.iceConnectionState === "failed" ? "error" : "info");
    }

    /** Creates and sends an offer (publisher, p2p offerer). */
    async offer() {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.signal.send({ command: "takeConfiguration", streamId: this.streamId, type: "offer", sdp: offer.sdp });
    }

    /** Applies a takeConfiguration; answers it when it is an offer. */
    async configuration(msg) {
      try {
        await this.pc.setRemoteDescription({ type: msg.type, sdp: msg.sdp });
        for (const c of this.pending.splice(0)) await this.addCandidate(c);
        if (msg.type === "offer") {
          const answer = await this.pc.createAnswer();
          await this.pc.setLocalDescription(answer);
          this.signal.send({ command: "takeConfiguration", streamId: this.streamId, type: "answer", sdp: answer.sdp });
        }
      } catch (e) {
        log("cannot apply " + msg.type + " for " + this.streamId + ": " + e, "error");
      }
    }

    /** Applies a takeCandidate {label, id, candidate}. */
    async candidate(msg) {
      if (!this.pc.remoteDescription) {
        this.pending.push(msg);
        return;
      }
      await this.addCandidate(msg);
    }

    async addCandidate(msg) {
      if (!msg.candidate) return;
      try {
        await this.pc.addIceCandidate({ candidate: msg.candidate, sdpMLineIndex: msg.label });
      } catch (e) {
        log("bad candidate for " + this.streamId + ": " + e, "error");
      }
    }

    close() {
      this.pc.close();
    }
  }

  /** Sums inbound-rtp stats of a peer connection: video frames and audio packets. */
  async function inboundStats(pc) {
    const out = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, width: 0, height: 0 };
    if (!pc || pc.connectionState === "closed") return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        out.framesDecoded += s.framesDecoded || 0;
        out.videoPackets += s.packetsReceived || 0;
        out.width = s.frameWidth || out.width;
        out.height = s.frameHeight || out.height;
      } else if (s.kind === "audio") {
        out.audioPackets += s.packetsReceived || 0;
      }
    });
    return out;
  }

  window.Antenna = { param, log, Signal, Peer, inboundStats };
})();
