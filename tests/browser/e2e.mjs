// Real-browser end-to-end tests: headless Chromium + the real AMS SDK
// (@antmedia/webrtc_adaptor 2.16.2) and Antenna's own demo pages against the antenna binary.
// (Over 600 lines: every case drives the same server, asset server, harness pages and summary
// table; a split would repeat that set-up in each file.)
//
// Meant to run inside a loopback-only network namespace (run.sh makes one). This script starts
// the antenna server and a small asset server (SDK bundle + harness pages) on free 127.0.0.1
// ports, runs the cases one after the other, prints figures and a summary table, and exits
// non-zero if any case fails.
//
// Environment: ANTENNA_BIN (path of the antenna binary), CHROMIUM (default /usr/bin/chromium),
// E2E_ONLY (comma-separated case numbers to run, e.g. "0,1,7"), E2E_DUMP=1 (write every page's
// WebSocket frames and console to artifacts/ even when a case passes), E2E_ALLOW_HOST_NETWORK=1 to run
// outside a namespace (not recommended: Chromium then offers non-loopback candidates).

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import http from "node:http";
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

// Flags from shared/protocol/BROWSER.md. Playwright adds --headless and a fresh temporary
// --user-data-dir of its own for every launch.
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
  "--allow-loopback-in-peer-connection",
  // Several pages share one browser: keep their timers and decoders running.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

// ---------------------------------------------------------------- small utilities

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function log(...args) {
  const ts = new Date().toISOString().slice(11, 23);
  console.log(`[${ts}]`, ...args);
}

/** Polls `fn` until it returns a truthy value; throws `what` on timeout. */
async function waitUntil(what, timeoutMs, fn, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    sock.on("error", reject);
    sock.bind(0, "127.0.0.1", () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

function tcpReady(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

function uid(prefix) {
  return prefix + Math.random().toString(36).slice(2, 8);
}

/** The interfaces of this network namespace other than loopback. */
function nonLoopbackAddresses() {
  return Object.entries(os.networkInterfaces())
    .flatMap(([name, addrs]) => addrs.map((a) => ({ name, ...a })))
    .filter((a) => !a.internal);
}

// ---------------------------------------------------------------- the antenna server

class Antenna {
  constructor() {
    this.lines = [];
    this.exited = null;
  }

  /** Starts the server; a restart keeps the ports (and appends to the log). */
  async start() {
    if (!fs.existsSync(ANTENNA)) throw new Error(`antenna binary not found at ${ANTENNA}`);
    const restart = this.port !== undefined;
    if (!restart) {
      this.port = await freePort();
      this.udpPort = await freeUdpPort();
      // The datastore lives in a fresh directory for this run and survives a restart (case 11).
      this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "antenna-e2e-"));
    }
    this.exited = null;
    const args = antennaArgs(this.port, this.udpPort, path.join(this.dataDir, "data"));
    this.logFile = path.join(ARTIFACTS, "antenna.log");
    const out = fs.createWriteStream(this.logFile, { flags: restart ? "a" : "w" });
    log(`starting ${ANTENNA} ${args.join(" ")}`);
    this.proc = spawn(ANTENNA, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" },
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      stream.on("data", (chunk) => {
        out.write(chunk);
        for (const line of chunk.toString().split("\n")) {
          if (line.trim()) this.lines.push(line);
        }
        if (this.lines.length > 5000) this.lines.splice(0, 1000);
      });
    }
    const proc = this.proc;
    proc.on("exit", (code, signal) => {
      if (this.proc === proc) this.exited = { code, signal };
      out.end();
    });
    await waitUntil(`antenna to listen on 127.0.0.1:${this.port}`, 15000, async () => {
      if (this.exited) {
        throw new Error(`antenna exited (${JSON.stringify(this.exited)}):\n${this.tail(30)}`);
      }
      return tcpReady(this.port);
    });
    this.http = `http://127.0.0.1:${this.port}`;
    this.ws = `ws://127.0.0.1:${this.port}/${APP}/websocket`;
    log(`antenna is up: ${this.ws}`);
  }

  /** Log lines written since `mark` (an index from `this.lines.length`). */
  since(mark, max = 40) {
    return this.lines.slice(mark).slice(-max).join("\n");
  }

  tail(n = 40) {
    return this.lines.slice(-n).join("\n");
  }

  assertAlive() {
    if (this.exited) throw new Error(`antenna died (${JSON.stringify(this.exited)})`);
  }

  /** SIGTERM (graceful shutdown), SIGKILL after 5 s; resolves when the process has exited. */
  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill("SIGTERM");
    const deadline = Date.now() + 5000;
    while (!this.exited && Date.now() < deadline) await sleep(50);
    if (!this.exited) {
      this.proc.kill("SIGKILL");
      while (!this.exited) await sleep(50);
    }
  }

  /** Removes this run's datastore directory. */
  removeData() {
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Command line for the antenna binary: HTTP/WebSocket on 127.0.0.1:<port>, media on UDP
 * 127.0.0.1:<udpPort>, host candidates announcing 127.0.0.1, the datastore in `dataDir`.
 * ANTENNA_ARGS replaces it (with {port}, {udp} and {data} placeholders).
 */
function antennaArgs(port, udpPort, dataDir) {
  if (process.env.ANTENNA_ARGS) {
    return process.env.ANTENNA_ARGS.replaceAll("{port}", port).replaceAll("{udp}", udpPort)
      .replaceAll("{data}", dataDir).split(/\s+/);
  }
  return [
    "--listen", `127.0.0.1:${port}`,
    "--udp", `127.0.0.1:${udpPort}`,
    "--announce-ip", "127.0.0.1",
    "--data-dir", dataDir,
  ];
}

// ---------------------------------------------------------------- the asset server

const SDK_BUNDLE = path.join(HERE, "node_modules/@antmedia/webrtc_adaptor/dist/browser/webrtc_adaptor.js");
const ASSETS = {
  "/sdk.html": [path.join(HERE, "page/sdk.html"), "text/html"],
  "/stubs.js": [path.join(HERE, "page/stubs.js"), "text/javascript"],
  "/harness.js": [path.join(HERE, "page/harness.js"), "text/javascript"],
  "/webrtc_adaptor.js": [SDK_BUNDLE, "text/javascript"],
};

async function startAssetServer() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url, "http://x").pathname;
    const asset = ASSETS[pathname];
    if (pathname === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (!asset) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": asset[1], "cache-control": "no-store" });
    fs.createReadStream(asset[0]).pipe(res);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${port}` };
}

// ---------------------------------------------------------------- pages

/** One browser page running the SDK through page/harness.js. */
class SdkPage {
  static async open(ctx, env, label) {
    const p = new SdkPage();
    p.label = label;
    p.env = env;
    p.console = [];
    p.page = await ctx.newPage();
    p.page.on("console", (m) => p.pushConsole(`${m.type()}: ${m.text()}`));
    p.page.on("pageerror", (e) => p.pushConsole(`pageerror: ${e.message}`));
    await p.page.goto(`${env.assets}/sdk.html`);
    await p.page.waitForFunction(() => window.E2E && window.webrtc_adaptor);
    return p;
  }

  pushConsole(line) {
    this.console.push(line);
    if (this.console.length > 400) this.console.splice(0, 100);
  }

  /** Creates the SDK adaptor; opts: playOnly, localVideo, remoteVideo, conference, video (constraints). */
  async init(opts = {}) {
    await this.page.evaluate((o) => window.E2E.init(o), { ws: this.env.antenna.ws, label: this.label, ...opts });
  }

  /** Calls adaptor[method](...args) in the page. */
  async call(method, ...args) {
    await this.page.evaluate(([m, a]) => window.E2E.adaptor[m](...a), [method, args]);
  }

  eval(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  stats(streamId) {
    return this.page.evaluate((id) => window.E2E.stats(id), streamId);
  }

  count(info, streamId) {
    return this.page.evaluate(([i, s]) => window.E2E.count(i, s), [info, streamId]);
  }

  errors() {
    return this.page.evaluate(() => window.E2E.errors.map((e) => e.error + (e.streamId ? `(${e.streamId})` : "")));
  }

  /** Waits for video frames and audio packets on the peer connection for streamId. */
  async waitMedia(streamId, timeoutMs, minFrames = 1) {
    return waitUntil(`${this.label}: frames decoded and audio packets for ${streamId}`, timeoutMs, async () => {
      this.env.antenna.assertAlive();
      const s = await this.stats(streamId);
      return s.framesDecoded >= minFrames && s.audioPackets > 0 ? s : null;
    }, 200);
  }

  async waitIceConnected(streamId, timeoutMs) {
    return waitUntil(`${this.label}: ICE connected for ${streamId}`, timeoutMs, async () => {
      this.env.antenna.assertAlive();
      const s = await this.stats(streamId);
      return s.ice === "connected" || s.ice === "completed";
    }, 100);
  }

  /** Writes every recorded WebSocket frame and console line of this page to `file`. */
  async dumpWebSocket(file) {
    try {
      const frames = await this.page.evaluate(() => window.__ws);
      const lines = frames.map((f) => JSON.stringify(f)).concat(this.console.map((c) => JSON.stringify({ console: c })));
      fs.writeFileSync(file, lines.join("\n") + "\n");
    } catch (e) {
      // The page is gone: nothing to dump.
    }
  }

  async diagnostics() {
    let ws = [];
    let errs = [];
    try {
      ws = await this.page.evaluate(() => window.__ws.slice(-25));
      errs = await this.errors();
    } catch (e) {
      ws = [{ t: 0, dir: "?", text: `page unavailable: ${e.message}` }];
    }
    return [
      `--- ${this.label}: SDK error callbacks: ${errs.join(", ") || "none"}`,
      `--- ${this.label}: last WebSocket frames:`,
      ...ws.map((f) => `  ${String(f.t).padStart(6)} ${f.dir.padEnd(6)} ${f.text.slice(0, 300)}`),
      `--- ${this.label}: last console lines:`,
      ...this.console.slice(-15).map((l) => "  " + l.slice(0, 300)),
    ].join("\n");
  }
}

/** A publisher page: SDK in publish mode with the fake camera; waits for ICE connected. */
async function publisher(ctx, env, streamId, label = "publisher") {
  const p = await SdkPage.open(ctx, env, label);
  env.pages.push(p);
  await p.init({ localVideo: true });
  await p.call("publish", streamId);
  await p.waitIceConnected(streamId, 15000);
  return p;
}

/** A player page: SDK in play mode with a remote video element; `play` is not called yet. */
async function playerPage(ctx, env, label = "player") {
  const p = await SdkPage.open(ctx, env, label);
  env.pages.push(p);
  await p.init({ playOnly: true, remoteVideo: true });
  return p;
}

/** Marks the time, calls play, and returns ms until the first decoded frame (-1 on timeout). */
async function playAndTimeFirstFrame(p, streamId, timeoutMs) {
  await p.eval(() => window.E2E.mark("play"));
  await p.call("play", streamId);
  return p.eval(([id, t]) => window.E2E.firstFrame(id, "play", t), [streamId, timeoutMs]);
}

// ---------------------------------------------------------------- cases

const CASES = [];
function testCase(num, name, timeoutMs, fn) {
  CASES.push({ num, name, timeoutMs, fn });
}

testCase(0, "signalling: SDK connects, ping/pong, getIceServerConfig", 30000, async (ctx, env, figures) => {
  const p = await SdkPage.open(ctx, env, "sdk");
  env.pages.push(p);
  await p.init({ playOnly: true });
  // The SDK pings every 3 s; wait for the first pong and the ICE config answer.
  const frames = await waitUntil("pong and iceServerConfig", 8000, async () => {
    const ws = await p.eval(() => window.__ws);
    const inCmds = ws.filter((f) => f.dir === "in").map((f) => JSON.parse(f.text).command);
    return inCmds.includes("pong") && inCmds.includes("iceServerConfig") ? ws : null;
  });
  const opened = frames.find((f) => f.dir === "open").text;
  if (!/\/WebRTCAppEE\/websocket\?target=edge$/.test(new URL(opened).pathname + new URL(opened).search)) {
    throw new Error(`unexpected WebSocket URL ${opened}`);
  }
  const cfg = JSON.parse(frames.find((f) => f.dir === "in" && f.text.includes("iceServerConfig")).text);
  figures.push(`iceServerConfig: ${JSON.stringify(cfg)}`);
  // An unknown stream gets no_stream_exist; the SDK reports it through its error callback.
  await p.call("play", uid("missing"));
  await waitUntil("error no_stream_exist", 5000, async () => (await p.errors()).some((e) => e.startsWith("no_stream_exist")));
  figures.push("play of an unknown stream -> no_stream_exist");
});

testCase(1, "SDK publish + SDK play: video and audio decoded", 60000, async (ctx, env, figures) => {
  const id = uid("e2e1");
  const pub = await publisher(ctx, env, id);
  const player = await playerPage(ctx, env);
  const firstFrameMs = await playAndTimeFirstFrame(player, id, 15000);
  if (firstFrameMs < 0) throw new Error("no video frame decoded within 15 s of play");
  const s1 = await player.waitMedia(id, 10000);
  await sleep(3000);
  const s2 = await player.stats(id);
  const fps = ((s2.framesDecoded - s1.framesDecoded) / 3).toFixed(1);
  if (s2.framesDecoded <= s1.framesDecoded) throw new Error("video stopped after the first frames");
  if (s2.audioPackets <= s1.audioPackets) throw new Error("audio packets stopped arriving");
  figures.push(`play -> first frame: ${firstFrameMs} ms`);
  figures.push(`frames decoded: ${s2.framesDecoded} (${fps} fps over 3 s), ${s2.width}x${s2.height}, audio packets: ${s2.audioPackets}`);
  // Chromium negotiates AES-GCM SRTP, so what it decoded was sealed by Antenna's fast path
  // (rtc-core/src/fast.rs), not by str0m: the transport's cipher and the server's counter.
  const cipher = await player.eval(async (sid) => {
    const pc = window.E2E.adaptor.remotePeerConnection[sid];
    let c = null;
    (await pc.getStats()).forEach((s) => { if (s.type === "transport" && s.srtpCipher) c = s.srtpCipher; });
    return c;
  }, id);
  const token = fs.readFileSync(path.join(env.antenna.dataDir, "data", "admin-token"), "utf8").trim();
  const metrics = await (await fetch(`${env.antenna.http}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).text();
  const fastPlayers = Number((metrics.match(/^antenna_sfu_fast_path_players_total (\d+)/m) || [])[1]);
  figures.push(`player SRTP cipher: ${cipher}; antenna_sfu_fast_path_players_total ${fastPlayers}`);
  if (!/GCM/.test(cipher || "") || !(fastPlayers >= 1)) {
    throw new Error(`the player's RTP did not take the fast path (cipher ${cipher}, fast-path players ${fastPlayers})`);
  }
  figures.push(`play_started callbacks: ${await player.count("play_started", id)}, publish_started: ${await pub.count("publish_started", id)}`);
  // bitrateMeasurement carries the player's own estimate (REMB, rtc-core/src/remb.rs): on
  // this link it is above video + audio, which the SDK reads as "bandwidth is fine".
  const bm = await waitUntil("a bitrateMeasurement with targetBitrate above video+audio", 20000, async () => {
    const ws = await player.eval(() => window.__ws);
    const all = ws.filter((f) => f.dir === "in" && f.text.includes("bitrateMeasurement")).map((f) => JSON.parse(f.text));
    const good = all.find((m) => m.targetBitrate > m.videoBitrate + m.audioBitrate && m.videoBitrate > 0);
    return good ? { good, all } : null;
  }, 500);
  figures.push(`bitrateMeasurement: ${bm.all.map((m) => `target ${m.targetBitrate} / video ${m.videoBitrate} + audio ${m.audioBitrate}`).join("; ")}`);
});

testCase(2, "two players; a late joiner gets a picture within 2 s", 60000, async (ctx, env, figures) => {
  const id = uid("e2e2");
  await publisher(ctx, env, id);
  const p1 = await playerPage(ctx, env, "player1");
  const first1 = await playAndTimeFirstFrame(p1, id, 15000);
  if (first1 < 0) throw new Error("player1 decoded no frame within 15 s");
  await sleep(3000); // join late: well after the publisher's first keyframe
  const p2 = await playerPage(ctx, env, "player2");
  const first2 = await playAndTimeFirstFrame(p2, id, 10000);
  figures.push(`player1 first frame: ${first1} ms; late player2 first frame: ${first2 < 0 ? "none" : first2 + " ms"}`);
  if (first2 < 0) throw new Error("the late player decoded no frame within 10 s");
  if (first2 > 2000) throw new Error(`the late player's first frame took ${first2} ms (> 2000)`);
  const a = await p1.stats(id);
  await sleep(1500);
  const b = await p1.stats(id);
  if (b.framesDecoded <= a.framesDecoded) throw new Error("player1 stopped decoding after player2 joined");
  figures.push(`player1 frames: ${b.framesDecoded}, player2 frames: ${(await p2.stats(id)).framesDecoded}`);
});

testCase(3, "publisher stops -> player gets play_finished", 60000, async (ctx, env, figures) => {
  const id = uid("e2e3");
  const pub = await publisher(ctx, env, id);
  const player = await playerPage(ctx, env);
  if ((await playAndTimeFirstFrame(player, id, 15000)) < 0) throw new Error("player decoded no frame within 15 s");
  const t0 = Date.now();
  await pub.call("stop", id);
  await waitUntil("play_finished on the player", 5000, async () => (await player.count("play_finished", id)) > 0, 50);
  figures.push(`publisher stop -> player play_finished: ${Date.now() - t0} ms`);
  figures.push(`publisher got publish_finished: ${(await pub.count("publish_finished", id)) > 0}`);
});

testCase(4, "toggleVideo false stops the player's video, true resumes it within 1 s (3 cycles)", 90000, async (ctx, env, figures) => {
  // Resuming must not depend on luck (rtc-core/src/resume.rs): video is held back until a
  // keyframe, which is asked for at once and again every 500 ms. Three cycles, each bounded.
  const RESUME_BOUND_MS = 1000;
  const id = uid("e2e4");
  await publisher(ctx, env, id);
  const player = await playerPage(ctx, env);
  if ((await playAndTimeFirstFrame(player, id, 15000)) < 0) throw new Error("player decoded no frame within 15 s");
  await player.waitMedia(id, 5000, 10);
  const resumes = [];
  for (let cycle = 1; cycle <= 3; cycle++) {
    await player.call("toggleVideo", id, id, false);
    await sleep(1000); // frames already in flight or in the jitter buffer
    const off1 = await player.stats(id);
    await sleep(cycle === 1 ? 3000 : 1500 + 700 * cycle);
    const off2 = await player.stats(id);
    const grewWhileOff = off2.framesDecoded - off1.framesDecoded;
    figures.push(`cycle ${cycle}: video off: +${grewWhileOff} frames (audio +${off2.audioPackets - off1.audioPackets} packets)`);
    if (grewWhileOff > 2) throw new Error(`framesDecoded grew by ${grewWhileOff} after toggleVideo false`);
    if (off2.audioPackets <= off1.audioPackets) throw new Error("audio stopped too after toggleVideo false");
    const t0 = Date.now();
    await player.call("toggleVideo", id, id, true);
    await waitUntil(`cycle ${cycle}: a frame decoded after toggleVideo true`, 8000, async () => {
      const s = await player.stats(id);
      return s.framesDecoded > off2.framesDecoded ? s : null;
    }, 20);
    const firstMs = Date.now() - t0;
    const on = await waitUntil("frames to keep growing", 5000, async () => {
      const s = await player.stats(id);
      return s.framesDecoded > off2.framesDecoded + 5 ? s : null;
    }, 50);
    resumes.push(firstMs);
    figures.push(`cycle ${cycle}: video on: first frame after ${firstMs} ms, +5 frames after ${Date.now() - t0} ms (total ${on.framesDecoded})`);
  }
  figures.push(`resume times: ${resumes.join(", ")} ms (bound ${RESUME_BOUND_MS} ms)`);
  const slow = resumes.filter((ms) => ms > RESUME_BOUND_MS);
  if (slow.length) throw new Error(`video resumed later than ${RESUME_BOUND_MS} ms: ${resumes.join(", ")} ms`);
});

testCase(5, "conference: three joinRoom pages each decode the other two", 90000, async (ctx, env, figures) => {
  const room = uid("room");
  const ids = [uid("c1"), uid("c2"), uid("c3")];
  const pages = [];
  for (const [i, id] of ids.entries()) {
    const p = await SdkPage.open(ctx, env, `member${i + 1}`);
    env.pages.push(p);
    pages.push(p);
    await p.init({ localVideo: true, conference: true });
    // Poll getRoomInfo every 5 s as the SDK's conference sample does. (A 3 s poll lands in step
    // with the SDK's 3 s watchdog, which then can stop a play just sent: case 10 covers that.)
    await p.eval(([r, s]) => window.E2E.joinRoom(r, s, 5000), [room, id]);
    await sleep(500);
  }
  const t0 = Date.now();
  for (const [i, p] of pages.entries()) {
    for (const other of ids.filter((x) => x !== ids[i])) {
      const s = await p.waitMedia(other, 45000);
      figures.push(`${p.label} <- ${other}: ${s.framesDecoded} frames, ${s.audioPackets} audio packets`);
    }
  }
  figures.push(`all six media paths decoding ${Date.now() - t0} ms after the third join`);
  for (const p of pages) await p.eval(() => window.E2E.stopConference());
});

testCase(6, "peer-to-peer: two pages join one id and decode each other", 60000, async (ctx, env, figures) => {
  const id = uid("p2p");
  const a = await SdkPage.open(ctx, env, "peerA");
  const b = await SdkPage.open(ctx, env, "peerB");
  env.pages.push(a, b);
  await a.init({ localVideo: true, remoteVideo: true });
  await b.init({ localVideo: true, remoteVideo: true });
  await a.call("join", id);
  await waitUntil("peerA joined", 5000, async () => (await a.count("joined")) > 0);
  const t0 = Date.now();
  await b.call("join", id);
  const sa = await a.waitMedia(id, 20000);
  const sb = await b.waitMedia(id, 20000);
  figures.push(`both decoding ${Date.now() - t0} ms after the second join`);
  figures.push(`peerA: ${sa.framesDecoded} frames, ${sa.audioPackets} audio packets; peerB: ${sb.framesDecoded} frames, ${sb.audioPackets} audio packets`);
  const t1 = Date.now();
  await b.call("leave", id);
  await waitUntil("peerA's peer connection closed by the server's stop", 5000, async () => !(await a.stats(id)).exists);
  figures.push(`peerB leave -> peerA stop: ${Date.now() - t1} ms`);
});

testCase(7, "demo pages: publish.html + play.html", 60000, async (ctx, env, figures) => {
  const id = uid("demo");
  const pub = await ctx.newPage();
  const play = await ctx.newPage();
  const consoleLines = [];
  for (const [name, pg] of [["publish.html", pub], ["play.html", play]]) {
    pg.on("console", (m) => consoleLines.push(`${name} ${m.type()}: ${m.text()}`));
    pg.on("pageerror", (e) => consoleLines.push(`${name} pageerror: ${e.message}`));
  }
  env.extraDiagnostics = () => consoleLines.slice(-30).join("\n");
  // The viewer comes first: it gets no_stream_exist and asks again every 3 s until the stream is live.
  for (const [pg, file] of [[play, "play.html"], [pub, "publish.html"]]) {
    const resp = await pg.goto(`${env.antenna.http}/${file}?id=${id}&autostart=1`);
    if (!resp || resp.status() !== 200) throw new Error(`GET /${file} -> ${resp ? resp.status() : "no response"}`);
    if (file === "play.html") {
      await waitUntil("play.html to report no_stream_exist", 5000, async () => (await play.textContent("#state")) === "error: no_stream_exist");
    }
  }
  const t0 = Date.now();
  const frames = await waitUntil("play.html #frames > 0", 20000, async () => {
    env.antenna.assertAlive();
    const n = Number(await play.textContent("#frames"));
    return n > 0 ? n : null;
  }, 200);
  const firstMs = Date.now() - t0;
  await sleep(2000);
  const later = Number(await play.textContent("#frames"));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await pub.screenshot({ path: path.join(ARTIFACTS, "demo-publish.png"), fullPage: true });
  await play.screenshot({ path: path.join(ARTIFACTS, "demo-play.png"), fullPage: true });
  figures.push(`play.html (opened before the stream existed) decoding ${firstMs} ms after publish.html opened`);
  figures.push(`play.html frames decoded: ${frames} at first, ${later} two seconds later; state "${await play.textContent("#state")}"`);
  figures.push("screenshots: tests/browser/artifacts/demo-publish.png, demo-play.png");
  if (later <= frames) throw new Error("play.html frames stopped growing");
  const idx = await ctx.newPage();
  const r = await idx.goto(`${env.antenna.http}/`);
  const links = await idx.$$eval("a", (as) => as.map((a) => a.getAttribute("href")));
  if (r.status() !== 200 || !links.includes("publish.html")) throw new Error("index page does not link the demo pages");
});

testCase(8, "demo pages: p2p.html pair and conference.html pair", 90000, async (ctx, env, figures) => {
  const consoleLines = [];
  env.extraDiagnostics = () => consoleLines.slice(-40).join("\n");
  async function open(file, query, name) {
    const pg = await ctx.newPage();
    pg.on("console", (m) => consoleLines.push(`${name} ${m.type()}: ${m.text()}`));
    pg.on("pageerror", (e) => consoleLines.push(`${name} pageerror: ${e.message}`));
    const resp = await pg.goto(`${env.antenna.http}/${file}?${query}&autostart=1`);
    if (!resp || resp.status() !== 200) throw new Error(`GET /${file} -> ${resp ? resp.status() : "no response"}`);
    return pg;
  }
  const frames = async (pg) => Number(await pg.textContent("#frames"));

  const id = uid("demop2p");
  const a = await open("p2p.html", `id=${id}`, "p2pA");
  await waitUntil("p2pA joined", 5000, async () => (await a.textContent("#state")) === "waiting for a peer");
  const b = await open("p2p.html", `id=${id}`, "p2pB");
  await waitUntil("both p2p pages decoding", 20000, async () => (await frames(a)) > 0 && (await frames(b)) > 0, 200);
  figures.push(`p2p.html: A ${await frames(a)} frames, B ${await frames(b)} frames`);
  await a.screenshot({ path: path.join(ARTIFACTS, "demo-p2p.png"), fullPage: true });
  await b.click("#leave");
  await waitUntil("p2pA told that B left", 5000, async () => (await a.textContent("#state")).startsWith("peer left"));
  await a.close();
  await b.close();

  const room = uid("demoroom");
  const c1 = await open("conference.html", `room=${room}&id=${uid("m1")}`, "conf1");
  await waitUntil("conf1 in the room", 5000, async () => (await c1.textContent("#state")).startsWith("in room"));
  const c2 = await open("conference.html", `room=${room}&id=${uid("m2")}`, "conf2");
  // Each page polls getRoomInfo every 3 s and plays the other member.
  await waitUntil("both conference pages decoding", 30000, async () => (await frames(c1)) > 0 && (await frames(c2)) > 0, 250);
  figures.push(`conference.html: member1 ${await frames(c1)} frames, member2 ${await frames(c2)} frames`);
  await c2.screenshot({ path: path.join(ARTIFACTS, "demo-conference.png"), fullPage: true });
});

testCase(9, "publisher answer is receive-only: the SDK raises no exception", 30000, async (ctx, env, figures) => {
  // A page with no remote video element (as every conference page) makes the SDK look up
  // idMapping in ontrack; a publish answer that offers to send media fires ontrack on the
  // publisher's peer connection, where there is no idMapping, and the SDK throws.
  const id = uid("e2e9");
  const pub = await publisher(ctx, env, id);
  await sleep(1000);
  const frames = await pub.eval(() => window.__ws);
  const answer = frames.find((f) => f.dir === "in" && f.text.includes('"type":"answer"'));
  if (!answer) throw new Error("no takeConfiguration answer seen by the publisher");
  const sdp = JSON.parse(answer.text).sdp; // m-lines and directions, kept by page/stubs.js
  figures.push(`publish answer: ${sdp}`);
  const media = sdp.split(/ (?=m=)/).filter((m) => /^m=(audio|video)/.test(m));
  const sending = media.filter((m) => /a=(sendrecv|sendonly)/.test(m));
  const thrown = pub.console.filter((l) => l.startsWith("pageerror"));
  if (sending.length) throw new Error(`the answer to a publisher offers to send on ${sending.length} m-line(s): ${sending.join(" | ")}; SDK exceptions: ${thrown.join("; ") || "none"}`);
  if (thrown.length) throw new Error(`SDK exceptions on the publisher page: ${thrown.join("; ")}`);
});

testCase(10, "SDK retry pattern: play, stop at once, play again 500 ms later", 40000, async (ctx, env, figures) => {
  // The SDK's watchdog stops a play whose ICE has not started and plays again 500 ms later; it
  // checks every stream it plays at once, so a play that has just been sent can be stopped before
  // the server's offer arrives. That offer then reaches the SDK after its `stop`: the SDK builds a
  // peer connection from it and answers it, and must still get media from the next play.
  const id = uid("e2e10");
  await publisher(ctx, env, id);
  const player = await playerPage(ctx, env);
  await player.eval((sid) => {
    const a = window.E2E.adaptor;
    a.play(sid);
    a.stop(sid); // before the server's offer can arrive
    window.E2E.mark("play");
    setTimeout(() => a.play(sid), 500);
  }, id);
  const first = await player.eval(([sid, t]) => window.E2E.firstFrame(sid, "play", t), [id, 15000]);
  const errs = await player.errors();
  figures.push(`first frame ${first < 0 ? "never" : first + " ms"} after the stop; SDK error callbacks: ${errs.join(", ") || "none"}`);
  if (first < 0) throw new Error(`no frame decoded within 15 s of the replay; SDK errors: ${errs.join(", ") || "none"}`);
});

/** Waits until `p` got a data_received callback matching `pred`. */
async function waitData(p, what, timeoutMs, pred) {
  return waitUntil(`${p.label}: ${what}`, timeoutMs, async () => {
    p.env.antenna.assertAlive();
    const data = await p.eval(() => window.E2E.data);
    return data.find(pred) || null;
  }, 50);
}

async function waitChannel(p, streamId, timeoutMs) {
  await waitUntil(`${p.label}: data_channel_opened for ${streamId}`, timeoutMs, async () => {
    p.env.antenna.assertAlive();
    return (await p.count("data_channel_opened", streamId)) > 0;
  }, 50);
}

testCase(12, "data channel: sendData text and binary reach two players; a player answers", 60000, async (ctx, env, figures) => {
  const id = uid("dc");
  const pub = await publisher(ctx, env, id);
  await waitChannel(pub, id, 10000);
  const players = [await playerPage(ctx, env, "player1"), await playerPage(ctx, env, "player2")];
  for (const p of players) {
    await p.call("play", id);
    await waitChannel(p, id, 15000);
  }
  const t0 = Date.now();
  await pub.call("sendData", id, "hello players");
  // 40000 bytes: the SDK sends an 8-byte header and three token-prefixed chunks.
  const sum = await pub.eval(([s, n]) => window.E2E.sendBinary(s, n), [id, 40000]);
  for (const p of players) {
    await waitData(p, "the publisher's text", 5000, (d) => d.text === "hello players");
    await waitData(p, "the publisher's 40000-byte binary", 5000, (d) => d.bytes === 40000 && d.sum === sum);
  }
  figures.push(`publisher sendData -> both players got the text and the 40000-byte binary (reassembled, same byte sum) in ${Date.now() - t0} ms`);
  // dataChannelPlayerDistribution defaults to `all`: the publisher and the other player.
  const t1 = Date.now();
  await players[0].call("sendData", id, "hello from player1");
  await waitData(pub, "player1's message", 5000, (d) => d.text === "hello from player1");
  await waitData(players[1], "player1's message", 5000, (d) => d.text === "hello from player1");
  figures.push(`player1 sendData -> publisher and player2 in ${Date.now() - t1} ms`);
  await sleep(300);
  const echoed = (await players[0].eval(() => window.E2E.data)).some((d) => d.text === "hello from player1");
  if (echoed) throw new Error("player1 got its own message back");
  const errs = (await pub.errors()).concat(await players[0].errors(), await players[1].errors());
  if (errs.some((e) => e.startsWith("data_channel_error"))) throw new Error(`data channel errors: ${errs}`);
});

testCase(13, "data-only publish (video:false, audio:false) goes live and exchanges messages", 60000, async (ctx, env, figures) => {
  const id = uid("dconly");
  const pub = await SdkPage.open(ctx, env, "dataPublisher");
  env.pages.push(pub);
  await pub.init({ onlyDataChannel: true });
  const t0 = Date.now();
  await pub.call("publish", id);
  await waitUntil("publish_started for the data-only stream", 8000, async () => (await pub.count("publish_started", id)) > 0, 50);
  figures.push(`data-only publish -> publish_started in ${Date.now() - t0} ms`);
  const sent = (await pub.eval(() => window.__ws)).filter((f) => f.dir === "out").map((f) => JSON.parse(f.text));
  const cmd = sent.find((m) => m.command === "publish");
  if (cmd.video !== false || cmd.audio !== false) throw new Error(`publish command ${JSON.stringify(cmd)}`);
  const player = await playerPage(ctx, env, "dataPlayer");
  await player.call("play", id);
  await waitChannel(player, id, 15000);
  await waitUntil("play_started", 5000, async () => (await player.count("play_started", id)) > 0, 50);
  const offer = (await player.eval(() => window.__ws)).find((f) => f.dir === "in" && f.text.includes('"takeConfiguration"'));
  if (!offer || /m=(audio|video)/.test(offer.text) || !offer.text.includes("m=application")) {
    throw new Error(`the player's offer should carry only m=application: ${offer && offer.text.slice(0, 300)}`);
  }
  const t1 = Date.now();
  await pub.call("sendData", id, "reading: 21.5");
  await waitData(player, "the publisher's message", 5000, (d) => d.text === "reading: 21.5");
  await player.call("sendData", id, "ack");
  await waitData(pub, "the player's message", 5000, (d) => d.text === "ack");
  figures.push(`publisher -> player -> publisher round trip ${Date.now() - t1} ms`);
  await sleep(11000 - (Date.now() - t0)); // past webRTCClientStartTimeoutMs
  if ((await pub.errors()).some((e) => e.startsWith("publishTimeoutError"))) throw new Error("publishTimeoutError on a live data-only stream");
  figures.push("no publishTimeoutError after 11 s");
});

testCase(11, "server restart: the SDK's publisher and player come back by themselves", 60000, async (ctx, env, figures) => {
  // Graceful stop sends server_will_stop and closes the WebSockets; the SDK then stops and, 500 ms
  // later, publishes and plays again on new connections. The server comes back on the same ports.
  const id = uid("e2e11");
  const pub = await publisher(ctx, env, id);
  const player = await playerPage(ctx, env);
  if ((await playAndTimeFirstFrame(player, id, 15000)) < 0) throw new Error("player decoded no frame within 15 s");
  const before = await player.count("play_started", id);
  const t0 = Date.now();
  await env.antenna.stop();
  const down = Date.now() - t0;
  await env.antenna.start();
  const t1 = Date.now();
  await waitUntil("a new play session (play_started) after the restart", 30000, async () => (await player.count("play_started", id)) > before, 100);
  const s = await player.waitMedia(id, 15000);
  figures.push(`graceful stop took ${down} ms; player decoding again ${Date.now() - t1} ms after the restart (${s.framesDecoded} frames on the new connection)`);
  figures.push(`publisher callbacks: server_will_stop ${await pub.count("server_will_stop")}, closed ${await pub.count("closed")}, reconnection_attempt_for_publisher ${await pub.count("reconnection_attempt_for_publisher")}`);
});

testCase(14, "multitrack: a room player decodes two subtracks; a leaver is muted, a newcomer reuses its m-lines", 90000, async (ctx, env, figures) => {
  // The 2.16 conference way: each member publishes with mainTrack = room; one page plays the
  // room in one peer connection (idMapping names each track ARDAMSv<id>/ARDAMSa<id>).
  const room = uid("mt");
  const ids = [uid("mtA"), uid("mtB")];
  const pubs = [];
  for (const [i, id] of ids.entries()) {
    const p = await SdkPage.open(ctx, env, `subtrack${i + 1}`);
    env.pages.push(p);
    await p.init({ localVideo: true });
    await p.call("publish", id, undefined, undefined, undefined, undefined, room);
    await p.waitIceConnected(id, 15000);
    pubs.push(p);
  }
  const player = await SdkPage.open(ctx, env, "roomPlayer");
  env.pages.push(player);
  await player.init({ playOnly: true });
  await player.eval(() => {
    window.MT = { tracks: [], muted: [] };
    window.E2E.adaptor.addEventListener((info, obj) => {
      if (info !== "newTrackAvailable") return;
      window.MT.tracks.push({ trackId: obj.trackId, kind: obj.track.kind });
      obj.track.onmute = () => window.MT.muted.push(obj.trackId);
    });
  });
  const t0 = Date.now();
  await player.call("play", room, undefined, room, []);
  // Video decoded per subtrack: inbound-rtp entries grouped by mid, named through idMapping.
  const perTrack = () => player.eval(async (r) => {
    const a = window.E2E.adaptor;
    const pc = a.remotePeerConnection[r];
    const out = {};
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.mid !== undefined) {
        out[a.idMapping[r][s.mid]] = s.framesDecoded || 0;
      }
    });
    return out;
  }, room);
  const want = ids.map((id) => "ARDAMSv" + id);
  const first = await waitUntil("both subtracks' video decoded by the room player", 20000, async () => {
    env.antenna.assertAlive();
    const f = await perTrack();
    return want.every((k) => f[k] > 0) ? f : null;
  }, 200);
  figures.push(`room play -> both subtracks decoding: ${Date.now() - t0} ms (${JSON.stringify(first)})`);
  const tracks = await player.eval(() => window.MT.tracks);
  for (const id of ids) {
    for (const k of ["ARDAMSv", "ARDAMSa"]) {
      if (!tracks.some((t) => t.trackId === k + id)) throw new Error(`no newTrackAvailable for ${k}${id}: ${JSON.stringify(tracks)}`);
    }
  }
  // The second subtrack stops: the server renegotiates, its tracks are muted, the first goes on.
  const t1 = Date.now();
  await pubs[1].call("stop", ids[1]);
  await waitUntil("the leaver's video track muted", 10000, async () => (await player.eval(() => window.MT.muted)).includes("ARDAMSv" + ids[1]), 100);
  figures.push(`subtrack stop -> its track muted on the room player: ${Date.now() - t1} ms`);
  const a = await perTrack();
  await sleep(1500);
  const b = await perTrack();
  if (!(b[want[0]] > a[want[0]])) throw new Error(`the remaining subtrack stopped decoding: ${JSON.stringify([a, b])}`);
  figures.push(`remaining subtrack frames ${a[want[0]]} -> ${b[want[0]]} in 1.5 s`);
  // A third member arrives: it takes the leaver's m-lines (no new transceiver), the SDK fires
  // newTrackAvailable with its name, and its video decodes.
  const lines = () => player.eval((r) => window.E2E.adaptor.remotePeerConnection[r].getTransceivers().length, room);
  const before = await lines();
  const third = uid("mtC");
  const p3 = await SdkPage.open(ctx, env, "subtrack3");
  env.pages.push(p3);
  await p3.init({ localVideo: true });
  const t2 = Date.now();
  await p3.call("publish", third, undefined, undefined, undefined, undefined, room);
  await waitUntil("the newcomer's video decoded by the room player", 20000, async () => {
    env.antenna.assertAlive();
    return (await perTrack())["ARDAMSv" + third] > 0;
  }, 200);
  figures.push(`newcomer publish -> decoding on the room player: ${Date.now() - t2} ms`);
  const tracks2 = await player.eval(() => window.MT.tracks);
  if (!tracks2.some((t) => t.trackId === "ARDAMSv" + third)) throw new Error(`no newTrackAvailable for the newcomer: ${JSON.stringify(tracks2)}`);
  const after = await lines();
  figures.push(`transceivers on the room player: ${before} before the newcomer, ${after} after (m-lines reused)`);
  if (after !== before) throw new Error(`m-lines grew from ${before} to ${after} instead of being reused`);
  const offers = (await player.eval(() => window.__ws)).filter((f) => f.dir === "in" && f.text.includes('"type":"offer"')).length;
  figures.push(`server offers on the room player's connection: ${offers}`);
});

testCase(15, "Last-N: a room player with setMaxVideoTrackCount 1 gets one videoTrack0 slot; assignVideoTrack switches it without renegotiation", 90000, async (ctx, env, figures) => {
  // Three members publish with mainTrack = room at different resolutions (the fake camera
  // follows the constraints; exact 16:9 sizes are refused with OverconstrainedError), so the
  // player can tell by frameWidth whom the slot shows.
  const room = uid("ln");
  const members = [
    { id: uid("lnA"), width: 160, height: 120 },
    { id: uid("lnB"), width: 320, height: 240 },
    { id: uid("lnC"), width: 240, height: 180 },
  ];
  for (const [i, m] of members.entries()) {
    const p = await SdkPage.open(ctx, env, `member${i + 1}`);
    env.pages.push(p);
    await p.init({ localVideo: true, video: { width: m.width, height: m.height } });
    await p.call("publish", m.id, undefined, undefined, undefined, undefined, room);
    await p.waitIceConnected(m.id, 15000);
    // Keep the size (the encoder scales down under CPU load or a low bandwidth estimate; a
    // 640x480 member arrived as 320x240 on this shared machine, hence the small sizes).
    await p.eval(async (id) => {
      const pc = window.E2E.adaptor.remotePeerConnection[id];
      for (const sender of pc.getSenders()) {
        if (!sender.track || sender.track.kind !== "video") continue;
        const params = sender.getParameters();
        params.degradationPreference = "maintain-resolution";
        await sender.setParameters(params);
      }
    }, m.id);
    m.page = p;
  }
  // What each member sends now: the encoder may scale down (bandwidth, CPU), so the slot is
  // compared with the sender's current outbound frameWidth, which must be unique to it.
  const sentWidth = (m) => m.page.eval(async (id) => {
    const pc = window.E2E.adaptor.remotePeerConnection[id];
    let w = 0;
    if (pc) (await pc.getStats()).forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "video") w = s.frameWidth || w; });
    return w;
  }, m.id);
  // Let the encoders ramp up to their sizes (they start scaled down) before playing.
  const distinct = await waitUntil("the members sending three different sizes", 15000, async () => {
    const w = await Promise.all(members.map(sentWidth));
    return new Set(w).size === members.length && !w.includes(0) ? w : null;
  }, 250).catch(() => null);
  figures.push(`members' sent widths before the play: ${distinct ? distinct.join(", ") : "not distinct within 15 s"}`);
  const player = await SdkPage.open(ctx, env, "lastN");
  env.pages.push(player);
  await player.init({ playOnly: true });
  await player.eval(() => {
    window.LN = { events: [], answers: [] };
    window.E2E.adaptor.addEventListener((info, obj) => {
      if (info === "data_received") {
        try {
          const e = JSON.parse(obj.data);
          if (e.eventType === "VIDEO_TRACK_ASSIGNMENT_LIST") window.LN.events.push(e.payload);
        } catch (_) { /* chat or binary */ }
      }
      if (info === "videoTrackAssignmentList") window.LN.answers.push(obj.payload);
    });
  });
  await player.call("play", room, undefined, room, []);
  await waitUntil("play_started on the room player", 15000, async () => (await player.count("play_started")) > 0, 100);
  const t0 = Date.now();
  await player.call("setMaxVideoTrackCount", room, 1);
  // The video m-lines the player receives on, and what decodes on each.
  const video = () => player.eval(async (r) => {
    const a = window.E2E.adaptor;
    const pc = a.remotePeerConnection[r];
    const out = { lines: [], decoded: {} };
    if (!pc) return out;
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === "video" && (t.currentDirection === "recvonly" || t.currentDirection === "sendrecv")) {
        out.lines.push(a.idMapping[r][t.mid]);
      }
    }
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.mid !== undefined) {
        out.decoded[a.idMapping[r][s.mid]] = { frames: s.framesDecoded || 0, width: s.frameWidth || 0 };
      }
    });
    return out;
  }, room);
  const lastEvent = async () => (await player.eval(() => window.LN.events)).at(-1) || null;
  let lastSeen = null;
  const showing = async (id, minFrames = 0) => {
    const m = members.find((x) => x.id === id);
    const widths = await Promise.all(members.map(sentWidth));
    const mine = widths[members.indexOf(m)];
    const v = await video();
    lastSeen = { want: id, widths, lines: v.lines, slot: v.decoded["ARDAMSvvideoTrack0"], event: await lastEvent() };
    // The encoder may have scaled a member down to another's size: then the width cannot
    // tell them apart, and only consistency is checked (the figures say which).
    if (!mine) return null;
    lastSeen.unique = widths.filter((w) => w === mine).length === 1;
    const slot = v.decoded["ARDAMSvvideoTrack0"];
    const ev = await lastEvent();
    if (v.lines.length !== 1 || v.lines[0] !== "ARDAMSvvideoTrack0") return null;
    if (!ev || ev.length !== 1 || ev[0].videoLabel !== "videoTrack0" || ev[0].trackId !== id) return null;
    return slot && slot.frames > minFrames && slot.width === mine ? { ...slot, unique: lastSeen.unique } : null;
  };
  const first = await waitUntil("one videoTrack0 slot decoding the announced member", 20000, async () => {
    env.antenna.assertAlive();
    const ev = await lastEvent();
    return ev && ev.length === 1 ? showing(ev[0].trackId) : null;
  }, 200);
  const assigned = (await lastEvent())[0].trackId;
  figures.push(`setMaxVideoTrackCount 1 -> one slot decoding ${assigned} (${first.width} px wide): ${Date.now() - t0} ms`);
  await player.call("requestVideoTrackAssignments", room);
  const answer = await waitUntil("videoTrackAssignmentList", 5000, async () => (await player.eval(() => window.LN.answers)).at(-1), 100);
  if (answer.length !== 1 || answer[0].trackId !== assigned) throw new Error(`videoTrackAssignmentList ${JSON.stringify(answer)} != ${assigned}`);
  const offers = async () => (await player.eval(() => window.__ws)).filter((f) => f.dir === "in" && f.text.includes('"type":"offer"')).length;
  const offersBefore = await offers();
  // Pin each of the others in turn, then the first again (the SDK's
  // assignVideoTrack(videoTrackId, streamId, enabled)).
  const order = members.filter((x) => x.id !== assigned);
  order.push(members.find((x) => x.id === assigned));
  let told = 0;
  for (const m of order) {
    const before = (await video()).decoded["ARDAMSvvideoTrack0"].frames;
    const t1 = Date.now();
    await player.call("assignVideoTrack", "videoTrack0", m.id, true);
    const now = await waitUntil(`the slot showing ${m.id} (sent at ${m.width} px)`, 10000, async () => {
      env.antenna.assertAlive();
      return showing(m.id, before);
    }, 100).catch((e) => { throw new Error(`${e.message}; last seen ${JSON.stringify(lastSeen)}`); });
    figures.push(`assignVideoTrack -> slot decoding ${m.id} (${now.width} px wide${now.unique ? ", only it sends that size" : ", size shared after encoder scaling"}): ${Date.now() - t1} ms (frames ${before} -> ${now.frames})`);
    told += now.unique ? 1 : 0;
    if (!(now.frames > before)) throw new Error(`frames stopped: ${before} -> ${now.frames}`);
  }
  if (told < 2) throw new Error(`only ${told} switches could be told apart by frame size`);
  const offersAfter = await offers();
  figures.push(`server offers on the player's connection: ${offersBefore} before the switches, ${offersAfter} after`);
  if (offersAfter !== offersBefore) throw new Error(`a slot switch renegotiated (${offersBefore} -> ${offersAfter} offers)`);
});

// ---------------------------------------------------------------- runner

/** An admin REST call to the server under test (the token its first start wrote). */
async function rest(env, method, p, body) {
  const token = fs.readFileSync(path.join(env.antenna.dataDir, "data", "admin-token"), "utf8").trim();
  const r = await fetch(`${env.antenna.http}/${APP}/rest/v2/${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** Calls an SDK query and waits for its answer callback `info` (newer than any before). */
async function ask(p, info, method, ...args) {
  const before = await p.count(info);
  await p.call(method, ...args);
  await waitUntil(`${p.label}: ${info} after ${method}`, 5000, async () => (await p.count(info)) > before);
  return p.eval((i) => window.E2E.last(i), info);
}

testCase(16, "datastore: the SDK reads REST-made records (getBroadcastObject, getSubscriberList, getSubtracks); a subtrack over subtracksLimit is refused", 60000, async (ctx, env, figures) => {
  const main = uid("main");
  const stored = uid("stored");
  await rest(env, "POST", "broadcasts/create", { streamId: stored, name: "Stored subtrack" });
  await rest(env, "POST", "broadcasts/create", { streamId: main, name: "Room", subtracksLimit: 1, plannedStartDate: 1900000000 });
  await rest(env, "POST", `broadcasts/${main}/subtrack?id=${stored}`);
  await rest(env, "POST", `broadcasts/${main}/subscribers`, { subscriberId: "alice", b32Secret: "JBSWY3DPEHPK3PXP", type: "play" });
  const q = await SdkPage.open(ctx, env, "queries");
  env.pages.push(q);
  await q.init({ playOnly: true });
  // A main track made over REST, never live: its stored fields.
  let b = (await ask(q, "broadcastObject", "getBroadcastObject", main)).broadcast;
  if (b.name !== "Room" || b.status !== "created" || b.plannedStartDate !== 1900000000 || b.subtracksLimit !== 1
      || JSON.stringify(b.subTrackStreamIds) !== JSON.stringify([stored])) {
    throw new Error(`stored main track: ${JSON.stringify(b)}`);
  }
  figures.push(`getBroadcastObject(stored main track): status ${b.status}, subTrackStreamIds ${JSON.stringify(b.subTrackStreamIds)}`);
  const subs = (await ask(q, "subscriberList", "getSubscriberList", main, 0, 10)).list;
  if (subs.length !== 1 || subs[0].subscriberId !== "alice" || "b32Secret" in subs[0]) {
    throw new Error(`subscriberList: ${JSON.stringify(subs)}`);
  }
  figures.push(`getSubscriberList: ${JSON.stringify(subs.map((s) => [s.subscriberId, s.type]))}`);
  // A live subtrack takes the one slot; the stored one (not broadcasting) holds none.
  const id1 = uid("sub");
  const p1 = await SdkPage.open(ctx, env, "subtrack1");
  env.pages.push(p1);
  await p1.init({ localVideo: true });
  await p1.call("publish", id1, undefined, undefined, undefined, "one", main);
  await p1.waitIceConnected(id1, 15000);
  await waitUntil("publish_started of the first subtrack", 10000, async () => (await p1.count("publish_started", id1)) > 0);
  b = (await ask(q, "broadcastObject", "getBroadcastObject", main)).broadcast;
  if (b.status !== "broadcasting" || !b.subTrackStreamIds.includes(id1) || !b.subTrackStreamIds.includes(stored)) {
    throw new Error(`main track with a live subtrack: ${JSON.stringify(b)}`);
  }
  const list = (await ask(q, "subtrackList", "getSubtracks", main, null, 0, 10)).list;
  const statuses = Object.fromEntries(list.map((t) => [t.streamId, t.status]));
  if (statuses[stored] !== "created" || statuses[id1] !== "broadcasting") throw new Error(`subtrackList: ${JSON.stringify(list)}`);
  figures.push(`getSubtracks: ${JSON.stringify(statuses)}`);
  const id2 = uid("sub");
  const p2 = await SdkPage.open(ctx, env, "subtrack2");
  env.pages.push(p2);
  await p2.init({ localVideo: true });
  await p2.call("publish", id2, undefined, undefined, undefined, "two", main);
  const limit = "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks";
  await waitUntil(`${limit} to the second subtrack`, 5000, async () => (await p2.errors()).some((e) => e.startsWith(limit)));
  figures.push(`second subtrack over subtracksLimit 1 -> ${limit}`);
  // The first one stops: the slot is free, the second publishes.
  await p1.call("stop", id1);
  await waitUntil("publish_finished of the first subtrack", 10000, async () => (await p1.count("publish_finished", id1)) > 0);
  await p2.call("publish", id2, undefined, undefined, undefined, "two", main);
  await p2.waitIceConnected(id2, 15000);
  figures.push("first subtrack stopped -> the second publishes");
});

async function runCase(browser, env, c) {
  const figures = [];
  const ctx = await browser.newContext({ viewport: { width: 800, height: 600 } });
  env.pages = [];
  env.extraDiagnostics = null;
  const logMark = env.antenna.lines.length;
  const t0 = Date.now();
  let error = null;
  let timer;
  try {
    await Promise.race([
      c.fn(ctx, env, figures),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`case timed out after ${c.timeoutMs} ms`)), c.timeoutMs);
      }),
    ]);
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  const ms = Date.now() - t0;
  for (const f of figures) log(`  ${f}`);
  if (!error && process.env.E2E_DUMP === "1") {
    for (const p of env.pages) await p.dumpWebSocket(path.join(ARTIFACTS, `case${c.num}-${p.label}-ws.jsonl`));
  }
  if (error) {
    log(`  FAIL: ${error.message}`);
    const diag = [];
    for (const p of env.pages) {
      diag.push(await p.diagnostics());
      await p.dumpWebSocket(path.join(ARTIFACTS, `case${c.num}-${p.label}-ws.jsonl`));
    }
    if (env.extraDiagnostics) diag.push("--- demo pages console:\n" + env.extraDiagnostics());
    diag.push(`--- antenna log during the case (last 40 lines; full log: ${env.antenna.logFile}):\n${env.antenna.since(logMark)}`);
    console.log(diag.join("\n"));
  }
  await ctx.close().catch(() => {});
  return { ...c, ok: !error, ms, figures, error: error ? error.message : "" };
}

let runningAntenna = null;

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const others = nonLoopbackAddresses();
  if (others.length && process.env.E2E_ALLOW_HOST_NETWORK !== "1") {
    console.error(`refusing to run: this network namespace has non-loopback interfaces (${others.map((a) => a.name + " " + a.address).join(", ")}).`);
    console.error("Run through run.sh (loopback-only namespace) or set E2E_ALLOW_HOST_NETWORK=1.");
    process.exit(2);
  }
  const only = process.env.E2E_ONLY ? new Set(process.env.E2E_ONLY.split(",").map(Number)) : null;
  const selected = CASES.filter((c) => !only || only.has(c.num));

  const env = { antenna: new Antenna() };
  runningAntenna = env.antenna;
  const assets = await startAssetServer();
  env.assets = assets.url;
  let browser = null;
  const results = [];
  try {
    await env.antenna.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    log(`chromium ${browser.version()}, SDK bundle served from ${env.assets}`);
    for (const c of selected) {
      log(`case ${c.num}: ${c.name}`);
      if (env.antenna.exited) {
        results.push({ ...c, ok: false, ms: 0, figures: [], error: "antenna is not running" });
        continue;
      }
      results.push(await runCase(browser, env, c));
      log(`case ${c.num}: ${results.at(-1).ok ? "PASS" : "FAIL"} (${results.at(-1).ms} ms)`);
    }
  } catch (e) {
    log(`setup failed: ${e.message}`);
    for (const c of selected.filter((c) => !results.some((r) => r.num === c.num))) {
      results.push({ ...c, ok: false, ms: 0, figures: [], error: `setup failed: ${e.message.split("\n")[0]}` });
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await env.antenna.stop();
    env.antenna.removeData();
    assets.server.close();
  }

  console.log("\nSummary");
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

// Never leave the server behind, whatever ends this process.
process.on("exit", () => {
  const proc = runningAntenna && runningAntenna.proc;
  if (proc && !runningAntenna.exited) proc.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
