// Real-browser stream security: headless Chromium + the real AMS SDK (@antmedia/webrtc_adaptor
// 2.16.2) against the antenna binary with one-time token control on for publish and play.
//
// The tokens come from the admin REST API (create the broadcast, then
// GET /WebRTCAppEE/rest/v2/broadcasts/{id}/token?expireDate=...&type=publish|play):
//   1. the SDK publishes with the publish token (publish_started);
//   2. another page plays with the play token and decodes video frames;
//   3. publishing with a wrong token gets the SDK's error callback `unauthorized_access`,
//      and so does playing with a wrong token.
//
// Run like e2e.mjs, inside a loopback-only network namespace (see README.md):
//   ip netns add sec && ip netns exec sec ip link set lo up && \
//   ANTENNA_BIN=target/debug/antenna ip netns exec sec node tests/browser/security.mjs
// Environment: ANTENNA_BIN, CHROMIUM (default /usr/bin/chromium).

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
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ANTENNA = process.env.ANTENNA_BIN || path.join(ROOT, "target/release/antenna");
const APP = "WebRTCAppEE";
const CHROMIUM_FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection", "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);

async function waitUntil(what, timeoutMs, fn, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.on("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The admin REST token the server wrote into its data directory at its first start. */
let adminToken = "";

/** One HTTP request to the REST API, with the admin token; resolves to { status, json }. */
function rest(base, method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? "" : JSON.stringify(body);
    const req = http.request(`${base}${p}`, {
      method,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(data),
        authorization: `Bearer ${adminToken}`,
      },
    }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on("error", reject);
    req.end(data);
  });
}

async function startAntenna() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "antenna-security-"));
  const cfg = path.join(tmp, "antenna.toml");
  fs.writeFileSync(cfg, `[apps.${APP}]\npublishTokenControlEnabled = true\nplayTokenControlEnabled = true\n`);
  const port = await freePort();
  const udp = await freeUdpPort();
  const args = ["--listen", `127.0.0.1:${port}`, "--udp", `127.0.0.1:${udp}`, "--announce-ip", "127.0.0.1",
    "--config", cfg, "--data-dir", path.join(tmp, "data")];
  log(`starting ${ANTENNA} ${args.join(" ")}`);
  const proc = spawn(ANTENNA, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "info" } });
  const lines = [];
  for (const s of [proc.stdout, proc.stderr]) s.on("data", (c) => lines.push(...c.toString().split("\n").filter(Boolean)));
  let exited = null;
  proc.on("exit", (code, signal) => (exited = { code, signal }));
  await waitUntil("antenna readiness line", 15000, async () => {
    if (exited) throw new Error(`antenna exited ${JSON.stringify(exited)}:\n${lines.join("\n")}`);
    return lines.some((l) => l.includes("antenna listening on"));
  });
  adminToken = fs.readFileSync(path.join(tmp, "data", "admin-token"), "utf8").trim();
  return {
    proc, lines, tmp,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/${APP}/websocket`,
    stop: () => { if (!exited) proc.kill("SIGTERM"); },
  };
}

async function startAssets() {
  const port = await freePort();
  const assets = {
    "/sdk.html": [path.join(HERE, "page/sdk.html"), "text/html"],
    "/stubs.js": [path.join(HERE, "page/stubs.js"), "text/javascript"],
    "/harness.js": [path.join(HERE, "page/harness.js"), "text/javascript"],
    "/webrtc_adaptor.js": [path.join(HERE, "node_modules/@antmedia/webrtc_adaptor/dist/browser/webrtc_adaptor.js"), "text/javascript"],
  };
  const server = http.createServer((req, res) => {
    const a = assets[new URL(req.url, "http://x").pathname];
    if (!a) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": a[1], "cache-control": "no-store" });
    fs.createReadStream(a[0]).pipe(res);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${port}` };
}

async function sdkPage(ctx, assets, wsUrl, label, opts) {
  const page = await ctx.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${assets}/sdk.html`);
  await page.waitForFunction(() => window.E2E && window.webrtc_adaptor);
  await page.evaluate((o) => window.E2E.init(o), { ws: wsUrl, label, ...opts });
  return {
    page, label, consoleLines,
    call: (m, ...a) => page.evaluate(([mm, aa]) => window.E2E.adaptor[mm](...aa), [m, a]),
    errors: () => page.evaluate(() => window.E2E.errors.map((e) => e.error)),
    count: (info, id) => page.evaluate(([i, s]) => window.E2E.count(i, s), [info, id]),
    stats: (id) => page.evaluate((s) => window.E2E.stats(s), id),
  };
}

async function token(base, id, type) {
  const expire = Math.floor(Date.now() / 1000) + 600;
  const r = await rest(base, "GET", `/${APP}/rest/v2/broadcasts/${id}/token?expireDate=${expire}&type=${type}`);
  if (r.status !== 200 || !r.json || !r.json.tokenId) throw new Error(`token ${type}: ${r.status} ${r.text}`);
  return r.json.tokenId;
}

async function main() {
  const antenna = await startAntenna();
  const assets = await startAssets();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  const results = [];
  const check = (name, ok, detail) => {
    results.push({ name, ok, detail });
    log(`${ok ? "PASS" : "FAIL"} ${name}${detail ? ": " + detail : ""}`);
  };
  try {
    const ctx = await browser.newContext();
    const id = "sec" + Math.random().toString(36).slice(2, 8);
    const created = await rest(antenna.http, "POST", `/${APP}/rest/v2/broadcasts/create`, { streamId: id });
    if (created.status !== 200) throw new Error(`create: ${created.status} ${created.text}`);
    const pubToken = await token(antenna.http, id, "publish");
    const playToken = await token(antenna.http, id, "play");

    // 1. Publish with the publish token.
    const pub = await sdkPage(ctx, assets.url, antenna.ws, "publisher", { localVideo: true });
    await pub.call("publish", id, pubToken);
    await waitUntil("publish_started", 20000, async () => (await pub.count("publish_started", id)) > 0);
    check("SDK publishes with a valid one-time token", true, "publish_started");
    const rec = await rest(antenna.http, "GET", `/${APP}/rest/v2/broadcasts/${id}`);
    check("REST shows the stream broadcasting", rec.json && rec.json.status === "broadcasting", rec.json && rec.json.status);

    // 2. Play with the play token: frames decoded.
    const player = await sdkPage(ctx, assets.url, antenna.ws, "player", { playOnly: true, remoteVideo: true });
    await player.call("play", id, playToken);
    const s = await waitUntil("frames decoded", 20000, async () => {
      const st = await player.stats(id);
      return st.framesDecoded > 0 ? st : null;
    }, 200);
    check("SDK plays with a valid play token", s.framesDecoded > 0, `framesDecoded ${s.framesDecoded}, ${s.width}x${s.height}`);

    // 3. Wrong tokens: the SDK's error callback gets unauthorized_access.
    const id2 = id + "b";
    await rest(antenna.http, "POST", `/${APP}/rest/v2/broadcasts/create`, { streamId: id2 });
    const bad = await sdkPage(ctx, assets.url, antenna.ws, "bad-publisher", { localVideo: true });
    await bad.call("publish", id2, "wrong-token");
    const errs = await waitUntil("unauthorized_access on publish", 10000, async () => {
      const e = await bad.errors();
      return e.includes("unauthorized_access") ? e : null;
    });
    check("publish with a wrong token -> unauthorized_access", true, errs.join(","));
    const badPlayer = await sdkPage(ctx, assets.url, antenna.ws, "bad-player", { playOnly: true, remoteVideo: true });
    await badPlayer.call("play", id, "wrong-token");
    const errs2 = await waitUntil("unauthorized_access on play", 10000, async () => {
      const e = await badPlayer.errors();
      return e.includes("unauthorized_access") ? e : null;
    });
    check("play with a wrong token -> unauthorized_access", true, errs2.join(","));
  } catch (e) {
    check("security case", false, e.stack || String(e));
    console.log("--- antenna log tail ---\n" + antenna.lines.slice(-30).join("\n"));
  } finally {
    await browser.close().catch(() => {});
    assets.server.close();
    antenna.stop();
    await sleep(500);
    fs.rmSync(antenna.tmp, { recursive: true, force: true });
  }
  const failed = results.filter((r) => !r.ok);
  console.log(`\nsecurity.mjs: ${results.length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
