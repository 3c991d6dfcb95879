// Ant Media's own sample pages, unchanged, in headless Chromium against the antenna binary.
// (Over 600 lines: one case per sample page, all behind the one request-routing driver that
// serves AMS's pages unchanged.)
//
// The pages come from the SDK package (@antmedia/webrtc_adaptor 2.16.2, `src/main/webapp/`), the
// scripts they load from the npm packages AMS 2.16.2 ships them from (see package.json). They
// are served as AMS serves its webapp, under http://127.0.0.1:<antenna port>/WebRTCAppEE/, by
// request routing in this driver (playwright's context.route): the pages work out their
// WebSocket URL from their own location, so they reach the antenna binary's real
// /WebRTCAppEE/websocket unchanged. Nothing in the pages is edited; only paths are mapped
// (ROUTES below). The one file no package ships is AMS's `play.html` (embedded by
// samples/play_webrtc.html): page/ams-play.html stands in for it with @antmedia/web_player.
//
// Meant to run inside a loopback-only network namespace (run.sh makes one), after e2e.mjs.
// Environment: ANTENNA_BIN, CHROMIUM (as e2e.mjs), SAMPLES_ONLY (comma-separated case numbers),
// E2E_ALLOW_HOST_NETWORK=1 to run outside a namespace.

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const ARTIFACTS = path.join(HERE, "artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ANTENNA = process.env.ANTENNA_BIN || path.join(ROOT, "target/release/antenna");
const APP = "WebRTCAppEE";
const NM = path.join(HERE, "node_modules");
const WEBAPP = path.join(NM, "@antmedia/webrtc_adaptor/src/main/webapp");

/**
 * Writes the fake camera: 320x240 at 10 frames a second, two seconds of a moving pattern
 * (Y4M, looped by Chromium), and returns its path.
 */
function fakeCamera() {
  const [w, h, n] = [320, 240, 20];
  const file = path.join(os.tmpdir(), `antenna-samples-camera-${w}x${h}.y4m`);
  if (fs.existsSync(file)) return file;
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < n; f++) {
    const frame = Buffer.alloc(w * h * 3 / 2, 128);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) frame[y * w + x] = ((x + y + f * 8) & 63) * 3 + 16;
    }
    parts.push(Buffer.from("FRAME\n"), frame);
  }
  fs.writeFileSync(file + ".part", Buffer.concat(parts));
  fs.renameSync(file + ".part", file);
  return file;
}

const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  // The camera is a small looped file (`fakeCamera`), not Chromium's 640x480 pattern at 30 fps:
  // case 4 runs four conference pages (four encoders, twelve decoders) in one browser on a
  // two-core machine. At full size a page could take over three seconds to answer an offer, and
  // the SDK gives a play three seconds to reach ICE "checking" before it stops and plays again
  // (`reconnectIfRequired`), which these pages do not survive.
  `--use-file-for-fake-video-capture=${fakeCamera()}`,
  "--allow-loopback-in-peer-connection",
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
  // Pages served by request routing count as public to Chromium, which then blocks their
  // WebSocket to 127.0.0.1 (BROWSER.md).
  "--disable-features=LocalNetworkAccessChecks",
  "--autoplay-policy=no-user-gesture-required",
];

// ---------------------------------------------------------------- what is served where

/** Paths under /WebRTCAppEE/ -> files. Exact names first, then prefixes; the rest is WEBAPP. */
const EXACT = {
  "js/external/adapter-latest.js": "webrtc-adapter/out/adapter.js",
  "js/external/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
  "js/external/jquery-3.7.1.slim.min.js": "jquery/dist/jquery.slim.min.js",
  "js/external/popper.min.js": "popper.js/dist/umd/popper.min.js",
  "js/external/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
  "js/external/notify.min.js": "notifyjs-browser/dist/notify.js",
  "css/external/bootstrap4/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
};
const PREFIXES = [
  // The player's ES build, for the play.html stand-in.
  ["js/web_player/", path.join(NM, "@antmedia/web_player/dist/es")],
  // What AMS's build copies into webapp/js: the SDK's ES build.
  ["js/", path.join(NM, "@antmedia/webrtc_adaptor/dist/es")],
];
/** multitrack-play.html loads bootstrap 5.3.2 from a CDN; no CDN is reachable here. */
const CDN_BOOTSTRAP5 = "https://cdn.jsdelivr.net/npm/bootstrap@5.3.2/";

const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json", ".map": "application/json",
};

/** The file under `base` for `rel`, or null when it escapes `base`. */
function inside(base, rel) {
  const file = path.resolve(base, rel);
  return file === base || file.startsWith(base + path.sep) ? file : null;
}

/** Maps a request URL to a local file (null: not served). */
function fileFor(url, appBase) {
  if (url.startsWith(CDN_BOOTSTRAP5)) {
    return inside(path.join(NM, "bootstrap5"), new URL(url).pathname.slice("/npm/bootstrap@5.3.2/".length));
  }
  if (!url.startsWith(appBase)) return null;
  const rel = decodeURIComponent(new URL(url).pathname.slice(new URL(appBase).pathname.length));
  if (rel === "play.html") return path.join(HERE, "page/ams-play.html");
  if (EXACT[rel]) return path.join(NM, EXACT[rel]);
  for (const [prefix, dir] of PREFIXES) {
    if (rel.startsWith(prefix)) return inside(dir, rel.slice(prefix.length));
  }
  return inside(WEBAPP, rel);
}

/** Routes every request of the context: pages and scripts from files, the rest refused. */
async function installRoutes(ctx, env) {
  const appBase = `${env.antenna.http}/${APP}/`;
  await ctx.route("**/*", async (route) => {
    const req = route.request();
    const url = req.url();
    if (url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    const file = fileFor(url, appBase);
    if (file && fs.existsSync(file) && fs.statSync(file).isFile()) {
      env.served.push(url);
      return route.fulfill({
        status: 200,
        path: file,
        headers: { "content-type": TYPES[path.extname(file)] || "application/octet-stream", "cache-control": "no-store" },
      });
    }
    if (url.startsWith(appBase) && !file) return route.fulfill({ status: 403, body: "outside the webapp" });
    if (url.startsWith(env.antenna.http)) {
      // Anything else of the antenna origin (REST, the WebSocket's HTTP side) goes to the server.
      if (!url.startsWith(appBase) || new URL(url).pathname.includes("/rest/")) return route.continue();
    }
    env.missing.push({ url, type: req.resourceType() });
    return route.fulfill({ status: 404, body: "not found" });
  });
}

// A tap every frame gets before its own scripts: keeps each RTCPeerConnection the page makes, so
// the driver can read inbound-rtp framesDecoded of the track a <video> element shows.
const INIT_SCRIPT = `(() => {
  if (window.__pcs) return;
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  function Tapped(...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; }
  Tapped.prototype = Native.prototype;
  Object.setPrototypeOf(Tapped, Native);
  window.RTCPeerConnection = Tapped;
  /** [{id, frames, width, height, presented}] for the <video> elements matching selector. */
  window.__videoFrames = async (selector) => {
    const inbound = new Map();
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed") continue;
      try {
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video" && s.trackIdentifier) {
            inbound.set(s.trackIdentifier, (inbound.get(s.trackIdentifier) || 0) + (s.framesDecoded || 0));
          }
        });
      } catch (e) { /* closed meanwhile */ }
    }
    return [...document.querySelectorAll(selector)].map((v) => {
      const tracks = v.srcObject && v.srcObject.getVideoTracks ? v.srcObject.getVideoTracks() : [];
      const frames = tracks.reduce((n, t) => n + (inbound.get(t.id) || 0), 0);
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
      return { id: v.id, frames, width: v.videoWidth, height: v.videoHeight, presented: q };
    });
  };
})();`;

// ---------------------------------------------------------------- small utilities

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

async function waitUntil(what, timeoutMs, fn, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function freePort(udp = false) {
  return new Promise((resolve, reject) => {
    if (udp) {
      const s = dgram.createSocket("udp4");
      s.on("error", reject);
      s.bind(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
      return;
    }
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function tcpReady(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

const uid = (prefix) => prefix + Math.random().toString(36).slice(2, 8);

// ---------------------------------------------------------------- the antenna server

class Antenna {
  constructor() { this.lines = []; this.exited = null; }

  async start() {
    if (!fs.existsSync(ANTENNA)) throw new Error(`antenna binary not found at ${ANTENNA}`);
    this.port = await freePort();
    this.udpPort = await freePort(true);
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "antenna-samples-"));
    const args = [
      "--listen", `127.0.0.1:${this.port}`, "--udp", `127.0.0.1:${this.udpPort}`,
      "--announce-ip", "127.0.0.1", "--data-dir", path.join(this.dataDir, "data"),
    ];
    this.logFile = path.join(ARTIFACTS, "antenna-samples.log");
    const out = fs.createWriteStream(this.logFile);
    log(`starting ${ANTENNA} ${args.join(" ")}`);
    this.proc = spawn(ANTENNA, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" } });
    for (const s of [this.proc.stdout, this.proc.stderr]) {
      s.on("data", (chunk) => {
        out.write(chunk);
        for (const l of chunk.toString().split("\n")) if (l.trim()) this.lines.push(l);
        if (this.lines.length > 5000) this.lines.splice(0, 1000);
      });
    }
    this.proc.on("exit", (code, signal) => { this.exited = { code, signal }; out.end(); });
    await waitUntil(`antenna on 127.0.0.1:${this.port}`, 15000, async () => {
      if (this.exited) throw new Error(`antenna exited (${JSON.stringify(this.exited)}):\n${this.lines.slice(-30).join("\n")}`);
      return tcpReady(this.port);
    });
    this.http = `http://127.0.0.1:${this.port}`;
  }

  assertAlive() { if (this.exited) throw new Error(`antenna died (${JSON.stringify(this.exited)})`); }

  since(mark, max = 40) { return this.lines.slice(mark).slice(-max).join("\n"); }

  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill("SIGTERM");
    const deadline = Date.now() + 5000;
    while (!this.exited && Date.now() < deadline) await sleep(50);
    if (!this.exited) { this.proc.kill("SIGKILL"); while (!this.exited) await sleep(50); }
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- sample pages

/** Page errors that are AMS's own (BROWSER.md): jQuery slim has no slideDown, which notify.js uses. */
const KNOWN_PAGE_ERRORS = [/slideDown is not a function/];

/** Opens `file` (relative to /WebRTCAppEE/) with `query`; records console, errors and WebSockets. */
async function openSample(ctx, env, file, query, label) {
  const page = await ctx.newPage();
  // transcript: every WebSocket frame both ways in full (up to 8 MiB), written to artifacts/ when
  // a case fails.
  const p = { page, label, file, console: [], pageErrors: [], sockets: [], transcript: [], transcriptBytes: 0 };
  const record = (dir, f) => {
    const text = typeof f.payload === "string" ? f.payload : "(binary)";
    if (p.transcriptBytes > 8 << 20) return;
    p.transcriptBytes += text.length;
    p.transcript.push(`${new Date().toISOString().slice(11, 23)} ${dir} ${text}`);
  };
  page.on("console", (m) => { p.console.push(`${m.type()}: ${m.text()}`); if (p.console.length > 400) p.console.splice(0, 100); });
  page.on("pageerror", (e) => { p.pageErrors.push(e.message); p.console.push(`pageerror: ${e.message}`); });
  page.on("websocket", (ws) => {
    const s = { url: ws.url(), open: true, received: 0 };
    p.sockets.push(s);
    ws.on("framesent", (f) => record(">", f));
    ws.on("framereceived", (f) => {
      record("<", f);
      s.received++;
    });
    ws.on("close", () => { s.open = false; });
  });
  env.pages.push(p);
  const url = `${env.antenna.http}/${APP}/${file}${query ? "?" + query : ""}`;
  const resp = await page.goto(url);
  if (!resp || resp.status() !== 200) throw new Error(`${label}: GET ${url} -> ${resp ? resp.status() : "no response"}`);
  await page.waitForLoadState("load");
  return p;
}

/** Fails if a script of the page was not served or the page threw (other than AMS's own errors). */
function assertLoaded(env, p) {
  const scripts = env.missing.filter((m) => m.type === "script");
  if (scripts.length) throw new Error(`${p.label}: scripts not served: ${scripts.map((m) => m.url).join(", ")}`);
  const errors = p.pageErrors.filter((e) => !KNOWN_PAGE_ERRORS.some((re) => re.test(e)));
  if (errors.length) throw new Error(`${p.label}: page errors: ${errors.join("; ")}`);
}

async function waitWebSocket(p, timeoutMs = 15000) {
  return waitUntil(`${p.label}: WebSocket to /${APP}/websocket with a frame from the server`, timeoutMs,
    () => p.sockets.find((s) => s.url.includes(`/${APP}/websocket`) && s.received > 0));
}

/** Frames of the <video> elements matching selector in `frame` (a page or an iframe). */
async function videoFrames(frame, selector) {
  return frame.evaluate((sel) => window.__videoFrames(sel), selector);
}

/** Clicks a button through the DOM (the page's own listener runs; works for hidden elements too). */
async function clickDom(p, selector) {
  await p.page.evaluate((sel) => document.querySelector(sel).click(), selector);
}

async function waitEnabled(p, selector, timeoutMs = 10000) {
  await waitUntil(`${p.label}: ${selector} enabled`, timeoutMs, () => p.page.evaluate((sel) => {
    const b = document.querySelector(sel);
    return b && !b.disabled;
  }, selector));
}

// ---------------------------------------------------------------- cases

const CASES = [];
function testCase(num, name, timeoutMs, fn) { CASES.push({ num, name, timeoutMs, fn }); }

testCase(0, "every sample page loads with all its scripts and connects its WebSocket", 60000, async (ctx, env, figures) => {
  const pages = [
    ["conference-room.html", `roomName=${uid("room")}`],
    ["multitrack-play.html", `id=${uid("mt")}`],
    ["samples/publish_webrtc.html", `id=${uid("pub")}`],
    ["samples/play_webrtc.html", `id=${uid("play")}`],
    ["samples/datachannel_only_webrtc_frame.html", `id=${uid("dc")}`],
    ["play.html", `id=${uid("wp")}&playOrder=webrtc`],
  ];
  for (const [file, query] of pages) {
    const p = await openSample(ctx, env, file, query, file);
    if (file !== "samples/play_webrtc.html") await waitWebSocket(p);
    assertLoaded(env, p);
    const known = p.pageErrors.length ? ` (AMS's own page errors: ${p.pageErrors.length})` : "";
    figures.push(`${file}: loaded, ${p.sockets.length} WebSocket(s)${known}`);
    await p.page.close();
  }
  const other = env.missing.filter((m) => m.type !== "script");
  figures.push(`requests served: ${env.served.length}; not served (styles, images the package does not ship): ${other.length}`);
});

/** Opens publish_webrtc.html for `id` (query extras in `extra`) and starts publishing. */
async function samplePublisher(ctx, env, id, label, extra = "") {
  const p = await openSample(ctx, env, "samples/publish_webrtc.html", `id=${id}${extra}`, label);
  assertLoaded(env, p);
  await waitEnabled(p, "#start_publish_button");
  const t0 = Date.now();
  await clickDom(p, "#start_publish_button");
  // publish_started shows #broadcastingInfo (startAnimation) and enables the stop button.
  await waitUntil(`${label}: publish_started (broadcasting shown)`, 20000, () => p.page.evaluate(() => {
    const info = document.getElementById("broadcastingInfo");
    return info && info.style.display !== "none" && !document.getElementById("stop_publish_button").disabled;
  }), 100);
  p.liveMs = Date.now() - t0;
  return p;
}

/** Opens play_webrtc.html and plays `id`; returns the page and its embedded play.html frame. */
async function samplePlayer(ctx, env, id, label) {
  const p = await openSample(ctx, env, "samples/play_webrtc.html", `id=${id}`, label);
  assertLoaded(env, p);
  await p.page.fill("#streamName", id);
  const t0 = Date.now();
  await clickDom(p, "#start_play_button");
  const frame = await waitUntil(`${label}: embedded play.html`, 10000, () => p.page.frames().find((f) => f.url().includes("/play.html")));
  await waitUntil(`${label}: play.html loaded`, 10000, () => frame.evaluate(() => !!window.webPlayer).catch(() => false));
  const first = await waitUntil(`${label}: a frame decoded in play.html`, 20000, async () => {
    env.antenna.assertAlive();
    const v = await videoFrames(frame, "#video_container video").catch(() => []);
    return v.find((x) => x.frames > 0);
  }, 50);
  p.firstFrameMs = Date.now() - t0;
  p.frame = frame;
  p.firstVideo = first;
  return p;
}

testCase(1, "publish_webrtc.html goes live; play_webrtc.html (play.html) plays it", 60000, async (ctx, env, figures) => {
  const id = uid("s1");
  const pub = await samplePublisher(ctx, env, id, "publish_webrtc");
  figures.push(`publish_webrtc.html: start -> publish_started ${pub.liveMs} ms`);
  const play = await samplePlayer(ctx, env, id, "play_webrtc");
  await sleep(2000);
  const later = (await videoFrames(play.frame, "#video_container video")).reduce((n, v) => n + v.frames, 0);
  figures.push(`play_webrtc.html: start -> first frame ${play.firstFrameMs} ms; frames decoded ${later} two seconds later (${play.firstVideo.width}x${play.firstVideo.height})`);
  if (later <= play.firstVideo.frames) throw new Error("play.html stopped decoding");
});

testCase(2, "publish_webrtc.html sends data; play_webrtc.html receives it", 60000, async (ctx, env, figures) => {
  const id = uid("s2");
  const pub = await samplePublisher(ctx, env, id, "publish_webrtc");
  const play = await samplePlayer(ctx, env, id, "play_webrtc");
  const sent = [];
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) {
    const msg = `hello ${i} from ${id}`;
    await pub.page.fill("#dataTextbox", msg);
    await clickDom(pub, "#send");
    sent.push(msg);
    await sleep(200);
  }
  const got = await waitUntil("play.html to receive the three messages", 10000, async () => {
    const r = await play.frame.evaluate(() => window.__received.slice());
    return sent.every((m) => r.includes(m)) ? r : null;
  }, 50);
  figures.push(`messages: sent ${sent.length}, received ${got.length} in play.html, all within ${Date.now() - t0} ms`);
  const shown = await pub.page.textContent("#all-messages");
  if (!shown.includes(`Sent: ${sent[0]}`)) throw new Error("publish_webrtc.html did not show its sent message");
});

testCase(3, "datachannel_only_webrtc_frame.html: two pages exchange messages", 60000, async (ctx, env, figures) => {
  const id = uid("s3");
  const file = "samples/datachannel_only_webrtc_frame.html";
  const open = async (label) => {
    const p = await openSample(ctx, env, file, `id=${id}`, label);
    assertLoaded(env, p);
    await waitEnabled(p, "#connect_channel_button");
    await p.page.fill("#streamName", id);
    await clickDom(p, "#connect_channel_button");
    // Joined (publish_started for the creator, play_started for the other): connect disabled,
    // disconnect enabled.
    await waitUntil(`${label}: joined the channel`, 20000, () => p.page.evaluate(() =>
      document.getElementById("connect_channel_button").disabled && !document.getElementById("disconnect_channel_button").disabled), 100);
    return p;
  };
  const t0 = Date.now();
  const a = await open("creator");
  figures.push(`creator: join -> channel created (data-only publish) ${Date.now() - t0} ms`);
  const t1 = Date.now();
  const b = await open("joiner");
  figures.push(`joiner: join -> play_started ${Date.now() - t1} ms`);
  const received = async (p) => p.page.evaluate(() => {
    const t = document.getElementById("dataMessagesTextarea");
    return (t.value || "") + "\n" + t.textContent;
  });
  const exchange = async (from, to, msg) => {
    const t = Date.now();
    // The channel may open a little after the join; the page refuses to send until ICE is up.
    await waitUntil(`${from.label} -> ${to.label}: "${msg}"`, 10000, async () => {
      await from.page.fill("#dataTextbox", msg);
      await clickDom(from, "#send");
      return waitUntil("received", 1000, async () => (await received(to)).includes(`Received: ${msg}`), 50).catch(() => false);
    }, 0);
    return Date.now() - t;
  };
  const ab = await exchange(a, b, `from creator ${id}`);
  const ba = await exchange(b, a, `from joiner ${id}`);
  figures.push(`creator -> joiner: received after ${ab} ms; joiner -> creator: received after ${ba} ms`);
});

/** One conference-room.html member: enters the room `room` as `id`. */
async function member(ctx, env, room, id) {
  const p = await openSample(ctx, env, "conference-room.html", `roomName=${room}&streamId=${id}&streamName=${id}`, id);
  assertLoaded(env, p);
  await waitWebSocket(p);
  await clickDom(p, "#enterButton");
  p.enteredAt = Date.now();
  // A reload would lose this mark: the tiles must come and go without one.
  await p.page.evaluate(() => { window.__noReload = true; });
  return p;
}

/** Tiles (remote <video>s in #players) of a conference page with their frames decoded. */
async function tiles(p) {
  return videoFrames(p.page, "#players video[id^=remoteVideo]");
}

async function waitTileDecoding(p, otherId, timeoutMs) {
  return waitUntil(`${p.label}: tile of ${otherId} decoding`, timeoutMs, async () => {
    const t = (await tiles(p)).find((v) => v.id === "remoteVideo" + otherId);
    return t && t.frames > 0 ? t : null;
  }, 100);
}

async function chatLines(p) {
  return p.page.$$eval("#chat li.you .message", (els) => els.map((e) => e.textContent));
}

testCase(4, "conference-room.html: three members, chat, a late fourth, one leaves", 150000, async (ctx, env, figures) => {
  const room = uid("room");
  const ids = [uid("a"), uid("b"), uid("c")];
  const members = [];
  for (const id of ids) members.push(await member(ctx, env, room, id));
  const t0 = Date.now();
  for (const p of members) {
    for (const other of ids.filter((x) => x !== p.label)) {
      const t = await waitTileDecoding(p, other, 45000);
      figures.push(`${p.label} shows ${other}: first frame ${Date.now() - p.enteredAt} ms after entering (${t.width}x${t.height})`);
    }
  }
  figures.push(`all six tiles decoding ${Date.now() - t0} ms after the third member entered`);

  // Chat: a line typed on one page appears on the two others.
  const line = `hi from ${ids[0]}`;
  const tc = Date.now();
  await waitUntil(`chat line from ${ids[0]} on the others`, 15000, async () => {
    if (!(await members[0].page.evaluate((l) => [...document.querySelectorAll("#chat li.me .message")].some((e) => e.textContent === l), line))) {
      await members[0].page.fill("#dataTextbox", line);
      await clickDom(members[0], ".send");
    }
    const got = await Promise.all(members.slice(1).map(chatLines));
    return got.every((g) => g.includes(line));
  }, 200);
  figures.push(`chat: "${line}" on both other pages ${Date.now() - tc} ms after it was sent`);

  // A fourth member appears on the first three without a reload.
  const d = uid("d");
  const late = await member(ctx, env, room, d);
  const tl = Date.now();
  for (const p of members) await waitTileDecoding(p, d, 30000);
  figures.push(`late member ${d}: decoding on all three earlier pages ${Date.now() - tl} ms after entering`);
  // ... and the late page shows the three. The page drops a tile when all its tracks fire
  // `mute`, and a track that never received a packet is muted already and fires nothing: a
  // member who leaves before its media reached the late page would leave a tile there that
  // nothing can remove (AMS's page behaves the same against AMS).
  for (const id of ids) await waitTileDecoding(late, id, 30000);
  figures.push(`late member ${d} shows the three earlier members ${Date.now() - tl} ms after entering`);
  for (const p of [...members, late]) {
    if (!(await p.page.evaluate(() => window.__noReload === true))) throw new Error(`${p.label} reloaded`);
  }

  // One leaves (the page's own hang-up button): its tile goes away on the others.
  const leaver = members[1];
  const tx = Date.now();
  await clickDom(leaver, "#close_call_button");
  const stay = [members[0], members[2], late];
  for (const p of stay) {
    await waitUntil(`${p.label}: tile of ${leaver.label} removed`, 15000, async () =>
      !(await tiles(p)).some((v) => v.id === "remoteVideo" + leaver.label), 100);
  }
  figures.push(`${leaver.label} left: its tile gone from the three other pages ${Date.now() - tx} ms later`);
  for (const p of stay) {
    const left = (await tiles(p)).map((v) => `${v.id.slice("remoteVideo".length)}:${v.frames}`);
    figures.push(`${p.label} tiles now: ${left.join(", ")}`);
    if (left.length !== 2) throw new Error(`${p.label} shows ${left.length} tiles, expected 2`);
  }
});

testCase(5, "multitrack-play.html plays a main track with two subtracks", 90000, async (ctx, env, figures) => {
  const main = uid("main");
  const subs = [uid("t1"), uid("t2")];
  for (const s of subs) {
    const p = await samplePublisher(ctx, env, s, `subtrack ${s}`, `&mainTrack=${main}`);
    figures.push(`publish_webrtc.html ${s} (mainTrack ${main}): publish_started after ${p.liveMs} ms`);
  }
  const t0 = Date.now();
  const p = await openSample(ctx, env, "multitrack-play.html", `id=${main}`, "multitrack-play");
  assertLoaded(env, p);
  const firsts = {};
  await waitUntil("both subtracks decoding in multitrack-play.html", 30000, async () => {
    env.antenna.assertAlive();
    const v = await videoFrames(p.page, ".video-container video");
    for (const x of v) if (x.frames > 0 && !firsts[x.id]) firsts[x.id] = Date.now() - t0;
    return subs.every((s) => firsts["remoteVideo" + s] !== undefined);
  }, 50);
  await sleep(2000);
  const v = await videoFrames(p.page, ".video-container video");
  for (const s of subs) {
    const x = v.find((e) => e.id === "remoteVideo" + s);
    figures.push(`subtrack ${s}: first frame ${firsts["remoteVideo" + s]} ms after opening the page; ${x ? x.frames : 0} frames two seconds later`);
  }
  if (v.length !== subs.length) throw new Error(`${v.length} video tiles, expected ${subs.length}: ${v.map((e) => e.id).join(", ")}`);
});

// ---------------------------------------------------------------- runner

async function runCase(browser, env, c) {
  const figures = [];
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  await ctx.addInitScript({ content: INIT_SCRIPT });
  env.pages = [];
  env.missing = [];
  env.served = [];
  await installRoutes(ctx, env);
  const mark = env.antenna.lines.length;
  const t0 = Date.now();
  let error = null;
  let timer;
  try {
    await Promise.race([
      c.fn(ctx, env, figures),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`case timed out after ${c.timeoutMs} ms`)), c.timeoutMs); }),
    ]);
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  const ms = Date.now() - t0;
  for (const f of figures) log(`  ${f}`);
  if (error) {
    log(`  FAIL: ${error.message}`);
    const diag = [];
    for (const p of env.pages) {
      diag.push(`--- ${p.label} (${p.file}): page errors: ${p.pageErrors.join("; ") || "none"}`);
      const signalling = p.transcript.filter((l) => !/"command":"(ping|pong)"/.test(l)).slice(-25).map((l) => "  " + l.slice(0, 160));
      diag.push(`--- ${p.label}: last signalling frames both ways (without ping/pong; all in artifacts/):`, ...signalling);
      diag.push(`--- ${p.label}: last console lines:`, ...p.console.slice(-12).map((l) => "  " + l.slice(0, 300)));
      fs.writeFileSync(path.join(ARTIFACTS, `samples${c.num}-${p.label.replace(/[^\w.-]+/g, "_")}.txt`), [...p.transcript, "--- console:", ...p.console].join("\n") + "\n");
      try { await p.page.screenshot({ path: path.join(ARTIFACTS, `samples${c.num}-${p.label.replace(/[^\w.-]+/g, "_")}.png`) }); } catch (e) { /* closed */ }
    }
    if (env.missing.length) diag.push(`--- not served: ${env.missing.map((m) => `${m.type} ${m.url}`).slice(0, 20).join(", ")}`);
    diag.push(`--- antenna log during the case (last 40 lines; full log: ${env.antenna.logFile}):\n${env.antenna.since(mark)}`);
    console.log(diag.join("\n"));
  }
  await ctx.close().catch(() => {});
  return { ...c, ok: !error, ms, error: error ? error.message : "" };
}

let running = null;

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // This run's failure reports only: what an earlier run left is removed.
  for (const f of fs.readdirSync(ARTIFACTS)) if (/^samples\d/.test(f)) fs.rmSync(path.join(ARTIFACTS, f));
  const others = Object.values(os.networkInterfaces()).flat().filter((a) => !a.internal);
  if (others.length && process.env.E2E_ALLOW_HOST_NETWORK !== "1") {
    console.error("refusing to run: this network namespace has non-loopback interfaces; run through run.sh or set E2E_ALLOW_HOST_NETWORK=1");
    process.exit(2);
  }
  const only = process.env.SAMPLES_ONLY ? new Set(process.env.SAMPLES_ONLY.split(",").map(Number)) : null;
  const selected = CASES.filter((c) => !only || only.has(c.num));
  const env = { antenna: new Antenna() };
  running = env.antenna;
  let browser = null;
  const results = [];
  try {
    await env.antenna.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    log(`chromium ${browser.version()}; sample pages from ${path.relative(HERE, WEBAPP)} at ${env.antenna.http}/${APP}/`);
    for (const c of selected) {
      log(`samples case ${c.num}: ${c.name}`);
      if (env.antenna.exited) {
        results.push({ ...c, ok: false, ms: 0, error: "antenna is not running" });
        continue;
      }
      results.push(await runCase(browser, env, c));
      log(`samples case ${c.num}: ${results.at(-1).ok ? "PASS" : "FAIL"} (${results.at(-1).ms} ms)`);
    }
  } catch (e) {
    log(`setup failed: ${e.message}`);
    for (const c of selected.filter((c) => !results.some((r) => r.num === c.num))) {
      results.push({ ...c, ok: false, ms: 0, error: `setup failed: ${e.message.split("\n")[0]}` });
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await env.antenna.stop();
  }
  console.log("\nSummary (AMS sample pages)");
  console.log("case | result | time    | name / failure");
  console.log("-----|--------|---------|---------------");
  for (const r of results) {
    const time = `${(r.ms / 1000).toFixed(1)} s`.padStart(7);
    console.log(`${String(r.num).padStart(4)} | ${r.ok ? "PASS  " : "FAIL  "} | ${time} | ${r.name}${r.ok ? "" : " -- " + r.error.split("\n")[0]}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  console.log(`\n${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

process.on("exit", () => {
  if (running && running.proc && !running.exited) running.proc.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
