// The seeds' jmuxer page plays raw H.264 from /ws/h264.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep, resultsDir } from './lib.mjs';
import path from 'node:path';

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

test('jmuxer.html plays /ws/h264', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/jmuxer.html`);
    const started = await waitFor(async () => (await videoState(page))?.currentTime > 0, { timeoutMs: 15000 });
    assert.ok(started, `video never started: ${JSON.stringify(await videoState(page))}`);
    const a = await videoState(page);
    await sleep(3000);
    const b = await videoState(page);
    t.diagnostic(`currentTime +${(b.currentTime - a.currentTime).toFixed(2)} s, frames ${a.frames} -> ${b.frames}, ${b.width}x${b.height}`);
    assert.equal(b.error, null);
    assert.ok(b.currentTime - a.currentTime > 1.5, `currentTime advanced only ${b.currentTime - a.currentTime} s in 3 s`);
    assert.ok(b.frames > a.frames, `decoded frames did not grow (${a.frames} -> ${b.frames})`);
    assert.equal(b.width, 1280);
    await page.screenshot({ path: path.join(resultsDir, 'jmuxer-1280x800.png') });
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
