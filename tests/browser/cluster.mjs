// Cluster mode with the real SDK in headless Chromium: Redis (Debian's redis-server, started
// here on 127.0.0.1) and three antenna nodes on loopback sharing it; the SDK publishes to node 1
// and plays the stream from nodes 2 and 3, which relay it from node 1 (one relay per edge),
// and decodes frames on both; when the publisher stops, the edge players get play_finished.
// Then a conference spanning nodes: a member publishes with mainTrack = room on node 1, another
// on node 2, and a room player on each node (trackList excluding its own member, as
// conference-room.html does) decodes the other node's member.
//
// Meant to run inside a loopback-only network namespace (run.sh makes one). Environment:
// ANTENNA_BIN (path of the antenna binary), CHROMIUM (default /usr/bin/chromium),
// REDIS_SERVER (default redis-server).

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
const REDIS = process.env.REDIS_SERVER || "redis-server";
const APP = "WebRTCAppEE";
const SECRET = "browser-cluster-test";

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
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

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

function httpStatus(port, pathname) {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: pathname }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
      .on("error", () => resolve(0));
  });
}

/** A child process whose output goes to a log file and is kept in memory. */
class Proc {
  constructor(name, cmd, args) {
    this.name = name;
    this.lines = [];
    this.exited = null;
    const out = fs.createWriteStream(path.join(ARTIFACTS, `cluster-${name}.log`));
    log(`starting ${name}: ${cmd} ${args.join(" ")}`);
    this.proc = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" },
    });
    for (const s of [this.proc.stdout, this.proc.stderr]) {
      s.on("data", (chunk) => {
        out.write(chunk);
        for (const line of chunk.toString().split("\n")) if (line.trim()) this.lines.push(line);
      });
    }
    this.proc.on("exit", (code, signal) => {
      this.exited = { code, signal };
      out.end();
    });
  }

  count(needle) {
    return this.lines.filter((l) => l.includes(needle)).length;
  }

  kill() {
    if (!this.exited) this.proc.kill("SIGKILL");
  }
}

async function startNode(id, redisPort) {
  const port = await freePort();
  const udp = await freeUdpPort();
  const p = new Proc(id, ANTENNA, [
    "--listen", `127.0.0.1:${port}`,
    "--udp", `127.0.0.1:${udp}`,
    "--announce-ip", "127.0.0.1",
    "--cluster", `redis://127.0.0.1:${redisPort}/0`,
    "--node-id", id,
    "--cluster-secret", SECRET,
  ]);
  p.port = port;
  p.ws = `ws://127.0.0.1:${port}/${APP}/websocket`;
  await waitUntil(`${id} ready`, 20000, async () => {
    if (p.exited) throw new Error(`${id} exited: ${p.lines.slice(-20).join("\n")}`);
    return (await httpStatus(port, "/readyz")) === 200;
  });
  return p;
}

const ASSETS = {
  "/sdk.html": [path.join(HERE, "page/sdk.html"), "text/html"],
  "/stubs.js": [path.join(HERE, "page/stubs.js"), "text/javascript"],
  "/harness.js": [path.join(HERE, "page/harness.js"), "text/javascript"],
  "/webrtc_adaptor.js": [
    path.join(HERE, "node_modules/@antmedia/webrtc_adaptor/dist/browser/webrtc_adaptor.js"),
    "text/javascript",
  ],
};

async function startAssetServer() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    const asset = ASSETS[new URL(req.url, "http://x").pathname];
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

async function sdkPage(ctx, assets, ws, label, opts) {
  const page = await ctx.newPage();
  await page.goto(`${assets}/sdk.html`);
  await page.waitForFunction(() => window.E2E && window.webrtc_adaptor);
  await page.evaluate((o) => window.E2E.init(o), { ws, label, ...opts });
  return {
    page,
    call: (method, ...args) => page.evaluate(([m, a]) => window.E2E.adaptor[m](...a), [method, args]),
    stats: (id) => page.evaluate((s) => window.E2E.stats(s), id),
    count: (info, id) => page.evaluate(([i, s]) => window.E2E.count(i, s), [info, id]),
  };
}

/** Video frames decoded per subtrack of a room play (named through idMapping). */
function perTrack(p, room) {
  return p.page.evaluate(async (r) => {
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
}

async function conferenceAcrossNodes(ctx, assets, nodes, figures) {
  const room = "room" + Math.random().toString(36).slice(2, 8);
  const members = nodes.map((n) => `${room}-${n.name}`);
  for (const [i, n] of nodes.entries()) {
    const pub = await sdkPage(ctx, assets, n.ws, `member on ${n.name}`, { localVideo: true });
    await pub.call("publish", members[i], undefined, undefined, undefined, undefined, room);
    await waitUntil(`member publish_started on ${n.name}`, 15000, async () => (await pub.count("publish_started", members[i])) > 0);
  }
  const players = [];
  for (const [i, n] of nodes.entries()) {
    const p = await sdkPage(ctx, assets, n.ws, `room player on ${n.name}`, { playOnly: true });
    const t0 = Date.now();
    await p.call("play", room, undefined, room, ["!" + members[i]]);
    players.push({ p, n, t0, me: members[i], other: members[1 - i] });
  }
  for (const { p, n, t0, me, other } of players) {
    const f = await waitUntil(`${n.name}'s room player decodes ${other}`, 20000, async () => {
      const f = await perTrack(p, room);
      return f["ARDAMSv" + other] >= 30 ? f : null;
    }, 200);
    figures.push(`conference: the room player on ${n.name} decoded 30 frames of ${other} (other node) ${Date.now() - t0} ms after play (${JSON.stringify(f)})`);
    if (("ARDAMSv" + me) in f) throw new Error(`${n.name}'s room player got its own member: ${JSON.stringify(f)}`);
  }
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const others = Object.values(os.networkInterfaces()).flat().filter((a) => !a.internal);
  if (others.length && process.env.E2E_ALLOW_HOST_NETWORK !== "1") {
    console.error("refusing to run: this network namespace has non-loopback interfaces; use run.sh");
    process.exit(2);
  }
  const procs = [];
  process.on("exit", () => procs.forEach((p) => p.kill()));
  const redisPort = await freePort();
  const redis = new Proc("redis", REDIS, [
    "--bind", "127.0.0.1", "--port", String(redisPort), "--save", "", "--appendonly", "no",
  ]);
  procs.push(redis);
  await waitUntil("redis", 10000, () => tcpReady(redisPort));
  const nodes = [];
  for (const id of ["n1", "n2", "n3"]) {
    const n = await startNode(id, redisPort);
    procs.push(n);
    nodes.push(n);
  }
  const assets = await startAssetServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  const figures = [];
  let failure = null;
  try {
    const ctx = await browser.newContext();
    const id = "cluster" + Math.random().toString(36).slice(2, 8);
    const pub = await sdkPage(ctx, assets.url, nodes[0].ws, "publisher on n1", { localVideo: true });
    await pub.call("publish", id);
    await waitUntil("publish_started on n1", 15000, async () => (await pub.count("publish_started", id)) > 0);
    const players = [];
    for (const n of nodes.slice(1)) {
      const p = await sdkPage(ctx, assets.url, n.ws, `player on ${n.name}`, { playOnly: true, remoteVideo: true });
      const t0 = Date.now();
      await p.page.evaluate(() => window.E2E.mark("play"));
      await p.call("play", id);
      players.push({ p, n, t0 });
    }
    // Both at once: firstFrame polls the page, so it must be watching when the frame comes.
    const firsts = await Promise.all(
      players.map(({ p }) => p.page.evaluate(([s, t]) => window.E2E.firstFrame(s, "play", t), [id, 20000])),
    );
    players.forEach(({ n }, i) => {
      if (firsts[i] < 0) throw new Error(`no frame decoded from ${n.name} within 20 s of play`);
      figures.push(`${n.name}: first frame decoded ${firsts[i]} ms after play`);
    });
    for (const { p, n, t0 } of players) {
      const s = await waitUntil(`frames decoded from ${n.name}`, 20000, async () => {
        const s = await p.stats(id);
        return s.framesDecoded >= 30 && s.audioPackets > 0 ? s : null;
      }, 200);
      figures.push(`${n.name}: ${s.framesDecoded} frames decoded (${s.width}x${s.height}), ${s.audioPackets} audio packets, ${Date.now() - t0} ms after play`);
      const relays = n.count("relay: playing the stream from its origin");
      if (relays !== 1) throw new Error(`${n.name} started ${relays} relays, not 1`);
    }
    const accepted = nodes[0].count("play accepted as an edge's relay");
    if (accepted !== 2) throw new Error(`the origin accepted ${accepted} relays, not 2`);
    figures.push("n1 (origin) accepted 2 relays, one from each edge");
    await pub.call("stop", id);
    for (const { p, n } of players) {
      await waitUntil(`play_finished on ${n.name}`, 10000, async () => (await p.count("play_finished", id)) > 0);
    }
    figures.push("publisher stopped: both edge players got play_finished");
    await conferenceAcrossNodes(ctx, assets.url, nodes.slice(0, 2), figures);
  } catch (e) {
    failure = e;
  } finally {
    await browser.close().catch(() => {});
    assets.server.close();
    procs.forEach((p) => p.kill());
  }
  for (const f of figures) log(f);
  if (failure) {
    log(`FAIL: ${failure.message} (logs: ${ARTIFACTS}/cluster-*.log)`);
    process.exit(1);
  }
  log("PASS: SDK publishes to n1, plays from n2 and n3 through relays; a conference on n1 and n2 sees each other");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
