// Runs before the SDK bundle.
"use strict";

// The SDK's background-blur plugin constructs mediapipe's SelfieSegmentation when the bundle
// starts. The tests do not use the plugin; this stand-in only has to accept those calls.
window.SelfieSegmentation = class SelfieSegmentation {
  constructor(options) { this.options = options; }
  setOptions(options) { this.options = Object.assign({}, this.options, options); }
  onResults(callback) { this.callback = callback; }
  initialize() { return Promise.resolve(); }
  send() { return Promise.resolve(); }
  close() { return Promise.resolve(); }
};

// Record every WebSocket frame the page sends and receives (SDP shortened), for the test
// driver's assertions and for failure reports.
window.__ws = [];
(function () {
  const Native = window.WebSocket;
  const t0 = performance.now();
  function record(dir, data) {
    let text = typeof data === "string" ? data : "<binary>";
    try {
      const m = JSON.parse(text);
      if (typeof m.sdp === "string") {
        // Keep the m-lines and their directions; drop the rest.
        const mlines = m.sdp.match(/^m=\S+|^a=(sendrecv|sendonly|recvonly|inactive)|^a=mid:\S+/gm) || [];
        m.sdp = "(" + m.sdp.length + " chars) " + mlines.join(" ");
      }
      text = JSON.stringify(m);
    } catch (e) { /* not JSON: keep as is */ }
    window.__ws.push({ t: Math.round(performance.now() - t0), dir, text });
    if (window.__ws.length > 2000) window.__ws.splice(0, 500);
  }
  window.WebSocket = class TappedWebSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      record("open", url);
      this.addEventListener("open", () => record("opened", url));
      this.addEventListener("message", (e) => record("in", e.data));
      this.addEventListener("close", (e) => record("closed", "code " + e.code));
    }
    send(data) {
      record("out", data);
      super.send(data);
    }
  };
})();
