// `/?player=hls` plays the LL-HLS stream with hls.js (lowLatencyMode) close to live.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep, resultsDir } from './lib.mjs';

let daemon;
let ctx;
before(async () => {
  daemon = await startDaemon(await freePort());
  ctx = await launchBrowser();
});
after(async () => {
  await ctx?.close();
  await daemon?.stop();
});

const median = (xs) => {
  const s = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s.at(-1), n: s.length };
};

// The mock daemon (PINHOLED=mock) writes no HLS.
const skip = process.env.PINHOLED === 'mock' ? 'the mock daemon has no HLS' : false;

test('hls.js plays /hls/index.m3u8 in low-latency mode within 1.5 s of live', { skip }, async (t) => {
  const page = await newPage(ctx);
  const requests = { playlist: 0, blocking: 0, part: 0, segment: 0 };
  const log = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/hls/')) return;
    log.push(`${(performance.now() / 1000).toFixed(3)} ${u.pathname}${u.search}`);
    if (u.pathname.endsWith('.m3u8')) {
      requests.playlist++;
      if (u.searchParams.has('_HLS_msn')) requests.blocking++;
    } else if (/\.\d+\.m4s$/.test(u.pathname)) requests.part++;
    else if (u.pathname.endsWith('.m4s')) requests.segment++;
  });
  try {
    await page.goto(`${daemon.base}/?player=hls&stats=1`);
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 20000 });
    assert.ok(playing, `player never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    // Let hls.js settle on its target latency, then sample for 8 s.
    await sleep(3000);
    const a = await videoState(page);
    const samples = [];
    for (let i = 0; i < 32; i++) {
      await sleep(250);
      samples.push(await page.evaluate(() => {
        const s = window.pinhole.stats();
        return { latency: s.latency, delay: s.delay, delaySource: s.delaySource, target: s.targetLatency, sync: s.liveSyncPosition, ct: s.currentTime, rate: s.playbackRate, player: s.player };
      }));
    }
    const b = await videoState(page);
    const lat = median(samples.map((s) => s.latency));
    const pdt = median(samples.map((s) => s.delay));
    const last = samples.at(-1);
    const result = {
      latency_s: lat, pdt_delay_s: pdt, target_latency_s: last.target,
      live_sync_position: last.sync, current_time: last.ct, requests,
      current_time_advance_s: b.currentTime - a.currentTime, frames: [a.frames, b.frames],
      nudges: await page.evaluate(() => window.pinhole.stats().nudges),
    };
    fs.writeFileSync(path.join(resultsDir, 'hls-latency.json'), JSON.stringify(result, null, 2));
    fs.writeFileSync(path.join(resultsDir, 'hls-requests.log'), `${log.join('\n')}\n`);
    t.diagnostic(`hls.latency median ${lat.median?.toFixed(3)} s (min ${lat.min?.toFixed(3)}, max ${lat.max?.toFixed(3)}), ` +
      `target ${last.target?.toFixed(3)} s; PDT delay median ${pdt.median?.toFixed(3)} s (max ${pdt.max?.toFixed(3)}); ` +
      `liveSyncPosition ${last.sync?.toFixed(3)} vs currentTime ${last.ct?.toFixed(3)}`);
    t.diagnostic(`requests: ${JSON.stringify(requests)}; stall watchdog steps: ${result.nudges}; currentTime +${(b.currentTime - a.currentTime).toFixed(2)} s, frames ${a.frames} -> ${b.frames}`);
    assert.equal(last.player, 'hls', 'hls.js (not native) in Chromium');
    assert.equal(b.error, null);
    assert.ok(b.currentTime - a.currentTime > 6, `currentTime advanced only ${b.currentTime - a.currentTime} s in 8 s`);
    assert.ok(b.frames > a.frames, `decoded frames did not grow (${a.frames} -> ${b.frames})`);
    assert.ok(requests.blocking > 10, `no blocking playlist reloads (${JSON.stringify(requests)}): not in LL mode`);
    assert.ok(requests.part > 10, `no part requests (${JSON.stringify(requests)})`);
    assert.equal(lat.n, samples.length, 'hls.latency unavailable');
    assert.ok(lat.median <= 1.5, `hls.latency median ${lat.median} s > 1.5 s`);
    assert.equal(last.delaySource, 'pdt');
    assert.ok(pdt.median <= 1.5 && pdt.min > -0.5, `PDT delay ${JSON.stringify(pdt)}`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
