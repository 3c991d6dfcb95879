// Test-side helpers around the real SDK (global `webrtc_adaptor`). The node driver calls
// these through page.evaluate.
"use strict";

window.E2E = {
  adaptor: null,
  events: [], // { t, info, streamId, definition, state }
  errors: [], // { t, error, streamId }
  data: [], // data_received: { t, streamId, text } or { t, streamId, bytes, sum }
  marks: {},

  /** Creates the WebRTCAdaptor; resolves on its `initialized` callback. */
  init(opts) {
    document.getElementById("label").textContent = opts.label || "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no `initialized` callback within 10 s")), 10000);
      const config = {
        websocket_url: opts.ws,
        mediaConstraints: { video: opts.video || true, audio: true },
        sdp_constraints: { OfferToReceiveAudio: false, OfferToReceiveVideo: false },
        isPlayMode: !!opts.playOnly,
        debug: true,
        callback: (info, obj) => {
          this.record(info, obj);
          if (info === "initialized") {
            clearTimeout(timer);
            resolve();
          }
          if (info === "newTrackAvailable") this.attach(obj);
          if (opts.conference) this.conferenceEvent(info, obj);
        },
        callbackError: (error, obj) => {
          this.errors.push({
            t: performance.now(),
            error: String(error),
            streamId: obj && typeof obj.streamId === "string" ? obj.streamId : undefined,
          });
        },
      };
      if (opts.onlyDataChannel) config.onlyDataChannel = true;
      if (opts.localVideo) config.localVideoId = "local";
      if (opts.remoteVideo) config.remoteVideoId = "remote";
      try {
        this.adaptor = new webrtc_adaptor.WebRTCAdaptor(config);
      } catch (e) {
        clearTimeout(timer);
        reject(e);
      }
    });
  },

  record(info, obj) {
    if (info === "data_received" && obj) this.recordData(obj);
    const e = { t: performance.now(), info: String(info) };
    if (obj && typeof obj === "object") {
      if (typeof obj.streamId === "string") e.streamId = obj.streamId;
      if (typeof obj.definition === "string") e.definition = obj.definition;
      if (typeof obj.state === "string") e.state = obj.state;
      if (Array.isArray(obj.streams)) e.streams = obj.streams.slice();
      // Datastore answers: the Broadcast / Subscriber objects, parsed from their JSON strings.
      if (typeof obj.broadcast === "string") e.broadcast = JSON.parse(obj.broadcast);
      for (const k of ["subscriberList", "subtrackList"]) {
        if (Array.isArray(obj[k])) e.list = obj[k].map((x) => JSON.parse(x));
      }
      if (typeof obj.count === "number") e.count = obj.count;
    } else if (typeof obj === "string") {
      e.streamId = obj;
    }
    this.events.push(e);
  },

  /** A data_received callback: text as is, binary (the SDK's reassembled ArrayBuffer) as its
   *  length and byte sum. */
  recordData(obj) {
    const d = { t: performance.now(), streamId: obj.streamId };
    if (typeof obj.data === "string") {
      d.text = obj.data;
    } else {
      const bytes = new Uint8Array(obj.data);
      d.bytes = bytes.length;
      d.sum = bytes.reduce((a, b) => (a + b) % 1000000007, 0);
    }
    this.data.push(d);
  },

  /** Sends `n` bytes (byte i = i * 7 mod 256) with the SDK's sendData; returns their sum. */
  sendBinary(streamId, n) {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = (i * 7) & 255;
    this.adaptor.sendData(streamId, bytes.buffer);
    return bytes.reduce((a, b) => (a + b) % 1000000007, 0);
  },

  /** Number of recorded callbacks named `info` (for `streamId` if given). */
  count(info, streamId) {
    return this.events.filter((e) => e.info === info && (streamId === undefined || e.streamId === streamId)).length;
  },

  /** The last recorded callback named `info`, or null. */
  last(info) {
    return this.events.filter((e) => e.info === info).at(-1) || null;
  },

  hasError(error) {
    return this.errors.some((e) => e.error === error);
  },

  /** newTrackAvailable (no remote video element given): one <video> per remote stream. */
  attach(obj) {
    if (!obj || !obj.track) return;
    const key = "v-" + obj.streamId;
    let video = document.getElementById(key);
    if (!video) {
      video = document.createElement("video");
      video.id = key;
      video.autoplay = video.playsInline = video.muted = true;
      video.title = obj.streamId;
      document.getElementById("tracks").appendChild(video);
    }
    const stream = obj.stream || new MediaStream();
    if (!obj.stream) stream.addTrack(obj.track);
    if (video.srcObject !== stream) video.srcObject = stream;
  },

  // Legacy conference, as the SDK's conference sample does it: publish on joinedTheRoom,
  // play every listed stream, poll getRoomInfo and play the newcomers.
  conference: null,
  joinRoom(room, streamId, pollMs) {
    this.conference = { room, myId: streamId, playing: new Set(), poll: null, pollMs };
    this.adaptor.joinRoom(room, streamId);
  },
  conferenceEvent(info, obj) {
    const c = this.conference;
    if (!c) return;
    if (info === "joinedTheRoom") {
      c.myId = obj.streamId;
      this.adaptor.publish(obj.streamId);
      this.playAll(obj.streams || []);
      c.poll = setInterval(() => this.adaptor.getRoomInfo(c.room, c.myId), c.pollMs);
    } else if (info === "roomInformation") {
      this.playAll(obj.streams || []);
    }
  },
  playAll(ids) {
    const c = this.conference;
    for (const id of ids) {
      if (id === c.myId || c.playing.has(id)) continue;
      c.playing.add(id);
      this.adaptor.play(id, undefined, c.room);
    }
  },
  stopConference() {
    const c = this.conference;
    if (c && c.poll) clearInterval(c.poll);
  },

  mark(name) {
    this.marks[name] = performance.now();
  },

  /** inbound-rtp figures of the SDK's peer connection for `streamId`. */
  async stats(streamId) {
    const out = {
      exists: false, ice: "", framesDecoded: 0, videoPackets: 0, audioPackets: 0,
      width: 0, height: 0, keyFrames: 0,
    };
    const pc = this.adaptor && this.adaptor.remotePeerConnection[streamId];
    if (!pc) return out;
    out.exists = true;
    out.ice = pc.iceConnectionState;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        out.framesDecoded += s.framesDecoded || 0;
        out.videoPackets += s.packetsReceived || 0;
        out.keyFrames += s.keyFramesDecoded || 0;
        out.width = s.frameWidth || out.width;
        out.height = s.frameHeight || out.height;
      } else if (s.kind === "audio") {
        out.audioPackets += s.packetsReceived || 0;
      }
    });
    return out;
  },

  /** Polls stats every 25 ms until a video frame is decoded; returns ms since mark `since`. */
  async firstFrame(streamId, since, timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const s = await this.stats(streamId);
      if (s.framesDecoded > 0) return Math.round(performance.now() - this.marks[since]);
      await new Promise((r) => setTimeout(r, 25));
    }
    return -1;
  },
};
