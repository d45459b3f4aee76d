// WebCodecs player: /ws/fmp4 → VideoDecoder → canvas. Auto tries WebRTC first; here the WHEP
// answer reaches the page without candidates (as behind a firewall that passes no UDP or TCP
// to the camera), so WebRTC must give up within seconds and Auto take WebCodecs (a secure
// context: http://127.0.0.1 is one), and remember it for the next load. Frames keep being
// drawn, and what the canvas shows is < 0.5 s old: judged both by the player's own figure
// (prft) and by the barcode read from the pixels.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, sleep, repoRoot, resultsDir } from './lib.mjs';

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

test('Auto falls back from an unreachable WebRTC to WebCodecs fast, plays with < 0.5 s delay', async (t) => {
  const page = await newPage(ctx);
  const posts = [];
  await page.route('**/whep', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    posts.push(Date.now());
    const r = await route.fetch();
    const body = (await r.text()).split('\r\n').filter((l) => !/^a=candidate:/i.test(l)).join('\r\n');
    await route.fulfill({ response: r, body });
  });
  try {
    // An init script, not a <script> tag: the page's Content-Security-Policy
    // allows no inline script (docs/security.md); init scripts are not subject to it.
    const barcode = fs.readFileSync(path.join(repoRoot, 'bench/latency/barcode.js'), 'utf8');
    await page.addInitScript({ content: `${barcode}\nwindow.PINHOLE_BARCODE = PINHOLE_BARCODE;` });
    const t0 = Date.now();
    await page.goto(`${daemon.base}/?player=auto&stats=1`);
    assert.equal(await page.evaluate(() => window.isSecureContext), true);
    assert.ok(await waitFor(() => posts.length > 0, { timeoutMs: 5000 }), 'Auto did not try WebRTC first');
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    assert.equal(await page.evaluate(() => window.pinhole.stats().player), 'webcodecs', 'Auto should fall back to WebCodecs here');
    const fallback = Date.now() - t0;
    t.diagnostic(`WebCodecs playing ${fallback} ms after the page load (WebRTC gave up first)`);
    // 3 s of ICE, then WebCodecs' start; a loaded debug daemon needs a little more.
    assert.ok(fallback < 8000, `the fallback took ${fallback} ms`);
    assert.ok(await page.evaluate(() => Number(localStorage.getItem('pinhole.webrtc.unreachable')) > 0), 'the failure was not remembered');
    const a = await page.evaluate(() => window.pinhole.stats());
    const delays = [];
    const pixelDelays = [];
    for (let i = 0; i < 12; i++) {
      await sleep(250);
      const r = await page.evaluate(() => {
        const c = document.querySelector('#screen canvas');
        const img = c.getContext('2d').getImageData(0, 0, c.width, Math.round((4 * c.width) / 36) + 1);
        const v = PINHOLE_BARCODE.readBarcodeImageData(img, c.width);
        const now = Date.now();
        return { delay: window.pinhole.stats().delay, pixel: v == null ? null : now - PINHOLE_BARCODE.fullMs(v, now) };
      });
      delays.push(r.delay);
      if (r.pixel != null) pixelDelays.push(r.pixel / 1000);
    }
    const b = await page.evaluate(() => window.pinhole.stats());
    const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    t.diagnostic(`frames drawn ${a.presentedFrames} -> ${b.presentedFrames}, fps ${b.fps?.toFixed(1)}, ` +
      `delay median ${med(delays)?.toFixed(3)} s (prft), ${med(pixelDelays)?.toFixed(3)} s (barcode, ${pixelDelays.length} reads), ` +
      `resyncs ${b.resyncs}, ${b.width}x${b.height}`);
    assert.ok(b.presentedFrames - a.presentedFrames > 30, `only ${b.presentedFrames - a.presentedFrames} frames drawn in 3 s`);
    assert.equal(b.delaySource, 'prft');
    assert.ok(med(delays) < 0.5, `delay median ${med(delays)} s; samples ${delays}`);
    assert.ok(med(delays) > -0.1, `delay ${med(delays)} s is implausibly negative`);
    assert.ok(pixelDelays.length >= 6, `barcode unreadable on the canvas (${pixelDelays.length}/12 reads)`);
    assert.ok(med(pixelDelays) < 0.5, `barcode delay median ${med(pixelDelays)} s`);
    assert.equal(b.width, 1280);
    assert.equal(b.height, 720);
    await page.screenshot({ path: path.join(resultsDir, 'webcodecs-1280x800.png') });
    // The next load goes straight to WebCodecs: no WHEP offer, Auto names it.
    const before = posts.length;
    await page.reload();
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 }), 'not playing after the reload');
    assert.equal(await page.evaluate(() => window.pinhole.stats().player), 'webcodecs');
    assert.equal(posts.length, before, 'Auto tried WebRTC again right after it failed');
    assert.match(await page.locator('#player-select option[value="auto"]').textContent(), /WebCodecs/);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.unroute('**/whep');
    await page.evaluate(() => localStorage.removeItem('pinhole.webrtc.unreachable')).catch(() => {});
    await page.close();
  }
});

test('?player=mse still plays MSE (WebCodecs is only the Auto choice)', async () => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse`);
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 }));
    assert.equal(await page.evaluate(() => window.pinhole.stats().player), 'mse');
    assert.ok(await page.evaluate(() => !!document.querySelector('#screen video')));
  } finally {
    await page.close();
  }
});
