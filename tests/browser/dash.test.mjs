// `/?player=dash` plays the LL-DASH manifest with dash.js in low-latency mode close to live:
// chunked segments (availabilityTimeOffset), the same CMAF files as LL-HLS.
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

// The mock daemon (PINHOLED=mock) writes no segments.
const skip = process.env.PINHOLED === 'mock' ? 'the mock daemon has no DASH' : false;

test('dash.js plays /dash/index.mpd in low-latency mode within 1.5 s of live', { skip }, async (t) => {
  const page = await newPage(ctx);
  const requests = { mpd: 0, time: 0, init: 0, segment: 0, other: 0 };
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/dash/')) return;
    if (u.pathname.endsWith('.mpd')) requests.mpd++;
    else if (u.pathname === '/dash/time') requests.time++;
    else if (u.pathname.endsWith('.mp4')) requests.init++;
    else if (/-\d+\.m4s$/.test(u.pathname)) requests.segment++;
    else requests.other++;
  });
  try {
    await page.goto(`${daemon.base}/?player=dash&stats=1`);
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 20000 });
    assert.ok(playing, `player never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    // Let dash.js settle on its target latency, then sample for 8 s.
    await sleep(3000);
    const a = await videoState(page);
    const samples = [];
    for (let i = 0; i < 32; i++) {
      await sleep(250);
      samples.push(await page.evaluate(() => {
        const s = window.pinhole.stats();
        return { latency: s.latency, target: s.targetLatency, low: s.lowLatency, rate: s.playbackRate, player: s.player, delaySource: s.delaySource };
      }));
    }
    const b = await videoState(page);
    const lat = median(samples.map((s) => s.latency));
    const last = samples.at(-1);
    const result = { latency_s: lat, target_latency_s: last.target, low_latency: last.low, requests, current_time_advance_s: b.currentTime - a.currentTime, frames: [a.frames, b.frames] };
    fs.writeFileSync(path.join(resultsDir, 'dash-latency.json'), JSON.stringify(result, null, 2));
    t.diagnostic(`dash.js latency median ${lat.median?.toFixed(3)} s (min ${lat.min?.toFixed(3)}, max ${lat.max?.toFixed(3)}), target ${last.target} s, low-latency mode ${last.low}`);
    t.diagnostic(`requests: ${JSON.stringify(requests)}; currentTime +${(b.currentTime - a.currentTime).toFixed(2)} s, frames ${a.frames} -> ${b.frames}`);
    assert.equal(last.player, 'dash');
    assert.equal(b.error, null);
    assert.equal(last.low, true, 'dash.js did not switch to its low-latency mode');
    assert.ok(b.currentTime - a.currentTime > 6, `currentTime advanced only ${b.currentTime - a.currentTime} s in 8 s`);
    assert.ok(b.frames > a.frames, `decoded frames did not grow (${a.frames} -> ${b.frames})`);
    assert.ok(requests.time > 0, `no UTCTiming request (${JSON.stringify(requests)})`);
    assert.ok(requests.segment >= 5, `few segment requests (${JSON.stringify(requests)})`);
    assert.equal(lat.n, samples.length, 'dash.js latency unavailable');
    assert.ok(lat.median <= 1.5, `dash.js latency median ${lat.median} s > 1.5 s`);
    assert.equal(last.delaySource, 'dash');
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
