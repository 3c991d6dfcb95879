// WHIP and WHEP with clients that are not Antenna's, in headless Chromium against the antenna
// binary (see README.md, "WHIP and WHEP"):
//   case 1: AMS's own whip.html (unchanged, from the SDK package) publishes with its WHIP client,
//           npm @eyevinn/whip-web-client 1.1.2; the AMS SDK plays the stream (frames decoded);
//           the page's Stop (the client's DELETE) ends it: the SDK player gets play_finished.
//   case 2: the AMS SDK publishes; the WHEP player of npm @eyevinn/webrtc-player 0.13.0 plays it
//           (frames decoded); its unload (DELETE) ends the resource, the publisher goes on.
//   case 3: GStreamer's webrtcbin (gst_whip.py, Debian's GStreamer 1.22) publishes over WHIP;
//           the AMS SDK plays it (frames decoded); its DELETE ends it (play_finished). libnice
//           gathers no loopback candidates, so this case runs only with WHIP_HOST set to a
//           non-loopback address of the namespace (run.sh: a veth pair, 10.213.0.1).
// Pages are served by request routing under the antenna server's origin (as samples.mjs does),
// so whip.html computes its WHIP endpoint (http://<host>/WebRTCAppEE/whip/<id>) unchanged. The
// npm clients are ES modules with bare imports: esbuild bundles each into one module here; the
// esm.sh URL whip.html imports is answered with that bundle (no CDN is reachable).
//
// Meant to run inside a loopback-only network namespace (run.sh makes one). Environment:
// ANTENNA_BIN, CHROMIUM, WHIP_ONLY (comma-separated case numbers), WHIP_HOST (the address
// antenna listens on and announces; 127.0.0.1 unless set).

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const ARTIFACTS = path.join(HERE, "artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ANTENNA = process.env.ANTENNA_BIN || path.join(ROOT, "target/release/antenna");
const APP = "WebRTCAppEE";
const HOST = process.env.WHIP_HOST || "127.0.0.1";
const NM = path.join(HERE, "node_modules");
const WEBAPP = path.join(NM, "@antmedia/webrtc_adaptor/src/main/webapp");
const WHIP_CLIENT_URL = "https://esm.sh/@eyevinn/whip-web-client@1.1.2/dist/whip-client.modern.js";

const CHROMIUM_FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection", "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
  "--disable-features=LocalNetworkAccessChecks", "--autoplay-policy=no-user-gesture-required",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`[whip ${new Date().toISOString().slice(11, 23)}]`, ...a);

async function waitUntil(what, timeoutMs, fn, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- antenna

class Antenna {
  async start() {
    this.port = await freePort();
    this.udpPort = await freePort();
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "antenna-whip-"));
    this.lines = [];
    this.exited = null;
    const args = [
      "--listen", `${HOST}:${this.port}`, "--udp", `${HOST}:${this.udpPort}`,
      "--announce-ip", HOST, "--data-dir", path.join(this.dataDir, "data"),
    ];
    const out = fs.createWriteStream(path.join(ARTIFACTS, "antenna-whip.log"));
    log(`starting ${ANTENNA} ${args.join(" ")}`);
    this.proc = spawn(ANTENNA, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.ANTENNA_LOG || "info" } });
    for (const s of [this.proc.stdout, this.proc.stderr]) {
      s.on("data", (chunk) => {
        out.write(chunk);
        for (const line of chunk.toString().split("\n")) if (line.trim()) this.lines.push(line);
      });
    }
    this.proc.on("exit", (code, signal) => { this.exited = { code, signal }; out.end(); });
    await waitUntil("antenna to listen", 15000, async () => {
      if (this.exited) throw new Error(`antenna exited: ${this.lines.slice(-20).join("\n")}`);
      return this.lines.some((l) => l.includes("antenna listening on"));
    }, 50);
    this.origin = `http://${HOST}:${this.port}`;
  }

  count(needle) {
    return this.lines.filter((l) => l.includes(needle)).length;
  }

  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill("SIGTERM");
    for (let i = 0; i < 100 && !this.exited; i++) await sleep(50);
    if (!this.exited) this.proc.kill("SIGKILL");
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- what is served where

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };

async function bundle(entry) {
  const r = await esbuild.build({
    entryPoints: [entry], bundle: true, format: "esm", write: false, platform: "browser",
    logLevel: "silent",
  });
  return r.outputFiles[0].text;
}

/** Serves whip.html and the SDK's files under the antenna origin, the npm clients' bundles,
 *  and a small SDK page for the players and publishers of the cases. */
async function routes(ctx, origin) {
  const whipClient = await bundle(path.join(NM, "@eyevinn/whip-web-client/dist/whip-client.modern.js"));
  const whepPlayer = await bundle(path.join(NM, "@eyevinn/webrtc-player/dist/main.js"));
  const files = {
    [`/${APP}/whip.html`]: path.join(WEBAPP, "whip.html"),
    // page/sdk.html loads these from the root.
    "/webrtc_adaptor.js": path.join(NM, "@antmedia/webrtc_adaptor/dist/browser/webrtc_adaptor.js"),
    "/stubs.js": path.join(HERE, "page/stubs.js"),
    "/harness.js": path.join(HERE, "page/harness.js"),
    "/__test/sdk.html": path.join(HERE, "page/sdk.html"),
  };
  const inline = {
    "/__test/whep-player.js": whepPlayer,
    "/__test/whep.html": `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><video id="v" autoplay playsinline muted width="320" height="240"></video>
<script type="module">
import player from "/__test/whep-player.js"; // a CommonJS build, bundled: its exports object
window.WebRTCPlayer = player.WebRTCPlayer;
window.ready = true;
</script></body></html>`,
  };
  await ctx.route((url) => url.href === WHIP_CLIENT_URL, (route) =>
    route.fulfill({ status: 200, contentType: "text/javascript", body: whipClient }));
  await ctx.route((url) => url.origin === origin, async (route) => {
    const p = new URL(route.request().url()).pathname;
    if (p === "/favicon.ico") return route.fulfill({ status: 204, body: "" });
    if (inline[p] !== undefined) {
      return route.fulfill({ status: 200, contentType: TYPES[path.extname(p)] || "text/html", body: inline[p] });
    }
    let file = files[p];
    if (!file && p.startsWith(`/${APP}/js/`)) {
      // What AMS's build copies into webapp/js: the SDK's ES build.
      const base = path.join(NM, "@antmedia/webrtc_adaptor/dist/es");
      const f = path.join(base, p.slice(`/${APP}/js/`.length));
      if (f.startsWith(base + path.sep)) file = f;
    }
    if (file) {
      if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: "not found" });
      return route.fulfill({ status: 200, contentType: TYPES[path.extname(file)] || "application/octet-stream", body: fs.readFileSync(file) });
    }
    return route.continue(); // the antenna server itself: WHIP/WHEP, WebSocket
  });
}

// ---------------------------------------------------------------- SDK pages

async function sdkPage(ctx, env, label, opts) {
  const page = await ctx.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${label} ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`${label} pageerror: ${e.message}`));
  env.consoles.push(consoleLines);
  await page.goto(`${env.antenna.origin}/__test/sdk.html`);
  await page.waitForFunction(() => window.E2E && window.webrtc_adaptor);
  await page.evaluate((o) => window.E2E.init(o), { ws: `ws://${HOST}:${env.antenna.port}/${APP}/websocket`, label, ...opts });
  return page;
}

const sdkStats = (page, id) => page.evaluate((s) => window.E2E.stats(s), id);
const sdkCount = (page, info, id) => page.evaluate(([i, s]) => window.E2E.count(i, s), [info, id]);

async function waitFrames(what, timeoutMs, read, min = 10) {
  return waitUntil(what, timeoutMs, async () => {
    const s = await read();
    return s.framesDecoded >= min && s.audioPackets > 0 ? s : null;
  });
}

// ---------------------------------------------------------------- cases

const CASES = [
  [1, "AMS whip.html with @eyevinn/whip-web-client publishes; the AMS SDK plays it", async (ctx, env, figures) => {
    const id = `whipcase${Date.now() % 100000}`;
    const page = await ctx.newPage();
    const lines = [];
    page.on("console", (m) => lines.push(`whip.html ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => lines.push(`whip.html pageerror: ${e.message}`));
    env.consoles.push(lines);
    await page.goto(`${env.antenna.origin}/${APP}/whip.html?id=${id}`);
    await page.waitForFunction(() => !document.getElementById("button").disabled, null, { timeout: 15000 });
    await page.click("#button");
    await waitUntil("whip.html status connected", 20000, async () =>
      (await page.textContent("#status")) === "connected");
    figures.push(`whip.html: ICE connected (${env.antenna.count("whip/whep resource created")} resource created)`);
    const player = await sdkPage(ctx, env, "sdk-player", { playOnly: true, remoteVideo: true });
    // The stream goes live once its media arrives; the SDK retries play on no_stream_exist.
    await waitUntil("the SDK player to get the WHIP stream", 20000, async () => {
      const s = await sdkStats(player, id);
      if (s.exists) return true;
      await player.evaluate((s) => window.E2E.adaptor.play(s), id);
      await sleep(800);
      return false;
    }, 100);
    const s = await waitFrames("SDK player frames of the WHIP stream", 20000, () => sdkStats(player, id));
    figures.push(`SDK player: ${s.framesDecoded} frames decoded (${s.width}x${s.height}), ${s.audioPackets} audio packets`);
    // Stop on the page: the client's DELETE ends the publish.
    await page.click("#button");
    await waitUntil("play_finished at the SDK player", 10000, async () => (await sdkCount(player, "play_finished", id)) > 0);
    await waitUntil("the resource ended in the server log", 5000, async () => env.antenna.count("whip/whep resource ended") > 0);
    figures.push("whip.html Stop: DELETE ended the publish; the SDK player got play_finished");
  }],
  [2, "the AMS SDK publishes; @eyevinn/webrtc-player (WHEP) plays it", async (ctx, env, figures) => {
    const id = `whepcase${Date.now() % 100000}`;
    const publisher = await sdkPage(ctx, env, "sdk-publisher", { localVideo: true });
    await publisher.evaluate((s) => window.E2E.adaptor.publish(s), id);
    await waitUntil("publish_started", 15000, async () => (await sdkCount(publisher, "publish_started", id)) > 0);
    const page = await ctx.newPage();
    const lines = [];
    page.on("console", (m) => lines.push(`whep ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => lines.push(`whep pageerror: ${e.message}`));
    env.consoles.push(lines);
    await page.goto(`${env.antenna.origin}/__test/whep.html`);
    await page.waitForFunction(() => window.ready === true);
    const endpoint = `${env.antenna.origin}/${APP}/whep/${id}`;
    await page.evaluate(async (url) => {
      const video = document.getElementById("v");
      window.player = new window.WebRTCPlayer({ video, type: "whep", iceServers: [], debug: true });
      await window.player.load(new URL(url));
    }, endpoint);
    const read = () => page.evaluate(async () => {
      const out = { framesDecoded: 0, audioPackets: 0, width: 0, height: 0 };
      const pc = window.player && window.player.peer;
      if (!pc) return out;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") {
          out.framesDecoded += s.framesDecoded || 0;
          out.width = s.frameWidth || out.width;
          out.height = s.frameHeight || out.height;
        } else out.audioPackets += s.packetsReceived || 0;
      });
      return out;
    });
    const s = await waitFrames("WHEP player frames", 20000, read);
    figures.push(`WHEP player: ${s.framesDecoded} frames decoded (${s.width}x${s.height}), ${s.audioPackets} audio packets`);
    const before = env.antenna.count("whip/whep resource ended");
    await page.evaluate(() => window.player.unload());
    await waitUntil("the WHEP resource ended", 10000, async () => env.antenna.count("whip/whep resource ended") > before);
    const p = await sdkStats(publisher, id);
    if (await sdkCount(publisher, "publish_finished", id)) throw new Error("the publisher ended with the WHEP player");
    figures.push(`WHEP unload: DELETE ended the play; the publisher goes on (ICE ${p.ice || "n/a"})`);
  }],
  [3, "GStreamer webrtcbin (gst_whip.py) publishes over WHIP; the AMS SDK plays it", async (ctx, env, figures) => {
    const id = `gstcase${Date.now() % 100000}`;
    const endpoint = `${env.antenna.origin}/${APP}/whip/${id}`;
    const gst = { lines: [], exited: null };
    const t0 = Date.now();
    gst.proc = spawn("/usr/bin/python3", [path.join(HERE, "gst_whip.py"), endpoint, "60"], { stdio: ["ignore", "pipe", "pipe"] });
    env.consoles.push(gst.lines);
    for (const st of [gst.proc.stdout, gst.proc.stderr]) {
      st.on("data", (chunk) => {
        for (const line of chunk.toString().split("\n")) if (line.trim()) gst.lines.push(`gst_whip.py: ${line}`);
      });
    }
    gst.proc.on("exit", (code, signal) => { gst.exited = { code, signal }; });
    try {
      await waitUntil("gst_whip.py whip-created 201", 20000, async () => {
        if (gst.exited) throw new Error(`gst_whip.py exited ${JSON.stringify(gst.exited)}`);
        return gst.lines.some((l) => l.includes("whip-created 201"));
      });
      figures.push(`gst_whip.py: 201 Created after ${Date.now() - t0} ms`);
      const player = await sdkPage(ctx, env, "sdk-player", { playOnly: true, remoteVideo: true });
      await waitUntil("the SDK player to get the GStreamer stream", 20000, async () => {
        if (gst.exited) throw new Error(`gst_whip.py exited ${JSON.stringify(gst.exited)}`);
        const s = await sdkStats(player, id);
        if (s.exists) return true;
        await player.evaluate((s) => window.E2E.adaptor.play(s), id);
        await sleep(800);
        return false;
      }, 100);
      let last = null;
      const s = await waitFrames("SDK player frames of the GStreamer stream", 20000, async () => (last = await sdkStats(player, id)))
        .catch((e) => { throw new Error(`${e.message} (last stats ${JSON.stringify(last)})`); });
      figures.push(`SDK player: ${s.framesDecoded} frames decoded (${s.width}x${s.height}), ${s.audioPackets} audio packets`);
      // SIGTERM: the client stops and DELETEs its resource.
      gst.proc.kill("SIGTERM");
      await waitUntil("gst_whip.py to exit", 10000, async () => gst.exited);
      if (gst.exited.code !== 0 || !gst.lines.some((l) => l.includes("whip-deleted 200"))) {
        throw new Error(`gst_whip.py ended badly: ${JSON.stringify(gst.exited)}`);
      }
      await waitUntil("play_finished at the SDK player", 10000, async () => (await sdkCount(player, "play_finished", id)) > 0);
      figures.push("gst_whip.py DELETE (200) ended the publish; the SDK player got play_finished");
    } finally {
      if (!gst.exited) gst.proc.kill("SIGKILL");
    }
  }, { needsHost: true }],
];

// ---------------------------------------------------------------- main

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const only = process.env.WHIP_ONLY ? new Set(process.env.WHIP_ONLY.split(",").map(Number)) : null;
  const env = { antenna: new Antenna(), consoles: [] };
  const results = [];
  let skipped = 0;
  let browser;
  try {
    await env.antenna.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    for (const [num, name, fn, opts] of CASES) {
      if (only && !only.has(num)) continue;
      if (opts && opts.needsHost && HOST.startsWith("127.")) {
        log(`case ${num}: skipped (needs WHIP_HOST, a non-loopback address: run.sh sets it)`);
        skipped++;
        continue;
      }
      log(`case ${num}: ${name}`);
      const ctx = await browser.newContext();
      await routes(ctx, env.antenna.origin);
      env.consoles = [];
      const figures = [];
      const t0 = Date.now();
      let error = null;
      try {
        await Promise.race([fn(ctx, env, figures), sleep(90000).then(() => { throw new Error("case timed out"); })]);
      } catch (e) {
        error = e;
      }
      for (const f of figures) log(`  ${f}`);
      if (error) {
        log(`  FAIL: ${error.message}`);
        for (const c of env.consoles) for (const l of c.slice(-20)) console.log(`  ${l.slice(0, 300)}`);
        console.log(env.antenna.lines.slice(-30).join("\n"));
      }
      results.push({ num, name, ok: !error, ms: Date.now() - t0, error: error ? error.message : "" });
      log(`case ${num}: ${error ? "FAIL" : "PASS"} (${Date.now() - t0} ms)`);
      await ctx.close().catch(() => {});
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await env.antenna.stop();
  }
  console.log("\nSummary (whip.mjs)");
  for (const r of results) console.log(`${String(r.num).padStart(4)} | ${r.ok ? "PASS" : "FAIL"} | ${(r.ms / 1000).toFixed(1)} s | ${r.name}${r.ok ? "" : " -- " + r.error}`);
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  // Nothing run counts as a failure, unless every selected case was skipped here by design.
  process.exit(failed || (results.length === 0 && skipped === 0) ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
