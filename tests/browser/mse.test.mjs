// `/` plays live via MSE from /ws/fmp4, close to the live edge.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep } from './lib.mjs';

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

test('/ plays via MSE with < 1 s delay', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse&stats=1`);
    assert.equal(await page.title(), 'pinhole');
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `player never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    const a = await videoState(page);
    await sleep(3000);
    const b = await videoState(page);
    const s = await page.evaluate(() => window.pinhole.stats());
    t.diagnostic(`currentTime +${(b.currentTime - a.currentTime).toFixed(2)} s, frames ${a.frames} -> ${b.frames}, ` +
      `delay ${s.delay?.toFixed(3)} s (${s.delaySource}), buffer ${s.buffer?.toFixed(3)} s, fps ${s.fps?.toFixed(1)}, ` +
      `bitrate ${(s.bitrate / 1e6).toFixed(2)} Mbit/s, ${s.width}x${s.height}, jumps ${s.jumps}, viewers ${s.viewers}`);
    assert.equal(b.error, null);
    assert.ok(b.currentTime - a.currentTime > 2, `currentTime advanced only ${b.currentTime - a.currentTime} s in 3 s`);
    assert.ok(b.frames > a.frames, `decoded frames did not grow (${a.frames} -> ${b.frames})`);
    assert.ok(s.delay != null && s.delay < 1, `delay ${s.delay} s (${s.delaySource})`);
    assert.ok(s.delay > -0.5, `delay ${s.delay} s is implausibly negative (clock or prft mapping wrong)`);
    assert.equal(s.width, 1280);
    assert.equal(s.height, 720);
    // The overlay shows the same numbers a person sees.
    const overlay = await page.locator('#stats').innerText();
    assert.match(overlay, /delay\s+\d+ ms/);
    assert.match(overlay, /1280×720/);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
