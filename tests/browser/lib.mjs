// Shared helpers for the browser tests: start/stop pinholed, launch Debian's chromium.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const resultsDir = path.join(here, 'results');
fs.mkdirSync(resultsDir, { recursive: true });

/**
 * PINHOLED=path/to/binary (default target/release/pinholed); PINHOLED=mock uses dev/mock-pinholed.mjs.
 * The UI is served from web/ on disk (--ui-dir, as nginx will on the device), so editing web/
 * needs no rebuild; PINHOLE_UI=embedded tests the copy built into the binary instead.
 */
const PINHOLED = process.env.PINHOLED || 'target/release/pinholed';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Start pinholed on 127.0.0.1:port and wait until /api/status answers. */
export async function startDaemon(port, { timeoutMs = 20000, extraArgs = [] } = {}) {
  let cmd;
  let args;
  if (PINHOLED === 'mock') {
    cmd = process.execPath;
    args = [path.join(here, 'dev/mock-pinholed.mjs'), String(port)];
  } else {
    cmd = path.resolve(repoRoot, PINHOLED);
    if (!fs.existsSync(cmd)) throw new Error(`${cmd} not found: cargo build --release -p pinholed (or set PINHOLED)`);
    args = ['--listen', `127.0.0.1:${port}`, ...extraArgs];
    // A fresh data dir: no admin password, as on first boot (docs/security.md).
    if (!extraArgs.includes('--data-dir')) args.push('--data-dir', fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-data-')));
    if (process.env.PINHOLE_UI !== 'embedded') args.push('--ui-dir', path.join(repoRoot, 'web'));
  }
  const logFile = path.join(resultsDir, `pinholed-${port}.log`);
  const log = fs.openSync(logFile, 'a');
  const proc = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = null;
  proc.on('exit', (code, sig) => { exited = { code, sig }; });
  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (exited) throw new Error(`pinholed exited early (${JSON.stringify(exited)}), see ${logFile}`);
    try {
      const r = await fetch(`${base}/api/status`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) { await r.json(); break; }
    } catch { /* not up yet */ }
    if (Date.now() - t0 > timeoutMs) { proc.kill('SIGKILL'); throw new Error(`pinholed did not answer on ${base} within ${timeoutMs} ms, see ${logFile}`); }
    await sleep(100);
  }
  return {
    proc,
    port,
    base,
    /** Stop it (SIGTERM, then SIGKILL after 3 s) and wait for the exit. */
    async stop(signal = 'SIGTERM') {
      if (exited) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    },
  };
}

/** Launch headless chromium with a fresh profile; returns a persistent context (close it to quit). */
export async function launchBrowser({ viewport = { width: 1280, height: 800 }, extraArgs = [], ...opts } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required', ...extraArgs],
    ...opts,
  });
  const close = ctx.close.bind(ctx);
  ctx.close = async () => {
    await close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return ctx;
}

/** A new page that records console errors and page errors (printed when a test fails). */
export async function newPage(ctx) {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`[pageerror] ${e.message}`));
  return page;
}

/** Poll fn() until it returns a truthy value or time runs out; returns the last value. */
export async function waitFor(fn, { timeoutMs = 10000, everyMs = 200 } = {}) {
  const t0 = Date.now();
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() - t0 > timeoutMs) return v;
    await sleep(everyMs);
  }
}

/** Read the playback state of the first <video> on the page. */
export function videoState(page) {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    if (!v) return null;
    const q = v.getVideoPlaybackQuality?.();
    return {
      currentTime: v.currentTime,
      paused: v.paused,
      readyState: v.readyState,
      width: v.videoWidth,
      height: v.videoHeight,
      frames: q ? q.totalVideoFrames : 0,
      error: v.error ? `${v.error.code} ${v.error.message}` : null,
    };
  });
}
