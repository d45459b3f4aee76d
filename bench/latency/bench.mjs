// Source-to-screen latency, measured in a real browser (run it with bench/latency/run.sh).
//
// Every frame of the test pattern carries its capture wall-clock time as a barcode (and as an
// SEI message). For every frame a player *presents*, the probe (probe-page.js) reads the barcode
// from the pixels and records t − capture time, t = the rendering frame that composites it (same
// machine, same clock). Byte-level viewers record receive time − SEI time. The seeds' pipelines are rebuilt from Debian packages
// and measured in the same run on the same pattern (testsrc = pinhole's TestPattern as Annex B):
//   seed-jmuxer: testsrc (TCP listener) → websockify → nginx → jmuxer page
//   seed-hls:    testsrc → ffmpeg -c copy -f hls (1 s segments, tmpfs) → nginx → hls.js defaults
//   seed-dash:   testsrc → ffmpeg -c copy -f dash -ldash 1 -seg_duration 1 -frag_duration 1
//                -streaming 1 -target_latency 1 (tmpfs) → nginx → dash.js (seed/dash.html)
//
// Usage: node --experimental-websocket bench/latency/bench.mjs [--smoke] [--quick]
//          [--only id,id] [--measure S] [--warm S] [--long S] [--viewers N] [--out DIR]
//   --smoke  ~45 s: every probe must produce numbers; no timing assertions; writes $TMPDIR/pinhole-latency-smoke/
//   --quick  skip the long (steadiness) runs
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startDaemon, launchBrowser, newPage, freePort, sleep, waitFor, repoRoot } from '../../tests/browser/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    measure: { type: 'string' },
    warm: { type: 'string' },
    long: { type: 'string' },
    viewers: { type: 'string' },
    out: { type: 'string' },
    query: { type: 'string' }, // extra query for our UI pages, e.g. mse_tune=0.1,0.12,0.25
    'daemon-args': { type: 'string' }, // extra pinholed arguments, e.g. "--keyframe-interval 30"
  },
});
const SMOKE = opt.smoke;
const WARM_S = Number(opt.warm ?? (SMOKE ? 1 : 5));
const MEASURE_S = Number(opt.measure ?? (SMOKE ? 1.5 : 30));
const LONG_S = SMOKE || opt.quick ? 0 : Number(opt.long ?? 300);
const VIEWERS = Number(opt.viewers ?? (SMOKE ? 3 : 20));
// Smoke runs (CI) write to a temporary directory: nothing in the work tree changes.
const OUT = path.resolve(opt.out ?? (SMOKE ? path.join(os.tmpdir(), 'pinhole-latency-smoke') : path.join(repoRoot, 'bench/results')));
const LOGS = path.join(os.tmpdir(), `pinhole-latency-logs${SMOKE ? '-smoke' : ''}`);
fs.mkdirSync(LOGS, { recursive: true });
fs.mkdirSync(OUT, { recursive: true });
const only = opt.only ? new Set(opt.only.split(',')) : null;
const want = (id) => !only || only.has(id);

const log = (...a) => console.log(`[latency ${new Date().toISOString().slice(11, 19)}]`, ...a);
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

// ---- processes we start (and only those get stopped) --------------------------------------------

const procs = [];
function start(name, cmd, args, opts = {}) {
  const out = fs.openSync(path.join(LOGS, `${name}.log`), 'w');
  const p = spawn(cmd, args, { stdio: ['ignore', out, out], ...opts });
  fs.closeSync(out);
  p.name = name;
  p.exited = null;
  p.on('exit', (code, sig) => { p.exited = { code, sig }; });
  p.on('error', (e) => { p.exited = { error: e.message }; });
  procs.push(p);
  return p;
}
async function stopAll() {
  for (const p of procs.reverse()) {
    if (p.exited) continue;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  }
}
function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
async function waitPort(p, port, what) {
  const ok = await waitFor(async () => !p.exited && portOpen(port), { timeoutMs: 15000, everyMs: 100 });
  if (!ok) throw new Error(`${what} did not listen on ${port} (${JSON.stringify(p.exited)}), see ${LOGS}/${p.name}.log`);
}

// ---- statistics --------------------------------------------------------------------------------

function pct(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
function summarize(samples, seconds) {
  const lat = samples.map((s) => s[1]).sort((a, b) => a - b);
  return {
    n: lat.length,
    p50: pct(lat, 0.5),
    p95: pct(lat, 0.95),
    max: lat.at(-1) ?? null,
    min: lat[0] ?? null,
    fps: seconds > 0 ? lat.length / seconds : null,
  };
}

// ---- browser probe -----------------------------------------------------------------------------

const probeScript = fs.readFileSync(path.join(here, 'barcode.js'), 'utf8') + '\n' +
  fs.readFileSync(path.join(here, 'probe-page.js'), 'utf8');

async function browserProbe(p, { warmS, measureS }) {
  // WebRTC: the daemon's one candidate is 127.0.0.1, which Chromium skips unless told.
  const ctx = await launchBrowser({ extraArgs: ['--allow-loopback-in-peer-connection'] });
  const page = await newPage(ctx);
  try {
    await page.addInitScript({ content: `window.__LAT_MODE = ${JSON.stringify(p.mode)};\n${probeScript}` });
    await page.goto(p.url);
    const first = await waitFor(() => page.evaluate(() => window.__lat?.samples.length > 0), { timeoutMs: p.startTimeoutMs ?? 20000 });
    if (!first) {
      const dbg = await page.evaluate(() => ({ lat: window.__lat && { ...window.__lat, samples: undefined }, stats: window.pinhole?.stats?.() })).catch(() => null);
      throw new Error(`no frame read within ${(p.startTimeoutMs ?? 20000) / 1000} s: ${JSON.stringify(dbg)}\n${page.logs.slice(-10).join('\n')}`);
    }
    await sleep(warmS * 1000);
    const rtc0 = p.rtcStats ? await rtcStages(page, p.rtcStats) : null;
    const t0 = Date.now();
    await sleep(measureS * 1000);
    const t1 = Date.now();
    const rtc1 = p.rtcStats ? await rtcStages(page, p.rtcStats) : null;
    const r = await page.evaluate(() => ({
      samples: window.__lat.samples,
      reads: window.__lat.reads,
      fails: window.__lat.fails,
      shown: window.__lat.shown.slice().sort((a, b) => a - b),
      phase: window.__lat.phase.slice().sort((a, b) => a - b),
      stats: window.pinhole?.stats?.() ?? null,
    }));
    let samples = r.samples.filter(([t]) => t >= t0 && t < t1);
    const extra = {};
    // WebRTC rendering without smoothing (playout delay 0) hands each picture to the compositor
    // between refreshes: presentationTime is then that moment, not the refresh that composites
    // it as for every other <video> (whose presentationTimes sit just after a tick). Then each
    // sample is moved to its next tick, so every player is timed at the same point.
    const phaseMid = r.phase.length ? r.phase[r.phase.length >> 1] : 0;
    if (p.snapToTick && phaseMid > 3) {
      extra.unsnappedP50 = pct(samples.map((x) => x[1]).sort((a, b) => a - b), 0.5);
      samples = samples.map(([t, l, toTick]) => [t + (toTick ?? 0), Math.round((l + (toTick ?? 0)) * 10) / 10]);
    }
    samples = samples.map(([t, l]) => [t - t0, l]);
    if (r.stats) for (const k of ['jumps', 'droppedFrames', 'resyncs', 'playbackRate', 'buffer']) if (r.stats[k] != null) extra[k] = r.stats[k];
    // <video>: the screen shows a frame this long after the frame the probe timestamps.
    if (r.shown.length) extra.displayAfterMs = Math.round(r.shown[r.shown.length >> 1] * 10) / 10;
    // Where presentationTime falls after a refresh tick (median and the middle half, ms).
    if (r.phase.length) extra.phaseMs = [0.25, 0.5, 0.75].map((q) => r.phase[Math.floor(r.phase.length * q)]);
    if (rtc0 && rtc1) extra.webrtc = rtcDelta(rtc0, rtc1);
    // WebRTC: the p50 at presentationTime itself, before moving it to the compositing tick.
    return { samples, seconds: (t1 - t0) / 1000, unreadable: r.fails, extra };
  } finally {
    await ctx.close();
  }
}

// ---- WebRTC: where the delay goes ----------------------------------------------------------------

/** Chromium's inbound video stats of the page's newest RTCPeerConnection, and the daemon's WebRTC
 *  counters (`/api/status`: publish → datagrams sent histogram). */
async function rtcStages(page, statusUrl) {
  const inb = await page.evaluate(async () => {
    const pc = window.__pcs?.at(-1);
    if (!pc) return null;
    let v = null;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; });
    return v;
  }).catch(() => null);
  let server = null;
  try { server = (await (await fetch(statusUrl, { signal: AbortSignal.timeout(3000) })).json()).webrtc; } catch { /* none */ }
  return { inb, server };
}

/** Per-frame means over the measurement (ms) from two rtcStages samples. */
function rtcDelta(a, b) {
  const out = {};
  const d = (k) => (a.inb?.[k] != null && b.inb?.[k] != null ? b.inb[k] - a.inb[k] : null);
  const per = (num, den) => (d(num) != null && d(den) > 0 ? Math.round((d(num) / d(den)) * 1e4) / 10 : null);
  out.jitterBufferMs = per('jitterBufferDelay', 'jitterBufferEmittedCount');
  out.jitterTargetMs = per('jitterBufferTargetDelay', 'jitterBufferEmittedCount');
  out.jitterMinimumMs = per('jitterBufferMinimumDelay', 'jitterBufferEmittedCount');
  out.assemblyMs = per('totalAssemblyTime', 'framesAssembledFromMultiplePackets');
  out.decodeMs = per('totalDecodeTime', 'framesDecoded');
  out.processingMs = per('totalProcessingDelay', 'framesDecoded');
  out.framesDecoded = d('framesDecoded');
  out.framesDropped = d('framesDropped');
  out.packetsLost = d('packetsLost');
  out.nacks = d('nackCount');
  const h0 = a.server?.send_delay_us;
  const h1 = b.server?.send_delay_us;
  if (h0 && h1) {
    // Median bucket of the server's publish → datagrams-sent delay in the measured seconds.
    const counts = h1.counts.map((c, i) => c - (h0.counts[i] ?? 0));
    const n = counts.reduce((x, y) => x + y, 0);
    let acc = 0;
    const i = counts.findIndex((c) => (acc += c) >= n / 2);
    out.serverSendP50LeUs = n ? (h1.le[i] ?? '>' + h1.le.at(-1)) : null;
    out.serverFrames = n;
  }
  return out;
}

// ---- byte-level probe (N WebSocket viewers; receive time − SEI time) ----------------------------

const UUID = Uint8Array.from([0x5b, 0x1f, 0x9a, 0x3e, 0x7c, 0x2d, 0x4e, 0x8a, 0x9b, 0x61, 0x0d, 0x3c, 0x7f, 0x2a, 0x8e, 0x14]);
/** All pinhole timestamp SEIs in a buffer: [{end, us}] (end = index after the 8 value bytes). */
function seiTimes(b) {
  const out = [];
  for (let i = 0; i + 16 <= b.length; i++) {
    if (b[i] !== UUID[0] || b[i + 1] !== UUID[1]) continue;
    let k = 2;
    while (k < 16 && b[i + k] === UUID[k]) k++;
    if (k < 16) continue;
    // 8 big-endian bytes, with emulation prevention (00 00 03 → 00 00) removed.
    let us = 0;
    let got = 0;
    let zeros = 0;
    let j = i + 16;
    for (; j < b.length && got < 8; j++) {
      const x = b[j];
      if (zeros >= 2 && x === 3) { zeros = 0; continue; }
      us = us * 256 + x;
      got++;
      zeros = x === 0 ? zeros + 1 : 0;
    }
    if (got === 8) out.push({ end: j, us });
    i = j - 1;
  }
  return out;
}

async function byteProbe(url, n, seconds, { stream = false } = {}) {
  if (typeof WebSocket !== 'function') throw new Error('no WebSocket in this node (run with --experimental-websocket)');
  const samples = [];
  let t0 = Infinity;
  const socks = [];
  for (let v = 0; v < n; v++) {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    let tail = new Uint8Array(0);
    let last = 0;
    ws.onmessage = (ev) => {
      const now = performance.timeOrigin + performance.now();
      if (typeof ev.data === 'string') return;
      let b = new Uint8Array(ev.data);
      if (stream) { // arbitrary chunks: search across the boundary
        const c = new Uint8Array(tail.length + b.length);
        c.set(tail); c.set(b, tail.length);
        b = c;
        tail = b.slice(Math.max(0, b.length - 40));
      }
      for (const { us } of seiTimes(b)) {
        if (us <= last) continue;
        last = us;
        if (now >= t0) samples.push([now - t0, now - us / 1000]);
      }
    };
    socks.push(ws);
  }
  await sleep(SMOKE ? 1000 : 2000); // connect, skip the GOP burst a new viewer gets
  t0 = performance.timeOrigin + performance.now();
  await sleep(seconds * 1000);
  const t1 = performance.timeOrigin + performance.now();
  for (const ws of socks) ws.close();
  return { samples: samples.filter(([t]) => t < t1 - t0), seconds: (t1 - t0) / 1000 };
}

// ---- the seeds' pipelines ------------------------------------------------------------------------

async function startSeeds(pinholedBase) {
  const testsrc = process.env.TESTSRC || path.join(repoRoot, 'target/release/testsrc');
  if (!fs.existsSync(testsrc)) throw new Error(`${testsrc} missing: cargo build --release -p pinhole-bench --bin testsrc`);
  const srcPort = await freePort();
  const src = start('testsrc', testsrc, ['--listen', `127.0.0.1:${srcPort}`]);
  await waitPort(src, srcPort, 'testsrc');

  const wsPort = await freePort();
  const wsk = start('websockify', 'websockify', [`127.0.0.1:${wsPort}`, `127.0.0.1:${srcPort}`]);
  await waitPort(wsk, wsPort, 'websockify');

  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const work = fs.mkdtempSync(path.join(shm, 'pinhole-latency-'));
  const hlsDir = path.join(work, 'hls');
  fs.mkdirSync(hlsDir);
  fs.chmodSync(work, 0o755);
  fs.chmodSync(hlsDir, 0o755);
  start('ffmpeg-hls', 'ffmpeg', ['-hide_banner', '-loglevel', 'warning', '-f', 'h264', '-framerate', '30',
    '-i', `tcp://127.0.0.1:${srcPort}`, '-c', 'copy', '-f', 'hls', '-hls_time', '1', '-hls_list_size', '5',
    '-hls_flags', 'delete_segments', path.join(hlsDir, 'index.m3u8')]);

  // The seed's LL-DASH, from its command line; the parts it left out ("…") are the usual ones
  // for live low-latency DASH with a template (no timeline), a window of 5 and a UTC time
  // source (nginx passes /time to pinholed's ms clock: same machine, not a CDN's).
  const dashDir = path.join(work, 'dash');
  fs.mkdirSync(dashDir);
  fs.chmodSync(dashDir, 0o755);
  const webPort = await freePort();
  // With -c copy, 1 s segments need a keyframe every second: the seed's encoder had that (its
  // segments were 1 s); testsrc's default is 2 s, with which ffmpeg's 1 s template numbers drift
  // from the files ("Segment durations differ too much") and dash.js never starts. So a second
  // testsrc, same pattern, 1 s GOP.
  const dashSrcPort = await freePort();
  const dashSrc = start('testsrc-dash', testsrc, ['--listen', `127.0.0.1:${dashSrcPort}`, '--keyframe-interval', '30']);
  await waitPort(dashSrc, dashSrcPort, 'testsrc (DASH)');
  start('ffmpeg-dash', 'ffmpeg', ['-hide_banner', '-loglevel', 'warning', '-f', 'h264', '-framerate', '30',
    '-i', `tcp://127.0.0.1:${dashSrcPort}`, '-c', 'copy', '-f', 'dash', '-ldash', '1', '-seg_duration', '1',
    '-frag_duration', '1', '-streaming', '1', '-target_latency', '1', '-use_template', '1', '-use_timeline', '0',
    '-window_size', '5', '-extra_window_size', '5', '-utc_timing_url', `http://127.0.0.1:${webPort}/time`,
    path.join(dashDir, 'index.mpd')]);

  const conf = path.join(work, 'nginx.conf');
  fs.writeFileSync(conf, `# the seeds' web server: static pages, websockify behind /ws, ffmpeg's HLS dir
worker_processes 1;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  types {
    text/html html; application/javascript js mjs; application/vnd.apple.mpegurl m3u8; video/mp2t ts;
    application/dash+xml mpd; video/mp4 m4s mp4;
  }
  client_body_temp_path ${work}/body; proxy_temp_path ${work}/proxy; fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi; scgi_temp_path ${work}/scgi;
  server {
    listen 127.0.0.1:${webPort};
    location / { root ${path.join(here, 'seed')}; }
    location /vendor/ { alias ${path.join(repoRoot, 'web/vendor')}/; }
    location /hls/ { alias ${hlsDir}/; add_header Cache-Control no-cache; }
    location /dash/ { alias ${dashDir}/; add_header Cache-Control no-cache; }
    location = /time { proxy_pass ${pinholedBase}/dash/time; }
    location /ws {
      proxy_pass http://127.0.0.1:${wsPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
    }
  }
}
`);
  const ngx = start('nginx', 'nginx', ['-e', path.join(work, 'nginx-error.log'), '-p', work, '-c', conf]);
  await waitPort(ngx, webPort, 'nginx');
  return { base: `http://127.0.0.1:${webPort}`, wsUrl: `ws://127.0.0.1:${webPort}/ws`, hlsDir, work };
}

// ---- main ----------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date();
  const loadBefore = loadavg();
  log(`load ${loadBefore}; ${SMOKE ? 'SMOKE' : 'full'} run, warm ${WARM_S} s, measure ${MEASURE_S} s, long ${LONG_S} s, ${VIEWERS} byte viewers`);
  // WebRTC on loopback, an ephemeral UDP port (never the appliance's 8189).
  const extraArgs = ['--webrtc-listen', '127.0.0.1:0', ...(opt['daemon-args'] || '').split(/\s+/).filter(Boolean)];
  const daemon = await startDaemon(await freePort(), { extraArgs });
  const base = daemon.base;
  let seeds;
  const results = [];
  const notes = [];
  try {
    seeds = await startSeeds(base);
    log(`pinholed ${base}, seeds ${seeds.base}`);
    // Let the encoders and ffmpeg get going (ffmpeg needs a few segments before hls.js can start).
    await sleep(SMOKE ? 2500 : 5000);

    let hlsOk = false;
    try {
      const r = await fetch(`${base}/hls/index.m3u8`, { signal: AbortSignal.timeout(3000) });
      hlsOk = r.ok && (await r.text()).includes('#EXTM3U');
    } catch { /* not there */ }
    if (!hlsOk) notes.push('pinhole LL-HLS (`/?player=hls`): skipped, `/hls/index.m3u8` did not answer with a playlist in this build.');

    const hlsStart = { startTimeoutMs: 30000 };
    const probes = [
      { id: 'webcodecs', ours: true, label: 'pinhole WebCodecs (/ws/fmp4 → VideoDecoder → canvas, paced: each frame on its refresh)', url: `${base}/?player=webcodecs`, mode: 'canvas' },
      { id: 'webcodecs-immediate', ours: true, label: 'pinhole WebCodecs, draw on decode (`?render=immediate`)', url: `${base}/?player=webcodecs&render=immediate`, mode: 'canvas' },
      { id: 'webcodecs-raf', ours: true, label: 'pinhole WebCodecs, draw on requestAnimationFrame', url: `${base}/?player=webcodecs&render=raf`, mode: 'canvas' },
      { id: 'mse', ours: true, label: 'pinhole MSE (/ws/fmp4, UI `?player=mse`, paced: each frame appended on its refresh)', url: `${base}/?player=mse`, mode: 'video' },
      { id: 'mse-immediate', ours: true, label: 'pinhole MSE, append on arrival, playbackRate steers the buffer (`?render=immediate`)', url: `${base}/?player=mse&render=immediate`, mode: 'video' },
      { id: 'webrtc', ours: true, label: 'pinhole WebRTC (WHEP, UI `?player=webrtc`, playout delay 0: timed at the compositing refresh)', url: `${base}/?player=webrtc`, mode: 'video', rtcStats: `${base}/api/status`, snapToTick: true },
      { id: 'jmuxer', ours: true, label: 'pinhole /ws/h264 → jmuxer page (`/jmuxer.html`)', url: `${base}/jmuxer.html`, mode: 'video' },
      { id: 'mjpeg', ours: true, label: 'pinhole MJPEG (`<img>`, polled every 3 ms)', url: `${base}/?player=mjpeg`, mode: 'img' },
      ...(hlsOk ? [{ id: 'hls', ours: true, label: 'pinhole LL-HLS in hls.js (`?player=hls`)', url: `${base}/?player=hls`, mode: 'video', ...hlsStart, warmS: Math.max(WARM_S, SMOKE ? 1 : 10) }] : []),
      ...(hlsOk ? [{ id: 'dash', ours: true, label: 'pinhole LL-DASH in dash.js (`?player=dash`, chunked 200 ms parts)', url: `${base}/?player=dash`, mode: 'video', ...hlsStart, warmS: Math.max(WARM_S, SMOKE ? 1 : 10) }] : []),
      { id: 'seed-jmuxer', label: 'seed: TCP → websockify → nginx → jmuxer', url: `${seeds.base}/jmuxer.html`, mode: 'video' },
      { id: 'seed-hls', label: 'seed: ffmpeg -f hls (1 s) → nginx → hls.js defaults', url: `${seeds.base}/hls.html`, mode: 'video', ...hlsStart, warmS: Math.max(WARM_S, SMOKE ? 1 : 10) },
      { id: 'seed-dash', label: 'seed: ffmpeg -f dash -ldash 1 (1 s segments, 1 s fragments, -streaming 1, -target_latency 1) → nginx → dash.js (catch-up on)', url: `${seeds.base}/dash.html`, mode: 'video', ...hlsStart, warmS: Math.max(WARM_S, SMOKE ? 1 : 10) },
    ].filter((p) => want(p.id));
    if (opt.query) for (const p of probes) if (p.ours && p.url.includes('/?')) p.url += `&${opt.query}`;

    for (const p of probes) {
      log(`probe ${p.id}: ${p.url} (load ${loadavg()})`);
      try {
        let r;
        try {
          r = await browserProbe(p, { warmS: p.warmS ?? WARM_S, measureS: MEASURE_S });
        } catch (e) {
          // Once more on a fresh page: the seeds' ffmpeg DASH pipeline now and then serves a
          // manifest dash.js does not start on (its segment numbering drifts from its files).
          log(`  ${p.id}: ${e.message.split('\n')[0]}; trying once more`);
          r = await browserProbe(p, { warmS: p.warmS ?? WARM_S, measureS: MEASURE_S });
        }
        const s = summarize(r.samples, r.seconds);
        results.push({ ...p, kind: 'browser', ...s, unreadable: r.unreadable, extra: r.extra, samples: r.samples });
        log(`  ${p.id}: n ${s.n}, p50 ${s.p50} ms, p95 ${s.p95} ms, max ${s.max} ms, ${s.fps?.toFixed(1)} fps ${JSON.stringify(r.extra)}`);
        // With --out (experiments), every frame too: "seconds latency-ms" per line.
        if (opt.out) fs.writeFileSync(path.join(OUT, `samples-${p.id}.dat`), r.samples.map(([t, l]) => `${(t / 1000).toFixed(3)} ${l}`).join('\n') + '\n');
      } catch (e) {
        log(`  ${p.id} FAILED: ${e.message}`);
        results.push({ ...p, kind: 'browser', n: 0, error: e.message.split('\n')[0] });
      }
    }

    // Byte level: N viewers at once on each of our sockets, one on the seed's websockify.
    const wsBase = base.replace(/^http/, 'ws');
    const bytes = [
      { id: 'bytes-h264', ours: true, label: `pinhole /ws/h264, ${VIEWERS} viewers (receive − SEI)`, url: `${wsBase}/ws/h264`, n: VIEWERS },
      { id: 'bytes-fmp4', ours: true, label: `pinhole /ws/fmp4, ${VIEWERS} viewers (receive − SEI)`, url: `${wsBase}/ws/fmp4`, n: VIEWERS },
      { id: 'bytes-seed-ws', label: 'seed websockify via nginx, 1 viewer (receive − SEI)', url: seeds.wsUrl, n: 1, stream: true },
    ].filter((p) => want(p.id));
    for (const p of bytes) {
      log(`probe ${p.id}: ${p.url} × ${p.n} (load ${loadavg()})`);
      try {
        const r = await byteProbe(p.url, p.n, SMOKE ? MEASURE_S : Math.max(MEASURE_S, 20), { stream: p.stream });
        const s = summarize(r.samples, r.seconds);
        results.push({ ...p, kind: 'bytes', ...s, samples: r.samples });
        log(`  ${p.id}: n ${s.n}, p50 ${s.p50?.toFixed(2)} ms, p95 ${s.p95?.toFixed(2)} ms, max ${s.max?.toFixed(2)} ms`);
      } catch (e) {
        log(`  ${p.id} FAILED: ${e.message}`);
        results.push({ ...p, kind: 'bytes', n: 0, error: e.message });
      }
    }

    // Steadiness: one long run each for both MSE and both WebCodecs modes and WebRTC (no creep
    // over 5 minutes: issue 17); first vs last minute. `--only webrtc,webrtc-long`: WebRTC alone.
    if (LONG_S > 0) {
      for (const p of probes.filter((x) => ['mse', 'mse-immediate', 'webcodecs', 'webcodecs-immediate', 'webrtc'].includes(x.id))) {
        const id = `${p.id}-long`;
        if (only && !only.has(id) && !only.has(p.id)) continue;
        log(`probe ${id}: ${LONG_S} s (load ${loadavg()})`);
        try {
          const r = await browserProbe(p, { warmS: WARM_S, measureS: LONG_S });
          const s = summarize(r.samples, r.seconds);
          const minute = Math.min(60000, (LONG_S * 1000) / 3);
          const first = summarize(r.samples.filter(([t]) => t < minute), minute / 1000);
          const last = summarize(r.samples.filter(([t]) => t >= r.seconds * 1000 - minute), minute / 1000);
          results.push({ ...p, id, label: `${p.label}, ${Math.round(LONG_S / 60)} min`, kind: 'long', ...s, firstP50: first.p50, lastP50: last.p50, extra: r.extra, samples: r.samples });
          log(`  ${id}: n ${s.n}, p50 ${s.p50}, p95 ${s.p95}, max ${s.max}, first-minute p50 ${first.p50}, last-minute p50 ${last.p50}`);
        } catch (e) {
          log(`  ${id} FAILED: ${e.message}`);
          results.push({ ...p, id, kind: 'long', n: 0, error: e.message.split('\n')[0] });
        }
      }
    }
  } finally {
    await stopAll();
    await daemon.stop();
    if (seeds?.work) fs.rmSync(seeds.work, { recursive: true, force: true });
  }

  const loadAfter = loadavg();
  const meta = {
    date: startedAt.toISOString(),
    smoke: SMOKE,
    loadBefore,
    loadAfter,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    chromium: (() => { try { return execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return '?'; } })(),
    warmS: WARM_S,
    measureS: MEASURE_S,
    longS: LONG_S,
    viewers: VIEWERS,
    notes,
  };
  report(results, meta);
  const missing = results.filter((r) => !r.n);
  if (missing.length) {
    console.error(`probes without numbers: ${missing.map((r) => `${r.id} (${r.error ?? 'no samples'})`).join('; ')}`);
    // The smoke (CI) guards our probes and the bench code; a peer's pipeline that fails twice
    // is reported above and in the table, not a failure of ours.
    if (!SMOKE || missing.some((r) => r.ours)) process.exitCode = 1;
  }
}

// ---- report: JSON, table, plots, bench/README.md -------------------------------------------------

const fmt = (x, d = 0) => (x == null ? '—' : Number(x).toFixed(d));
const ratio = (a, b) => (a == null || !b ? '—' : `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}`);

function table(results) {
  const by = Object.fromEntries(results.map((r) => [r.id, r]));
  const sj = by['seed-jmuxer']?.p50;
  const sh = by['seed-hls']?.p50;
  const sd = by['seed-dash']?.p50;
  const rows = [
    '| probe | what | p50 ms | p95 ms | max ms | fps | frames | p50 ÷ seed jmuxer | p50 ÷ seed HLS | p50 ÷ seed DASH |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const d = r.kind === 'bytes' ? 1 : 0;
    const fps = r.kind === 'bytes' ? '' : fmt(r.fps, 1);
    let what = r.label + (r.error ? ` — **failed**: ${r.error.replace(/\|/g, '/')}` : '');
    if (r.kind === 'long') what += ` — first-minute p50 ${fmt(r.firstP50)} ms, last-minute p50 ${fmt(r.lastP50)} ms, p95/p50 ${ratio(r.p95, r.p50)}`;
    const cmp = r.ours && r.kind !== 'bytes';
    rows.push(`| ${r.id} | ${what} | ${fmt(r.p50, d)} | ${fmt(r.p95, d)} | ${fmt(r.max, d)} | ${fps} | ${r.n ?? 0} | ${cmp ? ratio(r.p50, sj) : ''} | ${cmp ? ratio(r.p50, sh) : ''} | ${cmp ? ratio(r.p50, sd) : ''} |`);
  }
  return rows.join('\n');
}

function plot(results, dir) {
  const gp = (script) => {
    try { execFileSync('gnuplot', [], { input: script, stdio: ['pipe', 'ignore', 'pipe'] }); return true; } catch (e) { log(`gnuplot: ${e.message}`); return false; }
  };
  const bars = results.filter((r) => r.n && r.kind !== 'long');
  fs.writeFileSync(path.join(dir, 'latency-bars.dat'),
    bars.map((r) => `"${r.id}" ${r.p50} ${r.p95} ${r.max}`).join('\n') + '\n');
  const made = [];
  if (gp(`set terminal pngcairo size 1100,520 font ",10"
set output "${path.join(dir, 'latency.png')}"
set title "Source-to-screen latency (capture → presented), loopback, 1280x720 @ 30 fps"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [1:*]
set ylabel "ms (log scale)"
set xtics rotate by -30
set grid ytics
set key top left
plot "${path.join(dir, 'latency-bars.dat')}" using 2:xtic(1) title "p50", '' using 3 title "p95", '' using 4 title "max"
`)) made.push('latency.png');
  const longs = results.filter((r) => r.kind === 'long' && r.n);
  if (longs.length) {
    for (const r of longs) fs.writeFileSync(path.join(dir, `latency-${r.id}.dat`), r.samples.map(([t, l]) => `${(t / 1000).toFixed(3)} ${l}`).join('\n') + '\n');
    if (gp(`set terminal pngcairo size 1100,420 font ",10"
set output "${path.join(dir, 'latency-steady.png')}"
set title "Latency of every presented frame over the long runs"
set xlabel "s"
set ylabel "ms"
set grid
plot ${longs.map((r) => `"${path.join(dir, `latency-${r.id}.dat`)}" using 1:2 with points pt 7 ps 0.2 title "${r.id}"`).join(', ')}
`)) made.push('latency-steady.png');
  }
  return made;
}

function report(results, meta) {
  const tbl = table(results);
  fs.writeFileSync(path.join(OUT, 'latency.json'), JSON.stringify({
    meta,
    results: results.map(({ samples, ...r }) => r),
  }, null, 2) + '\n');
  const pngs = plot(results, OUT);
  const header = `Run ${meta.date} · ${meta.cpus} × ${meta.cpuModel} · ${meta.chromium} · load ${meta.loadBefore} before, ${meta.loadAfter} after · ` +
    `warm-up ${meta.warmS} s, then ${meta.measureS} s per probe${meta.longS ? `, long runs ${meta.longS} s` : ''}`;
  const md = `${header}\n\n${tbl}\n${meta.notes.map((n) => `\n- ${n}`).join('')}\n`;
  fs.writeFileSync(path.join(OUT, 'latency.md'), md);
  console.log(`\n${md}`);
  if (SMOKE || opt.out) return;
  // bench/README.md: replace our section only (between the markers), keep everything else.
  const readme = path.join(repoRoot, 'bench/README.md');
  const BEGIN = '<!-- latency:begin (written by bench/latency/run.sh) -->';
  const END = '<!-- latency:end -->';
  const section = `${BEGIN}
## Latency

\`bench/latency/run.sh\` (\`--smoke\` for CI, \`--quick\` without the 5-minute runs) measures
source-to-screen delay in headless Debian chromium: every frame of the test pattern carries its
capture time as a barcode (docs/test-pattern.md) and an SEI message; for every frame a player
presents, the probe reads the barcode from the pixels and records \`t − capture time\` (same
machine), \`t\` being the rendering frame that composites the new picture (\`<video>\`:
\`requestVideoFrameCallback\`'s \`presentationTime\`; canvas and \`<img>\`: the frame after the draw;
the screen shows it one refresh, ~16 ms, later). Byte-level viewers record receive time − SEI
time. The seeds' pipelines are rebuilt from Debian packages and measured in the same run on the
same test pattern (\`testsrc\`): TCP → websockify → nginx → jmuxer, ffmpeg HLS (1 s
segments, list of 5) → nginx → hls.js with its default config, and ffmpeg LL-DASH (\`-ldash 1
-seg_duration 1 -frag_duration 1 -streaming 1 -target_latency 1\`) → nginx → dash.js with
live catch-up (\`seed/dash.html\`). Method and findings:
\`bench/latency/README.md\`.

${header}

${tbl}
${meta.notes.map((n) => `\n- ${n}`).join('')}
${pngs.map((p) => `\n![${p}](results/${p})`).join('\n')}
${END}`;
  let text = fs.existsSync(readme) ? fs.readFileSync(readme, 'utf8') : '# bench/\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(readme, text);
  log(`wrote ${readme} and ${OUT}`);
}

main().catch(async (e) => {
  console.error(e);
  await stopAll();
  process.exit(1);
});
