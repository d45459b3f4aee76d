// MJPEG fallback: an <img> fed by /mjpeg.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startDaemon, launchBrowser, newPage, waitFor } from './lib.mjs';

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

test('MJPEG mode shows a 1280 px wide image', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mjpeg`);
    const w = await waitFor(() => page.evaluate(() => document.querySelector('#screen img')?.naturalWidth || 0), { timeoutMs: 15000 });
    assert.equal(w, 1280);
    assert.equal(await page.evaluate(() => document.querySelector('video')), null, 'no <video> in MJPEG mode');
    assert.equal(await page.locator('#player-select').inputValue(), 'mjpeg');
    const s = await waitFor(() => page.evaluate(() => window.pinhole.stats().state === 'playing' && window.pinhole.stats()), { timeoutMs: 5000 });
    assert.ok(s, 'MJPEG player not in "playing" state');
    t.diagnostic(`image ${s.width}x${s.height}`);
    // The snapshot button opens a JPEG.
    const href = await page.locator('#btn-snapshot').getAttribute('href');
    const snap = await page.request.get(new URL(href, page.url()).href);
    assert.equal(snap.status(), 200);
    assert.match(snap.headers()['content-type'], /^image\/jpeg/);
    const jpg = await snap.body();
    assert.ok(jpg[0] === 0xff && jpg[1] === 0xd8, 'snapshot is not a JPEG');
    // The choice is remembered: a plain reload stays on MJPEG.
    await page.goto(`${daemon.base}/`);
    await page.locator('#player-select').selectOption('mjpeg');
    await page.goto(`${daemon.base}/`);
    assert.equal(await page.locator('#player-select').inputValue(), 'mjpeg');
    assert.ok(await waitFor(() => page.evaluate(() => document.querySelector('#screen img')?.naturalWidth === 1280), { timeoutMs: 10000 }));
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
